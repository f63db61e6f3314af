//! Following a Deployment's rollout: kubectl's decision rules, plus fail-fast diagnosis of
//! the new ReplicaSet's pods.
//!
//! [`status`] is `kubectl rollout status`'s logic for Deployments, rule for rule: nothing is
//! judged until the controller has observed the current generation (which is what
//! `kube::runtime::conditions::is_deployment_completed` gets wrong right after an apply).
//! [`diagnose`] looks at pods for causes that will not fix themselves, so ferry can stop
//! waiting long before the progress deadline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};

/// Annotation the deployment controller puts on a Deployment and its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// What `kubectl rollout status` would say now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Still going; the message is kubectl's progress line.
    Waiting(String),
    /// `deployment "x" successfully rolled out`.
    Done(String),
    /// `deployment "x" exceeded its progress deadline`.
    DeadlineExceeded(String),
}

/// kubectl's DeploymentStatusViewer, for one observation of the Deployment.
pub fn status(deployment: &Deployment) -> Status {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let Some(st) = deployment.status.as_ref().filter(|_| observed(deployment)) else {
        return Status::Waiting("Waiting for deployment spec update to be observed...".into());
    };
    let progressing = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    if progressing.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
        return Status::DeadlineExceeded(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let replicas = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    if let Some(desired) = deployment.spec.as_ref().and_then(|s| s.replicas)
        && updated < desired
    {
        return Status::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {desired} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return Status::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return Status::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    Status::Done(format!("deployment {name:?} successfully rolled out"))
}

/// Whether the deployment controller has seen the current spec
/// (`status.observedGeneration >= metadata.generation`). Until then its status, its revision
/// annotation and so its "new" ReplicaSet may all still describe the previous spec.
pub fn observed(deployment: &Deployment) -> bool {
    let generation = deployment.metadata.generation.unwrap_or(0);
    deployment
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation.unwrap_or(0) >= generation)
}

/// Why a rollout was stopped early, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RolloutFailure {
    /// The image cannot be pulled (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`,
    /// `ErrImageNeverPull`).
    ImagePull {
        pod: String,
        container: String,
        image: String,
        /// The container's waiting reason, as the kubelet reported it.
        kubelet_reason: String,
        message: String,
        evidence: Evidence,
    },
    /// The container keeps exiting (`CrashLoopBackOff`).
    CrashLoop {
        pod: String,
        container: String,
        restarts: i32,
        exit_code: Option<i32>,
        /// `lastState.terminated.reason` (`Error`, `OOMKilled`, …).
        terminated_reason: Option<String>,
        /// `lastState.terminated.message`: the termination log, or with
        /// `terminationMessagePolicy: FallbackToLogsOnError` the log's tail.
        terminated_message: Option<String>,
        evidence: Evidence,
    },
    /// The container cannot be created (`CreateContainerConfigError`, `CreateContainerError`).
    ContainerConfig {
        pod: String,
        container: String,
        /// The container's waiting reason, as the kubelet reported it.
        kubelet_reason: String,
        message: String,
        evidence: Evidence,
    },
    /// Running, but the readiness probe keeps failing.
    NeverReady {
        pod: String,
        container: String,
        failures: i32,
        /// The grace its probes allow, in seconds, when the pod has a readiness probe.
        grace_s: Option<i64>,
        /// How that grace was computed, e.g. `readiness: 2 × 2s`.
        probes: Option<String>,
        evidence: Evidence,
    },
    /// No node can take the pod.
    Unschedulable {
        pod: String,
        message: String,
        evidence: Evidence,
    },
    /// The controller reported `ProgressDeadlineExceeded`.
    DeadlineExceeded { deployment: String },
    /// ferry's own timeout passed first.
    Timeout {
        deployment: String,
        waited_s: u64,
        last: String,
    },
}

/// Recent events and log lines of the failing pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    pub events: Vec<String>,
    pub logs: Vec<String>,
}

