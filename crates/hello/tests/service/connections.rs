//! Many idle connections: memory stays bounded, the probes keep answering, and sockets that
//! never send a byte are let go.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Service, request};

/// Idle connections a single client opens in the test.
const IDLE_CONNECTIONS: usize = 3000;
/// The pod's memory limit in `k8s.yml` is 64 Mi; the default cap keeps connections to half.
const RSS_BUDGET_KIB: u64 = 32 * 1024;

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// (soft, hard) `Max open files` of a process, from /proc/PID/limits.
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut values = line["Max open files".len()..].split_whitespace();
    (
        values.next().unwrap().to_string(),
        values.next().unwrap().to_string(),
    )
}

/// Lets this test process hold all its sockets, whatever soft limit it was started with.
fn raise_own_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = (IDLE_CONNECTIONS as u64) * 2 + 256;
    assert!(
        limit.maximum.is_none_or(|hard| hard >= wanted),
        "this test needs {wanted} open files; the hard limit is {:?}: raise it (ulimit -Hn)",
        limit.maximum
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
}

/// A connection that has been served once and then sits idle (keep-alive): the costliest
/// kind of idle connection, holding the server's read and write buffers.
fn served_idle_connection(port: u16) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut reply = [0; 256];
    let n = stream.read(&mut reply).ok()?;
    reply[..n].starts_with(b"HTTP/1.1 200").then_some(stream)
}

/// 3,000 keep-alive connections from one client, the service started with the usual soft
/// limit of 1,024 open files: it raises the limit, keeps its memory within budget by closing
/// the oldest connections over the cap, and `/healthz` answers every probe.
#[test]
fn thousands_of_idle_connections_keep_memory_bounded_and_probes_answered() {
    raise_own_open_files_limit();
    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -Sn 1024 && exec \"$0\"",
            env!("CARGO_BIN_EXE_hello"),
        ])
        .env("PORT", "0")
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("ACCESS_LOG", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hello through sh");
    let service = Service::attach(child.stdout.take().unwrap(), child);
    let pid = service.child.id();
    let (soft, hard) = open_files_limit(pid);
    assert_eq!(
        soft, hard,
        "the soft open-files limit is raised to the hard one"
    );

    let mut held = Vec::with_capacity(IDLE_CONNECTIONS);
    let mut unserved = 0;
    for _ in 0..IDLE_CONNECTIONS {
        match served_idle_connection(service.port) {
            Some(stream) => held.push(stream),
            None => {
                unserved += 1;
                if unserved >= 3 {
                    break;
                }
            }
        }
    }
    let rss = status_field(pid, "VmRSS:");
    let started = Instant::now();
    let probes: Vec<Option<u16>> = (0..20)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            request(service.port, "GET", "/healthz")
                .ok()
                .map(|r| r.status)
        })
        .collect();
    assert!(
        probes.iter().all(|p| *p == Some(200)),
        "every /healthz probe answers 200 while {} connections are held: {probes:?}",
        held.len()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "probes answer promptly"
    );
    assert_eq!(unserved, 0, "every new connection is served");
    assert!(
        rss < RSS_BUDGET_KIB,
        "RSS {rss} KiB with {} connections opened must stay under {RSS_BUDGET_KIB} KiB",
        held.len()
    );
    // Over the cap, the oldest connections were closed; the newest are still open.
    let cap = hello::config::Settings::default().max_connections;
    let mut oldest = &held[0];
    let mut byte = [0; 1];
    oldest
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(
        oldest.read(&mut byte).unwrap_or(0),
        0,
        "the oldest was closed"
    );
    let mut newest = held.last().unwrap();
    newest
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        newest.read(&mut byte).is_err(),
        "the newest of {} connections (cap {cap}) is still open",
        held.len()
    );
}

/// A socket that never sends a byte is closed after FIRST_BYTE_TIMEOUT_SECONDS, well before
/// the time allowed for a whole request head (defaults 5 s and 10 s; shorter here).
#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_first_byte_timeout() {
    let limit = 0.5;
    let service = Service::start(&[
        ("FIRST_BYTE_TIMEOUT_SECONDS", "0.5"),
        ("HEADER_TIMEOUT_SECONDS", "5"),
    ]);
    let mut stream = TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let closed_after = started.elapsed().as_secs_f64();
    assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));
    assert!(
        closed_after >= limit - 0.2 && closed_after < limit + 2.0,
        "closed after {closed_after:.1} s, the first-byte limit is {limit} s"
    );
}
