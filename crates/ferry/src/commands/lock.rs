//! `ferry lock` / `ferry unlock`: freeze an environment's deploys, and lift the freeze.

use super::Context;

/// Freeze deploys to an environment: takes its deploy lock (a Lease in its namespace) with a
/// reason, until `ferry unlock`. Ship, deploy and rollback then refuse to start, naming who
/// locked it, why and since when.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// Environment from ferry.toml (a kubernetes one).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// Why deploys are frozen, shown to whoever tries one.
    #[arg(short = 'm', long, value_name = "REASON")]
    pub message: String,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Lift a lock taken by `ferry lock`. A running deploy's lock is left alone unless --force.
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// Environment from ferry.toml (a kubernetes one).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// Also remove the lock of a deploy that is running (or seems to be).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `--context` / `--namespace`, as for `ferry status`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// kubeconfig context, instead of the environment's `context` or GKE cluster
    /// [env: FERRY_CONTEXT].
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace, instead of the environment's `namespace` [env: FERRY_NAMESPACE].
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

impl TargetArgs {
    pub fn overrides(&self) -> crate::config::KubernetesOverrides {
        crate::config::KubernetesOverrides {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            ..Default::default()
        }
    }
}

pub async fn run(args: LockArgs, ctx: &Context) -> anyhow::Result<()> {
    let environment = ctx.environment(args.env.as_deref(), &args.target.overrides(), None)?;
    environment.lock(&args.message, &ctx.reporter).await
}

pub async fn run_unlock(args: UnlockArgs, ctx: &Context) -> anyhow::Result<()> {
    let environment = ctx.environment(args.env.as_deref(), &args.target.overrides(), None)?;
    environment.unlock(args.force, &ctx.reporter).await
}
