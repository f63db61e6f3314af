//! `ferry ship`: the whole pipeline.

use super::Context;
use crate::config::TagScheme;
use crate::output::Mode;
use crate::pipeline::{self, Outcome, Recorder, Request, Tests};

/// Test, build, push, render, deploy and verify — or, in the `local` environment (the
/// default), test, build, run the image on this machine and verify it serves.
///
/// Stops at the first failing stage and names it. With `--output json` the summary
/// (docs/ship-output.schema.json) is printed on stdout whatever the outcome.
#[derive(Debug, clap::Args)]
pub struct ShipArgs {
    /// Environment from ferry.toml (default: `default_environment`, normally `local`).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// Skip the test stage (the tests still run in CI's build job).
    #[arg(long)]
    pub skip_tests: bool,
    /// Ship uncommitted changes; the tag then ends in `-dirty`.
    #[arg(long)]
    pub allow_dirty: bool,
    /// `commit` or `timestamp` tags. Default: ferry.toml.
    #[arg(long, value_enum)]
    pub tag_scheme: Option<TagScheme>,
    /// Leave a failed rollout as it is instead of rolling back.
    #[arg(long)]
    pub no_rollback: bool,
    /// Confirm the deploy for environments with `approval = true`.
    #[arg(long)]
    pub approve: bool,
    /// Wait this long for another run's deploy lock instead of failing at once (kubernetes).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub lock_timeout: u64,
    /// How to compile: `fast` or `release` (default: the environment's `profile`; kubernetes
    /// environments build release).
    #[arg(long, value_enum)]
    pub profile: Option<crate::compile::Profile>,
    /// Local environment: how to run the image (default: ferry.toml's `runtime`, normally auto).
    #[arg(long, value_enum, env = "FERRY_LOCAL_RUNTIME")]
    pub runtime: Option<crate::config::LocalRuntime>,
    #[command(
        flatten,
        next_help_heading = "Kubernetes overrides (flag > FERRY_* variable > ferry.toml)"
    )]
    pub kubernetes: crate::config::KubernetesOverrides,
}

pub async fn run(args: ShipArgs, ctx: &Context) -> anyhow::Result<()> {
    let environment = ctx.environment(args.env.as_deref(), &args.kubernetes, args.runtime)?;
    let _lock = ctx.lock("shipping").await?;
    let name = environment.name().to_string();
    let request = Request {
        environment: Some(name.clone()),
        tests: if args.skip_tests {
            Tests::Skipped
        } else {
            Tests::Run
        },
        allow_dirty: args.allow_dirty,
        tag_scheme: args.tag_scheme,
        no_rollback: args.no_rollback,
        approve: args.approve,
        offline: false,
        operation: None,
        profile: args.profile.unwrap_or_else(|| environment.profile()),
    };
    let lock_request = crate::environment::LockRequest {
        operation: "ship",
        commit: crate::git::Commit::discover(&ctx.config.root)
            .ok()
            .map(|c| c.hash),
        wait: std::time::Duration::from_secs(args.lock_timeout),
    };
    let mut recorder = Recorder::new(
        &ctx.reporter,
        pipeline::summary("ship", &name, environment.kind()),
    );
    let mut held = None;
    let result = async {
        environment.preflight(&request, &mut recorder).await?;
        // Held from before the build to the end, so a second ship fails at once.
        held = environment.hold_lock(&lock_request, &mut recorder).await?;
        let built = pipeline::build_image(&ctx.config, &request, &mut recorder).await?;
        environment.deliver(&built, &request, &mut recorder).await
    }
    .await;
    if let Some(held) = held {
        if held.lost() {
            ctx.reporter.info(
                "warning: the deploy lock was taken over during this run (it could not be renewed in time)",
            );
        }
        held.release().await;
    }
    let summary = recorder.summary;
    if ctx.reporter.mode() == Mode::Json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    match result {
        Ok(()) => {
            if let Some(url) = &summary.url {
                ctx.reporter.info(format!(
                    "shipped {} to {name}: {url}",
                    summary.image.as_ref().map_or("", |i| i.tag.as_str())
                ));
                if let Some(hint) = environment.stop_hint() {
                    ctx.reporter.info(hint);
                }
            }
            Ok(())
        }
        Err(halted) => {
            let stage = summary.failed_stage.as_deref().unwrap_or("?");
            let prefix = if summary.outcome == Outcome::RolledBack {
                "rolled back"
            } else {
                "failed"
            };
            Err(halted
                .error
                .context(format!("ferry ship {prefix} at the {stage} stage")))
        }
    }
}
