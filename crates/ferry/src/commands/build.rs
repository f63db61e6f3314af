//! `ferry build`: test-free static build and a reproducible OCI image layout.

use super::Context;
use crate::config::TagScheme;
use crate::pipeline::{self, Recorder, Request, Tests};

/// Build the service statically and write its image as an OCI layout under target/ferry/oci/.
///
/// The image holds the binary (and `[image] files`), runs as a non-root user, and is tagged
/// with the commit hash. The same commit always gives the same digest. Read it with
/// `skopeo inspect oci:target/ferry/oci/NAME:TAG` or run it with `podman run oci:…`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Build even with uncommitted changes; the tag then ends in `-dirty`.
    #[arg(long)]
    pub allow_dirty: bool,
    /// `commit` (the full hash) or `timestamp` (`<UTC time>-<short hash>`). Default: ferry.toml.
    #[arg(long, value_enum)]
    pub tag_scheme: Option<TagScheme>,
}

pub async fn run(args: BuildArgs, ctx: &Context) -> anyhow::Result<()> {
    let _lock = ctx.lock("building").await?;
    let request = Request {
        tests: Tests::NotPart,
        allow_dirty: args.allow_dirty,
        tag_scheme: args.tag_scheme,
        ..Request::default()
    };
    let mut recorder = Recorder::new(&ctx.reporter, pipeline::summary("build", "-", "local"));
    let built = pipeline::build_image(&ctx.config, &request, &mut recorder)
        .await
        .map_err(|h| h.error)?;
    println!(
        "{}:{}@{}",
        built.image.layout.display(),
        built.image.tag,
        built.image.manifest.digest
    );
    Ok(())
}
