//! `ferry plan`: everything short of pushing and applying.

use super::Context;
use crate::output::Mode;
use crate::pipeline::{self, Recorder, Request, Tests};

/// Test, build and assemble the image, render the manifest with the image that *would* be
/// pushed, and run a server-side dry run and print the diff against what is live. Nothing is
/// pushed or applied. A cluster that cannot be reached fails the plan (so a CI plan job does
/// not pass having checked nothing) unless `--offline` says that is intended.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Environment from ferry.toml.
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// Skip the test stage.
    #[arg(long)]
    pub skip_tests: bool,
    /// Plan with uncommitted changes.
    #[arg(long)]
    pub allow_dirty: bool,
    /// Plan without a cluster: render and print the manifest, no dry run, exit 0.
    #[arg(long)]
    pub offline: bool,
    #[command(
        flatten,
        next_help_heading = "Kubernetes overrides (flag > FERRY_* variable > ferry.toml)"
    )]
    pub kubernetes: crate::config::KubernetesOverrides,
}

pub async fn run(args: PlanArgs, ctx: &Context) -> anyhow::Result<()> {
    let environment = ctx.environment(args.env.as_deref(), &args.kubernetes, None)?;
    let _lock = ctx.lock("planning").await?;
    let name = environment.name().to_string();
    let request = Request {
        environment: Some(name.clone()),
        tests: if args.skip_tests {
            Tests::Skipped
        } else {
            Tests::Run
        },
        allow_dirty: args.allow_dirty,
        offline: args.offline,
        operation: None,
        ..Request::default()
    };
    let mut recorder = Recorder::new(
        &ctx.reporter,
        pipeline::summary("plan", &name, environment.kind()),
    );
    let result = async {
        let built = pipeline::build_image(&ctx.config, &request, &mut recorder).await?;
        environment.plan(&built, &request, &mut recorder).await
    }
    .await;
    if ctx.reporter.mode() == Mode::Json {
        println!("{}", serde_json::to_string_pretty(&recorder.summary)?);
    }
    result.map_err(|h| h.error)
}
