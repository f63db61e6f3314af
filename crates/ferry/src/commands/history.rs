//! `ferry history`: what was deployed to an environment, when, by whom, and how it went.

use super::Context;
use super::lock::TargetArgs;

/// The last deploys of an environment, newest first: revision, commit, image digest, time,
/// who (the CI user or the git author), what (ship, deploy, rollback) and the outcome
/// (succeeded, rolled back, failed). Kept in the cluster (ConfigMap `ferry-history-SERVICE`
/// in the namespace), so every machine sees the same history. A revision marked `(gone)` is
/// no longer among the Deployment's ReplicaSets and cannot be rolled back to.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Environment from ferry.toml (a kubernetes one).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub async fn run(args: HistoryArgs, ctx: &Context) -> anyhow::Result<()> {
    let environment = ctx.environment(args.env.as_deref(), &args.target.overrides(), None)?;
    environment.history(&ctx.reporter).await
}
