//! The HTTP side: discovery, CRUD, server-side apply, patches, watches, logs, and errors as
//! `Status` objects — what kubectl and kube-rs send and expect.

#![allow(clippy::result_large_err)] // Err is an HTTP response, built once per failed request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::{self, Resource, matches_fields, matches_labels};
use crate::{Shared, protobuf, ssa};

type Params = Query<HashMap<String, String>>;

/// Every request lands here; the path is parsed by hand like the API server's router.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let (Some(token), None) = (&shared.options.bearer_token, &shared.options.rbac) {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(format!("Bearer {token}").as_str()) {
            return status_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized",
                None,
            );
        }
    }
    let path = uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => json_ok(json!({
            "major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "platform": "linux/amd64",
            "gitCommit": "fake", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.23", "compiler": "gc"
        })),
        ["api"] => json_ok(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})),
        ["apis"] => json_ok(group_list()),
        ["api", "v1"] => json_ok(resource_list("v1", "")),
        ["apis", group, "v1"] if store::serves_group(group) => {
            json_ok(resource_list(&format!("{group}/v1"), group))
        }
        ["api", "v1", rest @ ..] => {
            resource_request(&shared, "", rest, &method, &params, &headers, &body).await
        }
        ["apis", group, "v1", rest @ ..] if store::serves_group(group) => {
            resource_request(&shared, group, rest, &method, &params, &headers, &body).await
        }
        _ => status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
            None,
        ),
    }
}

fn group_list() -> Value {
    let groups: Vec<Value> = store::groups()
        .into_iter()
        .map(|g| {
            let version = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [version], "preferredVersion": version})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group_version: &str, group: &str) -> Value {
    let mut resources = Vec::new();
    for r in store::RESOURCES.iter().filter(|r| r.group == group) {
        resources.push(json!({
            "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": short_names(r.plural),
        }));
        if r.kind == "Pod" {
            resources.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
        }
        if matches!(r.kind, "Deployment" | "ReplicaSet" | "PodDisruptionBudget") {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": true, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn short_names(plural: &str) -> Vec<&'static str> {
    match plural {
        "namespaces" => vec!["ns"],
        "services" => vec!["svc"],
        "pods" => vec!["po"],
        "events" => vec!["ev"],
        "configmaps" => vec!["cm"],
        "deployments" => vec!["deploy"],
        "replicasets" => vec!["rs"],
        "poddisruptionbudgets" => vec!["pdb"],
        "networkpolicies" => vec!["netpol"],
        _ => vec![],
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource_request(
    shared: &Arc<Shared>,
    group: &str,
    rest: &[&str],
    method: &Method,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    // namespaces/{ns}/{plural}[/{name}[/{sub}]]  or  {plural}[/{name}[/{sub}]]
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, plural, tail @ ..] if store::resource(group, plural).is_some() => {
            (Some(*ns), &rest[2..3 + tail.len()])
        }
        _ => (None, rest),
    };
    let Some((plural, tail)) = rest.split_first() else {
        return status_error(StatusCode::NOT_FOUND, "NotFound", "no resource", None);
    };
    let Some(resource) = store::resource(group, plural) else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the server could not find the requested resource ({plural})"),
            None,
        );
    };
    let ns = namespace.unwrap_or("");
    if let Some(policy) = &shared.options.rbac
        && let Err(denied) = authorize(policy, resource, ns, tail, method, params, headers)
    {
        return denied;
    }
    // kubectl's imperative `create` commands send protobuf. The fake reads it for the kinds
    // those commands make most (see `protobuf`) and otherwise answers as a server that lacks
    // the serializer does.
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let decoded;
    let body = if content_type.contains("protobuf")
        && *method == Method::POST
        && tail.is_empty()
        && protobuf::supports(resource)
    {
        match protobuf::decode(resource, body) {
            Ok(object) => {
                decoded = Bytes::from(object.to_string());
                &decoded
            }
            Err(why) => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("the protobuf body could not be read: {why}"),
                    None,
                );
            }
        }
    } else if content_type.contains("protobuf") || content_type.contains("cbor") {
        return status_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json",
            None,
        );
    } else {
        body
    };
    match (method.clone(), tail) {
        (Method::GET, []) if params.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(shared, resource, namespace, params)
        }
        (Method::GET, []) => list(shared, resource, namespace, params, headers),
        (Method::GET, [name]) => get(shared, resource, ns, name, headers),
        (Method::GET, [name, "log"]) if resource.kind == "Pod" => logs(shared, ns, name, params),
        (Method::POST, []) => {
            let writer = writer(shared, resource, params, headers, None);
            create(shared, resource, ns, body, params, &writer)
        }
        (Method::PATCH, [name, sub @ ..]) if sub.is_empty() || sub == ["status"] => {
            let writer = writer(shared, resource, params, headers, sub.first().copied());
            patch(shared, resource, ns, name, headers, body, params, &writer)
        }
        (Method::PUT, [name, sub @ ..]) if sub.is_empty() || sub == ["status"] => {
            let writer = writer(shared, resource, params, headers, sub.first().copied());
            replace(shared, resource, ns, name, body, &writer)
        }
        (Method::DELETE, [name]) => delete(shared, resource, ns, name, body),
        _ => status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} is not supported here"),
            None,
        ),
    }
}

