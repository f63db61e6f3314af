//! `ferry plan`.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {}

pub async fn run(_args: PlanArgs, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("`ferry plan` is not implemented yet")
}
