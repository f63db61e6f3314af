//! `ferry ship` and `ferry plan`: the stages strung together, stopping at the first failure.
//!
//! ```text
//! local:      test → build → image → run → verify
//! kubernetes: test → build → image → push → render → deploy → verify
//! plan:       test → build → image → render → dry-run (nothing pushed or applied)
//! ```
//!
//! Every stage is timed and recorded in a [`Summary`]; `--output json` prints it
//! (schema: `docs/ship-output.schema.json`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::output::{Reporter, Stage};

/// Where the local environment keeps its instance state, logs and the extracted binary.
pub fn local_state_dir(config: &Config) -> PathBuf {
    config.root.join("target").join("ferry").join("local")
}

/// What the test stage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tests {
    /// Run `[test] command`.
    #[default]
    Run,
    /// Recorded as skipped: `--skip-tests` was given.
    Skipped,
    /// Not part of this command (`ferry build`): no test stage at all.
    NotPart,
}

/// Where `ferry build` writes the OCI image layout.
pub fn layout_dir(config: &Config) -> PathBuf {
    layout_dir_for(config, crate::compile::Profile::Release)
}

/// Where the image built with `profile` goes: fast builds never replace the release image
/// that `ferry push` sends.
pub fn layout_dir_for(config: &Config, profile: crate::compile::Profile) -> PathBuf {
    let dir = match profile {
        crate::compile::Profile::Release => "oci",
        crate::compile::Profile::Fast => "oci-fast",
    };
    config
        .root
        .join("target")
        .join("ferry")
        .join(dir)
        .join(&config.image.name)
}

/// The machine-readable record of one `ferry ship` or `ferry plan`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Version of this document's shape.
    pub schema: u32,
    /// `ship` or `plan`.
    pub command: &'static str,
    pub environment: String,
    /// `local` or `kubernetes`.
    pub kind: &'static str,
    /// `succeeded`, `failed` or `rolled_back`.
    pub outcome: Outcome,
    /// The stage that stopped the pipeline, if any.
    pub failed_stage: Option<String>,
    /// The error, as printed.
    pub error: Option<String>,
    pub commit: Option<CommitInfo>,
    pub image: Option<ImageInfo>,
    pub stages: Vec<StageRecord>,
    /// Kubernetes only: what the rollout did.
    pub rollout: Option<crate::deploy::Rollout>,
    /// Where the service answers, when known.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    RolledBack,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CommitInfo {
    pub hash: String,
    pub short: String,
    pub time: String,
    pub dirty: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct ImageInfo {
    pub tag: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
    pub layout: String,
    pub compressed_bytes: u64,
    /// `REPO@sha256:…` once pushed.
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StageRecord {
    pub name: String,
    /// `ok`, `failed` or `skipped`.
    pub status: StageStatus,
    pub duration_ms: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Ok,
    Failed,
    Skipped,
}

/// Runs stages one after another, recording each in the summary.
pub struct Recorder<'a> {
    reporter: &'a Reporter,
    pub summary: Summary,
}

/// The pipeline stopped at a stage; the summary says which and why.
#[derive(Debug)]
pub struct Halted {
    pub error: anyhow::Error,
}

impl<'a> Recorder<'a> {
    pub fn new(reporter: &'a Reporter, summary: Summary) -> Self {
        Self { reporter, summary }
    }

    pub fn reporter(&self) -> &Reporter {
        self.reporter
    }

    /// Runs one stage. `work` gets the live [`Stage`] for progress lines and returns the value
    /// plus a one-line summary. A failure is recorded and stops the pipeline.
    pub async fn stage<T>(
        &mut self,
        name: &str,
        what: &str,
        work: impl AsyncFnOnce(&Stage) -> anyhow::Result<(T, String)>,
    ) -> Result<T, Halted> {
        let stage = self.reporter.stage(name, what);
        let result = work(&stage).await;
        match result {
            Ok((value, detail)) => {
                let took = stage.done(&detail);
                self.record(name, StageStatus::Ok, took, detail);
                Ok(value)
            }
            Err(error) => {
                let line = first_line(&error);
                let took = stage.failed(&line);
                self.record(name, StageStatus::Failed, took, line);
                self.summary.outcome = Outcome::Failed;
                self.summary.failed_stage = Some(name.to_string());
                self.summary.error = Some(format!("{error:#}"));
                Err(Halted { error })
            }
        }
    }

    /// Records a stage that does not apply to this environment or run.
    pub fn skip(&mut self, name: &str, why: &str) {
        self.reporter.skipped(name, why);
        self.record(name, StageStatus::Skipped, Duration::ZERO, why.to_string());
    }

