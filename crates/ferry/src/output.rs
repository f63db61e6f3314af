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
    /// Picks the mode from the flag, whether stderr is a terminal and whether `CI` is set.
    pub fn detect(flag: Option<OutputFormat>) -> Self {
        Self::choose(
            flag,
            std::io::stderr().is_terminal(),
            is_ci(std::env::var_os("CI").as_deref()),
        )
    }

    /// The decision [`Mode::detect`] makes: an explicit `--output` wins (though spinners still
    /// need a terminal); otherwise spinners on a terminal, plain lines in CI or in a pipe.
    pub fn choose(flag: Option<OutputFormat>, stderr_is_terminal: bool, in_ci: bool) -> Self {
        match flag {
            Some(OutputFormat::Json) => Mode::Json,
            Some(OutputFormat::Plain) => Mode::Plain,
            Some(OutputFormat::Human) if stderr_is_terminal => Mode::Terminal,
            Some(OutputFormat::Human) => Mode::Plain,
            None if stderr_is_terminal && !in_ci => Mode::Terminal,
            None => Mode::Plain,
        }
    }
}

/// Whether the `CI` variable says this is a CI run: set to anything but empty, `false` or `0`
/// (CircleCI, GitHub Actions and GitLab set `CI=true`).
pub fn is_ci(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !(v.is_empty() || v == "false" || v == "0"))
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
    fn a_terminal_outside_ci_gets_spinners() {
        assert_eq!(Mode::choose(None, true, false), Mode::Terminal);
    }

    #[test]
    fn ci_or_a_pipe_gets_plain_lines() {
        assert_eq!(Mode::choose(None, true, true), Mode::Plain, "CI with a TTY");
        assert_eq!(Mode::choose(None, false, false), Mode::Plain, "a pipe");
        assert_eq!(Mode::choose(None, false, true), Mode::Plain);
    }

    #[test]
    fn an_explicit_output_flag_wins() {
        for (tty, ci) in [(true, false), (true, true), (false, false), (false, true)] {
            assert_eq!(Mode::choose(Some(OutputFormat::Json), tty, ci), Mode::Json);
            assert_eq!(
                Mode::choose(Some(OutputFormat::Plain), tty, ci),
                Mode::Plain
            );
        }
        assert_eq!(
            Mode::choose(Some(OutputFormat::Human), true, true),
            Mode::Terminal,
            "--output human brings spinners back in CI"
        );
        assert_eq!(
            Mode::choose(Some(OutputFormat::Human), false, false),
            Mode::Plain,
            "spinners need a terminal"
        );
    }

    #[test]
    fn ci_means_ci_set_to_something_true() {
        use std::ffi::OsStr;
        assert!(is_ci(Some(OsStr::new("true"))));
        assert!(is_ci(Some(OsStr::new("1"))));
        assert!(!is_ci(None));
        assert!(!is_ci(Some(OsStr::new(""))));
        assert!(!is_ci(Some(OsStr::new("false"))));
        assert!(!is_ci(Some(OsStr::new("0"))));
    }

    #[test]
    fn durations_are_short_and_stable() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.23s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
