//! The deploy stage: connect to the cluster, apply the rendered manifest server-side, follow
//! each Deployment's rollout like `kubectl rollout status` but stop early on causes that will
//! not fix themselves, and roll back automatically.
//!
//! - [`apply`]: server-side apply in dependency order; dry runs and diffs.
//! - [`rollout`]: kubectl's decision rules and fail-fast diagnosis with events and logs.
//! - [`rollback`]: `kubectl rollout undo`, done by ferry.
//!
//! - [`history`], [`lease`] (the deploy lock) and [`applyset`] (pruning) keep their state in
//!   the cluster, next to what they describe.
//!
//! Not here: rendering the manifest or checking the public URL (the `ferry` crate does both,
//! and knows ferry.toml; this crate only knows the cluster).

pub mod actor;
pub mod apply;
pub mod applyset;
pub mod history;
pub mod lease;
pub mod rollback;
pub mod rollout;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

pub use rollout::RolloutFailure;

/// `text` as a Kubernetes object name (and a container name): lowercase ASCII letters,
/// digits and `-`, nothing else, at most 50 characters, never empty (`service`).
pub fn dns_label(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = mapped.trim_matches('-').to_string();
    name.truncate(50);
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        "service".into()
    } else {
        name
    }
}

fn is_timeout(why: &str) -> bool {
    let why = why.to_ascii_lowercase();
    why.contains("timed out") || why.contains("timeout") || why.contains("deadline has elapsed")
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Where the cluster is.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// kubeconfig file (default: `$KUBECONFIG`, `~/.kube/config`, or in-cluster config).
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context (default: the current one).
    pub context: Option<String>,
    /// How long one request may go unanswered (default [`REQUEST_TIMEOUT`]). ferry polls and
    /// never watches, so no request of its own is meant to stay open.
    pub request_timeout: Option<Duration>,
}

/// How long ferry waits for the API server to answer one request: an API server that accepts
/// connections but never answers fails the run instead of hanging it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub namespace: String,
    /// Roll back automatically when the rollout fails.
    pub rollback: bool,
    /// Overall limit per Deployment (default: its progressDeadlineSeconds).
    pub timeout: Option<Duration>,
    /// Stop at the first cause that will not fix itself; `false` waits out the deadline.
    pub fail_fast: bool,
    pub poll: Duration,
    /// Label the objects as this ApplySet's members, and after a successful rollout delete
    /// the members the manifest no longer has.
    pub applyset: Option<applyset::ApplySet>,
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
            rollback: true,
            timeout: None,
            fail_fast: true,
            poll: Duration::from_millis(500),
            applyset: None,
        }
    }
}

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Rollout {
    /// Every Deployment rolled out.
    Succeeded { deployments: Vec<String> },
    /// A Deployment failed and its previous revision is serving again.
    RolledBack {
        deployment: String,
        failure: RolloutFailure,
        restored: rollback::Restored,
    },
    /// A Deployment failed and was left as it is (first deploy, `--no-rollback`, or the
    /// rollback itself did not become available).
    Failed {
        deployment: String,
        failure: RolloutFailure,
        why_not_rolled_back: String,
    },
}