    fn record(&mut self, name: &str, status: StageStatus, took: Duration, detail: String) {
        self.summary.stages.push(StageRecord {
            name: name.to_string(),
            status,
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            detail,
        });
    }
}

fn first_line(error: &anyhow::Error) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// What `ferry ship` / `ferry plan` were asked to do.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub environment: Option<String>,
    pub tests: Tests,
    pub allow_dirty: bool,
    pub tag_scheme: Option<crate::config::TagScheme>,
    /// Kubernetes: do not roll back a failed rollout.
    pub no_rollback: bool,
    /// Kubernetes: the manual gate for environments with `approval = true`.
    pub approve: bool,
    /// `ferry plan`: an unreachable cluster is expected (no dry run), not an error.
    pub offline: bool,
    /// What the history records this delivery as (default `ship`).
    pub operation: Option<&'static str>,
    /// How the binary is compiled (the environment's `profile`; release unless it says fast).
    pub profile: crate::compile::Profile,
}

/// The result of the shared front half of every pipeline: a tested, built image.
#[derive(Debug, Clone)]
pub struct Built {
    pub commit: crate::git::Commit,
    pub image: crate::image::Image,
    /// The CycloneDX SBOM of the binary (release builds; the host platform's for an index).
    pub sbom: Option<Vec<u8>>,
    /// A multi-platform image's SBOMs by platform (`linux/arm64`).
    pub platform_sboms: Vec<(String, Vec<u8>)>,
}

