//! `ferry status`: what is deployed where.

use super::Context;
use crate::config::Environment;
use crate::deploy;
use crate::output::Mode;

/// Show what runs in an environment: for Kubernetes, each Deployment's image, commit,
/// revision and ready replicas; for local, the instance `ferry ship` started and whether it serves.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Environment from ferry.toml (default: `default_environment`).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
}

pub async fn run(args: StatusArgs, ctx: &Context) -> anyhow::Result<()> {
    let (name, environment) = ctx.config.environment(args.env.as_deref())?;
    match environment {
        Environment::Local(_) => {
            let dir = crate::pipeline::local_state_dir(&ctx.config);
            match crate::local::status(&dir, &ctx.config.service.ready_path).await {
                Some((running, serving)) => {
                    if ctx.reporter.mode() == Mode::Json {
                        println!(
                            "{}",
                            serde_json::json!({"environment": name, "instance": running, "serving": serving})
                        );
                    } else {
                        println!(
                            "{name}: {} via {} ({}) — {}",
                            running.url,
                            running.runtime,
                            running.id,
                            if serving { "serving" } else { "NOT serving" }
                        );
                    }
                }
                None => println!("{name}: nothing running (start it with `ferry ship`)"),
            }
        }
        Environment::Kubernetes(k) => {
            let cluster = deploy::connect(&crate::pipeline::target(&ctx.config, &k)).await?;
            let deployments = deploy::status(&cluster, &k.namespace).await?;
            if ctx.reporter.mode() == Mode::Json {
                println!("{}", serde_json::to_string_pretty(&deployments)?);
                return Ok(());
            }
            println!(
                "{:<16} {:<9} {:<8} {:<14} IMAGE",
                "DEPLOYMENT", "READY", "REVISION", "COMMIT"
            );
            for d in deployments {
                println!(
                    "{:<16} {:<9} {:<8} {:<14} {}",
                    d.name,
                    format!("{}/{}", d.ready, d.desired),
                    d.revision.unwrap_or_default(),
                    d.commit
                        .map(|c| c.chars().take(12).collect::<String>())
                        .unwrap_or_default(),
                    d.image
                );
            }
        }
    }
    Ok(())
}
