//! Server-side apply over the socket: field ownership in `managedFields`, conflicts between
//! managers, `force`, shared ownership of equal values, and pruning of omitted fields.

mod common;

use std::time::Duration;

use common::{Client, Reply};
use kube_fake::{FakeCluster, Options};
use serde_json::{Value, json};

const WEB: &str = "/apis/apps/v1/namespaces/default/deployments/web";

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

/// The `web` Deployment, with `env` on its container unless it is empty.
fn web(replicas: u32, image: &str, env: Value) -> Value {
    let mut container = json!({"name": "web", "image": image, "env": env});
    if env == json!([]) {
        container.as_object_mut().unwrap().remove("env");
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container]}}}})
}

async fn apply(client: &Client, manager: &str, force: bool, body: &Value) -> Reply {
    let force = if force { "&force=true" } else { "" };
    client
        .patch(
            &format!("{WEB}?fieldManager={manager}{force}"),
            "application/apply-patch+yaml",
            body,
        )
        .await
}

fn applied(reply: &Reply) -> Value {
    assert!(
        reply.status == 200 || reply.status == 201,
        "{}: {}",
        reply.status,
        reply.body
    );
    reply.json()
}

/// The `managedFields` entry of `manager` for `operation`.
fn entry<'a>(object: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn owns_replicas(object: &Value, manager: &str, operation: &str) -> bool {
    entry(object, manager, operation)
        .is_some_and(|e| e["fieldsV1"]["f:spec"]["f:replicas"] == json!({}))
}

#[tokio::test]
async fn an_apply_changing_a_field_another_manager_owns_is_a_409_conflict() {
    let (_cluster, client) = start().await;
    applied(
        &apply(
            &client,
            "ferry",
            false,
            &web(2, "example.com/web:1", json!([])),
        )
        .await,
    );
    let reply = apply(
        &client,
        "ops",
        false,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 3}}),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    let status = reply.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(status["code"], 409);
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"ferry\": .spec.replicas"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"ferry\"", "field": ".spec.replicas"}])
    );
    let live = client.get(WEB).await.json();
    assert_eq!(
        live["spec"]["replicas"], 2,
        "a refused apply changes nothing"
    );
    assert!(entry(&live, "ops", "Apply").is_none());
}

#[tokio::test]
async fn several_conflicts_are_listed_per_manager() {
    let (_cluster, client) = start().await;
    applied(
        &apply(
            &client,
            "ferry",
            false,
            &web(2, "example.com/web:1", json!([])),
        )
        .await,
    );
    let reply = apply(
        &client,
        "ops",
        false,
        &web(3, "example.com/web:2", json!([])),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    let status = reply.json();
    assert_eq!(
        status["message"],
        "Apply failed with 2 conflicts: conflicts with \"ferry\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
    );
    assert_eq!(status["details"]["causes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_forced_apply_takes_ownership_of_the_conflicting_field() {
    let (_cluster, client) = start().await;
    applied(
        &apply(
            &client,
            "ferry",
            false,
            &web(2, "example.com/web:1", json!([])),
        )
        .await,
    );
    let scaled = applied(
        &apply(
            &client,
            "ops",
            true,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 3}}),
        )
        .await,
    );
    assert_eq!(scaled["spec"]["replicas"], 3);
    assert!(owns_replicas(&scaled, "ops", "Apply"), "{scaled:#}");
    assert!(!owns_replicas(&scaled, "ferry", "Apply"), "{scaled:#}");
    let ferry = entry(&scaled, "ferry", "Apply").expect("ferry still owns the rest");
    assert_eq!(
        ferry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]
            ["f:image"],
        json!({})
    );
    // Now it is ferry whose unforced apply of another replica count conflicts.
    let reply = apply(
        &client,
        "ferry",
        false,
        &web(2, "example.com/web:1", json!([])),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(
        reply.json()["message"],
        "Apply failed with 1 conflict: conflict with \"ops\": .spec.replicas"
    );
}

#[tokio::test]
async fn applying_the_same_value_shares_ownership_and_keeps_it_from_pruning() {
    let (_cluster, client) = start().await;
    applied(
        &apply(
            &client,
            "ferry",
            false,
            &web(2, "example.com/web:1", json!([])),
        )
        .await,
    );
    let shared = applied(
        &apply(
            &client,
            "ops",
            false,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 2}}),
        )
        .await,
    );
    assert!(owns_replicas(&shared, "ferry", "Apply"), "{shared:#}");
    assert!(owns_replicas(&shared, "ops", "Apply"), "{shared:#}");
    // ferry stops applying replicas: ops still owns it, so it stays.
    let mut without = web(2, "example.com/web:1", json!([]));
    without["spec"].as_object_mut().unwrap().remove("replicas");
    let after = applied(&apply(&client, "ferry", false, &without).await);
    assert_eq!(after["spec"]["replicas"], 2, "{after:#}");
    assert!(!owns_replicas(&after, "ferry", "Apply"));
    assert!(owns_replicas(&after, "ops", "Apply"));
}

