//! Server-side apply of rendered objects, in dependency order, with field manager `ferry`.

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Api, Client};

/// The field manager ferry applies as.
pub const FIELD_MANAGER: &str = "ferry";

/// One applied object, with what the server returned.
#[derive(Debug, Clone)]
pub struct Applied {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    /// The object as the server has it after the apply (or would, in a dry run).
    pub object: serde_json::Value,
    /// The live object before the apply, if it existed.
    pub before: Option<serde_json::Value>,
}

/// Namespaces first, then everything else, Deployments last (they depend on the rest).
pub fn order(objects: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    let rank = |o: &serde_json::Value| match o["kind"].as_str() {
        Some("Namespace") => 0,
        Some("Deployment") => 2,
        _ => 1,
    };
    let mut sorted: Vec<&serde_json::Value> = objects.iter().collect();
    sorted.sort_by_key(|o| rank(o));
    sorted
}

/// Applies every object (or dry-runs it on the server with `dry_run`).
pub async fn apply_all(
    client: &Client,
    objects: &[serde_json::Value],
    default_namespace: &str,
    dry_run: bool,
) -> Result<Vec<Applied>, kube::Error> {
    let mut applied = Vec::new();
    for object in order(objects) {
        applied.push(apply_one(client, object, default_namespace, dry_run).await?);
    }
    Ok(applied)
}

async fn apply_one(
    client: &Client,
    object: &serde_json::Value,
    default_namespace: &str,
    dry_run: bool,
) -> Result<Applied, kube::Error> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let (resource, capabilities) = match discovery::pinned_kind(client, &gvk).await {
        Ok(found) => found,
        // Servers without discovery for a kind still accept the conventional plural.
        Err(_) => (
            ApiResource::from_gvk(&gvk),
            kube::discovery::ApiCapabilities {
                scope: if kind == "Namespace" {
                    Scope::Cluster
                } else {
                    Scope::Namespaced
                },
                subresources: vec![],
                operations: vec![],
            },
        ),
    };
    let namespace = match capabilities.scope {
        Scope::Cluster => None,
        Scope::Namespaced => Some(
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(default_namespace)
                .to_string(),
        ),
    };
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let before = api
        .get_opt(&name)
        .await?
        .and_then(|o| serde_json::to_value(o).ok());
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    let mut body = object.clone();
    if let Some(ns) = &namespace {
        body["metadata"]["namespace"] = serde_json::Value::String(ns.clone());
    }
    let result = api.patch(&name, &params, &Patch::Apply(&body)).await?;
    Ok(Applied {
        kind,
        name,
        namespace,
        object: serde_json::to_value(result).unwrap_or_default(),
        before,
    })
}

/// A unified diff of what an apply changes, without server-managed noise.
pub fn diff(applied: &Applied) -> String {
    let clean = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            for key in [
                "managedFields",
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
            ] {
                meta.remove(key);
            }
        }
        if let Some(obj) = v.as_object_mut() {
            obj.remove("status");
        }
        serde_saphyr::to_string(&v).unwrap_or_default()
    };
    let before = applied.before.as_ref().map(clean).unwrap_or_default();
    let after = clean(&applied.object);
    let title = format!("{}/{}", applied.kind, applied.name);
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live {title}"), &format!("applied {title}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespaces_go_first_and_deployments_last() {
        let objects = vec![
            json!({"kind": "Deployment"}),
            json!({"kind": "Service"}),
            json!({"kind": "Namespace"}),
            json!({"kind": "ConfigMap"}),
        ];
        let kinds: Vec<&str> = order(&objects)
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Namespace", "Service", "ConfigMap", "Deployment"]);
    }

    #[test]
    fn the_diff_ignores_server_noise_and_shows_the_change() {
        let applied = Applied {
            kind: "Deployment".into(),
            name: "hello".into(),
            namespace: Some("default".into()),
            before: Some(
                json!({"metadata": {"name": "hello", "resourceVersion": "1"}, "spec": {"replicas": 2}, "status": {"replicas": 2}}),
            ),
            object: json!({"metadata": {"name": "hello", "resourceVersion": "2"}, "spec": {"replicas": 3}}),
        };
        let d = diff(&applied);
        assert!(
            d.contains("-  replicas: 2") && d.contains("+  replicas: 3"),
            "{d}"
        );
        assert!(!d.contains("resourceVersion"), "{d}");
    }
}
