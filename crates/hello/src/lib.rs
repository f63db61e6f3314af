//! hello: the "Hello, World!" service that ferry delivers, built to be a good Kubernetes citizen.
//!
//! - [`config`]: typed settings from the environment, with documented defaults.
//! - [`routes`]: `/`, `/healthz`, `/readyz` and their limits (timeout, body size).
//! - [`edge`]: around the routes: Host validation, the access log, `Connection: close` in shutdown.
//! - [`startup`]: binds the listener and serves until a shutdown signal, then drains.
//! - [`connections`]: the live connections, their cap, and closing them for the drain.
//! - [`shutdown`]: SIGTERM/SIGINT handling.
//! - [`telemetry`]: structured logs (JSON or human), batched on their way to stdout.
//! - [`access_log`]: the per-request line, on a fast path into the same batch.
//!
//! Not here: anything about delivery; that is ferry's job.

pub mod access_log;
pub mod config;
pub mod connections;
pub mod edge;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
