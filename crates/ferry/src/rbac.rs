//! The least a deploy identity needs in its namespace: the Role `ferry rbac` prints. It lists
//! every verb on every resource ferry's commands use — applying and pruning the manifest's
//! kinds (and the environment's Secret), following a rollout (Deployments, ReplicaSets, Pods,
//! their logs, Events), status, history, rollback, promote and the deploy lock — and nothing
//! else: no wildcards, no other namespace, nothing cluster-wide.
//!
//! With [`Access::PromoteSource`] it prints instead what another environment's identity needs
//! to promote *from* this one: read-only access to what `ferry promote` reads in the source
//! namespace, so production's deploy account can see what staging runs and change nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// What ferry does to the cluster beyond applying the manifest, by resource.
const FOLLOW: &[(&str, &str, &[&str])] = &[
    // status, the rollout's progress, rollback (a JSON patch of the template).
    ("apps", "deployments", &["get", "list", "watch", "patch"]),
    // Which revision is new, and rollback's target.
    ("apps", "replicasets", &["get", "list", "watch"]),
    // Why a rollout fails: pods, their events and logs.
    ("", "pods", &["get", "list", "watch"]),
    ("", "pods/log", &["get"]),
    ("", "events", &["list", "watch"]),
    // The history (ConfigMap ferry-history-SERVICE) and the ApplySet parent
    // (ConfigMap ferry-set-SERVICE): read, created, replaced with their resourceVersion.
    (
        "",
        "configmaps",
        &["create", "get", "list", "patch", "update"],
    ),
    // The deploy lock (Lease ferry-lock-SERVICE): taken, renewed, released.
    (
        "coordination.k8s.io",
        "leases",
        &["create", "delete", "get", "update"],
    ),
];

/// What `ferry promote` reads in its source namespace, and only that (get and list, never a
/// write): the history record (one named ConfigMap), the Deployment that runs the image (by
/// name; listed when no history names it), and its ReplicaSets (listed by the Deployment's
/// selector) for `--commit`.
const PROMOTE_SOURCE: &[(&str, &str, &[&str])] = &[
    ("apps", "deployments", &["get", "list"]),
    ("apps", "replicasets", &["list"]),
];

/// Which Role `ferry rbac` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Everything ferry's commands do in the environment (ship, deploy, rollback, lock…).
    #[default]
    Deploy,
    /// Read-only: what `ferry promote --from ENV` reads there.
    PromoteSource,
}

/// Apply is a server-side apply PATCH, which creates what is not there yet; the dry run and
/// the diff read the live object; pruning lists the set's members by label and deletes what
/// the manifest no longer has.
const APPLY: &[&str] = &["create", "delete", "get", "list", "patch"];

/// The plural resource name of `kind` (`NetworkPolicy` → `networkpolicies`).
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// The Role for `objects` (the rendered manifest) in `namespace`, with `secrets` when the
/// environment declares some.
pub fn role(name: &str, namespace: &str, objects: &[Value], secrets: bool) -> Value {
    let mut rules: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
    for (group, resource, verbs) in FOLLOW {
        rules
            .entry((group.to_string(), resource.to_string()))
            .or_default()
            .extend(verbs.iter().copied());
    }
    for object in objects {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = object["kind"].as_str().unwrap_or_default();
        rules
            .entry((group.to_string(), plural(kind)))
            .or_default()
            .extend(APPLY.iter().copied());
    }
    if secrets {
        rules
            .entry((String::new(), "secrets".into()))
            .or_default()
            .extend(APPLY.iter().copied());
    }
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|((group, resource), verbs)| {
            json!({
                "apiGroups": [group],
                "resources": [resource],
                "verbs": verbs.into_iter().collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { "app.kubernetes.io/managed-by": "ferry" },
        },
        "rules": rules,
    })
}

/// The read-only Role for the source of a promote: get/list of the Deployments and their
/// ReplicaSets, and get of the one history ConfigMap `history` (by `resourceNames`, so no
/// other ConfigMap of the namespace can be read).
pub fn promote_source_role(name: &str, namespace: &str, history: &str) -> Value {
    let mut rules: Vec<Value> = vec![json!({
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [history],
        "verbs": ["get"],
    })];
    rules.extend(PROMOTE_SOURCE.iter().map(|(group, resource, verbs)| {
        json!({ "apiGroups": [group], "resources": [resource], "verbs": verbs })
    }));
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { "app.kubernetes.io/managed-by": "ferry" },
        },
        "rules": rules,
    })
}

/// The RoleBinding giving `role` to `user` (a Google service account's email on GKE).
pub fn binding(role: &str, namespace: &str, user: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": role, "namespace": namespace },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_covers_the_manifest_and_the_rollout_with_no_wildcards() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Service"}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}),
        ];
        let role = role("ferry-deploy", "hello", &objects, true);
        let rules = role["rules"].as_array().unwrap();
        let find = |group: &str, resource: &str| -> Vec<String> {
            rules
                .iter()
                .find(|r| r["apiGroups"][0] == group && r["resources"][0] == resource)
                .map(|r| {
                    r["verbs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_else(|| panic!("no rule for {group}/{resource}"))
        };
        let apply = ["create", "delete", "get", "list", "patch"];
        assert_eq!(
            find("apps", "deployments"),
            ["create", "delete", "get", "list", "patch", "watch"]
        );
        assert_eq!(find("", "services"), apply);
        assert_eq!(find("networking.k8s.io", "networkpolicies"), apply);
        assert_eq!(find("policy", "poddisruptionbudgets"), apply);
        assert_eq!(find("", "secrets"), apply);
        assert_eq!(find("", "pods/log"), ["get"]);
        assert_eq!(
            find("coordination.k8s.io", "leases"),
            ["create", "delete", "get", "update"]
        );
        assert_eq!(
            find("", "configmaps"),
            ["create", "get", "list", "patch", "update"]
        );
        let text = role.to_string();
        assert!(!text.contains('*'), "no wildcards: {text}");
        assert_eq!(role["metadata"]["namespace"], "hello");
    }

    #[test]
    fn the_promote_source_role_only_reads() {
        let role = promote_source_role(
            "ferry-promote-source-staging",
            "hello",
            "ferry-history-hello",
        );
        let rules = role["rules"].as_array().unwrap();
        let verbs: BTreeSet<&str> = rules
            .iter()
            .flat_map(|r| r["verbs"].as_array().unwrap())
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(verbs, BTreeSet::from(["get", "list"]));
        let resources: Vec<&str> = rules
            .iter()
            .map(|r| r["resources"][0].as_str().unwrap())
            .collect();
        assert_eq!(resources, ["configmaps", "deployments", "replicasets"]);
        // The history ConfigMap by name: no other ConfigMap (nor any Secret) is readable.
        assert_eq!(rules[0]["resourceNames"], json!(["ferry-history-hello"]));
        assert!(!role.to_string().contains('*'));
        assert_eq!(role["metadata"]["namespace"], "hello");
    }
}
