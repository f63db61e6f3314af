//! kube-fake: a fake Kubernetes API server for tests, with simulated controllers.
//!
//! It serves the part of the API that ferry and `kubectl` use — discovery, Namespaces,
//! Services, ConfigMaps, Deployments, ReplicaSets, Pods, Events, Leases, `pods/log`,
//! PodDisruptionBudgets and NetworkPolicies (stored, not enforced); get, list with
//! label and field selectors, watch, create, server-side apply, merge/strategic/JSON patch,
//! replace, delete; errors as `Status` objects — and runs a deployment controller, a
//! ReplicaSet controller, a scheduler and a kubelet on a clock that tests can speed up.
//! Watches replay from a resourceVersion out of a bounded history (410 `Expired` beyond it),
//! and writes with a stale resourceVersion get 409 `Conflict`. Server-side apply tracks field
//! ownership per manager in `managedFields`, refuses conflicting applies unless forced, and
//! prunes fields a manager stops applying. Faults (pull errors, invalid
//! image names, container config errors, crash loops, failing readiness, unschedulable pods,
//! slow starts) are injected per image. What it does not model is listed in
//! `docs/kube-fake.md`.
//!
//! Test support only: never linked into ferry's binary.

mod api;
mod protobuf;
pub mod rbac;
mod sim;
mod ssa;
mod store;
mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;

/// How the simulated cluster behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simulated seconds per real second: 60.0 makes a 600 s progress deadline take 10 s.
    pub clock_scale: f64,
    /// Simulated time from a pod's creation until its container runs.
    pub pod_start_delay: Duration,
    /// Simulated time from running until the readiness probe passes.
    pub pod_ready_delay: Duration,
    /// How many changes are kept for watches that start from a resourceVersion (1000). A
    /// watch from an older version, or one that falls this far behind, gets 410 `Expired`.
    pub watch_history: usize,
    /// When set, every request must carry `Authorization: Bearer <token>`, else 401
    /// `Unauthorized` as the real API server answers; the written kubeconfig carries it.
    pub bearer_token: Option<String>,
    /// When set, requests are authorised by RBAC ([`rbac::Policy`]): each token names a user
    /// bound to namespaced Role rules; others get 403 `Forbidden` as the API server says it.
    /// The kubeconfig then carries `bearer_token` (which should be one of the policy's).
    pub rbac: Option<rbac::Policy>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock_scale: 1.0,
            pod_start_delay: Duration::from_millis(500),
            pod_ready_delay: Duration::from_secs(1),
            watch_history: store::DEFAULT_HISTORY,
            bearer_token: None,
            rbac: None,
        }
    }
}

/// A fault injected for every pod running a given image (exact match).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `ErrImagePull`, then `ImagePullBackOff`; events Pulling, Failed, BackOff.
    ImagePull,
    /// The container exits with `exit_code` after printing `log`; `CrashLoopBackOff`.
    CrashLoop { log: String, exit_code: i32 },
    /// Running, but the readiness probe fails (503); `Unhealthy` events.
    NeverReady,
    /// `PodScheduled=False`, reason `Unschedulable`; a `FailedScheduling` event.
    Unschedulable,
    /// Becomes ready only after this much extra simulated time.
    SlowStart(Duration),
    /// The image reference does not parse (e.g. `Web:Latest`): waiting reason
    /// `InvalidImageName`, an `InspectFailed` warning, and no pull is ever tried.
    InvalidImageName,
    /// The kubelet cannot build the container's config, e.g. a missing Secret or ConfigMap:
    /// waiting reason `CreateContainerConfigError` and a `Failed` warning, both with `message`
    /// (e.g. `secret "db" not found`).
    CreateContainerConfigError { message: String },
}

/// State shared by the HTTP handlers and the controllers.
pub(crate) struct Shared {
    store: Mutex<store::Store>,
    faults: Mutex<HashMap<String, Fault>>,
    options: Options,
    started: Instant,
    wall_start: Timestamp,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, store::Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulated time since start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed().mul_f64(self.options.clock_scale)
    }

    pub(crate) fn now_time(&self) -> Timestamp {
        self.wall_start
            .checked_add(self.elapsed())
            .unwrap_or(self.wall_start)
    }

    pub(crate) fn now_string(&self) -> String {
        format_time(self.now_time())
    }

    pub(crate) fn fault(&self, image: &str) -> Option<Fault> {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(image)
            .cloned()
    }

    /// What a container of `image` printed.
    pub(crate) fn log_for(&self, image: &str) -> String {
        match self.fault(image) {
            Some(Fault::CrashLoop { log, .. }) => log,
            _ => "{\"level\":\"INFO\",\"message\":\"listening\",\"address\":\"0.0.0.0:8000\"}\n"
                .to_string(),
        }
    }
}

/// RFC 3339 with whole seconds, as the API server writes timestamps.
pub(crate) fn format_time(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// A running fake cluster. Dropping it stops the server and the controllers.
pub struct FakeCluster {
    shared: Arc<Shared>,
    url: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeCluster {
    /// Starts the server on a free loopback port and writes a kubeconfig for it.
    pub async fn start(options: Options) -> anyhow::Result<FakeCluster> {
        let wall_start = Timestamp::now();
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::new(
                &format_time(wall_start),
                options.watch_history.max(1),
            )),
            faults: Mutex::new(HashMap::new()),
            options,
            started: Instant::now(),
            wall_start,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback(api::handle)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let controllers = tokio::spawn(sim::run(shared.clone()));
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let user = match &shared.options.bearer_token {
            Some(token) => format!("{{token: {token}}}"),
            None => "{}".to_string(),
        };
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\nusers:\n- name: fake\n  user: {user}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n"
            ),
        )?;
        Ok(FakeCluster {
            shared,
            url,
            kubeconfig,
            _dir: dir,
            tasks: vec![server, controllers],
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A kubeconfig whose current context (`fake`) points at this server.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Every pod running `image` (exact match) gets `fault` from now on.
    pub fn inject(&self, image: &str, fault: Fault) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(image.to_string(), fault);
    }

    pub fn clear_faults(&self) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// An object straight from the store, e.g. `/apis/apps/v1/namespaces/default/deployments/hello`.
    pub fn get_json(&self, api_path: &str) -> Option<serde_json::Value> {
        let parts: Vec<&str> = api_path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, rest) = match parts.as_slice() {
            ["api", "v1", rest @ ..] => ("", rest),
            ["apis", group, "v1", rest @ ..] => (*group, rest),
            _ => return None,
        };
        let (ns, plural, name) = match rest {
            ["namespaces", ns, plural, name] => (*ns, *plural, *name),
            [plural, name] => ("", *plural, *name),
            _ => return None,
        };
        let resource = store::resource(group, plural)?;
        self.shared.lock().get(resource, ns, name).cloned()
    }

    /// Creates a namespace straight in the store, as a cluster admin would before handing a
    /// namespaced Role to a deployer (see [`rbac`]).
    pub fn create_namespace(&self, name: &str) {
        let now = format_time(self.shared.wall_start);
        self.shared.lock().create(
            store::namespace_resource(),
            "",
            serde_json::json!({"metadata": {"name": name}}),
            now,
        );
    }

    /// Simulated time since the cluster started.
    pub fn elapsed(&self) -> Duration {
        self.shared.elapsed()
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
