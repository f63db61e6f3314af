//! What every request passes on its way to and from the routes, on one hot path:
//!
//! - **Host validation** (RFC 9112 §3.2): an HTTP/1.1 request without `Host`, any request with
//!   more than one, or with a value that is not `host[:port]`, gets 400 and is not routed;
//! - **`Connection: close` once shutdown begins**, so keep-alive clients close at a response
//!   boundary instead of racing the drain (see [`crate::startup`]);
//! - **the limits**: a body declared larger than [`MAX_BODY_BYTES`] gets 413 before it is read
//!   (a body without a length is cut off at the limit), a request running longer than
//!   `REQUEST_TIMEOUT_SECONDS` gets 408;
//! - **the access log**: one line per request, rejected ones included.
//!
//! It is a hand-written [`Service`] rather than axum and tower-http middleware, because this is
//! the per-request path `bench/hello-load` measures: no boxed future, no layer per check, and no
//! timer for a request that is answered when first polled (the 408 timer is only armed once
//! the routes return `Pending`). Not here: routing ([`crate::routes`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::Limited;
use tokio::time::Sleep;
use tower::Service;

use crate::access_log::AccessLog;
use crate::routes::Readiness;

/// Largest request body accepted; the service takes no input, so this is small.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The router wrapped in the checks above; cheap to clone (one per connection).
#[derive(Clone)]
pub struct Edge {
    router: Router,
    shared: Arc<Shared>,
}

/// What every request's future needs after the routes have answered.
struct Shared {
    readiness: Readiness,
    access_log: Option<AccessLog>,
    request_timeout: Duration,
}

impl Edge {
    pub fn new(
        router: Router,
        readiness: Readiness,
        access_log: Option<AccessLog>,
        request_timeout: Duration,
    ) -> Self {
        Self {
            router,
            shared: Arc::new(Shared {
                readiness,
                access_log,
                request_timeout,
            }),
        }
    }

    /// A copy for one connection. Its requests share the copy's counter, not one counter
    /// for the whole process that both worker threads would keep pulling between their caches.
    pub fn for_connection(&self) -> Self {
        Self {
            router: self.router.clone(),
            shared: Arc::new(Shared {
                readiness: self.shared.readiness.clone(),
                access_log: self.shared.access_log.clone(),
                request_timeout: self.shared.request_timeout,
            }),
        }
    }
}

impl<B> Service<Request<B>> for Edge
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<<Router as Service<Request<Body>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <Router as Service<Request<Body>>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let logged = self.shared.access_log.is_some().then(|| Logged {
            method: request.method().clone(),
            uri: request.uri().clone(),
        });
        let kind = match rejection(&request) {
            None => Kind::Routed {
                future: self.router.call(request.map(limit_body)),
            },
            Some(response) => Kind::Rejected {
                response: Some(response),
            },
        };
        EdgeFuture {
            kind,
            timer: None,
            started,
            logged,
            shared: self.shared.clone(),
        }
    }
}

/// A body that is not empty is read through a limit (one with a declared length over the
/// limit has already been refused).
fn limit_body<B>(body: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if body.is_end_stream() {
        Body::new(body)
    } else {
        Body::new(Limited::new(body, MAX_BODY_BYTES))
    }
}

/// The response for a request that must not be routed, if it is one.
fn rejection<B>(request: &Request<B>) -> Option<Response> {
    if let Some(problem) = host_problem(request) {
        return Some(bad_request(problem));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Some((StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response());
    }
    None
}

pin_project_lite::pin_project! {
    /// The routed (or rejected) request, finished with the response-side checks.
    pub struct EdgeFuture<F> {
        #[pin]
        kind: Kind<F>,
        // Armed only if the routes do not answer on the first poll.
        timer: Option<Pin<Box<Sleep>>>,
        started: Instant,
        logged: Option<Logged>,
        shared: Arc<Shared>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProjection]
    enum Kind<F> {
        Routed { #[pin] future: F },
        Rejected { response: Option<Response> },
    }
}

/// What the access line needs from the request.
struct Logged {
    method: Method,
    uri: Uri,
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut response = match this.kind.as_mut().project() {
            KindProjection::Routed { future } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => {
                    let deadline = *this.started + this.shared.request_timeout;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Too slow: drop the handler's future and answer 408.
                    this.kind.set(Kind::Rejected { response: None });
                    StatusCode::REQUEST_TIMEOUT.into_response()
                }
            },
            KindProjection::Rejected { response } => response.take().unwrap_or_else(|| {
                // Polled again after completion: a caller bug; answer rather than panic.
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }),
        };
        if !this.shared.readiness.is_ready() {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let (Some(log), Some(logged)) = (&this.shared.access_log, this.logged.take()) {
            log.record(
                logged.method.as_str(),
                logged.uri.path(),
                response.status().as_u16(),
                u64::try_from(this.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            );
        }
        Poll::Ready(Ok(response))
    }
}

/// Why a request's `Host` is unacceptable, if it is.
fn host_problem<B>(request: &Request<B>) -> Option<&'static str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version() == Version::HTTP_11 => {
            Some("an HTTP/1.1 request needs a Host header")
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some("more than one Host header"),
        (Some(host), None) if !is_valid_host(host.as_bytes()) => {
            Some("the Host header is not host[:port]")
        }
        (Some(_), None) => None,
    }
}

