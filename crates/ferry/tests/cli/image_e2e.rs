//! `ferry build` and `ferry push` against real parts: git, cargo, Debian's docker-registry,
//! skopeo and podman.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn digest_of_build(out: &std::process::Output) -> String {
    let line = stdout(out);
    line.rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| panic!("no digest in {line:?}"))
}

/// Build twice → the same digest; push → skopeo reads back the same digest, config and layer;
/// push again → nothing uploaded; the pushed image runs in podman and serves.
#[test]
fn e2e_build_is_reproducible_push_dedups_and_the_image_runs_in_podman() {
    require_tool("skopeo", "apt-get install skopeo");
    require_tool("podman", "apt-get install podman runc");
    let repo = checkout();

    let first = ferry(&repo, &["build"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let layout = repo.join("target/ferry/oci/hello");
    std::fs::remove_dir_all(&layout).unwrap();
    let second = ferry(&repo, &["build"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let digest = digest_of_build(&first);
    assert_eq!(digest, digest_of_build(&second), "same commit, same digest");

    let registry = Registry::start();
    let target = format!("{}/ferry/hello", registry.host());
    let pushed = ferry(&repo, &["push", "--to", &target]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    assert_eq!(stdout(&pushed), format!("{target}@{digest}"));
    assert!(
        stderr(&pushed).contains("2 blobs uploaded, 0 already there"),
        "{}",
        stderr(&pushed)
    );

    let again = ferry(&repo, &["push", "--to", &target]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("0 blobs uploaded, 2 already there"),
        "{}",
        stderr(&again)
    );

    let tag = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    let tag = String::from_utf8_lossy(&tag.stdout).trim().to_string();
    let inspect = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{target}:{tag}")),
    );
    let remote: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(remote["Digest"], digest.as_str());
    assert_eq!(
        remote["Labels"]["org.opencontainers.image.revision"],
        tag.as_str()
    );
    let local = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{tag}", layout.display())),
    );
    let local: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(remote["Layers"], local["Layers"]);
    let config = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config", "--tls-verify=false"])
            .arg(format!("docker://{target}:{tag}")),
    );
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"][0], "/hello");

    // umoci reads the layout too: one file, /hello, executable, and the runtime config
    // runs it as 65532.
    require_tool("umoci", "apt-get install umoci");
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = unpacked.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle),
    );
    let entries: Vec<_> = std::fs::read_dir(bundle.join("rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        entries,
        ["hello"],
        "the image holds the binary and nothing else"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(bundle.join("rootfs/hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "executable");
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["user"]["uid"], 65532);
    assert_eq!(runtime["process"]["args"][0], "/hello");

    // And podman: it pulls straight from the layout (from a lowercase path: podman derives
    // an image name from it).
    let copy = std::env::temp_dir().join(format!("ferry-e2e-layout-{}", registry.port));
    let _ = std::fs::remove_dir_all(&copy);
    run_ok(Command::new("cp").arg("-r").arg(&layout).arg(&copy));
    let pulled = run_ok(
        Command::new("podman")
            .args(["pull", "-q"])
            .arg(format!("oci:{}:{tag}", copy.display())),
    );
    let image_id = String::from_utf8_lossy(&pulled.stdout).trim().to_string();
    let inspect = run_ok(Command::new("podman").args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{index .Config.Entrypoint 0}}",
        &image_id,
    ]));
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        "65532:65532 /hello"
    );
    let _ = Command::new("podman")
        .args(["rmi", "-f", &image_id])
        .output();
    let _ = std::fs::remove_dir_all(&copy);

    // Run what the registry holds, as a real container.
    let name = format!("ferry-e2e-{}", registry.port);
    let port = free_port();
    let _cleanup = Container(name.clone());
    run_ok(Command::new("podman").args([
        "run",
        "-d",
        "--name",
        &name,
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=4096:4096",
        "--tls-verify=false",
        "--read-only",
        "--cap-drop=ALL",
        "-p",
        &format!("127.0.0.1:{port}:8000"),
        &format!("{target}@{digest}"),
    ]));
    wait_for_200(port, "/readyz", Duration::from_secs(20));
    let (status, body) = http_get(port, "/").unwrap();
    assert_eq!((status, body.as_str()), (200, "Hello, World!"));
}

struct Container(String);
impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "2", &self.0])
            .output();
    }
}

#[test]
fn e2e_pushing_to_an_unreachable_registry_fails_clearly() {
    let repo = checkout();
    let built = ferry(&repo, &["build"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let port = free_port(); // nothing listens there
    let out = ferry(&repo, &["push", "--to", &format!("127.0.0.1:{port}/hello")]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).is_empty(),
        "no reference claimed: {}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot reach the registry at http://127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn e2e_wrong_credentials_name_the_registry_and_their_source_but_not_the_password() {
    let repo = checkout();
    let built = ferry(&repo, &["build"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let registry = Registry::start_with_auth(Some(("ci", "right-password")));
    let docker = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:wrong-password");
    std::fs::write(
        docker.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["push", "--to", &format!("{}/hello", registry.host())])
        .current_dir(&repo)
        .env("DOCKER_CONFIG", docker.path())
        .env("FERRY_OUTPUT", "plain")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty(), "no reference claimed");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "the registry {} refused the credentials",
            registry.host()
        )),
        "{err}"
    );
    assert!(
        err.contains("config.json"),
        "names where the credentials came from: {err}"
    );
    assert!(
        !err.contains("wrong-password") && !err.contains(&auth),
        "secret leaked: {err}"
    );

    // The right password works.
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:right-password");
    std::fs::write(
        docker.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["push", "--to", &format!("{}/hello", registry.host())])
        .current_dir(&repo)
        .env("DOCKER_CONFIG", docker.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_invalid_reference_is_refused_before_any_network() {
    let dir = scratch_repo();
    let out = ferry(dir.path(), &["push", "--to", "Hello World"]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("invalid image repository \"Hello World\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn building_outside_a_git_repository_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ferry.toml"), "").unwrap();
    let out = ferry(dir.path(), &["build"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not inside a git repository"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("target/ferry/oci").exists(),
        "nothing built"
    );
}

#[test]
fn a_dirty_tree_is_refused_and_nothing_is_built() {
    let dir = scratch_repo();
    std::fs::write(dir.path().join("README.md"), "changed\n").unwrap();
    let out = ferry(dir.path(), &["build"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("uncommitted changes") && err.contains("README.md"),
        "{err}"
    );
    assert!(err.contains("--allow-dirty"), "{err}");
    assert!(
        !dir.path().join("target/ferry/oci").exists(),
        "no layout claims success"
    );
}
