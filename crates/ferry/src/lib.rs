//! ferry: continuous delivery for the `hello` service as one tested program.
//!
//! Each module is one pipeline stage and hands a typed value to the next:
//!
//! | stage      | module       | produces                                   |
//! |------------|--------------|--------------------------------------------|
//! | identity   | [`git`]      | [`git::Commit`]                            |
//! | test/build | [`compile`]  | a tested, statically linked binary         |
//! | image      | [`image`]    | [`image::Image`] in an OCI layout          |
//! | push       | [`registry`] | [`registry::Pushed`] (`repo@sha256:…`)     |
//! | render     | [`render`]   | [`render::Rendered`] Kubernetes objects    |
//! | deploy     | [`deploy`]   | [`deploy::Rollout`] outcome                |
//! | run local  | [`local`]    | a verified local instance                  |
//!
//! [`pipeline`] strings the stages together for `ferry ship` and `ferry plan`;
//! [`config`] reads `ferry.toml`; [`output`] reports progress to people and machines.

pub mod cli;
pub mod commands;
pub mod compile;
pub mod config;
pub mod deploy;
pub mod git;
pub mod image;
pub mod local;
pub mod output;
pub mod pipeline;
pub mod registry;
pub mod render;
pub mod verify;

use std::process::ExitCode;

/// Runs one parsed command line to completion and turns the outcome into an exit code.
pub fn run(cli: cli::Cli) -> ExitCode {
    commands::run(cli)
}

/// Installs ring as the process-wide rustls crypto provider (ferry uses ring only).
/// Idempotent; every code path that builds a TLS-capable client calls it first.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
