//! Real parts for ferry's end-to-end tests: a checkout of this repository, Debian's
//! `docker-registry` on a free loopback port, and the `ferry` binary.
//!
//! A missing tool fails the test with the command that installs it; nothing is skipped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace this test binary was built from.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

/// Writes `text` (a whole script, `#!` line included) to `path`, executable.
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Fails with an install hint when `tool` is not on PATH.
pub fn require_tool(tool: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "{tool} not found: {install} (scripts/test installs it)"
    );
}

/// A fake API server whose controllers run 60 times faster than a real cluster's (rollouts,
/// lease expiry), as the end-to-end tests want.
pub async fn fast_cluster() -> kube_fake::FakeCluster {
    kube_fake::FakeCluster::start(kube_fake::Options {
        clock_scale: 60.0,
        ..kube_fake::Options::default()
    })
    .await
    .unwrap()
}

/// A clean checkout of the workspace's HEAD, shared by the end-to-end tests (they run one at a
/// time) so the release build is paid once. Builds go to their own target directory.
pub fn checkout() -> PathBuf {
    require_tool("git", "apt-get install git");
    let ws = workspace();
    // Capitals and a space, as in many home directories: every e2e test proves ferry copes.
    let dir = ws.join("target").join("e2e").join("Checkout Dir");
    let head = git_out(&ws, &["rev-parse", "HEAD"]);
    if !dir.join(".git").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        run_ok(
            Command::new("git")
                .arg("clone")
                .arg("-q")
                .arg(&ws)
                .arg(&dir),
        );
    }
    run_ok(Command::new("git").arg("-C").arg(&dir).args([
        "fetch",
        "-q",
        ws.to_str().unwrap(),
        "HEAD",
    ]));
    run_ok(
        Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["reset", "-q", "--hard", &head]),
    );
    run_ok(
        Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["clean", "-q", "-fdx", "-e", "target"]),
    );
    dir
}

/// A throwaway git repository copy of the checkout's tracked files (for dirty-tree tests).
pub fn scratch_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("git")
            .arg("clone")
            .arg("-q")
            .arg(workspace())
            .arg(dir.path()),
    );
    dir
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ferry` run in `dir`, with plain output and the e2e target directory.
pub fn ferry(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target").join("e2e").join("target"),
        )
        .env("FERRY_OUTPUT", "plain")
        .env_remove("FERRY_ENV")
        .env_remove("RUST_TEST_THREADS")
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's `docker-registry` on a free loopback port; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with_auth(None)
    }

    /// With `Some((user, password))`, the registry requires basic auth (htpasswd, bcrypt).
    pub fn start_with_auth(auth: Option<(&str, &str)>) -> Registry {
        require_tool("docker-registry", "apt-get install docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let hash = bcrypt::hash(password, 5).unwrap();
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "docker-registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw HTTP GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Polls until `GET path` answers 200, or panics after `limit`.
pub fn wait_for_200(port: u16, path: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        if let Ok((200, _)) = http_get(port, path) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{path} on port {port} never answered 200"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `--output json` document on stdout is valid against docs/ship-output.schema.json.
pub fn assert_matches_schema(out: &Output) {
    require_tool("check-jsonschema", "pip install check-jsonschema");
    let schema = workspace().join("docs/ship-output.schema.json");
    let doc = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(doc.path(), &out.stdout).unwrap();
    run_ok(
        Command::new("check-jsonschema")
            .arg("--schemafile")
            .arg(&schema)
            .arg(doc.path()),
    );
}

/// `git ARGS` in `dir` with a fixed identity (tests commit in throwaway repositories).
pub fn git_in(dir: &Path, args: &[&str]) {
    run_ok(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=ferry test",
                "-c",
                "user.email=test@ferry.invalid",
            ])
            .args(args),
    );
}

/// Copies the tree `from` into `to`, leaving out `target/` and `.git/`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Pushes a one-layer OCI image (`layer` as its only layer) to `repo` of the plain registry at
/// `host`, tagged v1, with the distribution API alone (nothing is built); returns its digest.
pub async fn push_small_image(host: &str, repo: &str, layer: &[u8]) -> String {
    ferry::install_crypto_provider();
    let http = reqwest::Client::new();
    let base = format!("http://{host}");
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]}, "config": {}}))
    .unwrap();
    for blob in [layer, &config[..]] {
        let started = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 202, "start an upload to {repo}");
        let location = started.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{base}{location}")
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = http
            .put(format!("{location}{sep}digest={}", sha256_digest(blob)))
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201, "upload a blob to {repo}");
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256_digest(layer), "size": layer.len()}],
    }))
    .unwrap();
    let put = http
        .put(format!("{base}/v2/{repo}/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "put the manifest to {repo}");
    sha256_digest(&manifest)
}

/// A `[environments.NAME]` table of kind kubernetes as the end-to-end tests write it: its
/// repository, kubeconfig, namespace and manifest, two replicas.
pub fn kubernetes_env(
    name: &str,
    repository: &str,
    kubeconfig: &Path,
    namespace: &str,
    manifest: &Path,
) -> String {
    format!(
        "[environments.{name}]\nkind = \"kubernetes\"\nrepository = \"{repository}\"\nkubeconfig = \"{}\"\nnamespace = \"{namespace}\"\nmanifest = \"{}\"\nvars = {{ REPLICAS = \"2\" }}\n",
        kubeconfig.display(),
        manifest.display()
    )
}

/// This repository's `k8s.yml`.
pub fn repository_manifest() -> PathBuf {
    workspace().join("k8s.yml")
}

pub mod container_analysis;
pub mod images;

/// Sends `request` on to the real registry at `registry` (to `path_and_query`) and returns its
/// answer, with `Location` headers pointing back at `me`: the fake authentication fronts put
/// this in front of Debian's docker-registry.
pub async fn proxy_to_registry(
    http: &reqwest::Client,
    registry: &str,
    me: &str,
    request: axum::extract::Request,
    path_and_query: Option<String>,
) -> axum::response::Response {
    use axum::http::{HeaderMap, HeaderValue, header};
    let (parts, body) = request.into_parts();
    let path_and_query = path_and_query.unwrap_or_else(|| {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into())
    });
    let url = format!("http://{registry}{path_and_query}");
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut outgoing = http.request(parts.method, url).body(body);
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, v);
        }
    }
    let answer = outgoing.send().await.unwrap();
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name == header::LOCATION {
            let rewritten = value.to_str().unwrap().replace(registry, me);
            headers.insert(name, HeaderValue::from_str(&rewritten).unwrap());
        } else if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            headers.insert(name, value.clone());
        }
    }
    let bytes = answer.bytes().await.unwrap();
    let mut resp = axum::response::Response::new(axum::body::Body::from(bytes));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
