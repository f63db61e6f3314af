//! `ferry status`.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

pub async fn run(_args: StatusArgs, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("`ferry status` is not implemented yet")
}
