//! What a promote's copy asks a token service for: pull on the source repository, pull and
//! push on the target, and no more — so that production's deploy account, a reader of
//! staging's repository, can promote from it.
//!
//! The registry is Debian's real `docker-registry`; in front of it runs a token service that
//! enforces scopes as distribution's token authentication does: a token grants actions on
//! named repositories, a request outside its grant is answered 401 with the scope it needs,
//! and the realm refuses (403) a token for an action the account may not take. A cross-
//! repository mount whose token has no pull on the `from` repository becomes a plain upload.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use ferry::registry::{Credentials, PushOptions, RegistryAuth, RegistryError, Secret};

const USER: &str = "ferry-ci@ferry-production.iam.gserviceaccount.com";
const PASSWORD: &str = "reader-s3cret-pw";
const SOURCE: &str = "ferry/staging-hello";
const TARGET: &str = "ferry/production-hello";

/// Actions by repository: what an account may do, or what a token grants.
type Grant = BTreeMap<String, BTreeSet<String>>;

#[derive(Clone)]
struct Front {
    registry: String,
    me: String,
    /// What USER may do, by repository.
    allowed: Arc<Grant>,
    /// Issued tokens and what each grants (repository → actions).
    tokens: Arc<Mutex<BTreeMap<String, Grant>>>,
    /// Every scope asked for at the realm, granted or not, in order.
    asked: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

struct Running {
    front: Front,
    registry: crate::support::Registry,
    _runtime: tokio::runtime::Runtime,
}

impl Running {
    fn host(&self) -> String {
        self.front.me.clone()
    }
    fn asked(&self) -> Vec<String> {
        self.front.asked.lock().unwrap().clone()
    }
}

fn start_front() -> Running {
    ferry::install_crypto_provider();
    let registry = crate::support::Registry::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let actions = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<BTreeSet<_>>();
    let front = Front {
        registry: registry.host(),
        me: format!("127.0.0.1:{port}"),
        allowed: Arc::new(BTreeMap::from([
            (SOURCE.to_string(), actions(&["pull"])),
            (TARGET.to_string(), actions(&["pull", "push"])),
        ])),
        tokens: Arc::default(),
        asked: Arc::default(),
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new()
        .route("/token", axum::routing::get(token))
        .fallback(registry_api)
        .with_state(front.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });
    Running {
        front,
        registry,
        _runtime: runtime,
    }
}

fn reply(status: StatusCode, body: &str) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A query string's decoded pairs.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://front/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// `repository:NAME:a,b` → (NAME, {a, b}).
fn parse_scope(scope: &str) -> Option<(String, BTreeSet<String>)> {
    let rest = scope.strip_prefix("repository:")?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((
        name.to_string(),
        actions.split(',').map(str::to_string).collect(),
    ))
}

/// The realm: a token for every scope asked, if USER may take each action it names.
async fn token(State(front): State<Front>, request: Request) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return reply(StatusCode::UNAUTHORIZED, r#"{"details":"bad credentials"}"#);
    }
    let query = request.uri().query().unwrap_or_default().to_string();
    let scopes: Vec<String> = query_pairs(&query)
        .into_iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v)
        .collect();
    let mut grant = Grant::new();
    for scope in &scopes {
        front.asked.lock().unwrap().push(scope.clone());
        let Some((name, actions)) = parse_scope(scope) else {
            return reply(StatusCode::BAD_REQUEST, r#"{"details":"bad scope"}"#);
        };
        let may = front.allowed.get(&name).cloned().unwrap_or_default();
        if !actions.is_subset(&may) {
            return reply(
                StatusCode::FORBIDDEN,
                &format!(
                    r#"{{"errors":[{{"code":"DENIED","message":"{USER} may not {scope}"}}]}}"#
                ),
            );
        }
        grant.entry(name).or_default().extend(actions);
    }
    let mut tokens = front.tokens.lock().unwrap();
    let issued = format!("scoped-{}", tokens.len());
    tokens.insert(issued.clone(), grant);
    reply(StatusCode::OK, &format!(r#"{{"token":"{issued}"}}"#))
}

/// The repository and action a `/v2/NAME/(blobs|manifests)/…` request needs.
fn needs(method: &Method, path: &str) -> Option<(String, &'static str)> {
    let rest = path.strip_prefix("/v2/")?;
    let at = ["/blobs/", "/manifests/"]
        .iter()
        .filter_map(|k| rest.find(k))
        .min()?;
    let action = if method == Method::GET || method == Method::HEAD {
        "pull"
    } else {
        "push"
    };
    Some((rest[..at].to_string(), action))
}

async fn registry_api(State(front): State<Front>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let Some((name, action)) = needs(request.method(), &path) else {
        return forward(&front, request, None).await;
    };
    let grant = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| front.tokens.lock().unwrap().get(t).cloned());
    let covered = grant
        .as_ref()
        .is_some_and(|g| g.get(&name).is_some_and(|a| a.contains(action)));
    if !covered {
        let mut resp = reply(
            StatusCode::UNAUTHORIZED,
            r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        );
        let scope = if action == "push" {
            "pull,push"
        } else {
            "pull"
        };
        let challenge = format!(
            r#"Bearer realm="http://{}/token",service="scoped",scope="repository:{name}:{scope}""#,
            front.me
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&challenge).unwrap(),
        );
        return resp;
    }
    // A mount from a repository the token may not pull from is a plain upload start.
    let query = request.uri().query().unwrap_or_default().to_string();
    let from = query_pairs(&query)
        .into_iter()
        .find(|(k, _)| k == "from")
        .map(|(_, v)| v);
    let strip = from.is_some_and(|from| {
        !grant
            .as_ref()
            .is_some_and(|g| g.get(&from).is_some_and(|a| a.contains("pull")))
    });
    forward(&front, request, strip.then_some(path)).await
}

