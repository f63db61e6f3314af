//! `ferry stop`: stop the local instance that `ferry ship` left running.

use super::Context;
use crate::pipeline;

#[derive(Debug, clap::Args)]
pub struct StopArgs {}

pub async fn run(_args: StopArgs, ctx: &Context) -> anyhow::Result<()> {
    let state_dir = pipeline::local_state_dir(&ctx.config);
    match crate::local::stop(&state_dir).await? {
        Some(running) => ctx.reporter.info(format!(
            "stopped {} ({}, {})",
            running.url, running.runtime, running.id
        )),
        None => ctx.reporter.info("nothing is running locally"),
    }
    Ok(())
}
