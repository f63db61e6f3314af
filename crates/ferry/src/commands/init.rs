//! `ferry init`: start delivering the cargo project in the current directory.

use std::path::{Path, PathBuf};

use crate::init::{self, Plan};
use crate::output::Reporter;
use crate::project::Project;

/// Write a commented ferry.toml (a `local` environment and a Kubernetes example), a k8s.yml
/// made from the service's settings and, with `--ci circleci`, a .circleci/config.yml.
///
/// ferry reads the project with `cargo metadata` and picks its only binary; in a project with
/// several, it lists them and exits 2 until --package (and --binary) names one. Files that
/// exist are never overwritten without --force.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The package whose binary is delivered (needed when the project has several binaries).
    #[arg(long, short = 'p')]
    pub package: Option<String>,
    /// The binary, when the package has several.
    #[arg(long)]
    pub binary: Option<String>,
    /// The port the service listens on.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The service's readiness path (without one, readiness is a TCP connect).
    #[arg(long, value_name = "PATH")]
    pub ready_path: Option<String>,
    /// The service's liveness path.
    #[arg(long, value_name = "PATH")]
    pub health_path: Option<String>,
    /// Also write a CI pipeline.
    #[arg(long, value_enum)]
    pub ci: Option<Ci>,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
    /// The project directory (default: the current one).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ci {
    Circleci,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{} already exist{}; nothing was written\n  hint: pass --force to overwrite, or edit {} by hand",
        .paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if .paths.len() == 1 { "s" } else { "" },
        if .paths.len() == 1 { "it" } else { "them" }
    )]
    Exists { paths: Vec<PathBuf> },
    #[error("{path} does not start with /: give the path part of the URL, e.g. /healthz")]
    BadPath { path: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    pub fn is_usage(&self) -> bool {
        matches!(self, InitError::Exists { .. } | InitError::BadPath { .. })
    }
}

pub fn run(args: InitArgs, reporter: &Reporter) -> anyhow::Result<()> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    for path in [&args.ready_path, &args.health_path].into_iter().flatten() {
        if !path.starts_with('/') {
            return Err(InitError::BadPath { path: path.clone() }.into());
        }
    }
    let project = Project::read(&dir)?;
    let (package, binary) = project.pick_binary(args.package.as_deref(), args.binary.as_deref())?;
    let several_binaries = project
        .packages
        .iter()
        .map(|p| p.binaries.len())
        .sum::<usize>()
        > 1;
    let plan = Plan {
        package,
        binary,
        several_binaries,
        port: args.port,
        ready_path: args.ready_path.clone(),
        health_path: args.health_path.clone(),
    };
    // ferry.toml sits at the project's root, where `cargo metadata` says the workspace is.
    let root = if project.workspace_root.as_os_str().is_empty() {
        dir.clone()
    } else {
        project.workspace_root.clone()
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        (root.join(crate::config::FILE_NAME), init::ferry_toml(&plan)),
        (root.join("k8s.yml"), init::k8s_yml(&plan)),
    ];
    if args.ci == Some(Ci::Circleci) {
        files.push((
            root.join(".circleci").join("config.yml"),
            init::circleci(&plan),
        ));
    }
    let existing: Vec<PathBuf> = files
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(InitError::Exists { paths: existing }.into());
    }
    for (path, text) in &files {
        write(path, text)?;
        reporter.info(format!("wrote {}", shown(&dir, path)));
    }
    // ferry builds with --locked, so the same commit always builds the same dependencies.
    let lock = root.join("Cargo.lock");
    if !lock.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .arg("generate-lockfile")
            .current_dir(&root)
            .stdin(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "`cargo generate-lockfile` failed in {}; ferry builds with --locked and needs a Cargo.lock",
            root.display()
        );
        reporter.info(format!(
            "wrote {} (ferry builds --locked: commit it)",
            shown(&dir, &lock)
        ));
    }
    reporter.info(format!(
        "ferry will deliver binary `{}` of package `{}`, listening on port {}",
        plan.binary, plan.package, plan.port
    ));
    reporter.info(
        "next:\n  \
         git add ferry.toml k8s.yml Cargo.lock && git commit -m 'ferry init'\n  \
         ferry ship                     # test, build the image, run it here and verify it\n  \
         then fill in [environments.staging] and [environments.production] in ferry.toml, run\n  \
         `ferry plan --env staging`, `ferry ship --env staging`, then\n  \
         `ferry promote --from staging --to production` (what --ci circleci's pipeline does)",
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), InitError> {
    let err = |source| InitError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, text).map_err(err)
}

fn shown(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}
