//! `ferry dev` end to end on examples/shelf: a save is served at the same URL, a client
//! looping on it through the switch sees no failure, a broken build keeps the old instance
//! serving, and Ctrl-C leaves no process behind.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::support::*;

/// Waits for a line containing `needle` on `lines`, returning it.
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(_) => panic!("ferry dev never said {needle:?} within {limit:?}"),
        }
    }
}

#[test]
fn e2e_dev_rebuilds_on_save_switches_without_failing_a_request_and_stops_clean() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    copy_tree(&workspace().join("examples/shelf"), project);
    std::fs::write(
        project.join("ferry.toml"),
        "[service]\nport_env = \"SHELF_PORT\"\nargs = [\".\"]\nready_path = \"/health\"\n\n[[verify]]\npath = \"/health\"\ncontains = \"shelf ok\"\n",
    )
    .unwrap();
    git_in(project, &["init", "-q"]);
    git_in(project, &["add", "-A"]);
    git_in(project, &["commit", "-q", "-m", "shelf"]);

    let port = free_port();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["dev", "--port", &port.to_string(), "--runtime", "binary"])
        .current_dir(project)
        .env("CARGO_TARGET_DIR", workspace().join("target/e2e/target"))
        .env("FERRY_OUTPUT", "plain")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = dev.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("dev> {line}");
            let _ = tx.send(line);
        }
    });
    wait_for(&lines, "#1 serving at", Duration::from_secs(120));
    let (status, body) = http_get(port, "/health").unwrap();
    assert_eq!((status, body.as_str()), (200, "shelf ok\n"));

    // A client loops on the stable URL through the switch.
    let stop_client = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = {
        let (stop_client, ok, failed) = (stop_client.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stop_client.load(Ordering::SeqCst)
                && started.elapsed() < Duration::from_secs(120)
            {
                match http_get(port, "/health") {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // A one-line change: served at the same URL.
    let main = project.join("src/main.rs");
    let source = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        source.replace("b\"shelf ok\\n\"", "b\"shelf ok, v2\\n\""),
    )
    .unwrap();
    let line = wait_for(&lines, "#2 serving at", Duration::from_secs(60));
    assert!(line.contains("src/main.rs changed"), "{line}");
    assert_eq!(http_get(port, "/health").unwrap().1, "shelf ok, v2\n");
    std::thread::sleep(Duration::from_millis(300));
    stop_client.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert!(ok.load(Ordering::SeqCst) > 10, "the client ran");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request failed during the switch"
    );

    // A change that breaks the build: the old instance keeps serving.
    std::fs::write(&main, "fn main() { this does not compile }\n").unwrap();
    let line = wait_for(&lines, "#3 failed", Duration::from_secs(60));
    assert!(
        line.contains("the previous instance keeps serving"),
        "{line}"
    );
    assert_eq!(http_get(port, "/health").unwrap().1, "shelf ok, v2\n");

    // Ctrl-C: ferry and every instance it started are gone.
    let pids: Vec<u32> = (1..=3)
        .filter_map(|n| {
            let state = project.join(format!("target/ferry/dev/{n}/instance.json"));
            let text = std::fs::read_to_string(state).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["id"].as_str()?.parse().ok()
        })
        .collect();
    assert!(!pids.is_empty(), "instances were recorded");
    run_ok(Command::new("kill").args(["-INT", &dev.id().to_string()]));
    let status = dev.wait().unwrap();
    assert!(status.success(), "ferry dev exits 0 on Ctrl-C: {status:?}");
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
        assert!(!alive, "instance pid {pid} survived Ctrl-C");
    }
    assert!(
        http_get(port, "/health").is_err(),
        "the stable port is closed"
    );
}
