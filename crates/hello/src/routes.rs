//! The service's HTTP surface: `/` (the page), `/healthz` (alive), `/readyz` (ready to serve).
//! What every request passes on the way (Host validation, body limit, timeout, access log,
//! `Connection: close` during shutdown) wraps it in [`crate::edge`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page, as the original tutorial's view returns it.
pub const HELLO: &str = "Hello, World!";

/// Readiness, shared between the routes and the shutdown sequence.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// Called once shutdown begins: `/readyz` answers 503 from then on.
    pub fn shutting_down(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

/// What the routes need.
#[derive(Debug, Clone)]
pub struct AppState {
    pub readiness: Readiness,
    /// Test hook (`HELLO_TEST_DELAY_MS`): how long `GET /` takes. Zero in production.
    pub test_delay: Duration,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(hello))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

async fn hello(State(state): State<AppState>) -> Response {
    if !state.test_delay.is_zero() {
        tokio::time::sleep(state.test_delay).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        HELLO,
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(readiness: Readiness) -> Router {
        let state = AppState {
            readiness,
            test_delay: Duration::ZERO,
        };
        router(state)
    }

    async fn call(router: Router, method: &str, uri: &str) -> (StatusCode, String, Option<String>) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            String::from_utf8(body.to_vec()).unwrap(),
            content_type,
        )
    }

    #[tokio::test]
    async fn root_says_hello_world_as_html() {
        let (status, body, ct) = call(app(Readiness::new()), "GET", "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "Hello, World!");
        assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"));
    }

    #[tokio::test]
    async fn head_root_is_ok_without_a_body() {
        let (status, body, ct) = call(app(Readiness::new()), "HEAD", "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "");
        assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"));
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_wrong_methods_405() {
        assert_eq!(
            call(app(Readiness::new()), "GET", "/nope").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(app(Readiness::new()), "POST", "/").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call(app(Readiness::new()), "DELETE", "/healthz").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn readiness_flips_to_503_when_shutdown_begins_while_health_stays_ok() {
        let readiness = Readiness::new();
        assert_eq!(
            call(app(readiness.clone()), "GET", "/readyz").await.0,
            StatusCode::OK
        );
        readiness.shutting_down();
        assert_eq!(
            call(app(readiness.clone()), "GET", "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            call(app(readiness.clone()), "GET", "/healthz").await.0,
            StatusCode::OK
        );
        assert_eq!(call(app(readiness), "GET", "/").await.0, StatusCode::OK);
    }
}
