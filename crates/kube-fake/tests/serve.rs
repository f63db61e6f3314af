//! The `kube-fake` server as people run it: `--help`, and two instances side by side, each with
//! its own kubeconfig, removed when the instance stops.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `kube-fake` binary cargo built beside this test, from this source.
fn serve() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kube-fake"))
}

/// Waits for `child` at most `limit`, killing it after that.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("serve did not exit within {limit:?}");
}

/// Starts an instance; returns it with its URL and kubeconfig path.
fn start(args: &[&str]) -> (Child, String, PathBuf) {
    let mut child = serve()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (url, rest) = line.trim().split_once(" (kubeconfig: ").expect(&line);
    let path = rest.strip_suffix(')').expect(&line);
    (child, url.to_string(), PathBuf::from(path))
}

/// SIGINT, as Ctrl-C sends, then waits (bounded) for the exit.
fn interrupt(mut child: Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn help_lists_the_options() {
    let mut child = serve()
        .arg("--help")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut help = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut help).unwrap();
    assert!(wait(&mut child, Duration::from_secs(10)).success());
    for word in ["CLOCK_SCALE", "FAILING_IMAGE", "--kubeconfig", "Ctrl-C"] {
        assert!(help.contains(word), "{word}: {help}");
    }
}

#[test]
fn two_instances_write_separate_kubeconfigs_and_remove_them_on_exit() {
    let dir = tempfile::tempdir().unwrap();
    let chosen = dir.path().join("mine.kubeconfig");
    let (a, url_a, config_a) = start(&["50"]);
    let (b, url_b, config_b) = start(&["--kubeconfig", chosen.to_str().unwrap()]);
    assert_ne!(url_a, url_b);
    assert_ne!(config_a, config_b);
    assert_eq!(config_b, chosen);
    for (config, url) in [(&config_a, &url_a), (&config_b, &url_b)] {
        let text = std::fs::read_to_string(config).unwrap();
        assert!(text.contains(&format!("server: {url}")), "{text}");
    }
    interrupt(a);
    interrupt(b);
    assert!(!config_a.exists(), "{}", config_a.display());
    assert!(!config_b.exists(), "{}", config_b.display());
}
