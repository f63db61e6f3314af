//! The deploy lock: one `coordination.k8s.io/v1` Lease per service in the environment's
//! namespace (`ferry-lock-SERVICE`), taken by ship, deploy and rollback for their whole run
//! and by `ferry lock` until `ferry unlock`.
//!
//! - Taking it is a create, or a replace carrying the resourceVersion that was read, so of
//!   two deploys that race exactly one wins (the other gets 409 and reads again).
//! - A running holder renews `spec.renewTime` every third of `leaseDurationSeconds`; a holder
//!   that dies stops renewing, and once `renewTime + leaseDurationSeconds` has passed the next
//!   deploy takes the lease over. A manual lock (`ferry.dev/manual-lock`) never expires.
//! - Who holds it, for what and since when are in the Lease itself (`holderIdentity`,
//!   `acquireTime`, annotations `ferry.dev/operation`, `ferry.dev/commit`,
//!   `ferry.dev/lock-message`), so `kubectl get lease` shows the holder as well.
//!
//! Not here: the checkout lock that keeps two local runs apart (the `ferry` crate's `lock` module).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams, Preconditions};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::json;

use super::{Cluster, DeployError};

/// Overrides the lease duration (seconds): how long a dead holder blocks the next deploy.
pub const LEASE_SECONDS_VAR: &str = "FERRY_LOCK_LEASE_SECONDS";
/// The default lease duration.
pub const DEFAULT_LEASE_SECONDS: u64 = 30;

const OPERATION: &str = "ferry.dev/operation";
const COMMIT: &str = "ferry.dev/commit";
const MESSAGE: &str = "ferry.dev/lock-message";
const MANUAL: &str = "ferry.dev/manual-lock";

/// The Lease's name for a service: `ferry-lock-hello`.
pub fn lease_name(service: &str) -> String {
    format!("ferry-lock-{}", crate::dns_label(service))
}

/// How long a holder's lease lasts without renewal: `FERRY_LOCK_LEASE_SECONDS`, else 30 s.
pub fn lease_duration() -> Duration {
    let seconds = std::env::var(LEASE_SECONDS_VAR)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_LEASE_SECONDS);
    Duration::from_secs(seconds)
}

/// Who asks for the lock, and for what.
#[derive(Debug, Clone)]
pub struct Claim {
    /// `alice@build-7 pid 4242`: unique per process, so a renewal knows the lease is still its own.
    pub identity: String,
    /// `ship`, `deploy`, `rollback`, `promote` or `lock` (manual).
    pub operation: String,
    pub commit: Option<String>,
    /// A manual lock's reason (`ferry lock -m`).
    pub message: Option<String>,
    /// A manual lock: never renewed, never expires.
    pub manual: bool,
    pub duration: Duration,
}

impl Claim {
    /// A claim by this process for `operation`.
    pub fn new(operation: &str, commit: Option<String>) -> Self {
        Self {
            identity: format!(
                "{}@{} pid {}",
                super::actor::who(),
                super::actor::host(),
                std::process::id()
            ),
            operation: operation.to_string(),
            commit,
            message: None,
            manual: false,
            duration: lease_duration(),
        }
    }
}

/// The lock as the Lease says it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockState {
    pub lease: String,
    pub namespace: String,
    pub holder: String,
    pub operation: String,
    pub commit: Option<String>,
    pub message: Option<String>,
    pub manual: bool,
    /// `acquireTime`, RFC 3339.
    pub since: String,
    /// `renewTime`, RFC 3339.
    pub renewed: Option<String>,
    pub lease_seconds: Option<i64>,
}

impl LockState {
    fn from_lease(lease: &DynamicObject, namespace: &str) -> Option<Self> {
        let spec = &lease.data["spec"];
        let holder = spec["holderIdentity"].as_str().filter(|h| !h.is_empty())?;
        let annotations = lease.metadata.annotations.clone().unwrap_or_default();
        let get = |k: &str| annotations.get(k).cloned().filter(|v| !v.is_empty());
        Some(Self {
            lease: lease.metadata.name.clone().unwrap_or_default(),
            namespace: namespace.to_string(),
            holder: holder.to_string(),
            operation: get(OPERATION).unwrap_or_else(|| "unknown".into()),
            commit: get(COMMIT),
            message: get(MESSAGE),
            manual: get(MANUAL).as_deref() == Some("true"),
            since: spec["acquireTime"].as_str().unwrap_or_default().to_string(),
            renewed: spec["renewTime"].as_str().map(str::to_string),
            lease_seconds: spec["leaseDurationSeconds"].as_i64(),
        })
    }