impl RolloutFailure {
    /// One line: what failed and where — the pod, the container (scheduling concerns the whole
    /// pod, so `Unschedulable` has none) and the reason Kubernetes gave, verbatim, so it can be
    /// searched for in `kubectl describe` and the docs.
    pub fn headline(&self) -> String {
        match self {
            Self::ImagePull {
                pod,
                container,
                image,
                kubelet_reason,
                message,
                ..
            } if kubelet_reason == "InvalidImageName" => format!(
                "container {container} of pod {pod} has an invalid image reference {image} ({kubelet_reason}): {message}"
            ),
            Self::ImagePull {
                pod,
                container,
                image,
                kubelet_reason,
                message,
                ..
            } => format!(
                "container {container} of pod {pod} cannot pull image {image} ({kubelet_reason}): {message}"
            ),
            Self::CrashLoop {
                pod,
                container,
                restarts,
                exit_code,
                terminated_reason,
                terminated_message,
                ..
            } => format!(
                "container {container} of pod {pod} is crash-looping (CrashLoopBackOff: {restarts} restarts{}{}){}",
                exit_code
                    .map(|c| format!(", last exit code {c}"))
                    .unwrap_or_default(),
                terminated_reason
                    .as_deref()
                    .map(|r| format!(", reason {r}"))
                    .unwrap_or_default(),
                terminated_message
                    .as_deref()
                    .and_then(|m| m.lines().rev().find(|l| !l.trim().is_empty()))
                    .map(|m| format!(": {}", m.trim()))
                    .unwrap_or_default()
            ),
            Self::ContainerConfig {
                pod,
                container,
                kubelet_reason,
                message,
                ..
            } => format!(
                "container {container} of pod {pod} cannot be created ({kubelet_reason}): {message}"
            ),
            Self::NeverReady {
                pod,
                container,
                failures,
                grace_s,
                probes,
                ..
            } => format!(
                "container {container} of pod {pod} runs but never becomes ready (Unhealthy: {failures} readiness probe failures{})",
                match (grace_s, probes) {
                    (Some(g), Some(p)) => format!(", past the {g}s its probes allow ({p})"),
                    _ => String::new(),
                }
            ),
            Self::Unschedulable { pod, message, .. } => {
                format!("pod {pod} cannot be scheduled (Unschedulable): {message}")
            }
            Self::DeadlineExceeded { deployment } => format!(
                "deployment {deployment:?} exceeded its progress deadline (ProgressDeadlineExceeded)"
            ),
            Self::Timeout {
                deployment,
                waited_s,
                last,
            } => format!(
                "deployment {deployment:?} did not finish within {waited_s}s (last: {last})"
            ),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::ImagePull { kubelet_reason, .. } if kubelet_reason == "InvalidImageName" => {
                "the image reference does not parse (repository names are lower case; a digest is @sha256: and 64 hex digits); check --image and ${IMAGE} in the manifest"
            }
            Self::ImagePull { .. } => {
                "check that the image exists and that the cluster's nodes may pull from the registry (Artifact Registry: roles/artifactregistry.reader for the node service account)"
            }
            Self::CrashLoop { .. } => {
                "the log lines below show why the service exits; run the same image locally with `ferry ship` to reproduce"
            }
            Self::ContainerConfig { kubelet_reason, .. }
                if kubelet_reason == "CreateContainerConfigError" =>
            {
                "a Secret or ConfigMap the pod refers to (env, envFrom, volumes) is missing or lacks the key; create it, or fix the reference in the manifest"
            }
            Self::ContainerConfig { .. } => {
                "the container runtime refused the container; see the events below"
            }
            Self::NeverReady { .. } => {
                "the readiness probe path or port may be wrong, or the service cannot reach a dependency"
            }
            Self::Unschedulable { .. } => {
                "the cluster lacks capacity for the requested resources, or a node selector/taint excludes every node"
            }
            Self::DeadlineExceeded { .. } | Self::Timeout { .. } => {
                "look at `kubectl describe deployment` and the pods' events"
            }
        }
    }

    pub fn evidence(&self) -> Option<&Evidence> {
        match self {
            Self::ImagePull { evidence, .. }
            | Self::CrashLoop { evidence, .. }
            | Self::ContainerConfig { evidence, .. }
            | Self::NeverReady { evidence, .. }
            | Self::Unschedulable { evidence, .. } => Some(evidence),
            _ => None,
        }
    }

    fn evidence_mut(&mut self) -> Option<&mut Evidence> {
        match self {
            Self::ImagePull { evidence, .. }
            | Self::CrashLoop { evidence, .. }
            | Self::ContainerConfig { evidence, .. }
            | Self::NeverReady { evidence, .. }
            | Self::Unschedulable { evidence, .. } => Some(evidence),
            _ => None,
        }
    }

    fn pod(&self) -> Option<(&str, Option<&str>, bool)> {
        match self {
            Self::ImagePull { pod, .. } | Self::Unschedulable { pod, .. } => {
                Some((pod, None, false))
            }
            Self::CrashLoop { pod, container, .. } => Some((pod, Some(container), true)),
            Self::ContainerConfig { pod, .. } => Some((pod, None, false)),
            Self::NeverReady { pod, container, .. } => Some((pod, Some(container), false)),
            _ => None,
        }
    }
}

impl std::fmt::Display for RolloutFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.headline())?;
        if let Some(evidence) = self.evidence() {
            if !evidence.events.is_empty() {
                writeln!(f, "  recent events:")?;
                for e in &evidence.events {
                    writeln!(f, "    {e}")?;
                }
            }
            if !evidence.logs.is_empty() {
                if matches!(self, Self::CrashLoop { .. }) {
                    writeln!(
                        f,
                        "  last log lines of the container that exited (previous=true):"
                    )?;
                } else {
                    writeln!(f, "  last log lines:")?;
                }
                for l in &evidence.logs {
                    writeln!(f, "    {l}")?;
                }
            }
        }
        write!(f, "  hint: {}", self.hint())
    }
}

