//! `ferry ship` in the local environment, end to end on a clean checkout.

use std::time::Duration;

use crate::support::*;

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// test → build → image → run (podman) → verify; the JSON summary matches its schema;
/// the service answers; `ferry stop` stops it.
#[test]
fn e2e_ship_local_tests_builds_runs_verifies_then_stop_stops_it() {
    require_tool("podman", "apt-get install podman runc");
    require_tool("check-jsonschema", "pip install check-jsonschema");
    let repo = checkout();
    let out = ferry(&repo, &["--output", "json", "ship", "--runtime", "podman"]);
    let _stop = Stop(repo.clone());
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(summary["outcome"], "succeeded");
    assert_eq!(summary["environment"], "local");
    let stages: Vec<(&str, &str)> = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stages,
        [
            ("test", "ok"),
            ("build", "ok"),
            ("image", "ok"),
            ("run", "ok"),
            ("verify", "ok")
        ]
    );
    assert!(
        summary["stages"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("tests passed")
    );
    // The local environment builds fast: the tests were compiled as the build compiles, so
    // the build stage compiled nothing and took the binary hello's integration tests ran.
    let build = summary["stages"][1]["detail"].as_str().unwrap();
    assert!(
        build.contains("the binary the tests ran against"),
        "{build}"
    );
    let binary = build.split(" (").next().unwrap();
    assert!(
        binary.ends_with("/x86_64-unknown-linux-gnu/ferry-fast/hello"),
        "{build}"
    );

    assert_matches_schema(&out);

    let port = port_of(summary["url"].as_str().unwrap());
    let (status, body) = http_get(port, "/").unwrap();
    assert_eq!((status, body.as_str()), (200, "Hello, World!"));

    let stopped = ferry(&repo, &["stop"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert!(stderr(&stopped).contains("stopped"), "{}", stderr(&stopped));
    assert!(
        http_get(port, "/").is_err(),
        "the instance is gone after ferry stop"
    );
}

/// Without a container runtime, ferry runs the static binary taken from the image's layer.
#[test]
fn e2e_ship_local_with_the_binary_runtime_serves_the_image_layer() {
    let repo = checkout();
    let out = ferry(
        &repo,
        &[
            "--output",
            "json",
            "ship",
            "--skip-tests",
            "--runtime",
            "binary",
        ],
    );
    let _stop = Stop(repo.clone());
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        summary["stages"][3]["detail"]
            .as_str()
            .unwrap()
            .contains("via binary")
    );
    let port = port_of(summary["url"].as_str().unwrap());
    wait_for_200(port, "/readyz", Duration::from_secs(5));
    // The running binary is byte-for-byte the one in the image's layer.
    let config = ferry::config::Config::load(None, &repo).unwrap();
    let extracted = repo.join("target/ferry/local").join(config.instance_name());
    assert!(extracted.is_file(), "{}", extracted.display());
    let pid = summary["stages"][3]["detail"]
        .as_str()
        .unwrap()
        .rsplit_once('(')
        .map(|(_, pid)| pid.trim_end_matches(')').to_string())
        .unwrap();
    assert_eq!(
        std::fs::read(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::read(&extracted).unwrap(),
        "the process runs the extracted bytes"
    );
}

/// A failing stage is named, the JSON still comes out, and it says what failed.
#[test]
fn a_failing_stage_is_named_in_the_error_and_the_json() {
    let dir = scratch_repo();
    std::fs::write(dir.path().join("README.md"), "dirty\n").unwrap();
    let out = ferry(dir.path(), &["--output", "json", "ship"]);
    assert!(!out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["outcome"], "failed");
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("uncommitted changes")
    );
    assert!(
        stderr(&out).contains("ferry ship failed at the build stage"),
        "{}",
        stderr(&out)
    );
}

/// An undefined manifest variable stops `ship` before the build: nothing is compiled, built
/// or pushed, and every missing name is listed with its line.
#[test]
fn an_undefined_manifest_variable_stops_ship_before_anything_is_built() {
    let dir = scratch_repo();
    std::fs::write(
        dir.path().join("broken.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${NAME_NOBODY_SET}\ndata:\n  image: ${IMAGE}\n  other: ${ALSO_UNSET}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        "[environments.t]\nkind = \"kubernetes\"\nrepository = \"127.0.0.1:9/hello\"\nmanifest = \"broken.yml\"\n",
    )
    .unwrap();
    let out = ferry(
        dir.path(),
        &["--output", "json", "ship", "--env", "t", "--allow-dirty"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ferry ship failed at the render stage")
            && err.contains("nothing was built or pushed"),
        "{err}"
    );
    assert!(
        err.contains("NAME_NOBODY_SET")
            && err.contains("ALSO_UNSET")
            && err.contains("broken.yml:4"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["failed_stage"], "render");
    let stages: Vec<&str> = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["render"], "nothing ran before it");
    // Only the checkout's lock file is there: no image, no state.
    assert!(
        !dir.path().join("target/ferry/oci").exists()
            && !dir.path().join("target/ferry/local").exists(),
        "nothing was built"
    );
}

#[test]
fn an_unknown_environment_lists_the_choices() {
    let out = ferry(&workspace(), &["ship", "--env", "prod"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown environment `prod`"), "{err}");
    assert!(err.contains("local, production, staging"), "{err}");
}

#[test]
fn an_invalid_ferry_toml_names_file_line_and_valid_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        "[service]\nport = 8000\nbianry = \"x\"\n",
    )
    .unwrap();
    let out = ferry(dir.path(), &["build"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ferry.toml") && err.contains("line 3"),
        "{err}"
    );
    assert!(
        err.contains("unknown field `bianry`") && err.contains("`binary`"),
        "{err}"
    );
}

#[test]
fn help_teaches_the_pipeline() {
    let out = ferry(&workspace(), &["--help"]);
    let text = stdout(&out);
    for word in [
        "ship", "plan", "build", "push", "render", "deploy", "status", "stop", "local",
    ] {
        assert!(text.contains(word), "--help mentions {word}:\n{text}");
    }
    let completions = ferry(&workspace(), &["completions", "bash"]);
    assert!(stdout(&completions).contains("ferry"));
}

struct Stop(std::path::PathBuf);
impl Drop for Stop {
    fn drop(&mut self) {
        let _ = ferry(&self.0, &["stop"]);
    }
}