    /// Still held at `now`: a manual lock always, a deploy's until its lease runs out.
    pub fn is_live(&self, now: Timestamp) -> bool {
        if self.manual {
            return true;
        }
        let Some(renewed) = self
            .renewed
            .as_deref()
            .and_then(|r| r.parse::<Timestamp>().ok())
        else {
            return false;
        };
        let lasts = jiff::SignedDuration::from_secs(self.lease_seconds.unwrap_or(0).max(0));
        renewed.checked_add(lasts).is_ok_and(|until| until > now)
    }

    /// `ferry ship of commit 0123456789ab by alice@ci pid 7, since 2026-…Z` or, for a manual
    /// lock, `alice@laptop pid 9 ("release freeze"), since 2026-…Z`.
    pub fn describe(&self) -> String {
        let commit = self
            .commit
            .as_deref()
            .map(|c| format!(" of commit {}", c.chars().take(12).collect::<String>()))
            .unwrap_or_default();
        if self.manual {
            let reason = self
                .message
                .as_deref()
                .map(|m| format!(" ({m:?})"))
                .unwrap_or_default();
            format!(
                "a manual lock by {}{reason}, since {}",
                self.holder, self.since
            )
        } else {
            format!(
                "ferry {}{commit} by {}, since {}",
                self.operation, self.holder, self.since
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the deploy lock (Lease {namespace}/{lease}) is held: {}\n  hint: {}",
        .state.describe(),
        held_hint(.state, .waited)
    )]
    Held {
        namespace: String,
        lease: String,
        state: Box<LockState>,
        waited: Option<Duration>,
    },
    #[error(
        "the deploy lock (Lease {namespace}/{lease}) is held by a running {}: {}\n  hint: it is released when that run ends, and expires {}s after its holder stops renewing it; pass --force to remove it anyway",
        .state.operation, .state.describe(), .state.lease_seconds.unwrap_or(0)
    )]
    HeldByRun {
        namespace: String,
        lease: String,
        state: Box<LockState>,
    },
    #[error(transparent)]
    Cluster(#[from] DeployError),
}

fn held_hint(state: &LockState, waited: &Option<Duration>) -> String {
    if state.manual {
        return "deploys are frozen until `ferry unlock` removes it".into();
    }
    let waited = match waited {
        Some(w) if !w.is_zero() => format!("waited {}s; ", w.as_secs()),
        _ => String::new(),
    };
    format!(
        "{waited}wait for it to finish (--lock-timeout SECONDS waits for it); a holder that died stops blocking {}s after its last renewal",
        state.lease_seconds.unwrap_or(0)
    )
}

