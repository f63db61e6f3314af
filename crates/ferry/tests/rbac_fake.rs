//! `ferry rbac` prints the least a deploy identity needs, and it is enough: against the fake
//! API server enforcing RBAC, `ferry deploy` and `ferry status` pass with exactly the printed
//! Role; with any one rule taken away, ferry fails naming the verb, resource and namespace.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kube_fake::rbac::{Binding, Policy, Rule};
use kube_fake::{FakeCluster, Fault, Options};

const TOKEN: &str = "deployer-token";
const USER: &str = "deploy@ferry-e2e.iam.gserviceaccount.com";
const IMAGE: &str = "registry.example/hello@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const CRASHING: &str = "registry.example/hello@sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn ferry(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .args(args)
        .current_dir(dir)
        .env("FERRY_OUTPUT", "plain")
        .env("COMMIT", "0123456789abcdef0123456789abcdef01234567")
        .stdin(Stdio::null());
    for name in [
        "FERRY_ENV",
        "FERRY_CONFIG",
        "KUBECONFIG",
        "FERRY_NAMESPACE",
        "FERRY_CONTEXT",
    ] {
        command.env_remove(name);
    }
    command.output().expect("run ferry")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A project with the repository's k8s.yml and a kubernetes environment `k` in namespace
/// `hello` using `kubeconfig`.
fn project(kubeconfig: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s.yml");
    std::fs::copy(k8s, dir.path().join("k8s.yml")).unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        format!(
            "[image]\nname = \"hello\"\n\n[environments.k]\nkind = \"kubernetes\"\nrepository = \"registry.example/hello\"\nkubeconfig = {kubeconfig:?}\nnamespace = \"hello\"\nvars = {{ REPLICAS = \"2\" }}\n"
        ),
    )
    .unwrap();
    dir
}

/// The Role `ferry rbac` prints, as JSON.
fn printed_role() -> serde_json::Value {
    let dir = project("unused");
    let out = ferry(dir.path(), &["rbac", "--env", "k", "--user", USER]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .skip(1)
        .map(|doc| serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{e}\n{doc}")))
        .collect();
    assert_eq!(docs[1]["kind"], "RoleBinding");
    assert_eq!(docs[1]["subjects"][0]["name"], USER);
    assert_eq!(docs[1]["metadata"]["namespace"], "hello");
    assert!(!text.contains('*'), "no wildcards:\n{text}");
    docs[0].clone()
}

async fn fake_with(rules: Vec<Rule>) -> FakeCluster {
    FakeCluster::start(Options {
        clock_scale: 60.0,
        bearer_token: Some(TOKEN.into()),
        rbac: Some(Policy {
            bindings: vec![Binding {
                token: TOKEN.into(),
                user: USER.into(),
                namespace: "hello".into(),
                rules,
            }],
        }),
        ..Options::default()
    })
    .await
    .inspect(|fake| fake.create_namespace("hello"))
    .unwrap()
}

/// deploy, then status, as the deploy identity.
async fn deploy_and_status(fake: &FakeCluster) -> (Output, Option<Output>) {
    deploy_image(fake, IMAGE).await
}

async fn deploy_image(fake: &FakeCluster, image: &'static str) -> (Output, Option<Output>) {
    let dir = project(fake.kubeconfig_path().to_str().unwrap());
    let path = dir.path().to_path_buf();
    let deploy = tokio::task::spawn_blocking(move || {
        ferry(&path, &["deploy", "--env", "k", "--image", image])
    })
    .await
    .unwrap();
    if !deploy.status.success() {
        return (deploy, None);
    }
    let path = dir.path().to_path_buf();
    let status = tokio::task::spawn_blocking(move || ferry(&path, &["status", "--env", "k"]))
        .await
        .unwrap();
    (deploy, Some(status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_role_is_enough_and_every_rule_of_it_is_needed() {
    let role = printed_role();
    let rules = Rule::from_role(&role);
    assert!(rules.len() >= 6, "{role}");

    // Exactly the printed Role: deploy and status pass.
    let fake = fake_with(rules.clone()).await;
    let (deploy, status) = deploy_and_status(&fake).await;
    assert!(deploy.status.success(), "{}", stderr(&deploy));
    let status = status.unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(String::from_utf8_lossy(&status.stdout).contains("hello"));

    // Nothing at all: the first request is refused with the API server's words.
    let fake = fake_with(Vec::new()).await;
    let (deploy, _) = deploy_and_status(&fake).await;
    assert!(!deploy.status.success());
    let err = stderr(&deploy);
    assert!(err.contains("is forbidden"), "{err}");
    assert!(err.contains(&format!("User \"{USER}\" cannot")), "{err}");
    assert!(err.contains("in the namespace \"hello\""), "{err}");

    // Each rule in turn taken away: ferry fails, naming what it lacked.
    let mut needed = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut fewer = rules.clone();
        fewer.remove(i);
        let fake = fake_with(fewer).await;
        let (deploy, status) = deploy_and_status(&fake).await;
        let mut failed = match &status {
            None => Some(stderr(&deploy)),
            Some(s) if !s.status.success() => Some(stderr(s)),
            Some(_) => None,
        };
        if failed.is_none() {
            // Read only when a rollout fails (the crash report's events and log): a crashing
            // image shows the missing permission in the report.
            fake.inject(
                CRASHING,
                Fault::CrashLoop {
                    log: "panicked at src/main.rs".into(),
                    exit_code: 1,
                },
            );
            let (deploy, _) = deploy_image(&fake, CRASHING).await;
            assert!(!deploy.status.success(), "the crashing image fails");
            failed = Some(stderr(&deploy));
        }
        let resource = &rule.resources[0];
        match failed {
            Some(err) => {
                assert!(
                    err.contains(&format!("resource \"{resource}\""))
                        && err.contains("in the namespace \"hello\""),
                    "without {resource}: {err}"
                );
                assert!(
                    rule.verbs
                        .iter()
                        .any(|v| err.contains(&format!("cannot {v} resource"))),
                    "without {resource} {:?}: {err}",
                    rule.verbs
                );
                needed.push(resource.clone());
            }
            None => panic!(
                "ferry deploy and status passed without the rule for {resource}: it is not needed, or not checked"
            ),
        }
    }
    assert_eq!(needed.len(), rules.len());
}
