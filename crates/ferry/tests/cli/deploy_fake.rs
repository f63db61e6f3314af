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
        ..Default::default()
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
        failure
            .headline()
            .starts_with("container hello of pod hello-")
            && failure.headline().contains("(ImagePullBackOff)"),
        "names the container and the kubelet's reason: {failure}"
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
        ..Default::default()
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
        ..Default::default()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_accepts_but_never_answers_fails_within_the_request_timeout() {
    ferry::install_crypto_provider();
    // Accepts connections and reads nothing back: a TCP sink where the API server should be.
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        sink.set_nonblocking(false).unwrap();
        // Bounded: the client makes one connection (a retry at most); keep them open.
        for stream in sink.incoming().take(2) {
            open.push(stream);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n")).unwrap();
    let started = std::time::Instant::now();
    let err = deploy::connect(&Target {
        kubeconfig: Some(kubeconfig),
        context: None,
        request_timeout: Some(Duration::from_secs(1)),
    })
    .await
    .err()
    .expect("no answer is an error")
    .to_string();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "it waited {took:?}");
    assert!(
        err.contains(&format!(
            "the cluster at http://127.0.0.1:{port}/ accepted the connection but sent no answer within 1 s"
        )),
        "{err}"
    );
    assert!(err.contains("kubectl cluster-info"), "{err}");
    assert_eq!(ferry::deploy::REQUEST_TIMEOUT, Duration::from_secs(30));
    drop(held);
}

// Through the real binary: `ferry deploy`'s flags, its exit code and what it prints.

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn k8s_yml() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s.yml")
}

/// `ferry deploy ARGS` in `dir` (which holds an empty ferry.toml: the default environment),
/// with none of the manifest's variables inherited from the test's environment.
async fn ferry_deploy(dir: &Path, args: &[&str]) -> std::process::Output {
    std::fs::write(dir.join("ferry.toml"), "").unwrap();
    ferry_deploy_in(dir, args, &[]).await
}

