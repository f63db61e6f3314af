//! What the CLI says when it cannot go on, through the real binary: each message names the
//! problem once and says what to do.

use std::path::Path;
use std::process::Command;

use crate::support::*;

#[test]
fn a_missing_config_file_says_it_does_not_exist_and_how_to_create_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferry(dir.path(), &["--config", "nope/ferry.toml", "render"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.starts_with("error: the configuration file nope/ferry.toml does not exist\n"),
        "{err}"
    );
    assert!(err.contains("`ferry init`"), "{err}");
    assert!(!err.contains("caused by"), "{err}");
}

#[test]
fn a_cause_already_in_the_message_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: the io error is part of the message.
    let out = ferry(dir.path(), &["--config", ".", "render"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
    assert!(!err.contains("caused by"), "{err}");
    // A manifest that cannot be read, likewise.
    std::fs::write(dir.path().join("ferry.toml"), "").unwrap();
    let out = ferry(dir.path(), &["render", "-f", "missing.yml"]);
    let err = stderr(&out);
    assert!(err.contains("cannot read the manifest"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

fn git(dir: &Path, args: &[&str]) {
    run_ok(
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir),
    );
}

/// Pushing from a dirty tree: `ferry build` would refuse it, so the hint is to commit, stash
/// or build with --allow-dirty, not "run ferry build".
#[test]
fn pushing_from_a_dirty_tree_says_commit_stash_or_allow_dirty() {
    require_tool("git", "apt-get install git");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ferry.toml"), "[image]\nname = \"hello\"\n").unwrap();
    std::fs::write(dir.path().join(".gitignore"), "target/\n").unwrap();
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "first"]);
    let binary = dir.path().join("target/hello-bin");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::write(&binary, b"bytes").unwrap();
    let head = String::from_utf8(
        run_ok(
            Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(dir.path()),
        )
        .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    ferry::image::assemble(
        &ferry::image::ImageSpec {
            binary,
            binary_name: "hello".into(),
            port: 8000,
            user: 65532,
            args: Vec::new(),
            env: vec!["PORT=8000".into()],
            files: Vec::new(),
            ca_certificates: false,
            tag: head.clone(),
            revision: head.clone(),
            created: "2026-01-01T00:00:00Z".into(),
            created_unix: 1_767_225_600,
            source: None,
            title: "hello".into(),
        },
        &dir.path().join("target/ferry/oci/hello"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        "[image]\nname = \"hello\"\n# edited\n",
    )
    .unwrap();

    let out = ferry(dir.path(), &["push", "--to", "127.0.0.1:9/hello"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("no image of the work tree to push: it has uncommitted changes"),
        "{err}"
    );
    assert!(
        err.contains("commit or stash the changes")
            && err.contains("ferry build --allow-dirty")
            && err.contains(&format!("{head}-dirty")),
        "{err}"
    );
    assert!(!err.contains("run `ferry build`"), "{err}");
}

/// Every command that renders refuses `--var` for what ferry sets itself, before doing anything.
#[test]
fn var_flags_cannot_set_ferrys_own_variables_in_any_command() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["ship", "plan", "render", "deploy"] {
        let out = ferry(
            dir.path(),
            &[command, "--var", "IMAGE=evil.example/miner:latest"],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains(
                "--var cannot set IMAGE: ferry sets it to the image it pushed, pinned by digest"
            ),
            "{command}: {err}"
        );
    }
}

/// A local environment has no registry: `ferry push` says where it could push instead,
/// before it looks for an image.
#[test]
fn pushing_to_a_local_environment_names_it_and_the_ways_to_push() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ferry.toml"), "[image]\nname = \"hello\"\n").unwrap();
    let out = ferry(dir.path(), &["push", "--env", "local"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("nowhere to push: environment `local` is local and has no registry")
            && err.contains("--to HOST/PATH"),
        "{err}"
    );
}

/// `ferry render` renders with what the environment's deploy would: `${SECRETS}` names the
/// Secret its `secrets` are written to, and `${NAMESPACE}` is its namespace.
#[test]
fn render_gives_the_manifest_the_environments_secret_name_and_namespace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        "[image]\nname = \"Shop API\"\n\n[environments.staging]\nkind = \"kubernetes\"\nrepository = \"127.0.0.1:5000/shop\"\nnamespace = \"shop\"\n\n[environments.staging.secrets]\nDATABASE_URL = \"env:SHOP_DB\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("k8s.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: names\n  namespace: ${NAMESPACE}\ndata:\n  secret: ${SECRETS}\n",
    )
    .unwrap();
    let out = ferry(dir.path(), &["render", "--env", "staging"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("namespace: shop"), "{text}");
    assert!(text.contains("secret: shop-api-secrets"), "{text}");
}

#[test]
fn each_commands_help_teaches_what_its_one_line_summary_cannot() {
    let dir = tempfile::tempdir().unwrap();
    // (command, what only its long help says)
    for (command, taught) in [
        ("rbac", "| kubectl apply -f -"),
        ("credentials", "gke-gcloud-auth-plugin"),
        ("ship", "docs/ship-output.schema.json"),
        ("promote", "cross-repository mount"),
    ] {
        let out = ferry(dir.path(), &[command, "--help"]);
        assert!(out.status.success(), "{command} --help: {}", stderr(&out));
        let help = stdout(&out);
        assert!(
            help.contains(taught),
            "`ferry {command} --help` lacks {taught:?}:\n{help}"
        );
        // -h stays the one line the command list shows.
        let short = stdout(&ferry(dir.path(), &[command, "-h"]));
        let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let list = words(&stdout(&ferry(dir.path(), &["--help"])));
        let summary = short.lines().next().unwrap();
        assert!(!summary.contains(taught), "{short}");
        assert!(
            list.contains(&words(summary)),
            "the list's line for {command} is -h's: {summary}"
        );
    }
}
