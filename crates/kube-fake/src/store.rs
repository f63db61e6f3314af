//! The object store: JSON objects keyed by resource, namespace and name, with a global
//! resourceVersion counter and a bounded history of changes that watches replay from.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::watch;

/// How many changes are kept, by default, for watches that start from a `resourceVersion`.
/// A watch from an older version gets `410 Gone`, reason `Expired`, as from the real API
/// server's watch cache, and the client lists again.
pub const DEFAULT_HISTORY: usize = 1000;

/// A resource the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resource {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

pub const RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
    },
    // Stored and served, with no controller behind them: nothing evicts pods, so no
    // disruption budget is ever consulted, and no network is simulated to enforce a policy.
    Resource {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        kind: "PodDisruptionBudget",
        namespaced: true,
    },
    Resource {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        kind: "NetworkPolicy",
        namespaced: true,
    },
];

/// The API groups served besides the core group, in discovery order.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

pub fn serves_group(group: &str) -> bool {
    !group.is_empty() && RESOURCES.iter().any(|r| r.group == group)
}

pub fn resource(group: &str, plural: &str) -> Option<Resource> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group == group && r.plural == plural)
}

pub fn resource_of_kind(kind: &str) -> Option<Resource> {
    RESOURCES.iter().copied().find(|r| r.kind == kind)
}

/// A change, as a watch sends it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion this change produced.
    pub revision: u64,
    pub resource: Resource,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
    /// The object before a `MODIFIED` change, so a watch with a selector can tell an object
    /// that stopped matching (sent as `DELETED`) or started matching (`ADDED`).
    pub previous: Option<Value>,
}

/// A watch asked for changes older than the history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// The newest revision no longer in the history: watches must start at or after it.
    pub compacted: u64,
}

type Key = (Resource, String, String);

/// All objects. Guarded by one mutex in [`crate::Shared`].
pub struct Store {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    uid: u64,
    /// The last `history_limit` changes, oldest first, one per revision.
    history: VecDeque<Change>,
    history_limit: usize,
    compacted: u64,
    /// The current revision, for watches waiting on the next change.
    latest: watch::Sender<u64>,
}

impl Store {
    /// A store holding the `default` and `kube-system` namespaces, created at `now`, that
    /// keeps the last `history_limit` changes for watches.
    pub fn new(now: &str, history_limit: usize) -> Self {
        let mut store = Self {
            objects: BTreeMap::new(),
            revision: 0,
            uid: 0,
            history: VecDeque::with_capacity(history_limit),
            history_limit,
            compacted: 0,
            latest: watch::Sender::new(0),
        };
        for ns in ["default", "kube-system"] {
            store.create(
                namespace_resource(),
                "",
                json!({"metadata": {"name": ns}}),
                now.to_string(),
            );
        }
        store
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Wakes when the revision moves; read the changes with [`Store::changes_after`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Every change after revision `since`, oldest first, or [`Expired`] if some of them are
    /// no longer kept.
    pub fn changes_after(&self, since: u64) -> Result<Vec<Change>, Expired> {
        if since < self.compacted {
            return Err(Expired {
                compacted: self.compacted,
            });
        }
        // One change per revision, so the position of `since + 1` is known.
        let skip = usize::try_from(since - self.compacted).unwrap_or(usize::MAX);
        Ok(self.history.iter().skip(skip).cloned().collect())
    }

    fn record(
        &mut self,
        resource: Resource,
        kind: &'static str,
        object: Value,
        previous: Option<Value>,
    ) {
        if self.history.len() >= self.history_limit
            && let Some(dropped) = self.history.pop_front()
        {
            self.compacted = dropped.revision;
        }
        self.history.push_back(Change {
            revision: self.revision,
            resource,
            kind,
            object,
            previous,
        });
        self.latest.send_replace(self.revision);
    }

    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(resource, ns_key(resource, namespace), name.to_string()))
    }

    /// Objects of a resource, in one namespace or all (`None`).
    pub fn list(&self, resource: Resource, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| {
                *r == resource && namespace.is_none_or(|n| !resource.namespaced || ns == n)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Stores a new object, filling server-side metadata.
    pub fn create(
        &mut self,
        resource: Resource,
        namespace: &str,
        mut object: Value,
        now: String,
    ) -> Value {
        self.revision += 1;
        self.uid += 1;
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let meta = &mut object["metadata"];
        if resource.namespaced {
            meta["namespace"] = json!(namespace);
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uid));
        meta["resourceVersion"] = json!(self.revision.to_string());
        meta["creationTimestamp"] = json!(now);
        if has_generation(resource) {
            meta["generation"] = json!(1);
        }
        if resource.kind == "Namespace" {
            // What the namespace admission and controller add on a real server.
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            object["spec"]["finalizers"] = json!(["kubernetes"]);
            object["status"]["phase"] = json!("Active");
        }
        self.objects.insert(
            (resource, ns_key(resource, namespace), name),
            object.clone(),
        );
        self.record(resource, "ADDED", object.clone(), None);
        object
    }

    /// Replaces an object; bumps generation when the spec changed. Returns the stored object.
    pub fn update(&mut self, resource: Resource, namespace: &str, mut object: Value) -> Value {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = (resource, ns_key(resource, namespace), name);
        let Some(old) = self.objects.get(&key) else {
            return object;
        };
        if old == &object {
            return object;
        }
        self.revision += 1;
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        if has_generation(resource) {
            let bumped = if old.get("spec") != object.get("spec") {
                generation + 1
            } else {
                generation
            };
            object["metadata"]["generation"] = json!(bumped);
        }
        for immutable in ["uid", "creationTimestamp"] {
            object["metadata"][immutable] = old["metadata"][immutable].clone();
        }
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        let previous = self.objects.insert(key, object.clone());
        self.record(resource, "MODIFIED", object.clone(), previous);
        object
    }

    pub fn delete(&mut self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let mut removed =
            self.objects
                .remove(&(resource, ns_key(resource, namespace), name.to_string()))?;
        self.revision += 1;
        // As on a real server, the deleted object carries the deletion's resourceVersion.
        removed["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.record(resource, "DELETED", removed.clone(), None);
        Some(removed)
    }
}

fn ns_key(resource: Resource, namespace: &str) -> String {
    if resource.namespaced {
        namespace.to_string()
    } else {
        String::new()
    }
}

fn has_generation(resource: Resource) -> bool {
    matches!(
        resource.kind,
        "Deployment" | "ReplicaSet" | "PodDisruptionBudget" | "NetworkPolicy"
    )
}

pub fn namespace_resource() -> Resource {
    RESOURCES[0]
}

/// Does `object` match a label selector like `a=b,c!=d,e`?
pub fn matches_labels(object: &Value, selector: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    selector
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .all(|term| {
            let term = term.trim();
            if let Some((k, v)) = term.split_once("!=") {
                labels[k.trim()].as_str() != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                labels[k.trim()].as_str() == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                labels[k.trim()].is_null()
            } else {
                !labels[term].is_null()
            }
        })
}

/// Does `object` match a field selector like `metadata.name=x,involvedObject.name=y`?
pub fn matches_fields(object: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .all(|term| {
            let (path, want, negate) = match term.split_once("!=") {
                Some((p, v)) => (p, v, true),
                None => match term.split_once("==").or_else(|| term.split_once('=')) {
                    Some((p, v)) => (p, v, false),
                    None => return true,
                },
            };
            let mut value = object;
            for part in path.trim().split('.') {
                value = &value[part];
            }
            let actual = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == want.trim()) != negate
        })
}
