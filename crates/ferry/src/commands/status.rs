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
    /// kubeconfig context, instead of the environment's `context` or GKE cluster
    /// [env: FERRY_CONTEXT].
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace to look in, instead of the environment's `namespace` [env: FERRY_NAMESPACE].
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

pub async fn run(args: StatusArgs, ctx: &Context) -> anyhow::Result<()> {
    let (name, mut environment) = ctx.config.environment(args.env.as_deref())?;
    // --context/--namespace and FERRY_CONTEXT/FERRY_NAMESPACE, as for ship and plan.
    crate::config::KubernetesOverrides {
        context: args.context.clone(),
        namespace: args.namespace.clone(),
        ..Default::default()
    }
    .apply(&name, &mut environment, |v| std::env::var(v).ok())?;
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
            let target = crate::pipeline::target(&ctx.config, &k);
            let cluster = crate::pipeline::connect(&ctx.config, &k).await?;
            let deployments = deploy::status(&cluster, &k.namespace).await?;
            if ctx.reporter.mode() == Mode::Json {
                let doc = serde_json::json!({
                    "environment": name,
                    "gke": k.gke,
                    "context": target.context,
                    "server": cluster.server,
                    "namespace": k.namespace,
                    "deployments": deployments,
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(());
            }
            println!("{}", where_it_runs(&name, &k, &target, &cluster.server));
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

/// `staging: GKE cluster ferry-staging (project ferry-staging, location europe-west1), context
/// gke_…, namespace hello` — or the server when there is no GKE cluster.
fn where_it_runs(
    name: &str,
    env: &crate::config::KubernetesEnv,
    target: &deploy::Target,
    server: &str,
) -> String {
    let cluster = match &env.gke {
        Some(gke) => gke.to_string(),
        None => server.to_string(),
    };
    let context = match &target.context {
        Some(c) => format!("context {c}"),
        None => "the current context".to_string(),
    };
    format!("{name}: {cluster}, {context}, namespace {}", env.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, GkeCluster};

    #[test]
    fn status_names_the_gke_cluster_its_context_and_namespace() {
        let config = Config::parse(
            include_str!("../../../../ferry.toml"),
            std::path::Path::new("/repo/ferry.toml"),
        )
        .unwrap();
        let Environment::Kubernetes(env) = config.environment(Some("staging")).unwrap().1 else {
            panic!("staging is kubernetes");
        };
        let target = crate::pipeline::target(&config, &env);
        assert_eq!(
            where_it_runs("staging", &env, &target, "https://34.0.0.1"),
            "staging: GKE cluster ferry-staging (project ferry-staging, location europe-west1), \
             context gke_ferry-staging_europe-west1_ferry-staging, namespace hello"
        );
        let plain = crate::config::KubernetesEnv {
            gke: None::<GkeCluster>,
            ..*env
        };
        assert_eq!(
            where_it_runs(
                "e2e",
                &plain,
                &deploy::Target::default(),
                "http://127.0.0.1:1"
            ),
            "e2e: http://127.0.0.1:1, the current context, namespace hello"
        );
    }
}