/// RBAC's verdict on a resource request (see [`crate::rbac`]).
fn authorize(
    policy: &crate::rbac::Policy,
    resource: Resource,
    ns: &str,
    tail: &[&str],
    method: &Method,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let watching = params.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (method.clone(), tail.len()) {
        (Method::GET, 0) if watching => "watch",
        (Method::GET, 0) => "list",
        (Method::GET, _) => "get",
        (Method::POST, _) => "create",
        (Method::PATCH, _) => "patch",
        (Method::PUT, _) => "update",
        (Method::DELETE, 0) => "deletecollection",
        (Method::DELETE, _) => "delete",
        _ => "unknown",
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let request = crate::rbac::Request {
        verb,
        group: resource.group,
        plural: resource.plural,
        subresource: tail.get(1).copied(),
        namespace: ns,
        name: tail.first().copied(),
    };
    match policy.authorize(token, &request) {
        Ok(()) => Ok(()),
        Err(crate::rbac::Denied::Unauthenticated) => Err(status_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
            None,
        )),
        Err(crate::rbac::Denied::Forbidden(message)) => {
            let mut details = json!({"kind": resource.plural});
            if !resource.group.is_empty() {
                details["group"] = json!(resource.group);
            }
            if let Some(name) = request.name {
                details["name"] = json!(name);
            }
            Err(status_error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &message,
                Some(details),
            ))
        }
    }
}

/// Who a write is by, for `managedFields`: the `fieldManager` parameter or, as the real server
/// does without one, the User-Agent up to its first `/` (`kubectl`, `kube`).
struct WriterInfo {
    manager: String,
    subresource: Option<String>,
    api_version: String,
    now: String,
}

impl WriterInfo {
    fn writer(&self) -> ssa::Writer<'_> {
        ssa::Writer {
            manager: &self.manager,
            subresource: self.subresource.as_deref(),
            api_version: &self.api_version,
            now: &self.now,
        }
    }
}

