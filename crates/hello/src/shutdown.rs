//! Waiting for the signals that end the service: SIGTERM (Kubernetes, `podman stop`) and
//! SIGINT (Ctrl-C). As PID 1 in a container the kernel delivers only signals we handle,
//! so both are handled explicitly.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal as unix_signal};

/// Installs the SIGTERM and SIGINT handlers **now** and returns a future that resolves on the
/// first of them. Installing eagerly matters: a signal that arrives after the service answers
/// its first request, but before this future is first polled, must still drain gracefully
/// rather than kill the process. Call it inside the Tokio runtime, before serving.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    let term = unix_signal(SignalKind::terminate());
    let int = unix_signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
                    _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
                }
            }
            _ => {
                tracing::error!("cannot install signal handlers; stopping only on Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