/// `ferry deploy ARGS` in `dir` as it is, with `env` (e.g. COMMIT, which ferry takes from git
/// and `--var` may not set) and no other manifest variable from the test's environment.
async fn ferry_deploy_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .arg("deploy")
        .args(args)
        .current_dir(dir)
        .env("FERRY_OUTPUT", "plain")
        .stdin(std::process::Stdio::null());
    for name in [
        "FERRY_ENV",
        "FERRY_CONFIG",
        "KUBECONFIG",
        "IMAGE",
        "COMMIT",
        "ENVIRONMENT",
        "NAMESPACE",
        "REPLICAS",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    // Blocking wait off the runtime, so the fake keeps serving the child.
    tokio::task::spawn_blocking(move || command.output().expect("run ferry"))
        .await
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overall_timeout_stops_a_slow_rollout_rolls_back_and_exits_non_zero() {
    let (fake, cluster) = cluster().await;
    ship(&cluster, GOOD, &options()).await;
    // Never ready in time, and nothing for fail-fast to see: only a timeout can end it before
    // the progress deadline (300 s, 5 s real at 60x).
    fake.inject(BAD, Fault::SlowStart(Duration::from_secs(3600)));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig_path().to_str().unwrap();
    let manifest = k8s_yml();
    let started = Instant::now();
    std::fs::write(dir.path().join("ferry.toml"), "").unwrap();
    let out = ferry_deploy_in(
        dir.path(),
        &[
            "--kubeconfig",
            kubeconfig,
            "-f",
            manifest.to_str().unwrap(),
            "--image",
            BAD,
            "--set",
            "REPLICAS=2",
            "--timeout",
            "1",
        ],
        &[("COMMIT", COMMIT)],
    )
    .await;
    let err = stderr(&out);
    assert!(!out.status.success(), "exit non-zero: {err}");
    assert!(
        err.contains("deployment \"hello\" did not finish within 1s (last: Waiting for deployment \"hello\" rollout to finish"),
        "says which deployment, how long and where it stood: {err}"
    );
    assert!(
        err.contains(&format!(
            "rolled back hello to revision 1 ({GOOD}), which is serving again"
        )),
        "{err}"
    );
    assert!(
        !err.contains("progress deadline"),
        "the timeout came first: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "before the progress deadline: {:?}",
        started.elapsed()
    );
    assert_eq!(image_of(&fake), GOOD);
}

/// `(name, line)` of every `${NAME}` in `text` (not `$${NAME}`, which is an escape).
fn uses(text: &str, names: &[&str]) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for name in names {
            let needle = format!("${{{name}}}");
            let mut from = 0;
            while let Some(at) = line[from..].find(&needle).map(|p| p + from) {
                if !line[..at].ends_with('$') {
                    found.push((name.to_string(), i + 1));
                }
                from = at + needle.len();
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undefined_variables_are_all_listed_with_file_and_line_and_nothing_is_applied() {
    let (fake, _cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("k8s.yml");
    let template = std::fs::read_to_string(k8s_yml()).unwrap();
    std::fs::write(&manifest, &template).unwrap();
    // No --set: COMMIT (no git repository here) and REPLICAS are undefined.
    let out = ferry_deploy(
        dir.path(),
        &[
            "--kubeconfig",
            fake.kubeconfig_path().to_str().unwrap(),
            "-f",
            manifest.to_str().unwrap(),
            "--image",
            GOOD,
        ],
    )
    .await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "undefined variables COMMIT, REPLICAS in {}",
            manifest.display()
        )),
        "{err}"
    );
    let expected = uses(&template, &["COMMIT", "REPLICAS"]);
    assert!(
        expected.len() >= 3,
        "k8s.yml uses COMMIT twice and REPLICAS: {expected:?}"
    );
    for (name, line) in expected {
        let at = format!("{}:{line}:", manifest.display());
        assert!(
            err.lines()
                .any(|l| l.contains(&at) && l.contains(&format!("${{{name}}} is not defined"))),
            "{name} at line {line}: {err}"
        );
    }
    for path in [
        "/api/v1/namespaces/default/services/hello",
        "/apis/apps/v1/namespaces/default/deployments/hello",
    ] {
        assert_eq!(fake.get_json(path), None, "{path} must not exist");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_context_is_used_instead_of_the_current_one() {
    let (fake, cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{closed}\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: gone\n  context: {{cluster: gone, user: u}}\n- name: fake\n  context: {{cluster: fake, user: u, namespace: default}}\ncurrent-context: gone\n",
            fake.url()
        ),
    )
    .unwrap();
    let manifest = k8s_yml();
    let deploy = |context: Option<&'static str>| {
        let mut args = vec![
            "--kubeconfig".to_string(),
            kubeconfig.to_str().unwrap().to_string(),
            "-f".into(),
            manifest.to_str().unwrap().into(),
            "--image".into(),
            GOOD.into(),
            "--var".into(),
            "REPLICAS=1".into(),
            "--set".into(), // the older spelling still works
            "REPLICAS=2".into(),
        ];
        if let Some(context) = context {
            args.extend(["--context".to_string(), context.to_string()]);
        }
        let dir = dir.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            std::fs::write(dir.join("ferry.toml"), "").unwrap();
            ferry_deploy_in(&dir, &args, &[("COMMIT", COMMIT)]).await
        }
    };

    // The current context points nowhere...
    let out = deploy(None).await;
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "cannot reach the cluster at http://127.0.0.1:{closed}"
        )),
        "{err}"
    );
    // ...and --context picks the one that works.
    let out = deploy(Some("fake")).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(image_of(&fake), GOOD);
    let status = deploy::status(&cluster, "default").await.unwrap();
    assert_eq!((status[0].ready, status[0].desired), (2, 2));

    // `ferry status` of an environment using that kubeconfig: FERRY_CONTEXT and --context
    // override its (dead) current context, as they do for ship and plan.
    std::fs::write(
        dir.path().join("ferry.toml"),
        format!(
            "[environments.k]\nkind = \"kubernetes\"\nrepository = \"127.0.0.1:9/hello\"\nkubeconfig = {:?}\nnamespace = \"default\"\n",
            kubeconfig.to_str().unwrap()
        ),
    )
    .unwrap();
    let status = |flags: &'static [&'static str], context_var: Option<&'static str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
        command
            .args(["status", "--env", "k"])
            .args(flags)
            .current_dir(dir.path())
            .env("FERRY_OUTPUT", "plain")
            .env_remove("FERRY_ENV")
            .env_remove("FERRY_NAMESPACE")
            .env_remove("KUBECONFIG");
        match context_var {
            Some(c) => command.env("FERRY_CONTEXT", c),
            None => command.env_remove("FERRY_CONTEXT"),
        };
        tokio::task::spawn_blocking(move || command.output().expect("run ferry"))
    };
    let out = status(&[], None).await.unwrap();
    assert!(!out.status.success(), "the current context is dead");
    for (flags, var) in [
        (&[][..], Some("fake")),
        (&["--context", "fake"][..], Some("gone")),
    ] {
        let out = status(flags, var).await.unwrap();
        assert!(out.status.success(), "{flags:?} {var:?}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("hello") && text.contains("2/2"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_image_name_fails_fast_and_rolls_back() {
    let (fake, cluster) = cluster().await;
    ship(&cluster, GOOD, &options()).await;
    // Upper case in the repository: no registry would ever serve it, so no pull is tried.
    let invalid = "registry.example/ferry/Hello:Latest";
    fake.inject(invalid, Fault::InvalidImageName);
    let started = Instant::now();
    let rollout = ship(&cluster, invalid, &options()).await;
    let Rollout::RolledBack {
        failure, restored, ..
    } = rollout
    else {
        panic!("expected a rollback, got {rollout:?}")
    };
    assert!(
        matches!(&failure, RolloutFailure::ImagePull { kubelet_reason, image, .. }
            if kubelet_reason == "InvalidImageName" && image == invalid),
        "{failure}"
    );
    let headline = failure.headline();
    assert!(
        headline.starts_with("container hello of pod hello-")
            && headline.contains(&format!(
                "has an invalid image reference {invalid} (InvalidImageName)"
            )),
        "{headline}"
    );
    let report = failure.to_string();
    assert!(
        report.contains("Warning InspectFailed:") && report.contains("invalid reference format"),
        "the kubelet's event in the report: {report}"
    );
    assert!(report.contains("does not parse"), "the hint: {report}");
    assert_eq!((restored.revision, restored.image.as_str()), (1, GOOD));
    assert_eq!(image_of(&fake), GOOD);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "before the progress deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_fast_with_create_container_config_error() {
    let (fake, cluster) = cluster().await;
    ship(&cluster, GOOD, &options()).await;
    fake.inject(
        BAD,
        Fault::CreateContainerConfigError {
            message: "secret \"hello-db\" not found".into(),
        },
    );
    let started = Instant::now();
    let rollout = ship(&cluster, BAD, &options()).await;
    let Rollout::RolledBack { failure, .. } = rollout else {
        panic!("expected a rollback, got {rollout:?}")
    };
    assert!(
        matches!(&failure, RolloutFailure::ContainerConfig { kubelet_reason, message, .. }
            if kubelet_reason == "CreateContainerConfigError" && message == "secret \"hello-db\" not found"),
        "{failure}"
    );
    assert!(
        failure
            .headline()
            .starts_with("container hello of pod hello-")
            && failure.headline().ends_with(
                "cannot be created (CreateContainerConfigError): secret \"hello-db\" not found"
            ),
        "{failure}"
    );
    assert!(
        failure
            .to_string()
            .contains("Warning Failed: Error: secret \"hello-db\" not found"),
        "the kubelet's event in the report: {failure}"
    );
    assert_eq!(image_of(&fake), GOOD);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "before the progress deadline: {:?}",
        started.elapsed()
    );
}

