//! `Table` responses for `kubectl get` (which asks for `as=Table`), with the columns the real
//! server prints for the kinds the fake serves.

use serde_json::{Value, json};

use crate::store::Resource;

type Cells = Box<dyn Fn(&Value) -> Vec<Value>>;

fn age(created: &str, now: jiff::Timestamp) -> String {
    let Ok(t) = created.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let s = now.duration_since(t).as_secs().max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

pub fn table(resource: Resource, items: &[Value], revision: u64, now: jiff::Timestamp) -> Value {
    let col = |name: &str, priority: u8| json!({"name": name, "type": "string", "format": if name == "Name" { "name" } else { "" }, "description": name, "priority": priority});
    let (columns, cells): (Vec<Value>, Cells) = match resource.kind {
        "Deployment" => (
            vec![
                col("Name", 0),
                col("Ready", 0),
                col("Up-to-date", 0),
                col("Available", 0),
                col("Age", 0),
                col("Containers", 1),
                col("Images", 1),
                col("Selector", 1),
            ],
            Box::new(move |o: &Value| {
                let s = &o["status"];
                vec![
                    o["metadata"]["name"].clone(),
                    json!(format!(
                        "{}/{}",
                        s["readyReplicas"].as_i64().unwrap_or(0),
                        o["spec"]["replicas"].as_i64().unwrap_or(1)
                    )),
                    json!(s["updatedReplicas"].as_i64().unwrap_or(0)),
                    json!(s["availableReplicas"].as_i64().unwrap_or(0)),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                    json!(containers(o, "name")),
                    json!(containers(o, "image")),
                    json!(selector(o)),
                ]
            }),
        ),
        "ReplicaSet" => (
            vec![
                col("Name", 0),
                col("Desired", 0),
                col("Current", 0),
                col("Ready", 0),
                col("Age", 0),
                col("Containers", 1),
                col("Images", 1),
                col("Selector", 1),
            ],
            Box::new(move |o: &Value| {
                vec![
                    o["metadata"]["name"].clone(),
                    json!(o["spec"]["replicas"].as_i64().unwrap_or(0)),
                    json!(o["status"]["replicas"].as_i64().unwrap_or(0)),
                    json!(o["status"]["readyReplicas"].as_i64().unwrap_or(0)),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                    json!(containers(o, "name")),
                    json!(containers(o, "image")),
                    json!(selector(o)),
                ]
            }),
        ),
        "Pod" => (
            vec![
                col("Name", 0),
                col("Ready", 0),
                col("Status", 0),
                col("Restarts", 0),
                col("Age", 0),
                col("IP", 1),
                col("Node", 1),
            ],
            Box::new(move |o: &Value| {
                let cs = o["status"]["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let ready = cs.iter().filter(|c| c["ready"] == true).count();
                let waiting = cs
                    .iter()
                    .find_map(|c| c["state"]["waiting"]["reason"].as_str().map(str::to_string));
                let status = waiting.unwrap_or_else(|| {
                    o["status"]["phase"]
                        .as_str()
                        .unwrap_or("Pending")
                        .to_string()
                });
                let restarts: i64 = cs
                    .iter()
                    .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                    .sum();
                vec![
                    o["metadata"]["name"].clone(),
                    json!(format!(
                        "{ready}/{}",
                        o["spec"]["containers"].as_array().map_or(1, Vec::len)
                    )),
                    json!(status),
                    json!(restarts),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                    json!(o["status"]["podIP"].as_str().unwrap_or("<none>")),
                    json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                ]
            }),
        ),
        "Event" => (
            vec![
                col("Last Seen", 0),
                col("Type", 0),
                col("Reason", 0),
                col("Object", 0),
                col("Message", 0),
            ],
            Box::new(move |o: &Value| {
                vec![
                    json!(age(o["lastTimestamp"].as_str().unwrap_or_default(), now)),
                    o["type"].clone(),
                    o["reason"].clone(),
                    json!(format!(
                        "{}/{}",
                        o["involvedObject"]["kind"]
                            .as_str()
                            .unwrap_or_default()
                            .to_lowercase(),
                        o["involvedObject"]["name"].as_str().unwrap_or_default()
                    )),
                    o["message"].clone(),
                ]
            }),
        ),
        "Service" => (
            vec![
                col("Name", 0),
                col("Type", 0),
                col("Cluster-IP", 0),
                col("External-IP", 0),
                col("Port(s)", 0),
                col("Age", 0),
            ],
            Box::new(move |o: &Value| {
                let ports: Vec<String> = o["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                    .collect();
                vec![
                    o["metadata"]["name"].clone(),
                    json!(o["spec"]["type"].as_str().unwrap_or("ClusterIP")),
                    json!(o["spec"]["clusterIP"].as_str().unwrap_or("<none>")),
                    json!(
                        o["status"]["loadBalancer"]["ingress"][0]["ip"]
                            .as_str()
                            .unwrap_or("<pending>")
                    ),
                    json!(ports.join(",")),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                ]
            }),
        ),
        "Namespace" => (
            vec![col("Name", 0), col("Status", 0), col("Age", 0)],
            Box::new(move |o: &Value| {
                vec![
                    o["metadata"]["name"].clone(),
                    json!(o["status"]["phase"].as_str().unwrap_or("Active")),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                ]
            }),
        ),
        "Lease" => (
            vec![col("Name", 0), col("Holder", 0), col("Age", 0)],
            Box::new(move |o: &Value| {
                vec![
                    o["metadata"]["name"].clone(),
                    json!(o["spec"]["holderIdentity"].as_str().unwrap_or("<none>")),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                ]
            }),
        ),
        "ConfigMap" => (
            vec![col("Name", 0), col("Data", 0), col("Age", 0)],
            Box::new(move |o: &Value| {
                let count = |f: &str| o[f].as_object().map_or(0, |m| m.len());
                vec![
                    o["metadata"]["name"].clone(),
                    json!(count("data") + count("binaryData")),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                ]
            }),
        ),
        "PodDisruptionBudget" => (
            vec![
                col("Name", 0),
                col("Min Available", 0),
                col("Max Unavailable", 0),
                col("Allowed Disruptions", 0),
                col("Age", 0),
            ],
            Box::new(move |o: &Value| {
                // An int or a percentage; unset prints as N/A.
                let bound = |f: &str| match &o["spec"][f] {
                    Value::Null => json!("N/A"),
                    Value::String(s) => json!(s),
                    other => json!(other.to_string()),
                };
                vec![
                    o["metadata"]["name"].clone(),
                    bound("minAvailable"),
                    bound("maxUnavailable"),
                    json!(o["status"]["disruptionsAllowed"].as_i64().unwrap_or(0)),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                ]
            }),
        ),
        "NetworkPolicy" => (
            vec![col("Name", 0), col("Pod-Selector", 0), col("Age", 0)],
            Box::new(move |o: &Value| {
                let labels = label_selector(&o["spec"]["podSelector"]);
                vec![
                    o["metadata"]["name"].clone(),
                    json!(if labels.is_empty() {
                        "<none>".to_string()
                    } else {
                        labels
                    }),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                ]
            }),
        ),
        _ => (
            vec![col("Name", 0), col("Age", 0)],
            Box::new(move |o: &Value| {
                vec![
                    o["metadata"]["name"].clone(),
                    json!(age(
                        o["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default(),
                        now
                    )),
                ]
            }),
        ),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| json!({"cells": cells(o), "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}}))
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": revision.to_string()}, "columnDefinitions": columns, "rows": rows})
}

fn containers(o: &Value, field: &str) -> String {
    o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c[field].as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn selector(o: &Value) -> String {
    label_selector(&o["spec"]["selector"])
}

/// A LabelSelector's `matchLabels` as `a=b,c=d`.
fn label_selector(selector: &Value) -> String {
    selector["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}
