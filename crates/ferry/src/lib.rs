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
//! [`lock`] keeps two ferries in one checkout apart; [`output`] reports progress.
//!
//! Two crates do the work that needs no ferry.toml, and are re-exported here under the
//! module names the stages use: `ferry-oci` (images, registries, Google tokens, signatures,
//! SBOMs, provenance, Binary Authorization: [`image`], [`registry`], [`google`], [`sign`],
//! [`attest`], [`sbom`], [`supply`], [`binauthz`]) and `ferry-kube` ([`deploy`]: apply,
//! follow, roll back, history, the deploy lock, pruning).

/// The Kubernetes side (crate `ferry-kube`): apply, follow, roll back, history, lock, prune.
pub use ferry_kube as deploy;
/// Images, registries and the supply chain (crate `ferry-oci`).
pub use ferry_oci::{attest, binauthz, google, image, registry, sbom, sign, supply};

pub mod cli;
pub mod commands;
pub mod compile;
pub mod config;
pub mod dev;
pub mod environment;
pub mod git;
pub mod init;
pub mod local;
pub mod lock;
pub mod output;
pub mod pipeline;
pub mod project;
pub mod rbac;
pub mod render;
pub mod secrets;
pub mod verify;

use std::process::ExitCode;

/// Runs one parsed command line to completion and turns the outcome into an exit code.
pub fn run(cli: cli::Cli) -> ExitCode {
    commands::run(cli)
}

pub use ferry_oci::install_crypto_provider;
