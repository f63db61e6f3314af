//! A bare axum "Hello, World!": one route, no middleware, no logging, `axum::serve`.
//!
//! Only `bench/hello-load` uses it, as the anchor hello's throughput is compared with; it is a
//! workspace member (same release profile, same lock file) but not a default member.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8001".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
    axum::serve(listener, app).await
}