fn writer(
    shared: &Arc<Shared>,
    resource: Resource,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    subresource: Option<&str>,
) -> WriterInfo {
    let manager = params
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
        .or_else(|| {
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|m| !m.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".to_string());
    WriterInfo {
        manager,
        subresource: subresource.map(str::to_string),
        api_version: resource.api_version(),
        now: shared.now_string(),
    }
}

/// `deployments.apps` or `pods`: how the API server names a resource in messages.
fn qualified(resource: Resource) -> String {
    if resource.group.is_empty() {
        resource.plural.to_string()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

fn not_found(resource: Resource, name: &str) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", qualified(resource)),
        Some(json!({"name": name, "group": resource.group, "kind": resource.plural})),
    )
}

/// 409 Conflict for a write based on a stale `metadata.resourceVersion`: optimistic
/// concurrency, as on a real server. A write without a resourceVersion is unconditional.
fn check_fresh(resource: Resource, name: &str, live: &Value, new: &Value) -> Result<(), Response> {
    let wanted = &new["metadata"]["resourceVersion"];
    if wanted.is_null() || wanted == "" || wanted == &live["metadata"]["resourceVersion"] {
        return Ok(());
    }
    Err(status_error(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            qualified(resource)
        ),
        Some(json!({"name": name, "group": resource.group, "kind": resource.plural})),
    ))
}

fn get(
    shared: &Arc<Shared>,
    resource: Resource,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
) -> Response {
    let store = shared.lock();
    match store.get(resource, ns, name) {
        Some(object) => {
            if wants_table(headers) {
                json_ok(crate::table::table(
                    resource,
                    std::slice::from_ref(object),
                    store.revision(),
                    shared.now_time(),
                ))
            } else {
                json_ok(object.clone())
            }
        }
        None => not_found(resource, name),
    }
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn filtered(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: Option<&str>,
    params: &HashMap<String, String>,
) -> (Vec<Value>, u64) {
    let store = shared.lock();
    let items = store
        .list(resource, namespace)
        .into_iter()
        .filter(|o| {
            params
                .get("labelSelector")
                .is_none_or(|s| matches_labels(o, s))
        })
        .filter(|o| {
            params
                .get("fieldSelector")
                .is_none_or(|s| matches_fields(o, s))
        })
        .collect();
    (items, store.revision())
}

fn list(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: Option<&str>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let (items, revision) = filtered(shared, resource, namespace, params);
    if wants_table(headers) {
        return json_ok(crate::table::table(
            resource,
            &items,
            revision,
            shared.now_time(),
        ));
    }
    json_ok(json!({
        "kind": format!("{}List", resource.kind), "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": revision.to_string()}, "items": items,
    }))
}

/// A watch. Without `resourceVersion` (or with `0`) it starts with a synthetic `ADDED` for
/// every object, then streams changes; with `resourceVersion=N` it replays every change after
/// N from the history, then streams. A watch from before the history, or one that falls that
/// far behind, gets an `ERROR` event with a 410 `Expired` Status and ends, as on a real server.
fn watch(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: Option<&str>,
    params: &HashMap<String, String>,
) -> Response {
    let since: u64 = params
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300u64)
        .min(300);
    let labels = params.get("labelSelector").cloned();
    let fields = params.get("fieldSelector").cloned();
    let namespace = namespace.map(str::to_string);
    let (mut woken, initial, cursor) = {
        let store = shared.lock();
        // Subscribed under the lock, so no change between the read and the wait is missed.
        let woken = store.subscribe();
        if since == 0 {
            (
                woken,
                store.list(resource, namespace.as_deref()),
                store.revision(),
            )
        } else {
            (woken, Vec::new(), since)
        }
    };
    let keep = move |o: &Value| {
        labels.as_deref().is_none_or(|s| matches_labels(o, s))
            && fields.as_deref().is_none_or(|s| matches_fields(o, s))
            && (!resource.namespaced
                || namespace
                    .as_deref()
                    .is_none_or(|n| o["metadata"]["namespace"] == n))
    };
    // Weak, so a watch left open does not keep a dropped cluster alive: when the store goes,
    // `woken` reports it and the stream ends.
    let shared = Arc::downgrade(shared);
    let stream = async_stream(move |tx| async move {
        for object in initial.into_iter().filter(|o| keep(o)) {
            if tx
                .send(line(json!({"type": "ADDED", "object": object})))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut cursor = cursor;
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            let Some(changes) = shared.upgrade().map(|s| s.lock().changes_after(cursor)) else {
                return;
            };
            let changes = match changes {
                Ok(changes) => changes,
                Err(expired) => {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "reason": "Expired", "code": 410,
                        "message": format!("too old resource version: {cursor} ({})", expired.compacted)});
                    let _ = tx
                        .send(line(json!({"type": "ERROR", "object": status})))
                        .await;
                    return;
                }
            };
            for change in changes {
                cursor = change.revision;
                if change.resource != resource {
                    continue;
                }
                let matches_now = keep(&change.object);
                let matched_before = change.previous.as_ref().is_some_and(&keep);
                let kind = match (change.kind, matched_before, matches_now) {
                    (_, _, false) if change.kind != "MODIFIED" => continue,
                    ("MODIFIED", false, false) => continue,
                    // The object left the selector: the watcher sees it go.
                    ("MODIFIED", true, false) => "DELETED",
                    // The object entered the selector: the watcher sees it arrive.
                    ("MODIFIED", false, true) => "ADDED",
                    (kind, _, _) => kind,
                };
                if tx
                    .send(line(json!({"type": kind, "object": change.object})))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            tokio::select! {
                () = &mut deadline => return,
                woke = woken.changed() => if woke.is_err() { return },
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(stream)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn line(v: Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// A streaming body fed by a task.
fn async_stream<F, Fut>(produce: F) -> Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(produce(tx));
    let stream =
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>)));
    Body::from_stream(stream)
}

fn logs(shared: &Arc<Shared>, ns: &str, name: &str, params: &HashMap<String, String>) -> Response {
    let store = shared.lock();
    let Some(pod) = store.get(
        store::resource("", "pods").unwrap_or(store::RESOURCES[2]),
        ns,
        name,
    ) else {
        return not_found(store::RESOURCES[2], name);
    };
    let image = pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let container = pod["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap_or("app")
        .to_string();
    let status = &pod["status"]["containerStatuses"][0];
    let started =
        status["state"]["running"].is_object() || status["lastState"]["terminated"].is_object();
    // The kubelet's wording (validateContainerLogStatus) for a container that never ran.
    let waiting = match status["state"]["waiting"]["reason"].as_str() {
        Some("ErrImagePull" | "ImagePullBackOff") | None => {
            "trying and failing to pull image".to_string()
        }
        Some(reason) => reason.to_string(),
    };
    let previous_exists = status["lastState"]["terminated"].is_object();
    drop(store);
    if params.get("previous").is_some_and(|p| p == "true") && !previous_exists {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("previous terminated container \"{container}\" in pod \"{name}\" not found"),
            None,
        );
    }
    if !started {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("container \"{container}\" in pod \"{name}\" is waiting to start: {waiting}"),
            None,
        );
    }
    let text = shared.log_for(&image);
    let tail: Option<usize> = params.get("tailLines").and_then(|t| t.parse().ok());
    let lines: Vec<&str> = text.lines().collect();
    let start = tail.map_or(0, |t| lines.len().saturating_sub(t));
    let mut out = lines[start..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], out).into_response()
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str(&text)
        .or_else(|_| serde_saphyr::from_str::<Value>(&text))
        .map_err(|e| {
            status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the body is not valid JSON or YAML: {e}"),
                None,
            )
        })
}

