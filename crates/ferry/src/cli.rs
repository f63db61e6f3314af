//! The command line: global options and one subcommand per pipeline entry point.
//!
//! Each subcommand's arguments live beside its implementation in [`crate::commands`].

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;

/// ferry: continuous delivery for Rust web services. It tests your service, builds a
/// reproducible OCI image without a Docker daemon, pushes it, renders k8s.yml strictly, applies
/// it server-side, follows the rollout, rolls back on failure and verifies the service answers.
///
/// Start in your cargo project with `ferry init` (it writes ferry.toml and k8s.yml), then
/// `ferry ship` runs the whole pipeline on this machine; `ferry ship --env NAME` delivers to a
/// Kubernetes cluster. This repository's `hello` service is the worked example.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Path to ferry.toml (default: ferry.toml here or in a directory above; `ferry init` writes one).
    #[arg(long, global = true, env = "FERRY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// How to report progress: `human` (spinners on a terminal), `plain` (one line per event,
    /// for CI logs) or `json` (a machine-readable summary on stdout). Default: human on a
    /// terminal, plain otherwise or when `CI` is set (to anything but `false`/`0`).
    #[arg(long, global = true, env = "FERRY_OUTPUT", value_enum)]
    pub output: Option<OutputFormat>,

    /// More detail in logs (repeat for even more). Logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Plain,
    Json,
}

/// Each command's one-line `about` is an attribute, not a doc comment: a doc comment here would
/// replace the long help written on the command's arguments struct, which `--help` shows.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(
        about = "Write ferry.toml and k8s.yml (and a CircleCI config) for the cargo project here"
    )]
    Init(commands::init::InitArgs),
    #[command(about = "Run the whole pipeline: test → build → push → render → deploy → verify")]
    Ship(commands::ship::ShipArgs),
    #[command(
        about = "Everything up to the deploy, with a server-side dry run and diff; nothing is pushed or applied"
    )]
    Plan(commands::plan::PlanArgs),
    #[command(
        about = "Build the service statically and assemble a reproducible OCI image (no Docker daemon)"
    )]
    Build(commands::build::BuildArgs),
    #[command(about = "Push the built image to an OCI registry and print `REPO@sha256:…`")]
    Push(commands::push::PushArgs),
    #[command(about = "Render the Kubernetes manifest; an undefined `${VAR}` is an error")]
    Render(commands::render::RenderArgs),
    #[command(about = "Apply the manifest server-side, follow the rollout, roll back on failure")]
    Deploy(commands::deploy::DeployArgs),
    #[command(about = "Rebuild, restart and verify on every save, behind one stable local URL")]
    Dev(commands::dev::DevArgs),
    #[command(
        about = "Add an environment's GKE cluster to the kubeconfig (gcloud get-credentials, from ferry.toml)"
    )]
    Credentials(commands::credentials::CredentialsArgs),
    #[command(
        about = "Print the namespaced Role a deploy identity needs for an environment (no wildcards)"
    )]
    Rbac(commands::rbac::RbacArgs),
    #[command(about = "Show what is deployed: image, commit, revision, replicas ready")]
    Status(commands::status::StatusArgs),
    #[command(
        about = "Stop the instance `ferry ship` left running in this project's local environment"
    )]
    Stop(commands::stop::StopArgs),
    #[command(
        about = "The last deploys of an environment: revision, commit, digest, time, who, what, outcome"
    )]
    History(commands::history::HistoryArgs),
    #[command(
        about = "Deploy to one environment exactly the image another runs (by digest, nothing rebuilt)"
    )]
    Promote(commands::promote::PromoteArgs),
    #[command(
        about = "Roll an environment back to the previous healthy revision, or to --to REVISION|COMMIT"
    )]
    Rollback(commands::rollback::RollbackArgs),
    #[command(
        about = "Freeze deploys to an environment until `ferry unlock` (a Lease in its namespace)"
    )]
    Lock(commands::lock::LockArgs),
    #[command(about = "Lift a lock taken by `ferry lock`")]
    Unlock(commands::lock::UnlockArgs),
    #[command(about = "Write an ECDSA P-256 key pair for signing images (PREFIX.key, PREFIX.pub)")]
    Keygen(commands::keygen::KeygenArgs),
    #[command(
        about = "Check an image's signature, provenance and SBOM in its registry with a public key"
    )]
    VerifyImage(commands::verify_image::VerifyImageArgs),
    #[command(about = "Print shell completions")]
    Completions(commands::completions::CompletionsArgs),
}