/// 400, closing the connection: a client this confused should start afresh.
fn bad_request(problem: &'static str) -> Response {
    let mut response =
        (StatusCode::BAD_REQUEST, Body::from(format!("{problem}\n"))).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2). An empty value is valid:
/// it is what a client sends for a target with no authority.
pub fn is_valid_host(value: &[u8]) -> bool {
    let (host_ok, rest) = match value.strip_prefix(b"[") {
        Some(literal) => match literal.iter().position(|&b| b == b']') {
            Some(end) => (is_ip_literal(&literal[..end]), &literal[end + 1..]),
            None => return false,
        },
        None => {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            (is_reg_name(&value[..end]), &value[end..])
        }
    };
    let port_ok = match rest.strip_prefix(b":") {
        Some(port) => port.iter().all(u8::is_ascii_digit),
        None => rest.is_empty(),
    };
    host_ok && port_ok
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`; IPv4 addresses are reg-names too.
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                if !(name.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && name.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
            }
            b if is_unreserved(b) || is_sub_delim(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// Inside `[` `]`: an IPv6 address or `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn is_ip_literal(literal: &[u8]) -> bool {
    if let Some(future) = literal.strip_prefix(b"v").or(literal.strip_prefix(b"V")) {
        let Some(dot) = future.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, rest) = (&future[..dot], &future[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !rest.is_empty()
            && rest
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    std::str::from_utf8(literal).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{self, AppState};
    use tower::ServiceExt;

    fn edge(test_delay: Duration, request_timeout: Duration) -> Edge {
        let state = AppState {
            readiness: Readiness::new(),
            test_delay,
        };
        Edge::new(
            routes::router(state),
            Readiness::new(),
            None,
            request_timeout,
        )
    }

    fn get(version: Version) -> Request<Body> {
        Request::builder()
            .version(version)
            .uri("/")
            .header(header::HOST, "localhost")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_request_over_the_timeout_gets_408_and_a_quick_one_200() {
        let slow = edge(Duration::from_millis(300), Duration::from_millis(50));
        let response = slow.oneshot(get(Version::HTTP_11)).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        let quick = edge(Duration::from_millis(10), Duration::from_millis(500));
        let response = quick.oneshot(get(Version::HTTP_11)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_body_is_read_at_most_up_to_the_limit() {
        use http_body_util::{BodyExt, Full};
        let over = limit_body(Full::new(Bytes::from(vec![b'x'; MAX_BODY_BYTES + 1])));
        assert!(over.collect().await.is_err());
        let at = limit_body(Full::new(Bytes::from(vec![b'x'; MAX_BODY_BYTES])));
        assert_eq!(at.collect().await.unwrap().to_bytes().len(), MAX_BODY_BYTES);
    }

    #[tokio::test]
    async fn once_shutdown_begins_responses_say_connection_close() {
        let readiness = Readiness::new();
        let state = AppState {
            readiness: readiness.clone(),
            test_delay: Duration::ZERO,
        };
        let edge = Edge::new(
            routes::router(state),
            readiness.clone(),
            None,
            Duration::from_secs(1),
        );
        let before = edge.clone().oneshot(get(Version::HTTP_11)).await.unwrap();
        assert_eq!(before.headers().get(header::CONNECTION), None);
        readiness.shutting_down();
        let after = edge.oneshot(get(Version::HTTP_11)).await.unwrap();
        assert_eq!(after.status(), StatusCode::OK);
        assert_eq!(after.headers()[header::CONNECTION], "close");
    }

    #[test]
    fn names_addresses_and_ports_are_valid_hosts() {
        for host in [
            "localhost",
            "example.com:8080",
            "127.0.0.1",
            "10.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a%20b",
            "",
            "example.com:",
        ] {
            assert!(is_valid_host(host.as_bytes()), "{host:?} is valid");
        }
    }

    #[test]
    fn spaces_slashes_userinfo_and_broken_literals_are_not() {
        for host in [
            "a b/c",
            "a/b",
            "user@example.com",
            "example.com:80x",
            "example.com:80:81",
            "[::1",
            "[::1]x",
            "[not-an-address]",
            "[v1.]",
            "a%2",
            "a%zz",
            "exa mple",
            "\u{e9}t\u{e9}.example",
        ] {
            assert!(!is_valid_host(host.as_bytes()), "{host:?} is invalid");
        }
    }

    fn request(version: Version, hosts: &[&str]) -> Request<()> {
        let mut builder = Request::builder().version(version).uri("/");
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn http_1_1_needs_exactly_one_valid_host_and_http_1_0_none() {
        assert_eq!(host_problem(&request(Version::HTTP_11, &["a"])), None);
        assert!(host_problem(&request(Version::HTTP_11, &[])).is_some());
        assert!(host_problem(&request(Version::HTTP_11, &["a", "a"])).is_some());
        assert!(host_problem(&request(Version::HTTP_11, &["a b/c"])).is_some());
        assert_eq!(host_problem(&request(Version::HTTP_10, &[])), None);
        assert!(host_problem(&request(Version::HTTP_10, &["a", "b"])).is_some());
    }
}
