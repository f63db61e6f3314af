//! `ferry ship --env <kubernetes env>` end to end: a real registry, the fake API server,
//! the real binary. A first ship, a second commit rolling forward, a broken image rolled back.

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
    let repository = format!("{}/ferry/hello", registry.host());
    // An environment of its own, in a file git ignores, so the tree stays clean.
    std::fs::write(
        repo.join("ferry.e2e.toml"),
        format!(
            "[image]\nname = \"hello\"\ntag = \"commit\"\n\n[environments.e2e]\nkind = \"kubernetes\"\nrepository = \"{repository}\"\nkubeconfig = \"{}\"\nnamespace = \"default\"\nmanifest = \"k8s.yml\"\nvars = {{ REPLICAS = \"2\" }}\n",
            fake.kubeconfig_path().display()
        ),
    )
    .unwrap();
    std::fs::write(repo.join(".git/info/exclude"), "ferry.e2e.toml\n").unwrap();
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
    let first = summary(&out);
    assert_eq!(first["outcome"], "succeeded");
    let stages: Vec<&str> = first["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "test", "build", "image", "push", "render", "deploy", "verify"
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
    let third = summary(&out);
    assert_eq!(third["outcome"], "rolled_back");
    assert_eq!(third["failed_stage"], "deploy");
    assert_eq!(third["rollout"]["outcome"], "rolled_back");
    assert_eq!(third["rollout"]["failure"]["reason"], "image_pull");
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