fn check_namespace(shared: &Arc<Shared>, resource: Resource, ns: &str) -> Result<(), Response> {
    if resource.namespaced
        && shared
            .lock()
            .get(store::namespace_resource(), "", ns)
            .is_none()
    {
        return Err(status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("namespaces \"{ns}\" not found"),
            Some(json!({"name": ns, "kind": "namespaces"})),
        ));
    }
    Ok(())
}

fn create(
    shared: &Arc<Shared>,
    resource: Resource,
    ns: &str,
    body: &Bytes,
    params: &HashMap<String, String>,
    writer: &WriterInfo,
) -> Response {
    let object = match parse_body(body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Err(r) = check_namespace(shared, resource, ns) {
        return r;
    }
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Err(r) = validate(resource, &object) {
        return r;
    }
    let mut store = shared.lock();
    if store.get(resource, ns, &name).is_some() {
        return status_error(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", qualified(resource)),
            Some(json!({"name": name, "group": resource.group, "kind": resource.plural})),
        );
    }
    let object = confine(resource, None, object, None);
    let object = ssa::update(None, object, &writer.writer());
    if params.get("dryRun").is_some() {
        return (StatusCode::CREATED, axum::Json(object)).into_response();
    }
    let created = store.create(resource, ns, object, shared.now_string());
    (StatusCode::CREATED, axum::Json(created)).into_response()
}

fn replace(
    shared: &Arc<Shared>,
    resource: Resource,
    ns: &str,
    name: &str,
    body: &Bytes,
    writer: &WriterInfo,
) -> Response {
    let mut object = match parse_body(body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match object["metadata"]["name"].as_str() {
        None | Some("") => object["metadata"]["name"] = json!(name),
        Some(in_body) if in_body != name => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "the name of the object ({in_body}) does not match the name on the URL ({name})"
                ),
                None,
            );
        }
        Some(_) => {}
    }
    if let Err(r) = validate(resource, &object) {
        return r;
    }
    let mut store = shared.lock();
    let Some(live) = store.get(resource, ns, name) else {
        return not_found(resource, name);
    };
    if let Err(r) = check_fresh(resource, name, live, &object) {
        return r;
    }
    let object = confine(resource, Some(live), object, writer.subresource.as_deref());
    let object = ssa::update(Some(live), object, &writer.writer());
    json_ok(store.update(resource, ns, object))
}