/// How many readiness failures make a pod "never ready" when it has no readiness probe to
/// judge by (the kubelet then reports none, so this is a backstop).
pub const READINESS_FAILURES: i32 = 5;

/// A pod's readiness failures as the kubelet's `Unhealthy` events tell them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadinessSeen {
    /// How many readiness probes failed.
    pub failures: i32,
    /// When the last one failed (the event's `lastTimestamp`, seconds since the epoch, on the
    /// API server's clock: the clock the container's `startedAt` is on).
    pub last_failure: Option<i64>,
}

impl ReadinessSeen {
    pub fn count(failures: i32) -> Self {
        Self {
            failures,
            last_failure: None,
        }
    }
}

/// How long a container may run unready before its probes say it has failed: the startup
/// probe's budget (initial delay + period × failure threshold), then the readiness probe's
/// (initial delay + period × failure threshold). Kubernetes' defaults fill what the probe
/// leaves out (period 10 s, threshold 3). `None`: no readiness probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeGrace {
    pub seconds: i64,
    /// Readiness failures the kubelet needs before it calls the container unready.
    pub failures: i32,
    /// `startup: 10s + 5 × 2s, readiness: 3 × 10s`.
    pub described: String,
}

pub fn probe_grace(container: &k8s_openapi::api::core::v1::Container) -> Option<ProbeGrace> {
    let readiness = container.readiness_probe.as_ref()?;
    let budget = |p: &k8s_openapi::api::core::v1::Probe| {
        let delay = i64::from(p.initial_delay_seconds.unwrap_or(0));
        let period = i64::from(p.period_seconds.unwrap_or(10));
        let threshold = p.failure_threshold.unwrap_or(3);
        let described = if delay > 0 {
            format!("{delay}s + {threshold} × {period}s")
        } else {
            format!("{threshold} × {period}s")
        };
        (delay + period * i64::from(threshold), threshold, described)
    };
    let (ready_s, failures, ready_said) = budget(readiness);
    let (seconds, described) = match container.startup_probe.as_ref().map(budget) {
        Some((start_s, _, start_said)) => (
            start_s + ready_s,
            format!("startup: {start_said}, readiness: {ready_said}"),
        ),
        None => (ready_s, format!("readiness: {ready_said}")),
    };
    Some(ProbeGrace {
        seconds,
        failures,
        described,
    })
}

/// How long a pod may stay in `ErrImagePull` before ferry counts it; `ImagePullBackOff` counts
/// at once.
///
/// Why the two differ: a kubelet reports `ErrImagePull` for every failed pull, transient ones
/// (a registry 503, a dropped connection, an expiring token) included, and on its next sync
/// `ImagePullBackOff` while it waits before trying again (10 s, doubling up to 5 min). So
/// `ErrImagePull` is one failed attempt; `ImagePullBackOff` is the kubelet's own verdict that
/// the pull failed and that nothing will happen for a while, and it normally follows
/// `ErrImagePull` within seconds. Waiting longer than that gains little: ferry deploys a
/// digest it pushed moments before, so a failed pull is nearly always permanent (wrong
/// repository, nodes without read access), and a false alarm costs a rollback to the version
/// that is serving, not an outage. The grace is a backstop for a pod whose status still says
/// `ErrImagePull` after the back-off should have been reported; 10 s is the kubelet's first
/// back-off step, so by then a transient error would have had its retry.
pub const PULL_GRACE: Duration = Duration::from_secs(10);

