//! `ferry promote`: deliver to one environment exactly what another runs.

use std::time::Duration;

use super::Context;
use crate::environment::PromoteRequest;

/// Promote the image an environment runs (read from its cluster, by digest) to another:
/// copy it into the target's repository when that differs (a cross-repository mount within
/// one registry, a blob copy across registries; the digest stays the same, nothing is built),
/// then deploy it with the target's manifest and vars, with the same fail fast, rollback,
/// deploy lock and history as `ferry deploy`. The source environment is only read.
///
/// A multi-platform image (an OCI image index) is copied with every platform's manifest, and
/// the image's signature, provenance and SBOMs (`sha256-<hex>.sig`, `.att`, `.sbom`) come
/// along, so the copy verifies in the target repository. A target with `require_signature`
/// refuses an image not signed with that key before anything is copied or applied.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The environment whose running image is promoted.
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// The environment it is deployed to.
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Promote an earlier revision still kept in the source, by its commit (7+ hex digits).
    #[arg(long, value_name = "HASH")]
    pub commit: Option<String>,
    /// Leave a failed rollout as it is instead of rolling the target back.
    #[arg(long)]
    pub no_rollback: bool,
    /// Confirm the promote to a target with `approval = true`.
    #[arg(long)]
    pub approve: bool,
    /// Wait this long for another run's deploy lock on the target instead of failing at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub lock_timeout: u64,
}

pub async fn run(args: PromoteArgs, ctx: &Context) -> anyhow::Result<()> {
    let none = crate::config::KubernetesOverrides::default();
    let source = ctx.environment(Some(&args.from), &none, None)?;
    let target = ctx.environment(Some(&args.to), &none, None)?;
    if source.name() == target.name() {
        anyhow::bail!(
            "--from and --to are both {:?}\n  hint: promote from one environment to another, e.g. --from staging --to production",
            source.name()
        );
    }
    let running = source.running_image(args.commit.as_deref()).await?;
    ctx.reporter.info(format!(
        "{} runs {} (commit {})",
        running.environment,
        running.image,
        running.commit.as_deref().unwrap_or("-")
    ));
    let request = PromoteRequest {
        lock_wait: Duration::from_secs(args.lock_timeout),
        no_rollback: args.no_rollback,
        approve: args.approve,
    };
    target.promote(&running, &request, &ctx.reporter).await
}