/// A delete; `DeleteOptions.preconditions` (`resourceVersion`, `uid`) in the body make it
/// conditional, 409 `Conflict` when the live object no longer matches.
fn delete(
    shared: &Arc<Shared>,
    resource: Resource,
    ns: &str,
    name: &str,
    body: &Bytes,
) -> Response {
    let options = if body.is_empty() {
        Value::Null
    } else {
        match parse_body(body) {
            Ok(o) => o,
            Err(r) => return r,
        }
    };
    let mut store = shared.lock();
    if let Some(live) = store.get(resource, ns, name) {
        let preconditions = &options["preconditions"];
        let wanted = json!({"metadata": {"resourceVersion": preconditions["resourceVersion"]}});
        if let Err(r) = check_fresh(resource, name, live, &wanted) {
            return r;
        }
        let uid = &preconditions["uid"];
        if !uid.is_null() && uid != &live["metadata"]["uid"] {
            return status_error(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    qualified(resource),
                    uid.as_str().unwrap_or_default(),
                    live["metadata"]["uid"].as_str().unwrap_or_default()
                ),
                Some(json!({"name": name, "group": resource.group, "kind": resource.plural})),
            );
        }
    }
    match store.delete(resource, ns, name) {
        Some(_) => json_ok(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name, "kind": resource.plural}}),
        ),
        None => not_found(resource, name),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch(
    shared: &Arc<Shared>,
    resource: Resource,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    params: &HashMap<String, String>,
    writer: &WriterInfo,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let dry_run = params.get("dryRun").is_some();
    let is_apply = content_type.starts_with("application/apply-patch");
    if is_apply && params.get("fieldManager").is_none_or(|m| m.is_empty()) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            None,
        );
    }
    if let Err(r) = check_namespace(shared, resource, ns) {
        return r;
    }
    let patch = match parse_body(body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    // Read, patch and write under one lock, so a patch never undoes a concurrent change and
    // a resourceVersion in it is compared with the object as it is.
    let mut store = shared.lock();
    let existing = store.get(resource, ns, name).cloned();
    let result = if is_apply {
        if let Some(live) = &existing
            && let Err(r) = check_fresh(resource, name, live, &patch)
        {
            return r;
        }
        let force = params.get("force").is_some_and(|f| f == "true");
        match ssa::apply(existing.as_ref(), &patch, &writer.writer(), force) {
            Ok(mut object) => {
                object["metadata"]["name"] = json!(name);
                object
            }
            Err(conflicts) => return apply_conflict(&conflicts),
        }
    } else if content_type.starts_with("application/json-patch") {
        let Some(existing) = existing.clone() else {
            return not_found(resource, name);
        };
        match json_patch(existing, &patch) {
            Ok(v) => v,
            // The real server gives no detail here, whichever op failed.
            Err(_) => {
                return status_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                    Some(json!({})),
                );
            }
        }
    } else {
        let Some(existing) = &existing else {
            return not_found(resource, name);
        };
        if content_type.starts_with("application/strategic-merge-patch") {
            ssa::strategic_merge(existing, &patch)
        } else {
            let mut merged = existing.clone();
            merge(&mut merged, &patch);
            merged
        }
    };
    if !is_apply
        && let Some(live) = &existing
        && let Err(r) = check_fresh(resource, name, live, &result)
    {
        return r;
    }
    if let Err(r) = validate(resource, &result) {
        return r;
    }
    let result = if is_apply {
        result
    } else {
        let result = confine(
            resource,
            existing.as_ref(),
            result,
            writer.subresource.as_deref(),
        );
        ssa::update(existing.as_ref(), result, &writer.writer())
    };
    if dry_run {
        return json_ok(result);
    }
    match existing {
        Some(_) => json_ok(store.update(resource, ns, result)),
        None => {
            let created = store.create(resource, ns, result, shared.now_string());
            (StatusCode::CREATED, axum::Json(created)).into_response()
        }
    }
}