/// Looks at the new ReplicaSet's pods for a cause that will not fix itself. `readiness_failures`
/// maps pod name to the count of `Unhealthy` readiness events; `pull_errors_since` remembers
/// when each pod first showed `ErrImagePull`.
///
/// Says nothing until the controller has observed the Deployment's current generation: before
/// that, `pods` may be those of the previous revision (its revision annotation still points at
/// the old ReplicaSet), and blaming them would roll back a rollout that never started.
pub fn diagnose(
    deployment: &Deployment,
    pods: &[Pod],
    readiness_failures: &BTreeMap<String, ReadinessSeen>,
    pull_errors_since: &mut BTreeMap<String, Instant>,
) -> Option<RolloutFailure> {
    if !observed(deployment) {
        return None;
    }
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(status) = &pod.status else { continue };
        for c in status.conditions.iter().flatten() {
            if c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
            {
                return Some(RolloutFailure::Unschedulable {
                    pod: name,
                    message: c.message.clone().unwrap_or_default(),
                    evidence: Evidence::default(),
                });
            }
        }
        for cs in status.container_statuses.iter().flatten() {
            let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
            let reason = waiting
                .and_then(|w| w.reason.as_deref())
                .unwrap_or_default();
            let message = waiting
                .and_then(|w| w.message.clone())
                .unwrap_or_else(|| reason.to_string());
            match reason {
                // InvalidImageName and ErrImageNeverPull cannot succeed on a retry.
                "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                    return Some(RolloutFailure::ImagePull {
                        pod: name,
                        container: cs.name.clone(),
                        image: cs.image.clone(),
                        kubelet_reason: reason.to_string(),
                        message,
                        evidence: Evidence::default(),
                    });
                }
                "ErrImagePull" => {
                    let since = *pull_errors_since
                        .entry(name.clone())
                        .or_insert_with(Instant::now);
                    if since.elapsed() >= PULL_GRACE {
                        return Some(RolloutFailure::ImagePull {
                            pod: name,
                            container: cs.name.clone(),
                            image: cs.image.clone(),
                            kubelet_reason: reason.to_string(),
                            message,
                            evidence: Evidence::default(),
                        });
                    }
                }
                "CrashLoopBackOff" => {
                    let exit_code = cs
                        .last_state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .map(|t| t.exit_code);
                    let terminated = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                    return Some(RolloutFailure::CrashLoop {
                        pod: name,
                        container: cs.name.clone(),
                        restarts: cs.restart_count,
                        exit_code,
                        terminated_reason: terminated.and_then(|t| t.reason.clone()),
                        terminated_message: terminated
                            .and_then(|t| t.message.clone())
                            .filter(|m| !m.trim().is_empty()),
                        evidence: Evidence::default(),
                    });
                }
                "CreateContainerConfigError" | "CreateContainerError" => {
                    return Some(RolloutFailure::ContainerConfig {
                        pod: name,
                        container: cs.name.clone(),
                        kubelet_reason: reason.to_string(),
                        message,
                        evidence: Evidence::default(),
                    });
                }
                _ => {}
            }
            let running = cs.state.as_ref().is_some_and(|s| s.running.is_some());
            let seen = readiness_failures.get(&name).copied().unwrap_or_default();
            let grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == cs.name))
                .and_then(probe_grace);
            let started = cs
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.as_ref())
                .map(|t| t.0.as_second());
            let past_grace = match (&grace, started, seen.last_failure) {
                // Both times on the API server's clock, so skew with this machine is no matter.
                (Some(g), Some(started), Some(last)) => {
                    seen.failures >= g.failures && last - started >= g.seconds
                }
                (Some(g), _, _) => seen.failures >= g.failures.max(READINESS_FAILURES),
                (None, _, _) => seen.failures >= READINESS_FAILURES,
            };
            if running && !cs.ready && past_grace {
                return Some(RolloutFailure::NeverReady {
                    pod: name,
                    container: cs.name.clone(),
                    failures: seen.failures,
                    grace_s: grace.as_ref().map(|g| g.seconds),
                    probes: grace.map(|g| g.described),
                    evidence: Evidence::default(),
                });
            }
        }
    }
    None
}

/// Options for [`wait`].
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Give up after this long (default: the Deployment's progress deadline).
    pub timeout: Option<Duration>,
    /// Stop at the first cause that will not fix itself.
    pub fail_fast: bool,
    pub poll: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            fail_fast: true,
            poll: Duration::from_millis(500),
        }
    }
}

/// Follows the rollout until kubectl would call it done, or it fails. `progress` gets each new
/// kubectl-style line. Errors from the API are returned as `Err(kube::Error)`.
pub async fn wait(
    client: &Client,
    namespace: &str,
    name: &str,
    options: &WaitOptions,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Result<String, RolloutFailure>, kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let mut last = String::new();
    let mut pull_errors = BTreeMap::new();
    loop {
        let deployment = deployments.get(name).await?;
        let timeout = options.timeout.unwrap_or_else(|| {
            Duration::from_secs(
                deployment
                    .spec
                    .as_ref()
                    .and_then(|s| s.progress_deadline_seconds)
                    .unwrap_or(600)
                    .try_into()
                    .unwrap_or(600),
            )
        });
        match status(&deployment) {
            Status::Done(message) => return Ok(Ok(message)),
            Status::DeadlineExceeded(_) => {
                return Ok(Err(RolloutFailure::DeadlineExceeded {
                    deployment: name.to_string(),
                }));
            }
            Status::Waiting(message) => {
                if message != last {
                    progress(&message);
                    last = message;
                }
            }
        }
        if options.fail_fast
            && let Some(mut failure) =
                check_pods(client, namespace, &deployment, &mut pull_errors).await?
        {
            collect_evidence(client, namespace, &mut failure).await;
            return Ok(Err(failure));
        }
        if started.elapsed() >= timeout {
            return Ok(Err(RolloutFailure::Timeout {
                deployment: name.to_string(),
                waited_s: timeout.as_secs(),
                last,
            }));
        }
        tokio::time::sleep(options.poll).await;
    }
}

