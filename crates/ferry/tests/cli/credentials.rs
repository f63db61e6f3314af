//! `ferry credentials` puts an environment's GKE cluster in the kubeconfig from what ferry.toml
//! says about it: it runs gcloud (a stand-in here, on PATH, that records its arguments and
//! writes what the real one writes: a `gke_PROJECT_LOCATION_CLUSTER` context), checks the
//! context is there, and then ferry connects with it, to the fake API server. Every way it can
//! go wrong says what to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kube_fake::{FakeCluster, Options};

use crate::support::{stderr, stdout};

const GKE: &str =
    "gke = { project = \"ferry-e2e\", location = \"europe-west1\", cluster = \"hello\" }";
const CONTEXT: &str = "gke_ferry-e2e_europe-west1_hello";
const ARGS: &str = "container clusters get-credentials hello --location europe-west1 --project ferry-e2e --dns-endpoint";

/// A project whose environment `k` is the GKE cluster above, with its kubeconfig in the project
/// (`kubeconfig = "kube/config"`, a directory that does not exist yet), and a `plain` one
/// with neither `gke` nor a context.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        crate::support::repository_manifest(),
        dir.path().join("k8s.yml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        format!(
            "[image]\nname = \"hello\"\n\n\
             [environments.k]\nkind = \"kubernetes\"\nrepository = \"registry.example/hello\"\n{GKE}\nkubeconfig = \"kube/config\"\nnamespace = \"hello\"\nvars = {{ REPLICAS = \"2\" }}\n\n\
             [environments.plain]\nkind = \"kubernetes\"\nrepository = \"registry.example/hello\"\nnamespace = \"hello\"\n"
        ),
    )
    .unwrap();
    dir
}

/// A `gcloud` in `bin` that appends its arguments and `$KUBECONFIG` to `calls`, prints a line
/// on stdout and one on stderr, then runs `then` (sh).
fn fake_gcloud(bin: &Path, calls: &Path, then: &str) {
    std::fs::create_dir_all(bin).unwrap();
    crate::support::write_script(
        &bin.join("gcloud"),
        &format!(
            "#!/bin/sh\necho \"$* KUBECONFIG=$KUBECONFIG\" >> '{}'\necho 'gcloud stdout line'\necho 'Fetching cluster endpoint and auth data.' >&2\n{then}\n",
            calls.display()
        ),
    );
}

fn ferry(dir: &Path, path: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .args(args)
        .current_dir(dir)
        .env("FERRY_OUTPUT", "plain")
        .env("PATH", path)
        .stdin(Stdio::null());
    for name in ["FERRY_ENV", "FERRY_CONFIG", "KUBECONFIG", "FERRY_CONTEXT"] {
        command.env_remove(name);
    }
    command.output().expect("run ferry")
}

/// ferry's stderr, once it has failed as it should.
fn refused(dir: &Path, path: &Path, args: &[&str]) -> String {
    let out = ferry(dir, path, args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        stderr(&out)
    );
    stderr(&out)
}

fn calls(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// Multi-threaded: the fake API server answers while this thread waits for ferry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_runs_gcloud_for_the_gke_cluster_and_ferry_then_connects_with_them() {
    let fake = FakeCluster::start(Options::default()).await.unwrap();
    fake.create_namespace("hello");
    let project = project();
    let bin = project.path().join("bin");
    let log = project.path().join("calls");
    // What the real gcloud writes: the cluster's context, here pointing at the fake.
    let written = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: {}\nusers:\n- name: {CONTEXT}\n  user: {{}}\ncontexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\ncurrent-context: {CONTEXT}\n",
        fake.url()
    );
    let source: PathBuf = project.path().join("written");
    std::fs::write(&source, written).unwrap();
    fake_gcloud(
        &bin,
        &log,
        &format!("/bin/cp '{}' \"$KUBECONFIG\"", source.display()),
    );

    // Before: ferry cannot connect, and says to run this command.
    let before = ferry(project.path(), &bin, &["status", "--env", "k"]);
    assert!(!before.status.success());
    assert!(
        stderr(&before).contains("ferry credentials --env k"),
        "{}",
        stderr(&before)
    );

    let printed = ferry(
        project.path(),
        &bin,
        &["credentials", "--env", "k", "--print"],
    );
    assert!(printed.status.success(), "{}", stderr(&printed));
    let kubeconfig = project.path().join("kube/config");
    assert_eq!(
        stdout(&printed).trim(),
        format!("KUBECONFIG={} gcloud {ARGS}", kubeconfig.display())
    );
    assert_eq!(calls(&log), "", "--print runs nothing");

    let out = ferry(project.path(), &bin, &["credentials", "--env", "k"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        calls(&log).trim(),
        format!("{ARGS} KUBECONFIG={}", kubeconfig.display()),
        "gcloud ran once, for the environment's cluster, into its kubeconfig"
    );
    assert_eq!(stdout(&out), "", "gcloud's stdout goes to stderr: {err}");
    assert!(err.contains("gcloud stdout line"), "{err}");
    assert!(err.contains("Fetching cluster endpoint"), "{err}");
    assert!(
        err.contains(&format!("kubeconfig context {CONTEXT}")),
        "{err}"
    );

    // After: ferry connects through the context gcloud wrote.
    let after = ferry(project.path(), &bin, &["history", "--env", "k"]);
    assert!(after.status.success(), "{}", stderr(&after));
}

#[test]
fn credentials_says_what_went_wrong_and_what_to_do() {
    let project = project();
    let bin = project.path().join("bin");
    let log = project.path().join("calls");

    // No gcloud on PATH.
    std::fs::create_dir_all(&bin).unwrap();
    let err = refused(project.path(), &bin, &["credentials", "--env", "k"]);
    assert!(err.contains("gcloud is not on PATH"), "{err}");
    assert!(err.contains("gke-gcloud-auth-plugin"), "{err}");

    // gcloud refuses: its reason is shown, then ferry's.
    fake_gcloud(
        &bin,
        &log,
        "echo 'ERROR: (gcloud.container.clusters.get-credentials) 403 Permission denied' >&2\nexit 1",
    );
    let err = refused(project.path(), &bin, &["credentials", "--env", "k"]);
    assert!(err.contains("403 Permission denied"), "{err}");
    assert!(err.contains(&format!("gcloud {ARGS}` failed")), "{err}");
    assert!(err.contains("roles/container.clusterViewer"), "{err}");

    // gcloud succeeds but writes another context: the contexts that are there are listed.
    fake_gcloud(
        &bin,
        &log,
        "printf 'apiVersion: v1\\nkind: Config\\nclusters: []\\nusers: []\\ncontexts:\\n- name: other\\n  context: {cluster: c, user: u}\\n' > \"$KUBECONFIG\"",
    );
    let err = refused(project.path(), &bin, &["credentials", "--env", "k"]);
    assert!(err.contains("lacks the context"), "{err}");
    assert!(err.contains("contexts there: other"), "{err}");

    // Environments with no GKE cluster: nothing to fetch, and why.
    let err = refused(project.path(), &bin, &["credentials", "--env", "plain"]);
    assert!(err.contains("`plain` names no GKE cluster"), "{err}");
    assert!(err.contains("gke = {"), "{err}");
    let err = refused(project.path(), &bin, &["credentials", "--env", "local"]);
    assert!(err.contains("`local` is local"), "{err}");
    assert!(err.contains("k, plain"), "{err}");
}
