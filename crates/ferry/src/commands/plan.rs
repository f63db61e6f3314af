//! `ferry plan`: everything short of pushing and applying.

use super::Context;
use crate::config::Environment;
use crate::output::Mode;
use crate::pipeline::{self, Recorder, Request};

/// Test, build and assemble the image, render the manifest with the image that *would* be
/// pushed, and — when the cluster is reachable — run a server-side dry run and print the diff
/// against what is live. Nothing is pushed or applied.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Environment from ferry.toml.
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// Skip `cargo test`.
    #[arg(long)]
    pub skip_tests: bool,
    /// Plan with uncommitted changes.
    #[arg(long)]
    pub allow_dirty: bool,
    #[command(
        flatten,
        next_help_heading = "Kubernetes overrides (flag > FERRY_* variable > ferry.toml)"
    )]
    pub kubernetes: crate::config::KubernetesOverrides,
}

pub async fn run(args: PlanArgs, ctx: &Context) -> anyhow::Result<()> {
    let (name, mut environment) = ctx.config.environment(args.env.as_deref())?;
    args.kubernetes
        .apply(&name, &mut environment, |var| std::env::var(var).ok())?;
    let request = Request {
        environment: Some(name.clone()),
        skip_tests: args.skip_tests,
        allow_dirty: args.allow_dirty,
        ..Request::default()
    };
    let kind = if matches!(environment, Environment::Local(_)) {
        "local"
    } else {
        "kubernetes"
    };
    let mut recorder = Recorder::new(&ctx.reporter, pipeline::summary("plan", &name, kind));
    let result = plan(ctx, &request, &name, &environment, &mut recorder).await;
    if ctx.reporter.mode() == Mode::Json {
        println!("{}", serde_json::to_string_pretty(&recorder.summary)?);
    }
    result.map_err(|h| h.error)
}

async fn plan(
    ctx: &Context,
    request: &Request,
    name: &str,
    environment: &Environment,
    recorder: &mut Recorder<'_>,
) -> Result<(), pipeline::Halted> {
    let built = pipeline::build_image(&ctx.config, request, recorder).await?;
    let Environment::Kubernetes(env) = environment else {
        recorder.skip("render", "local environment: nothing to render");
        ctx.reporter
            .info("plan: `ferry ship` would run this image locally and verify it");
        return Ok(());
    };
    let reference = format!("{}@{}", env.repository, built.image.manifest.digest);
    recorder.skip("push", &format!("plan: would push {reference}"));
    let rendered = recorder
        .stage("render", &env.manifest.display().to_string(), async |_s| {
            let r =
                pipeline::render_for(&ctx.config, name, env, &reference, Some(&built.commit.hash))?;
            let detail = format!("{} objects", r.objects.len());
            Ok((r, detail))
        })
        .await?;
    match pipeline::connect(&ctx.config, env).await {
        Ok(cluster) => {
            let diffs = recorder
                .stage("dry-run", "server-side dry run", async |_s| {
                    let diffs =
                        crate::deploy::dry_run(&cluster, &rendered.objects, &env.namespace).await?;
                    let detail = format!("{} objects would change", diffs.len());
                    Ok((diffs, detail))
                })
                .await?;
            if ctx.reporter.mode() != Mode::Json {
                for d in diffs {
                    println!("{d}");
                }
            }
        }
        Err(e) => {
            recorder.skip(
                "dry-run",
                &format!(
                    "cluster not reachable: {}",
                    e.to_string().lines().next().unwrap_or_default()
                ),
            );
            // The skip line above said why; the full error carries the fix.
            let hint = e.to_string();
            let hint = hint.lines().find(|l| l.trim_start().starts_with("hint:"));
            if let Some(hint) = hint {
                ctx.reporter.info(hint.trim());
            }
            if ctx.reporter.mode() != Mode::Json {
                ctx.reporter
                    .info("no dry run; the rendered manifest follows on stdout");
                print!("{}", rendered.text);
            }
        }
    }
    Ok(())
}
