//! Waiting for the signals that end the service: SIGTERM (Kubernetes, `podman stop`) and
//! SIGINT (Ctrl-C). As PID 1 in a container the kernel delivers only signals we handle,
//! so both are handled explicitly.

use tokio::signal::unix::{SignalKind, signal as unix_signal};

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    let term = unix_signal(SignalKind::terminate());
    let int = unix_signal(SignalKind::interrupt());
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
