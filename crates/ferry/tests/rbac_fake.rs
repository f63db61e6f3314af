//! `ferry rbac` prints the least a deploy identity needs, and it is enough: against the fake
//! API server enforcing RBAC, ship (of examples/shelf, to a real registry), deploy, status,
//! history, rollback, lock, unlock and a prune pass with exactly the printed Role; with any one
//! rule taken away, ferry fails naming the verb, resource and namespace it lacked.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kube_fake::rbac::{Binding, Policy, Rule};
use kube_fake::{FakeCluster, Fault, Options};

const TOKEN: &str = "deployer-token";
const USER: &str = "deploy@ferry-e2e.iam.gserviceaccount.com";
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

/// `ferry ARGS` in `dir` with `commit` as COMMIT, off the runtime (the fake keeps serving).
async fn run(dir: &Path, args: &[&str], commit: &str) -> Output {
    let (dir, commit) = (dir.to_path_buf(), commit.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command
            .args(&args)
            .current_dir(&dir)
            .env("FERRY_OUTPUT", "plain")
            .env("COMMIT", &commit)
            .env(
                "CARGO_TARGET_DIR",
                support::workspace().join("target/e2e/target"),
            )
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
    })
    .await
    .unwrap()
}

const COMMIT_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const COMMIT_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const IMAGE_B: &str = "registry.example/hello@sha256:3333333333333333333333333333333333333333333333333333333333333333";

/// examples/shelf in a git repository, with the repository's k8s.yml and an environment `k`
/// (namespace `hello`) pushing to `registry` and deploying through `kubeconfig.yaml` (git
/// ignores it: each fake cluster writes its own there).
fn shelf_project(registry: &support::Registry) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&support::workspace().join("examples/shelf"), dir.path());
    let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s.yml");
    std::fs::copy(k8s, dir.path().join("k8s.yml")).unwrap();
    std::fs::write(dir.path().join(".gitignore"), "/target\n/kubeconfig.yaml\n").unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        format!(
            "[environments.k]\nkind = \"kubernetes\"\nrepository = \"{}/ferry/shelf\"\nkubeconfig = \"kubeconfig.yaml\"\nnamespace = \"hello\"\nvars = {{ REPLICAS = \"2\" }}\n",
            registry.host()
        ),
    )
    .unwrap();
    support::git_in(dir.path(), &["init", "-q"]);
    support::git_in(dir.path(), &["add", "-A"]);
    support::git_in(dir.path(), &["commit", "-q", "-m", "shelf"]);
    dir
}

/// What a deploy identity does with ferry, as it: ship (build, push, apply, follow), deploy
/// another image, status, history, a rollback to the shipped revision, a manual lock and
/// unlock, and a deploy whose manifest dropped the PodDisruptionBudget (pruned). The first
/// step that fails gives its stderr.
async fn lifecycle(fake: &FakeCluster, project: &Path) -> Result<(), String> {
    std::fs::copy(fake.kubeconfig_path(), project.join("kubeconfig.yaml")).unwrap();
    support::git_in(project, &["checkout", "-q", "--", "k8s.yml"]);
    let d = project;
    let steps: [(&[&str], &str); 7] = [
        (&["ship", "--env", "k", "--skip-tests"], COMMIT_A),
        (&["deploy", "--env", "k", "--image", IMAGE_B], COMMIT_B),
        (&["status", "--env", "k"], COMMIT_B),
        (&["history", "--env", "k"], COMMIT_B),
        (&["rollback", "--env", "k", "--to", "1"], COMMIT_B),
        (
            &["lock", "--env", "k", "-m", "freeze for the release"],
            COMMIT_B,
        ),
        (&["unlock", "--env", "k"], COMMIT_B),
    ];
    for (args, commit) in steps {
        let out = run(d, args, commit).await;
        if !out.status.success() {
            return Err(format!("ferry {}: {}", args.join(" "), stderr(&out)));
        }
    }
    // Prune: the budget leaves the manifest, so it leaves the cluster.
    let manifest = std::fs::read_to_string(d.join("k8s.yml")).unwrap();
    let kept: Vec<&str> = manifest
        .split("\n---\n")
        .filter(|doc| !doc.contains("kind: PodDisruptionBudget"))
        .collect();
    assert!(
        kept.len() < manifest.split("\n---\n").count(),
        "the manifest has a budget"
    );
    std::fs::write(d.join("k8s.yml"), kept.join("\n---\n")).unwrap();
    let out = run(d, &["deploy", "--env", "k", "--image", IMAGE_B], COMMIT_B).await;
    support::git_in(project, &["checkout", "-q", "--", "k8s.yml"]);
    if !out.status.success() {
        return Err(format!("ferry deploy (prune): {}", stderr(&out)));
    }
    assert!(
        fake.get_json("/apis/policy/v1/namespaces/hello/poddisruptionbudgets/hello")
            .is_none(),
        "the budget was pruned"
    );
    Ok(())
}

/// A deploy of an image that crash-loops: fails, with the crash report.
async fn crash(fake: &FakeCluster) -> Output {
    fake.inject(
        CRASHING,
        Fault::CrashLoop {
            log: "panicked at src/main.rs".into(),
            exit_code: 1,
        },
    );
    let dir = project(fake.kubeconfig_path().to_str().unwrap());
    run(
        dir.path(),
        &["deploy", "--env", "k", "--image", CRASHING],
        COMMIT_A,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_printed_role_is_enough_and_every_rule_of_it_is_needed() {
    let registry = support::Registry::start();
    let project = shelf_project(&registry);
    let project = project.path();
    let role = printed_role();
    let rules = Rule::from_role(&role);
    assert!(rules.len() >= 6, "{role}");

    // Exactly the printed Role: the whole lifecycle passes, and a crash report is complete.
    let fake = fake_with(rules.clone()).await;
    lifecycle(&fake, project)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let crashed = crash(&fake).await;
    assert!(!crashed.status.success());
    assert!(
        !stderr(&crashed).contains("forbidden"),
        "{}",
        stderr(&crashed)
    );

    // Nothing at all: the first request is refused with the API server's words.
    let fake = fake_with(Vec::new()).await;
    let err = lifecycle(&fake, project).await.unwrap_err();
    assert!(err.contains("is forbidden"), "{err}");
    assert!(err.contains(&format!("User \"{USER}\" cannot")), "{err}");
    assert!(err.contains("in the namespace \"hello\""), "{err}");

    // Each rule in turn taken away: ferry fails, naming what it lacked.
    for (i, rule) in rules.iter().enumerate() {
        let mut fewer = rules.clone();
        fewer.remove(i);
        let fake = fake_with(fewer).await;
        let err = match lifecycle(&fake, project).await {
            Err(err) => err,
            // Read only when a rollout fails (its events and log): the crash report names
            // the permission it lacked.
            Ok(()) => stderr(&crash(&fake).await),
        };
        let resource = &rule.resources[0];
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
    }
}
