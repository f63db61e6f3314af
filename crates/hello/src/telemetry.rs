//! Structured logs through `tracing`, set up once at start: JSON lines for log collectors
//! (the default) or human-readable lines for a terminal.
//!
//! Lines go through a [`BatchWriter`]: a request appends its access-log line to an in-memory
//! buffer (no system call, no thread wake-up), and the buffer reaches stdout in one write every
//! [`FLUSH_INTERVAL`], as soon as it holds [`FLUSH_BYTES`], at once for warnings and errors,
//! and at exit. Under load this costs a fraction of a write per line; `bench/hello-load`
//! measures it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Longest a buffered line waits before it reaches stdout.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Buffered bytes that trigger a write at once.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// Installs the global subscriber. `level` is a level (`info`) or per-target levels
/// (`info,access=warn`); one that does not parse means `info`.
///
/// Keep the returned writer alive until exit: dropping it writes the last lines.
#[must_use = "dropping the writer flushes and stops it"]
pub fn init(format: LogFormat, level: &str) -> BatchWriter {
    let filter = parse_filter(level);
    let writer = BatchWriter::new(Box::new(std::io::stdout()));
    let builder = tracing_subscriber::fmt()
        .with_max_level(Level::TRACE)
        .with_writer(writer.make());
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
            .with(filter)
            .try_init(),
        LogFormat::Human => builder.finish().with(filter).try_init(),
    };
    writer
}

/// `LOG_LEVEL` as a filter: `warn`, `hello=debug`, `info,access=warn`; anything else `info`.
fn parse_filter(level: &str) -> Targets {
    level
        .parse::<Targets>()
        .ok()
        .filter(|_| !level.trim().is_empty())
        .unwrap_or_else(|| Targets::new().with_default(Level::INFO))
}

struct Shared {
    /// Whole lines not yet written.
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is taken and written, so batches reach the sink in order.
    sink: Mutex<Box<dyn Write + Send>>,
    stopping: AtomicBool,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush(&self) {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *self.pending());
        if !batch.is_empty() {
            // Nowhere to report a failing stdout; the service keeps serving.
            let _ = sink.write_all(&batch);
            let _ = sink.flush();
        }
    }
}

/// Batches log lines in memory and writes them from a background thread; see the module docs.
pub struct BatchWriter {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl BatchWriter {
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(FLUSH_BYTES)),
            sink: Mutex::new(sink),
            stopping: AtomicBool::new(false),
        });
        let background = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                while !background.stopping.load(Ordering::Acquire) {
                    std::thread::park_timeout(FLUSH_INTERVAL);
                    background.flush();
                }
            })
            .ok();
        Self { shared, flusher }
    }

    /// The handle `tracing_subscriber` writes through.
    pub fn make(&self) -> MakeBatch {
        MakeBatch {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for BatchWriter {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(flusher) = self.flusher.take() {
            flusher.thread().unpark();
            let _ = flusher.join();
        }
        self.shared.flush();
    }
}

/// Hands out one [`Line`] per event.
#[derive(Clone)]
pub struct MakeBatch {
    shared: Arc<Shared>,
}

impl MakeBatch {
    /// Appends whole lines to the batch (the access log's fast path).
    pub fn append(&self, lines: &[u8]) {
        Line {
            shared: &self.shared,
            urgent: false,
        }
        .append(lines);
    }
}

/// One event's bytes on their way into the batch.
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Line<'_> {
    fn append(&self, bytes: &[u8]) {
        let full = {
            let mut pending = self.shared.pending();
            pending.extend_from_slice(bytes);
            pending.len() >= FLUSH_BYTES
        };
        if full {
            self.shared.flush();
        }
    }
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.urgent {
            self.shared.flush();
        }
    }
}

impl<'a> MakeWriter<'a> for MakeBatch {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: false,
        }
    }

    /// Warnings and errors are written at once: they may precede a crash.
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_name_a_level_or_levels_per_target() {
        let warn = parse_filter("warn");
        assert!(warn.would_enable("hello", &Level::WARN));
        assert!(!warn.would_enable("hello", &Level::INFO));
        let quiet_access = parse_filter("info,access=warn");
        assert!(quiet_access.would_enable("hello::startup", &Level::INFO));
        assert!(!quiet_access.would_enable("access", &Level::INFO));
        assert!(parse_filter("hello=debug").would_enable("hello", &Level::DEBUG));
        for unusable in ["", "hello=loud"] {
            let info = parse_filter(unusable);
            assert!(info.would_enable("hello", &Level::INFO), "{unusable:?}");
            assert!(!info.would_enable("hello", &Level::DEBUG), "{unusable:?}");
        }
    }

    /// A sink the test can read while the writer owns it.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn subscriber(writer: &BatchWriter) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::fmt()
            .with_writer(writer.make())
            .with_ansi(false)
            .without_time()
            .finish()
    }

    #[test]
    fn info_lines_are_batched_and_all_written_in_order_on_drop() {
        let sink = Captured::default();
        let writer = BatchWriter::new(Box::new(sink.clone()));
        tracing::subscriber::with_default(subscriber(&writer), || {
            for i in 0..1000 {
                tracing::info!(i, "request");
            }
        });
        drop(writer);
        let text = sink.text();
        let numbers: Vec<usize> = text
            .lines()
            .map(|l| l.rsplit("i=").next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(numbers, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_warning_is_written_at_once_and_info_within_the_interval() {
        let sink = Captured::default();
        let writer = BatchWriter::new(Box::new(sink.clone()));
        tracing::subscriber::with_default(subscriber(&writer), || {
            tracing::info!("buffered");
            tracing::warn!("urgent");
        });
        // The warning flushed the batch, the earlier info line first.
        let text = sink.text();
        assert!(
            text.contains("buffered") && text.contains("urgent"),
            "{text}"
        );
        assert!(text.find("buffered") < text.find("urgent"));

        tracing::subscriber::with_default(subscriber(&writer), || tracing::info!("later"));
        std::thread::sleep(FLUSH_INTERVAL * 5);
        assert!(
            sink.text().contains("later"),
            "an info line must reach the sink within the flush interval"
        );
        drop(writer);
    }

    #[test]
    fn a_full_buffer_is_written_without_waiting_for_the_interval() {
        let sink = Captured::default();
        let writer = BatchWriter::new(Box::new(sink.clone()));
        let big = "x".repeat(FLUSH_BYTES);
        tracing::subscriber::with_default(subscriber(&writer), || tracing::info!("{big}"));
        assert!(sink.text().contains(&big));
        drop(writer);
    }
}
