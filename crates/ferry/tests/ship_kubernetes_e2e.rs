//! `ferry ship --env <kubernetes env>` end to end: a real registry, the fake API server,
//! the real binary. A first ship, a second commit rolling forward, a broken image rolled back;
//! `ferry plan` pushing and applying nothing; the approval gate; the GKE context.
//!
//! The tests that build share one checkout and its release build (`support::checkout`), so
//! their names start with `e2e_`: nextest runs those one at a time.

mod support;

use std::process::Command;

use kube_fake::{FakeCluster, Fault, Options};
use support::*;

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = run_ok(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com"),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn summary(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON summary: {e}\n{}", stderr(out)))
}

/// `ferry.e2e.toml` in the checkout (git ignores it, so the tree stays clean): an `e2e`
/// environment pushing to `registry` and deploying to `fake`, plus `extra` TOML.
fn write_e2e_config(
    repo: &std::path::Path,
    registry: &Registry,
    fake: &FakeCluster,
    extra: &str,
) -> String {
    let repository = format!("{}/ferry/hello", registry.host());
    std::fs::write(
        repo.join("ferry.e2e.toml"),
        format!(
            "[image]\nname = \"hello\"\ntag = \"commit\"\n\n[environments.e2e]\nkind = \"kubernetes\"\nrepository = \"{repository}\"\nkubeconfig = \"{}\"\nnamespace = \"default\"\nmanifest = \"k8s.yml\"\nvars = {{ REPLICAS = \"2\" }}\n{extra}",
            fake.kubeconfig_path().display()
        ),
    )
    .unwrap();
    std::fs::write(repo.join(".git/info/exclude"), "ferry.e2e.toml\n").unwrap();
    repository
}

/// The registry's tags for `ferry/hello`; none when the repository does not exist.
fn registry_tags(registry: &Registry) -> Vec<String> {
    let (status, body) = http_get(registry.port, "/v2/ferry/hello/tags/list").unwrap();
    match status {
        404 => {
            assert!(body.contains("NAME_UNKNOWN"), "{body}");
            Vec::new()
        }
        200 => serde_json::from_str::<serde_json::Value>(&body).unwrap()["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        other => panic!("GET tags/list answered {other}: {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_ship_to_kubernetes_pushes_deploys_rolls_forward_and_rolls_back() {
    let repo = checkout();
    let registry = Registry::start();
    let fake = FakeCluster::start(Options {
        clock_scale: 60.0,
        ..Options::default()
    })
    .await
    .unwrap();
    let repository = write_e2e_config(&repo, &registry, &fake, "");
    let ship = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            "ferry.e2e.toml",
            "--output",
            "json",
            "ship",
            "--env",
            "e2e",
            "--skip-tests",
        ];
        args.extend_from_slice(extra);
        ferry(&repo, &args)
    };

    // First ship.
    let out = ship(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_matches_schema(&out);
    let first = summary(&out);
    assert_eq!(first["outcome"], "succeeded");
    assert_eq!(first["rollout"]["outcome"], "succeeded");
    assert_eq!(
        first["rollout"]["deployments"],
        serde_json::json!(["hello"])
    );
    let stages: Vec<&str> = first["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "lock", "test", "build", "image", "push", "render", "deploy", "verify"
        ]
    );
    let reference = first["image"]["reference"].as_str().unwrap().to_string();
    assert!(
        reference.starts_with(&format!("{repository}@sha256:")),
        "{reference}"
    );
    let deployed = fake
        .get_json("/apis/apps/v1/namespaces/default/deployments/hello")
        .unwrap();
    assert_eq!(
        deployed["spec"]["template"]["spec"]["containers"][0]["image"],
        reference.as_str(),
        "pinned by digest"
    );
    assert_eq!(
        deployed["metadata"]["annotations"]["ferry.dev/commit"],
        first["commit"]["hash"]
    );

    // A second commit rolls forward.
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "second"]);
    let out = ship(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = summary(&out);
    let reference2 = second["image"]["reference"].as_str().unwrap().to_string();
    assert_ne!(reference2, reference);
    let deployed = fake
        .get_json("/apis/apps/v1/namespaces/default/deployments/hello")
        .unwrap();
    assert_eq!(
        deployed["spec"]["template"]["spec"]["containers"][0]["image"],
        reference2.as_str()
    );
    assert_eq!(
        deployed["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );

    // A third commit whose image the nodes cannot pull: fail fast, roll back, exit non-zero.
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "third"]);
    let built = ferry(&repo, &["--config", "ferry.e2e.toml", "build"]);
    let digest = stdout(&built).rsplit_once('@').unwrap().1.to_string();
    fake.inject(&format!("{repository}@{digest}"), Fault::ImagePull);
    let out = ship(&[]);
    assert!(!out.status.success());
    assert_matches_schema(&out);
    let third = summary(&out);
    assert_eq!(third["outcome"], "rolled_back");
    assert_eq!(third["failed_stage"], "deploy");
    assert_eq!(third["rollout"]["outcome"], "rolled_back");
    assert_eq!(third["rollout"]["failure"]["reason"], "image_pull");
    assert_eq!(third["rollout"]["restored"]["revision"], 2);
    let err = stderr(&out);
    assert!(
        err.contains("cannot pull image") && err.contains("which is serving again"),
        "{err}"
    );
    let deployed = fake
        .get_json("/apis/apps/v1/namespaces/default/deployments/hello")
        .unwrap();
    assert_eq!(
        deployed["spec"]["template"]["spec"]["containers"][0]["image"],
        reference2.as_str(),
        "the second commit serves again"
    );

    // Status shows it.
    let status = ferry(
        &repo,
        &["--config", "ferry.e2e.toml", "status", "--env", "e2e"],
    );
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stdout(&status).contains(&reference2), "{}", stdout(&status));
}

