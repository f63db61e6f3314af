//! The deploy stage against the fake API server: apply, rollout, fail fast, rollback.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry::deploy::{self, DeployOptions, Rollout, RolloutFailure, Target};
use kube_fake::{FakeCluster, Fault, Options};

const GOOD: &str = "registry.example/ferry/hello@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const GOOD2: &str = "registry.example/ferry/hello@sha256:2222222222222222222222222222222222222222222222222222222222222222";
const BAD: &str = "registry.example/ferry/hello@sha256:badbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbad0";

fn manifest(image: &str, namespace: &str) -> Vec<serde_json::Value> {
    let vars: BTreeMap<String, String> = [
        ("IMAGE", image),
        ("COMMIT", "0123456789abcdef0123456789abcdef01234567"),
        ("ENVIRONMENT", "test"),
        ("NAMESPACE", namespace),
        ("REPLICAS", "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s.yml");
    ferry::render::render_file(&path, &vars)
        .expect("k8s.yml renders")
        .objects
}

async fn cluster() -> (FakeCluster, deploy::Cluster) {
    ferry::install_crypto_provider();
    // 60x: the manifest's 300 s progress deadline is 5 s; 5 s minReadySeconds is 83 ms.
    let fake = FakeCluster::start(Options {
        clock_scale: 60.0,
        ..Options::default()
    })
    .await
    .unwrap();
    let target = Target {
        kubeconfig: Some(fake.kubeconfig_path().to_path_buf()),
        context: None,
    };
    let cluster = deploy::connect(&target).await.expect("connect to the fake");
    (fake, cluster)
}

fn options() -> DeployOptions {
    DeployOptions {
        namespace: "default".into(),
        poll: Duration::from_millis(100),
        ..DeployOptions::default()
    }
}

async fn ship(cluster: &deploy::Cluster, image: &str, options: &DeployOptions) -> Rollout {
    deploy::deploy(cluster, &manifest(image, "default"), options, &|_| {})
        .await
        .expect("deploy runs")
}

fn image_of(fake: &FakeCluster) -> String {
    let d = fake
        .get_json("/apis/apps/v1/namespaces/default/deployments/hello")
        .unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_rollout_succeeds_and_a_second_commit_rolls_forward() {
    let (fake, cluster) = cluster().await;
    let lines = std::sync::Mutex::new(Vec::new());
    let rollout = deploy::deploy(&cluster, &manifest(GOOD, "default"), &options(), &|l| {
        lines.lock().unwrap().push(l.to_string())
    })
    .await
    .unwrap();
    assert_eq!(
        rollout,
        Rollout::Succeeded {
            deployments: vec!["hello".into()]
        }
    );
    let lines = lines.into_inner().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Waiting for deployment \"hello\" rollout to finish")),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        "deployment \"hello\" successfully rolled out"
    );
    let svc = fake
        .get_json("/api/v1/namespaces/default/services/hello")
        .unwrap();
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert!(
        svc["metadata"]["managedFields"].is_null() || svc["metadata"]["managedFields"].is_array()
    );

    assert_eq!(
        ship(&cluster, GOOD2, &options()).await,
        Rollout::Succeeded {
            deployments: vec!["hello".into()]
        }
    );
    assert_eq!(image_of(&fake), GOOD2);
    let status = deploy::status(&cluster, "default").await.unwrap();
    assert_eq!(status[0].revision.as_deref(), Some("2"));
    assert_eq!((status[0].ready, status[0].desired), (2, 2));
    assert_eq!(
        status[0].commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_fails_fast_and_rolls_back() {
    let (fake, cluster) = cluster().await;
    ship(&cluster, GOOD, &options()).await;
    fake.inject(BAD, Fault::ImagePull);
    let started = Instant::now();
    let rollout = ship(&cluster, BAD, &options()).await;
    let Rollout::RolledBack {
        failure, restored, ..
    } = rollout
    else {
        panic!("expected a rollback, got {rollout:?}")
    };
    assert!(
        matches!(&failure, RolloutFailure::ImagePull { image, .. } if image == BAD),
        "{failure}"
    );
    assert!(
        failure.to_string().contains("Failed to pull image"),
        "events in the report: {failure}"
    );
    assert_eq!(
        (restored.revision, restored.image.as_str()),
        (1, GOOD),
        "back to revision 1"
    );
    assert_eq!(image_of(&fake), GOOD, "the previous template is back");
    // Fail fast: well before the 300 s (5 s at 60x) progress deadline... plus rollback time.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let status = deploy::status(&cluster, "default").await.unwrap();
    assert_eq!(
        (status[0].ready, status[0].rollout.as_str()),
        (2, "complete")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_reports_its_log_lines() {
    let (fake, cluster) = cluster().await;
    fake.inject(
        BAD,
        Fault::CrashLoop {
            log: "hello: invalid configuration: PORT=\"x\"".into(),
            exit_code: 2,
        },
    );
    let rollout = ship(
        &cluster,
        BAD,
        &DeployOptions {
            rollback: false,
            ..options()
        },
    )
    .await;
    let Rollout::Failed {
        failure,
        why_not_rolled_back,
        ..
    } = rollout
    else {
        panic!("{rollout:?}")
    };
    assert!(
        matches!(
            failure,
            RolloutFailure::CrashLoop {
                exit_code: Some(2),
                ..
            }
        ),
        "{failure}"
    );
    assert!(
        failure.to_string().contains("PORT=\"x\""),
        "log tail in the report: {failure}"
    );
    assert!(why_not_rolled_back.contains("--no-rollback"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_deploy_that_never_becomes_ready_has_nothing_to_roll_back() {
    let (fake, cluster) = cluster().await;
    fake.inject(BAD, Fault::NeverReady);
    let rollout = ship(&cluster, BAD, &options()).await;
    let Rollout::Failed {
        failure,
        why_not_rolled_back,
        ..
    } = rollout
    else {
        panic!("{rollout:?}")
    };
    assert!(
        matches!(failure, RolloutFailure::NeverReady { .. }),
        "{failure}"
    );
    assert!(
        failure.to_string().contains("Readiness probe failed"),
        "{failure}"
    );
    assert!(
        why_not_rolled_back.contains("first revision"),
        "{why_not_rolled_back}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unschedulable_pod_is_reported_with_the_scheduler_message() {
    let (fake, cluster) = cluster().await;
    ship(&cluster, GOOD, &options()).await;
    fake.inject(BAD, Fault::Unschedulable);
    let rollout = ship(&cluster, BAD, &options()).await;
    let Rollout::RolledBack { failure, .. } = rollout else {
        panic!("{rollout:?}")
    };
    assert!(failure.headline().contains("Insufficient cpu"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_stalls_ends_at_the_progress_deadline_and_rolls_back() {
    let (fake, cluster) = cluster().await;
    ship(&cluster, GOOD, &options()).await;
    fake.inject(BAD, Fault::SlowStart(Duration::from_secs(3600)));
    let rollout = ship(&cluster, BAD, &options()).await;
    let Rollout::RolledBack { failure, .. } = rollout else {
        panic!("{rollout:?}")
    };
    assert_eq!(
        failure,
        RolloutFailure::DeadlineExceeded {
            deployment: "hello".into()
        }
    );
    assert_eq!(image_of(&fake), GOOD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_persists_nothing_and_shows_the_diff() {
    let (fake, cluster) = cluster().await;
    ship(&cluster, GOOD, &options()).await;
    let diffs = deploy::dry_run(&cluster, &manifest(GOOD2, "default"), "default")
        .await
        .unwrap();
    let all = diffs.join("\n");
    assert!(
        all.lines().any(|l| l.starts_with('-') && l.contains(GOOD)),
        "{all}"
    );
    assert!(
        all.lines().any(|l| l.starts_with('+') && l.contains(GOOD2)),
        "{all}"
    );
    assert_eq!(image_of(&fake), GOOD, "nothing was persisted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_and_an_invalid_object_are_clear_errors() {
    let (_fake, cluster) = cluster().await;
    let err = deploy::deploy(&cluster, &manifest(GOOD, "absent"), &options(), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, deploy::DeployError::MissingNamespace { ref namespace } if namespace == "absent"),
        "{err}"
    );
    assert!(
        err.to_string().contains("kubectl create namespace absent"),
        "{err}"
    );

    let mut objects = manifest(GOOD, "default");
    objects[1]["spec"]["template"]["metadata"]["labels"] =
        serde_json::json!({"app.kubernetes.io/name": "other"});
    let err = deploy::deploy(&cluster, &objects, &options(), &|_| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Deployment/hello is invalid"), "{text}");
    assert!(
        text.contains("spec.template.metadata.labels"),
        "field path: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_and_a_missing_kubeconfig_say_what_to_do() {
    ferry::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let err = deploy::connect(&Target {
        kubeconfig: Some(dir.path().join("nope")),
        context: None,
    })
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("gcloud container clusters get-credentials"),
        "{err}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n")).unwrap();
    let err = deploy::connect(&Target {
        kubeconfig: Some(kubeconfig),
        context: None,
    })
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string().contains(&format!(
            "cannot reach the cluster at http://127.0.0.1:{port}"
        )),
        "{err}"
    );
}