/// The summary a user reads at the end of a deploy: what failed, then whether the old version
/// is serving again.
impl std::fmt::Display for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollout::Succeeded { deployments } => {
                write!(f, "rolled out {}", deployments.join(", "))
            }
            Rollout::RolledBack {
                deployment,
                failure,
                restored,
            } => write!(
                f,
                "{failure}\nrolled back {deployment} to revision {} ({}), which is serving again",
                restored.revision, restored.image
            ),
            Rollout::Failed {
                deployment,
                failure,
                why_not_rolled_back,
            } => write!(
                f,
                "{failure}\n{deployment} was not rolled back: {why_not_rolled_back}"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "no Kubernetes credentials found: {why}\n  hint: for GKE run `ferry credentials --env ENV` or `gcloud container clusters get-credentials CLUSTER --location LOCATION --project PROJECT --dns-endpoint`; or set KUBECONFIG, or `kubeconfig`/`context` in ferry.toml"
    )]
    NoKubeconfig { why: String },
    #[error(
        "cannot reach the cluster at {server}: {why}\n  hint: check the network, the VPN, or that the cluster exists (`kubectl cluster-info`)"
    )]
    Unreachable { server: String, why: String },
    #[error(
        "the cluster at {server} accepted the connection but sent no answer within {}\n  hint: check that this address is the Kubernetes API server (`kubectl cluster-info`) and not another service, and that it is not overloaded",
        humantime(*.timeout)
    )]
    NoAnswer { server: String, timeout: Duration },
    #[error(
        "the cluster at {server} did not accept the credentials (401 {message})\n  hint: they may have expired: for GKE run `ferry credentials --env ENV` or `gcloud container clusters get-credentials CLUSTER --location LOCATION --project PROJECT --dns-endpoint` (with gke-gcloud-auth-plugin on PATH); otherwise check the kubeconfig's user"
    )]
    Unauthenticated { server: String, message: String },
    #[error(
        "cannot get credentials for the cluster: {why}\n  hint: the kubeconfig's user runs a credential plugin (for GKE: gke-gcloud-auth-plugin, from `gcloud components install gke-gcloud-auth-plugin` or the google-cloud-cli-gke-gcloud-auth-plugin package); check it is on PATH and logged in"
    )]
    Credentials { why: String },
    #[error(
        "forbidden: {message}\n  hint: the identity in use lacks RBAC rights; CI's service account needs roles/container.developer (terraform/modules/ci-access)"
    )]
    Forbidden { message: String },
    #[error("{kind}/{name} is invalid: {message}{}", fields_hint(.fields))]
    Invalid {
        kind: String,
        name: String,
        message: String,
        fields: Vec<String>,
    },
    #[error(
        "namespace {namespace:?} does not exist\n  hint: create it (`kubectl create namespace {namespace}`) or add a Namespace object to the manifest"
    )]
    MissingNamespace { namespace: String },
    #[error("the Kubernetes API answered {code} {reason}: {message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("Kubernetes client error: {0}")]
    Client(String),
    #[error("{0}")]
    ApplySet(Box<applyset::ApplySetError>),
}

impl From<applyset::ApplySetError> for DeployError {
    fn from(e: applyset::ApplySetError) -> Self {
        match e {
            applyset::ApplySetError::Cluster(e) => e,
            other => DeployError::ApplySet(Box::new(other)),
        }
    }
}

fn fields_hint(fields: &[String]) -> String {
    if fields.is_empty() {
        String::new()
    } else {
        format!("\n  fields: {}", fields.join(", "))
    }
}

impl DeployError {
    /// Maps a client error to what it means for the user; `kind`/`name` name the object.
    pub fn from_kube(error: kube::Error, kind: &str, name: &str, server: &str) -> Self {
        match error {
            kube::Error::Api(status) => match status.code {
                401 => DeployError::Unauthenticated {
                    server: server.to_string(),
                    message: status.message,
                },
                403 => DeployError::Forbidden {
                    message: status.message,
                },
                422 => DeployError::Invalid {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    message: status.message,
                    fields: status
                        .details
                        .map(|d| {
                            d.causes
                                .into_iter()
                                .map(|c| format!("{} ({})", c.field, c.message))
                                .collect()
                        })
                        .unwrap_or_default(),
                },
                404 if status.message.contains("namespaces \"") => DeployError::MissingNamespace {
                    namespace: status
                        .message
                        .split('"')
                        .nth(1)
                        .unwrap_or_default()
                        .to_string(),
                },
                code => DeployError::Api {
                    code,
                    reason: status.reason,
                    message: status.message,
                },
            },
            kube::Error::HyperError(e) => DeployError::Unreachable {
                server: server.to_string(),
                why: e.to_string(),
            },
            kube::Error::Service(e) => match credentials_failure(&*e) {
                Some(why) => DeployError::Credentials { why },
                None => DeployError::Unreachable {
                    server: server.to_string(),
                    why: root_cause(&*e),
                },
            },
            kube::Error::Auth(e) => DeployError::Credentials {
                why: credentials_failure(&e).unwrap_or_else(|| e.to_string()),
            },
            other => DeployError::Client(other.to_string()),
        }
    }
}