/// The ReplicaSet holding the Deployment's current revision, if the controller made it yet.
pub async fn new_replica_set(
    client: &Client,
    namespace: &str,
    deployment: &Deployment,
) -> Result<Option<ReplicaSet>, kube::Error> {
    let revision = deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .cloned();
    let Some(revision) = revision else {
        return Ok(None);
    };
    let owned = owned_replica_sets(client, namespace, deployment).await?;
    Ok(owned.into_iter().find(|rs| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            == Some(&revision)
    }))
}

/// ReplicaSets owned by the Deployment.
pub async fn owned_replica_sets(
    client: &Client,
    namespace: &str,
    deployment: &Deployment,
) -> Result<Vec<ReplicaSet>, kube::Error> {
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let selector = selector_string(deployment);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let list = sets.list(&ListParams::default().labels(&selector)).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .collect())
}

fn selector_string(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

async fn check_pods(
    client: &Client,
    namespace: &str,
    deployment: &Deployment,
    pull_errors: &mut BTreeMap<String, Instant>,
) -> Result<Option<RolloutFailure>, kube::Error> {
    // `diagnose` would say nothing yet either; returning here spares the lists below.
    if !observed(deployment) {
        return Ok(None);
    }
    let Some(rs) = new_replica_set(client, namespace, deployment).await? else {
        return Ok(None);
    };
    let Some(hash) = rs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .cloned()
    else {
        return Ok(None);
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{},pod-template-hash={hash}", selector_string(deployment));
    let pods = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    let mut readiness = BTreeMap::new();
    if pods.iter().any(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| !c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()))
            })
    }) {
        let events: Api<Event> = Api::namespaced(client.clone(), namespace);
        for event in events.list(&ListParams::default()).await?.items {
            if event.reason.as_deref() == Some("Unhealthy")
                && event
                    .message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Readiness probe failed"))
                && let Some(pod) = event.involved_object.name.clone()
            {
                let seen: &mut ReadinessSeen = readiness.entry(pod).or_default();
                seen.failures += event.count.unwrap_or(1);
                let at = event
                    .last_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
                    .or_else(|| event.event_time.as_ref().map(|t| t.0.as_second()));
                seen.last_failure = seen.last_failure.max(at);
            }
        }
    }
    Ok(diagnose(deployment, &pods, &readiness, pull_errors))
}

/// Adds the pod's recent events and the failing container's last log lines. Best effort:
/// a failure to fetch evidence never hides the failure itself.
async fn collect_evidence(client: &Client, namespace: &str, failure: &mut RolloutFailure) {
    let Some((pod, container, previous)) = failure
        .pod()
        .map(|(p, c, prev)| (p.to_string(), c.map(str::to_string), prev))
    else {
        return;
    };
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    // Evidence the deploy identity may not read is named, so the missing permission shows.
    let mut unavailable = Vec::new();
    let listed = match events.list(&params).await {
        Ok(l) => l.items,
        Err(e) => {
            unavailable.push(format!("(events unavailable: {})", api_message(&e)));
            Vec::new()
        }
    };
    let mut found: Vec<Event> = listed
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(pod.as_str()))
        .collect();
    found.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    let lines: Vec<String> = found
        .iter()
        .rev()
        .take(8)
        .rev()
        .map(|e| {
            format!(
                "{} {}: {}{}",
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default().trim(),
                match e.count {
                    Some(n) if n > 1 => format!(" (x{n})"),
                    _ => String::new(),
                }
            )
        })
        .collect();
    let mut logs = Vec::new();
    if let Some(container) = container {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let params = LogParams {
            container: Some(container),
            tail_lines: Some(20),
            previous,
            ..LogParams::default()
        };
        match pods.logs(&pod, &params).await {
            Ok(text) => logs = text.lines().map(str::to_string).collect(),
            Err(e) => logs.push(format!("(log unavailable: {})", api_message(&e))),
        }
    }
    if let Some(evidence) = failure.evidence_mut() {
        evidence.events = unavailable.into_iter().chain(lines).collect();
        evidence.logs = logs;
    }
}

