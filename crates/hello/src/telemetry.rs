//! Structured logs through `tracing`, set up once at start: JSON lines for log collectors
//! (the default) or human-readable lines for a terminal.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `level` is a tracing filter such as `info`.
///
/// Lines are written by a background thread so request handlers never wait on stdout; keep
/// the returned guard alive until exit so the last lines are flushed.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat, level: &str) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Under overload, wait rather than drop lines: access logs are records.
        .lossy(false)
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    };
    guard
}