/// The credential failure in `e`'s chain, if any, said without the plugin's command line,
/// its environment or its stdout (the client's own message has all three, and they can hold
/// tokens): only its exit status and what it wrote on stderr.
fn credentials_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use kube::client::AuthError;
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(auth) = c.downcast_ref::<AuthError>() {
            return Some(match auth {
                AuthError::AuthExecRun { out, .. } => {
                    let said = String::from_utf8_lossy(&out.stderr);
                    let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
                    if said.is_empty() {
                        format!(
                            "the credential plugin failed ({}) and said nothing",
                            out.status
                        )
                    } else {
                        format!("the credential plugin failed ({}): {said}", out.status)
                    }
                }
                AuthError::AuthExecParse(_) => {
                    "the credential plugin's output is not an ExecCredential".to_string()
                }
                AuthError::AuthExecStart(io) => format!("cannot run the credential plugin: {io}"),
                other => other.to_string(),
            });
        }
        cause = c.source();
    }
    None
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A connected client and the server it talks to (for messages).
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub server: String,
}

/// Connects with the kubeconfig (named file or context; exec plugins such as
/// `gke-gcloud-auth-plugin` included) or, inside a pod, the in-cluster config.
pub async fn connect(target: &Target) -> Result<Cluster, DeployError> {
    // ring is the one rustls provider compiled in; installing it is idempotent.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &target.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|e| DeployError::NoKubeconfig {
                    why: format!("{}: {e}", path.display()),
                })?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| DeployError::NoKubeconfig { why: e.to_string() })?
        }
        None if target.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| DeployError::NoKubeconfig { why: e.to_string() })?,
        None => Config::infer()
            .await
            .map_err(|e| DeployError::NoKubeconfig { why: e.to_string() })?,
    };
    let mut config = config;
    let timeout = target.request_timeout.unwrap_or(REQUEST_TIMEOUT);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    let server = config.cluster_url.to_string();
    let client =
        Client::try_from(config).map_err(|e| DeployError::from_kube(e, "cluster", "", &server))?;
    // One cheap call, so "unreachable" is said here and not in the middle of an apply.
    client.apiserver_version().await.map_err(|e| {
        match DeployError::from_kube(e, "cluster", "version", &server) {
            DeployError::Unreachable { server, why } if is_timeout(&why) => {
                DeployError::NoAnswer { server, timeout }
            }
            other => other,
        }
    })?;
    Ok(Cluster { client, server })
}

