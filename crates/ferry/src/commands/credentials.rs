//! `ferry credentials`: the kubeconfig context for an environment's GKE cluster, from what
//! ferry.toml says about it, so CI needs no script to read the cluster's name.

use std::process::Stdio;

use anyhow::{Context as _, bail};

use super::Context;

/// Add the kubeconfig context ferry connects with for an environment's GKE cluster.
///
/// Runs `gcloud container clusters get-credentials CLUSTER --location LOCATION --project
/// PROJECT --dns-endpoint` for the cluster in the environment's `gke = { … }`, writing to its
/// `kubeconfig` (else `$KUBECONFIG` or `~/.kube/config`), then checks the context
/// `gke_PROJECT_LOCATION_CLUSTER` is there. gcloud needs gke-gcloud-auth-plugin on PATH and an
/// account that may get the cluster (roles/container.clusterViewer). In CI, run it before
/// `ferry ship --env NAME`; before `ferry promote`, once for each of the two environments.
#[derive(Debug, clap::Args)]
pub struct CredentialsArgs {
    /// Environment from ferry.toml (a kubernetes one with `gke`).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// Print the gcloud command instead of running it.
    #[arg(long)]
    pub print: bool,
}

pub async fn run(args: CredentialsArgs, ctx: &Context) -> anyhow::Result<()> {
    let environment = ctx.environment(args.env.as_deref(), &Default::default(), None)?;
    let name = environment.name().to_string();
    let Some(cluster) = environment.cluster() else {
        bail!(
            "environment `{name}` is {}: it has no cluster to fetch credentials for\n  \
             hint: name a kubernetes environment with `--env` ({})",
            environment.kind(),
            kubernetes_names(ctx)
        );
    };
    let Some(gke) = cluster.gke else {
        bail!(
            "environment `{name}` names no GKE cluster, so there are no credentials to fetch\n  \
             hint: add `gke = {{ project = \"PROJECT\", location = \"REGION\", cluster = \"NAME\" }}` \
             to [environments.{name}]; for another cluster, put its context in the kubeconfig \
             and name it with `context`"
        );
    };
    let kubeconfig = cluster.target.kubeconfig.clone();
    let shown = match &kubeconfig {
        Some(path) => format!(
            "KUBECONFIG={} {}",
            path.display(),
            gke.get_credentials_command()
        ),
        None => gke.get_credentials_command(),
    };
    if args.print {
        println!("{shown}");
        return Ok(());
    }
    ctx.reporter.info(format!("{name}: {shown}"));
    let mut gcloud = tokio::process::Command::new("gcloud");
    gcloud
        .args(gke.get_credentials_args())
        .stdin(Stdio::null())
        // gcloud's own lines go to stderr with ferry's, so stdout stays ferry's (--output json).
        .stdout(Stdio::from(std::io::stderr()));
    if let Some(path) = &kubeconfig {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {} for the kubeconfig", dir.display()))?;
        }
        gcloud.env("KUBECONFIG", path);
    }
    match gcloud.status().await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "gcloud is not on PATH, and it writes GKE credentials\n  \
             hint: install the Google Cloud SDK (https://cloud.google.com/sdk/docs/install) and \
             `gcloud components install gke-gcloud-auth-plugin`, or run `{shown}` where gcloud is"
        ),
        Err(e) => return Err(e).context("cannot run gcloud"),
        Ok(status) if !status.success() => bail!(
            "`{shown}` failed ({status}): gcloud says why above\n  \
             hint: check the account (`gcloud auth list`) may get the cluster \
             (roles/container.clusterViewer) and that {gke} exists"
        ),
        Ok(_) => {}
    }
    let (read, place) = crate::pipeline::read_kubeconfig(kubeconfig.as_deref());
    crate::pipeline::check_gke_context(read, &place, &gke)
        .context("gcloud succeeded, but the kubeconfig it wrote lacks the context")?;
    let context = gke.context_name();
    ctx.reporter.info(format!(
        "{name}: kubeconfig context {context} for the {gke}, in {place}"
    ));
    if let Some(used) = cluster.target.context.as_ref().filter(|c| **c != context) {
        ctx.reporter.info(format!(
            "note: {name} connects with context `{used}` (its `context` setting), not this one"
        ));
    }
    Ok(())
}

fn kubernetes_names(ctx: &Context) -> String {
    let names: Vec<String> = ctx
        .config
        .environment_names()
        .into_iter()
        .filter(|n| {
            ctx.environment(Some(n), &Default::default(), None)
                .is_ok_and(|e| e.cluster().is_some())
        })
        .collect();
    if names.is_empty() {
        "ferry.toml has none yet: `ferry init` writes a commented one".into()
    } else {
        names.join(", ")
    }
}
