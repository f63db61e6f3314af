//! `ferry status`: what is deployed where.

use super::Context;

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
    // --context/--namespace and FERRY_CONTEXT/FERRY_NAMESPACE, as for ship and plan.
    let overrides = crate::config::KubernetesOverrides {
        context: args.context.clone(),
        namespace: args.namespace.clone(),
        ..Default::default()
    };
    let environment = ctx.environment(args.env.as_deref(), &overrides, None)?;
    environment.status(&ctx.reporter).await
}
