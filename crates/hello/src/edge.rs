//! What every request passes on its way to and from the routes, on one hot path:
//!
//! - **Host validation** (RFC 9112 §3.2): an HTTP/1.1 request without `Host`, any request with
//!   more than one, or with a value that is not `host[:port]`, gets 400 and is not routed;
//! - **`Connection: close` once shutdown begins**, so keep-alive clients close at a response
//!   boundary instead of racing the drain (see [`crate::startup`]);
//! - **the access log**: one line per request, rejected ones included.
//!
//! It is a hand-written [`Service`] rather than axum middleware: no boxed future, no
//! per-request allocation. Not here: routing and the per-route limits ([`crate::routes`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use tower::Service;

use crate::access_log::AccessLog;
use crate::routes::Readiness;

/// The router wrapped in the checks above; cheap to clone (one per connection).
#[derive(Clone)]
pub struct Edge {
    router: Router,
    readiness: Readiness,
    access_log: Option<AccessLog>,
}

impl Edge {
    pub fn new(router: Router, readiness: Readiness, access_log: Option<AccessLog>) -> Self {
        Self {
            router,
            readiness,
            access_log,
        }
    }
}

impl<B> Service<Request<B>> for Edge
where
    Router: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<<Router as Service<Request<B>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <Router as Service<Request<B>>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let logged = self.access_log.clone().map(|log| Logged {
            log,
            method: request.method().clone(),
            uri: request.uri().clone(),
            started: Instant::now(),
        });
        let kind = match host_problem(&request) {
            None => Kind::Routed {
                future: self.router.call(request),
            },
            Some(problem) => Kind::Rejected {
                response: Some(bad_request(problem)),
            },
        };
        EdgeFuture {
            kind,
            logged,
            readiness: self.readiness.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The routed (or rejected) request, finished with the response-side checks.
    pub struct EdgeFuture<F> {
        #[pin]
        kind: Kind<F>,
        logged: Option<Logged>,
        readiness: Readiness,
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
    log: AccessLog,
    method: Method,
    uri: Uri,
    started: Instant,
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.kind.project() {
            KindProjection::Routed { future } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
            KindProjection::Rejected { response } => response.take().unwrap_or_else(|| {
                // Polled again after completion: a caller bug; answer rather than panic.
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }),
        };
        if !this.readiness.is_ready() {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(logged) = this.logged.take() {
            logged.log.record(
                logged.method.as_str(),
                logged.uri.path(),
                response.status().as_u16(),
                u64::try_from(logged.started.elapsed().as_micros()).unwrap_or(u64::MAX),
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
