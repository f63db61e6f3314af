//! `ferry rbac` prints the least a deploy identity needs, and it is enough: against the fake
//! API server enforcing RBAC, ship (of examples/shelf, to a real registry), deploy, status,
//! history, rollback, lock, unlock and a prune pass with exactly the printed Role; with any one
//! rule taken away, ferry fails naming the verb, resource and namespace it lacked.

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
                crate::support::workspace().join("target/e2e/target"),
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
fn shelf_project(registry: &crate::support::Registry) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::support::copy_tree(
        &crate::support::workspace().join("examples/shelf"),
        dir.path(),
    );
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
    crate::support::git_in(dir.path(), &["init", "-q"]);
    crate::support::git_in(dir.path(), &["add", "-A"]);
    crate::support::git_in(dir.path(), &["commit", "-q", "-m", "shelf"]);
    dir
}

/// What a deploy identity does with ferry, as it: ship (build, push, apply, follow), deploy
/// another image, status, history, a rollback to the shipped revision, a manual lock and
/// unlock, and a deploy whose manifest dropped the PodDisruptionBudget (pruned). The first
/// step that fails gives its stderr.
async fn lifecycle(fake: &FakeCluster, project: &Path) -> Result<(), String> {
    std::fs::copy(fake.kubeconfig_path(), project.join("kubeconfig.yaml")).unwrap();
    crate::support::git_in(project, &["checkout", "-q", "--", "k8s.yml"]);
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
    crate::support::git_in(project, &["checkout", "-q", "--", "k8s.yml"]);
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
    let registry = crate::support::Registry::start();
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

const STAGING_TOKEN: &str = "staging-deployer-token";
const STAGING_USER: &str = "ferry-ci@ferry-staging.iam.gserviceaccount.com";
/// Production's deploy account: it deploys production and only reads staging.
const PRODUCTION_TOKEN: &str = "production-deployer-token";
const PRODUCTION_USER: &str = "ferry-ci@ferry-production.iam.gserviceaccount.com";

/// A project with environments `staging` and `production` (namespaces of those names, each
/// with its own repository in `registry`), each reaching the cluster through its own
/// kubeconfig file (`staging.yaml`, `production.yaml`), so a test decides whose token each
/// environment is reached with.
fn promote_project(registry: &crate::support::Registry) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s.yml");
    let env = |name: &str| {
        format!(
            "[environments.{name}]\nkind = \"kubernetes\"\nrepository = \"{}/ferry/{name}-hello\"\nkubeconfig = \"{name}.yaml\"\nnamespace = \"{name}\"\nmanifest = {:?}\nvars = {{ REPLICAS = \"2\" }}\n\n",
            registry.host(),
            manifest.display().to_string()
        )
    };
    std::fs::write(
        dir.path().join("ferry.toml"),
        format!(
            "[image]\nname = \"hello\"\n\n{}{}",
            env("staging"),
            env("production")
        ),
    )
    .unwrap();
    dir
}

