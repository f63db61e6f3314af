//! ferry: continuous delivery for Rust web services as one tested program (this repository's
//! `hello` service is the worked example; nothing here knows it).
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
//! | run local  | [`local`]    | a running local instance                   |
//! | verify     | [`verify`]   | [`verify::Verified`]: ready, checks passed |
//!
//! [`environment`] is where a service goes: one type per kind (local, kubernetes) behind one
//! trait; [`pipeline`] holds the stages every environment shares; [`config`] reads
//! `ferry.toml`; [`project`] reads the cargo project; [`init`] writes a starting ferry.toml;
//! [`sbom`] lists the crates in the binary; [`sign`], [`attest`] and [`supply`] sign images, attest their provenance and store both
//! beside them in the registry; [`binauthz`] records Binary Authorization attestations; [`google`] finds Google access tokens; [`lock`] keeps two ferries in one checkout apart; [`output`] reports progress.

pub mod attest;
pub mod binauthz;
pub mod cli;
pub mod commands;
pub mod compile;
pub mod config;
pub mod deploy;
pub mod dev;
pub mod environment;
pub mod git;
pub mod google;
pub mod image;
pub mod init;
pub mod local;
pub mod lock;
pub mod output;
pub mod pipeline;
pub mod project;
pub mod rbac;
pub mod registry;
pub mod render;
pub mod sbom;
pub mod secrets;
pub mod sign;
pub mod supply;
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
