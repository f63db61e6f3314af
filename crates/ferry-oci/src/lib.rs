//! Container images without a daemon, and what proves where they came from.
//!
//! | module       | does                                                                   |
//! |--------------|------------------------------------------------------------------------|
//! | [`image`]    | a reproducible OCI image layout from a static binary (one or more platforms) |
//! | [`registry`] | push to and copy between OCI v2 registries (Docker config, helpers, Google tokens) |
//! | [`google`]   | Google access tokens (keys, users, workload identity federation, metadata server) |
//! | [`sign`]     | keys, ECDSA P-256 signing (key file or Cloud KMS), DSSE envelopes       |
//! | [`attest`]   | the SLSA provenance statement of an image                              |
//! | [`sbom`]     | the CycloneDX SBOM of the crates linked into a binary                  |
//! | [`supply`]   | signatures, provenance and SBOMs stored beside an image, and checked   |
//! | [`binauthz`] | Binary Authorization attestations (Container Analysis)                 |
//!
//! Nothing here knows about cargo builds, Kubernetes or ferry.toml: the `ferry` crate hands
//! in a binary and settings and gets images, digests and verdicts back.

pub mod attest;
pub mod aws;
pub mod binauthz;
pub mod google;
pub mod image;
pub mod registry;
pub mod sbom;
pub mod sign;
pub mod supply;

/// Installs ring as the process-wide rustls crypto provider (ferry uses ring only).
/// Idempotent; every code path that builds a TLS-capable client calls it first.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