/// test → build → image, recorded in `recorder`.
pub async fn build_image(
    config: &Config,
    request: &Request,
    recorder: &mut Recorder<'_>,
) -> Result<Built, Halted> {
    use anyhow::Context as _;

    let root = config.root.clone();
    let commit = crate::git::Commit::discover(&root)
        .and_then(|c| c.require_clean(&root, request.allow_dirty).map(|()| c))
        .map_err(|e| {
            recorder.summary.outcome = Outcome::Failed;
            recorder.summary.failed_stage = Some("build".into());
            recorder.summary.error = Some(e.to_string());
            Halted { error: e.into() }
        })?;
    config.require_service().map_err(|e| {
        recorder.summary.outcome = Outcome::Failed;
        recorder.summary.failed_stage = Some("build".into());
        recorder.summary.error = Some(e.to_string());
        Halted { error: e.into() }
    })?;
    recorder.summary.commit = Some(CommitInfo {
        hash: commit.hash.clone(),
        short: commit.short.clone(),
        time: commit.time_rfc3339(),
        dirty: commit.dirty,
    });
    let package = config.service.package.clone();
    let binary_name = config.service.binary.clone();

    // The fast build of the binary, when compiling the tests made it.
    let mut tested_binary = None;
    match request.tests {
        Tests::NotPart => {}
        Tests::Skipped => recorder.skip("test", "--skip-tests"),
        Tests::Run => {
            let run = match config.test.custom() {
                Some(command) => crate::compile::TestRun::Custom(command),
                None => crate::compile::TestRun::Cargo {
                    package: &package,
                    binary: &binary_name,
                    profile: request.profile,
                },
            };
            tested_binary = recorder
                .stage("test", &run.describe(), async |stage| {
                    let tested = crate::compile::test(&root, run, config.test.threads, |l| {
                        stage.progress(l)
                    })
                    .await?;
                    Ok((tested.binary, tested.summary))
                })
                .await?;
        }
    }

    // `[image] platforms` other than just this machine's: an image index.
    let platforms = config.image.multi_platform().map_err(|e| {
        recorder.summary.outcome = Outcome::Failed;
        recorder.summary.failed_stage = Some("build".into());
        recorder.summary.error = Some(e.to_string());
        Halted { error: e.into() }
    })?;
    let (binary, per_platform) = recorder
        .stage(
            "build",
            &match request.profile {
                crate::compile::Profile::Release => {
                    format!("static release build of {binary_name}")
                }
                crate::compile::Profile::Fast => format!("fast static build of {binary_name}"),
            },
            async |stage| {
                if let Some(platforms) = &platforms {
                    // One static binary per `[image] platforms` entry.
                    let mut built = Vec::new();
                    for platform in platforms {
                        let path = crate::compile::build_static_for(
                            &root,
                            &package,
                            &binary_name,
                            request.profile,
                            platform.rust_target(),
                            |l| stage.progress(format!("{platform}: {l}")),
                        )
                        .await?;
                        built.push((platform.clone(), path));
                    }
                    let detail = built
                        .iter()
                        .map(|(p, path)| {
                            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                            format!("{p}: {} ({})", path.display(), bytes(size))
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    let host = built.first().map(|(_, p)| p.clone()).unwrap_or_default();
                    return Ok(((host, built), detail));
                }
                if let Some(path) =
                    tested_binary.filter(|_| request.profile == crate::compile::Profile::Fast)
                {
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    let detail = format!(
                        "{} ({}), the binary the tests ran against",
                        path.display(),
                        bytes(size)
                    );
                    return Ok(((path, Vec::new()), detail));
                }
                let path = crate::compile::build_static(
                    &root,
                    &package,
                    &binary_name,
                    request.profile,
                    |l| stage.progress(l),
                )
                .await?;
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let detail = format!("{} ({})", path.display(), bytes(size));
                Ok(((path, Vec::new()), detail))
            },
        )
        .await?;

    let tag = commit.tag(request.tag_scheme.unwrap_or(config.image.tag));
    let layout = layout_dir_for(config, request.profile);
    let spec = crate::image::ImageSpec {
        binary,
        binary_name: config.service.binary.clone(),
        port: config.service.port,
        user: config.service.user,
        args: config.service.args_for(config.service.port),
        env: config
            .service
            .env_for(config.service.port)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        files: config
            .image
            .files
            .iter()
            .map(|f| (root.join(&f.from), f.to.clone()))
            .collect(),
        ca_certificates: config.image.ca_certificates,
        tag: tag.clone(),
        revision: commit.hash.clone(),
        created: commit.time_rfc3339(),
        created_unix: u64::try_from(commit.time.as_second()).unwrap_or(0),
        source: config.image.source.clone(),
        title: config.image.name.clone(),
    };
    let (image, sbom) = recorder
        .stage("image", "OCI image layout", async |_stage| {
            let image = if per_platform.is_empty() {
                crate::image::assemble(&spec, &layout)
            } else {
                let parts: Vec<_> = per_platform
                    .iter()
                    .map(|(platform, binary)| {
                        let spec = crate::image::ImageSpec {
                            binary: binary.clone(),
                            ..spec.clone()
                        };
                        (platform.clone(), spec)
                    })
                    .collect();
                crate::image::assemble_index(&parts, &crate::compile::Platform::host(), &layout)
            }
            .with_context(|| format!("cannot assemble the image for {tag}"))?;
            // The SBOM of a release binary, beside the layout; attached when the image is
            // signed. Fast builds (the dev loop) skip it.
            let mut sboms = Vec::new();
            if request.profile == crate::compile::Profile::Release {
                // One per platform (their crates can differ), else the host target's.
                let targets: Vec<(String, &str)> = match &platforms {
                    Some(platforms) => platforms
                        .iter()
                        .map(|p| (p.to_string(), p.rust_target()))
                        .collect(),
                    None => vec![(String::new(), crate::compile::TARGET)],
                };
                for (platform, target) in targets {
                    let crates = crate::sbom::crates(&root, &package, target)?;
                    let sbom = crate::sbom::cyclonedx(&crates, &commit.time_rfc3339());
                    let path = match platform.rsplit_once('/') {
                        Some((_, arch)) => layout.with_extension(format!("{arch}.cdx.json")),
                        None => layout.with_extension("cdx.json"),
                    };
                    std::fs::write(&path, &sbom)
                        .with_context(|| format!("cannot write the SBOM to {}", path.display()))?;
                    sboms.push((platform, sbom));
                }
            }
            // The image's own: the host platform's (listed first).
            let sbom = sboms.first().map(|(_, s)| s.clone());
            let sbom = (sbom, sboms);
            let detail = format!(
                "{}:{} {} ({} compressed)",
                layout.display(),
                image.tag,
                image.manifest.digest,
                bytes(image.compressed_size())
            );
            Ok(((image, sbom), detail))
        })
        .await?;
    recorder.summary.image = Some(ImageInfo {
        tag: image.tag.clone(),
        digest: image.manifest.digest.clone(),
        layout: image.layout.display().to_string(),
        compressed_bytes: image.compressed_size(),
        reference: None,
    });
    Ok(Built {
        commit,
        image,
        sbom: sbom.0,
        platform_sboms: sbom.1,
    })
}

/// A new summary for `command` in `environment`.
pub fn summary(command: &'static str, environment: &str, kind: &'static str) -> Summary {
    Summary {
        schema: 1,
        command,
        environment: environment.to_string(),
        kind,
        outcome: Outcome::Succeeded,
        failed_stage: None,
        error: None,
        commit: None,
        image: None,
        stages: Vec::new(),
        rollout: None,
        url: None,
    }
}

/// `2.1 MB`, `640 KB`, `12 B`.
pub fn bytes(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1} MB", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{} KB", n / 1000)
    } else {
        format!("{n} B")
    }
}

