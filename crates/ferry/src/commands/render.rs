//! `ferry render`: print the manifest as it would be applied.

use std::path::PathBuf;

use super::Context;
use crate::pipeline;

/// Render k8s.yml for an environment and print it. Every undefined `${VAR}` is an error that
/// lists all of them with file and line; nothing is printed then.
///
/// Values: IMAGE (--image), COMMIT (HEAD), ENVIRONMENT, NAMESPACE, the environment's `vars`,
/// --var NAME=VALUE, then the process environment.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Environment from ferry.toml (default: `default_environment`).
    #[arg(long, env = "FERRY_ENV")]
    pub env: Option<String>,
    /// The image reference to deploy, e.g. REPO@sha256:… (as `ferry push` prints it).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Manifest template (default: the environment's `manifest`, else k8s.yml).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// A manifest variable over the environment's `vars`, e.g. --var REPLICAS=2 (repeatable;
    /// `--set` is accepted too).
    #[arg(long = "var", alias = "set", value_name = "KEY=VALUE", value_parser = crate::config::parse_var)]
    pub set: Vec<(String, String)>,
    /// The namespace instead of the environment's (`ferry deploy --namespace`).
    #[arg(skip)]
    pub namespace: Option<String>,
}

pub async fn run(args: RenderArgs, ctx: &Context) -> anyhow::Result<()> {
    let rendered = render(&args, ctx)?;
    print!("{}", rendered.text);
    Ok(())
}

/// Shared by `render`, `deploy` and `plan`.
pub fn render(args: &RenderArgs, ctx: &Context) -> anyhow::Result<crate::render::Rendered> {
    let environment = ctx.environment(args.env.as_deref(), &Default::default(), None)?;
    let crate::environment::ManifestInputs {
        namespace,
        manifest,
        vars: env_vars,
    } = environment.manifest_inputs();
    let namespace = args.namespace.clone().unwrap_or(namespace);
    // parse_var refuses them already; this holds for callers that build RenderArgs.
    for (key, _) in &args.set {
        crate::render::check_settable(key, "--var")?;
    }
    let manifest = ctx
        .config
        .root
        .join(args.manifest.clone().unwrap_or(manifest));
    let commit = crate::git::Commit::discover(&ctx.config.root).ok();
    let vars = pipeline::manifest_vars(
        environment.name(),
        &namespace,
        args.image.as_deref(),
        commit.as_ref().map(|c| c.hash.as_str()),
        &env_vars,
        &args.set,
    );
    Ok(crate::render::render_file(&manifest, &vars)?)
}
