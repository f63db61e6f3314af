//! `ferry keygen`: a key pair for signing images.

/// Write an ECDSA P-256 key pair for signing images: PREFIX.key (PKCS#8 PEM, mode 0600) and
/// PREFIX.pub (public key PEM).
///
/// Point an environment's `signing_key` at PREFIX.key (or keep it in a CI secret and write it
/// to a file at run time); give PREFIX.pub to `require_signature`, `ferry verify-image --key`
/// and `cosign verify --key`. For production, prefer a Cloud KMS key
/// (`signing_key = "gcpkms://…"`), whose private half never leaves KMS.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the pair: PREFIX.key and PREFIX.pub.
    #[arg(long, default_value = "ferry", value_name = "PREFIX")]
    pub key_prefix: std::path::PathBuf,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    let (private, public) = crate::sign::write_key_pair(&args.key_prefix, args.force)?;
    eprintln!(
        "wrote {} (private: keep it secret) and {}",
        private.display(),
        public.display()
    );
    println!("{}", public.display());
    Ok(())
}
