//! The real binary, over a real socket.

use std::process::Command;
use std::time::Duration;

use crate::support::{Service, request};

#[test]
fn serves_the_page_health_and_readiness() {
    let service = Service::start(&[]);
    let root = request(service.port, "GET", "/").unwrap();
    assert_eq!(root.status, 200);
    assert_eq!(root.body, "Hello, World!");
    assert_eq!(
        root.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(request(service.port, "HEAD", "/").unwrap().status, 200);
    assert_eq!(
        request(service.port, "GET", "/healthz").unwrap().status,
        200
    );
    assert_eq!(request(service.port, "GET", "/readyz").unwrap().status, 200);
    assert_eq!(request(service.port, "GET", "/admin").unwrap().status, 404);
    assert_eq!(request(service.port, "PUT", "/").unwrap().status, 405);
}

#[test]
fn access_log_lines_are_structured_json() {
    use std::io::BufRead;
    let mut service = Service::start(&[]);
    request(service.port, "GET", "/healthz").unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        service.stdout.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["target"] == "access" {
            assert_eq!(v["path"], "/healthz");
            assert_eq!(v["status"], 200);
            assert_eq!(v["method"], "GET");
            assert!(v["latency_us"].is_u64());
            break;
        }
    }
}

#[test]
fn access_lines_follow_log_level_and_access_log_settings() {
    use std::io::Read;
    for env in [
        [("ACCESS_LOG", "false")],
        [("LOG_LEVEL", "info,access=warn")],
    ] {
        let mut service = Service::start(&env);
        request(service.port, "GET", "/").unwrap();
        service.signal("TERM");
        assert!(service.wait_exit(Duration::from_secs(10)).success());
        let mut rest = String::new();
        service.stdout.read_to_string(&mut rest).unwrap();
        assert!(
            !rest.contains("\"target\":\"access\""),
            "{env:?} must silence the access log: {rest}"
        );
    }
    // And on: the line is written by exit at the latest, even within the flush interval.
    let mut service = Service::start(&[]);
    request(service.port, "GET", "/").unwrap();
    service.signal("TERM");
    assert!(service.wait_exit(Duration::from_secs(10)).success());
    let mut rest = String::new();
    service.stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("\"target\":\"access\""), "{rest}");
}

#[test]
fn oversized_request_heads_are_refused() {
    use std::io::{Read, Write};
    let service = Service::start(&[]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let big = "x".repeat(64 * 1024);
    let _ = write!(stream, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "a 64 KiB header must not be served: {reply:.100}"
    );
}

/// Sends `raw` and reads until the server closes: (reply, seconds until closed).
fn exchange(port: u16, raw: &[u8], wait: Duration) -> (String, f64) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(raw).unwrap();
    let started = std::time::Instant::now();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    (
        String::from_utf8_lossy(&reply).into_owned(),
        started.elapsed().as_secs_f64(),
    )
}

#[test]
fn a_body_over_the_limit_is_refused_with_413_before_it_is_read() {
    let service = Service::start(&[]);
    // Only the head: the refusal must not wait for 20 kB that never come.
    let (reply, _) = exchange(
        service.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply:.200}");
    // At the limit it is routed as usual (405: / only answers GET and HEAD).
    let body = "x".repeat(hello::edge::MAX_BODY_BYTES);
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (reply, _) = exchange(service.port, raw.as_bytes(), Duration::from_secs(5));
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply:.200}");
}

#[test]
fn too_many_headers_are_refused_with_431() {
    let service = Service::start(&[]);
    // A request with `total` header lines in all (Host and Connection included).
    let request = |total: usize| {
        let extra: String = (0..total - 2).map(|i| format!("X-H{i}: v\r\n")).collect();
        format!("GET / HTTP/1.1\r\nHost: a\r\n{extra}Connection: close\r\n\r\n")
    };
    let cap = hello::startup::MAX_HEADERS;
    let (reply, _) = exchange(
        service.port,
        request(cap).as_bytes(),
        Duration::from_secs(5),
    );
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "{cap} headers: {reply:.200}"
    );
    let (reply, _) = exchange(
        service.port,
        request(cap + 1).as_bytes(),
        Duration::from_secs(5),
    );
    assert!(
        reply.starts_with("HTTP/1.1 431"),
        "{} headers: {reply:.200}",
        cap + 1
    );
}

/// A client that never finishes its request head (slowloris) is cut off after
/// HEADER_TIMEOUT_SECONDS instead of holding a connection forever. (Its default, 10 s, is a
/// unit test of the configuration; here it is short so the suite stays fast.)
#[test]
fn an_unfinished_request_head_is_dropped_after_the_header_timeout() {
    let limit = 1.0;
    let service = Service::start(&[("HEADER_TIMEOUT_SECONDS", "1")]);
    let (reply, closed_after) = exchange(
        service.port,
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        Duration::from_secs_f64(limit + 10.0),
    );
    assert!(reply.is_empty(), "{reply:.200}");
    assert!(
        closed_after >= limit - 0.2 && closed_after < limit + 3.0,
        "closed after {closed_after:.1} s, the limit is {limit} s"
    );
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_hello"))
        .env("PORT", "eighty")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PORT=\"eighty\""), "{stderr}");
    assert!(stderr.contains("port number"), "{stderr}");
}

/// RFC 9112 §3.2: an HTTP/1.1 request without Host, any request with two, or with a Host that
/// is not `host[:port]`, gets 400; HTTP/1.0 may leave Host out.
#[test]
fn requests_with_a_missing_duplicate_or_invalid_host_get_400() {
    let service = Service::start(&[]);
    let wait = Duration::from_secs(5);
    for (what, raw) in [
        ("no Host", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
        (
            "two Hosts",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        ),
        (
            "the same Host twice",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\nConnection: close\r\n\r\n",
        ),
        (
            "Host: a b/c",
            "GET / HTTP/1.1\r\nHost: a b/c\r\nConnection: close\r\n\r\n",
        ),
        (
            "Host with userinfo",
            "GET / HTTP/1.1\r\nHost: user@a\r\nConnection: close\r\n\r\n",
        ),
        (
            "HTTP/1.0, two Hosts",
            "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
    ] {
        let (reply, _) = exchange(service.port, raw.as_bytes(), wait);
        // The status line carries the request's version (HTTP/1.0 for an HTTP/1.0 request).
        assert!(
            reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.0 400"),
            "{what}: {reply:.200}"
        );
        assert!(!reply.contains("Hello, World!"), "{what} is not routed");
    }
    for (what, raw) in [
        ("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"),
        (
            "Host with a port",
            "GET / HTTP/1.1\r\nHost: example.com:8000\r\nConnection: close\r\n\r\n",
        ),
        (
            "IPv6 Host",
            "GET / HTTP/1.1\r\nHost: [::1]:8000\r\nConnection: close\r\n\r\n",
        ),
    ] {
        let (reply, _) = exchange(service.port, raw.as_bytes(), wait);
        assert!(
            reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
            "{what}: {reply:.200}"
        );
        assert!(reply.ends_with("Hello, World!"), "{what}: {reply:.200}");
    }
}