#[tokio::test]
async fn a_field_the_manager_stops_applying_is_removed() {
    let (_cluster, client) = start().await;
    let env = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
    let mut first = web(2, "example.com/web:1", env);
    first["metadata"]["annotations"] = json!({"team": "web"});
    applied(&apply(&client, "ferry", false, &first).await);
    let second = applied(
        &apply(
            &client,
            "ferry",
            false,
            &web(2, "example.com/web:1", json!([{"name": "B", "value": "2"}])),
        )
        .await,
    );
    let container = &second["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["env"],
        json!([{"name": "B", "value": "2"}]),
        "{second:#}"
    );
    assert_eq!(container["image"], "example.com/web:1");
    assert!(
        second["metadata"]["annotations"].get("team").is_none(),
        "{second:#}"
    );
    let fields = &entry(&second, "ferry", "Apply").unwrap()["fieldsV1"];
    let env =
        &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:env"];
    assert!(env.get("k:{\"name\":\"A\"}").is_none(), "{fields:#}");
    assert_eq!(
        env["k:{\"name\":\"B\"}"],
        json!({".": {}, "f:name": {}, "f:value": {}})
    );
}

#[tokio::test]
async fn managed_fields_record_apply_and_update_entries() {
    let (_cluster, client) = start().await;
    let created = applied(
        &apply(
            &client,
            "ferry",
            false,
            &web(2, "example.com/web:1", json!([])),
        )
        .await,
    );
    let entries = created["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{created:#}");
    let e = &entries[0];
    assert_eq!(e["manager"], "ferry");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
    );

    // A merge patch by another manager is an Update that takes the field it changed.
    let patched = client
        .patch(
            &format!("{WEB}?fieldManager=kubectl-edit"),
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 4}, "metadata": {"labels": {"tier": "front"}}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let patched = patched.json();
    let edit = entry(&patched, "kubectl-edit", "Update").expect("an Update entry");
    assert_eq!(
        edit["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:tier": {}}}, "f:spec": {"f:replicas": {}}})
    );
    assert!(!owns_replicas(&patched, "ferry", "Apply"), "{patched:#}");

    // ferry's next unforced apply names the Update manager as the real server does.
    let reply = apply(
        &client,
        "ferry",
        false,
        &web(2, "example.com/web:1", json!([])),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    let message = reply.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with(
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1 at "
        ) && message.ends_with(": .spec.replicas"),
        "{message}"
    );

    // A write without a fieldManager is recorded under the User-Agent's product name.
    let reply = client
        .send(
            "PATCH",
            WEB,
            Some("application/json-patch+json"),
            &json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "example.com/web:2"}]).to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let undone = reply.json();
    assert!(
        undone["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["manager"] == "unknown" && e["operation"] == "Update"),
        "{undone:#}"
    );
}

#[tokio::test]
async fn controller_status_writes_neither_own_fields_nor_conflict_with_applies() {
    let (cluster, client) = start().await;
    applied(
        &apply(
            &client,
            "ferry",
            false,
            &web(2, "example.com/web:1", json!([])),
        )
        .await,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = client.get(WEB).await.json();
        if d["status"]["readyReplicas"] == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ready: {d:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let next = applied(
        &apply(
            &client,
            "ops",
            false,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"minReadySeconds": 1}}),
        )
        .await,
    );
    assert_eq!(next["spec"]["minReadySeconds"], 1);
    assert!(
        next["status"]["readyReplicas"].is_number(),
        "apply keeps the status"
    );
    // The controller's status writes are its own, through the status subresource.
    for e in next["metadata"]["managedFields"].as_array().unwrap() {
        let owns_status = e["fieldsV1"].get("f:status").is_some();
        assert_eq!(owns_status, e["subresource"] == "status", "{e}");
    }
    let status = entry(&next, "kube-controller-manager", "Update")
        .filter(|e| e["subresource"] == "status")
        .or_else(|| {
            next["metadata"]["managedFields"]
                .as_array()?
                .iter()
                .find(|e| e["subresource"] == "status")
        })
        .expect("a status entry");
    assert_eq!(status["manager"], "kube-controller-manager", "{status}");
    assert_eq!(status["fieldsV1"]["f:status"]["f:readyReplicas"], json!({}));
    drop(cluster);
}

#[tokio::test]
async fn the_status_subresource_changes_only_the_status_and_the_main_resource_never_does() {
    let (cluster, client) = start().await;
    // A ClusterIP Service: the controllers never write its status.
    let svc = "/api/v1/namespaces/default/services/s";
    let created = client
        .post(
            "/api/v1/namespaces/default/services?fieldManager=setup",
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                "spec": {"ports": [{"port": 80}]}, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        created.json().get("status").is_none(),
        "a create sets no status"
    );
    let tried = client
        .patch(
            &format!("{svc}?fieldManager=main"),
            "application/merge-patch+json",
            &json!({"spec": {"sessionAffinity": "ClientIP"}, "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}}),
        )
        .await
        .json();
    assert_eq!(tried["spec"]["sessionAffinity"], "ClientIP");
    assert!(
        tried["status"]["loadBalancer"].get("ingress").is_none(),
        "the main resource keeps the status: {tried:#}"
    );
    let set = client
        .patch(
            &format!("{svc}/status?fieldManager=lb"),
            "application/merge-patch+json",
            &json!({"spec": {"sessionAffinity": "None"}, "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}}),
        )
        .await
        .json();
    assert_eq!(set["spec"]["sessionAffinity"], "ClientIP", "{set:#}");
    assert_eq!(set["status"]["loadBalancer"]["ingress"][0]["ip"], "5.6.7.8");
    let lb = set["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "lb")
        .expect("an entry for the status writer");
    assert_eq!(lb["subresource"], "status");
    assert_eq!(lb["operation"], "Update");
    assert!(lb["fieldsV1"].get("f:spec").is_none(), "{lb}");
    drop(cluster);
}