/// What a write may change, as the real registry strategies keep it for kinds with a status
/// subresource: a create or a write to the main resource leaves the status as it was (none, on
/// create), and a write to `/status` changes nothing but the status.
fn confine(
    resource: Resource,
    live: Option<&Value>,
    mut new: Value,
    subresource: Option<&str>,
) -> Value {
    if !matches!(
        resource.kind,
        "Deployment" | "ReplicaSet" | "Pod" | "Service" | "Namespace" | "PodDisruptionBudget"
    ) {
        return new;
    }
    let live_status = live.and_then(|l| l.get("status")).cloned();
    if subresource == Some("status") {
        let Some(live) = live else {
            return new;
        };
        let mut out = live.clone();
        match new.get_mut("status").map(Value::take) {
            Some(status) if !status.is_null() => out["status"] = status,
            _ => {
                if let Some(m) = out.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        return out;
    }
    match (live_status, new.as_object_mut()) {
        (Some(status), Some(m)) => {
            m.insert("status".to_string(), status);
        }
        (None, Some(m)) => {
            m.remove("status");
        }
        _ => {}
    }
    new
}

/// 409 for an apply that would change fields other managers own, worded as the real server
/// words it (kubectl adds its advice about `--force-conflicts` below).
fn apply_conflict(conflicts: &[ssa::Conflict]) -> Response {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager),
                "field": c.field})
        })
        .collect();
    status_error(
        StatusCode::CONFLICT,
        "Conflict",
        &ssa::conflict_message(conflicts),
        Some(json!({"causes": causes})),
    )
}

