//! The simulated control plane: deployment controller, ReplicaSet controller, scheduler and
//! kubelet, ticking on the scaled clock. Each tick reads the store, decides like the real
//! component would, and writes back only what changed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::{self, Resource, Store};
use crate::{Fault, Shared, format_time, ssa};

/// The managers a real cluster's `managedFields` name for these writes.
const CONTROLLER_MANAGER: &str = "kube-controller-manager";
const KUBELET: &str = "kubelet";

const TICK: Duration = Duration::from_millis(40);
/// Simulated seconds between crash-loop restarts and between readiness probes.
const RESTART_EVERY: f64 = 10.0;
const PROBE_EVERY: f64 = 2.0;

pub async fn run(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(TICK).await;
        tick(&shared);
    }
}

fn res(kind: &str) -> Resource {
    store::resource_of_kind(kind).unwrap_or(store::RESOURCES[0])
}

fn tick(shared: &Shared) {
    let now = shared.now_time();
    let now_s = format_time(now);
    let mut store = shared.lock();
    services(&mut store);
    for d in store.list(res("Deployment"), None) {
        deployment(shared, &mut store, d, now, &now_s);
    }
    for rs in store.list(res("ReplicaSet"), None) {
        replica_set(&mut store, rs, now, &now_s);
    }
    for pod in store.list(res("Pod"), None) {
        kubelet(shared, &mut store, pod, now, &now_s);
    }
}

fn services(store: &mut Store) {
    for (i, mut svc) in store.list(res("Service"), None).into_iter().enumerate() {
        if svc["spec"]["clusterIP"].is_null() {
            svc["spec"]["clusterIP"] = json!(format!("10.96.0.{}", 10 + i));
            svc["spec"]["clusterIPs"] = json!([svc["spec"]["clusterIP"].clone()]);
            if svc["spec"]["type"] == "LoadBalancer" {
                svc["status"]["loadBalancer"] = json!({});
            }
            let ns = svc["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            store.update(res("Service"), &ns, svc);
        }
    }
}

/// Stores a changed object as `manager` writes it, its ownership recorded (status through the
/// status subresource, so appliers of the spec never conflict with it).
fn write_as(
    store: &mut Store,
    resource: Resource,
    ns: &str,
    object: Value,
    manager: &str,
    now: &str,
) -> Value {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let live = store.get(resource, ns, name);
    let writer = ssa::Writer {
        manager,
        subresource: None,
        api_version: &resource.api_version(),
        now,
    };
    let object = ssa::controller_write(live, object, &writer);
    store.update(resource, ns, object)
}

/// Creates an object as `manager` does, owning every field it set.
fn create_as(
    store: &mut Store,
    resource: Resource,
    ns: &str,
    object: Value,
    manager: &str,
    now: &str,
) -> Value {
    let writer = ssa::Writer {
        manager,
        subresource: None,
        api_version: &resource.api_version(),
        now,
    };
    let object = ssa::controller_write(None, object, &writer);
    store.create(resource, ns, object, now.to_string())
}

fn seconds_since(t: &Value, now: jiff::Timestamp) -> f64 {
    t.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map_or(0.0, |t| now.duration_since(t).as_secs_f64())
}

fn owned_by<'a>(objects: &'a [Value], uid: &Value) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| {
        o["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| &r["uid"] == uid))
    })
}

fn revision(o: &Value) -> i64 {
    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// `25%` of 4 rounded up or down, or a plain integer.
fn resolve(value: &Value, total: i64, default: &str, round_up: bool) -> i64 {
    let v = if value.is_null() {
        json!(default)
    } else {
        value.clone()
    };
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
            let raw = pct * total as f64 / 100.0;
            (if round_up { raw.ceil() } else { raw.floor() }) as i64
        }
        _ => 0,
    }
}

fn owner_ref(o: &Value, kind: &str, api_version: &str) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": o["metadata"]["name"], "uid": o["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}])
}

