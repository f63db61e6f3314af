//! `ferry deploy`.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct DeployArgs {}

pub async fn run(_args: DeployArgs, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("`ferry deploy` is not implemented yet")
}
