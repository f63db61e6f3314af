//! Binding and serving. [`Application::build`] binds the listener (port 0 works, for tests);
//! [`Application::run_until_stopped`] serves HTTP/1.1 until the shutdown future resolves, then:
//!
//! 1. `/readyz` answers 503 at once, so Kubernetes stops routing new traffic here;
//! 2. requests are still served for `SHUTDOWN_DELAY_SECONDS` (endpoint removal takes a moment);
//! 3. the listener closes, idle connections close, in-flight requests finish — for at most
//!    `SHUTDOWN_DRAIN_SECONDS`; then the process exits 0.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::access_log::AccessLog;
use crate::config::Settings;
use crate::routes::{self, AppState, Readiness};

/// Largest request head (request line + headers) accepted; larger gets the connection closed.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers accepted in one request.
pub const MAX_HEADERS: usize = 64;
/// A client must send its whole request head within this time (slowloris guard).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, not yet serving, service.
pub struct Application {
    listener: TcpListener,
    router: Router,
    readiness: Readiness,
    settings: Settings,
}

impl Application {
    /// Binds `BIND_ADDRESS:PORT` and logs the address actually bound. Requests are logged to
    /// `access_log` when given (see [`crate::telemetry::init`] for where it comes from).
    pub async fn build(settings: Settings, access_log: Option<AccessLog>) -> std::io::Result<Self> {
        let listener =
            TcpListener::bind(SocketAddr::new(settings.bind_address, settings.port)).await?;
        let readiness = Readiness::new();
        let state = AppState {
            readiness: readiness.clone(),
            test_delay: settings.test_delay,
        };
        let router = routes::router(state, settings.request_timeout, access_log);
        let app = Self {
            listener,
            router,
            readiness,
            settings,
        };
        tracing::info!(address = %app.local_addr()?, "listening");
        Ok(app)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound port (useful when `PORT=0`).
    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Serves until `stop` resolves, then drains as described in the module docs.
    pub async fn run_until_stopped(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            router,
            readiness,
            settings,
        } = self;
        let graceful = GracefulShutdown::new();
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS)
            .header_read_timeout(HEADER_READ_TIMEOUT);
        tokio::pin!(stop);

        let accept = |stream: tokio::net::TcpStream| {
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let watched = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = watched.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        };

        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => accept(stream),
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut stop => break,
            }
        }

        readiness.shutting_down();
        tracing::info!(
            delay_s = settings.shutdown_delay.as_secs(),
            drain_s = settings.shutdown_drain.as_secs(),
            "shutting down: readiness is now 503"
        );
        if !settings.shutdown_delay.is_zero() {
            let deadline = tokio::time::sleep(settings.shutdown_delay);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    accepted = listener.accept() => if let Ok((stream, _)) = accepted { accept(stream) },
                    () = &mut deadline => break,
                }
            }
        }
        drop(listener);
        match tokio::time::timeout(settings.shutdown_drain, graceful.shutdown()).await {
            Ok(()) => tracing::info!("drained; exiting"),
            Err(_) => tracing::warn!(
                drain_s = settings.shutdown_drain.as_secs(),
                "drain deadline passed with requests still in flight; exiting"
            ),
        }
        Ok(())
    }
}
