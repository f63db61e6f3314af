//! `ferry rbac`: the namespaced Role a deploy identity needs, and nothing more.

use super::Context;

/// Print the Role and RoleBinding that let `--user` run ferry against an environment: every
/// verb on every resource ferry uses there (the manifest's kinds, the environment's Secret,
/// what following a rollout and rolling back read and patch), in its namespace only, with no
/// wildcards. Apply it once: `ferry rbac --env production --user SA_EMAIL | kubectl apply -f -`.
#[derive(Debug, clap::Args)]
pub struct RbacArgs {
    /// Environment from ferry.toml (a kubernetes one).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// Who gets the Role: on GKE, the deploy service account's email.
    #[arg(long, value_name = "NAME", default_value = "ferry-deploy")]
    pub user: String,
    /// Namespace, instead of the environment's `namespace` [env: FERRY_NAMESPACE].
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

pub async fn run(args: RbacArgs, ctx: &Context) -> anyhow::Result<()> {
    let overrides = crate::config::KubernetesOverrides {
        namespace: args.namespace.clone(),
        ..Default::default()
    };
    let environment = ctx.environment(args.env.as_deref(), &overrides, None)?;
    print!("{}", environment.rbac(&args.user).await?);
    Ok(())
}