/// A kubeconfig whose user runs an exec credential plugin (as GKE's gke-gcloud-auth-plugin
/// does), against a fake that demands a bearer token.
fn exec_kubeconfig(dir: &Path, server: &str, plugin_body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let plugin = dir.join("fake-auth-plugin");
    std::fs::write(&plugin, format!("#!/bin/sh\n{plugin_body}\n")).unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\nusers:\n- name: plugin\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {}\n      interactiveMode: Never\n      provideClusterInfo: true\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: plugin\ncurrent-context: fake\n",
            plugin.display()
        ),
    )
    .unwrap();
    kubeconfig
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_credential_plugin_supplies_the_token_and_bad_credentials_are_named() {
    ferry::install_crypto_provider();
    let token = "plugin-token-5ecret";
    let fake = FakeCluster::start(Options {
        clock_scale: 60.0,
        bearer_token: Some(token.into()),
        ..Options::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let credential = |t: &str| {
        format!(
            r#"echo '{{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{{"token":"{t}"}}}}'"#
        )
    };

    // The plugin's token opens the cluster: a full healthy rollout.
    let kubeconfig = exec_kubeconfig(dir.path(), &fake.url(), &credential(token));
    let cluster = deploy::connect(&Target {
        kubeconfig: Some(kubeconfig),
        context: None,
        ..Default::default()
    })
    .await
    .expect("the plugin's token is accepted");
    let rollout = ship(&cluster, GOOD, &options()).await;
    assert!(matches!(rollout, Rollout::Succeeded { .. }), "{rollout:?}");

    // A token the cluster refuses: 401, said as such, with the fix, and no token shown.
    let kubeconfig = exec_kubeconfig(dir.path(), &fake.url(), &credential("expired-token"));
    let err = deploy::connect(&Target {
        kubeconfig: Some(kubeconfig),
        context: None,
        ..Default::default()
    })
    .await
    .err()
    .expect("a refused token fails")
    .to_string();
    assert!(
        err.contains(&format!("the cluster at {}", fake.url()))
            && err.contains("did not accept the credentials")
            && err.contains("gcloud container clusters get-credentials"),
        "{err}"
    );
    assert!(!err.contains("expired-token"), "{err}");

    // A plugin that fails (not logged in): its message, and where plugins come from.
    let kubeconfig = exec_kubeconfig(
        dir.path(),
        &fake.url(),
        "echo 'ERROR: gcloud is not logged in' >&2; exit 1",
    );
    let err = deploy::connect(&Target {
        kubeconfig: Some(kubeconfig),
        context: None,
        ..Default::default()
    })
    .await
    .err()
    .expect("a failing plugin fails");
    let err = format!("{err}");
    assert!(
        err.contains(
            "cannot get credentials for the cluster: the credential plugin failed (exit status: 1): ERROR: gcloud is not logged in\n"
        ) && err.contains("gke-gcloud-auth-plugin"),
        "{err}"
    );

    // A plugin that fails after printing a credential on stdout: neither that, nor the
    // plugin's command line or environment, is repeated in the error.
    let kubeconfig = exec_kubeconfig(
        dir.path(),
        &fake.url(),
        &format!("{}; exit 1", credential("half-written-5ecret")),
    );
    let err = deploy::connect(&Target {
        kubeconfig: Some(kubeconfig),
        context: None,
        ..Default::default()
    })
    .await
    .err()
    .expect("a failing plugin fails")
    .to_string();
    assert!(
        err.contains("the credential plugin failed (exit status: 1) and said nothing"),
        "{err}"
    );
    assert!(
        !err.contains("half-written-5ecret") && !err.contains("fake-auth-plugin"),
        "{err}"
    );
}

/// Nothing of the manifest reaches the fake.
fn nothing_applied(fake: &FakeCluster) {
    for path in [
        "/api/v1/namespaces/default/services/hello",
        "/apis/apps/v1/namespaces/default/deployments/hello",
    ] {
        assert_eq!(fake.get_json(path), None, "{path} must not exist");
    }
}

/// `ferry deploy` of k8s.yml to the fake with `args` after the kubeconfig, manifest and
/// REPLICAS; `ferry_toml` is the configuration.
async fn deploy_with(fake: &FakeCluster, ferry_toml: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ferry.toml"), ferry_toml).unwrap();
    let manifest = k8s_yml();
    let mut all = vec![
        "--kubeconfig",
        fake.kubeconfig_path().to_str().unwrap(),
        "-f",
        manifest.to_str().unwrap(),
    ];
    all.extend(args);
    ferry_deploy_in(dir.path(), &all, &[("COMMIT", COMMIT)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vars_and_var_flags_cannot_replace_the_pinned_image() {
    let (fake, _cluster) = cluster().await;
    let evil = "evil.example/miner:latest";
    for name in ["IMAGE", "COMMIT", "ENVIRONMENT", "NAMESPACE"] {
        let var = format!("{name}={evil}");
        let out = deploy_with(
            &fake,
            "",
            &["--image", GOOD, "--var", "REPLICAS=2", "--var", &var],
        )
        .await;
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(&format!("--var cannot set {name}: ferry sets it to")),
            "{err}"
        );
    }
    let toml = format!(
        "default_environment = \"k\"\n[environments.k]\nkind = \"kubernetes\"\nrepository = \"127.0.0.1:9/hello\"\nnamespace = \"default\"\nvars = {{ REPLICAS = \"2\", IMAGE = \"{evil}\" }}\n"
    );
    let out = deploy_with(&fake, &toml, &["--image", GOOD]).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("environments.k.vars in "), "{err}");
    assert!(err.contains("ferry.toml:6 cannot set IMAGE"), "{err}");
    nothing_applied(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_only_image_is_deployed_with_a_warning_unless_the_environment_requires_a_digest() {
    let (fake, _cluster) = cluster().await;
    let tagged = "registry.example/ferry/hello:v1";
    let toml = |require: bool| {
        format!(
            "default_environment = \"k\"\n[environments.k]\nkind = \"kubernetes\"\nrepository = \"127.0.0.1:9/hello\"\nnamespace = \"default\"\nrequire_digest = {require}\nvars = {{ REPLICAS = \"1\" }}\n"
        )
    };
    let out = deploy_with(&fake, &toml(true), &["--image", tagged]).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("environment `k` deploys only images pinned by digest (require_digest = true), and --image registry.example/ferry/hello:v1 has no digest"),
        "{err}"
    );
    nothing_applied(&fake);

    let out = deploy_with(&fake, &toml(false), &["--image", tagged]).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: --image registry.example/ferry/hello:v1 is not pinned by digest"),
        "{err}"
    );
    assert_eq!(image_of(&fake), tagged);

    let out = deploy_with(&fake, &toml(true), &["--image", GOOD]).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_pasted_as_yaml_is_refused_and_nothing_is_applied() {
    let (fake, _cluster) = cluster().await;
    let out = deploy_with(
        &fake,
        "",
        &["--image", GOOD, "--var", "REPLICAS=2\n  paused: true"],
    )
    .await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    let line = uses(&std::fs::read_to_string(k8s_yml()).unwrap(), &["REPLICAS"])[0].1;
    assert!(
        err.contains(&format!("k8s.yml:{line}:"))
            && err.contains(
                "the value of REPLICAS cannot be pasted into the manifest: it contains a line break"
            ),
        "{err}"
    );
    let out = deploy_with(
        &fake,
        "",
        &["--image", GOOD, "--var", "REPLICAS={paused: true}"],
    )
    .await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("the value of REPLICAS cannot be pasted into the manifest: \"{paused: true}\" reads as a YAML mapping"), "{err}");
    nothing_applied(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_manifest_is_an_error_not_a_rollout() {
    let (fake, _cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("empty.yml");
    std::fs::write(&manifest, "# nothing here yet\n---\n").unwrap();
    let out = ferry_deploy(
        dir.path(),
        &[
            "--kubeconfig",
            fake.kubeconfig_path().to_str().unwrap(),
            "-f",
            manifest.to_str().unwrap(),
            "--image",
            GOOD,
        ],
    )
    .await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{} has no Kubernetes object", manifest.display())),
        "{err}"
    );
    assert!(!err.contains("rolled out"), "{err}");
}

// The release lifecycle through the real binary: the deploy lock, history and rollback.

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases/ferry-lock-hello";
const COMMIT_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const COMMIT_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A checkout-less project in `dir` whose `e2e` environment deploys k8s.yml to `fake`.
fn lifecycle_project(dir: &Path, fake: &FakeCluster) {
    std::fs::write(
        dir.join("ferry.toml"),
        format!(
            "[image]\nname = \"hello\"\n\n[environments.e2e]\nkind = \"kubernetes\"\nrepository = \"registry.example/ferry/hello\"\nkubeconfig = \"{}\"\nnamespace = \"default\"\nmanifest = \"{}\"\nvars = {{ REPLICAS = \"2\" }}\n",
            fake.kubeconfig_path().display(),
            k8s_yml().display()
        ),
    )
    .unwrap();
}

/// `ferry ARGS` in `dir` as a child process, with plain output, `lease` seconds of deploy
/// lock, and none of the manifest's variables inherited.
fn ferry_command(dir: &Path, args: &[&str], lease: u64) -> std::process::Command {
    // A `COMMIT=HASH` argument (see [`deploy_args`]) is the commit, given as ferry reads it.
    let commit = args.iter().find_map(|a| a.strip_prefix("COMMIT="));
    let args: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with("COMMIT="))
        .collect();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .args(args)
        .current_dir(dir)
        .env("FERRY_OUTPUT", "plain")
        .env("FERRY_LOCK_LEASE_SECONDS", lease.to_string())
        .env("CIRCLE_USERNAME", "ci-alice")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for name in [
        "FERRY_ENV",
        "FERRY_CONFIG",
        "KUBECONFIG",
        "IMAGE",
        "COMMIT",
        "ENVIRONMENT",
        "NAMESPACE",
        "REPLICAS",
        "FERRY_ACTOR",
    ] {
        command.env_remove(name);
    }
    if let Some(commit) = commit {
        command.env("COMMIT", commit);
    }
    command
}

async fn ferry_in(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = ferry_command(dir, args, 30);
    tokio::task::spawn_blocking(move || command.output().expect("run ferry"))
        .await
        .unwrap()
}

/// `ferry deploy` of `image` built from `commit`. COMMIT is ferry's own variable (`--var` may
/// not set it); outside a git checkout it comes from the environment, which
/// [`ferry_command`] sets from the `COMMIT=` pseudo-argument this adds.
fn deploy_args<'a>(image: &'a str, commit: &'a str) -> Vec<String> {
    ["deploy", "--env", "e2e", "--image", image]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("COMMIT={commit}")])
        .collect()
}

async fn history_json(dir: &Path) -> serde_json::Value {
    let out = ferry_in(dir, &["--output", "json", "history", "--env", "e2e"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kubectl(fake: &FakeCluster, args: &[&str]) -> String {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("kubectl").is_file()));
    assert!(
        found,
        "kubectl not found on PATH: install kubectl 1.32 (curl -LO https://dl.k8s.io/release/v1.32.0/bin/linux/amd64/kubectl && sudo install -m 0755 kubectl /usr/local/bin/kubectl)"
    );
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(fake.kubeconfig_path())
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deploys_at_once_one_runs_and_the_other_names_the_holder() {
    let (fake, _cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    lifecycle_project(dir.path(), &fake);
    // Pods that take 3 s (180 s simulated) to become ready keep the winner holding the lock.
    fake.inject(GOOD, Fault::SlowStart(Duration::from_secs(180)));
    let a: Vec<String> = deploy_args(GOOD, COMMIT_A);
    let b: Vec<String> = deploy_args(GOOD, COMMIT_B);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let first = ferry_command(dir.path(), &a, 30).spawn().unwrap();
    let second = ferry_command(dir.path(), &b, 30).spawn().unwrap();
    let (first, second) = tokio::task::spawn_blocking(move || {
        (
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        )
    })
    .await
    .unwrap();
    let outcomes = [&first, &second].map(|o| o.status.success());
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one runs:\n--- first\n{}\n--- second\n{}",
        stderr(&first),
        stderr(&second)
    );
    let (winner, loser, winner_commit) = if outcomes[0] {
        (&first, &second, COMMIT_A)
    } else {
        (&second, &first, COMMIT_B)
    };
    let err = stderr(loser);
    assert!(
        err.contains(
            "the deploy lock (Lease default/ferry-lock-hello) is held: ferry deploy of commit"
        ) && err.contains(&winner_commit[..12])
            && err.contains("by ci-alice@")
            && err.contains(", since 20"),
        "names the holder, its commit and since when: {err}"
    );
    assert!(err.contains("--lock-timeout"), "says how to wait: {err}");
    assert!(stderr(winner).contains("successfully rolled out"));
    assert_eq!(fake.get_json(LEASE), None, "released at the end");
    assert_eq!(
        fake.get_json("/apis/apps/v1/namespaces/default/deployments/hello")
            .unwrap()["metadata"]["annotations"]["ferry.dev/commit"],
        winner_commit
    );

    // With --lock-timeout, a second deploy waits for the first and then runs.
    let slow = "registry.example/ferry/hello@sha256:3333333333333333333333333333333333333333333333333333333333333333";
    fake.inject(slow, Fault::SlowStart(Duration::from_secs(120)));
    let a = deploy_args(slow, COMMIT_A);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let first = ferry_command(dir.path(), &a, 30).spawn().unwrap();
    wait_for("the first deploy's lease", || {
        fake.get_json(LEASE).is_some()
    })
    .await;
    let mut waiting = deploy_args(GOOD2, COMMIT_B);
    waiting.extend(["--lock-timeout".to_string(), "30".to_string()]);
    let waiting: Vec<&str> = waiting.iter().map(String::as_str).collect();
    let second = ferry_in(dir.path(), &waiting).await;
    let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("the deploy lock is held by ferry deploy"),
        "{}",
        stderr(&second)
    );
    assert_eq!(image_of(&fake), GOOD2, "the waiting deploy ran last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_with_sigkill_blocks_until_its_lease_expires() {
    let (fake, _cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    lifecycle_project(dir.path(), &fake);
    fake.inject(BAD, Fault::SlowStart(Duration::from_secs(3600)));
    let args = deploy_args(BAD, COMMIT_B);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut holder = ferry_command(dir.path(), &args, 2).spawn().unwrap();
    wait_for("the deploy's lease", || fake.get_json(LEASE).is_some()).await;
    holder.kill().unwrap(); // SIGKILL: no release, no cleanup.
    holder.wait().unwrap();
    let killed_at = Instant::now();

    let next = deploy_args(GOOD, COMMIT_A);
    let next: Vec<&str> = next.iter().map(String::as_str).collect();
    let mut command = ferry_command(dir.path(), &next, 2);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success(), "still held right after the kill");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("ferry deploy of commit {}", &COMMIT_B[..12]))
            && err.contains("stops blocking 2s after its last renewal"),
        "{err}"
    );

    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(killed_at.elapsed())).await;
    let mut command = ferry_command(dir.path(), &next, 2);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "the lease expired: {}", stderr(&out));
    assert_eq!(image_of(&fake), GOOD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_lock_refuses_deploys_until_unlock_and_kubectl_shows_it() {
    let (fake, _cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    lifecycle_project(dir.path(), &fake);
    let out = ferry_in(
        dir.path(),
        &["lock", "--env", "e2e", "-m", "release freeze"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("locked e2e: a manual lock by ci-alice@"));

    let leases = kubectl(&fake, &["get", "lease", "-n", "default"]);
    assert!(
        leases.contains("ferry-lock-hello") && leases.contains("ci-alice@"),
        "kubectl get lease shows it and its holder:\n{leases}"
    );

    let out = ferry_in(dir.path(), &["status", "--env", "e2e"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deploy lock: a manual lock by ci-alice@"),
        "ferry status shows the lock: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A manual lock does not expire, however short the lease.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let args = deploy_args(GOOD, COMMIT_A);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = ferry_command(dir.path(), &args, 1);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("is held: a manual lock by ci-alice@")
            && err.contains("(\"release freeze\")")
            && err.contains("until `ferry unlock` removes it"),
        "{err}"
    );
    assert_eq!(
        fake.get_json("/apis/apps/v1/namespaces/default/deployments/hello"),
        None,
        "nothing applied"
    );

    let out = ferry_in(dir.path(), &["unlock", "--env", "e2e"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("unlocked e2e (it was a manual lock"));
    let out = ferry_in(dir.path(), &args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ferry_in(dir.path(), &["unlock", "--env", "e2e"]).await;
    assert!(
        stderr(&out).contains("e2e was not locked"),
        "{}",
        stderr(&out)
    );

    // Local environments have no lock.
    let out = ferry_in(dir.path(), &["lock", "--env", "local", "-m", "x"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`ferry lock` is not supported for a local environment"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_each_deploy_and_rollback_to_a_commit_restores_its_digest() {
    let (fake, _cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    lifecycle_project(dir.path(), &fake);
    for (image, commit) in [(GOOD, COMMIT_A), (GOOD2, COMMIT_B)] {
        let args = deploy_args(image, commit);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ferry_in(dir.path(), &args).await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let doc = history_json(dir.path()).await;
    assert_eq!(doc["where"], "ConfigMap default/ferry-history-hello");
    let records = doc["history"].as_array().unwrap();
    let rows: Vec<(i64, &str, &str, &str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["revision"].as_i64().unwrap(),
                r["commit"].as_str().unwrap(),
                r["digest"].as_str().unwrap(),
                r["what"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
                r["who"].as_str().unwrap(),
            )
        })
        .collect();
    let digest = |image: &'static str| image.rsplit_once('@').unwrap().1;
    assert_eq!(
        rows,
        [
            (
                2,
                COMMIT_B,
                digest(GOOD2),
                "deploy",
                "succeeded",
                "ci-alice"
            ),
            (1, COMMIT_A, digest(GOOD), "deploy", "succeeded", "ci-alice"),
        ],
        "newest first"
    );
    assert!(
        records
            .iter()
            .all(|r| r["available"] == true && r["time"].as_str().unwrap().starts_with("20"))
    );

    // The human table has the same columns.
    let out = ferry_in(dir.path(), &["history", "--env", "e2e"]).await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("REVISION COMMIT"), "{table}");
    assert!(
        lines[1].starts_with("2        bbbbbbbbbbbb sha256:222222222222")
            && lines[1].contains("ci-alice")
            && lines[1].ends_with("deploy    succeeded"),
        "{table}"
    );

    // A revision the cluster no longer keeps is refused, listing those it does.
    let out = ferry_in(dir.path(), &["rollback", "--env", "e2e", "--to", "9"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("revision \"9\" of deployment hello is no longer available")
            && err.contains(&format!(
                "revision 2 (commit bbbbbbbbbbbb, {GOOD2})  ← running"
            ))
            && err.contains(&format!("revision 1 (commit aaaaaaaaaaaa, {GOOD})")),
        "{err}"
    );

    // Back to A by its commit: A's digest in the pod template, the rollout complete.
    let out = ferry_in(
        dir.path(),
        &["rollback", "--env", "e2e", "--to", &COMMIT_A[..8]],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "hello runs {GOOD} again (commit aaaaaaaaaaaa), now as revision 3"
        )),
        "{}",
        stderr(&out)
    );
    let image = kubectl(
        &fake,
        &[
            "get",
            "deploy",
            "hello",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image, GOOD);
    let status = kubectl(
        &fake,
        &["rollout", "status", "deploy/hello", "--timeout=20s"],
    );
    assert!(status.contains("successfully rolled out"), "{status}");
    // kubectl's rollout history agrees: revisions 2 and 3, 3 running A's image.
    let revisions = kubectl(&fake, &["rollout", "history", "deploy/hello"]);
    let numbers: Vec<&str> = revisions
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(numbers, ["2", "3"], "{revisions}");
    let third = kubectl(
        &fake,
        &["rollout", "history", "deploy/hello", "--revision=3"],
    );
    assert!(third.contains(GOOD) && third.contains(COMMIT_A), "{third}");

    let doc = history_json(dir.path()).await;
    let newest = &doc["history"][0];
    assert_eq!(
        (
            newest["what"].as_str(),
            newest["revision"].as_i64(),
            newest["commit"].as_str(),
            newest["digest"].as_str(),
            newest["outcome"].as_str()
        ),
        (
            Some("rollback"),
            Some(3),
            Some(COMMIT_A),
            Some(digest(GOOD)),
            Some("succeeded")
        )
    );
    // Revision 1 became 3: the first record's revision is gone, kubectl agrees.
    assert_eq!(doc["history"][2]["available"], false);

    // `ferry status` names the commit that runs.
    let out = ferry_in(dir.path(), &["status", "--env", "e2e"]).await;
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(status.contains("aaaaaaaaaaaa"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_commit_that_runs_after_an_automatic_rollback() {
    let (fake, _cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    lifecycle_project(dir.path(), &fake);
    fake.inject(BAD, Fault::ImagePull);
    for (image, commit, ok) in [(GOOD, COMMIT_A, true), (BAD, COMMIT_B, false)] {
        let args = deploy_args(image, commit);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ferry_in(dir.path(), &args).await;
        assert_eq!(out.status.success(), ok, "{}", stderr(&out));
    }
    let d = fake
        .get_json("/apis/apps/v1/namespaces/default/deployments/hello")
        .unwrap();
    assert_eq!(d["metadata"]["annotations"]["ferry.dev/commit"], COMMIT_A);
    let out = ferry_in(dir.path(), &["--output", "json", "status", "--env", "e2e"]).await;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["deployments"][0]["commit"], COMMIT_A);
    assert_eq!(doc["deployments"][0]["image"], GOOD);
    let out = ferry_in(dir.path(), &["--output", "json", "history", "--env", "e2e"]).await;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["history"][0]["commit"], COMMIT_B);
    assert_eq!(doc["history"][0]["outcome"], "rolled_back");
    assert!(
        doc["history"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("ImagePullBackOff")
            || doc["history"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("ErrImagePull"),
        "{doc}"
    );
}

// Rollout judgement: grace from the probes, crash reports, `fail_fast = false`.

/// k8s.yml rendered for `image`, its container changed by `change`.
fn manifest_with(image: &str, change: impl Fn(&mut serde_json::Value)) -> Vec<serde_json::Value> {
    let mut objects = manifest(image, "default");
    for o in objects.iter_mut().filter(|o| o["kind"] == "Deployment") {
        change(&mut o["spec"]["template"]["spec"]["containers"][0]);
    }
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_failures_are_judged_against_the_grace_the_probes_allow() {
    let (fake, cluster) = cluster().await;
    fake.inject(BAD, Fault::NeverReady);
    // 20 s + 3 × 10 s: 50 s simulated before the probes give up on the pod.
    let slow_probe = manifest_with(BAD, |c| {
        c["readinessProbe"] = serde_json::json!({
            "httpGet": {"path": "/readyz", "port": "http"},
            "initialDelaySeconds": 20, "periodSeconds": 10, "failureThreshold": 3});
    });
    let options = DeployOptions {
        rollback: false,
        ..options()
    };
    let started = fake.elapsed();
    let rollout = deploy::deploy(&cluster, &slow_probe, &options, &|_| {})
        .await
        .unwrap();
    let judged_after = fake.elapsed() - started;
    let Rollout::Failed { failure, .. } = &rollout else {
        panic!("{rollout:?}")
    };
    let RolloutFailure::NeverReady {
        failures,
        grace_s,
        probes,
        ..
    } = failure
    else {
        panic!("{failure}")
    };
    assert_eq!(*grace_s, Some(50));
    assert_eq!(probes.as_deref(), Some("readiness: 20s + 3 × 10s"));
    assert!(*failures >= 3, "{failure}");
    assert!(
        judged_after >= Duration::from_secs(50),
        "not before the probes' grace: judged after {judged_after:?} (simulated)"
    );
    assert!(
        failure
            .headline()
            .contains("past the 50s its probes allow (readiness: 20s + 3 × 10s)"),
        "{failure}"
    );

    // k8s.yml's own probe (every 2 s, 2 failures) allows 4 s: judged well before 50 s.
    let (fake, cluster) = self::cluster().await;
    fake.inject(BAD, Fault::NeverReady);
    let started = fake.elapsed();
    let rollout = ship(&cluster, BAD, &options).await;
    let judged_after = fake.elapsed() - started;
    assert!(
        matches!(
            &rollout,
            Rollout::Failed {
                failure: RolloutFailure::NeverReady {
                    grace_s: Some(4),
                    ..
                },
                ..
            }
        ),
        "{rollout:?}"
    );
    assert!(
        judged_after < Duration::from_secs(50),
        "judged after {judged_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_report_has_the_previous_containers_log_and_its_termination() {
    let (fake, cluster) = cluster().await;
    fake.inject(
        BAD,
        Fault::CrashLoop {
            log: "starting\nhello: cannot bind 0.0.0.0:8000: address in use".into(),
            exit_code: 3,
        },
    );
    let objects = manifest_with(BAD, |c| {
        c["terminationMessagePolicy"] = serde_json::json!("FallbackToLogsOnError");
    });
    let options = DeployOptions {
        rollback: false,
        ..options()
    };
    let rollout = deploy::deploy(&cluster, &objects, &options, &|_| {})
        .await
        .unwrap();
    let Rollout::Failed { failure, .. } = &rollout else {
        panic!("{rollout:?}")
    };
    let RolloutFailure::CrashLoop {
        exit_code,
        terminated_reason,
        terminated_message,
        evidence,
        ..
    } = failure
    else {
        panic!("{failure}")
    };
    assert_eq!(*exit_code, Some(3));
    assert_eq!(terminated_reason.as_deref(), Some("Error"));
    assert!(
        terminated_message
            .as_deref()
            .is_some_and(|m| m.contains("address in use")),
        "{terminated_message:?}"
    );
    assert_eq!(
        evidence.logs,
        [
            "starting",
            "hello: cannot bind 0.0.0.0:8000: address in use"
        ],
        "the log of the container that exited, asked for with previous=true"
    );
    let report = failure.to_string();
    assert!(
        report.contains("last exit code 3, reason Error): hello: cannot bind")
            && report.contains("last log lines of the container that exited (previous=true):"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_with_fail_fast_off_waits_out_the_deadline() {
    let (fake, _cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    lifecycle_project(dir.path(), &fake);
    let toml = std::fs::read_to_string(dir.path().join("ferry.toml")).unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        format!("{toml}fail_fast = false\n"),
    )
    .unwrap();
    let args = deploy_args(GOOD, COMMIT_A);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ferry_in(dir.path(), &args).await;
    assert!(out.status.success(), "{}", stderr(&out));

    fake.inject(BAD, Fault::ImagePull);
    let mut args = deploy_args(BAD, COMMIT_B);
    args.extend(["--timeout".to_string(), "2".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let out = ferry_in(dir.path(), &args).await;
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited: {:?}",
        started.elapsed()
    );
    assert!(
        err.contains("did not finish within 2s") && !err.contains("cannot pull image"),
        "no fail fast, the deadline ended it: {err}"
    );
    assert!(err.contains("which is serving again"), "{err}");
    assert_eq!(image_of(&fake), GOOD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_removed_from_the_manifest_is_pruned_after_a_successful_deploy_only() {
    let (fake, _cluster) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    lifecycle_project(dir.path(), &fake);
    let base = std::fs::read_to_string(k8s_yml()).unwrap();
    let admin = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: hello-admin\n  namespace: ${NAMESPACE}\nspec:\n  selector:\n    app.kubernetes.io/name: hello\n  ports:\n    - port: 9000\n      targetPort: http\n";
    let with_admin = dir.path().join("with-admin.yml");
    let without = dir.path().join("without.yml");
    std::fs::write(&with_admin, format!("{base}{admin}")).unwrap();
    std::fs::write(&without, &base).unwrap();
    // Not ferry's: made by hand, never part of the set.
    kubectl(
        &fake,
        &["create", "configmap", "not-ours", "--from-literal=a=b"],
    );
    let deploy = |manifest: &Path, image: &str, commit: &str, extra: &[&str]| {
        let mut args = deploy_args(image, commit);
        args.extend(["-f".to_string(), manifest.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let dir = dir.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ferry_in(&dir, &args).await
        }
    };
    let admin_service = "/api/v1/namespaces/default/services/hello-admin";

    let out = deploy(&with_admin, GOOD, COMMIT_A, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let id = kube_fake_label(&fake, admin_service);
    assert!(id.starts_with("applyset-") && id.ends_with("-v1"), "{id}");
    let parent = fake
        .get_json("/api/v1/namespaces/default/configmaps/ferry-set-hello")
        .expect("the ApplySet parent");
    assert_eq!(
        parent["metadata"]["labels"]["applyset.kubernetes.io/id"],
        id.as_str()
    );
    assert_eq!(
        parent["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"],
        "Deployment.apps,NetworkPolicy.networking.k8s.io,PodDisruptionBudget.policy,Service"
    );
    assert!(
        parent["metadata"]["annotations"]["applyset.kubernetes.io/tooling"]
            .as_str()
            .unwrap()
            .starts_with("ferry/")
    );
    // kubectl sees the members by the ApplySet label.
    let members = kubectl(
        &fake,
        &[
            "get",
            "svc,deploy",
            "-l",
            &format!("applyset.kubernetes.io/part-of={id}"),
            "-o",
            "name",
        ],
    );
    assert_eq!(
        members.lines().collect::<Vec<_>>(),
        [
            "service/hello",
            "service/hello-admin",
            "deployment.apps/hello"
        ],
        "{members}"
    );

    // The plan (a dry run) lists what would be deleted and deletes nothing.
    let out = deploy(&without, GOOD2, COMMIT_B, &["--dry-run"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("+++ deleted: no longer in the manifest (ApplySet ferry-set-hello)")
            && String::from_utf8_lossy(&out.stdout).contains("--- live Service/hello-admin"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(fake.get_json(admin_service).is_some());

    // A failed rollout prunes nothing.
    fake.inject(BAD, Fault::ImagePull);
    let out = deploy(&without, BAD, COMMIT_B, &[]).await;
    assert!(!out.status.success());
    assert!(
        fake.get_json(admin_service).is_some(),
        "kept after a failed deploy"
    );

    // A successful one deletes it, and nothing outside the set.
    let out = deploy(&without, GOOD2, COMMIT_B, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("deleted Service/hello-admin: no longer in the manifest"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.get_json(admin_service), None);
    assert!(
        fake.get_json("/api/v1/namespaces/default/services/hello")
            .is_some()
    );
    assert!(
        fake.get_json("/api/v1/namespaces/default/configmaps/not-ours")
            .is_some(),
        "outside the set: never deleted"
    );

    // kubectl recognises ferry's set: its own ApplySet prune reads the parent and, as the
    // convention says, leaves a set another tool manages alone.
    let out = std::process::Command::new("kubectl")
        .env("KUBECTL_APPLYSET", "true")
        .arg("--kubeconfig")
        .arg(fake.kubeconfig_path())
        .args([
            "apply",
            "--server-side",
            "--validate=false",
            "--prune",
            "--applyset=configmap/ferry-set-hello",
            "-n",
            "default",
            "-f",
        ])
        .arg(&with_admin)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("ApplySet parent object \"configmaps./ferry-set-hello\" already exists and is managed by tooling \"ferry\""),
        "{said}"
    );
    assert!(
        fake.get_json(admin_service).is_none()
            && fake
                .get_json("/api/v1/namespaces/default/configmaps/not-ours")
                .is_some()
    );

    // A set whose parent another tool owns is not ferry's to prune.
    kubectl(
        &fake,
        &[
            "annotate",
            "configmap",
            "ferry-set-hello",
            "--overwrite",
            "applyset.kubernetes.io/tooling=kubectl/v1.32",
        ],
    );
    let out = deploy(&without, GOOD, COMMIT_A, &[]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("belongs to \"kubectl/v1.32\", not ferry"),
        "{}",
        stderr(&out)
    );
}

fn kube_fake_label(fake: &FakeCluster, path: &str) -> String {
    fake.get_json(path).expect(path)["metadata"]["labels"]["applyset.kubernetes.io/part-of"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
