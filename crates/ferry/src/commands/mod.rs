//! One file per subcommand: its arguments (clap) and how it drives the stages.
//!
//! This is the only layer that uses `anyhow`: stages return typed errors, commands add
//! context and turn them into messages for people.

pub mod build;
pub mod completions;
pub mod credentials;
pub mod deploy;
pub mod dev;
pub mod history;
pub mod init;
pub mod keygen;
pub mod lock;
pub mod plan;
pub mod promote;
pub mod push;
pub mod rbac;
pub mod render;
pub mod rollback;
pub mod ship;
pub mod status;
pub mod stop;
pub mod verify_image;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::Config;
use crate::output::{Mode, Reporter};

/// What every command gets: the configuration and a reporter.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Config,
    pub reporter: Reporter,
}

impl Context {
    pub fn from_global(global: &GlobalArgs) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let config = Config::load(global.config.as_deref(), &cwd)?;
        Ok(Self {
            config,
            reporter: Reporter::new(Mode::detect(global.output)),
        })
    }

    /// The environment called `name` (or the default), with this run's overrides, as the type
    /// that delivers to it.
    pub fn environment(
        &self,
        name: Option<&str>,
        overrides: &crate::config::KubernetesOverrides,
        runtime: Option<crate::config::LocalRuntime>,
    ) -> anyhow::Result<Box<dyn crate::environment::Environment>> {
        let (name, mut settings) = self.config.environment(name)?;
        overrides.apply(&name, &mut settings, |var| std::env::var(var).ok())?;
        Ok(crate::environment::open(
            &self.config,
            &name,
            settings,
            runtime,
        ))
    }

    /// This checkout's lock, held for the rest of the command.
    pub async fn lock(&self, what: &str) -> anyhow::Result<crate::lock::ProjectLock> {
        let reporter = self.reporter.clone();
        Ok(crate::lock::acquire(&self.config.root, what, |holder| {
            reporter.info(format!("{holder}; waiting for it to finish"));
        })
        .await?)
    }
}

/// Runs a command; errors are printed as `error: …` with their causes, exit code 1.
pub fn run(cli: Cli) -> ExitCode {
    init_logging(cli.global.verbose);
    crate::install_crypto_provider();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprint!("{}", error_report(&error));
            if is_usage_error(&error) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A mistake in how ferry was called (exit code 2), not a failure of what it did: no
/// ferry.toml, or a choice `ferry init` needs made.
fn is_usage_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<crate::config::ConfigError>()
            .is_some_and(|e| e.is_usage())
            || cause
                .downcast_ref::<crate::project::ProjectError>()
                .is_some_and(|e| e.is_usage())
            || cause
                .downcast_ref::<init::InitError>()
                .is_some_and(|e| e.is_usage())
    })
}

/// `error: …` and a `caused by: …` line for each cause that adds something: a cause whose
/// text is already part of what was printed (many messages embed their cause) is left out.
pub fn error_report(error: &anyhow::Error) -> String {
    let mut out = format!("error: {error}\n");
    let mut said = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if cause.trim().is_empty() || said.contains(cause.trim()) {
            continue;
        }
        out.push_str(&format!("  caused by: {cause}\n"));
        said.push_str(&cause);
    }
    out
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let cli = match cli.command {
        Command::Completions(args) => return completions::run(args),
        Command::Keygen(args) => return keygen::run(args),
        Command::Init(args) => {
            return init::run(args, &Reporter::new(Mode::detect(cli.global.output)));
        }
        _ => cli,
    };
    let ctx = Context::from_global(&cli.global)?;
    match cli.command {
        Command::Ship(args) => ship::run(args, &ctx).await,
        Command::Plan(args) => plan::run(args, &ctx).await,
        Command::Build(args) => build::run(args, &ctx).await,
        Command::Push(args) => push::run(args, &ctx).await,
        Command::Render(args) => render::run(args, &ctx).await,
        Command::Deploy(args) => deploy::run(args, &ctx).await,
        Command::Rbac(args) => rbac::run(args, &ctx).await,
        Command::Credentials(args) => credentials::run(args, &ctx).await,
        Command::Dev(args) => dev::run(args, &ctx).await,
        Command::Status(args) => status::run(args, &ctx).await,
        Command::Stop(args) => stop::run(args, &ctx).await,
        Command::History(args) => history::run(args, &ctx).await,
        Command::Promote(args) => promote::run(args, &ctx).await,
        Command::Rollback(args) => rollback::run(args, &ctx).await,
        Command::Lock(args) => lock::run(args, &ctx).await,
        Command::Unlock(args) => lock::run_unlock(args, &ctx).await,

        Command::VerifyImage(args) => verify_image::run(args, &ctx).await,
        Command::Completions(_) | Command::Init(_) | Command::Keygen(_) => {
            unreachable!("handled above")
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,ferry=debug,ferry_oci=debug,ferry_kube=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Embeds {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(Embeds {
            path: "ferry.toml".into(),
            source: io(),
        });
        assert_eq!(
            error_report(&error),
            "error: cannot read ferry.toml: No such file or directory\n"
        );
        // A context above it adds a line for the message, and still none for the io error.
        let error = error.context("cannot load the configuration");
        assert_eq!(
            error_report(&error),
            "error: cannot load the configuration\n  caused by: cannot read ferry.toml: No such file or directory\n"
        );
        // A cause that says something new is kept.
        let error = anyhow::Error::new(io()).context("no image to push");
        assert_eq!(
            error_report(&error),
            "error: no image to push\n  caused by: No such file or directory\n"
        );
    }
}
