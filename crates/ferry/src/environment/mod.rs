//! Where a service is delivered. Each kind of environment is one type behind one trait,
//! chosen once from `ferry.toml`; commands pick the stages, and the stages never ask which
//! kind they run in.
//!
//! | kind         | type                        | deliver                                 |
//! |--------------|-----------------------------|-----------------------------------------|
//! | `local`      | [`local::LocalEnvironment`] | run the image here, verify              |
//! | `kubernetes` | [`kubernetes::Kubernetes`]  | push, render, apply, follow, verify     |

pub mod kubernetes;
pub mod local;

use async_trait::async_trait;

use crate::config::{self, Config};
use crate::deploy::lease;
use crate::output::Reporter;
use crate::pipeline::{Built, Halted, Recorder, Request};

/// What takes the deploy lock, and how long it waits for another holder.
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// `ship`, `deploy`, `rollback` or `promote`.
    pub operation: &'static str,
    pub commit: Option<String>,
    /// Zero: fail at once when another run holds it.
    pub wait: std::time::Duration,
}

/// The image an environment runs, pinned by digest: what `ferry promote` takes from its source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunningImage {
    pub environment: String,
    pub deployment: String,
    /// `REPO@sha256:…`.
    pub image: String,
    pub commit: Option<String>,
}

impl RunningImage {
    pub fn digest(&self) -> &str {
        self.image.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// What `ferry promote` was asked for, on the target side.
#[derive(Debug, Clone, Default)]
pub struct PromoteRequest {
    pub lock_wait: std::time::Duration,
    pub no_rollback: bool,
    /// Confirms a promote to an environment with `approval = true`.
    pub approve: bool,
}

/// What a manifest is rendered with in an environment (`ferry render`, `ferry deploy`).
#[derive(Debug, Clone)]
pub struct ManifestInputs {
    pub namespace: String,
    /// Relative to the project root.
    pub manifest: std::path::PathBuf,
    /// The environment's `${VAR}` values.
    pub vars: std::collections::BTreeMap<String, String>,
}

impl Default for ManifestInputs {
    /// An environment with no cluster of its own renders `k8s.yml` for `default`.
    fn default() -> Self {
        ManifestInputs {
            namespace: "default".into(),
            manifest: "k8s.yml".into(),
            vars: Default::default(),
        }
    }
}

/// The cluster `ferry deploy --image` applies to, and how strictly.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub target: crate::deploy::Target,
    pub namespace: String,
    /// A GKE cluster whose kubeconfig context ferry checks before connecting.
    pub gke: Option<config::GkeCluster>,
    pub fail_fast: bool,
    /// Refuse an image not pinned by digest.
    pub require_digest: bool,
}

impl Default for ClusterSettings {
    /// kubeconfig's current context, namespace `default`, failing fast.
    fn default() -> Self {
        ClusterSettings {
            target: Default::default(),
            namespace: "default".into(),
            gke: None,
            fail_fast: true,
            require_digest: false,
        }
    }
}

/// Where `ferry push` sends an image.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub repository: String,
    /// Plain HTTP.
    pub insecure: bool,
    pub auth: crate::registry::RegistryAuth,
}

/// What `ferry rollback` was asked for.
#[derive(Debug, Clone, Default)]
pub struct RollbackRequest {
    /// A revision number or a commit; none: the previous healthy revision.
    pub to: Option<String>,
    /// The Deployment (default: the one in the history, else the only one).
    pub deployment: Option<String>,
    pub lock_wait: std::time::Duration,
}

