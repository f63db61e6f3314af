//! Pruning with kubectl's ApplySet convention (KEP-3659): what ferry applied for a service is
//! one set, so an object removed from the manifest can be deleted, and nothing else ever is.
//!
//! - The parent is a ConfigMap `ferry-set-SERVICE` in the namespace (kubectl's
//!   `--applyset=configmap/NAME`; a ConfigMap rather than a Secret, so deploying needs no access
//!   to Secrets), labelled
//!   `applyset.kubernetes.io/id: applyset-<base64url(sha256(NAME.NAMESPACE.ConfigMap.))>-v1`, with
//!   `applyset.kubernetes.io/tooling: ferry/VERSION` and
//!   `applyset.kubernetes.io/contains-group-kinds` (`Deployment.apps,Service`).
//! - Every member carries the label `applyset.kubernetes.io/part-of: <id>`.
//! - Before an apply the parent is widened to the kinds of both the old and the new set; after
//!   a successful rollout the members the manifest no longer has are deleted, and the parent
//!   narrows to the new kinds. A failed rollout deletes nothing.
//! - A parent whose tooling is another tool's is refused: that set is not ferry's to prune.
//!
//! Namespaces are never members (deleting one would delete everything in it).

use std::collections::BTreeSet;

use base64::Engine as _;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use sha2::{Digest, Sha256};

use super::{Cluster, DeployError};

pub const PART_OF: &str = "applyset.kubernetes.io/part-of";
pub const ID: &str = "applyset.kubernetes.io/id";
pub const TOOLING: &str = "applyset.kubernetes.io/tooling";
pub const CONTAINS: &str = "applyset.kubernetes.io/contains-group-kinds";

/// The set of a service in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySet {
    pub parent: String,
    pub namespace: String,
    pub id: String,
}

impl ApplySet {
    pub fn new(service: &str, namespace: &str) -> Self {
        let parent = format!("ferry-set-{}", crate::dns_label(service));
        let id = id_for(&parent, namespace);
        Self {
            parent,
            namespace: namespace.to_string(),
            id,
        }
    }

    /// Labels every member of `objects` (all but Namespaces) as part of the set.
    pub fn label(&self, objects: &mut [serde_json::Value]) {
        for o in objects.iter_mut().filter(|o| o["kind"] != "Namespace") {
            if !o["metadata"]["labels"].is_object() {
                o["metadata"]["labels"] = serde_json::json!({});
            }
            o["metadata"]["labels"][PART_OF] = serde_json::json!(self.id);
        }
    }
}

/// KEP-3659's id: `applyset-` + unpadded base64url of sha256(`NAME.NAMESPACE.KIND.GROUP`) + `-v1`.
pub fn id_for(parent: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{parent}.{namespace}.ConfigMap.").as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// `Deployment.apps` / `Service`, as the annotation writes a group-kind.
fn group_kind(object: &serde_json::Value) -> Option<String> {
    let kind = object["kind"].as_str()?;
    let api_version = object["apiVersion"].as_str()?;
    Some(match api_version.split_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind.to_string(),
    })
}

/// One member, as listed or as in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Member {
    pub group_kind: String,
    pub name: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.group_kind, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplySetError {
    #[error(
        "the ApplySet parent ConfigMap {namespace}/{parent} belongs to {tooling:?}, not ferry\n  hint: ferry prunes only sets it made; remove that ConfigMap's applyset.kubernetes.io labels and annotations, or deploy this service to another namespace"
    )]
    OtherTool {
        namespace: String,
        parent: String,
        tooling: String,
    },
    #[error(transparent)]
    Cluster(#[from] DeployError),
}

fn parents(cluster: &Cluster, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("", "v1", "ConfigMap");
    Api::namespaced_with(
        cluster.client.clone(),
        namespace,
        &ApiResource::from_gvk(&gvk),
    )
}