/// The cluster an environment points at: its kubeconfig, and its `context` or else the
/// context gcloud writes for its `gke` cluster.
pub fn target(config: &Config, env: &crate::config::KubernetesEnv) -> crate::deploy::Target {
    crate::deploy::Target {
        kubeconfig: env.kubeconfig.as_ref().map(|p| config.root.join(p)),
        context: env.effective_context(),
        ..Default::default()
    }
}

/// Why ferry could not reach an environment's cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "the kubeconfig ({kubeconfig}) has no context `{}` for the {cluster}\n  \
         hint: run {} to add it, or set `context` in ferry.toml (or --context) to one that exists{}",
        .cluster.context_name(),
        how_to_add(.environment.as_deref(), .cluster),
        known_contexts(.known)
    )]
    MissingGkeContext {
        cluster: Box<crate::config::GkeCluster>,
        /// The environment in ferry.toml, when the cluster is one's.
        environment: Option<String>,
        /// Where the kubeconfig was looked for, and why it was unusable if it was.
        kubeconfig: String,
        /// The contexts it does have.
        known: Vec<String>,
    },
    #[error(transparent)]
    Deploy(#[from] crate::deploy::DeployError),
}

impl ClusterError {
    /// Names the environment whose cluster this is, so the hint gives its `ferry credentials`.
    pub fn for_environment(mut self, name: &str) -> Self {
        if let ClusterError::MissingGkeContext { environment, .. } = &mut self {
            *environment = Some(name.to_string());
        }
        self
    }
}

fn how_to_add(environment: Option<&str>, cluster: &crate::config::GkeCluster) -> String {
    match environment {
        Some(name) => format!(
            "`ferry credentials --env {name}` (it runs `{}`)",
            cluster.get_credentials_command()
        ),
        None => format!("`{}`", cluster.get_credentials_command()),
    }
}

fn known_contexts(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!("\n  contexts there: {}", known.join(", "))
    }
}

/// Connects to an environment's cluster. For a GKE environment whose context gcloud writes,
/// first checks that the kubeconfig has it, so the error says how to get it.
pub async fn connect(
    config: &Config,
    name: &str,
    env: &crate::config::KubernetesEnv,
) -> Result<crate::deploy::Cluster, ClusterError> {
    connect_target(&target(config, env), env.gke.as_ref())
        .await
        .map_err(|e| e.for_environment(name))
}

/// Connects to `target`; when its context is the one gcloud writes for `gke`, first checks
/// the kubeconfig has it, so the error says how to get it.
pub async fn connect_target(
    target: &crate::deploy::Target,
    gke: Option<&crate::config::GkeCluster>,
) -> Result<crate::deploy::Cluster, ClusterError> {
    if let (Some(gke), Some(context)) = (gke, &target.context)
        && *context == gke.context_name()
    {
        let (kubeconfig, place) = read_kubeconfig(target.kubeconfig.as_deref());
        check_gke_context(kubeconfig, &place, gke)?;
    }
    Ok(crate::deploy::connect(target).await?)
}

/// The kubeconfig at `path`, else `$KUBECONFIG`'s or `~/.kube/config`, and how to name it in a
/// message.
pub fn read_kubeconfig(
    path: Option<&std::path::Path>,
) -> (Result<kube::config::Kubeconfig, String>, String) {
    let (kubeconfig, place) = match path {
        Some(path) => (
            kube::config::Kubeconfig::read_from(path),
            path.display().to_string(),
        ),
        None => (
            kube::config::Kubeconfig::read(),
            match std::env::var_os("KUBECONFIG") {
                Some(v) => format!("$KUBECONFIG={}", v.to_string_lossy()),
                None => "~/.kube/config".to_string(),
            },
        ),
    };
    (kubeconfig.map_err(|e| e.to_string()), place)
}

/// `Ok` when `kubeconfig` has the context gcloud writes for `gke`; `place` names the
/// kubeconfig in the error.
pub fn check_gke_context(
    kubeconfig: Result<kube::config::Kubeconfig, String>,
    place: &str,
    gke: &crate::config::GkeCluster,
) -> Result<(), ClusterError> {
    let context = gke.context_name();
    let (known, place) = match kubeconfig {
        Ok(k) if k.contexts.iter().any(|c| c.name == context) => return Ok(()),
        Ok(k) => (
            k.contexts.into_iter().map(|c| c.name).collect(),
            place.to_string(),
        ),
        Err(why) => (Vec::new(), format!("{place}: {why}")),
    };
    Err(ClusterError::MissingGkeContext {
        cluster: Box::new(gke.clone()),
        environment: None,
        kubeconfig: place,
        known,
    })
}