/// Applies the objects and follows every Deployment; rolls back a failed one if asked.
pub async fn deploy(
    cluster: &Cluster,
    objects: &[serde_json::Value],
    options: &DeployOptions,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Rollout, DeployError> {
    let mut objects = objects.to_vec();
    // The parent lists the old kinds and the new before any member changes, so a run that
    // dies half-way still knows every kind to look in.
    let before = match &options.applyset {
        Some(set) => {
            let before = applyset::recorded_kinds(cluster, set).await?;
            set.label(&mut objects);
            let widened = &before | &applyset::kinds_of(&objects);
            applyset::write_parent(cluster, set, &widened).await?;
            Some(before)
        }
        None => None,
    };
    let rollout = follow(cluster, &objects, options, progress).await?;
    if let (Some(set), Some(before), Rollout::Succeeded { .. }) =
        (&options.applyset, &before, &rollout)
    {
        let now = applyset::kinds_of(&objects);
        let orphans = applyset::orphans(cluster, set, &(before | &now), &objects).await?;
        for member in applyset::prune(cluster, set, &orphans).await? {
            progress(&format!(
                "deleted {member}: no longer in the manifest (ApplySet {})",
                set.parent
            ));
        }
        applyset::write_parent(cluster, set, &now).await?;
    }
    Ok(rollout)
}

/// What pruning after a successful deploy of `objects` would delete.
pub async fn would_prune(
    cluster: &Cluster,
    set: &applyset::ApplySet,
    objects: &[serde_json::Value],
) -> Result<Vec<applyset::Member>, DeployError> {
    let before = applyset::recorded_kinds(cluster, set).await?;
    let kinds = &before | &applyset::kinds_of(objects);
    Ok(applyset::orphans(cluster, set, &kinds, objects)
        .await?
        .into_iter()
        .map(|(m, _)| m)
        .collect())
}

async fn follow(
    cluster: &Cluster,
    objects: &[serde_json::Value],
    options: &DeployOptions,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Rollout, DeployError> {
    let applied = apply_checked(cluster, objects, &options.namespace, false).await?;
    for a in &applied {
        progress(&format!(
            "{}/{} applied (server-side, field manager ferry)",
            a.kind.to_lowercase(),
            a.name
        ));
    }
    let mut done = Vec::new();
    for a in applied.iter().filter(|a| a.kind == "Deployment") {
        let namespace = a
            .namespace
            .clone()
            .unwrap_or_else(|| options.namespace.clone());
        let wait = rollout::WaitOptions {
            timeout: options.timeout,
            fail_fast: options.fail_fast,
            poll: options.poll,
        };
        let outcome = rollout::wait(&cluster.client, &namespace, &a.name, &wait, progress)
            .await
            .map_err(|e| DeployError::from_kube(e, "Deployment", &a.name, &cluster.server))?;
        let failure = match outcome {
            Ok(message) => {
                progress(&message);
                done.push(a.name.clone());
                continue;
            }
            Err(failure) => failure,
        };
        progress(&format!("rollout failed: {}", failure.headline()));
        if !options.rollback {
            return Ok(Rollout::Failed {
                deployment: a.name.clone(),
                failure,
                why_not_rolled_back: "--no-rollback was given".into(),
            });
        }
        let restored = rollback::rollback(&cluster.client, &namespace, &a.name)
            .await
            .map_err(|e| DeployError::from_kube(e, "Deployment", &a.name, &cluster.server))?;
        let Some(restored) = restored else {
            return Ok(Rollout::Failed {
                deployment: a.name.clone(),
                failure,
                why_not_rolled_back:
                    "this was the first revision; there is nothing to roll back to".into(),
            });
        };
        progress(&format!(
            "rolling back to revision {} ({})",
            restored.revision, restored.image
        ));
        let back = rollout::wait(
            &cluster.client,
            &namespace,
            &a.name,
            &rollout::WaitOptions {
                fail_fast: false,
                ..wait
            },
            progress,
        )
        .await
        .map_err(|e| DeployError::from_kube(e, "Deployment", &a.name, &cluster.server))?;
        return Ok(match back {
            Ok(_) => Rollout::RolledBack {
                deployment: a.name.clone(),
                failure,
                restored,
            },
            Err(again) => Rollout::Failed {
                deployment: a.name.clone(),
                failure,
                why_not_rolled_back: format!(
                    "the rollback to revision {} did not become available: {}",
                    restored.revision,
                    again.headline()
                ),
            },
        });
    }
    Ok(Rollout::Succeeded { deployments: done })
}

/// Server-side dry run of every object; returns a diff per changed object.
pub async fn dry_run(
    cluster: &Cluster,
    objects: &[serde_json::Value],
    namespace: &str,
) -> Result<Vec<String>, DeployError> {
    let applied = apply_checked(cluster, objects, namespace, true).await?;
    Ok(applied
        .iter()
        .map(apply::diff)
        .filter(|d| !d.is_empty())
        .collect())
}

async fn apply_checked(
    cluster: &Cluster,
    objects: &[serde_json::Value],
    namespace: &str,
    dry_run: bool,
) -> Result<Vec<apply::Applied>, DeployError> {
    let mut applied = Vec::new();
    for object in apply::order(objects) {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let one = apply::apply_all(
            &cluster.client,
            std::slice::from_ref(object),
            namespace,
            dry_run,
        )
        .await
        .map_err(|e| DeployError::from_kube(e, kind, name, &cluster.server))?;
        applied.extend(one);
    }
    Ok(applied)
}

/// What is deployed: one line per Deployment in the namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeploymentStatus {
    pub name: String,
    pub image: String,
    pub commit: Option<String>,
    pub revision: Option<String>,
    pub ready: i32,
    pub desired: i32,
    pub rollout: String,
}

pub async fn status(
    cluster: &Cluster,
    namespace: &str,
) -> Result<Vec<DeploymentStatus>, DeployError> {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let list = api
        .list(&Default::default())
        .await
        .map_err(|e| DeployError::from_kube(e, "Deployment", "*", &cluster.server))?;
    Ok(list
        .items
        .into_iter()
        .map(|d| {
            let annotations = d.metadata.annotations.clone().unwrap_or_default();
            let spec = d.spec.clone().unwrap_or_default();
            DeploymentStatus {
                name: d.metadata.name.clone().unwrap_or_default(),
                image: spec
                    .template
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default(),
                commit: annotations.get("ferry.dev/commit").cloned(),
                revision: annotations.get(rollout::REVISION).cloned(),
                ready: d
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0),
                desired: spec.replicas.unwrap_or(1),
                rollout: match rollout::status(&d) {
                    rollout::Status::Done(_) => "complete".into(),
                    rollout::Status::Waiting(m) => m,
                    rollout::Status::DeadlineExceeded(m) => m,
                },
            }
        })
        .collect())
}

