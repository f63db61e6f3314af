//! Injected faults, seen through the API as a client sees them: the pod's container status
//! and the events the kubelet would record.

use std::time::Duration;

mod common;

use common::Client;
use kube_fake::{FakeCluster, Fault, Options};
use serde_json::{Value, json};

async fn fast() -> FakeCluster {
    FakeCluster::start(Options {
        clock_scale: 20.0,
        ..Options::default()
    })
    .await
    .unwrap()
}

async fn create_pod(cluster: &FakeCluster, name: &str, image: &str) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "web", "image": image}]}});
    let reply = Client::new(&cluster.url())
        .post("/api/v1/namespaces/default/pods", &pod)
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// Waits (up to 10 s real time) until the pod's first container waits with `reason`.
async fn wait_for_waiting_reason(cluster: &FakeCluster, pod: &str, reason: &str) -> Value {
    let path = format!("/api/v1/namespaces/default/pods/{pod}");
    for _ in 0..250 {
        let p = cluster.get_json(&path).expect("the pod exists");
        if p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == reason {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!(
        "pod {pod} never waited with reason {reason}: {:#}",
        cluster.get_json(&path).unwrap()["status"]
    );
}

async fn pod_events(cluster: &FakeCluster, pod: &str) -> Vec<Value> {
    let list = Client::new(&cluster.url())
        .get(&format!(
            "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name={pod}"
        ))
        .await
        .json();
    list["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_image_name_waits_with_inspect_failed_and_never_pulls() {
    let cluster = fast().await;
    cluster.inject("example.com/Web:1", Fault::InvalidImageName);
    create_pod(&cluster, "bad-ref", "example.com/Web:1").await;

    let pod = wait_for_waiting_reason(&cluster, "bad-ref", "InvalidImageName").await;
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(
        status["state"]["waiting"]["message"],
        "Failed to apply default image tag \"example.com/Web:1\": couldn't parse image name \"example.com/Web:1\": invalid reference format"
    );
    assert_eq!(status["ready"], false);
    assert_eq!(pod["status"]["phase"], "Pending");

    let events = pod_events(&cluster, "bad-ref").await;
    let inspect = events
        .iter()
        .find(|e| e["reason"] == "InspectFailed")
        .unwrap_or_else(|| panic!("an InspectFailed event: {events:#?}"));
    assert_eq!(inspect["type"], "Warning");
    assert_eq!(inspect["source"]["component"], "kubelet");
    assert_eq!(inspect["message"], status["state"]["waiting"]["message"]);
    assert!(
        !events.iter().any(|e| e["reason"] == "Pulling"),
        "no pull is tried for a reference that does not parse: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_container_config_error_waits_with_a_failed_event() {
    let cluster = fast().await;
    cluster.inject(
        "example.com/web:1",
        Fault::CreateContainerConfigError {
            message: "secret \"db\" not found".into(),
        },
    );
    create_pod(&cluster, "no-secret", "example.com/web:1").await;

    let pod = wait_for_waiting_reason(&cluster, "no-secret", "CreateContainerConfigError").await;
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(
        status["state"]["waiting"]["message"],
        "secret \"db\" not found"
    );
    assert_eq!(status["ready"], false);
    assert_eq!(pod["status"]["phase"], "Pending");

    let events = pod_events(&cluster, "no-secret").await;
    let failed = events
        .iter()
        .find(|e| e["reason"] == "Failed")
        .unwrap_or_else(|| panic!("a Failed event: {events:#?}"));
    assert_eq!(failed["type"], "Warning");
    assert_eq!(failed["message"], "Error: secret \"db\" not found");

    // The container never ran, so there is no log; the error says why, as the kubelet does.
    let logs = Client::new(&cluster.url())
        .get("/api/v1/namespaces/default/pods/no-secret/log")
        .await;
    assert_eq!(logs.status, 400);
    assert_eq!(
        logs.json()["message"],
        "container \"web\" in pod \"no-secret\" is waiting to start: CreateContainerConfigError"
    );
}
