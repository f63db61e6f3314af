//! Graceful shutdown: what makes a Kubernetes rolling update lose no request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Service, request};

/// SIGTERM arrives while a slow request is in flight: the request still completes with 200,
/// new connections are refused, and the process exits 0.
#[test]
fn sigterm_lets_the_in_flight_request_finish_and_exits_0() {
    let mut service = Service::start(&[("HELLO_TEST_DELAY_MS", "1000")]);
    let port = service.port;
    let in_flight = std::thread::spawn(move || request(port, "GET", "/"));
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    service.signal("TERM");

    let response = in_flight
        .join()
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "Hello, World!");

    let status = service.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status: {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "drained promptly"
    );
    assert!(
        request(port, "GET", "/healthz").is_err(),
        "listener is closed"
    );
}

#[test]
fn sigint_also_exits_0() {
    let mut service = Service::start(&[]);
    service.signal("INT");
    assert!(service.wait_exit(Duration::from_secs(10)).success());
}

/// During the shutdown delay the service still serves, but says it is not ready.
#[test]
fn during_the_shutdown_delay_readiness_is_503_and_requests_are_served() {
    let mut service = Service::start(&[("SHUTDOWN_DELAY_SECONDS", "0.8")]);
    service.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(request(service.port, "GET", "/readyz").unwrap().status, 503);
    assert_eq!(request(service.port, "GET", "/").unwrap().status, 200);
    assert!(service.wait_exit(Duration::from_secs(10)).success());
}

/// A request slower than the drain deadline does not keep the process alive forever.
#[test]
fn the_drain_deadline_bounds_shutdown() {
    let mut service = Service::start(&[
        ("HELLO_TEST_DELAY_MS", "8000"),
        ("REQUEST_TIMEOUT_SECONDS", "30"),
        ("SHUTDOWN_DRAIN_SECONDS", "0.5"),
    ]);
    let port = service.port;
    let _slow = std::thread::spawn(move || request(port, "GET", "/"));
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    service.signal("TERM");
    assert!(service.wait_exit(Duration::from_secs(5)).success());
    assert!(signalled.elapsed() < Duration::from_secs(3));
}

/// What one keep-alive client saw while looping `GET /`.
#[derive(Debug, Default)]
struct ClientTally {
    /// Complete 200 responses.
    served: u64,
    /// Of those, how many said `Connection: close`.
    told_to_close: u64,
    /// Requests written to an open connection that got no complete response: lost requests.
    lost: u64,
    /// Connections refused before shutdown began (the service must be reachable until then).
    refused_early: u64,
}

/// Reads one response off a keep-alive connection: `Some(connection_close)` for a complete
/// 200, `None` if the connection ended (or timed out) first.
fn read_response(reader: &mut BufReader<TcpStream>) -> Option<bool> {
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    if !status.starts_with("HTTP/1.1 200") {
        return None;
    }
    let (mut length, mut close) = (None, false);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "connection" => close = value.trim().eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    (body == b"Hello, World!").then_some(close)
}

/// One client: reuses its connection until told `Connection: close`, then opens another.
/// `shutdown_at` is set once SIGTERM is sent; after `reconnect_until` (measured from then) it
/// opens no new connection, as a load balancer that has taken the endpoint out of rotation.
fn keep_alive_client(
    port: u16,
    until: Instant,
    shutdown_at: &std::sync::OnceLock<Instant>,
    reconnect_until: Duration,
) -> ClientTally {
    let mut tally = ClientTally::default();
    let mut connection: Option<BufReader<TcpStream>> = None;
    while Instant::now() < until {
        let reader = match connection.as_mut() {
            Some(reader) => reader,
            None => {
                if shutdown_at
                    .get()
                    .is_some_and(|at| at.elapsed() >= reconnect_until)
                {
                    break;
                }
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(stream) => {
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        connection.insert(BufReader::new(stream))
                    }
                    // Refused after shutdown began: the listener is closed; nothing was sent.
                    Err(_) if shutdown_at.get().is_some() => break,
                    Err(_) => {
                        tally.refused_early += 1;
                        break;
                    }
                }
            }
        };
        let sent = reader
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        match sent.ok().and_then(|()| read_response(reader)) {
            Some(close) => {
                tally.served += 1;
                if close {
                    tally.told_to_close += 1;
                    connection = None;
                }
            }
            None => {
                tally.lost += 1;
                connection = None;
            }
        }
    }
    tally
}

/// Eight keep-alive clients loop `GET /` while SIGTERM arrives: not one request is lost, with
/// and without a shutdown delay, and the process exits 0. Before responses carried
/// `Connection: close` during shutdown, the drain lost one request per connection.
#[test]
fn sigterm_under_keep_alive_load_loses_no_request() {
    const CLIENTS: usize = 8;
    for delay_s in [0.0, 0.6] {
        let delay = delay_s.to_string();
        let mut service = Service::start(&[("SHUTDOWN_DELAY_SECONDS", delay.as_str())]);
        let port = service.port;
        let Service { child, stdout, .. } = &mut service;
        let shutdown_at = std::sync::OnceLock::new();
        // New connections stop halfway through the delay (with no delay: at once).
        let reconnect_until = Duration::from_secs_f64(delay_s / 2.0);
        let until = Instant::now() + Duration::from_secs_f64(4.0 + delay_s);
        let (tallies, status) = std::thread::scope(|scope| {
            // The access log must keep flowing, or the service blocks on a full pipe.
            scope.spawn(|| std::io::copy(stdout, &mut std::io::sink()));
            let clients: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let shutdown_at = &shutdown_at;
                    scope
                        .spawn(move || keep_alive_client(port, until, shutdown_at, reconnect_until))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(700));
            shutdown_at.set(Instant::now()).unwrap();
            crate::support::signal(child, "TERM");
            let status = crate::support::wait_exit(child, Duration::from_secs(10));
            let tallies: Vec<ClientTally> =
                clients.into_iter().map(|c| c.join().unwrap()).collect();
            (tallies, status)
        });
        let lost: u64 = tallies.iter().map(|t| t.lost).sum();
        let served: u64 = tallies.iter().map(|t| t.served).sum();
        let told: u64 = tallies.iter().map(|t| t.told_to_close).sum();
        assert_eq!(
            lost, 0,
            "delay {delay_s} s: {lost} requests lost of {served} served: {tallies:?}"
        );
        assert!(
            tallies.iter().all(|t| t.refused_early == 0 && t.served > 0),
            "delay {delay_s} s: every client is served until shutdown: {tallies:?}"
        );
        assert!(
            told >= CLIENTS as u64,
            "delay {delay_s} s: each connection is told to close: {tallies:?}"
        );
        assert!(
            status.success(),
            "delay {delay_s} s: exit status {status:?}"
        );
    }
}