/// Renders the environment's manifest with `image` pinned.
pub fn render_for(
    config: &Config,
    env_name: &str,
    env: &crate::config::KubernetesEnv,
    image: &str,
    commit: Option<&str>,
) -> Result<crate::render::Rendered, crate::render::RenderError> {
    let vars = manifest_vars(
        env_name,
        &env.namespace,
        Some(image),
        commit,
        &env.vars,
        &[],
    );
    crate::render::render_file(&config.root.join(&env.manifest), &vars)
}

/// Renders the manifest before anything is built or pushed, with stand-ins for the image and
/// commit, so an undefined variable stops the pipeline at once instead of after a push.
/// Records nothing when the manifest renders; the real render comes after the push.
pub async fn check_manifest(
    config: &Config,
    env: &crate::config::KubernetesEnv,
    recorder: &mut Recorder<'_>,
) -> Result<(), Halted> {
    let env_name = recorder.summary.environment.clone();
    let stand_in = "registry.invalid/stand-in@sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let Err(error) = render_for(config, &env_name, env, stand_in, Some(&"0".repeat(40))) else {
        return Ok(());
    };
    recorder
        .stage(
            "render",
            &env.manifest.display().to_string(),
            async |_s| -> anyhow::Result<((), String)> {
                Err(anyhow::Error::new(error)
                    .context("the manifest does not render; nothing was built or pushed"))
            },
        )
        .await
}

/// The manual gate of an environment with `approval = true`: passes with `--approve`, else
/// stops the pipeline before anything is built or pushed. Records nothing when there is no gate.
pub async fn approval_gate(
    env: &crate::config::KubernetesEnv,
    request: &Request,
    recorder: &mut Recorder<'_>,
) -> Result<(), Halted> {
    if !env.approval {
        return Ok(());
    }
    let env_name = recorder.summary.environment.clone();
    recorder
        .stage("approval", "approval = true", async |_s| {
            if request.approve {
                return Ok(((), "approved with --approve".to_string()));
            }
            anyhow::bail!(
                "environment `{env_name}` requires approval (approval = true in ferry.toml); nothing was built or pushed\n  \
                 hint: check `ferry plan --env {env_name}`, then re-run with --approve"
            )
        })
        .await
}

/// Turns a recorded successful stage into a failure after the fact (a rollout that
/// completed its work but ended in rollback).
pub fn mark_failed(
    recorder: &mut Recorder<'_>,
    stage: &str,
    error: &anyhow::Error,
    outcome: Outcome,
) {
    if let Some(last) = recorder
        .summary
        .stages
        .iter_mut()
        .rev()
        .find(|s| s.name == stage)
    {
        last.status = StageStatus::Failed;
        last.detail = error
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
    }
    recorder.summary.outcome = outcome;
    recorder.summary.failed_stage = Some(stage.to_string());
    recorder.summary.error = Some(format!("{error:#}"));
}

