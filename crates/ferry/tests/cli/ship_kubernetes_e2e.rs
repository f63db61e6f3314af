//! `ferry ship --env <kubernetes env>` end to end: a real registry, the fake API server,
//! the real binary. A first ship, a second commit rolling forward, a broken image rolled back;
//! `ferry plan` pushing and applying nothing; the approval gate; the GKE context.
//!
//! The tests that build share one checkout and its release build (`support::checkout`), so
//! their names start with `e2e_`: nextest runs those one at a time.

use std::process::Command;

use crate::support::*;
use kube_fake::{FakeCluster, Fault, Options};

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
            "[service]\npackage = \"hello\"\nbinary = \"hello\"\nport = 8000\nready_path = \"/readyz\"\n\n[image]\nname = \"hello\"\ntag = \"commit\"\n\n[environments.e2e]\nkind = \"kubernetes\"\nrepository = \"{repository}\"\nkubeconfig = \"{}\"\nnamespace = \"default\"\nmanifest = \"k8s.yml\"\nvars = {{ REPLICAS = \"2\" }}\n{extra}",
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
    let fake = fast_cluster().await;
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
    let commit2 = second["commit"]["hash"].as_str().unwrap();
    assert!(
        stdout(&status).contains(&commit2[..12]),
        "the commit that runs after the automatic rollback, not the third: {}",
        stdout(&status)
    );

    // The history, kept in the cluster: all three ships, newest first.
    let out = ferry(
        &repo,
        &[
            "--config",
            "ferry.e2e.toml",
            "--output",
            "json",
            "history",
            "--env",
            "e2e",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let history = summary(&out);
    let rows: Vec<(&str, &str, &str, &str)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["commit"].as_str().unwrap(),
                r["image"].as_str().unwrap(),
                r["what"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let commit1 = first["commit"]["hash"].as_str().unwrap();
    let commit3 = third["commit"]["hash"].as_str().unwrap();
    let reference3 = format!("{repository}@{digest}");
    assert_eq!(
        rows,
        [
            (commit3, reference3.as_str(), "ship", "rolled_back"),
            (commit2, reference2.as_str(), "ship", "succeeded"),
            (commit1, reference.as_str(), "ship", "succeeded"),
        ]
    );

    // Back to the first commit: its digest in the pod template, the rollout complete, and
    // kubectl's rollout history agreeing with ferry's.
    let out = ferry(
        &repo,
        &[
            "--config",
            "ferry.e2e.toml",
            "rollback",
            "--env",
            "e2e",
            "--to",
            commit1,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let kubectl = |args: &[&str]| {
        stdout(&run_ok(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(fake.kubeconfig_path())
                .args(args),
        ))
    };
    assert_eq!(
        kubectl(&[
            "get",
            "deploy",
            "hello",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        reference
    );
    assert!(
        kubectl(&["rollout", "status", "deploy/hello", "--timeout=30s"])
            .contains("successfully rolled out")
    );
    let out = ferry(
        &repo,
        &[
            "--config",
            "ferry.e2e.toml",
            "--output",
            "json",
            "history",
            "--env",
            "e2e",
        ],
    );
    let history = summary(&out);
    let newest = &history["history"][0];
    assert_eq!(newest["what"], "rollback");
    assert_eq!(newest["commit"], commit1);
    assert_eq!(newest["image"], reference.as_str());
    let revision = newest["revision"].as_i64().unwrap().to_string();
    let shown = kubectl(&[
        "rollout",
        "history",
        "deploy/hello",
        &format!("--revision={revision}"),
    ]);
    assert!(
        shown.contains(&reference) && shown.contains(commit1),
        "{shown}"
    );
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
            "run `ferry credentials --env elsewhere` (it runs `gcloud container clusters get-credentials other --location us-central1 --project ferry-e2e --dns-endpoint`)"
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

/// A fake Google on loopback: the OAuth token endpoint a service-account key names, and
/// Secret Manager's `:access`, which wants that token.
async fn fake_google(secret: &'static str) -> String {
    use axum::http::{StatusCode, Uri};
    use base64::Engine as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(
        move |uri: Uri, headers: axum::http::HeaderMap| async move {
            let path = uri.path().to_string();
            if path == "/oauth2/token" {
                let body = serde_json::json!({"access_token": "fake-google-token", "expires_in": 3600, "token_type": "Bearer"});
                return (StatusCode::OK, body.to_string());
            }
            let authorized = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                == Some("Bearer fake-google-token");
            if !authorized {
                return (StatusCode::UNAUTHORIZED, r#"{"error":{"message":"no token"}}"#.into());
            }
            if path == "/v1/projects/ferry-e2e/secrets/api-key/versions/latest:access" {
                let data = base64::engine::general_purpose::STANDARD.encode(secret);
                return (StatusCode::OK, serde_json::json!({"payload": {"data": data}}).to_string());
            }
            (
                StatusCode::NOT_FOUND,
                format!(r#"{{"error":{{"message":"Secret [{path}] not found"}}}}"#),
            )
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_secrets_reach_the_pods_through_a_secret_roll_them_on_change_and_never_print() {
    use base64::Engine as _;
    require_tool("openssl", "apt-get install openssl");
    let repo = checkout();
    let registry = Registry::start();
    let fake = fast_cluster().await;
    let google = fake_google("sm-api-key-5f1e2d").await;
    // A service-account key whose token endpoint is the fake.
    let keys = tempfile::tempdir().unwrap();
    let pem = run_ok(Command::new("openssl").args([
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]));
    let key_path = keys.path().join("key.json");
    std::fs::write(
        &key_path,
        serde_json::json!({
            "type": "service_account", "project_id": "ferry-e2e", "private_key_id": "0",
            "private_key": String::from_utf8(pem.stdout).unwrap(),
            "client_email": "ci@ferry-e2e.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": format!("{google}/oauth2/token"),
        })
        .to_string(),
    )
    .unwrap();
    // The manifest hands the Secret to the container by the name ferry gives it.
    let manifest = std::fs::read_to_string(repo.join("k8s.yml")).unwrap().replace(
        "          env:\n",
        "          envFrom:\n            - secretRef:\n                name: ${SECRETS}\n          env:\n",
    );
    assert!(manifest.contains("${SECRETS}"));
    std::fs::write(repo.join("k8s.secrets.yml"), manifest).unwrap();
    write_e2e_config(
        &repo,
        &registry,
        &fake,
        "secrets = { DATABASE_URL = \"env:E2E_DATABASE_URL\", API_KEY = \"gcpsm://projects/ferry-e2e/secrets/api-key/versions/latest\" }\n",
    );
    let config = std::fs::read_to_string(repo.join("ferry.e2e.toml")).unwrap();
    std::fs::write(
        repo.join("ferry.e2e.toml"),
        config.replace("manifest = \"k8s.yml\"", "manifest = \"k8s.secrets.yml\""),
    )
    .unwrap();
    std::fs::write(
        repo.join(".git/info/exclude"),
        "ferry.e2e.toml\nk8s.secrets.yml\n",
    )
    .unwrap();
    let ship = |db_url: Option<&str>, command: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args([
            "--config",
            "ferry.e2e.toml",
            "--output",
            "json",
            "-vv",
            command,
            "--env",
            "e2e",
            "--skip-tests",
        ])
        .current_dir(&repo)
        .env("CARGO_TARGET_DIR", workspace().join("target/e2e/target"))
        .env("GOOGLE_APPLICATION_CREDENTIALS", &key_path)
        .env("HOME", keys.path())
        .env("FERRY_SECRETMANAGER_ENDPOINT", &google)
        .env_remove("E2E_DATABASE_URL")
        .stdin(std::process::Stdio::null());
        if let Some(url) = db_url {
            cmd.env("E2E_DATABASE_URL", url);
        }
        cmd.output().unwrap()
    };
    let values = [
        "postgres://app:pa55-first@db/app",
        "postgres://app:pa55-second@db/app",
        "sm-api-key-5f1e2d",
    ];
    let assert_silent = |out: &std::process::Output| {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for v in values {
            let b64 = base64::engine::general_purpose::STANDARD.encode(v);
            assert!(
                !all.contains(v) && !all.contains(&b64),
                "a secret value was printed:\n{all}"
            );
        }
    };

    // A missing secret stops everything before anything is built or applied.
    let out = ship(None, "ship");
    assert!(!out.status.success(), "{}", stderr(&out));
    assert_silent(&out);
    let err = stderr(&out);
    assert!(
        err.contains("secret DATABASE_URL: env:E2E_DATABASE_URL is not set"),
        "{err}"
    );
    assert_eq!(summary(&out)["failed_stage"], "secrets");
    assert!(
        fake.get_json("/apis/apps/v1/namespaces/default/deployments/hello")
            .is_none(),
        "nothing applied"
    );

    // Both sources resolve; the Secret holds them; the pods get it; nothing prints them.
    let out = ship(Some(values[0]), "ship");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_silent(&out);
    assert_matches_schema(&out);
    let secret = fake
        .get_json("/api/v1/namespaces/default/secrets/hello-secrets")
        .expect("the Secret");
    let decode = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(secret["data"][k].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode("DATABASE_URL"), values[0]);
    assert_eq!(decode("API_KEY"), values[2]);
    let deployed = fake
        .get_json("/apis/apps/v1/namespaces/default/deployments/hello")
        .unwrap();
    let template = &deployed["spec"]["template"];
    assert_eq!(
        template["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "hello-secrets"
    );
    let first_checksum = template["metadata"]["annotations"]["ferry.dev/secrets-checksum"]
        .as_str()
        .unwrap()
        .to_string();

    // The plan names the Secret's keys, never their values.
    let out = ship(Some(values[1]), "plan");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_silent(&out);

    // A changed value rolls the pods: a new template, a new revision.
    let out = ship(Some(values[1]), "ship");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_silent(&out);
    let deployed = fake
        .get_json("/apis/apps/v1/namespaces/default/deployments/hello")
        .unwrap();
    let checksum =
        deployed["spec"]["template"]["metadata"]["annotations"]["ferry.dev/secrets-checksum"]
            .as_str()
            .unwrap();
    assert_ne!(checksum, first_checksum, "the pod template changed");
    assert_eq!(
        deployed["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );

    // No file ferry wrote holds a value.
    for file in files_under(&repo.join("target")) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for v in values {
            let b64 = base64::engine::general_purpose::STANDARD.encode(v);
            assert!(
                !text.contains(v) && !text.contains(&b64),
                "{} holds a secret",
                file.display()
            );
        }
    }
}
