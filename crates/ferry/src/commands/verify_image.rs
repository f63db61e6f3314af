//! `ferry verify-image`: check an image's signature, provenance and SBOM in its registry.

use super::Context;
use crate::output::Mode;
use crate::registry::{PushOptions, RegistryAuth};

/// Check that an image in its registry has a cosign signature and signed SLSA provenance
/// that verify with the public key, and a CycloneDX SBOM; exit non-zero if any is missing or
/// does not verify.
///
/// The same checks with other tools: `cosign verify --key KEY --insecure-ignore-tlog REF`,
/// `cosign verify-attestation --key KEY --insecure-ignore-tlog --type slsaprovenance1 REF`.
#[derive(Debug, clap::Args)]
pub struct VerifyImageArgs {
    /// The image: REPO@sha256:… (what `ferry push` prints) or REPO:TAG.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The public key (PEM) the signatures must verify with (`ferry keygen` writes PREFIX.pub).
    #[arg(long, value_name = "PUBLIC_KEY")]
    pub key: std::path::PathBuf,
    /// Plain HTTP to the registry (loopback registries always use it).
    #[arg(long)]
    pub insecure: bool,
    /// Where credentials come from.
    #[arg(long, value_enum, env = "FERRY_REGISTRY_AUTH", default_value = "auto")]
    pub auth: RegistryAuth,
}

pub async fn run(args: VerifyImageArgs, ctx: &Context) -> anyhow::Result<()> {
    let options = PushOptions {
        insecure: args.insecure,
        auth: args.auth,
        ..PushOptions::default()
    };
    let stage = ctx.reporter.stage(
        "verify-image",
        format!("{} with {}", args.reference, args.key.display()),
    );
    match crate::supply::verify_image(&args.reference, &args.key, &options).await {
        Ok(verified) => {
            stage.done(format!(
                "signature {}, provenance {} (builder {}, commit {}), SBOM {}",
                verified.signature,
                verified.provenance,
                verified.builder,
                verified.commit,
                verified.sbom
            ));
            if ctx.reporter.mode() == Mode::Json {
                println!("{}", serde_json::to_string_pretty(&verified)?);
            } else {
                println!("{}", verified.reference);
            }
            Ok(())
        }
        Err(e) => {
            stage.failed(e.to_string().lines().next().unwrap_or_default());
            Err(e.into())
        }
    }
}
