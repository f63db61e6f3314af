//! `ferry ship`.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct ShipArgs {}

pub async fn run(_args: ShipArgs, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("`ferry ship` is not implemented yet")
}
