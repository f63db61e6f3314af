//! ferry ships services that are not hello: `ferry init` on cargo projects of every shape,
//! the second example (`examples/shelf`: its port from SHELF_PORT, a required argument, files
//! that must be in the image, a health path of its own), a published crates.io web server
//! shipped unchanged, and two projects on one machine at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::*;

fn git(dir: &Path, args: &[&str]) {
    git_in(dir, args);
}

fn commit_all(dir: &Path) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "change", "--allow-empty"]);
}

/// A fresh git repository holding a copy of `from`.
fn project_from(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(from, dir.path());
    ignore_target(dir.path());
    git(dir.path(), &["init", "-q"]);
    commit_all(dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    copy_tree(from, to);
}

/// As `cargo new` does in a git repository: build output is not part of the commit.
fn ignore_target(dir: &Path) {
    let path = dir.join(".gitignore");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    if !text
        .lines()
        .any(|l| l.trim_end_matches('/') == "/target" || l == "target")
    {
        std::fs::write(&path, format!("{text}/target\n")).unwrap();
    }
}

fn cargo_new(dir: &Path, args: &[&str]) {
    run_ok(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["new", "-q", "--vcs", "none"])
            .args(args)
            .arg(dir),
    );
    ignore_target(dir);
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn url_port(out: &Output) -> u16 {
    let text = stderr(out);
    let url = text
        .lines()
        .find_map(|l| {
            l.split_once(": http://127.0.0.1:")
                .map(|(_, p)| p.to_string())
        })
        .unwrap_or_else(|| panic!("no URL in:\n{text}"));
    url.trim().parse().unwrap()
}

/// Runs `ferry stop` in a project when dropped, so a failed test leaves nothing running.
struct Stop(PathBuf);
impl Drop for Stop {
    fn drop(&mut self) {
        let _ = ferry(&self.0, &["stop"]);
    }
}

// ---- ferry init -------------------------------------------------------------------------

#[test]
fn init_in_one_package_writes_ferry_toml_and_k8s_yml_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my-api");
    cargo_new(&project, &["--name", "my-api"]);
    let out = ferry(
        &project,
        &["init", "--port", "3000", "--ready-path", "/ready"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("wrote ferry.toml") && said.contains("wrote k8s.yml"),
        "{said}"
    );
    assert!(
        said.contains("ferry ship"),
        "the next commands are printed: {said}"
    );
    let toml = std::fs::read_to_string(project.join("ferry.toml")).unwrap();
    assert!(toml.contains("port = 3000"), "{toml}");
    assert!(toml.contains("ready_path = \"/ready\""), "{toml}");
    assert!(toml.contains("# [environments.production]"), "{toml}");
    assert!(
        toml.contains("# [environments.staging]"),
        "the pipeline's promote needs a staging example too: {toml}"
    );
    assert!(
        said.contains("ferry promote --from staging --to production"),
        "{said}"
    );
    let k8s = std::fs::read_to_string(project.join("k8s.yml")).unwrap();
    assert!(k8s.contains("containerPort: 3000"), "{k8s}");
    assert!(k8s.contains("path: /ready"), "{k8s}");
    assert!(k8s.contains("runAsNonRoot: true"), "{k8s}");

    // ferry render reads what init wrote: the manifest renders with ferry's variables.
    git(&project, &["init", "-q"]);
    commit_all(&project);
    let rendered = ferry(
        &project,
        &[
            "render",
            "--var",
            "REPLICAS=2",
            "--image",
            "r.example/my-api@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ],
    );
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    assert!(
        stdout(&rendered).contains("name: my-api"),
        "{}",
        stdout(&rendered)
    );

    // A second init refuses, changes nothing and exits 2; --force overwrites.
    std::fs::write(project.join("ferry.toml"), "# mine\n").unwrap();
    let again = ferry(&project, &["init"]);
    assert_eq!(code(&again), 2, "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already exist"),
        "{}",
        stderr(&again)
    );
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(
        std::fs::read_to_string(project.join("ferry.toml")).unwrap(),
        "# mine\n"
    );
    let forced = ferry(&project, &["init", "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(
        std::fs::read_to_string(project.join("ferry.toml"))
            .unwrap()
            .contains("[service]")
    );
}

#[test]
fn init_in_a_workspace_with_several_binaries_lists_them_until_one_is_picked() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"api\", \"worker\", \"core\"]\n",
    )
    .unwrap();
    cargo_new(&ws.join("api"), &["--name", "api"]);
    cargo_new(&ws.join("worker"), &["--name", "worker"]);
    cargo_new(&ws.join("core"), &["--lib", "--name", "core"]);
    let out = ferry(ws, &["init"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("api (package api)") && err.contains("worker (package worker)"),
        "{err}"
    );
    assert!(err.contains("--package"), "{err}");
    assert!(!ws.join("ferry.toml").exists(), "nothing written");

    // From inside a member, the files still go to the workspace root.
    let out = ferry(
        &ws.join("api"),
        &["init", "--package", "worker", "--ci", "circleci"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = std::fs::read_to_string(ws.join("ferry.toml")).unwrap();
    assert!(toml.contains("package = \"worker\""), "{toml}");
    assert!(toml.contains("binary = \"worker\""), "{toml}");
    require_tool("check-jsonschema", "pip install check-jsonschema");
    let pipeline = ws.join(".circleci/config.yml");
    run_ok(
        Command::new("check-jsonschema")
            .args(["--builtin-schema", "vendor.circle-ci"])
            .arg(&pipeline),
    );
    // The schema check bites: the same file with one key misspelt is refused.
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let broken = dir.path().join("broken-config.yml");
    std::fs::write(
        &broken,
        text.replacen("    executor: deploy", "    executer: deploy", 1),
    )
    .unwrap();
    let out = Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.circle-ci"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "check-jsonschema accepted a misspelt key: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Ferry's own shape: staging ships with the ferry the test job installed once, and
    // production, after the approval, promotes what staging runs and builds nothing.
    let config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let runs = |job: &str| -> Vec<String> {
        config["jobs"][job]["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("no job {job} in\n{text}"))
            .iter()
            .filter_map(|step| match &step["run"] {
                serde_json::Value::String(c) => Some(c.clone()),
                serde_json::Value::Object(o) => o["command"].as_str().map(str::to_string),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        runs("promote-production"),
        ["/tmp/workspace/bin/ferry promote --from staging --to production"],
        "{text}"
    );
    assert!(
        runs("ship-staging")
            .iter()
            .any(|r| r.contains("ferry ship --env staging")),
        "{text}"
    );
    let builders: Vec<&String> = config["jobs"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|job| runs(job).iter().any(|r| r.contains("cargo install")))
        .collect();
    assert_eq!(builders, ["test"], "ferry is installed once: {text}");
    assert!(
        !text.contains("ferry ship --env production"),
        "production is promoted, never shipped: {text}"
    );
    let workflow = config["workflows"]["deliver"]["jobs"].as_array().unwrap();
    let entry = |job: &str| {
        workflow
            .iter()
            .find_map(|e| e.get(job))
            .unwrap_or_else(|| panic!("no {job} in the workflow:\n{text}"))
    };
    assert_eq!(entry("approve-production")["type"], "approval");
    assert_eq!(
        entry("approve-production")["requires"],
        serde_json::json!(["ship-staging"])
    );
    assert_eq!(
        entry("promote-production")["requires"],
        serde_json::json!(["approve-production"])
    );
    assert_eq!(entry("promote-production")["context"], "production");
}

#[test]
fn init_in_a_package_without_a_binary_says_a_service_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("just-a-lib");
    cargo_new(&project, &["--lib"]);
    let out = ferry(&project, &["init"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no binary to deliver"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("src/main.rs"), "{}", stderr(&out));
    assert!(!project.join("ferry.toml").exists());
}

#[test]
fn without_ferry_toml_commands_exit_2_and_say_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("web");
    cargo_new(&project, &[]);
    for args in [&["ship"][..], &["build"], &["status"], &["stop"], &["plan"]] {
        let out = ferry(&project, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("ferry init"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("hello"),
            "no hidden demo: {}",
            stderr(&out)
        );
    }
    let out = ferry(&project, &["completions", "bash"]);
    assert!(out.status.success(), "completions need no ferry.toml");
    let help = ferry(&project, &["--help"]);
    let help = stdout(&help);
    assert!(help.contains("Rust web services"), "{help}");
    assert!(help.contains("ferry init"), "{help}");
}

#[test]
fn a_failing_test_stage_shows_the_failing_tests_and_their_panics() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("flaky");
    cargo_new(&project, &["--name", "flaky"]);
    let mut main = std::fs::read_to_string(project.join("src/main.rs")).unwrap();
    main.push_str(
        "\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn answers_forty_two() {\n        assert_eq!(6 * 7, 43, \"the answer drifted\");\n    }\n    #[test]\n    fn reports_its_threads() {\n        panic!(\"RUST_TEST_THREADS is {:?}\", std::env::var(\"RUST_TEST_THREADS\").ok());\n    }\n}\n",
    );
    std::fs::write(project.join("src/main.rs"), main).unwrap();
    git(&project, &["init", "-q"]);
    let init = ferry(&project, &["init"]);
    assert!(init.status.success(), "{}", stderr(&init));
    // `[test] threads` reaches the tests as RUST_TEST_THREADS.
    let mut toml = std::fs::read_to_string(project.join("ferry.toml")).unwrap();
    toml.push_str("\n[test]\nthreads = 3\n");
    std::fs::write(project.join("ferry.toml"), toml).unwrap();
    commit_all(&project);
    let out = ferry(&project, &["ship", "--runtime", "binary"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("failed at the test stage"), "{err}");
    assert!(err.contains("tests::answers_forty_two"), "{err}");
    assert!(err.contains("the answer drifted"), "{err}");
    assert!(err.contains("tests::reports_its_threads"), "{err}");
    assert!(err.contains("RUST_TEST_THREADS is Some(\"3\")"), "{err}");
    let report = &err[err.find("error: ferry ship failed").unwrap()..];
    assert!(!report.contains("Compiling"), "{report}");
}

// ---- the second example: shelf ----------------------------------------------------------

const SHELF_SETTINGS: &str = r#"
[service]
port = 7070
port_env = "SHELF_PORT"
args = ["/srv/shelf"]
ready_path = "/health"

[image]
files = [{ from = "shelf-files", to = "/srv/shelf" }]

[[verify]]
path = "/health"
contains = "shelf ok"

[[verify]]
path = "/files/greeting.txt"
contains = "only in the image"
"#;

/// examples/shelf in a fresh repository, with `ferry init` run and shelf's settings added.
fn shelf_project() -> tempfile::TempDir {
    let project = project_from(&workspace().join("examples/shelf"));
    let out = ferry(project.path(), &["init", "--port", "7070"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The [service] and [image] tables init wrote, replaced by shelf's own.
    let toml = std::fs::read_to_string(project.path().join("ferry.toml")).unwrap();
    let keep: String = toml.split("\n[service]").next().unwrap().to_string();
    let environments = &toml[toml.find("[environments.local]").unwrap()..];
    std::fs::write(
        project.path().join("ferry.toml"),
        format!("{keep}\n{SHELF_SETTINGS}\n{environments}"),
    )
    .unwrap();
    commit_all(project.path());
    project
}

#[test]
fn e2e_shelf_ships_with_podman_and_two_projects_keep_to_themselves() {
    require_tool("podman", "apt-get install podman runc");
    let a = shelf_project();
    let b = shelf_project();
    let _stop_a = Stop(a.path().to_path_buf());
    let _stop_b = Stop(b.path().to_path_buf());

    let out = ferry(a.path(), &["ship", "--runtime", "podman"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let port_a = url_port(&out);
    assert!(stderr(&out).contains("2 checks passed"), "{}", stderr(&out));
    let (status, body) = http_get(port_a, "/files/greeting.txt").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("only in the image"), "{body}");

    // The image carries shelf's settings: SHELF_PORT, its argument, its files, its user.
    // The local environment builds the fast profile; its images live apart from release ones.
    let layout = a.path().join("target/ferry/oci-fast/shelf");
    let image = ferry::image::open(&layout, None).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image.blob_path(&image.config.digest)).unwrap())
            .unwrap();
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["SHELF_PORT=7070"])
    );
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/srv/shelf"]));
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/shelf"])
    );
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(image.layers.len(), 2, "the binary, then the files");

    // A second project of the same name, shipped while the first runs: both serve.
    let out = ferry(b.path(), &["ship", "--runtime", "podman", "--skip-tests"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let port_b = url_port(&out);
    assert_ne!(port_a, port_b);
    assert_eq!(http_get(port_a, "/health").unwrap().0, 200);
    assert_eq!(http_get(port_b, "/health").unwrap().0, 200);

    // `ferry stop` in one stops only its own.
    let stopped = ferry(b.path(), &["stop"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert!(http_get(port_b, "/health").is_err(), "b is stopped");
    assert_eq!(
        http_get(port_a, "/health").unwrap().0,
        200,
        "a still serves"
    );
    let status = ferry(a.path(), &["status"]);
    assert!(stdout(&status).contains("serving"), "{}", stdout(&status));

    // The port ferry picks is taken after it looked and before podman binds it: the first
    // `podman run` finds a listener there (a podman on PATH that opens one, then runs the
    // real podman, which refuses), and ferry chooses another port and ships.
    let (taken, holder) = ship_while_the_chosen_port_is_taken(b.path());
    let port_b = taken.0;
    assert_ne!(port_b, taken.1, "ferry chose again");
    assert_eq!(http_get(port_b, "/health").unwrap().0, 200);
    assert_ne!(
        http_get(taken.1, "/health").map(|r| r.0).ok(),
        Some(200),
        "the taken port is still the other listener's"
    );
    let containers = std::process::Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}} {{.Ports}}"])
        .output()
        .unwrap();
    let containers = String::from_utf8_lossy(&containers.stdout);
    assert!(
        !containers.contains(&format!("127.0.0.1:{}->", taken.1)),
        "the failed run left no container: {containers}"
    );
    let _ = std::process::Command::new("kill")
        .arg(holder.to_string())
        .status();
    let stopped = ferry(b.path(), &["stop"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));

    // `ferry build` has no test stage to skip.
    let build = ferry(a.path(), &["build"]);
    assert!(build.status.success(), "{}", stderr(&build));
    assert!(!stderr(&build).contains("skip"), "{}", stderr(&build));
}

/// `ferry ship --runtime podman --skip-tests -v` in `project` with a `podman` first on PATH
/// that, on the first `run`, starts a listener on the host port ferry publishes and then runs
/// the real podman. Returns ((the port ferry shipped on, the port that was taken), the
/// listener's PID).
fn ship_while_the_chosen_port_is_taken(project: &Path) -> ((u16, u16), u32) {
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("podman"))
        .find(|p| p.is_file())
        .expect("podman on PATH");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let state = dir.path();
    write_script(
        &bin.join("podman"),
        &format!(
            r#"#!/bin/sh
if [ "$1" = run ] && [ ! -e '{state}/taken' ]; then
  prev=""
  for a in "$@"; do
    if [ "$prev" = "-p" ]; then port="${{a#127.0.0.1:}}"; port="${{port%%:*}}"; fi
    prev="$a"
  done
  echo "$port" > '{state}/taken'
  python3 -c "import socket, time
s = socket.socket(); s.bind(('127.0.0.1', $port)); s.listen()
open('{state}/listening', 'w').close(); time.sleep(60)" &
  echo $! > '{state}/holder'
  n=0; while [ ! -e '{state}/listening' ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
fi
exec '{real}' "$@"
"#,
            state = state.display(),
            real = real.display()
        ),
    );
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["ship", "--runtime", "podman", "--skip-tests", "-v"])
        .current_dir(project)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", workspace().join("target/e2e/target"))
        .env("FERRY_OUTPUT", "plain")
        .env_remove("FERRY_ENV")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let holder: u32 = std::fs::read_to_string(state.join("holder"))
        .expect("the first podman run took the port")
        .trim()
        .parse()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was taken before the runtime bound it; choosing another"),
        "{}",
        stderr(&out)
    );
    let taken: u16 = std::fs::read_to_string(state.join("taken"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ((url_port(&out), taken), holder)
}

#[test]
fn e2e_shelf_verify_failures_and_the_binary_runtime_say_what_went_wrong() {
    let project = shelf_project();
    let _stop = Stop(project.path().to_path_buf());

    // The bare binary cannot give the service the files its image holds.
    let out = ferry(
        project.path(),
        &["ship", "--runtime", "binary", "--skip-tests"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("binary runtime cannot run this image"),
        "{err}"
    );
    assert!(err.contains("/srv/shelf"), "{err}");
    assert!(err.contains("podman"), "{err}");

    // A check that does not hold: the path, the status and the body it got.
    require_tool("podman", "apt-get install podman runc");
    let toml = std::fs::read_to_string(project.path().join("ferry.toml")).unwrap();
    std::fs::write(
        project.path().join("ferry.toml"),
        toml.replace("contains = \"shelf ok\"", "contains = \"all systems go\""),
    )
    .unwrap();
    commit_all(project.path());
    let out = ferry(
        project.path(),
        &["ship", "--runtime", "podman", "--skip-tests"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("failed at the verify stage"), "{err}");
    assert!(err.contains("/health"), "{err}");
    assert!(err.contains("answered 200"), "{err}");
    assert!(err.contains("shelf ok"), "the body it got: {err}");
    assert!(err.contains("all systems go"), "what was expected: {err}");
    assert!(
        err.contains("podman runtime"),
        "the runtime is named: {err}"
    );
    let status = ferry(project.path(), &["status"]);
    assert!(
        stdout(&status).contains("nothing running"),
        "a failed verify stops it: {}",
        stdout(&status)
    );
}

#[test]
fn e2e_plan_fails_without_a_cluster_unless_offline() {
    let project = shelf_project();
    let kubeconfig = project.path().join("dead-kubeconfig.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: dead\n  context:\n    cluster: dead\n    user: u\nusers:\n- name: u\n  user: {{}}\ncurrent-context: dead\n",
            free_port()
        ),
    )
    .unwrap();
    let mut toml = std::fs::read_to_string(project.path().join("ferry.toml")).unwrap();
    toml.push_str("\n[environments.k]\nkind = \"kubernetes\"\nrepository = \"127.0.0.1:9/shelf\"\nkubeconfig = \"dead-kubeconfig.yaml\"\nvars = { REPLICAS = \"1\" }\n");
    std::fs::write(project.path().join("ferry.toml"), toml).unwrap();
    commit_all(project.path());
    let out = ferry(project.path(), &["plan", "--env", "k", "--skip-tests"]);
    assert_eq!(
        code(&out),
        1,
        "a plan that checked nothing fails: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--offline"), "{}", stderr(&out));
    let out = ferry(
        project.path(),
        &["plan", "--env", "k", "--skip-tests", "--offline"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("kind: Deployment"),
        "the rendered manifest: {}",
        stdout(&out)
    );
}

// ---- a published web server, unchanged ---------------------------------------------------

/// simple-http-server's source, as cargo fetches it from crates.io.
fn published_server_source() -> PathBuf {
    let name = "simple-http-server";
    let version = "0.8.1";
    let probe = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(probe.path().join("src")).unwrap();
    std::fs::write(probe.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(
        probe.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n[dependencies]\n{name} = \"={version}\"\n[workspace]\n"
        ),
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_ok(Command::new(&cargo).arg("fetch").current_dir(probe.path()));
    // A bin-only crate is no usable dependency, but cargo fetches its source all the same.
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    std::fs::read_dir(cargo_home.join("registry/src"))
        .unwrap()
        .map(|index| index.unwrap().path().join(format!("{name}-{version}")))
        .find(|dir| dir.join("Cargo.toml").is_file())
        .unwrap_or_else(|| panic!("cargo fetch left no {name}-{version} source"))
}

#[test]
fn e2e_a_published_web_server_ships_with_ferry_toml_alone() {
    require_tool("podman", "apt-get install podman runc");
    let source = published_server_source();
    let project = project_from(&source);
    let before = run_ok(
        Command::new("git")
            .arg("-C")
            .arg(project.path())
            .args(["ls-files", "-s"]),
    );
    let init = ferry(project.path(), &["init"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let toml = std::fs::read_to_string(project.path().join("ferry.toml")).unwrap();
    let toml = toml.replace(
        "\n[image]\n",
        "port_env = \"\"\nargs = [\"--ip\", \"0.0.0.0\", \"--port\", \"${PORT}\", \"--index\", \"/srv/www\"]\n\n[image]\nfiles = [{ from = \"www\", to = \"/srv/www\" }]\n\n[[verify]]\npath = \"/\"\ncontains = \"delivered by ferry\"\n\n[[verify]]\npath = \"/missing.txt\"\nstatus = 404\n",
    );
    std::fs::write(project.path().join("ferry.toml"), toml).unwrap();
    std::fs::create_dir_all(project.path().join("www")).unwrap();
    std::fs::write(
        project.path().join("www/index.html"),
        "<h1>delivered by ferry</h1>\n",
    )
    .unwrap();
    commit_all(project.path());
    let _stop = Stop(project.path().to_path_buf());
    // Its own test suite is its authors' business (and a second full build): skipped here.
    let out = ferry(
        project.path(),
        &["ship", "--runtime", "podman", "--skip-tests"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let port = url_port(&out);
    let (status, body) = http_get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("delivered by ferry"), "{body}");
    // Without an [image] name, the image is named after the package, not after hello.
    assert!(
        project
            .path()
            .join("target/ferry/oci-fast/simple-http-server/index.json")
            .is_file()
    );
    // Not one of its files was changed to get there.
    let after = run_ok(
        Command::new("git")
            .arg("-C")
            .arg(project.path())
            .args(["ls-files", "-s"]),
    );
    let after = String::from_utf8_lossy(&after.stdout);
    for line in String::from_utf8_lossy(&before.stdout).lines() {
        assert!(after.contains(line), "{line} changed");
    }
    let _ = Duration::ZERO;
}

#[test]
fn e2e_two_ships_at_once_in_one_checkout_take_turns_and_stop_leaves_nothing() {
    require_tool("podman", "apt-get install podman runc");
    let project = shelf_project();
    let _stop = Stop(project.path().to_path_buf());
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["ship", "--runtime", "podman", "--skip-tests"])
            .current_dir(project.path())
            .env(
                "CARGO_TARGET_DIR",
                workspace().join("target").join("e2e").join("target"),
            )
            .env("FERRY_OUTPUT", "plain")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    for out in &outs {
        assert!(out.status.success(), "{}", stderr(out));
        let err = stderr(out);
        for raw in ["Directory not empty", "Text file busy", "File exists"] {
            assert!(!err.contains(raw), "{raw}: {err}");
        }
    }
    let waited: Vec<&Output> = outs
        .iter()
        .filter(|o| stderr(o).contains("; waiting for it to finish"))
        .collect();
    assert_eq!(waited.len(), 1, "exactly one waited for the other");
    assert!(
        stderr(waited[0]).contains("is shipping in this checkout"),
        "{}",
        stderr(waited[0])
    );
    // The one that waited ran last: its instance is the one that serves.
    let last = url_port(waited[0]);
    assert_eq!(http_get(last, "/health").unwrap().0, 200);
    let stopped = ferry(project.path(), &["stop"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    for out in &outs {
        assert!(
            http_get(url_port(out), "/health").is_err(),
            "nothing survives ferry stop"
        );
    }
    let containers = run_ok(Command::new("podman").args(["ps", "-a", "--format", "{{.Names}}"]));
    let config = ferry::config::Config::load(None, project.path()).unwrap();
    let name = format!("ferry-{}", config.instance_name());
    assert!(
        !String::from_utf8_lossy(&containers.stdout)
            .lines()
            .any(|l| l == name),
        "no orphaned container {name}"
    );
}