/// What an environment does, whatever its kind.
#[async_trait]
pub trait Environment: Send + Sync {
    /// Its name in ferry.toml.
    fn name(&self) -> &str;
    /// `local` or `kubernetes` (the summary's `kind`).
    fn kind(&self) -> &'static str;
    /// Checks that need nothing built (an approval gate, a manifest that must render).
    /// Records a stage only when one fails.
    async fn preflight(&self, request: &Request, recorder: &mut Recorder<'_>)
    -> Result<(), Halted>;
    /// Delivers the built image and proves it serves.
    async fn deliver(
        &self,
        built: &Built,
        request: &Request,
        recorder: &mut Recorder<'_>,
    ) -> Result<(), Halted>;
    /// What delivering `built` would change; nothing is pushed, applied or started.
    async fn plan(
        &self,
        built: &Built,
        request: &Request,
        recorder: &mut Recorder<'_>,
    ) -> Result<(), Halted>;
    /// Prints what runs there now.
    async fn status(&self, reporter: &Reporter) -> anyhow::Result<()>;
    /// Stops what ferry runs there.
    async fn stop(&self, reporter: &Reporter) -> anyhow::Result<()>;
    /// The namespaced Role (and RoleBinding for `user`) a deploy identity needs here, or with
    /// [`crate::rbac::Access::PromoteSource`] what promoting from here reads, as YAML.
    async fn rbac(&self, user: &str, access: crate::rbac::Access) -> anyhow::Result<String>;
    /// Takes the environment's deploy lock for the rest of the run (recorded as the `lock`
    /// stage); `None` where there is none to take (local runs have the checkout lock).
    async fn hold_lock(
        &self,
        _request: &LockRequest,
        _recorder: &mut Recorder<'_>,
    ) -> Result<Option<lease::Held>, Halted> {
        Ok(None)
    }
    /// `ferry lock`: freezes deploys until [`Environment::unlock`].
    async fn lock(&self, message: &str, reporter: &Reporter) -> anyhow::Result<()>;
    /// `ferry unlock`: lifts a manual lock (`force`: any lock).
    async fn unlock(&self, force: bool, reporter: &Reporter) -> anyhow::Result<()>;
    /// `ferry history`: the last deploys, as recorded there.
    async fn history(&self, reporter: &Reporter) -> anyhow::Result<()>;
    /// `ferry promote`, source side: the image that runs there now or, with `commit`, the kept
    /// revision built from that commit.
    async fn running_image(&self, commit: Option<&str>) -> anyhow::Result<RunningImage>;
    /// `ferry promote`, target side: copies `source`'s image into this environment's
    /// repository (same digest, nothing rebuilt) and deploys it like `ferry deploy`.
    async fn promote(
        &self,
        source: &RunningImage,
        request: &PromoteRequest,
        reporter: &Reporter,
    ) -> anyhow::Result<()>;
    /// `ferry rollback`: back to an earlier revision, followed like a deploy.
    async fn rollback(&self, request: &RollbackRequest, reporter: &Reporter) -> anyhow::Result<()>;
    /// The secrets the service is given here, as declared (`NAME = "env:VAR"`, `gcpsm://…`).
    fn declared_secrets(&self) -> &std::collections::BTreeMap<String, String>;
    /// What the manifest is rendered with here.
    fn manifest_inputs(&self) -> ManifestInputs {
        ManifestInputs::default()
    }
    /// The cluster `ferry deploy --image` applies to; `None`: the environment has none of its
    /// own, and the command's flags or kubeconfig decide.
    fn cluster(&self) -> Option<ClusterSettings> {
        None
    }
    /// The registry `ferry push` sends to; `None`: the environment has none.
    fn registry(&self) -> Option<RegistrySettings> {
        None
    }
    /// Refuses `reference` when the environment runs only images signed with its key
    /// (`require_signature`); checked before anything is rendered or applied.
    async fn check_signature(&self, _reference: &str, _reporter: &Reporter) -> anyhow::Result<()> {
        Ok(())
    }
    /// What to say after a successful delivery about stopping it.
    fn stop_hint(&self) -> Option<&'static str> {
        None
    }
    /// How the binary is compiled for this environment.
    fn profile(&self) -> crate::compile::Profile {
        crate::compile::Profile::Release
    }
}

/// The environment `settings` (named `name`) as the type that delivers to it: the one place
/// that asks which kind it is. `runtime` replaces a local environment's `runtime` (the
/// `--runtime` flag); other kinds have none.
pub fn open(
    config: &Config,
    name: &str,
    settings: config::Environment,
    runtime: Option<config::LocalRuntime>,
) -> Box<dyn Environment> {
    match settings {
        config::Environment::Local(mut settings) => {
            if let Some(runtime) = runtime {
                settings.runtime = runtime;
            }
            Box::new(local::LocalEnvironment {
                config: config.clone(),
                name: name.to_string(),
                settings,
                secrets: Default::default(),
            })
        }
        config::Environment::Kubernetes(settings) => Box::new(kubernetes::Kubernetes {
            config: config.clone(),
            name: name.to_string(),
            settings: *settings,
            secrets: Default::default(),
        }),
    }
}

/// Resolves an environment's secrets as a `secrets` stage (recorded only when there are any):
/// keys and sources are shown, values never.
pub async fn resolve_secrets(
    declared: &std::collections::BTreeMap<String, String>,
    recorder: &mut Recorder<'_>,
) -> Result<crate::secrets::Resolved, Halted> {
    if declared.is_empty() {
        return Ok(Default::default());
    }
    let what = declared
        .iter()
        .map(|(k, v)| format!("{k} ← {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    recorder
        .stage("secrets", &what, async |_s| {
            let resolved = crate::secrets::resolve_declared(declared).await?;
            let detail = format!(
                "{} resolved",
                resolved.keys().collect::<Vec<_>>().join(", ")
            );
            Ok((resolved, detail))
        })
        .await
}

/// The name of the Secret ferry writes an environment's secrets to (`${SECRETS}` in the
/// manifest): the image name, made a Kubernetes name, and `-secrets`.
pub fn secret_name(config: &Config) -> String {
    format!("{}-secrets", crate::config::dns_label(&config.image.name))
}
