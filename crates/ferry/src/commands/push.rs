//! `ferry push`: send the built image to a registry.

use anyhow::Context as _;

use super::Context;
use crate::pipeline;
use crate::registry::{self, PushOptions, RegistryAuth, Repository};

/// Push the image `ferry build` wrote to an OCI registry, tagged by commit, and print
/// the pinned reference `REPO@sha256:…` on stdout.
///
/// Blobs the registry already has are not sent again. Credentials: ~/.docker/config.json
/// (and its credential helpers), Google credentials for gcr.io and *-docker.pkg.dev, else none.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Repository to push to, e.g. 127.0.0.1:5000/hello. Default: the environment's `repository`.
    #[arg(long, value_name = "REPO")]
    pub to: Option<String>,
    /// Environment whose `repository` to use.
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// Plain HTTP (loopback registries always use it).
    #[arg(long)]
    pub insecure: bool,
    /// Push the image in the layout even if it is not of the current commit.
    #[arg(long)]
    pub any_commit: bool,
    /// Where credentials come from. Default: the environment's `registry_auth`, else auto.
    #[arg(long, value_enum, env = "FERRY_REGISTRY_AUTH")]
    pub auth: Option<RegistryAuth>,
}

pub async fn run(args: PushArgs, ctx: &Context) -> anyhow::Result<()> {
    let environment = ctx.environment(args.env.as_deref(), &Default::default(), None)?;
    let (repository, insecure, auth) = match (&args.to, environment.registry()) {
        // --to names the place; an environment with a registry still says how to log in there.
        (Some(to), registry) => (
            to.clone(),
            args.insecure,
            registry.map_or(RegistryAuth::Auto, |r| r.auth),
        ),
        (None, Some(registry)) => (
            registry.repository,
            args.insecure || registry.insecure,
            registry.auth,
        ),
        (None, None) => anyhow::bail!(
            "nowhere to push: environment `{}` is {} and has no registry\n  hint: pass --to HOST/PATH, or --env with a kubernetes environment",
            environment.name(),
            environment.kind()
        ),
    };
    let repository: Repository = repository.parse()?;
    let layout = pipeline::layout_dir(&ctx.config);
    let commit = if args.any_commit {
        None
    } else {
        Some(crate::git::Commit::discover(&ctx.config.root)?)
    };
    let tag = commit.as_ref().map(|c| c.tag(ctx.config.image.tag));
    let opened = crate::image::open(&layout, tag.as_deref());
    let image = match (&commit, &tag) {
        // Not the layout's own "run `ferry build`": build refuses a dirty tree.
        (Some(commit), Some(tag)) if commit.dirty => opened.map_err(|_| anyhow::anyhow!(
            "no image of the work tree to push: it has uncommitted changes, and `ferry build` builds them only with --allow-dirty (as {tag})\n  \
             hint: commit or stash the changes, then `ferry build` and `ferry push`; or `ferry build --allow-dirty` to push them as {tag}; or `ferry push --any-commit` for the image last built"
        ))?,
        (Some(_), _) => {
            opened.context("no image of the current commit to push; run `ferry build` first")?
        }
        (None, _) => opened.context("no image to push; run `ferry build` first")?,
    };
    let stage = ctx.reporter.stage(
        "push",
        format!("{}:{} → {repository}", image.tag, image.manifest.digest),
    );
    let options = PushOptions {
        insecure,
        auth: args.auth.unwrap_or(auth),
        ..PushOptions::default()
    };
    match registry::push(&image, &repository, &options).await {
        Ok(pushed) => {
            stage.done(format!(
                "{} ({} blobs uploaded, {} already there)",
                pushed.pinned(),
                pushed.uploaded.len(),
                pushed.skipped.len()
            ));
            println!("{}", pushed.pinned());
            Ok(())
        }
        Err(e) => {
            stage.failed(e.to_string().lines().next().unwrap_or_default());
            Err(e.into())
        }
    }
}
