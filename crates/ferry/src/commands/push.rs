//! `ferry push`.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct PushArgs {}

pub async fn run(_args: PushArgs, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("`ferry push` is not implemented yet")
}
