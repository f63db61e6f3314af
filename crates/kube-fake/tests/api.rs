//! The fake's HTTP API, checked directly over the socket: patches, selectors, and errors as
//! the `Status` objects a real API server returns.

mod common;

use std::time::Duration;

use common::Client;
use kube_fake::{FakeCluster, Options};
use serde_json::{Value, json};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

async fn start() -> (FakeCluster, Client) {
    let cluster = FakeCluster::start(Options {
        clock_scale: 20.0,
        ..Options::default()
    })
    .await
    .unwrap();
    let client = Client::new(&cluster.url());
    (cluster, client)
}

fn configmap(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels}, "data": data})
}

fn deployment(name: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}})
}

async fn created(client: &Client, collection: &str, body: Value) -> Value {
    let reply = client.post(collection, &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()
}

/// Checks the common shape of a failure `Status` and returns it.
fn failure(reply: &common::Reply, code: u16, reason: &str) -> Value {
    assert_eq!(reply.status, code, "{}", reply.body);
    let status = reply.json();
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], code);
    assert_eq!(status["reason"], reason, "{status}");
    status
}

#[tokio::test]
async fn a_merge_patch_sets_and_removes_fields() {
    let (_cluster, client) = start().await;
    let before = created(
        &client,
        CONFIGMAPS,
        configmap("settings", json!({}), json!({"a": "1", "b": "2"})),
    )
    .await;
    let reply = client
        .patch(
            &format!("{CONFIGMAPS}/settings"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"tier": "web"}}, "data": {"a": "10", "b": null, "c": "3"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let after = reply.json();
    assert_eq!(after["data"], json!({"a": "10", "c": "3"}));
    assert_eq!(after["metadata"]["labels"]["tier"], "web");
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(
        client.get(&format!("{CONFIGMAPS}/settings")).await.json(),
        after
    );

    let missing = client
        .patch(
            &format!("{CONFIGMAPS}/absent"),
            "application/merge-patch+json",
            &json!({"data": {"a": "1"}}),
        )
        .await;
    failure(&missing, 404, "NotFound");
}

#[tokio::test]
async fn a_json_patch_adds_replaces_and_removes_and_a_failed_test_changes_nothing() {
    let (_cluster, client) = start().await;
    created(
        &client,
        CONFIGMAPS,
        configmap(
            "settings",
            json!({"app": "web"}),
            json!({"a": "1", "b": "2"}),
        ),
    )
    .await;
    let path = format!("{CONFIGMAPS}/settings");
    let reply = client
        .patch(
            &path,
            "application/json-patch+json",
            &json!([
                {"op": "test", "path": "/data/a", "value": "1"},
                {"op": "add", "path": "/data/c", "value": "3"},
                {"op": "replace", "path": "/data/a", "value": "10"},
                {"op": "remove", "path": "/data/b"},
                {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
            ]),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let after = reply.json();
    assert_eq!(after["data"], json!({"a": "10", "c": "3"}));
    assert_eq!(
        after["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );

    // A failing op fails the whole patch: 422, and the object is as it was.
    for ops in [
        json!([{"op": "replace", "path": "/data/a", "value": "x"},
               {"op": "test", "path": "/data/a", "value": "1"}]),
        json!([{"op": "remove", "path": "/data/absent"}]),
        json!([{"op": "replace", "path": "/data/absent", "value": "x"}]),
    ] {
        let reply = client
            .patch(&path, "application/json-patch+json", &ops)
            .await;
        let status = failure(&reply, 422, "Invalid");
        assert_eq!(
            status["message"],
            "the server rejected our request due to an error in our request"
        );
    }
    assert_eq!(client.get(&path).await.json(), after, "nothing was applied");
}

#[tokio::test]
async fn a_list_filters_by_label_selector() {
    let (_cluster, client) = start().await;
    for (name, labels) in [
        ("web", json!({"app": "web", "tier": "front"})),
        ("api", json!({"app": "api", "tier": "back"})),
        ("db", json!({"app": "db"})),
    ] {
        created(&client, CONFIGMAPS, configmap(name, labels, json!({}))).await;
    }
    async fn names(client: &Client, selector: &str) -> Vec<String> {
        let list = client
            .get(&format!("{CONFIGMAPS}?labelSelector={selector}"))
            .await
            .json();
        assert_eq!(list["kind"], "ConfigMapList");
        assert!(list["metadata"]["resourceVersion"].is_string());
        let mut names: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
    assert_eq!(names(&client, "app%3Dweb").await, ["web"]);
    assert_eq!(names(&client, "app%3D%3Dapi").await, ["api"]);
    assert_eq!(names(&client, "app!%3Dweb").await, ["api", "db"]);
    assert_eq!(names(&client, "tier").await, ["api", "web"]);
    assert_eq!(names(&client, "!tier").await, ["db"]);
    assert_eq!(names(&client, "tier,app!%3Dapi").await, ["web"]);
    assert!(names(&client, "app%3Dnone").await.is_empty());
}

#[tokio::test]
async fn a_missing_object_is_a_404_not_found_status() {
    let (_cluster, client) = start().await;
    let status = failure(
        &client.get(&format!("{DEPLOYMENTS}/nope")).await,
        404,
        "NotFound",
    );
    assert_eq!(status["message"], "deployments.apps \"nope\" not found");
    assert_eq!(
        status["details"],
        json!({"name": "nope", "group": "apps", "kind": "deployments"})
    );
    let status = failure(
        &client.delete(&format!("{CONFIGMAPS}/nope")).await,
        404,
        "NotFound",
    );
    assert_eq!(status["message"], "configmaps \"nope\" not found");
}

#[tokio::test]
async fn creating_an_existing_name_is_a_409_already_exists() {
    let (_cluster, client) = start().await;
    created(&client, DEPLOYMENTS, deployment("web", "example.com/web:1")).await;
    let status = failure(
        &client
            .post(DEPLOYMENTS, &deployment("web", "example.com/web:2"))
            .await,
        409,
        "AlreadyExists",
    );
    assert_eq!(status["message"], "deployments.apps \"web\" already exists");
    assert_eq!(status["details"]["name"], "web");
    assert_eq!(status["details"]["group"], "apps");
    assert_eq!(status["details"]["kind"], "deployments");

    created(&client, CONFIGMAPS, configmap("c", json!({}), json!({}))).await;
    let status = failure(
        &client
            .post(CONFIGMAPS, &configmap("c", json!({}), json!({})))
            .await,
        409,
        "AlreadyExists",
    );
    assert_eq!(status["message"], "configmaps \"c\" already exists");
}

#[tokio::test]
async fn an_invalid_object_is_a_422_with_the_fields_in_causes() {
    let (_cluster, client) = start().await;
    let mut bad = deployment("web", "");
    bad["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    let status = failure(&client.post(DEPLOYMENTS, &bad).await, 422, "Invalid");
    assert_eq!(
        status["message"],
        "Deployment.apps \"web\" is invalid: [spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`, spec.template.spec.containers[0].image: Required value]"
    );
    assert_eq!(status["details"]["name"], "web");
    assert_eq!(status["details"]["group"], "apps");
    assert_eq!(status["details"]["kind"], "Deployment");
    let causes: Vec<(&str, &str)> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["field"].as_str().unwrap(), c["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        causes,
        [
            ("spec.template.metadata.labels", "FieldValueInvalid"),
            (
                "spec.template.spec.containers[0].image",
                "FieldValueRequired"
            ),
        ]
    );

    let status = failure(
        &client
            .post(CONFIGMAPS, &configmap("Not_Valid", json!({}), json!({})))
            .await,
        422,
        "Invalid",
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value"),
        "{status}"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    assert!(
        client.get(DEPLOYMENTS).await.json()["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing invalid was stored"
    );
}

#[tokio::test]
async fn a_replace_with_a_stale_resource_version_is_a_409_conflict() {
    let (cluster, client) = start().await;
    let first = created(&client, DEPLOYMENTS, deployment("web", "example.com/web:1")).await;
    // Wait until the controller has written the status, so `first` is stale.
    let path = format!("{DEPLOYMENTS}/web");
    for _ in 0..100 {
        let live = cluster.get_json(&path).unwrap();
        if live["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(
        cluster.get_json(&path).unwrap()["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"],
        "the controller never wrote the Deployment's status"
    );
    let mut stale = first.clone();
    stale["spec"]["replicas"] = json!(3);
    let status = failure(&client.put(&path, &stale).await, 409, "Conflict");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(
        status["details"],
        json!({"name": "web", "group": "apps", "kind": "deployments"})
    );
    assert_eq!(
        cluster.get_json(&path).unwrap()["spec"]["replicas"],
        1,
        "the stale write was refused"
    );

    // A merge patch that names a stale resourceVersion is refused the same way.
    let reply = client
        .patch(
            &path,
            "application/merge-patch+json",
            &json!({"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}, "spec": {"replicas": 3}}),
        )
        .await;
    failure(&reply, 409, "Conflict");
}

#[tokio::test]
async fn a_replace_with_the_current_or_no_resource_version_succeeds() {
    let (_cluster, client) = start().await;
    let first = created(
        &client,
        CONFIGMAPS,
        configmap("c", json!({}), json!({"a": "1"})),
    )
    .await;
    let path = format!("{CONFIGMAPS}/c");
    let mut fresh = first.clone();
    fresh["data"]["a"] = json!("2");
    let reply = client.put(&path, &fresh).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let second = reply.json();
    assert_eq!(second["data"]["a"], "2");

    // `first` is stale now.
    let status = failure(&client.put(&path, &first).await, 409, "Conflict");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Without a resourceVersion the replace is unconditional.
    let mut unconditional = first.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    unconditional["data"]["a"] = json!("3");
    let reply = client.put(&path, &unconditional).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["data"]["a"], "3");

    let mut renamed = second.clone();
    renamed["metadata"]["name"] = json!("other");
    let status = failure(&client.put(&path, &renamed).await, 400, "BadRequest");
    assert_eq!(
        status["message"],
        "the name of the object (other) does not match the name on the URL (c)"
    );
}

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

/// Leases (coordination.k8s.io/v1) with optimistic concurrency: of two writers that read the
/// same resourceVersion, the second gets 409 `Conflict`, as leader election and ferry's deploy
/// lock rely on; a delete with a stale precondition is refused the same way.
#[tokio::test]
async fn a_lease_is_taken_by_one_of_two_writers_that_read_the_same_version() {
    let (_cluster, client) = start().await;
    let lease = created(
        &client,
        LEASES,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "lock"}, "spec": {"leaseDurationSeconds": 15}}),
    )
    .await;
    assert_eq!(lease["kind"], "Lease");
    assert_eq!(lease["apiVersion"], "coordination.k8s.io/v1");
    failure(
        &client
            .post(LEASES, &json!({"metadata": {"name": "lock"}, "spec": {}}))
            .await,
        409,
        "AlreadyExists",
    );
    let read = lease["metadata"]["resourceVersion"].clone();
    let mut first = lease.clone();
    first["spec"]["holderIdentity"] = json!("first");
    let reply = client.put(&format!("{LEASES}/lock"), &first).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_ne!(reply.json()["metadata"]["resourceVersion"], read);
    let mut second = lease.clone();
    second["spec"]["holderIdentity"] = json!("second");
    let status = failure(
        &client.put(&format!("{LEASES}/lock"), &second).await,
        409,
        "Conflict",
    );
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"lock\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let live = client.get(&format!("{LEASES}/lock")).await.json();
    assert_eq!(live["spec"]["holderIdentity"], "first");

    let stale = json!({"kind": "DeleteOptions", "apiVersion": "v1",
        "preconditions": {"resourceVersion": read}});
    let reply = client
        .send(
            "DELETE",
            &format!("{LEASES}/lock"),
            Some("application/json"),
            &stale.to_string(),
        )
        .await;
    failure(&reply, 409, "Conflict");
    let fresh = json!({"preconditions": {"resourceVersion": live["metadata"]["resourceVersion"]}});
    let reply = client
        .send(
            "DELETE",
            &format!("{LEASES}/lock"),
            Some("application/json"),
            &fresh.to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    failure(
        &client.get(&format!("{LEASES}/lock")).await,
        404,
        "NotFound",
    );
}
