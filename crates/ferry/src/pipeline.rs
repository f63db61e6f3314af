//! `ferry ship` and `ferry plan`: the stages strung together, stopping at the first failure.
//!
//! ```text
//! local:      test → build → image → run → verify
//! kubernetes: test → build → image → push → render → deploy → verify
//! plan:       test → build → image → render → dry-run (nothing pushed or applied)
//! ```
//!
//! Every stage is timed and recorded in a [`Summary`]; `--output json` prints it
//! (schema: `docs/ship-output.schema.json`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::output::{Reporter, Stage};

/// Where the local environment keeps its instance state, logs and the extracted binary.
pub fn local_state_dir(config: &Config) -> PathBuf {
    config.root.join("target").join("ferry").join("local")
}

/// Where `ferry build` writes the OCI image layout.
pub fn layout_dir(config: &Config) -> PathBuf {
    config
        .root
        .join("target")
        .join("ferry")
        .join("oci")
        .join(&config.image.name)
}

/// The machine-readable record of one `ferry ship` or `ferry plan`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Version of this document's shape.
    pub schema: u32,
    /// `ship` or `plan`.
    pub command: &'static str,
    pub environment: String,
    /// `local` or `kubernetes`.
    pub kind: &'static str,
    /// `succeeded`, `failed` or `rolled_back`.
    pub outcome: Outcome,
    /// The stage that stopped the pipeline, if any.
    pub failed_stage: Option<String>,
    /// The error, as printed.
    pub error: Option<String>,
    pub commit: Option<CommitInfo>,
    pub image: Option<ImageInfo>,
    pub stages: Vec<StageRecord>,
    /// Kubernetes only: what the rollout did.
    pub rollout: Option<serde_json::Value>,
    /// Where the service answers, when known.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    RolledBack,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CommitInfo {
    pub hash: String,
    pub short: String,
    pub time: String,
    pub dirty: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct ImageInfo {
    pub tag: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
    pub layout: String,
    pub compressed_bytes: u64,
    /// `REPO@sha256:…` once pushed.
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StageRecord {
    pub name: String,
    /// `ok`, `failed` or `skipped`.
    pub status: StageStatus,
    pub duration_ms: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Ok,
    Failed,
    Skipped,
}

/// Runs stages one after another, recording each in the summary.
pub struct Recorder<'a> {
    reporter: &'a Reporter,
    pub summary: Summary,
}

/// The pipeline stopped at a stage; the summary says which and why.
#[derive(Debug)]
pub struct Halted {
    pub error: anyhow::Error,
}

impl<'a> Recorder<'a> {
    pub fn new(reporter: &'a Reporter, summary: Summary) -> Self {
        Self { reporter, summary }
    }

    /// Runs one stage. `work` gets the live [`Stage`] for progress lines and returns the value
    /// plus a one-line summary. A failure is recorded and stops the pipeline.
    pub async fn stage<T>(
        &mut self,
        name: &str,
        what: &str,
        work: impl AsyncFnOnce(&Stage) -> anyhow::Result<(T, String)>,
    ) -> Result<T, Halted> {
        let stage = self.reporter.stage(name, what);
        let result = work(&stage).await;
        match result {
            Ok((value, detail)) => {
                let took = stage.done(&detail);
                self.record(name, StageStatus::Ok, took, detail);
                Ok(value)
            }
            Err(error) => {
                let line = first_line(&error);
                let took = stage.failed(&line);
                self.record(name, StageStatus::Failed, took, line);
                self.summary.outcome = Outcome::Failed;
                self.summary.failed_stage = Some(name.to_string());
                self.summary.error = Some(format!("{error:#}"));
                Err(Halted { error })
            }
        }
    }

    /// Records a stage that does not apply to this environment or run.
    pub fn skip(&mut self, name: &str, why: &str) {
        self.record(name, StageStatus::Skipped, Duration::ZERO, why.to_string());
    }

    fn record(&mut self, name: &str, status: StageStatus, took: Duration, detail: String) {
        self.summary.stages.push(StageRecord {
            name: name.to_string(),
            status,
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            detail,
        });
    }
}

fn first_line(error: &anyhow::Error) -> String {
    error.to_string().lines().next().unwrap_or_default().to_string()
}
