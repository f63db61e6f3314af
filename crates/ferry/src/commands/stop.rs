//! `ferry stop`: stop the local instance that `ferry ship` left running.

use super::Context;

/// Stop the instance `ferry ship` started in this project's local environment. Only this
/// project's instance is touched: another checkout's keeps running.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// A local environment from ferry.toml (default: `local`).
    #[arg(long, default_value = "local")]
    pub env: String,
}

pub async fn run(args: StopArgs, ctx: &Context) -> anyhow::Result<()> {
    let environment = ctx.environment(Some(&args.env), &Default::default(), None)?;
    let _lock = ctx.lock("stopping").await?;
    environment.stop(&ctx.reporter).await
}
