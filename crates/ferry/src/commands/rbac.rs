//! `ferry rbac`: the namespaced Role a deploy identity needs, and nothing more.

use super::Context;

/// Print the Role and RoleBinding that let `--user` run ferry against an environment: every
/// verb on every resource ferry uses there (the manifest's kinds, the environment's Secret,
/// what following a rollout and rolling back read and patch), in its namespace only, with no
/// wildcards. Apply it once: `ferry rbac --env production --user SA_EMAIL | kubectl apply -f -`.
///
/// With `--promote-source`, the read-only Role another environment's identity needs to promote
/// from this one instead: `ferry rbac --env staging --user PRODUCTION_SA --promote-source`.
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
    /// Print the read-only Role for promoting *from* this environment instead: get and list of
    /// what `ferry promote --from ENV` reads (its history ConfigMap, Deployments, ReplicaSets),
    /// no write of any kind. Bind it to the deploy account of the environment promoted to.
    #[arg(long)]
    pub promote_source: bool,
}

pub async fn run(args: RbacArgs, ctx: &Context) -> anyhow::Result<()> {
    let overrides = crate::config::KubernetesOverrides {
        namespace: args.namespace.clone(),
        ..Default::default()
    };
    let environment = ctx.environment(args.env.as_deref(), &overrides, None)?;
    let access = if args.promote_source {
        crate::rbac::Access::PromoteSource
    } else {
        crate::rbac::Access::Deploy
    };
    print!("{}", environment.rbac(&args.user, access).await?);
    Ok(())
}