/// RFC 7386 merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(map) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in map {
                if v.is_null() {
                    if let Some(t) = target.as_object_mut() {
                        t.remove(k);
                    }
                } else {
                    merge(&mut target[k.as_str()], v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch. Any op that does not apply (a failed `test`, a path that does not
/// exist for `replace`/`remove`, an index out of range) fails the whole patch.
fn json_patch(mut doc: Value, ops: &Value) -> Result<Value, String> {
    for op in ops.as_array().ok_or("a JSON patch must be an array")? {
        let path = op["path"].as_str().ok_or("op without path")?;
        let (parent_path, last) = path.rsplit_once('/').ok_or(format!("bad path {path:?}"))?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let value = op["value"].clone();
        let missing = || format!("path {path} does not exist");
        match op["op"].as_str() {
            Some(kind @ ("add" | "replace" | "remove")) => {
                let parent = doc.pointer_mut(parent_path).ok_or_else(missing)?;
                match (parent, kind) {
                    (Value::Object(m), "add") => {
                        m.insert(last, value);
                    }
                    (Value::Object(m), "replace") => {
                        *m.get_mut(&last).ok_or_else(missing)? = value;
                    }
                    (Value::Object(m), _) => {
                        m.remove(&last).ok_or_else(missing)?;
                    }
                    (Value::Array(a), "add") if last == "-" => a.push(value),
                    (Value::Array(a), kind) => {
                        let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
                        match kind {
                            "add" if i <= a.len() => a.insert(i, value),
                            "replace" if i < a.len() => a[i] = value,
                            "remove" if i < a.len() => {
                                a.remove(i);
                            }
                            _ => return Err(format!("index out of range in {path}")),
                        }
                    }
                    _ => return Err(format!("path {path} is not in an object or array")),
                }
            }
            Some("test") => {
                if doc.pointer(path) != Some(&value) {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            other => return Err(format!("unsupported JSON patch op {other:?}")),
        }
    }
    Ok(doc)
}

/// The checks the real API server makes that ferry's error handling depends on.
fn validate(resource: Resource, object: &Value) -> Result<(), Response> {
    let mut causes = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let dns1123 = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !name.starts_with('-');
    if !dns1123 {
        causes.push(("metadata.name", format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'")));
    }
    if resource.kind == "Deployment" {
        let selector = &object["spec"]["selector"]["matchLabels"];
        let labels = &object["spec"]["template"]["metadata"]["labels"];
        if !selector.is_object() {
            causes.push(("spec.selector", "Required value".to_string()));
        } else if selector
            .as_object()
            .is_some_and(|m| m.iter().any(|(k, v)| &labels[k] != v))
        {
            causes.push((
                "spec.template.metadata.labels",
                "Invalid value: `selector` does not match template `labels`".to_string(),
            ));
        }
        if object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .is_none_or(|c| c.is_empty())
        {
            causes.push((
                "spec.template.spec.containers",
                "Required value".to_string(),
            ));
        }
        for (i, c) in object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if c["image"].as_str().is_none_or(|s| s.is_empty()) {
                causes.push(if i == 0 {
                    (
                        "spec.template.spec.containers[0].image",
                        "Required value".to_string(),
                    )
                } else {
                    (
                        "spec.template.spec.containers[*].image",
                        "Required value".to_string(),
                    )
                });
            }
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    // As apimachinery words it: `Deployment.apps "x"` (`ConfigMap "x"` for the core group),
    // and several causes in brackets.
    let kind = if resource.group.is_empty() {
        resource.kind.to_string()
    } else {
        format!("{}.{}", resource.kind, resource.group)
    };
    let listed: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    let listed = if listed.len() == 1 {
        listed.join("")
    } else {
        format!("[{}]", listed.join(", "))
    };
    let message = format!("{kind} \"{name}\" is invalid: {listed}");
    let causes: Vec<Value> = causes
        .iter()
        .map(|(field, m)| {
            let reason = if m.starts_with("Required value") {
                "FieldValueRequired"
            } else {
                "FieldValueInvalid"
            };
            json!({"reason": reason, "message": m, "field": field})
        })
        .collect();
    let details =
        json!({"name": name, "group": resource.group, "kind": resource.kind, "causes": causes});
    Err(status_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &message,
        Some(details),
    ))
}

fn json_ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

/// A `Status` object, as the API server returns for every error.
pub fn status_error(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response {
    let mut status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    if let Some(d) = details {
        status["details"] = d;
    }
    (code, axum::Json(status)).into_response()
}