/// The group-kinds the live parent lists (none when there is no parent yet); refuses a parent
/// of another tool.
pub async fn recorded_kinds(
    cluster: &Cluster,
    set: &ApplySet,
) -> Result<BTreeSet<String>, ApplySetError> {
    let live = parents(cluster, &set.namespace)
        .get_opt(&set.parent)
        .await
        .map_err(|e| DeployError::from_kube(e, "ConfigMap", &set.parent, &cluster.server))?;
    let Some(live) = live else {
        return Ok(BTreeSet::new());
    };
    let annotations = live.metadata.annotations.unwrap_or_default();
    if let Some(tooling) = annotations.get(TOOLING)
        && !tooling.starts_with("ferry/")
    {
        return Err(ApplySetError::OtherTool {
            namespace: set.namespace.clone(),
            parent: set.parent.clone(),
            tooling: tooling.clone(),
        });
    }
    Ok(annotations
        .get(CONTAINS)
        .map(|c| {
            c.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// Writes the parent listing `kinds`.
pub async fn write_parent(
    cluster: &Cluster,
    set: &ApplySet,
    kinds: &BTreeSet<String>,
) -> Result<(), DeployError> {
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": set.parent,
            "namespace": set.namespace,
            "labels": { ID: set.id, "app.kubernetes.io/managed-by": "ferry" },
            "annotations": {
                TOOLING: format!("ferry/{}", env!("CARGO_PKG_VERSION")),
                CONTAINS: kinds.iter().cloned().collect::<Vec<_>>().join(","),
            },
        },
    });
    parents(cluster, &set.namespace)
        .patch(
            &set.parent,
            &PatchParams::apply(super::apply::FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| DeployError::from_kube(e, "ConfigMap", &set.parent, &cluster.server))?;
    Ok(())
}

/// The group-kinds of `objects` (Namespaces left out).
pub fn kinds_of(objects: &[serde_json::Value]) -> BTreeSet<String> {
    objects
        .iter()
        .filter(|o| o["kind"] != "Namespace")
        .filter_map(group_kind)
        .collect()
}

/// Members in the cluster, of the `kinds` listed, that `objects` no longer has.
pub async fn orphans(
    cluster: &Cluster,
    set: &ApplySet,
    kinds: &BTreeSet<String>,
    objects: &[serde_json::Value],
) -> Result<Vec<(Member, ApiResource)>, DeployError> {
    let wanted: BTreeSet<Member> = objects
        .iter()
        .filter_map(|o| {
            Some(Member {
                group_kind: group_kind(o)?,
                name: o["metadata"]["name"].as_str()?.to_string(),
            })
        })
        .collect();
    let mut found = Vec::new();
    for gk in kinds {
        let (kind, group) = gk.split_once('.').unwrap_or((gk.as_str(), ""));
        let resource = match kube::discovery::group(&cluster.client, group).await {
            Ok(g) => match g.recommended_kind(kind) {
                Some((resource, _)) => resource,
                None => continue,
            },
            // A kind the server no longer serves has no members left to prune.
            Err(_) => continue,
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), &set.namespace, &resource);
        let listed = api
            .list(&ListParams::default().labels(&format!("{PART_OF}={}", set.id)))
            .await
            .map_err(|e| DeployError::from_kube(e, kind, "*", &cluster.server))?;
        for item in listed.items {
            let member = Member {
                group_kind: gk.clone(),
                name: item.metadata.name.clone().unwrap_or_default(),
            };
            if !wanted.contains(&member) {
                found.push((member, resource.clone()));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Deletes `orphans` (foreground propagation, so what they own goes with them).
pub async fn prune(
    cluster: &Cluster,
    set: &ApplySet,
    orphans: &[(Member, ApiResource)],
) -> Result<Vec<Member>, DeployError> {
    let mut deleted = Vec::new();
    for (member, resource) in orphans {
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), &set.namespace, resource);
        match api.delete(&member.name, &DeleteParams::foreground()).await {
            Ok(_) => deleted.push(member.clone()),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                return Err(DeployError::from_kube(
                    e,
                    &member.group_kind,
                    &member.name,
                    &cluster.server,
                ));
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_kep_3659_hash_of_the_parent() {
        let set = ApplySet::new("hello", "default");
        assert_eq!(set.parent, "ferry-set-hello");
        let digest = Sha256::digest(b"ferry-set-hello.default.ConfigMap.");
        let expected = format!(
            "applyset-{}-v1",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        assert_eq!(set.id, expected);
        assert!(set.id.len() <= 63, "a label value: {}", set.id);
    }

    #[test]
    fn members_are_labelled_and_namespaces_left_out() {
        let set = ApplySet::new("hello", "default");
        let mut objects = vec![
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello"}}),
            serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello", "labels": {"a": "b"}}}),
        ];
        set.label(&mut objects);
        assert!(objects[0]["metadata"]["labels"].is_null());
        assert_eq!(objects[1]["metadata"]["labels"][PART_OF], set.id.as_str());
        assert_eq!(objects[2]["metadata"]["labels"]["a"], "b");
        assert_eq!(
            kinds_of(&objects).into_iter().collect::<Vec<_>>(),
            ["Deployment.apps", "Service"]
        );
    }
}