/// The Role and RoleBinding `ferry ARGS` prints (`ferry rbac …`), as JSON.
fn printed(dir: &Path, args: &[&str]) -> (serde_json::Value, serde_json::Value) {
    let out = ferry(dir, args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('*'), "no wildcards:\n{text}");
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .skip(1)
        .map(|doc| serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{e}\n{doc}")))
        .collect();
    assert_eq!(docs.len(), 2, "{text}");
    (docs[0].clone(), docs[1].clone())
}

/// One fake cluster holding both namespaces: staging's deploy account has the deploy Role in
/// staging; production's has the deploy Role in production and `reader` in staging.
async fn two_namespace_fake(
    staging: Vec<Rule>,
    production: Vec<Rule>,
    reader: Vec<Rule>,
) -> FakeCluster {
    let binding = |token: &str, user: &str, namespace: &str, rules: Vec<Rule>| Binding {
        token: token.into(),
        user: user.into(),
        namespace: namespace.into(),
        rules,
    };
    let fake = FakeCluster::start(Options {
        clock_scale: 60.0,
        bearer_token: Some(STAGING_TOKEN.into()),
        rbac: Some(Policy {
            bindings: vec![
                binding(STAGING_TOKEN, STAGING_USER, "staging", staging),
                binding(PRODUCTION_TOKEN, PRODUCTION_USER, "production", production),
                binding(PRODUCTION_TOKEN, PRODUCTION_USER, "staging", reader),
            ],
        }),
        ..Options::default()
    })
    .await
    .unwrap();
    fake.create_namespace("staging");
    fake.create_namespace("production");
    fake
}

/// Writes `dir/NAME.yaml`: the fake's kubeconfig carrying `token`.
fn kubeconfig_as(fake: &FakeCluster, dir: &Path, name: &str, token: &str) {
    let text = std::fs::read_to_string(fake.kubeconfig_path()).unwrap();
    assert!(text.contains(STAGING_TOKEN), "{text}");
    std::fs::write(
        dir.join(format!("{name}.yaml")),
        text.replace(STAGING_TOKEN, token),
    )
    .unwrap();
}

/// Staging runs commit B, after commit A (both pushed, not built, to its repository), deployed
/// by staging's own account. Then production's CI reaches both namespaces as itself: promote
/// the earlier revision (--commit A), then the running one. The first promote that fails
/// gives its stderr.
async fn promote_as_production(
    fake: &FakeCluster,
    dir: &Path,
    registry: &crate::support::Registry,
) -> Result<(), String> {
    let host = registry.host();
    kubeconfig_as(fake, dir, "staging", STAGING_TOKEN);
    kubeconfig_as(fake, dir, "production", PRODUCTION_TOKEN);
    for (layer, commit) in [(&b"layer a"[..], COMMIT_A), (&b"layer b"[..], COMMIT_B)] {
        let digest = crate::support::push_small_image(&host, "ferry/staging-hello", layer).await;
        let image = format!("{host}/ferry/staging-hello@{digest}");
        let out = run(
            dir,
            &["deploy", "--env", "staging", "--image", &image],
            commit,
        )
        .await;
        assert!(
            out.status.success(),
            "staging's own deploy: {}",
            stderr(&out)
        );
    }
    kubeconfig_as(fake, dir, "staging", PRODUCTION_TOKEN);
    let promotes: [&[&str]; 2] = [
        &[
            "promote",
            "--from",
            "staging",
            "--to",
            "production",
            "--commit",
            COMMIT_A,
        ],
        &["promote", "--from", "staging", "--to", "production"],
    ];
    for args in promotes {
        let out = run(dir, args, COMMIT_B).await;
        if !out.status.success() {
            return Err(format!("ferry {}: {}", args.join(" "), stderr(&out)));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_promote_reads_the_source_with_exactly_the_printed_read_only_role_and_cannot_write_it()
{
    let registry = crate::support::Registry::start();
    let project = promote_project(&registry);
    let dir = project.path();
    let (staging_role, _) = printed(dir, &["rbac", "--env", "staging", "--user", STAGING_USER]);
    let (production_role, _) = printed(
        dir,
        &["rbac", "--env", "production", "--user", PRODUCTION_USER],
    );
    let (reader_role, reader_binding) = printed(
        dir,
        &[
            "rbac",
            "--env",
            "staging",
            "--user",
            PRODUCTION_USER,
            "--promote-source",
        ],
    );
    assert_eq!(reader_binding["kind"], "RoleBinding");
    assert_eq!(reader_binding["subjects"][0]["name"], PRODUCTION_USER);
    assert_eq!(reader_binding["metadata"]["namespace"], "staging");
    assert_eq!(
        reader_binding["roleRef"]["name"],
        reader_role["metadata"]["name"]
    );
    assert_eq!(reader_role["metadata"]["namespace"], "staging");
    assert_ne!(
        reader_role["metadata"]["name"], staging_role["metadata"]["name"],
        "the reader's Role sits beside staging's own deploy Role"
    );
    let readers = Rule::from_role(&reader_role);
    for rule in &readers {
        assert!(
            rule.verbs.iter().all(|v| v == "get" || v == "list"),
            "read-only: {rule:?}"
        );
    }
    let (staging, production) = (
        Rule::from_role(&staging_role),
        Rule::from_role(&production_role),
    );

    // Exactly the printed read-only Role: both promotes pass, production runs staging's
    // digest, and staging is untouched.
    let fake = two_namespace_fake(staging.clone(), production.clone(), readers.clone()).await;
    promote_as_production(&fake, dir, &registry)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let image = |namespace: &str| {
        fake.get_json(&format!(
            "/apis/apps/v1/namespaces/{namespace}/deployments/hello"
        ))
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (staged, promoted) = (image("staging"), image("production"));
    assert_eq!(
        staged.rsplit_once('@').map(|(_, d)| d.to_string()),
        promoted.rsplit_once('@').map(|(_, d)| d.to_string()),
        "staging runs {staged}, production {promoted}"
    );
    assert!(promoted.contains("/ferry/production-hello@"), "{promoted}");

    // The reader cannot change the source: a deploy, a lock and a rollback of staging with
    // production's identity are each refused by the API server, naming what it lacked.
    let attempts: [&[&str]; 3] = [
        &["deploy", "--env", "staging", "--image", &staged],
        &["lock", "--env", "staging", "-m", "not yours"],
        &["rollback", "--env", "staging"],
    ];
    for args in attempts {
        let out = run(dir, args, COMMIT_B).await;
        let err = stderr(&out);
        assert!(!out.status.success(), "ferry {}: {err}", args.join(" "));
        assert!(
            err.contains(&format!("User \"{PRODUCTION_USER}\" cannot"))
                && err.contains("in the namespace \"staging\""),
            "ferry {}: {err}",
            args.join(" ")
        );
    }
    assert_eq!(image("staging"), staged, "staging is untouched");

    // Each rule of the read-only Role in turn taken away: a promote fails, naming the verb,
    // resource and namespace it lacked.
    for (i, rule) in readers.iter().enumerate() {
        let mut fewer = readers.clone();
        fewer.remove(i);
        let fake = two_namespace_fake(staging.clone(), production.clone(), fewer).await;
        let err = promote_as_production(&fake, dir, &registry)
            .await
            .expect_err(&format!("a promote without {rule:?}"));
        let resource = &rule.resources[0];
        assert!(
            err.contains(&format!("resource \"{resource}\""))
                && err.contains("in the namespace \"staging\""),
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
