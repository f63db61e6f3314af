//! Automatic rollback, the way `kubectl rollout undo` does it: take the pod template of the
//! previous revision's ReplicaSet (minus its `pod-template-hash` label) and put it back into
//! the Deployment. The deployment controller then scales the old ReplicaSet up again.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use super::rollout::{REVISION, owned_replica_sets};

/// The revision restored, the image it runs and the commit it was built from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Restored {
    pub revision: i64,
    pub image: String,
    pub commit: Option<String>,
}

/// The pod template's `ferry.dev/commit`, which ferry's manifests carry.
pub const COMMIT: &str = "ferry.dev/commit";

/// Restores the newest revision older than the current one. `Ok(None)`: there is none (a
/// first deploy has nothing to go back to).
pub async fn rollback(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Restored>, kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments.get(name).await?;
    let current = revision_of(deployment.metadata.annotations.as_ref());
    let sets = owned_replica_sets(client, namespace, &deployment).await?;
    let Some(previous) = previous_revision(&sets, current) else {
        return Ok(None);
    };
    restore(client, namespace, &deployment, previous).await
}

/// Puts `set`'s pod template back into the Deployment, and its `ferry.dev/commit` on the
/// Deployment too, so `ferry status` names the commit that runs. `Ok(None)`: the set has no
/// template.
pub async fn restore(
    client: &Client,
    namespace: &str,
    deployment: &Deployment,
    set: &ReplicaSet,
) -> Result<Option<Restored>, kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let revision = revision_of(set.metadata.annotations.as_ref()).unwrap_or(0);
    let Some(mut template) = set.spec.as_ref().and_then(|s| s.template.clone()) else {
        return Ok(None);
    };
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    let image = image_of_template(&template);
    let commit = commit_of_template(&template);
    let mut ops = vec![serde_json::json!(
        { "op": "replace", "path": "/spec/template", "value": template }
    )];
    if let Some(commit) = &commit {
        if deployment.metadata.annotations.is_some() {
            ops.push(serde_json::json!(
                { "op": "add", "path": "/metadata/annotations/ferry.dev~1commit", "value": commit }
            ));
        } else {
            ops.push(serde_json::json!(
                { "op": "add", "path": "/metadata/annotations", "value": { COMMIT: commit } }
            ));
        }
    }
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(ops)).map_err(kube::Error::SerdeError)?;
    deployments
        .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(Some(Restored {
        revision,
        image,
        commit,
    }))
}

/// The first container's image.
pub fn image_of_template(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// The template's `ferry.dev/commit` annotation.
pub fn commit_of_template(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
) -> Option<String> {
    template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(COMMIT)
        .cloned()
}

pub fn revision_of(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<i64> {
    annotations?.get(REVISION)?.parse().ok()
}

/// The ReplicaSet with the highest revision below `current`.
pub fn previous_revision(sets: &[ReplicaSet], current: Option<i64>) -> Option<&ReplicaSet> {
    sets.iter()
        .filter_map(|rs| Some((revision_of(rs.metadata.annotations.as_ref())?, rs)))
        .filter(|(rev, _)| current.is_none_or(|c| *rev < c))
        .max_by_key(|(rev, _)| *rev)
        .map(|(_, rs)| rs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(revision: &str) -> ReplicaSet {
        let mut rs = ReplicaSet::default();
        rs.metadata.name = Some(format!("hello-{revision}"));
        rs.metadata.annotations = Some([(REVISION.to_string(), revision.to_string())].into());
        rs
    }

    #[test]
    fn the_previous_revision_is_the_highest_below_the_current() {
        let sets = [rs("1"), rs("3"), rs("2"), rs("4")];
        let prev = previous_revision(&sets, Some(4)).unwrap();
        assert_eq!(prev.metadata.name.as_deref(), Some("hello-3"));
        assert!(
            previous_revision(&sets[..1], Some(1)).is_none(),
            "first deploy: nothing to restore"
        );
    }
}
