//! `ferry deploy`: apply a rendered manifest and follow the rollout.

use std::time::Duration;

use anyhow::Context as _;

use super::Context;
use super::render::RenderArgs;
use crate::deploy::{self, DeployOptions, Rollout};
use crate::environment::ClusterSettings;

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
    /// Wait this long for another run's deploy lock instead of failing at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub lock_timeout: u64,
}

/// `REPO@sha256:<64 hex>`: a reference no one can move.
fn is_pinned(image: &str) -> bool {
    image.rsplit_once("@sha256:").is_some_and(|(repo, hex)| {
        !repo.is_empty() && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// A tag can point elsewhere by the time a pod pulls it: warn, or refuse when the
/// environment says `require_digest = true`.
fn check_pinned(
    image: &str,
    environment: &str,
    require_digest: bool,
    reporter: &crate::output::Reporter,
) -> anyhow::Result<()> {
    if is_pinned(image) {
        return Ok(());
    }
    if require_digest {
        anyhow::bail!(
            "environment `{environment}` deploys only images pinned by digest (require_digest = true), and --image {image} has no digest\n  \
             hint: deploy the reference `ferry push` printed, REPO@sha256:…"
        );
    }
    let warning = format!(
        "warning: --image {image} is not pinned by digest: each pod pulls whatever the tag names when it starts, so replicas can run different images\n  \
         hint: deploy the reference `ferry push` printed (REPO@sha256:…); `require_digest = true` in the environment makes this an error"
    );
    match reporter.mode() {
        // stdout belongs to the JSON document; the log still says it.
        crate::output::Mode::Json => tracing::warn!("{warning}"),
        _ => reporter.info(warning),
    }
    Ok(())
}

pub async fn run(args: DeployArgs, ctx: &Context) -> anyhow::Result<()> {
    // FERRY_CONTEXT / FERRY_NAMESPACE as for ship and plan; the flags below still win.
    let environment = ctx.environment(
        args.env.as_deref(),
        &crate::config::KubernetesOverrides::default(),
        None,
    )?;
    // An image that must be signed is checked before anything is rendered or applied.
    environment
        .check_signature(&args.image, &ctx.reporter)
        .await?;
    let ClusterSettings {
        mut target,
        mut namespace,
        gke,
        fail_fast,
        require_digest,
    } = environment.cluster().unwrap_or_default();
    if args.kubeconfig.is_some() {
        target.kubeconfig = args.kubeconfig.clone();
    }
    if args.context.is_some() {
        target.context = args.context.clone();
    }
    if let Some(ns) = &args.namespace {
        namespace = ns.clone();
    }
    check_pinned(
        &args.image,
        environment.name(),
        require_digest,
        &ctx.reporter,
    )?;
    let render_args = RenderArgs {
        env: args.env.clone(),
        image: Some(args.image.clone()),
        manifest: args.manifest.clone(),
        set: args.set.clone(),
        namespace: args.namespace.clone(),
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
    let set = deploy::applyset::ApplySet::new(&ctx.config.image.name, &namespace);
    if args.dry_run {
        let mut objects = rendered.objects.clone();
        set.label(&mut objects);
        let diffs = deploy::dry_run(&cluster, &objects, &namespace).await?;
        let pruned = deploy::would_prune(&cluster, &set, &objects).await?;
        stage.done(format!(
            "dry run: {} objects would change, {} would be deleted",
            diffs.len(),
            pruned.len()
        ));
        for d in diffs {
            println!("{d}");
        }
        for member in pruned {
            println!(
                "--- live {member}\n+++ deleted: no longer in the manifest (ApplySet {})",
                set.parent
            );
        }
        return Ok(());
    }
    let commit = rendered
        .objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .and_then(|o| o["metadata"]["annotations"][deploy::rollback::COMMIT].as_str())
        .map(str::to_string);
    let service = &ctx.config.image.name;
    let lease_name = deploy::lease::lease_name(service);
    let claim = deploy::lease::Claim::new("deploy", commit.clone());
    let held = match deploy::lease::acquire(
        &cluster,
        &namespace,
        &lease_name,
        &claim,
        Duration::from_secs(args.lock_timeout),
        &|s| {
            stage.progress(format!(
                "the deploy lock is held by {}; waiting up to {}s",
                s.describe(),
                args.lock_timeout
            ))
        },
    )
    .await
    {
        Ok(held) => held,
        Err(e) => {
            stage.failed("the deploy lock is held");
            return Err(e.into());
        }
    };
    let options = DeployOptions {
        namespace: namespace.clone(),
        rollback: !args.no_rollback,
        timeout: args.timeout.map(Duration::from_secs),
        fail_fast,
        applyset: Some(set),
        ..DeployOptions::default()
    };
    let rollout = deploy::deploy(&cluster, &rendered.objects, &options, &|line| {
        stage.progress(line)
    })
    .await;
    if let Ok(rollout) = &rollout {
        crate::environment::kubernetes::record_rollout(
            &cluster,
            &namespace,
            service,
            &rendered.objects,
            rollout,
            "deploy",
            &args.image,
            commit.as_deref(),
        )
        .await;
    }
    held.release().await;
    let rollout = rollout.context("deploy failed")?;
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
