//! Watches from a resourceVersion, over plain HTTP: replay of what happened since, 410
//! `Expired` for a version older than the history, and no silent gaps for a slow watcher.

mod common;

use std::time::Duration;

use common::{Client, Watch};
use kube_fake::{FakeCluster, Options};
use serde_json::{Value, json};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const WAIT: Duration = Duration::from_secs(5);

async fn start() -> (FakeCluster, Client) {
    let cluster = FakeCluster::start(Options::default()).await.unwrap();
    let client = Client::new(&cluster.url());
    (cluster, client)
}

fn configmap(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

async fn create(client: &Client, ns: &str, body: Value) -> Value {
    let reply = client
        .post(&format!("/api/v1/namespaces/{ns}/configmaps"), &body)
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()
}

async fn merge_patch(client: &Client, name: &str, patch: Value) -> Value {
    let reply = client
        .patch(
            &format!("{CONFIGMAPS}/{name}"),
            "application/merge-patch+json",
            &patch,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {object}"))
}

/// `(type, name)` of the next event.
async fn next(watch: &mut Watch) -> (String, String) {
    let event = watch.next(WAIT).await.expect("an event");
    (
        event["type"].as_str().unwrap().to_string(),
        event["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn ev(kind: &str, name: &str) -> (String, String) {
    (kind.to_string(), name.to_string())
}

#[tokio::test]
async fn a_watch_from_a_resource_version_replays_every_change_after_it_then_streams() {
    let (_cluster, client) = start().await;
    create(&client, "default", configmap("before", json!({}))).await;
    let list = client.get(CONFIGMAPS).await.json();
    let listed_at = list["metadata"]["resourceVersion"].as_str().unwrap();

    // Changes between the list and the watch: a client must see them all.
    create(&client, "default", configmap("a", json!({}))).await;
    merge_patch(&client, "before", json!({"data": {"k": "v2"}})).await;
    create(&client, "kube-system", configmap("elsewhere", json!({}))).await;
    assert_eq!(client.delete(&format!("{CONFIGMAPS}/a")).await.status, 200);

    let mut watch = client
        .watch(&format!(
            "{CONFIGMAPS}?watch=true&resourceVersion={listed_at}"
        ))
        .await;
    assert_eq!(next(&mut watch).await, ev("ADDED", "a"));
    assert_eq!(next(&mut watch).await, ev("MODIFIED", "before"));
    let deleted = watch.next(WAIT).await.unwrap();
    assert_eq!(deleted["type"], "DELETED");
    assert_eq!(deleted["object"]["metadata"]["name"], "a");
    let store_rv = client.get(CONFIGMAPS).await.json()["metadata"]["resourceVersion"].clone();
    assert_eq!(
        deleted["object"]["metadata"]["resourceVersion"], store_rv,
        "a deleted object carries the deletion's resourceVersion"
    );

    // Then live changes, in order.
    create(&client, "default", configmap("live", json!({}))).await;
    assert_eq!(next(&mut watch).await, ev("ADDED", "live"));
    assert!(
        watch.next(Duration::from_millis(200)).await.is_none(),
        "the other namespace's configmap never shows"
    );
}

#[tokio::test]
async fn a_replayed_watch_honours_the_label_selector() {
    let (_cluster, client) = start().await;
    let first = create(&client, "default", configmap("web", json!({"app": "web"}))).await;
    create(&client, "default", configmap("db", json!({"app": "db"}))).await;
    merge_patch(&client, "db", json!({"data": {"k": "v2"}})).await;
    // `web` leaves the selector, then comes back: the watcher sees it go and come back.
    merge_patch(
        &client,
        "web",
        json!({"metadata": {"labels": {"app": "old"}}}),
    )
    .await;
    merge_patch(
        &client,
        "web",
        json!({"metadata": {"labels": {"app": "web"}}}),
    )
    .await;
    create(
        &client,
        "default",
        configmap("web-2", json!({"app": "web"})),
    )
    .await;

    let mut watch = client
        .watch(&format!(
            "{CONFIGMAPS}?watch=1&labelSelector=app%3Dweb&resourceVersion={}",
            rv(&first)
        ))
        .await;
    assert_eq!(next(&mut watch).await, ev("DELETED", "web"));
    assert_eq!(next(&mut watch).await, ev("ADDED", "web"));
    assert_eq!(next(&mut watch).await, ev("ADDED", "web-2"));
    assert!(watch.next(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn a_watch_without_a_resource_version_starts_with_the_current_objects() {
    let (_cluster, client) = start().await;
    create(&client, "default", configmap("a", json!({}))).await;
    let mut watch = client.watch(&format!("{CONFIGMAPS}?watch=true")).await;
    assert_eq!(next(&mut watch).await, ev("ADDED", "a"));
    merge_patch(&client, "a", json!({"data": {"k": "v2"}})).await;
    assert_eq!(next(&mut watch).await, ev("MODIFIED", "a"));
}

#[tokio::test]
async fn a_watch_from_before_the_history_gets_410_expired() {
    let (_cluster, client) = start().await;
    let first = create(&client, "default", configmap("busy", json!({}))).await;
    let mut last = first.clone();
    for i in 0..1005 {
        last = merge_patch(&client, "busy", json!({"data": {"k": i.to_string()}})).await;
    }

    let mut watch = client
        .watch(&format!(
            "{CONFIGMAPS}?watch=true&resourceVersion={}",
            rv(&first)
        ))
        .await;
    let event = watch.next(WAIT).await.expect("an ERROR event");
    assert_eq!(event["type"], "ERROR", "{event}");
    let status = &event["object"];
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], 410);
    assert_eq!(status["reason"], "Expired");
    let compacted = rv(&last) - 1000;
    assert_eq!(
        status["message"],
        format!("too old resource version: {} ({compacted})", rv(&first))
    );
    assert!(
        watch.next(Duration::from_millis(500)).await.is_none(),
        "the stream ends after the ERROR"
    );

    // The oldest version still kept is served.
    let mut watch = client
        .watch(&format!(
            "{CONFIGMAPS}?watch=true&resourceVersion={compacted}"
        ))
        .await;
    let replayed = watch.next(WAIT).await.unwrap();
    assert_eq!(replayed["type"], "MODIFIED");
    assert_eq!(rv(&replayed["object"]), compacted + 1);
}

#[tokio::test]
async fn a_slow_watcher_gets_every_change_in_order() {
    let (_cluster, client) = start().await;
    let first = create(&client, "default", configmap("c", json!({}))).await;
    let watch = client
        .watch_unread(&format!(
            "{CONFIGMAPS}?watch=true&resourceVersion={}",
            rv(&first)
        ))
        .await;
    for i in 0..900 {
        merge_patch(&client, "c", json!({"data": {"k": i.to_string()}})).await;
    }
    let mut watch = watch.start();
    for i in 0..900u64 {
        let event = watch.next(WAIT).await.expect("no change is lost");
        assert_eq!(event["type"], "MODIFIED");
        assert_eq!(rv(&event["object"]), rv(&first) + 1 + i);
        assert_eq!(event["object"]["data"]["k"], i.to_string());
    }
}

#[tokio::test]
async fn a_watcher_that_falls_behind_the_history_gets_410_not_a_gap() {
    let cluster = FakeCluster::start(Options {
        watch_history: 100,
        ..Options::default()
    })
    .await
    .unwrap();
    let client = Client::new(&cluster.url());
    let first = create(&client, "default", configmap("big", json!({}))).await;
    let unread = client
        .watch_unread(&format!(
            "{CONFIGMAPS}?watch=true&resourceVersion={}",
            rv(&first)
        ))
        .await;
    // 10 MB of changes: more than the kernel buffers (4 MB on the sending side, a few KB on
    // the unread one) hold, so the server has to stop sending while the changes go on.
    let blob = "x".repeat(25_000);
    for i in 0..400 {
        merge_patch(&client, "big", json!({"data": {"k": format!("{i}{blob}")}})).await;
    }
    let mut watch = unread.start();
    let mut expected = rv(&first) + 1;
    loop {
        let event = watch.next(WAIT).await.expect("an event or an ERROR");
        if event["type"] == "ERROR" {
            assert_eq!(event["object"]["code"], 410, "{event}");
            assert_eq!(event["object"]["reason"], "Expired");
            break;
        }
        assert_eq!(
            rv(&event["object"]),
            expected,
            "changes arrive without gaps until the ERROR"
        );
        expected += 1;
    }
    assert!(
        expected < rv(&first) + 400,
        "the watcher fell behind, so it cannot have seen everything"
    );
}
