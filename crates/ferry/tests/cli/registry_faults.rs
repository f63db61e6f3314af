//! `ferry push` through connections that fail mid-request, as when a registry restarts during
//! a push: reset before the answer, closed before the answer, or closed after the registry
//! did the work but before its answer arrived.
//!
//! The registry is Debian's real `docker-registry`; in front of it runs a TCP front on
//! loopback that relays bytes both ways and, for the requests it is told to, breaks the
//! connection instead. The image is assembled by ferry's own library.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a connection is broken when its request matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// A TCP reset as soon as the request head arrives; the registry never sees it.
    Reset,
    /// A clean close as soon as the request head arrives; the registry never sees it.
    Close,
    /// The registry gets the whole request and answers; the answer is dropped with the
    /// connection (the work was done, the client cannot know).
    AfterAnswer,
}

#[derive(Debug)]
struct Rule {
    /// `PUT`, `HEAD`, …
    method: &'static str,
    /// Part of the request path.
    path: &'static str,
    how: Break,
    /// Connections still to break.
    times: u32,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// Request lines of the broken requests, in order.
    broken: Vec<String>,
}

/// The TCP front, on its own runtime; stops when dropped.
struct Front {
    port: u16,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

fn start_front(upstream: SocketAddr, rules: Vec<Rule>) -> Front {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(State {
        rules,
        broken: Vec::new(),
    }));
    let shared = state.clone();
    runtime.spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, upstream, shared.clone()));
        }
    });
    Front {
        port,
        state,
        _runtime: runtime,
    }
}

/// The rule a chunk starting a request matches, if any (taking one of its times).
fn breaks(state: &Mutex<State>, chunk: &[u8]) -> Option<Break> {
    let head = String::from_utf8_lossy(&chunk[..chunk.len().min(512)]);
    let line = head.lines().next()?.to_string();
    let mut state = state.lock().unwrap();
    let rule = state.rules.iter_mut().find(|r| {
        r.times > 0 && line.starts_with(&format!("{} ", r.method)) && line.contains(r.path)
    })?;
    rule.times -= 1;
    let how = rule.how;
    state.broken.push(line);
    Some(how)
}

async fn relay(client: TcpStream, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let doomed = Arc::new(AtomicBool::new(false));
    let doomed_up = doomed.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            match breaks(&state, &buf[..n]) {
                Some(Break::Reset) => {
                    // SO_LINGER 0: the close sends RST instead of FIN.
                    #[allow(deprecated)]
                    let _ = from_client.as_ref().set_linger(Some(Duration::ZERO));
                    return;
                }
                Some(Break::Close) => return,
                Some(Break::AfterAnswer) => doomed_up.store(true, Ordering::SeqCst),
                None => {}
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if doomed.load(Ordering::SeqCst) {
                return;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever side ends first ends the connection: every half is dropped here.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// A directory with an image in ferry's layout (two blobs and a manifest).
fn project() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    // Named in full: this directory is no cargo project for ferry to ask.
    std::fs::write(dir.path().join("ferry.toml"), "[image]\nname = \"hello\"\n").unwrap();
    let binary = dir.path().join("hello-bin");
    std::fs::write(&binary, vec![7u8; 256 * 1024]).unwrap();
    let spec = ferry::image::ImageSpec {
        binary,
        binary_name: "hello".into(),
        port: 8000,
        user: 65532,
        args: Vec::new(),
        env: vec!["PORT=8000".into()],
        files: Vec::new(),
        ca_certificates: false,
        tag: "0123456789abcdef0123456789abcdef01234567".into(),
        revision: "0123456789abcdef0123456789abcdef01234567".into(),
        created: "2026-01-01T00:00:00Z".into(),
        created_unix: 1_767_225_600,
        source: None,
        title: "hello".into(),
    };
    let image = ferry::image::assemble(&spec, &dir.path().join("target/ferry/oci/hello")).unwrap();
    (dir, image.manifest.digest)
}

fn push(dir: &std::path::Path, to: &str) -> Output {
    let docker = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "-vv",
            "push",
            "--any-commit",
            "--auth",
            "anonymous",
            "--to",
            to,
        ])
        .current_dir(dir)
        .env("DOCKER_CONFIG", docker.path())
        .env("FERRY_OUTPUT", "plain")
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

/// The registry's own view: the manifest under the tag has `digest`.
fn registry_has(registry: &Registry, digest: &str) {
    let url = format!(
        "http://{}/v2/hello/manifests/0123456789abcdef0123456789abcdef01234567",
        registry.host()
    );
    let out = run_ok(Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &url,
    ]));
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        head.contains(&format!("docker-content-digest: {digest}")),
        "{head}"
    );
}

