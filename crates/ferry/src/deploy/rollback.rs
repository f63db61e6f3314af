//! Automatic rollback, the way `kubectl rollout undo` does it: take the pod template of the
//! previous revision's ReplicaSet (minus its `pod-template-hash` label) and put it back into
//! the Deployment. The deployment controller then scales the old ReplicaSet up again.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use super::rollout::{REVISION, owned_replica_sets};

/// The revision restored and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Restored {
    pub revision: i64,
    pub image: String,
}

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
    let revision = revision_of(previous.metadata.annotations.as_ref()).unwrap_or(0);
    let Some(mut template) = previous.spec.as_ref().and_then(|s| s.template.clone()) else {
        return Ok(None);
    };
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    let image = template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let patch = serde_json::json!([
        { "op": "replace", "path": "/spec/template", "value": template }
    ]);
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    deployments
        .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(Some(Restored { revision, image }))
}

fn revision_of(annotations: Option<&std::collections::BTreeMap<String, String>>) -> Option<i64> {
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