#[allow(clippy::too_many_arguments)]
fn emit(
    store: &mut Store,
    shared_now: &str,
    ns: &str,
    involved: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    type_: &str,
    component: &str,
    count: i64,
) {
    let object_name = involved["metadata"]["name"].as_str().unwrap_or_default();
    // `reason` may carry a suffix that keeps distinct events apart: `ScalingReplicaSet-<rs>-<n>`.
    let name = format!("{object_name}.{}", reason.to_lowercase());
    let reason = reason.split_once('-').map_or(reason, |(r, _)| r);
    let events = res("Event");
    match store.get(events, ns, &name).cloned() {
        Some(mut e) => {
            if e["count"].as_i64() == Some(count) && e["message"] == message {
                return;
            }
            e["count"] = json!(count);
            e["message"] = json!(message);
            e["lastTimestamp"] = json!(shared_now);
            store.update(events, ns, e);
        }
        None => {
            let e = json!({
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": {"kind": kind, "namespace": ns, "name": object_name, "uid": involved["metadata"]["uid"], "apiVersion": involved["apiVersion"]},
                "reason": reason, "message": message, "type": type_, "count": count,
                "source": {"component": component}, "reportingComponent": component,
                "firstTimestamp": shared_now, "lastTimestamp": shared_now,
            });
            store.create(events, ns, e, shared_now.to_string());
        }
    }
}

