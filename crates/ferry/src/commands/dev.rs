//! `ferry dev`: rebuild, restart and verify on every save, behind one stable URL.

use super::Context;

/// Watch the sources and keep a verified instance serving at one URL.
///
/// On each change ferry rebuilds with the fast profile (incremental, unoptimised), assembles
/// the image, starts the new instance beside the old, checks readiness and every `[[verify]]`,
/// then switches the stable port to it and stops the old one once its connections are done.
/// A build or check that fails keeps the old instance serving and says why. Log lines of the
/// service are printed with a `[NAME #N]` prefix. Ctrl-C stops everything.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// The stable local port (default: 8000 when free, else any).
    #[arg(long)]
    pub port: Option<u16>,
    /// How to run each instance (default: the bare binary, the fastest; podman when
    /// `[image] files` are set).
    #[arg(long, value_enum, env = "FERRY_LOCAL_RUNTIME")]
    pub runtime: Option<crate::config::LocalRuntime>,
}

pub async fn run(args: DevArgs, ctx: &Context) -> anyhow::Result<()> {
    let runtime = args
        .runtime
        .unwrap_or(if ctx.config.image.files.is_empty() {
            crate::config::LocalRuntime::Binary
        } else {
            crate::config::LocalRuntime::Podman
        });
    let local = ctx.environment(Some("local"), &Default::default(), Some(runtime))?;
    let secrets = crate::secrets::resolve_declared(local.declared_secrets()).await?;
    let options = crate::dev::DevOptions {
        port: args.port,
        runtime,
        secrets,
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    crate::dev::run(&ctx.config, &options, &ctx.reporter, stop).await
}