/// Used by commands to show a kubeconfig path in messages.
pub fn describe_target(target: &Target) -> String {
    match (&target.kubeconfig, &target.context) {
        (Some(p), Some(c)) => format!("{} (context {c})", p.display()),
        (Some(p), None) => p.display().to_string(),
        (None, Some(c)) => format!("context {c}"),
        (None, None) => "the current kubeconfig context".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollout::Evidence;

    const BAD: &str = "europe-west1-docker.pkg.dev/ferry-staging/ferry/hello@sha256:0b1d2f3e4c5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const GOOD: &str = "europe-west1-docker.pkg.dev/ferry-staging/ferry/hello@sha256:9f2c4e0d5b7a61c3e8f4a2b6d0c9e7f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3";

    fn pull_failure() -> RolloutFailure {
        RolloutFailure::ImagePull {
            pod: "hello-6f8b9c7d5-k2x9p".into(),
            container: "hello".into(),
            image: BAD.into(),
            kubelet_reason: "ImagePullBackOff".into(),
            message: format!("Back-off pulling image \"{BAD}\""),
            evidence: Evidence {
                events: vec![
                    format!(
                        "Warning Failed: Failed to pull image \"{BAD}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{BAD}\": not found (x2)"
                    ),
                    format!("Normal BackOff: Back-off pulling image \"{BAD}\" (x2)"),
                ],
                logs: vec![],
            },
        }
    }

    #[test]
    fn rolled_back_summary() {
        let rollout = Rollout::RolledBack {
            deployment: "hello".into(),
            failure: pull_failure(),
            restored: rollback::Restored {
                revision: 4,
                image: GOOD.into(),
                commit: None,
            },
        };
        insta::assert_snapshot!("rolled_back_summary", rollout.to_string());
    }

    #[test]
    fn not_rolled_back_summary() {
        let rollout = Rollout::Failed {
            deployment: "hello".into(),
            failure: pull_failure(),
            why_not_rolled_back: "--no-rollback was given".into(),
        };
        insta::assert_snapshot!("not_rolled_back_summary", rollout.to_string());
    }
}