fn rule(method: &'static str, path: &'static str, how: Break) -> Rule {
    Rule {
        method,
        path,
        how,
        times: 1,
    }
}

#[test]
fn connections_reset_or_closed_mid_request_are_retried_and_the_push_completes() {
    require_tool("curl", "apt-get install curl");
    let registry = Registry::start();
    let front = start_front(
        registry.host().parse().unwrap(),
        vec![
            rule("HEAD", "/blobs/sha256:", Break::Reset),
            rule("POST", "/blobs/uploads/", Break::Close),
            rule("PUT", "/blobs/uploads/", Break::Close),
            rule("PUT", "/manifests/", Break::Reset),
        ],
    );
    let (dir, digest) = project();
    let to = format!("127.0.0.1:{}/hello", front.port);
    let started = Instant::now();
    let out = push(dir.path(), &to);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout(&out), format!("{to}@{digest}"));
    let broken = front.state.lock().unwrap().broken.clone();
    assert_eq!(
        broken.len(),
        4,
        "every rule broke one connection: {broken:?}"
    );
    assert!(err.contains("retrying"), "retries are logged: {err}");
    assert!(
        !err.contains("_state="),
        "upload state stays out of logs: {err}"
    );
    registry_has(&registry, &digest);
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The registry stored the blob, but its answer was lost: the repeated PUT finds the upload
/// gone (BLOB_UPLOAD_UNKNOWN), and a HEAD shows the blob is there. Then the manifest PUT's
/// answer is lost too: PUT by tag is idempotent and is simply sent again.
#[test]
fn a_put_whose_answer_is_lost_is_checked_and_not_uploaded_twice() {
    require_tool("curl", "apt-get install curl");
    let registry = Registry::start();
    let front = start_front(
        registry.host().parse().unwrap(),
        vec![
            Rule {
                method: "PUT",
                path: "/blobs/uploads/",
                how: Break::AfterAnswer,
                times: 2,
            },
            rule("PUT", "/manifests/", Break::AfterAnswer),
        ],
    );
    let (dir, digest) = project();
    let to = format!("127.0.0.1:{}/hello", front.port);
    let out = push(dir.path(), &to);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout(&out), format!("{to}@{digest}"));
    assert_eq!(front.state.lock().unwrap().broken.len(), 3);
    registry_has(&registry, &digest);
}

#[test]
fn a_registry_that_keeps_dropping_connections_is_given_up_on_with_the_cause() {
    let registry = Registry::start();
    let front = start_front(
        registry.host().parse().unwrap(),
        vec![Rule {
            method: "HEAD",
            path: "/blobs/",
            how: Break::Close,
            times: 1000,
        }],
    );
    let (dir, _) = project();
    let out = push(dir.path(), &format!("127.0.0.1:{}/hello", front.port));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(stdout(&out).is_empty());
    assert!(
        err.contains(&format!(
            "cannot reach the registry at http://127.0.0.1:{}",
            front.port
        )) && err.contains("(after 4 attempts)"),
        "{err}"
    );
    assert_eq!(front.state.lock().unwrap().broken.len(), 4);
}