fn deployment(
    _shared: &Shared,
    store: &mut Store,
    mut d: Value,
    now: jiff::Timestamp,
    now_s: &str,
) {
    let ns = d["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = d["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = d["metadata"]["uid"].clone();
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let template = d["spec"]["template"].clone();
    let hash = hex::encode(&Sha256::digest(normalized(&template).to_string().as_bytes())[..5]);
    let all_rs = store.list(res("ReplicaSet"), Some(&ns));
    let owned: Vec<Value> = owned_by(&all_rs, &uid).cloned().collect();
    let max_rev = owned.iter().map(revision).max().unwrap_or(0);
    let new_generation = d["status"]["observedGeneration"].as_i64() != Some(generation);
    let mut progressed = false;
    let mut reason = "ReplicaSetUpdated";

    let mut new_rs = match owned
        .iter()
        .find(|rs| rs["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
        .cloned()
    {
        Some(mut rs) => {
            if revision(&rs) < max_rev {
                // The template went back to an old ReplicaSet's (a rollback): it becomes the newest revision.
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                    json!((max_rev + 1).to_string());
                rs = write_as(store, res("ReplicaSet"), &ns, rs, CONTROLLER_MANAGER, now_s);
                progressed = true;
                reason = "FoundNewReplicaSet";
            }
            rs
        }
        None => {
            let mut labels = template["metadata"]["labels"].clone();
            labels["pod-template-hash"] = json!(hash);
            let mut rs_template = template.clone();
            rs_template["metadata"]["labels"] = labels.clone();
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let rs = json!({
                "metadata": {"name": format!("{name}-{hash}"), "namespace": ns, "labels": labels,
                    "annotations": {"deployment.kubernetes.io/revision": (max_rev + 1).to_string(),
                        "deployment.kubernetes.io/desired-replicas": desired.to_string()},
                    "ownerReferences": owner_ref(&d, "Deployment", "apps/v1")},
                "spec": {"replicas": 0, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0), "selector": selector, "template": rs_template},
                "status": {"replicas": 0},
            });
            progressed = true;
            reason = "NewReplicaSetCreated";
            create_as(store, res("ReplicaSet"), &ns, rs, CONTROLLER_MANAGER, now_s)
        }
    };
    let new_name = new_rs["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let olds: Vec<Value> = store
        .list(res("ReplicaSet"), Some(&ns))
        .into_iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["uid"] == uid))
                && rs["metadata"]["name"] != new_name.as_str()
        })
        .collect();

    let strategy = &d["spec"]["strategy"];
    let recreate = strategy["type"] == "Recreate";
    let mut surge = resolve(&strategy["rollingUpdate"]["maxSurge"], desired, "25%", true);
    let mut unavailable = resolve(
        &strategy["rollingUpdate"]["maxUnavailable"],
        desired,
        "25%",
        false,
    );
    if recreate {
        surge = 0;
        unavailable = desired;
    }
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    let spec_replicas = |rs: &Value| rs["spec"]["replicas"].as_i64().unwrap_or(0);
    let total: i64 = spec_replicas(&new_rs) + olds.iter().map(spec_replicas).sum::<i64>();
    let new_current = spec_replicas(&new_rs);
    // Scale up the new ReplicaSet within maxSurge.
    let max_total = desired + surge;
    let mut target_new = new_current;
    if new_current > desired {
        target_new = desired;
    } else if new_current < desired && total < max_total {
        target_new = desired.min(new_current + (max_total - total));
    }
    if recreate
        && olds
            .iter()
            .any(|o| o["status"]["replicas"].as_i64().unwrap_or(0) > 0)
    {
        target_new = new_current;
    }
    if target_new != new_current {
        new_rs["spec"]["replicas"] = json!(target_new);
        new_rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
            json!(desired.to_string());
        new_rs = write_as(
            store,
            res("ReplicaSet"),
            &ns,
            new_rs,
            CONTROLLER_MANAGER,
            now_s,
        );
        emit(
            store,
            now_s,
            &ns,
            &d,
            "Deployment",
            &format!("ScalingReplicaSet-{new_name}-{target_new}"),
            &format!(
                "Scaled {} replica set {new_name} from {new_current} to {target_new}",
                if target_new > new_current {
                    "up"
                } else {
                    "down"
                }
            ),
            "Normal",
            "deployment-controller",
            1,
        );
        progressed = true;
    }
    // Scale old ReplicaSets down as far as availability allows.
    let min_available = desired - unavailable;
    let available_of = |rs: &Value| rs["status"]["availableReplicas"].as_i64().unwrap_or(0);
    let all_available: i64 = available_of(&new_rs) + olds.iter().map(available_of).sum::<i64>();
    let new_unavailable = (spec_replicas(&new_rs) - available_of(&new_rs)).max(0);
    let total_now: i64 = spec_replicas(&new_rs) + olds.iter().map(spec_replicas).sum::<i64>();
    let mut can_down = if recreate {
        i64::MAX
    } else {
        (total_now - min_available - new_unavailable).max(0).min(
            (all_available - min_available).max(0)
                + (total_now - all_available - new_unavailable).max(0),
        )
    };
    let mut olds_sorted = olds.clone();
    olds_sorted.sort_by_key(revision);
    for mut old in olds_sorted {
        let current = spec_replicas(&old);
        if current == 0 || can_down == 0 {
            continue;
        }
        let down = current.min(can_down);
        can_down -= down;
        old["spec"]["replicas"] = json!(current - down);
        let old_name = old["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        write_as(
            store,
            res("ReplicaSet"),
            &ns,
            old,
            CONTROLLER_MANAGER,
            now_s,
        );
        emit(
            store,
            now_s,
            &ns,
            &d,
            "Deployment",
            &format!("ScalingReplicaSet-{old_name}-{}", current - down),
            &format!(
                "Scaled down replica set {old_name} from {current} to {}",
                current - down
            ),
            "Normal",
            "deployment-controller",
            1,
        );
        progressed = true;
    }

    // Status, as the controller computes it.
    let sets: Vec<Value> = store
        .list(res("ReplicaSet"), Some(&ns))
        .into_iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["uid"] == uid))
        })
        .collect();
    let sum = |field: &str| {
        sets.iter()
            .map(|rs| rs["status"][field].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    let new_now = sets
        .iter()
        .find(|rs| rs["metadata"]["name"] == new_name.as_str())
        .cloned()
        .unwrap_or(new_rs);
    let replicas = sum("replicas");
    let updated = new_now["status"]["replicas"].as_i64().unwrap_or(0);
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let old_status = d["status"].clone();
    if old_status["updatedReplicas"].as_i64() != Some(updated)
        || old_status["availableReplicas"].as_i64() != Some(available)
        || old_status["readyReplicas"].as_i64() != Some(ready)
    {
        progressed = true;
    }
    if new_generation {
        progressed = true;
        if reason == "ReplicaSetUpdated" {
            reason = "FoundNewReplicaSet";
        }
    }
    let complete = updated == desired && replicas == desired && available == desired;
    let conditions = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let old_progressing = conditions
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned();
    let deadline = d["spec"]["progressDeadlineSeconds"]
        .as_f64()
        .unwrap_or(600.0);
    let progressing = if complete {
        keep_time(
            &old_progressing,
            json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{new_name}\" has successfully progressed.")}),
            now_s,
        )
    } else if progressed {
        json!({"type": "Progressing", "status": "True", "reason": reason, "message": format!("ReplicaSet \"{new_name}\" is progressing."), "lastUpdateTime": now_s, "lastTransitionTime": old_progressing.as_ref().filter(|c| c["status"] == "True").map_or(json!(now_s), |c| c["lastTransitionTime"].clone())})
    } else {
        match &old_progressing {
            Some(c)
                if c["reason"] != "ProgressDeadlineExceeded"
                    && seconds_since(&c["lastUpdateTime"], now) > deadline =>
            {
                json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": format!("ReplicaSet \"{new_name}\" has timed out progressing."), "lastUpdateTime": now_s, "lastTransitionTime": now_s})
            }
            Some(c) => c.clone(),
            None => {
                json!({"type": "Progressing", "status": "True", "reason": reason, "message": format!("ReplicaSet \"{new_name}\" is progressing."), "lastUpdateTime": now_s, "lastTransitionTime": now_s})
            }
        }
    };
    let is_available = available >= min_available;
    let old_available = conditions
        .iter()
        .find(|c| c["type"] == "Available")
        .cloned();
    let available_cond = keep_time(
        &old_available,
        if is_available {
            json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."})
        } else {
            json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."})
        },
        now_s,
    );
    let mut status = json!({
        "observedGeneration": generation, "replicas": replicas, "updatedReplicas": updated,
        "readyReplicas": ready, "availableReplicas": available,
        "conditions": [available_cond, progressing],
    });
    if desired - available > 0 {
        status["unavailableReplicas"] = json!(desired - available);
    }
    let mut annotations = d["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations["deployment.kubernetes.io/revision"] = json!(revision(&new_now).to_string());
    if d["status"] != status || d["metadata"]["annotations"] != annotations {
        d["status"] = status;
        d["metadata"]["annotations"] = annotations;
        write_as(store, res("Deployment"), &ns, d, CONTROLLER_MANAGER, now_s);
    }
}

