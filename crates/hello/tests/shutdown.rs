//! Graceful shutdown: what makes a Kubernetes rolling update lose no request.

mod support;

use std::time::{Duration, Instant};

use support::{Service, request};

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
    let mut service = Service::start(&[("SHUTDOWN_DELAY_SECONDS", "2")]);
    service.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
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
        ("SHUTDOWN_DRAIN_SECONDS", "1"),
    ]);
    let port = service.port;
    let _slow = std::thread::spawn(move || request(port, "GET", "/"));
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    service.signal("TERM");
    assert!(service.wait_exit(Duration::from_secs(5)).success());
    assert!(signalled.elapsed() < Duration::from_secs(3));
}
