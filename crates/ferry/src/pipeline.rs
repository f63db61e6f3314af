//! `ferry ship` and `ferry plan`: the stages strung together, stopping at the first failure.
//!
//! Local:      test → build → image → run → verify
//! Kubernetes: test → build → image → push → render → deploy → verify
//!
//! Every stage is timed and recorded in a [`Summary`], which `--output json` prints.

use std::path::PathBuf;

use crate::config::Config;

/// Where the local environment keeps its instance state, logs and the extracted binary.
pub fn local_state_dir(config: &Config) -> PathBuf {
    config.root.join("target").join("ferry").join("local")
}
