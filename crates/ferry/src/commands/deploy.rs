//! `ferry deploy`: apply a rendered manifest and follow the rollout.

use std::time::Duration;

use anyhow::Context as _;

use super::Context;
use super::render::RenderArgs;
use crate::config::Environment;
use crate::deploy::{self, DeployOptions, Rollout, Target};

/// Render the manifest with --image, apply it server-side (field manager `ferry`), and follow
/// each Deployment like `kubectl rollout status` — but stop at once, with the pod's events and
/// logs, when pods cannot pull, crash-loop, never become ready or cannot be scheduled. A failed
/// rollout is rolled back to the previous revision unless --no-rollback.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Environment from ferry.toml (supplies namespace, manifest, context, vars).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// The image to deploy, pinned by digest: REPO@sha256:… (what `ferry push` prints).
    #[arg(long, value_name = "REF")]
    pub image: String,
    /// kubeconfig file (default: the environment's, $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// kubeconfig context (default: the environment's, else the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace (default: the environment's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Manifest template (default: the environment's `manifest`).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub manifest: Option<std::path::PathBuf>,
    /// A manifest variable over the environment's `vars`, e.g. --var REPLICAS=2 (repeatable;
    /// `--set` is accepted too).
    #[arg(long = "var", alias = "set", value_name = "KEY=VALUE", value_parser = crate::config::parse_var)]
    pub set: Vec<(String, String)>,
    /// Leave a failed rollout as it is.
    #[arg(long)]
    pub no_rollback: bool,
    /// Server-side dry run: print what would change; nothing is persisted.
    #[arg(long)]
    pub dry_run: bool,
    /// Give up on a rollout after this many seconds (default: its progressDeadlineSeconds).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

pub async fn run(args: DeployArgs, ctx: &Context) -> anyhow::Result<()> {
    let (name, mut environment) = ctx.config.environment(args.env.as_deref())?;
    if matches!(environment, Environment::Kubernetes(_)) {
        // FERRY_CONTEXT / FERRY_NAMESPACE as for ship and plan; the flags below still win.
        crate::config::KubernetesOverrides::default()
            .apply(&name, &mut environment, |v| std::env::var(v).ok())?;
    }
    // An image that must be signed is checked before anything is rendered or applied.
    super::verify_image::check_for_deploy(&environment, &args.image, ctx).await?;
    let mut target = Target::default();
    let mut namespace = "default".to_string();
    let mut gke = None;
    if let Environment::Kubernetes(k) = &environment {
        target = crate::pipeline::target(&ctx.config, k);
        namespace = k.namespace.clone();
        gke = k.gke.clone();
    }
    if args.kubeconfig.is_some() {
        target.kubeconfig = args.kubeconfig.clone();
    }
    if args.context.is_some() {
        target.context = args.context.clone();
    }
    let mut set = args.set.clone();
    if let Some(ns) = &args.namespace {
        namespace = ns.clone();
        set.push(("NAMESPACE".into(), ns.clone()));
    }
    let render_args = RenderArgs {
        env: args.env.clone(),
        image: Some(args.image.clone()),
        manifest: args.manifest.clone(),
        set,
    };
    // Rendering fails before anything touches the cluster.
    let rendered = super::render::render(&render_args, ctx)?;
    let stage = ctx.reporter.stage(
        "deploy",
        format!(
            "{} objects → {}",
            rendered.objects.len(),
            deploy::describe_target(&target)
        ),
    );
    let cluster = match crate::pipeline::connect_target(&target, gke.as_ref()).await {
        Ok(c) => c,
        Err(e) => {
            stage.failed(e.to_string().lines().next().unwrap_or_default());
            return Err(e.into());
        }
    };
    if args.dry_run {
        let diffs = deploy::dry_run(&cluster, &rendered.objects, &namespace).await?;
        stage.done(format!("dry run: {} objects would change", diffs.len()));
        for d in diffs {
            println!("{d}");
        }
        return Ok(());
    }
    let options = DeployOptions {
        namespace,
        rollback: !args.no_rollback,
        timeout: args.timeout.map(Duration::from_secs),
        ..DeployOptions::default()
    };
    let rollout = deploy::deploy(&cluster, &rendered.objects, &options, &|line| {
        stage.progress(line)
    })
    .await
    .context("deploy failed")?;
    match &rollout {
        Rollout::Succeeded { .. } => {
            stage.done(rollout.to_string());
            Ok(())
        }
        Rollout::RolledBack {
            deployment,
            restored,
            ..
        } => {
            stage.failed(format!(
                "{deployment}: rolled back to revision {}",
                restored.revision
            ));
            anyhow::bail!("deploy failed: {rollout}")
        }
        Rollout::Failed {
            deployment,
            failure,
            ..
        } => {
            stage.failed(format!("{deployment}: {}", failure.headline()));
            anyhow::bail!("deploy failed: {rollout}")
        }
    }
}
