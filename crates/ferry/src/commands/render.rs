//! `ferry render`.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct RenderArgs {}

pub async fn run(_args: RenderArgs, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("`ferry render` is not implemented yet")
}
