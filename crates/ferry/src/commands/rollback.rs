//! `ferry rollback`: back to an earlier revision.

use std::time::Duration;

use super::Context;
use super::lock::TargetArgs;
use crate::environment::RollbackRequest;

/// Roll an environment back: to the previous revision that shipped well, or to the one named
/// by --to (a revision number from `ferry history`, or a commit). The rollout is followed with
/// the same fail fast as a deploy and recorded in the history. A revision the cluster no
/// longer keeps is refused, with the list of those it does.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Environment from ferry.toml (a kubernetes one).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// A revision number or a commit (7+ hex digits) to go back to.
    #[arg(long, value_name = "REVISION|COMMIT")]
    pub to: Option<String>,
    /// The Deployment to roll back (default: the one in the history, else the only one).
    #[arg(long, value_name = "NAME")]
    pub deployment: Option<String>,
    /// Wait this long for another run's deploy lock instead of failing at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub lock_timeout: u64,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub async fn run(args: RollbackArgs, ctx: &Context) -> anyhow::Result<()> {
    let environment = ctx.environment(args.env.as_deref(), &args.target.overrides(), None)?;
    let request = RollbackRequest {
        to: args.to.clone(),
        deployment: args.deployment.clone(),
        lock_wait: Duration::from_secs(args.lock_timeout),
    };
    environment.rollback(&request, &ctx.reporter).await
}
