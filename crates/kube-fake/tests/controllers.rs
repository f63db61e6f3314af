//! The simulated deployment and ReplicaSet controllers, sampled over the socket while they
//! work: a rolling update stays within `maxSurge` and `maxUnavailable` at every instant, and
//! `minReadySeconds` holds back `availableReplicas`.

mod common;

use std::time::{Duration, Instant};

use common::Client;
use kube_fake::{FakeCluster, Options};
use serde_json::{Value, json};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const REPLICA_SETS: &str = "/apis/apps/v1/namespaces/default/replicasets";
const PODS: &str = "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb";

async fn start(clock_scale: f64) -> (FakeCluster, Client) {
    let cluster = FakeCluster::start(Options {
        clock_scale,
        ..Options::default()
    })
    .await
    .unwrap();
    let client = Client::new(&cluster.url());
    (cluster, client)
}

fn deployment(image: &str, replicas: i64, strategy: Value, min_ready_seconds: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "minReadySeconds": min_ready_seconds, "strategy": strategy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}})
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The deployment has rolled out `image` completely, as `kubectl rollout status` judges it.
fn rolled_out(d: &Value, image: &str, replicas: i64) -> bool {
    let s = &d["status"];
    d["spec"]["template"]["spec"]["containers"][0]["image"] == image
        && s["observedGeneration"] == d["metadata"]["generation"]
        && s["updatedReplicas"] == replicas
        && s["replicas"] == replicas
        && s["availableReplicas"] == replicas
}

/// What one sample saw: pods (all, ready, running the new image) and the ReplicaSets'
/// summed `spec.replicas` and `status.availableReplicas`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    pods: i64,
    ready: i64,
    new_pods: i64,
    rs_wanted: i64,
    rs_available: i64,
}

async fn sample(client: &Client, new_image: &str) -> Sample {
    let pods = client.get(PODS).await.json();
    let pods = pods["items"].as_array().unwrap();
    let sets = client.get(REPLICA_SETS).await.json();
    let sets = sets["items"].as_array().unwrap();
    let sum =
        |f: &dyn Fn(&Value) -> &Value| sets.iter().map(|rs| f(rs).as_i64().unwrap_or(0)).sum();
    Sample {
        pods: pods.len() as i64,
        ready: pods.iter().filter(|p| is_ready(p)).count() as i64,
        new_pods: pods
            .iter()
            .filter(|p| p["spec"]["containers"][0]["image"] == new_image)
            .count() as i64,
        rs_wanted: sum(&|rs| &rs["spec"]["replicas"]),
        rs_available: sum(&|rs| &rs["status"]["availableReplicas"]),
    }
}

async fn wait_rolled_out(client: &Client, image: &str, replicas: i64) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let d = client.get(&format!("{DEPLOYMENTS}/web")).await.json();
        if rolled_out(&d, image, replicas) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{image} never rolled out");
}

/// Rolls `web` from v1 to v2 and samples until done; checks the bounds at every sample.
async fn roll_and_check(
    replicas: i64,
    max_surge: i64,
    max_unavailable: i64,
    min_ready_seconds: i64,
) -> Vec<Sample> {
    let (_cluster, client) = start(10.0).await;
    let strategy = json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable}});
    let reply = client
        .post(
            DEPLOYMENTS,
            &deployment("example.com/web:1", replicas, strategy, min_ready_seconds),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    wait_rolled_out(&client, "example.com/web:1", replicas).await;

    let reply = client
        .patch(
            &format!("{DEPLOYMENTS}/web"),
            "application/merge-patch+json",
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "example.com/web:2"}]}}}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let mut samples = Vec::new();
    let started = Instant::now();
    loop {
        let s = sample(&client, "example.com/web:2").await;
        samples.push(s);
        let at = samples.len();
        assert!(
            s.pods <= replicas + max_surge,
            "sample {at}: {} pods, more than replicas + maxSurge = {}: {s:?}",
            s.pods,
            replicas + max_surge
        );
        assert!(
            s.rs_wanted <= replicas + max_surge,
            "sample {at}: the ReplicaSets want {} pods: {s:?}",
            s.rs_wanted
        );
        assert!(
            s.ready >= replicas - max_unavailable,
            "sample {at}: {} ready pods, fewer than replicas - maxUnavailable = {}: {s:?}",
            s.ready,
            replicas - max_unavailable
        );
        assert!(
            s.rs_available >= replicas - max_unavailable,
            "sample {at}: the ReplicaSets count {} available: {s:?}",
            s.rs_available
        );
        let d = client.get(&format!("{DEPLOYMENTS}/web")).await.json();
        if rolled_out(&d, "example.com/web:2", replicas)
            && s.new_pods == replicas
            && s.pods == replicas
        {
            return samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the rollout never finished; last sample {s:?}, deployment status {:#}",
            d["status"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surging_rolling_update_never_exceeds_max_surge_nor_loses_availability() {
    let samples = roll_and_check(4, 1, 0, 0).await;
    assert!(
        samples.iter().any(|s| s.pods == 5),
        "the rollout used its surge: {samples:?}"
    );
    assert!(
        samples.iter().any(|s| s.new_pods > 0 && s.new_pods < 4),
        "old and new pods ran side by side: {samples:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_without_surge_stays_within_max_unavailable() {
    let samples = roll_and_check(4, 0, 1, 0).await;
    assert!(
        samples.iter().any(|s| s.ready == 3),
        "the rollout used its unavailability budget: {samples:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_with_min_ready_seconds_waits_for_new_pods_to_be_available() {
    // Old pods go only once new ones have been ready for 5 s (0.5 s real), not merely ready.
    let samples = roll_and_check(4, 1, 0, 5).await;
    assert!(
        samples.iter().any(|s| s.ready == 5 && s.rs_available == 4),
        "a new pod was ready but not yet available, and nothing old was removed: {samples:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ready_seconds_delays_available_replicas() {
    // 20 simulated seconds per real second: 30 s of minReadySeconds take 1.5 s.
    let (cluster, client) = start(20.0).await;
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let created_at = cluster.elapsed();
    let reply = client
        .post(
            DEPLOYMENTS,
            &deployment("example.com/web:1", 2, strategy, 30),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    let mut ready_but_unavailable = false;
    let started = Instant::now();
    loop {
        let d = client.get(&format!("{DEPLOYMENTS}/web")).await.json();
        let since_created = cluster.elapsed() - created_at;
        let status = &d["status"];
        let available = status["availableReplicas"].as_i64().unwrap_or(0);
        if status["readyReplicas"] == 2 && available == 0 {
            ready_but_unavailable = true;
            let condition = status["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Available")
                .unwrap();
            assert_eq!(condition["status"], "False", "{condition}");
            assert_eq!(condition["reason"], "MinimumReplicasUnavailable");
        }
        if available > 0 {
            // Pods are ready 1.5 s (simulated) after creation, then count only 30 s later.
            assert!(
                since_created >= Duration::from_secs(30),
                "available after only {since_created:?}: {status:#}"
            );
        }
        if available == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never available: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        ready_but_unavailable,
        "a sample saw the pods ready but not yet available"
    );
    let rs = client.get(REPLICA_SETS).await.json();
    assert_eq!(rs["items"][0]["spec"]["minReadySeconds"], 30);
    assert_eq!(rs["items"][0]["status"]["availableReplicas"], 2);
}
