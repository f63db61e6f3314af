//! The real binary, over a real socket.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Service, request};

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
