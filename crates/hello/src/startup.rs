//! Binding and serving. [`Application::build`] binds the listener (port 0 works, for tests);
//! [`Application::run_until_stopped`] serves HTTP/1.1 until the shutdown future resolves, then:
//!
//! 1. `/readyz` answers 503 at once, so Kubernetes stops routing new traffic here;
//! 2. requests are still served for `SHUTDOWN_DELAY_SECONDS` (endpoint removal takes a moment);
//! 3. the listener closes (connections already queued are still served), connections still
//!    open get [`IDLE_LINGER`] to finish, then idle ones close and in-flight requests finish —
//!    for at most `SHUTDOWN_DRAIN_SECONDS` in all; then the process exits 0.
//!
//! From step 1 on, every response carries `Connection: close`: a keep-alive client closes at a
//! response boundary rather than sending its next request into a connection the drain closes.
//!
//! Connections are capped at `MAX_CONNECTIONS` (see [`crate::connections`]); one that sends
//! nothing within `FIRST_BYTE_TIMEOUT_SECONDS` is closed, and costs no buffers until it does.

use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

use crate::access_log::AccessLog;
use crate::config::Settings;
use crate::connections::{Connections, Registration};
use crate::edge::Edge;
use crate::routes::{self, AppState, Readiness};

/// Largest request head (request line + headers) accepted; larger gets the connection closed.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers accepted in one request.
pub const MAX_HEADERS: usize = 64;
/// In the drain, how long connections get to close themselves before the idle ones are closed.
pub const IDLE_LINGER: Duration = Duration::from_secs(1);
/// File descriptors kept free for everything that is not a connection (stdout, the listener…).
const FILES_RESERVED: u64 = 32;

/// A bound, not yet serving, service.
pub struct Application {
    listener: TcpListener,
    service: Edge,
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
        let router = routes::router(state);
        let service = Edge::new(
            router,
            readiness.clone(),
            access_log,
            settings.request_timeout,
        );
        let app = Self {
            listener,
            service,
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
            service,
            readiness,
            settings,
        } = self;
        let max_connections = connection_cap(settings.max_connections);
        let connections = Connections::new(max_connections);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS)
            .header_read_timeout(settings.header_timeout);
        tokio::pin!(stop);

        let accept = |stream: tokio::net::TcpStream| {
            let _ = stream.set_nodelay(true);
            let registration = connections.register();
            let service = TowerToHyperService::new(service.for_connection());
            let builder = builder.clone();
            tokio::spawn(serve_connection(
                stream,
                builder,
                service,
                registration,
                settings.first_byte_timeout,
            ));
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

        // With no delay the listener closes before readiness flips: a client told
        // `Connection: close` then finds the port closed instead of a queue that is reset.
        if settings.shutdown_delay.is_zero() {
            close_listener(listener, &accept).await;
            readiness.shutting_down();
            log_shutdown(&settings);
        } else {
            readiness.shutting_down();
            log_shutdown(&settings);
            let deadline = tokio::time::sleep(settings.shutdown_delay);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    accepted = listener.accept() => if let Ok((stream, _)) = accepted { accept(stream) },
                    () = &mut deadline => break,
                }
            }
            close_listener(listener, &accept).await;
        }
        let drain = async {
            // Busy connections close after their next response; give them a moment, then
            // close the idle rest and wait for the in-flight requests.
            let _ = tokio::time::timeout(IDLE_LINGER, connections.all_closed()).await;
            connections.close_all();
            connections.all_closed().await;
        };
        match tokio::time::timeout(settings.shutdown_drain, drain).await {
            Ok(()) => tracing::info!("drained; exiting"),
            Err(_) => tracing::warn!(
                drain_s = settings.shutdown_drain.as_secs(),
                open = connections.live(),
                "drain deadline passed with requests still in flight; exiting"
            ),
        }
        Ok(())
    }
}

/// One connection, from its first byte to its end; the registry may ask it to close early.
async fn serve_connection<S>(
    stream: TcpStream,
    builder: http1::Builder,
    service: S,
    registration: Registration,
    first_byte_timeout: Duration,
) where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Nothing is allocated for a connection until it sends something.
    let mut first = [0; 1];
    tokio::select! {
        // `peek`, not `readable`: readiness may be reported before any byte has arrived.
        peeked = tokio::time::timeout(first_byte_timeout, stream.peek(&mut first)) => {
            if !matches!(peeked, Ok(Ok(1))) {
                return;
            }
        }
        () = registration.close_requested() => return,
    }
    // Boxed: the waiting task above stays small; the connection's state is allocated now.
    let mut connection = Box::pin(builder.serve_connection(TokioIo::new(stream), service));
    let ended = tokio::select! {
        biased; // the connection first: it is what wakes this task on every request
        ended = connection.as_mut() => ended,
        () = registration.close_requested() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn log_shutdown(settings: &Settings) {
    tracing::info!(
        delay_s = settings.shutdown_delay.as_secs(),
        drain_s = settings.shutdown_drain.as_secs(),
        "shutting down: readiness is now 503"
    );
}

/// Closes the listener. Connections the kernel has already queued would be reset with it, so
/// they are accepted first (they are served, and told `Connection: close`).
async fn close_listener(listener: TcpListener, mut accept: impl FnMut(TcpStream)) {
    let queued = || {
        std::future::poll_fn(|cx| match listener.poll_accept(cx) {
            Poll::Ready(Ok((stream, _))) => Poll::Ready(Some(stream)),
            Poll::Ready(Err(_)) | Poll::Pending => Poll::Ready(None),
        })
    };
    while let Some(stream) = queued().await {
        accept(stream);
    }
    drop(listener);
}

/// `wanted`, lowered if the open-files limit cannot hold that many sockets.
fn connection_cap(wanted: usize) -> usize {
    let limit = raise_open_files_limit();
    let room = usize::try_from(limit.saturating_sub(FILES_RESERVED)).unwrap_or(usize::MAX);
    if wanted > room {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = limit,
            using = room.max(1),
            "MAX_CONNECTIONS is above what the open-files limit allows; raise the hard limit \
             (ulimit -Hn, or the container runtime's nofile limit) or lower MAX_CONNECTIONS"
        );
        room.max(1)
    } else {
        wanted
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit in force.
/// The usual soft default (1024) is far below what a server holding connections needs.
fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let Some(soft) = before.current else {
        return u64::MAX; // unlimited
    };
    if before.maximum.is_some_and(|hard| hard <= soft) {
        return soft;
    }
    let raised = Rlimit {
        current: before.maximum,
        maximum: before.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => before.maximum.unwrap_or(u64::MAX),
        Err(e) => {
            tracing::warn!(error = %e, soft, "cannot raise the open-files limit; keeping it");
            soft
        }
    }
}
