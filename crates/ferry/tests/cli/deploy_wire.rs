//! ferry's deploy stage with exact control of the wire: a `tower_test` mock stands in for the
//! API server, so each test decides every answer and sees every request ferry sends.

use std::sync::{Arc, Mutex};

use ferry::deploy::{self, Cluster, DeployError, DeployOptions};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

/// One request as ferry sent it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path_and_query: String,
    content_type: Option<String>,
    body: Value,
}

type Answer = Box<dyn Fn(&Seen) -> (StatusCode, Value) + Send + Sync>;

/// Runs `deploy` against a mock API server answering with `answer`; returns the result and
/// every request it received, in order.
async fn deploy_against(
    objects: &[Value],
    answer: Answer,
) -> (Result<deploy::Rollout, DeployError>, Vec<Seen>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let server = tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let one = Seen {
                method: parts.method.clone(),
                path_and_query: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap_or_default().to_string()),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, payload) = answer(&one);
            recorded.lock().unwrap().push(one);
            respond.send_response(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&payload).unwrap()))
                    .unwrap(),
            );
        }
    });
    let cluster = Cluster {
        client: kube::Client::new(service, "default"),
        server: "https://mock.invalid".to_string(),
    };
    let options = DeployOptions {
        namespace: "web".to_string(),
        ..DeployOptions::default()
    };
    let result = deploy::deploy(&cluster, objects, &options, &|_| {}).await;
    drop(cluster);
    server.await.expect("mock server");
    let seen = seen.lock().unwrap().clone();
    (result, seen)
}

fn objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "hello"},
               "spec": {"selector": {"matchLabels": {"app": "hello"}},
                        "template": {"metadata": {"labels": {"app": "hello"}},
                                     "spec": {"containers": [{"name": "hello", "image": "r/hello@sha256:00"}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "hello"},
               "spec": {"selector": {"app": "hello"}, "ports": [{"port": 80}]}}),
    ]
}

/// Discovery answers, and 404 for every object read (nothing exists yet).
fn discovery_or_absent(seen: &Seen) -> Option<(StatusCode, Value)> {
    let path = seen.path_and_query.split('?').next().unwrap_or_default();
    match (seen.method.clone(), path) {
        (Method::GET, "/api/v1") => Some((
            StatusCode::OK,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                   "resources": [{"name": "services", "singularName": "service", "namespaced": true,
                                  "kind": "Service", "verbs": ["get", "list", "patch", "create"]}]}),
        )),
        (Method::GET, "/apis/apps/v1") => Some((
            StatusCode::OK,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
                   "resources": [{"name": "deployments", "singularName": "deployment", "namespaced": true,
                                  "kind": "Deployment", "verbs": ["get", "list", "patch", "create"]}]}),
        )),
        (Method::GET, _) => Some((
            StatusCode::NOT_FOUND,
            status(404, "NotFound", "not found", json!({})),
        )),
        _ => None,
    }
}

fn status(code: u16, reason: &str, message: &str, details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code, "details": details})
}

#[tokio::test]
async fn a_forbidden_apply_names_the_missing_right_and_stops_before_the_deployment() {
    const DENIED: &str = "services \"hello\" is forbidden: User \"ci@ferry-production.iam.gserviceaccount.com\" cannot patch resource \"services\" in API group \"\" in the namespace \"web\"";
    let (result, seen) = deploy_against(
        &objects(),
        Box::new(|seen| {
            discovery_or_absent(seen).unwrap_or_else(|| {
                (
                    StatusCode::FORBIDDEN,
                    status(
                        403,
                        "Forbidden",
                        DENIED,
                        json!({"name": "hello", "kind": "services"}),
                    ),
                )
            })
        }),
    )
    .await;

    let error = result.expect_err("a 403 must fail the deploy");
    assert!(
        matches!(&error, DeployError::Forbidden { message } if message == DENIED),
        "{error:?}"
    );
    let shown = error.to_string();
    assert!(
        shown.contains("roles/container.developer"),
        "the error must say how to fix it: {shown}"
    );

    // The Service is applied first (server-side apply, field manager ferry, forced), and once
    // it is refused nothing touches the Deployment.
    let patches: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::PATCH).collect();
    assert_eq!(patches.len(), 1, "{seen:#?}");
    let patch = patches[0];
    let (path, query) = patch.path_and_query.split_once('?').expect("query");
    assert_eq!(path, "/api/v1/namespaces/web/services/hello");
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_unstable();
    assert_eq!(params, ["fieldManager=ferry", "force=true"]);
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(patch.body["metadata"]["namespace"], "web");
    assert!(
        seen.iter()
            .all(|s| !s.path_and_query.contains("deployments")),
        "the Deployment must not be touched after the Service was refused: {seen:#?}"
    );
}

#[tokio::test]
async fn an_invalid_deployment_is_reported_with_its_field_paths() {
    let (result, _seen) = deploy_against(
        &objects(),
        Box::new(|seen| {
            discovery_or_absent(seen).unwrap_or_else(|| {
                if seen.path_and_query.contains("/deployments/") {
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        status(
                            422,
                            "Invalid",
                            "Deployment.apps \"hello\" is invalid: spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                            json!({"name": "hello", "group": "apps", "kind": "Deployment",
                                   "causes": [{"reason": "FieldValueInvalid",
                                               "message": "Invalid value: 0: must be between 1 and 65535, inclusive",
                                               "field": "spec.template.spec.containers[0].ports[0].containerPort"}]}),
                        ),
                    )
                } else {
                    // The Service applies; the server echoes it back.
                    (StatusCode::OK, seen.body.clone())
                }
            })
        }),
    )
    .await;

    let error = result.expect_err("a 422 must fail the deploy");
    match &error {
        DeployError::Invalid {
            kind, name, fields, ..
        } => {
            assert_eq!((kind.as_str(), name.as_str()), ("Deployment", "hello"));
            assert_eq!(
                fields,
                &[
                    "spec.template.spec.containers[0].ports[0].containerPort (Invalid value: 0: must be between 1 and 65535, inclusive)"
                ]
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("fields: spec.template.spec.containers[0].ports[0].containerPort"),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_error_keeps_its_code_and_message() {
    let (result, _seen) = deploy_against(
        &objects(),
        Box::new(|seen| {
            discovery_or_absent(seen).unwrap_or_else(|| {
                (
                    StatusCode::CONFLICT,
                    status(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on services \"hello\": the object has been modified",
                        json!({}),
                    ),
                )
            })
        }),
    )
    .await;
    let error = result.expect_err("a 409 must fail the deploy");
    assert!(
        matches!(&error, DeployError::Api { code: 409, reason, .. } if reason == "Conflict"),
        "{error:?}"
    );
    assert!(error.to_string().contains("the object has been modified"));
}