/// The template without what clients add or drop in transit (nulls, empty maps,
/// `creationTimestamp: null`), so a template restored by `kubectl rollout undo` hashes
/// like the original, as it does on a real cluster.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "creationTimestamp")
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// A condition keeps its timestamps while its status and reason stay the same.
fn keep_time(old: &Option<Value>, mut new: Value, now_s: &str) -> Value {
    match old {
        Some(o) if o["status"] == new["status"] && o["reason"] == new["reason"] => {
            new["lastUpdateTime"] = o["lastUpdateTime"].clone();
            new["lastTransitionTime"] = o["lastTransitionTime"].clone();
        }
        _ => {
            new["lastUpdateTime"] = json!(now_s);
            new["lastTransitionTime"] = json!(now_s);
        }
    }
    new
}

fn replica_set(store: &mut Store, mut rs: Value, now: jiff::Timestamp, now_s: &str) {
    let ns = rs["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = rs["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = rs["metadata"]["uid"].clone();
    let wanted = rs["spec"]["replicas"].as_i64().unwrap_or(1);
    let all_pods = store.list(res("Pod"), Some(&ns));
    let mut pods: Vec<Value> = owned_by(&all_pods, &uid).cloned().collect();
    let mut seq = store.revision();
    while (pods.len() as i64) < wanted {
        seq += 1;
        let suffix: String =
            hex::encode(Sha256::digest(format!("{name}{seq}").as_bytes()))[..5].to_string();
        let pod_name = format!("{name}-{suffix}");
        let pod = json!({
            "metadata": {"name": pod_name, "namespace": ns, "labels": rs["spec"]["template"]["metadata"]["labels"], "annotations": rs["spec"]["template"]["metadata"]["annotations"], "ownerReferences": owner_ref(&rs, "ReplicaSet", "apps/v1")},
            "spec": rs["spec"]["template"]["spec"],
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        });
        let created = create_as(store, res("Pod"), &ns, pod, CONTROLLER_MANAGER, now_s);
        emit(
            store,
            now_s,
            &ns,
            &rs,
            "ReplicaSet",
            &format!("SuccessfulCreate-{pod_name}"),
            &format!("Created pod: {pod_name}"),
            "Normal",
            "replicaset-controller",
            1,
        );
        pods.push(created);
    }
    if (pods.len() as i64) > wanted {
        // Delete not-ready pods first, then the newest.
        pods.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
            )
        });
        let extra = pods.len() - wanted as usize;
        for p in pods.drain(..extra) {
            let pod_name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            store.delete(res("Pod"), &ns, &pod_name);
            emit(
                store,
                now_s,
                &ns,
                &rs,
                "ReplicaSet",
                &format!("SuccessfulDelete-{pod_name}"),
                &format!("Deleted pod: {pod_name}"),
                "Normal",
                "replicaset-controller",
                1,
            );
        }
    }
    let min_ready = rs["spec"]["minReadySeconds"].as_f64().unwrap_or(0.0);
    let ready = pods.iter().filter(|p| is_ready(p)).count() as i64;
    let available = pods
        .iter()
        .filter(|p| is_ready(p) && ready_for(p, now) >= min_ready)
        .count() as i64;
    let status = json!({"replicas": pods.len(), "fullyLabeledReplicas": pods.len(), "readyReplicas": ready, "availableReplicas": available, "observedGeneration": rs["metadata"]["generation"]});
    if rs["status"] != status {
        rs["status"] = status;
        write_as(store, res("ReplicaSet"), &ns, rs, CONTROLLER_MANAGER, now_s);
    }
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn ready_for(pod: &Value, now: jiff::Timestamp) -> f64 {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map_or(0.0, |c| seconds_since(&c["lastTransitionTime"], now))
}

