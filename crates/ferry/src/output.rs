//! Progress reporting: spinners on a terminal, one plain line per event in CI,
//! nothing but the final JSON document on stdout with `--output json`.
//!
//! Stages report through a [`Reporter`]; they never print directly. Human-readable
//! progress goes to stderr so stdout stays clean for results (`REPO@sha256:…`, JSON).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::OutputFormat;

/// Where and how progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spinners and colours on a terminal.
    Terminal,
    /// One line per event, for logs.
    Plain,
    /// Progress suppressed; the caller prints a JSON summary at the end.
    Json,
}

impl Mode {
    /// Picks the mode from the flag, or from whether stderr is a terminal.
    pub fn detect(flag: Option<OutputFormat>) -> Self {
        match flag {
            Some(OutputFormat::Json) => Mode::Json,
            Some(OutputFormat::Plain) => Mode::Plain,
            Some(OutputFormat::Human) if std::io::stderr().is_terminal() => Mode::Terminal,
            Some(OutputFormat::Human) => Mode::Plain,
            None if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() => {
                Mode::Terminal
            }
            None => Mode::Plain,
        }
    }
}

/// Reports the progress of stages to a person or a log.
#[derive(Debug, Clone)]
pub struct Reporter {
    mode: Mode,
}

impl Reporter {
    pub fn new(mode: Mode) -> Self {
        Self { mode }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Starts a stage; finish it with [`Stage::done`] or [`Stage::failed`].
    pub fn stage(&self, name: &str, what: impl Into<String>) -> Stage {
        let what = what.into();
        let spinner = match self.mode {
            Mode::Terminal => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:>8} {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(name.to_string());
                bar.set_message(what.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                Some(bar)
            }
            Mode::Plain => {
                eprintln!("{name:>8} … {what}");
                None
            }
            Mode::Json => None,
        };
        Stage {
            name: name.to_string(),
            mode: self.mode,
            started: Instant::now(),
            spinner,
        }
    }

    /// A stage that does not run, and why (`--skip-tests`, `plan: would push …`).
    pub fn skipped(&self, name: &str, why: &str) {
        match self.mode {
            Mode::Terminal | Mode::Plain => eprintln!("- {name:>8} skipped: {why}"),
            Mode::Json => tracing::info!(stage = %name, "skipped: {why}"),
        }
    }

    /// A line of information outside any stage.
    pub fn info(&self, message: impl AsRef<str>) {
        match self.mode {
            Mode::Terminal | Mode::Plain => eprintln!("{}", message.as_ref()),
            Mode::Json => tracing::info!("{}", message.as_ref()),
        }
    }
}

/// A running stage. Dropping it without finishing reports nothing.
#[derive(Debug)]
pub struct Stage {
    name: String,
    mode: Mode,
    started: Instant,
    spinner: Option<ProgressBar>,
}

impl Stage {
    /// Updates the stage's progress message (e.g. a rollout's "2 of 3 updated replicas").
    pub fn progress(&self, message: impl AsRef<str>) {
        match (&self.spinner, self.mode) {
            (Some(bar), _) => bar.set_message(message.as_ref().to_string()),
            (None, Mode::Plain) => eprintln!("{:>8}   {}", self.name, message.as_ref()),
            (None, _) => tracing::debug!(stage = %self.name, "{}", message.as_ref()),
        }
    }

    /// Time since the stage started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Marks the stage successful with a one-line summary; returns its duration.
    pub fn done(self, summary: impl AsRef<str>) -> Duration {
        self.finish("✓", summary.as_ref())
    }

    /// Marks the stage failed with a one-line reason; returns its duration.
    pub fn failed(self, reason: impl AsRef<str>) -> Duration {
        self.finish("✗", reason.as_ref())
    }

    fn finish(self, mark: &str, text: &str) -> Duration {
        let elapsed = self.started.elapsed();
        let line = format!(
            "{mark} {:>8} {text} ({})",
            self.name,
            format_duration(elapsed)
        );
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
        match self.mode {
            Mode::Terminal | Mode::Plain => eprintln!("{line}"),
            Mode::Json => tracing::info!(stage = %self.name, "{text}"),
        }
        elapsed
    }
}

/// `1.23s`, `250ms`, `2m05s`: short and stable for logs.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short_and_stable() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.23s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