/// `ferry plan`: the server-side dry run's diff on stdout, `--var` applied; nothing pushed to
/// the registry, nothing applied to the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_plan_prints_the_dry_run_diff_and_pushes_and_applies_nothing() {
    let repo = checkout();
    let registry = Registry::start();
    let fake = FakeCluster::start(Options::default()).await.unwrap();
    let repository = write_e2e_config(&repo, &registry, &fake, "");

    let out = ferry(
        &repo,
        &[
            "--config",
            "ferry.e2e.toml",
            "plan",
            "--env",
            "e2e",
            "--skip-tests",
            "--var",
            "REPLICAS=3",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let diff = stdout(&out);
    assert!(
        diff.contains("+++ applied Deployment/hello") && diff.contains("+++ applied Service/hello"),
        "a diff per object:\n{diff}"
    );
    assert!(
        diff.contains(&format!("{repository}@sha256:")),
        "the image that would be pushed, pinned by digest:\n{diff}"
    );
    assert!(
        diff.contains("+  replicas: 3"),
        "--var wins over vars:\n{diff}"
    );
    let err = stderr(&out);
    assert!(err.contains("plan: would push"), "{err}");
    assert!(err.contains("dry-run"), "{err}");

    assert_eq!(
        registry_tags(&registry),
        Vec::<String>::new(),
        "nothing pushed"
    );
    for object in [
        "/apis/apps/v1/namespaces/default/deployments/hello",
        "/api/v1/namespaces/default/services/hello",
    ] {
        assert_eq!(fake.get_json(object), None, "{object} was applied");
    }

    // The same plan as JSON: valid against the schema, push skipped, dry run done.
    let out = ferry(
        &repo,
        &[
            "--config",
            "ferry.e2e.toml",
            "--output",
            "json",
            "plan",
            "--env",
            "e2e",
            "--skip-tests",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_matches_schema(&out);
    let plan = summary(&out);
    let stages: Vec<(&str, &str)> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stages,
        [
            ("test", "skipped"),
            ("build", "ok"),
            ("image", "ok"),
            ("push", "skipped"),
            ("render", "ok"),
            ("dry-run", "ok")
        ]
    );
    assert_eq!(registry_tags(&registry), Vec::<String>::new());
}

/// An environment with `approval = true`: without --approve, `ferry ship` stops before it
/// builds or pushes anything and says to add --approve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_ship_to_an_approval_environment_without_approve_stops_before_push() {
    let repo = checkout();
    let registry = Registry::start();
    let fake = FakeCluster::start(Options::default()).await.unwrap();
    write_e2e_config(&repo, &registry, &fake, "approval = true\n");

    let out = ferry(
        &repo,
        &[
            "--config",
            "ferry.e2e.toml",
            "--output",
            "json",
            "ship",
            "--env",
            "e2e",
            "--skip-tests",
        ],
    );
    assert!(!out.status.success());
    assert_matches_schema(&out);
    let err = stderr(&out);
    assert!(
        err.contains("ferry ship failed at the approval stage"),
        "{err}"
    );
    assert!(err.contains("re-run with --approve"), "{err}");
    let gated = summary(&out);
    assert_eq!(gated["failed_stage"], "approval");
    assert_eq!(
        gated["stages"].as_array().unwrap().len(),
        1,
        "nothing after the gate ran: {gated}"
    );
    assert_eq!(gated["image"], serde_json::Value::Null);
    assert_eq!(
        registry_tags(&registry),
        Vec::<String>::new(),
        "nothing pushed"
    );
    assert_eq!(
        fake.get_json("/apis/apps/v1/namespaces/default/deployments/hello"),
        None
    );
}

/// A GKE environment without `context` talks to the cluster through the context gcloud
/// writes (`gke_PROJECT_LOCATION_CLUSTER`), and `ferry status` names the cluster; without that
/// context in the kubeconfig, the error says which gcloud command adds it. No build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gke_environments_use_the_gcloud_context_and_say_how_to_get_it() {
    let fake = FakeCluster::start(Options::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The fake's kubeconfig with its context named as gcloud would, and a dead current context.
    let kubeconfig = std::fs::read_to_string(fake.kubeconfig_path())
        .unwrap()
        .replace(
            "- name: fake\n  context:",
            "- name: gke_ferry-e2e_europe-west1_hello\n  context:",
        )
        .replace("current-context: fake", "current-context: gone");
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        "[environments.here]\nkind = \"kubernetes\"\nrepository = \"127.0.0.1:1/hello\"\nkubeconfig = \"kubeconfig\"\ngke = { project = \"ferry-e2e\", location = \"europe-west1\", cluster = \"hello\" }\n\n[environments.elsewhere]\nkind = \"kubernetes\"\nrepository = \"127.0.0.1:1/hello\"\nkubeconfig = \"kubeconfig\"\ngke = { project = \"ferry-e2e\", location = \"us-central1\", cluster = \"other\" }\n",
    )
    .unwrap();

    let out = ferry(dir.path(), &["status", "--env", "here"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = stdout(&out);
    assert!(
        status.starts_with(
            "here: GKE cluster hello (project ferry-e2e, location europe-west1), context gke_ferry-e2e_europe-west1_hello, namespace default"
        ),
        "{status}"
    );

    let out = ferry(dir.path(), &["status", "--env", "elsewhere"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no context `gke_ferry-e2e_us-central1_other`"),
        "{err}"
    );
    assert!(
        err.contains(
            "run `gcloud container clusters get-credentials other --location us-central1 --project ferry-e2e`"
        ),
        "{err}"
    );
    assert!(
        err.contains("contexts there: gke_ferry-e2e_europe-west1_hello"),
        "{err}"
    );

    // As JSON: the cluster and its context beside the Deployments.
    let out = ferry(dir.path(), &["--output", "json", "status", "--env", "here"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["gke"]["cluster"], "hello");
    assert_eq!(doc["context"], "gke_ferry-e2e_europe-west1_hello");
    assert_eq!(doc["deployments"], serde_json::json!([]));
}