/// Sends the request on to the registry (to `path`, without its query, when given);
/// `Location` headers point back at the front.
async fn forward(front: &Front, request: Request, path: Option<String>) -> Response {
    crate::support::proxy_to_registry(&front.http, &front.registry, &front.me, request, path).await
}

fn options() -> PushOptions {
    PushOptions {
        credentials: Some(Credentials {
            username: USER.into(),
            password: Secret::new(PASSWORD),
            source: "the test's reader account".into(),
        }),
        auth: RegistryAuth::Docker,
        ..Default::default()
    }
}

#[test]
fn a_promote_copy_asks_the_source_for_pull_only_and_a_reader_of_it_can_promote() {
    let front = start_front();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Staging's image, pushed straight to the registry behind the front (as staging's own
    // account would have).
    let digest = runtime.block_on(crate::support::push_small_image(
        &front.registry.host(),
        SOURCE,
        b"a layer staging runs",
    ));
    let source = format!("{}/{SOURCE}@{digest}", front.host());
    let target: ferry::registry::Repository = format!("{}/{TARGET}", front.host()).parse().unwrap();

    let copied = runtime
        .block_on(ferry::registry::copy(&source, &target, &options()))
        .unwrap_or_else(|e| panic!("the copy as a reader of {SOURCE}: {e}"));
    assert_eq!(copied.digest, digest, "the digest comes out identical");
    assert_eq!(
        copied.mounted.len() + copied.copied.len(),
        2,
        "config and layer: {copied:?}"
    );

    let asked = front.asked();
    assert!(
        asked.contains(&format!("repository:{SOURCE}:pull")),
        "{asked:?}"
    );
    assert!(
        asked.contains(&format!("repository:{TARGET}:pull,push")),
        "{asked:?}"
    );
    for scope in &asked {
        let (name, actions) = parse_scope(scope).unwrap();
        if name == SOURCE {
            assert_eq!(
                actions,
                BTreeSet::from(["pull".to_string()]),
                "the source is only read: {asked:?}"
            );
        }
    }

    // The token service does refuse the reader a write to the source: the other way round,
    // the copy's target token (pull,push on staging) is denied, and the error says so.
    let back: ferry::registry::Repository = format!("{}/{SOURCE}", front.host()).parse().unwrap();
    let promoted = format!("{}/{TARGET}@{digest}", front.host());
    let refused = runtime
        .block_on(ferry::registry::copy(&promoted, &back, &options()))
        .expect_err("a reader of staging may not push there");
    match &refused {
        RegistryError::Unauthorized { status, hint, .. } => {
            assert_eq!(*status, 403, "{refused}");
            assert!(hint.contains(&format!("push to {SOURCE}")), "{refused}");
        }
        other => panic!("expected Unauthorized, got {other}"),
    }
    assert!(
        front
            .asked()
            .contains(&format!("repository:{SOURCE}:pull,push")),
        "{:?}",
        front.asked()
    );
    assert!(!refused.to_string().contains(PASSWORD));
}