/// The API server's own message for an error (`pods "x" is forbidden: …`), else the error.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};

    fn deployment(
        generation: i64,
        observed: i64,
        desired: i32,
        replicas: i32,
        updated: i32,
        available: i32,
    ) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("hello".into());
        d.metadata.generation = Some(generation);
        d.spec = Some(DeploymentSpec {
            replicas: Some(desired),
            ..DeploymentSpec::default()
        });
        d.status = Some(DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        });
        d
    }

    #[test]
    fn kubectl_rules_in_kubectl_order() {
        let cases = [
            // Right after an apply the controller has not seen the new generation: counts
            // from the old generation say "done" but must not be believed.
            ((2, 1, 2, 2, 2, 2), Status::Waiting("Waiting for deployment spec update to be observed...".into())),
            ((2, 2, 3, 3, 1, 1), Status::Waiting("Waiting for deployment \"hello\" rollout to finish: 1 out of 3 new replicas have been updated...".into())),
            ((2, 2, 2, 3, 2, 2), Status::Waiting("Waiting for deployment \"hello\" rollout to finish: 1 old replicas are pending termination...".into())),
            ((2, 2, 2, 2, 2, 1), Status::Waiting("Waiting for deployment \"hello\" rollout to finish: 1 of 2 updated replicas are available...".into())),
            ((2, 2, 2, 2, 2, 2), Status::Done("deployment \"hello\" successfully rolled out".into())),
        ];
        for ((g, o, d, r, u, a), expected) in cases {
            assert_eq!(
                status(&deployment(g, o, d, r, u, a)),
                expected,
                "case {:?}",
                (g, o, d, r, u, a)
            );
        }
    }

    #[test]
    fn progress_deadline_exceeded_is_final() {
        let mut d = deployment(1, 1, 2, 2, 1, 0);
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            ..DeploymentCondition::default()
        }]);
        assert_eq!(
            status(&d),
            Status::DeadlineExceeded("deployment \"hello\" exceeded its progress deadline".into())
        );
    }

    fn pod_with(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn observed_deployment() -> Deployment {
        deployment(2, 2, 2, 2, 1, 1)
    }

    fn waiting_pod(name: &str, reason: &str, message: &str) -> Pod {
        pod_with(serde_json::json!({
            "metadata": {"name": name},
            "status": {"containerStatuses": [{"name": "hello", "image": "r/h:bad", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": reason, "message": message}},
                "lastState": {"terminated": {"exitCode": 3}}}]}
        }))
    }

    #[test]
    fn diagnosis_names_the_pod_container_and_cause() {
        let pull = waiting_pod(
            "hello-abc-1",
            "ImagePullBackOff",
            "Back-off pulling image \"r/h:bad\"",
        );
        let failure = diagnose(
            &observed_deployment(),
            &[pull],
            &BTreeMap::new(),
            &mut BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            failure.headline(),
            "container hello of pod hello-abc-1 cannot pull image r/h:bad (ImagePullBackOff): Back-off pulling image \"r/h:bad\""
        );

        let crash = waiting_pod("hello-abc-2", "CrashLoopBackOff", "back-off 10s");
        let failure = diagnose(
            &observed_deployment(),
            &[crash],
            &BTreeMap::new(),
            &mut BTreeMap::new(),
        )
        .unwrap();
        assert!(matches!(
            failure,
            RolloutFailure::CrashLoop {
                restarts: 4,
                exit_code: Some(3),
                ..
            }
        ));

        let pending = pod_with(serde_json::json!({
            "metadata": {"name": "hello-abc-3"},
            "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
        }));
        let failure = diagnose(
            &observed_deployment(),
            &[pending],
            &BTreeMap::new(),
            &mut BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            failure.headline(),
            "pod hello-abc-3 cannot be scheduled (Unschedulable): 0/3 nodes are available: 3 Insufficient cpu."
        );
    }

    #[test]
    fn every_headline_names_the_pod_the_container_and_the_kubelet_reason() {
        let expired = BTreeMap::from([("p".to_string(), Instant::now() - PULL_GRACE)]);
        for reason in [
            "ErrImagePull",
            "ImagePullBackOff",
            "InvalidImageName",
            "ErrImageNeverPull",
            "CrashLoopBackOff",
            "CreateContainerConfigError",
            "CreateContainerError",
        ] {
            let failure = diagnose(
                &observed_deployment(),
                &[waiting_pod("p", reason, "why")],
                &BTreeMap::new(),
                &mut expired.clone(),
            )
            .unwrap_or_else(|| panic!("{reason} is diagnosed"));
            let headline = failure.headline();
            assert!(
                headline.contains("container hello of pod p ") && headline.contains(reason),
                "{reason}: {headline}"
            );
        }
        let running = pod_with(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [{"name": "hello", "image": "r/h:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"running": {}}}]}
        }));
        let many = BTreeMap::from([("p".to_string(), ReadinessSeen::count(READINESS_FAILURES))]);
        let headline = diagnose(
            &observed_deployment(),
            &[running],
            &many,
            &mut BTreeMap::new(),
        )
        .unwrap()
        .headline();
        assert!(
            headline.contains("container hello of pod p ") && headline.contains("Unhealthy"),
            "{headline}"
        );
    }

    #[test]
    fn pods_are_not_diagnosed_before_the_controller_observes_the_new_generation() {
        // Right after an apply the revision annotation may still name the old ReplicaSet, so
        // these pods could be the previous revision's: blaming them would be wrong.
        let crash = waiting_pod("hello-old-1", "CrashLoopBackOff", "back-off 10s");
        let unobserved = deployment(3, 2, 2, 2, 2, 2);
        assert_eq!(
            diagnose(
                &unobserved,
                std::slice::from_ref(&crash),
                &BTreeMap::new(),
                &mut BTreeMap::new()
            ),
            None
        );
        let mut no_status = deployment(1, 0, 2, 0, 0, 0);
        no_status.status = None;
        assert_eq!(
            diagnose(
                &no_status,
                std::slice::from_ref(&crash),
                &BTreeMap::new(),
                &mut BTreeMap::new()
            ),
            None
        );
        let observed = deployment(3, 3, 2, 2, 2, 2);
        assert!(matches!(
            diagnose(&observed, &[crash], &BTreeMap::new(), &mut BTreeMap::new()),
            Some(RolloutFailure::CrashLoop { .. })
        ));
    }

    #[test]
    fn a_first_pull_error_gets_a_grace_period_and_readiness_needs_repeated_failures() {
        let pull = pod_with(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [{"name": "hello", "image": "r/h:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull"}}}]}
        }));
        let d = observed_deployment();
        assert_eq!(
            diagnose(
                &d,
                std::slice::from_ref(&pull),
                &BTreeMap::new(),
                &mut BTreeMap::new()
            ),
            None
        );
        let mut since = BTreeMap::from([("p".to_string(), Instant::now() - PULL_GRACE)]);
        assert!(diagnose(&d, &[pull], &BTreeMap::new(), &mut since).is_some());

        let running = pod_with(serde_json::json!({
            "metadata": {"name": "r"},
            "status": {"containerStatuses": [{"name": "hello", "image": "r/h:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"running": {}}}]}
        }));
        let few = BTreeMap::from([(
            "r".to_string(),
            ReadinessSeen::count(READINESS_FAILURES - 1),
        )]);
        assert_eq!(
            diagnose(
                &d,
                std::slice::from_ref(&running),
                &few,
                &mut BTreeMap::new()
            ),
            None
        );
        let many = BTreeMap::from([("r".to_string(), ReadinessSeen::count(READINESS_FAILURES))]);
        assert!(matches!(
            diagnose(&d, &[running], &many, &mut BTreeMap::new()),
            Some(RolloutFailure::NeverReady { .. })
        ));
    }

    #[test]
    fn the_readiness_grace_adds_the_startup_probe_to_the_readiness_probe() {
        let container: k8s_openapi::api::core::v1::Container = serde_json::from_value(
            serde_json::json!({"name": "hello",
                "startupProbe": {"initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 10},
                "readinessProbe": {"periodSeconds": 3}}),
        )
        .unwrap();
        let grace = probe_grace(&container).unwrap();
        assert_eq!(
            grace,
            ProbeGrace {
                seconds: 5 + 2 * 10 + 3 * 3,
                failures: 3,
                described: "startup: 5s + 10 × 2s, readiness: 3 × 3s".into(),
            }
        );
        let bare: k8s_openapi::api::core::v1::Container =
            serde_json::from_value(serde_json::json!({"name": "hello"})).unwrap();
        assert_eq!(
            probe_grace(&bare),
            None,
            "no readiness probe, no grace to judge by"
        );
    }

    // The failure reports, one per kind, built by hand so the snapshots are deterministic; the
    // evidence is what a real kubelet and scheduler write (and what kube-fake imitates).

    const IMAGE: &str = "europe-west1-docker.pkg.dev/ferry-staging/ferry/hello@sha256:9f2c4e0d5b7a61c3e8f4a2b6d0c9e7f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3";

    fn evidence(events: &[&str], logs: &[&str]) -> Evidence {
        Evidence {
            events: events.iter().map(|e| e.to_string()).collect(),
            logs: logs.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn the_failure_report_shows_events_logs_and_a_hint() {
        let failure = RolloutFailure::CrashLoop {
            pod: "hello-7d9c-x2x".into(),
            container: "hello".into(),
            restarts: 3,
            exit_code: Some(2),
            terminated_reason: Some("Error".into()),
            terminated_message: Some(
                "hello: invalid configuration: PORT=\"http\" is not valid".into(),
            ),
            evidence: Evidence {
                events: vec!["Warning BackOff: Back-off restarting failed container (x3)".into()],
                logs: vec!["hello: invalid configuration: PORT=\"http\" is not valid".into()],
            },
        };
        insta::assert_snapshot!("crash_loop_report", failure.to_string());
    }

    #[test]
    fn image_pull_report() {
        let failure = RolloutFailure::ImagePull {
            pod: "hello-6f8b9c7d5-k2x9p".into(),
            container: "hello".into(),
            image: IMAGE.into(),
            kubelet_reason: "ImagePullBackOff".into(),
            message: format!("Back-off pulling image \"{IMAGE}\""),
            evidence: evidence(
                &[
                    "Normal Scheduled: Successfully assigned hello/hello-6f8b9c7d5-k2x9p to gke-ferry-staging-default-3c1e-x7k2",
                    &format!("Normal Pulling: Pulling image \"{IMAGE}\" (x2)"),
                    &format!(
                        "Warning Failed: Failed to pull image \"{IMAGE}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{IMAGE}\": not found (x2)"
                    ),
                    "Warning Failed: Error: ErrImagePull (x2)",
                    &format!("Normal BackOff: Back-off pulling image \"{IMAGE}\" (x2)"),
                    "Warning Failed: Error: ImagePullBackOff (x2)",
                ],
                &[],
            ),
        };
        insta::assert_snapshot!("image_pull_report", failure.to_string());
    }

    #[test]
    fn invalid_image_name_report() {
        let image = "europe-west1-docker.pkg.dev/ferry-staging/Ferry/hello:Latest";
        let failure = RolloutFailure::ImagePull {
            pod: "hello-5c4d8f9b6-q7w2e".into(),
            container: "hello".into(),
            image: image.into(),
            kubelet_reason: "InvalidImageName".into(),
            message: format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format: repository name (ferry-staging/Ferry/hello) must be lowercase"
            ),
            evidence: evidence(
                &[
                    "Normal Scheduled: Successfully assigned hello/hello-5c4d8f9b6-q7w2e to gke-ferry-staging-default-3c1e-x7k2",
                    &format!(
                        "Warning InspectFailed: Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format: repository name (ferry-staging/Ferry/hello) must be lowercase (x3)"
                    ),
                    "Warning Failed: Error: InvalidImageName (x3)",
                ],
                &[],
            ),
        };
        insta::assert_snapshot!("invalid_image_name_report", failure.to_string());
    }

    #[test]
    fn create_container_config_error_report() {
        let failure = RolloutFailure::ContainerConfig {
            pod: "hello-7b6f5d4c9-m3n8r".into(),
            container: "hello".into(),
            kubelet_reason: "CreateContainerConfigError".into(),
            message: "secret \"hello-db\" not found".into(),
            evidence: evidence(
                &[
                    "Normal Scheduled: Successfully assigned hello/hello-7b6f5d4c9-m3n8r to gke-ferry-staging-default-3c1e-x7k2",
                    &format!(
                        "Normal Pulled: Container image \"{IMAGE}\" already present on machine (x3)"
                    ),
                    "Warning Failed: Error: secret \"hello-db\" not found (x3)",
                ],
                &[],
            ),
        };
        insta::assert_snapshot!("create_container_config_error_report", failure.to_string());
    }

    #[test]
    fn never_ready_report() {
        let failure = RolloutFailure::NeverReady {
            pod: "hello-8d7c6b5a4-z9y8x".into(),
            container: "hello".into(),
            failures: 6,
            grace_s: Some(4),
            probes: Some("readiness: 2 × 2s".into()),
            evidence: evidence(
                &[
                    &format!("Normal Pulled: Successfully pulled image \"{IMAGE}\""),
                    "Normal Created: Created container hello",
                    "Normal Started: Started container hello",
                    "Warning Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503 (x6)",
                ],
                &[
                    r#"{"level":"INFO","message":"listening","address":"0.0.0.0:8000"}"#,
                    r#"{"level":"WARN","message":"not ready","reason":"database unreachable"}"#,
                ],
            ),
        };
        insta::assert_snapshot!("never_ready_report", failure.to_string());
    }

    #[test]
    fn unschedulable_report() {
        let message = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
        let failure = RolloutFailure::Unschedulable {
            pod: "hello-9e8d7c6b5-a1b2c".into(),
            message: message.into(),
            evidence: evidence(&[&format!("Warning FailedScheduling: {message}")], &[]),
        };
        insta::assert_snapshot!("unschedulable_report", failure.to_string());
    }

    #[test]
    fn progress_deadline_report() {
        let failure = RolloutFailure::DeadlineExceeded {
            deployment: "hello".into(),
        };
        insta::assert_snapshot!("progress_deadline_report", failure.to_string());
    }

    #[test]
    fn timeout_report() {
        let failure = RolloutFailure::Timeout {
            deployment: "hello".into(),
            waited_s: 120,
            last: "Waiting for deployment \"hello\" rollout to finish: 1 of 2 updated replicas are available...".into(),
        };
        insta::assert_snapshot!("timeout_report", failure.to_string());
    }
}