/// The variables ferry gives the manifest. `vars` of the environment (where ship and plan put
/// their `--var`s) and `overrides` (render and deploy's `--var`) come after
/// (and so win); the process environment is consulted only for names not given here.
pub fn manifest_vars(
    environment: &str,
    namespace: &str,
    image: Option<&str>,
    commit: Option<&str>,
    env_vars: &std::collections::BTreeMap<String, String>,
    overrides: &[(String, String)],
) -> std::collections::BTreeMap<String, String> {
    let mut vars = std::collections::BTreeMap::new();
    vars.insert("ENVIRONMENT".to_string(), environment.to_string());
    vars.insert("NAMESPACE".to_string(), namespace.to_string());
    if let Some(image) = image {
        vars.insert("IMAGE".to_string(), image.to_string());
    }
    if let Some(commit) = commit {
        vars.insert("COMMIT".to_string(), commit.to_string());
    }
    vars.extend(env_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars.extend(overrides.iter().cloned());
    vars
}

/// After the push: with `signing_key`, sign the image and attach its provenance (and SBOM);
/// with `binauthz`, attest it for Binary Authorization; with `require_signature`, refuse an
/// image whose signature does not verify — all before anything is rendered or applied.
pub async fn sign_and_check(
    config: &Config,
    env: &crate::config::KubernetesEnv,
    built: &Built,
    pushed: &crate::registry::Pushed,
    recorder: &mut Recorder<'_>,
) -> Result<(), Halted> {
    let options = crate::registry::PushOptions {
        insecure: env.insecure_registry,
        auth: env.registry_auth,
        ..Default::default()
    };
    let environment = recorder.summary.environment.clone();
    if let Some(key) = &env.signing_key {
        recorder
            .stage("sign", "signature, SLSA provenance", async |_s| {
                let signer =
                    crate::sign::Signer::open(&crate::sign::KeyRef::parse(key, &config.root)?)?;
                let repository: crate::registry::Repository = pushed.repository.parse()?;
                let subject = crate::supply::Subject {
                    repository: pushed.repository.clone(),
                    digest: built.image.manifest.digest.clone(),
                    media_type: built.image.manifest.media_type.clone(),
                    size: built.image.manifest.size,
                };
                let (cargo_lock, toolchain, builder) =
                    crate::attest::BuildFacts::collect(&config.root);
                let facts = crate::attest::BuildFacts {
                    repository: pushed.repository.clone(),
                    digest: subject.digest.clone(),
                    source: config.image.source.clone(),
                    commit: built.commit.hash.clone(),
                    package: config.service.package.clone(),
                    environment,
                    command: build_command(config, &built.image),
                    cargo_lock,
                    toolchain,
                    builder,
                    time: built.commit.time_rfc3339(),
                };
                let statement = crate::attest::provenance(&facts);
                let mut session = crate::registry::Session::open(&repository, &options).await?;
                let attached = crate::supply::attach(
                    &mut session,
                    &subject,
                    &signer,
                    &statement,
                    built.sbom.as_deref(),
                )
                .await?;
                for (platform, child) in &built.image.platforms {
                    let Some((_, sbom)) = built.platform_sboms.iter().find(|(p, _)| p == platform)
                    else {
                        continue;
                    };
                    let child = crate::supply::Subject {
                        repository: pushed.repository.clone(),
                        digest: child.manifest.digest.clone(),
                        media_type: child.manifest.media_type.clone(),
                        size: child.manifest.size,
                    };
                    crate::supply::attach_sbom(&mut session, &child, sbom).await?;
                }
                let detail = match &attached.sbom {
                    Some(sbom) => {
                        format!("{}, {}, {sbom}", attached.signature, attached.provenance)
                    }
                    None => format!("{}, {}", attached.signature, attached.provenance),
                };
                Ok(((), detail))
            })
            .await?;
    }
    if let (Some(key), Some(binauthz)) = (&env.signing_key, &env.binauthz) {
        recorder
            .stage("attest", &binauthz.attestor, async |_s| {
                let key = crate::sign::KeyRef::parse(key, &config.root)?;
                let attestor = binauthz.check(Some(&key))?;
                let signer = crate::sign::Signer::open(&key)?;
                let attested = crate::binauthz::attest(
                    &crate::binauthz::ContainerAnalysis::from_env(),
                    &attestor,
                    &signer,
                    &pushed.repository,
                    &built.image.manifest.digest,
                )
                .await?;
                Ok(((), format!("{attested} ({})", attestor.name)))
            })
            .await?;
    }
    if let Some(public) = &env.require_signature {
        let public = config.root.join(public);
        recorder
            .stage(
                "check signature",
                &public.display().to_string(),
                async |_s| {
                    let pinned =
                        crate::supply::require_signature(&pushed.pinned(), &public, &options)
                            .await?;
                    Ok(((), format!("{pinned} signed")))
                },
            )
            .await?;
    }
    Ok(())
}

/// For an image promoted into `env` (already copied to `reference`, `REPO@sha256:…`): with
/// `signing_key`, sign it there, as ship signs what it pushes; with `binauthz` too, attest it
/// for Binary Authorization. Stages "sign" and "attest"; nothing happens without a key.
pub async fn sign_promoted(
    config: &Config,
    env: &crate::config::KubernetesEnv,
    reference: &str,
    reporter: &Reporter,
) -> anyhow::Result<()> {
    let Some(key) = &env.signing_key else {
        return Ok(());
    };
    let key = crate::sign::KeyRef::parse(key, &config.root)?;
    let signer = crate::sign::Signer::open(&key)?;
    let options = crate::registry::PushOptions {
        insecure: env.insecure_registry,
        auth: env.registry_auth,
        ..Default::default()
    };
    let stage = reporter.stage("sign", format!("{reference} (this environment's key)"));
    match crate::supply::sign_in_place(reference, &signer, &options).await {
        Ok(tag) => stage.done(tag),
        Err(e) => {
            stage.failed(e.to_string().lines().next().unwrap_or_default());
            return Err(anyhow::Error::new(e).context(format!(
                "cannot sign {reference} in the target repository; nothing was applied"
            )));
        }
    };
    let Some(binauthz) = &env.binauthz else {
        return Ok(());
    };
    let stage = reporter.stage("attest", binauthz.attestor.clone());
    let attested = async {
        let attestor = binauthz.check(Some(&key))?;
        let (repository, digest) = reference
            .split_once('@')
            .ok_or_else(|| anyhow::anyhow!("{reference} is not pinned by digest"))?;
        let attested = crate::binauthz::attest(
            &crate::binauthz::ContainerAnalysis::from_env(),
            &attestor,
            &signer,
            repository,
            digest,
        )
        .await?;
        anyhow::Ok(format!("{attested} ({})", attestor.name))
    }
    .await;
    match attested {
        Ok(detail) => {
            stage.done(detail);
            Ok(())
        }
        Err(e) => {
            stage.failed(e.to_string().lines().next().unwrap_or_default());
            Err(e.context(format!(
                "cannot attest {reference} for Binary Authorization; nothing was applied"
            )))
        }
    }
}

/// `require_signature` for an image that is delivered without being built here (`ferry deploy
/// --image`, `ferry promote`): a "check signature" stage, `Ok` when the environment requires
/// nothing or the signature of `reference` verifies with its key. `refusing` opens the error
/// when it does not ("refusing to deploy …; nothing was applied").
pub async fn check_required_signature(
    config: &Config,
    env: &crate::config::KubernetesEnv,
    reference: &str,
    reporter: &Reporter,
    refusing: &str,
) -> anyhow::Result<()> {
    let Some(public) = &env.require_signature else {
        return Ok(());
    };
    let public = config.root.join(public);
    let stage = reporter.stage("check signature", public.display().to_string());
    let options = crate::registry::PushOptions {
        insecure: env.insecure_registry,
        auth: env.registry_auth,
        ..Default::default()
    };
    match crate::supply::require_signature(reference, &public, &options).await {
        Ok(pinned) => {
            stage.done(format!("{pinned} signed"));
            Ok(())
        }
        Err(e) => {
            stage.failed(e.to_string().lines().next().unwrap_or_default());
            Err(anyhow::Error::new(e).context(refusing.to_string()))
        }
    }
}

/// The build command the provenance records: one `--target` per platform built.
fn build_command(config: &Config, image: &crate::image::Image) -> Vec<String> {
    let mut command: Vec<String> = [
        "cargo",
        "build",
        "--release",
        "--locked",
        "-p",
        &config.service.package,
        "--bin",
        &config.service.binary,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let targets: Vec<&str> = match image.platforms.is_empty() {
        true => vec![crate::compile::TARGET],
        false => image
            .platforms
            .iter()
            .filter_map(|(p, _)| crate::compile::Platform::parse(p).ok())
            .map(|p| p.rust_target())
            .collect(),
    };
    for target in targets {
        command.extend(["--target".to_string(), target.to_string()]);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GkeCluster;

    /// The keys each tagged variant serializes to are the ones the schema requires and allows.
    #[test]
    fn every_rollout_shape_is_the_one_the_schema_documents() {
        use crate::deploy::rollout::Evidence;
        use crate::deploy::{Rollout, RolloutFailure, rollback::Restored};

        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/ship-output.schema.json")).unwrap();
        let keys_of = |defs: &str, tag: &str, value: &str| -> Vec<String> {
            let variant = schema["$defs"][defs]["oneOf"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["properties"][tag]["const"] == value)
                .unwrap_or_else(|| panic!("the schema has no {defs} with {tag} = {value}"));
            let mut required: Vec<String> = variant["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();
            let mut allowed: Vec<String> = variant["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            required.sort();
            allowed.sort();
            assert_eq!(
                required, allowed,
                "{defs} {value}: every property is required"
            );
            required
        };
        let assert_shape = |defs: &str, tag: &str, value: serde_json::Value| {
            let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            let name = value[tag].as_str().unwrap().to_string();
            assert_eq!(keys, keys_of(defs, tag, &name), "{defs} {name}");
        };

        let evidence = Evidence::default;
        let failures = [
            RolloutFailure::ImagePull {
                pod: "p".into(),
                container: "c".into(),
                image: "i".into(),
                kubelet_reason: "ErrImagePull".into(),
                message: "m".into(),
                evidence: evidence(),
            },
            RolloutFailure::CrashLoop {
                pod: "p".into(),
                container: "c".into(),
                restarts: 3,
                exit_code: Some(1),
                terminated_reason: Some("Error".into()),
                terminated_message: Some("m".into()),
                evidence: evidence(),
            },
            RolloutFailure::ContainerConfig {
                pod: "p".into(),
                container: "c".into(),
                kubelet_reason: "CreateContainerConfigError".into(),
                message: "m".into(),
                evidence: evidence(),
            },
            RolloutFailure::NeverReady {
                pod: "p".into(),
                container: "c".into(),
                failures: 5,
                grace_s: Some(4),
                probes: Some("readiness: 2 × 2s".into()),
                evidence: evidence(),
            },
            RolloutFailure::Unschedulable {
                pod: "p".into(),
                message: "m".into(),
                evidence: evidence(),
            },
            RolloutFailure::DeadlineExceeded {
                deployment: "d".into(),
            },
            RolloutFailure::Timeout {
                deployment: "d".into(),
                waited_s: 1,
                last: "l".into(),
            },
        ];
        for failure in &failures {
            assert_shape("failure", "reason", serde_json::to_value(failure).unwrap());
        }
        let rollouts = [
            Rollout::Succeeded {
                deployments: vec!["hello".into()],
            },
            Rollout::RolledBack {
                deployment: "hello".into(),
                failure: failures[0].clone(),
                restored: Restored {
                    revision: 2,
                    image: "i".into(),
                    commit: Some("c".into()),
                },
            },
            Rollout::Failed {
                deployment: "hello".into(),
                failure: failures[1].clone(),
                why_not_rolled_back: "--no-rollback was given".into(),
            },
        ];
        for rollout in &rollouts {
            assert_shape("rollout", "outcome", serde_json::to_value(rollout).unwrap());
        }
    }

    fn staging() -> GkeCluster {
        GkeCluster {
            project: "ferry-staging".into(),
            location: "europe-west1".into(),
            cluster: "ferry-staging".into(),
        }
    }

    fn kubeconfig(contexts: &[&str]) -> kube::config::Kubeconfig {
        let mut yaml = String::from("apiVersion: v1\nkind: Config\ncontexts:\n");
        for c in contexts {
            yaml.push_str(&format!(
                "- name: {c}\n  context:\n    cluster: x\n    user: x\n"
            ));
        }
        kube::config::Kubeconfig::from_yaml(&yaml).unwrap()
    }

    #[test]
    fn a_kubeconfig_with_the_gke_context_is_accepted() {
        let k = kubeconfig(&["kind-dev", "gke_ferry-staging_europe-west1_ferry-staging"]);
        check_gke_context(Ok(k), "/home/me/.kube/config", &staging()).unwrap();
    }

    #[test]
    fn a_missing_gke_context_says_to_run_gcloud_get_credentials() {
        let err = check_gke_context(
            Ok(kubeconfig(&["kind-dev"])),
            "/home/me/.kube/config",
            &staging(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no context `gke_ferry-staging_europe-west1_ferry-staging`"),
            "{err}"
        );
        assert!(err.contains("/home/me/.kube/config"), "{err}");
        assert!(
            err.contains(
                "run `gcloud container clusters get-credentials ferry-staging --location europe-west1 --project ferry-staging --dns-endpoint`"
            ),
            "{err}"
        );
        assert!(err.contains("contexts there: kind-dev"), "{err}");
    }

    #[test]
    fn no_kubeconfig_at_all_also_says_to_run_gcloud() {
        let err = check_gke_context(
            Err("No such file or directory".into()),
            "~/.kube/config",
            &staging(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("~/.kube/config: No such file"), "{err}");
        assert!(
            err.contains("gcloud container clusters get-credentials ferry-staging"),
            "{err}"
        );
    }

    #[test]
    fn the_target_of_a_gke_environment_without_a_context_is_the_gcloud_context() {
        let config = Config::parse(
            "[environments.s]\nkind = \"kubernetes\"\nrepository = \"r.example/h\"\nkubeconfig = \"kube.yaml\"\ngke = { project = \"ferry-staging\", location = \"europe-west1\", cluster = \"ferry-staging\" }\n",
            std::path::Path::new("/repo/ferry.toml"),
        )
        .unwrap();
        let crate::config::Environment::Kubernetes(env) = config.environment(Some("s")).unwrap().1
        else {
            panic!("kubernetes");
        };
        let target = target(&config, &env);
        assert_eq!(
            target.context.as_deref(),
            Some("gke_ferry-staging_europe-west1_ferry-staging")
        );
        assert_eq!(target.kubeconfig, Some(PathBuf::from("/repo/kube.yaml")));
    }
}
