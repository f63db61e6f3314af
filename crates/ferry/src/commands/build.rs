//! `ferry build`.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {}

pub async fn run(_args: BuildArgs, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("`ferry build` is not implemented yet")
}