fn leases(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// Kubernetes' MicroTime: RFC 3339 in UTC with exactly six fractional digits.
fn micro_time(t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The Lease as `claim` holds it, over `live` (with its resourceVersion) when there is one.
fn claimed(name: &str, claim: &Claim, live: Option<&DynamicObject>) -> DynamicObject {
    let now = micro_time(Timestamp::now());
    let mut annotations = BTreeMap::new();
    annotations.insert(OPERATION.to_string(), claim.operation.clone());
    if let Some(c) = &claim.commit {
        annotations.insert(COMMIT.to_string(), c.clone());
    }
    if let Some(m) = &claim.message {
        annotations.insert(MESSAGE.to_string(), m.clone());
    }
    if claim.manual {
        annotations.insert(MANUAL.to_string(), "true".to_string());
    }
    let gvk = GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease");
    let mut lease = DynamicObject::new(name, &ApiResource::from_gvk(&gvk));
    lease.metadata.resource_version = live.and_then(|l| l.metadata.resource_version.clone());
    lease.metadata.labels = Some(
        [(
            "app.kubernetes.io/managed-by".to_string(),
            "ferry".to_string(),
        )]
        .into(),
    );
    lease.metadata.annotations = Some(annotations);
    let mut spec = json!({
        "holderIdentity": claim.identity,
        "acquireTime": now,
        "renewTime": now,
    });
    if !claim.manual {
        spec["leaseDurationSeconds"] = json!(claim.duration.as_secs());
    }
    lease.data = json!({ "spec": spec });
    lease
}

/// The lock, held: renewed in the background until [`Held::release`].
pub struct Held {
    api: Api<DynamicObject>,
    name: String,
    namespace: String,
    version: Arc<Mutex<Option<String>>>,
    lost: Arc<AtomicBool>,
    renewal: Option<tokio::task::JoinHandle<()>>,
    pub state: LockState,
}

impl Held {
    /// Lets the lock go (a conditional delete: a lease someone else took over stays).
    pub async fn release(mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
        let version = self.version.lock().map(|v| v.clone()).unwrap_or(None);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: version,
                uid: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(e) = self.api.delete(&self.name, &params).await {
            tracing::warn!(
                "could not release the deploy lock {}/{}: {e}",
                self.namespace,
                self.name
            );
        }
    }

    /// The lease was taken over while this run held it (it could not renew in time).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
    }
}

/// Takes the lock for `claim`, waiting up to `wait` for another holder (`on_wait` hears of
/// it once); a zero `wait` fails at once.
pub async fn acquire(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    claim: &Claim,
    wait: Duration,
    on_wait: &(dyn Fn(&LockState) + Send + Sync),
) -> Result<Held, LockError> {
    let api = leases(&cluster.client, namespace);
    let started = Instant::now();
    let kube_error = |e: kube::Error| DeployError::from_kube(e, "Lease", name, &cluster.server);
    let mut told = false;
    loop {
        let live = api.get_opt(name).await.map_err(kube_error)?;
        if let Some(state) = live
            .as_ref()
            .and_then(|l| LockState::from_lease(l, namespace))
            .filter(|s| s.is_live(Timestamp::now()))
        {
            if started.elapsed() >= wait {
                return Err(LockError::Held {
                    namespace: namespace.to_string(),
                    lease: name.to_string(),
                    state: Box::new(state),
                    waited: Some(started.elapsed()).filter(|_| !wait.is_zero()),
                });
            }
            if !told {
                on_wait(&state);
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let body = claimed(name, claim, live.as_ref());
        let written = match &live {
            None => api.create(&PostParams::default(), &body).await,
            Some(_) => api.replace(name, &PostParams::default(), &body).await,
        };
        match written {
            Ok(lease) => return Ok(hold(api, name, namespace, claim, lease)),
            // Another writer got there first: read again.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(kube_error(e).into()),
        }
    }
}

fn hold(
    api: Api<DynamicObject>,
    name: &str,
    namespace: &str,
    claim: &Claim,
    lease: DynamicObject,
) -> Held {
    let state = LockState::from_lease(&lease, namespace).unwrap_or_else(|| LockState {
        lease: name.to_string(),
        namespace: namespace.to_string(),
        holder: claim.identity.clone(),
        operation: claim.operation.clone(),
        commit: claim.commit.clone(),
        message: claim.message.clone(),
        manual: claim.manual,
        since: String::new(),
        renewed: None,
        lease_seconds: None,
    });
    let version = Arc::new(Mutex::new(lease.metadata.resource_version.clone()));
    let lost = Arc::new(AtomicBool::new(false));
    let renewal = (!claim.manual).then(|| {
        tokio::spawn(renew(
            api.clone(),
            name.to_string(),
            claim.identity.clone(),
            claim.duration,
            lease,
            version.clone(),
            lost.clone(),
        ))
    });
    Held {
        api,
        name: name.to_string(),
        namespace: namespace.to_string(),
        version,
        lost,
        renewal,
        state,
    }
}

/// Renews `renewTime` every third of the lease; stops, marking the lock lost, when the lease
/// is no longer this holder's.
async fn renew(
    api: Api<DynamicObject>,
    name: String,
    identity: String,
    duration: Duration,
    mut lease: DynamicObject,
    version: Arc<Mutex<Option<String>>>,
    lost: Arc<AtomicBool>,
) {
    let every = (duration / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        lease.data["spec"]["renewTime"] = json!(micro_time(Timestamp::now()));
        match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(renewed) => {
                if let Ok(mut v) = version.lock() {
                    v.clone_from(&renewed.metadata.resource_version);
                }
                lease = renewed;
            }
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
                // Still ours (a write we did not see)? Carry on from it; else it is lost.
                match api.get_opt(&name).await {
                    Ok(Some(live)) if live.data["spec"]["holderIdentity"] == identity.as_str() => {
                        lease = live;
                    }
                    _ => {
                        tracing::warn!("the deploy lock {name} was taken over by another holder");
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
            // A blip: try again at the next tick, well before the lease runs out.
            Err(e) => tracing::warn!("could not renew the deploy lock {name}: {e}"),
        }
    }
}

/// The lock as it is now; `None` when nobody holds it (or the holder's lease ran out).
pub async fn current(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Option<LockState>, DeployError> {
    let live = leases(&cluster.client, namespace)
        .get_opt(name)
        .await
        .map_err(|e| DeployError::from_kube(e, "Lease", name, &cluster.server))?;
    Ok(live
        .as_ref()
        .and_then(|l| LockState::from_lease(l, namespace))
        .filter(|s| s.is_live(Timestamp::now())))
}

/// Removes the lock. A running deploy's lock is removed only with `force`. Returns what was
/// removed, `None` when nothing held it.
pub async fn remove(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    force: bool,
) -> Result<Option<LockState>, LockError> {
    let api = leases(&cluster.client, namespace);
    let kube_error = |e: kube::Error| DeployError::from_kube(e, "Lease", name, &cluster.server);
    let Some(live) = api.get_opt(name).await.map_err(kube_error)? else {
        return Ok(None);
    };
    let state = LockState::from_lease(&live, namespace).filter(|s| s.is_live(Timestamp::now()));
    if let Some(s) = &state
        && !s.manual
        && !force
    {
        return Err(LockError::HeldByRun {
            namespace: namespace.to_string(),
            lease: name.to_string(),
            state: Box::new(s.clone()),
        });
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: live.metadata.resource_version.clone(),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(state),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(state),
        Err(e) => Err(kube_error(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(renewed: &str, seconds: i64, manual: bool) -> LockState {
        LockState {
            lease: "ferry-lock-hello".into(),
            namespace: "default".into(),
            holder: "alice@ci pid 7".into(),
            operation: "ship".into(),
            commit: Some("0123456789abcdef0123".into()),
            message: manual.then(|| "release freeze".into()),
            manual,
            since: "2026-12-01T10:00:00.000000Z".into(),
            renewed: Some(renewed.into()),
            lease_seconds: (!manual).then_some(seconds),
        }
    }

    #[test]
    fn micro_time_has_six_fractional_digits_in_utc() {
        let t = Timestamp::new(1_764_583_200, 123_456_789).unwrap();
        assert_eq!(micro_time(t), "2025-12-01T10:00:00.123456Z");
        assert_eq!(
            micro_time(Timestamp::from_second(0).unwrap()),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn a_deploy_lock_expires_after_its_lease_and_a_manual_one_never() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let s = state("2026-12-01T10:00:00.000000Z", 30, false);
        assert!(s.is_live(at("2026-12-01T10:00:29Z")));
        assert!(!s.is_live(at("2026-12-01T10:00:31Z")));
        let manual = state("2026-12-01T10:00:00.000000Z", 0, true);
        assert!(manual.is_live(at("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn the_holder_is_described_with_what_it_runs_and_since_when() {
        let s = state("2026-12-01T10:00:00.000000Z", 30, false);
        assert_eq!(
            s.describe(),
            "ferry ship of commit 0123456789ab by alice@ci pid 7, since 2026-12-01T10:00:00.000000Z"
        );
        let m = state("2026-12-01T10:00:00.000000Z", 0, true);
        assert_eq!(
            m.describe(),
            "a manual lock by alice@ci pid 7 (\"release freeze\"), since 2026-12-01T10:00:00.000000Z"
        );
        assert_eq!(lease_name("Hello_World"), "ferry-lock-hello-world");
    }
}