fn kubelet(shared: &Shared, store: &mut Store, mut pod: Value, now: jiff::Timestamp, now_s: &str) {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod_name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let container = pod["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap_or("app")
        .to_string();
    let image = pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let age = seconds_since(&pod["metadata"]["creationTimestamp"], now);
    let created = pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_default()
        .parse::<jiff::Timestamp>()
        .unwrap_or(now);
    let at = |secs: f64| {
        let later = created.checked_add(Duration::from_secs_f64(secs.max(0.0)));
        format_time(later.unwrap_or(created))
    };
    let start = shared.options.pod_start_delay.as_secs_f64();
    let ready_after = start + shared.options.pod_ready_delay.as_secs_f64();
    let fault = shared.fault(&image);
    let mut emits: Vec<(String, String, &str, &str, i64)> = Vec::new();
    let status = if fault == Some(Fault::Unschedulable) {
        emits.push(("FailedScheduling".into(), "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.".into(), "Warning", "default-scheduler", 1));
        json!({"phase": "Pending", "qosClass": "Burstable", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.", "lastTransitionTime": at(0.0)}]})
    } else {
        pod["spec"]["nodeName"] = json!("fake-node-1");
        emits.push((
            "Scheduled".into(),
            format!("Successfully assigned {ns}/{pod_name} to fake-node-1"),
            "Normal",
            "default-scheduler",
            1,
        ));
        let base_conditions = |ready: bool, since: f64| {
            json!([
                {"type": "Initialized", "status": "True", "lastTransitionTime": at(0.0)},
                {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": at(since)},
                {"type": "ContainersReady", "status": if ready { "True" } else { "False" }, "lastTransitionTime": at(since)},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": at(0.0)},
            ])
        };
        let waiting = |reason: &str, message: &str, restarts: i64, last: Value| {
            json!({"name": container, "image": image, "imageID": "", "ready": false, "restartCount": restarts, "started": false,
            "state": {"waiting": {"reason": reason, "message": message}}, "lastState": last})
        };
        // The kubelet retries a failing container start on each sync; events count the tries.
        let tries = (1.0 + (age - start).max(0.0) / RESTART_EVERY).floor() as i64;
        if age < start {
            json!({"phase": "Pending", "qosClass": "Burstable", "conditions": base_conditions(false, 0.0), "containerStatuses": [waiting("ContainerCreating", "", 0, json!({}))]})
        } else if fault == Some(Fault::InvalidImageName) {
            // The reference is rejected before any pull, as the kubelet's image manager does.
            let message = format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
            );
            emits.push((
                "InspectFailed".into(),
                message.clone(),
                "Warning",
                "kubelet",
                tries,
            ));
            json!({"phase": "Pending", "qosClass": "Burstable", "conditions": base_conditions(false, 0.0), "containerStatuses": [waiting("InvalidImageName", &message, 0, json!({}))]})
        } else {
            emits.push((
                "Pulling".into(),
                format!("Pulling image \"{image}\""),
                "Normal",
                "kubelet",
                1,
            ));
            match &fault {
                Some(Fault::ImagePull) => {
                    let pulls = (1.0 + (age - start) / RESTART_EVERY).floor() as i64;
                    let pull_error = format!(
                        "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
                    );
                    emits.push((
                        "Failed".into(),
                        pull_error.clone(),
                        "Warning",
                        "kubelet",
                        pulls,
                    ));
                    let (reason, message) = if age - start < 2.0 {
                        ("ErrImagePull", pull_error)
                    } else {
                        (
                            "ImagePullBackOff",
                            format!("Back-off pulling image \"{image}\""),
                        )
                    };
                    if reason == "ImagePullBackOff" {
                        emits.push((
                            "BackOff".into(),
                            format!("Back-off pulling image \"{image}\""),
                            "Normal",
                            "kubelet",
                            pulls,
                        ));
                    }
                    json!({"phase": "Pending", "qosClass": "Burstable", "conditions": base_conditions(false, 0.0), "containerStatuses": [waiting(reason, &message, 0, json!({}))]})
                }
                Some(Fault::CreateContainerConfigError { message }) => {
                    // The image is pulled; building the container's config (env from a
                    // missing Secret, say) fails, so the container is never created.
                    emits.push((
                        "Pulled".into(),
                        format!("Successfully pulled image \"{image}\""),
                        "Normal",
                        "kubelet",
                        1,
                    ));
                    emits.push((
                        "Failed".into(),
                        format!("Error: {message}"),
                        "Warning",
                        "kubelet",
                        tries,
                    ));
                    json!({"phase": "Pending", "qosClass": "Burstable", "conditions": base_conditions(false, 0.0), "containerStatuses": [waiting("CreateContainerConfigError", message, 0, json!({}))]})
                }
                Some(Fault::CrashLoop { exit_code, log }) => {
                    let restarts = ((age - start) / RESTART_EVERY).floor() as i64 + 1;
                    emits.push((
                        "Pulled".into(),
                        format!("Successfully pulled image \"{image}\""),
                        "Normal",
                        "kubelet",
                        restarts,
                    ));
                    emits.push((
                        "Created".into(),
                        format!("Created container {container}"),
                        "Normal",
                        "kubelet",
                        restarts,
                    ));
                    emits.push((
                        "Started".into(),
                        format!("Started container {container}"),
                        "Normal",
                        "kubelet",
                        restarts,
                    ));
                    emits.push(("BackOff".into(), format!("Back-off restarting failed container {container} in pod {pod_name}_{ns}"), "Warning", "kubelet", restarts));
                    let mut last = json!({"terminated": {"exitCode": exit_code, "reason": "Error", "startedAt": at(age - 1.0), "finishedAt": at(age)}});
                    // With FallbackToLogsOnError the kubelet takes the message from the log's tail.
                    if pod["spec"]["containers"][0]["terminationMessagePolicy"]
                        == "FallbackToLogsOnError"
                    {
                        last["terminated"]["message"] = json!(
                            log.lines()
                                .rev()
                                .take(5)
                                .collect::<Vec<_>>()
                                .into_iter()
                                .rev()
                                .collect::<Vec<_>>()
                                .join("\n")
                        );
                    }
                    json!({"phase": "Running", "qosClass": "Burstable", "conditions": base_conditions(false, 0.0), "containerStatuses": [waiting("CrashLoopBackOff", &format!("back-off 10s restarting failed container={container} pod={pod_name}_{ns}"), restarts, last)]})
                }
                other => {
                    emits.push((
                        "Pulled".into(),
                        format!("Successfully pulled image \"{image}\""),
                        "Normal",
                        "kubelet",
                        1,
                    ));
                    emits.push((
                        "Created".into(),
                        format!("Created container {container}"),
                        "Normal",
                        "kubelet",
                        1,
                    ));
                    emits.push((
                        "Started".into(),
                        format!("Started container {container}"),
                        "Normal",
                        "kubelet",
                        1,
                    ));
                    let ready_at = match other {
                        Some(Fault::SlowStart(extra)) => ready_after + extra.as_secs_f64(),
                        Some(Fault::NeverReady) => f64::INFINITY,
                        _ => ready_after,
                    };
                    let ready = age >= ready_at;
                    // The probe runs after its initialDelaySeconds, every periodSeconds (2 s
                    // without a readinessProbe).
                    let probe = &pod["spec"]["containers"][0]["readinessProbe"];
                    let (delay, every) = if probe.is_object() {
                        (
                            probe["initialDelaySeconds"].as_f64().unwrap_or(0.0),
                            probe["periodSeconds"].as_f64().unwrap_or(10.0).max(1.0),
                        )
                    } else {
                        (0.0, PROBE_EVERY)
                    };
                    if other == &Some(Fault::NeverReady) && age - start - delay >= every {
                        let failures = ((age - start - delay) / every).floor() as i64;
                        emits.push((
                            "Unhealthy".into(),
                            "Readiness probe failed: HTTP probe failed with statuscode: 503".into(),
                            "Warning",
                            "kubelet",
                            failures,
                        ));
                    }
                    json!({"phase": "Running", "qosClass": "Burstable", "podIP": "10.244.0.10", "hostIP": "10.0.0.2", "startTime": at(0.0),
                        "conditions": base_conditions(ready, if ready { ready_at } else { 0.0 }),
                        "containerStatuses": [{"name": container, "image": image, "imageID": format!("{image}@sha256:fake"), "ready": ready, "started": true, "restartCount": 0,
                            "state": {"running": {"startedAt": at(start)}}, "lastState": {}}]})
                }
            }
        }
    };
    for (reason, message, type_, component, count) in emits {
        emit(
            store, now_s, &ns, &pod, "Pod", &reason, &message, type_, component, count,
        );
    }
    if pod["status"] != status
        || pod["spec"]["nodeName"]
            != store
                .get(res("Pod"), &ns, &pod_name)
                .map_or(Value::Null, |p| p["spec"]["nodeName"].clone())
    {
        pod["status"] = status;
        write_as(store, res("Pod"), &ns, pod, KUBELET, now_s);
    }
}
