//! `ferry push` through the parts of real registries that a bare `docker-registry` lacks:
//! a bearer-token challenge answered with credentials from a docker credential helper,
//! transient 5xx answers, and a repository that does not exist.
//!
//! The registry is Debian's real `docker-registry`; in front of it runs a small auth front
//! (as Artifact Registry, GHCR or Harbor put a token service before their storage): it
//! demands a bearer token, issues one at its `/token` realm for the right basic credentials,
//! and can be told to fail. Everything it lets through is forwarded to the real registry.
//!
//! The image pushed is assembled by ferry's own library from a small file, so these tests
//! need no cargo build of the service.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;

const USER: &str = "ci";
const PASSWORD: &str = "helper-s3cret-pw";
const TOKEN: &str = "tok-0123456789abcdef";
/// The access token the fake Google token endpoint issues for a service-account key.
const GOOGLE_TOKEN: &str = "ya29.fake-google-access-token";
/// What CI's OIDC provider writes to the `credential_source` file.
const SUBJECT_TOKEN: &str = "eyJoZWFkZXIi.oidc-subject-token.c2lnbmF0dXJl";
/// The federated token the fake STS issues when a service account is impersonated next.
const FEDERATED_TOKEN: &str = "ya29.fake-federated-sts-token";
/// `gcloud auth application-default login`'s refresh token, and the user's access token the
/// fake token endpoint gives for it.
const REFRESH_TOKEN: &str = "1//fake-refresh-token";
const USER_TOKEN: &str = "ya29.fake-user-access-token";
/// An AWS instance role's keys, as the fake instance metadata gives them, and IMDSv2's
/// session token: none of them may be printed.
const AWS_KEY_ID: &str = "ASIAFERRYE2ETESTKEY";
const AWS_SECRET: &str = "aws-secret-key-never-printed";
const AWS_SESSION: &str = "aws-session-token-never-printed";
const IMDS_SESSION: &str = "imdsv2-session-never-printed";
const AWS_TOKEN_TYPE: &str = "urn:ietf:params:aws:token-type:aws4_request";
const AUDIENCE: &str = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/circleci/providers/circleci";

/// What the front should do with the next requests to `/v2/…`.
#[derive(Debug, Default)]
struct Faults {
    /// Answer this many `/v2/` requests with 503 before serving normally.
    unavailable: u32,
    /// Answer upload starts (`POST …/blobs/uploads/`) with 404 and this body.
    missing_repository: Option<String>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Query strings of token requests that presented the right credentials.
    token_queries: Vec<String>,
    /// 503s served.
    unavailable_served: u32,
    /// Requests forwarded to the registry with the right token.
    forwarded: u32,
    /// Signed JWT assertions exchanged at the Google token endpoint.
    google_exchanges: u32,
    /// Form fields of each token exchange at the fake STS.
    sts_exchanges: Vec<Vec<(String, String)>>,
    /// Authorization headers of each call to the fake IAM generateAccessToken.
    impersonations: Vec<String>,
    /// The access token each accepted `oauth2accesstoken` login presented.
    google_logins: Vec<String>,
    /// Metadata-server token requests that carried `Metadata-Flavor: Google`.
    metadata_requests: u32,
    /// AWS instance-metadata requests that carried IMDSv2's session token.
    aws_metadata_requests: u32,
    /// The signed GetCallerIdentity requests AWS subject tokens held, decoded.
    aws_requests: Vec<serde_json::Value>,
}

#[derive(Clone)]
struct Front {
    registry: String,
    me: String,
    faults: Arc<Mutex<Faults>>,
    seen: Arc<Mutex<Seen>>,
    http: reqwest::Client,
    /// The public key the service-account JWTs must verify with (openssl), once a test set it.
    service_account_public_key: Arc<Mutex<Option<PathBuf>>>,
}

/// The auth front, on its own runtime and port; stops when the test ends.
struct Running {
    front: Front,
    port: u16,
    _registry: Registry,
    _runtime: tokio::runtime::Runtime,
}

impl Running {
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.front.faults.lock().unwrap()
    }
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.front.seen.lock().unwrap()
    }
}

fn start_front() -> Running {
    ferry::install_crypto_provider();
    let registry = Registry::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let front = Front {
        registry: registry.host(),
        me: format!("127.0.0.1:{port}"),
        faults: Arc::default(),
        seen: Arc::default(),
        http: reqwest::Client::new(),
        service_account_public_key: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/token", axum::routing::get(token))
        .route("/oauth2/token", axum::routing::post(google_token))
        .route("/sts/v1/token", axum::routing::post(sts_token))
        .route(
            "/computeMetadata/v1/instance/service-accounts/default/token",
            axum::routing::get(metadata_token),
        )
        .route("/oidc/token", axum::routing::get(oidc_url_source))
        .route("/aws/token", axum::routing::put(aws_imds_session))
        .route("/aws/zone", axum::routing::get(aws_metadata))
        .route("/aws/creds", axum::routing::get(aws_metadata))
        .route("/aws/creds/{role}", axum::routing::get(aws_metadata))
        .route(
            "/iam/{*rest}",
            axum::routing::post(iam_generate_access_token),
        )
        .fallback(registry_api)
        .with_state(front.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });
    Running {
        front,
        port,
        _registry: registry,
        _runtime: runtime,
    }
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn token(State(front): State<Front>, request: Request) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let accepted = [
        basic(USER, PASSWORD),
        basic("oauth2accesstoken", GOOGLE_TOKEN),
        basic("oauth2accesstoken", USER_TOKEN),
    ];
    if !given.is_some_and(|g| accepted.iter().any(|a| a == g)) {
        return reply(StatusCode::UNAUTHORIZED, r#"{"details":"bad credentials"}"#);
    }
    for google in [GOOGLE_TOKEN, USER_TOKEN] {
        if given == Some(basic("oauth2accesstoken", google).as_str()) {
            front.seen.lock().unwrap().google_logins.push(google.into());
        }
    }
    let query = request.uri().query().unwrap_or_default().to_string();
    front.seen.lock().unwrap().token_queries.push(query);
    reply(StatusCode::OK, &format!(r#"{{"token":"{TOKEN}"}}"#))
}

/// Google's OAuth token endpoint: a service-account key's signed JWT (RFC 7523), whose
/// signature openssl checks against the key's public half and whose claims must name the
/// account, this endpoint and the cloud-platform scope; or an authorized user's refresh token.
async fn google_token(State(front): State<Front>, body: String) -> Response {
    let fields = form(&body);
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
    match get("grant_type").as_deref() {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let public_key = front.service_account_public_key.lock().unwrap().clone();
            let verdict = match (get("assertion"), public_key) {
                (Some(jwt), Some(key)) => check_service_account_jwt(&jwt, &key, &front.me),
                _ => Err("no assertion, or no key to check it with".to_string()),
            };
            if let Err(why) = verdict {
                return reply(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({"error": "invalid_grant", "error_description": why})
                        .to_string(),
                );
            }
            front.seen.lock().unwrap().google_exchanges += 1;
            reply(
                StatusCode::OK,
                &format!(
                    r#"{{"access_token":"{GOOGLE_TOKEN}","expires_in":3600,"token_type":"Bearer"}}"#
                ),
            )
        }
        Some("refresh_token")
            if get("refresh_token").as_deref() == Some(REFRESH_TOKEN)
                && get("client_id").as_deref() == Some("client-1")
                && get("client_secret").as_deref() == Some("client-secret-1") =>
        {
            reply(
                StatusCode::OK,
                &format!(
                    r#"{{"access_token":"{USER_TOKEN}","expires_in":3599,"token_type":"Bearer"}}"#
                ),
            )
        }
        _ => reply(
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_grant","error_description":"Bad Request"}"#,
        ),
    }
}

/// A service-account JWT: RS256 by the key whose public half is `public_key`, with the
/// claims Google's token endpoint requires.
fn check_service_account_jwt(jwt: &str, public_key: &Path, me: &str) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not a JWT".into());
    };
    let json = |part: &str| -> Result<serde_json::Value, String> {
        serde_json::from_slice(&b64.decode(part).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    };
    let (header, claims) = (json(header)?, json(claims)?);
    if header["alg"] != "RS256" || header["kid"] != "key-7" {
        return Err(format!("header {header}"));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let iat = claims["iat"].as_u64().unwrap_or(0);
    if claims["iss"] != "ci@ferry-test.iam.gserviceaccount.com"
        || claims["aud"] != format!("http://{me}/oauth2/token")
        || claims["scope"] != "https://www.googleapis.com/auth/cloud-platform"
        || iat.abs_diff(now) > 300
        || claims["exp"].as_u64() != Some(iat + 3600)
    {
        return Err(format!("claims {claims}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let (input, sig) = (dir.path().join("input"), dir.path().join("sig"));
    std::fs::write(&input, format!("{}.{}", parts[0], parts[1])).unwrap();
    std::fs::write(&sig, b64.decode(signature).map_err(|e| e.to_string())?).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public_key)
        .arg("-signature")
        .arg(&sig)
        .arg(&input)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "the signature does not verify: {}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(())
}

/// The metadata server's token endpoint (GCE_METADATA_HOST points here): only for requests
/// with `Metadata-Flavor: Google` and the cloud-platform scope.
async fn metadata_token(State(front): State<Front>, request: Request) -> Response {
    let flavor = request
        .headers()
        .get("metadata-flavor")
        .and_then(|v| v.to_str().ok());
    let query = request.uri().query().unwrap_or_default();
    if flavor != Some("Google")
        || !query.contains("scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform")
    {
        return reply(StatusCode::FORBIDDEN, "missing Metadata-Flavor");
    }
    front.seen.lock().unwrap().metadata_requests += 1;
    reply(
        StatusCode::OK,
        &format!(r#"{{"access_token":"{GOOGLE_TOKEN}","expires_in":3599,"token_type":"Bearer"}}"#),
    )
}

/// A URL credential source (as on Azure or a CI runner's token service): JSON, behind a header.
async fn oidc_url_source(request: Request) -> Response {
    if request
        .headers()
        .get("x-oidc-request")
        .and_then(|v| v.to_str().ok())
        != Some("yes")
    {
        return reply(StatusCode::UNAUTHORIZED, "{}");
    }
    reply(
        StatusCode::OK,
        &serde_json::json!({ "value": SUBJECT_TOKEN }).to_string(),
    )
}

/// AWS IMDSv2: a session token for a PUT that says how long it should last.
async fn aws_imds_session(request: Request) -> Response {
    if request
        .headers()
        .get("x-aws-ec2-metadata-token-ttl-seconds")
        .is_none()
    {
        return reply(StatusCode::BAD_REQUEST, "");
    }
    reply(StatusCode::OK, IMDS_SESSION)
}

/// AWS instance metadata (only with IMDSv2's session token): the zone, the role, its keys.
async fn aws_metadata(State(front): State<Front>, request: Request) -> Response {
    let session = request
        .headers()
        .get("x-aws-ec2-metadata-token")
        .and_then(|v| v.to_str().ok());
    if session != Some(IMDS_SESSION) {
        return reply(StatusCode::UNAUTHORIZED, "");
    }
    front.seen.lock().unwrap().aws_metadata_requests += 1;
    match request.uri().path() {
        "/aws/zone" => reply(StatusCode::OK, "us-east-2b"),
        "/aws/creds" => reply(StatusCode::OK, "ferry-role\n"),
        "/aws/creds/ferry-role" => reply(
            StatusCode::OK,
            &serde_json::json!({
                "Code": "Success",
                "AccessKeyId": AWS_KEY_ID,
                "SecretAccessKey": AWS_SECRET,
                "Token": AWS_SESSION,
            })
            .to_string(),
        ),
        _ => reply(StatusCode::NOT_FOUND, ""),
    }
}

/// Whether an AWS subject token is the signed GetCallerIdentity request Google's STS expects:
/// for us-east-2, POST, bound to AUDIENCE, signed with the role's key and session token (the
/// signature itself is checked against Google's published vectors in ferry-oci's aws tests).
fn aws_request_is_well_formed(request: &serde_json::Value) -> bool {
    let header = |name: &str| {
        request["headers"].as_array().and_then(|hs| {
            hs.iter()
                .find(|h| h["key"] == name)
                .and_then(|h| h["value"].as_str())
        })
    };
    request["url"] == "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
        && request["method"] == "POST"
        && header("host") == Some("sts.us-east-2.amazonaws.com")
        && header("x-goog-cloud-target-resource") == Some(AUDIENCE)
        && header("x-amz-security-token") == Some(AWS_SESSION)
        && header("x-amz-date").is_some_and(|d| d.len() == 16 && d.ends_with('Z'))
        && header("Authorization").is_some_and(|a| {
            a.starts_with(&format!("AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/"))
                && a.contains("/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token;x-goog-cloud-target-resource, Signature=")
        })
}

fn percent_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// `application/x-www-form-urlencoded` → pairs (what the auth library sends).
fn form(body: &str) -> Vec<(String, String)> {
    let decode = percent_decode;
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Google's Security Token Service (RFC 8693 token exchange): the OIDC subject token for a
/// federated access token; GOOGLE_TOKEN when used directly, FEDERATED_TOKEN when it is for
/// impersonating a service account (scope iam).
async fn sts_token(State(front): State<Front>, body: String) -> Response {
    let fields = form(&body);
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
    front
        .seen
        .lock()
        .unwrap()
        .sts_exchanges
        .push(fields.clone());
    let aws = get("subject_token_type").as_deref() == Some(AWS_TOKEN_TYPE);
    if aws {
        let request: serde_json::Value =
            serde_json::from_str(&percent_decode(&get("subject_token").unwrap_or_default()))
                .unwrap_or_default();
        let ok = aws_request_is_well_formed(&request);
        front.seen.lock().unwrap().aws_requests.push(request);
        if !ok {
            return reply(
                StatusCode::BAD_REQUEST,
                r#"{"error":"invalid_grant","error_description":"the AWS request is not GetCallerIdentity signed for this audience"}"#,
            );
        }
    }
    if get("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:token-exchange")
        || (!aws && get("subject_token").as_deref() != Some(SUBJECT_TOKEN))
        || get("audience").as_deref() != Some(AUDIENCE)
    {
        return reply(StatusCode::BAD_REQUEST, r#"{"error":"invalid_grant"}"#);
    }
    let token = if get("scope").is_some_and(|s| s.ends_with("/auth/iam")) {
        FEDERATED_TOKEN
    } else {
        GOOGLE_TOKEN
    };
    reply(
        StatusCode::OK,
        &format!(
            r#"{{"access_token":"{token}","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}}"#
        ),
    )
}

/// IAM Credentials' generateAccessToken: the federated token for a service account's token.
async fn iam_generate_access_token(State(front): State<Front>, request: Request) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    front
        .seen
        .lock()
        .unwrap()
        .impersonations
        .push(given.clone());
    if given != format!("Bearer {FEDERATED_TOKEN}") && given != format!("Bearer {USER_TOKEN}") {
        return reply(StatusCode::UNAUTHORIZED, r#"{"error":{"code":401}}"#);
    }
    reply(
        StatusCode::OK,
        &format!(r#"{{"accessToken":"{GOOGLE_TOKEN}","expireTime":"2099-01-01T00:00:00Z"}}"#),
    )
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

async fn registry_api(State(front): State<Front>, request: Request) -> Response {
    {
        let mut faults = front.faults.lock().unwrap();
        if faults.unavailable > 0 {
            faults.unavailable -= 1;
            front.seen.lock().unwrap().unavailable_served += 1;
            return reply(StatusCode::SERVICE_UNAVAILABLE, "{}");
        }
    }
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized {
        let mut resp = reply(
            StatusCode::UNAUTHORIZED,
            r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        );
        let challenge = format!(
            r#"Bearer realm="http://{}/token",service="ferry-test",scope="repository:hello:pull,push""#,
            front.me
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&challenge).unwrap(),
        );
        return resp;
    }
    let path = request.uri().path().to_string();
    if request.method() == axum::http::Method::POST && path.ends_with("/blobs/uploads/") {
        let missing = front.faults.lock().unwrap().missing_repository.clone();
        if let Some(body) = missing {
            return reply(StatusCode::NOT_FOUND, &body);
        }
    }
    front.seen.lock().unwrap().forwarded += 1;
    forward(&front, request).await
}

/// Sends the request on to the real registry; `Location` headers point back at the front.
async fn forward(front: &Front, request: Request) -> Response {
    proxy_to_registry(&front.http, &front.registry, &front.me, request, None).await
}

/// A directory with a `ferry.toml` and an image in ferry's layout, built by the library.
struct Project {
    dir: tempfile::TempDir,
    digest: String,
}

fn project() -> Project {
    let dir = tempfile::tempdir().unwrap();
    // Named in full: this directory is no cargo project for ferry to ask.
    std::fs::write(
        dir.path().join("ferry.toml"),
        "[service]\npackage = \"hello\"\nbinary = \"hello\"\n",
    )
    .unwrap();
    let binary = dir.path().join("hello-bin");
    std::fs::write(&binary, b"\x7fELF not really, but bytes to ship").unwrap();
    let spec = ferry::image::ImageSpec {
        binary,
        binary_name: "hello".into(),
        port: 8000,
        user: 65532,
        args: Vec::new(),
        env: vec!["PORT=8000".into()],
        files: Vec::new(),
        ca_certificates: false,
        tag: "0123456789abcdef0123456789abcdef01234567".into(),
        revision: "0123456789abcdef0123456789abcdef01234567".into(),
        created: "2026-01-01T00:00:00Z".into(),
        created_unix: 1_767_225_600,
        source: None,
        title: "hello".into(),
    };
    let layout = dir.path().join("target/ferry/oci/hello");
    let image = ferry::image::assemble(&spec, &layout).unwrap();
    Project {
        digest: image.manifest.digest,
        dir,
    }
}

/// A bin directory holding `docker-credential-NAME`, a shell script with `script_body`.
fn helper(name: &str, script_body: &str) -> tempfile::TempDir {
    helper_named(&format!("docker-credential-{name}"), script_body)
}

/// A bin directory holding the executable `name`, a shell script with `script_body`.
fn helper_named(name: &str, script_body: &str) -> tempfile::TempDir {
    let bin = tempfile::tempdir().unwrap();
    let path = bin.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script_body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn docker_config(host: &str, helper: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"credHelpers":{{"{host}":"{helper}"}}}}"#),
    )
    .unwrap();
    dir
}

/// PATH with `bin` in front.
fn path_with(bin: &Path) -> OsString {
    std::env::join_paths(
        std::iter::once(PathBuf::from(bin)).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap()
}

/// `ferry -vv push --any-commit [extra…] --to REPO` in `project`, every log at trace, with
/// `env` on top of the test's environment.
fn ferry_push(project: &Path, to: &str, extra: &[&str], env: &[(&str, &OsStr)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["-vv", "push", "--any-commit"])
        .args(extra)
        .args(["--to", to])
        .current_dir(project)
        // AWS keys only as a test gives them.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .envs(env.iter().copied())
        .env("FERRY_LOG", "trace")
        .env("FERRY_OUTPUT", "plain")
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

/// A push with docker-config credentials (`docker`) and credential helpers from `bin`.
fn push(project: &Path, to: &str, docker: &Path, bin: &Path) -> Output {
    let path = path_with(bin);
    ferry_push(
        project,
        to,
        &[],
        &[("DOCKER_CONFIG", docker.as_os_str()), ("PATH", &path)],
    )
}

/// Asserts the push failed and claimed no reference; returns what it said on stderr.
fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "{}", stderr(out));
    assert!(
        stdout(out).is_empty(),
        "no reference claimed: {}",
        stdout(out)
    );
    stderr(out)
}

/// Neither the helper's password, the Google access token, nor the registry's bearer token,
/// nor the Basic headers made of them, appear anywhere in what ferry printed.
fn assert_no_secret(out: &Output) {
    let all = format!("{}{}", stdout(out), stderr(out));
    let encode = |raw: String| base64::engine::general_purpose::STANDARD.encode(raw);
    let basic_password = encode(format!("{USER}:{PASSWORD}"));
    let basic_google = encode(format!("oauth2accesstoken:{GOOGLE_TOKEN}"));
    for secret in [
        PASSWORD,
        TOKEN,
        GOOGLE_TOKEN,
        SUBJECT_TOKEN,
        FEDERATED_TOKEN,
        REFRESH_TOKEN,
        USER_TOKEN,
        AWS_SECRET,
        AWS_SESSION,
        IMDS_SESSION,
        "client-secret-1",
        &basic_password,
        &basic_google,
    ] {
        assert!(!all.contains(secret), "a secret reached the output:\n{all}");
    }
}

/// The registry's own view: the manifest under `tag` has `digest`.
fn registry_has(front: &Running, tag: &str, digest: &str) {
    let url = format!("http://{}/v2/hello/manifests/{tag}", front.front.registry);
    let out = run_ok(Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &url,
    ]));
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        head.contains(&format!("docker-content-digest: {digest}")),
        "{head}"
    );
}

#[test]
fn a_bearer_challenge_is_answered_with_credential_helper_credentials_and_no_secret_is_printed() {
    require_tool("curl", "apt-get install curl");
    let front = start_front();
    let project = project();
    let bin = helper(
        "ferrytest",
        &format!(
            r#"read host; [ "$host" = "{}" ] || exit 3; printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}' "$host""#,
            front.host()
        ),
    );
    let docker = docker_config(&front.host(), "ferrytest");
    let to = format!("{}/hello", front.host());

    let out = push(project.dir.path(), &to, docker.path(), bin.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{to}@{}", project.digest));
    assert_no_secret(&out);

    let seen = front.seen();
    assert!(
        !seen.token_queries.is_empty(),
        "the token realm was asked with the helper's credentials"
    );
    for query in &seen.token_queries {
        assert!(query.contains("service=ferry-test"), "{query}");
        assert!(
            query.contains("scope=repository%3Ahello%3Apull%2Cpush"),
            "{query}"
        );
    }
    assert!(seen.forwarded >= 4, "HEADs, uploads and the manifest");
    drop(seen);
    registry_has(
        &front,
        "0123456789abcdef0123456789abcdef01234567",
        &project.digest,
    );
}

#[test]
fn a_failing_credential_helper_is_named_with_its_message() {
    let front = start_front();
    let project = project();
    let bin = helper(
        "ferrybad",
        "echo 'credentials not found in native keychain' >&2; exit 1",
    );
    let docker = docker_config(&front.host(), "ferrybad");
    let out = push(
        project.dir.path(),
        &format!("{}/hello", front.host()),
        docker.path(),
        bin.path(),
    );
    let err = failed(&out);
    assert!(
        err.contains(&format!(
            "credential helper docker-credential-ferrybad failed for {}",
            front.host()
        )) && err.contains("credentials not found in native keychain"),
        "{err}"
    );
    assert_eq!(
        front.seen().forwarded,
        0,
        "nothing was sent without credentials"
    );
}

#[test]
fn wrong_helper_credentials_at_the_token_realm_name_the_registry_and_the_helper() {
    let front = start_front();
    let project = project();
    let bin = helper(
        "ferrywrong",
        &format!(r#"printf '{{"Username":"{USER}","Secret":"not-the-password"}}'"#),
    );
    let docker = docker_config(&front.host(), "ferrywrong");
    let out = push(
        project.dir.path(),
        &format!("{}/hello", front.host()),
        docker.path(),
        bin.path(),
    );
    let err = failed(&out);
    assert!(
        err.contains(&format!(
            "the registry {} refused the credentials",
            front.host()
        )) && err.contains("docker-credential-ferrywrong"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");
}

fn helper_for(front: &Running) -> (tempfile::TempDir, tempfile::TempDir) {
    let bin = helper(
        "ferrytest",
        &format!(r#"printf '{{"Username":"{USER}","Secret":"{PASSWORD}"}}'"#),
    );
    (bin, docker_config(&front.host(), "ferrytest"))
}

#[test]
fn transient_unavailability_is_retried_and_the_push_succeeds() {
    let front = start_front();
    let project = project();
    let (bin, docker) = helper_for(&front);
    front.faults().unavailable = 2;
    let to = format!("{}/hello", front.host());
    let out = push(project.dir.path(), &to, docker.path(), bin.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{to}@{}", project.digest));
    assert_eq!(front.seen().unavailable_served, 2);
    assert!(
        stderr(&out).contains("2 blobs uploaded"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_registry_that_stays_unavailable_is_given_up_on_after_four_attempts() {
    let front = start_front();
    let project = project();
    let (bin, docker) = helper_for(&front);
    front.faults().unavailable = 1000;
    let started = Instant::now();
    let out = push(
        project.dir.path(),
        &format!("{}/hello", front.host()),
        docker.path(),
        bin.path(),
    );
    let err = failed(&out);
    assert!(err.contains("HTTP 503"), "{err}");
    assert_eq!(
        front.seen().unavailable_served,
        4,
        "four attempts, then stop"
    );
    // Backoff between attempts: 0.4 + 0.8 + 1.6 s.
    assert!(started.elapsed() >= Duration::from_millis(2800));
}

#[test]
fn a_missing_repository_is_named_with_the_fix() {
    let front = start_front();
    let project = project();
    let (bin, docker) = helper_for(&front);
    // Artifact Registry's answer when the repository was never created.
    front.faults().missing_repository = Some(
        r#"{"errors":[{"code":"NAME_UNKNOWN","message":"Repository \"hello\" not found"}]}"#.into(),
    );
    let out = push(
        project.dir.path(),
        &format!("{}/hello", front.host()),
        docker.path(),
        bin.path(),
    );
    let err = failed(&out);
    assert!(
        err.contains(&format!(
            "the registry {} has no repository hello",
            front.host()
        )),
        "{err}"
    );
    assert!(err.contains("hint: create it first"), "{err}");

    // Some registries answer the same situation with an empty 404.
    front.faults().missing_repository = Some(String::new());
    let out = push(
        project.dir.path(),
        &format!("{}/hello", front.host()),
        docker.path(),
        bin.path(),
    );
    let err = failed(&out);
    assert!(err.contains("has no repository hello"), "{err}");
}

/// A service-account key (as `gcloud iam service-accounts keys create` writes) whose token
/// endpoint is the front: `--auth google` signs a JWT with it and exchanges it for an access
/// token, which the registry's token realm then accepts as `oauth2accesstoken`.
#[test]
fn google_service_account_credentials_are_exchanged_for_an_access_token_that_never_prints() {
    require_tool("openssl", "apt-get install openssl");
    let front = start_front();
    let project = project();
    let keys = tempfile::tempdir().unwrap();
    let (pem, public) = rsa_key(keys.path(), "sa");
    *front.front.service_account_public_key.lock().unwrap() = Some(public);
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "ferry-test",
        "private_key_id": "key-7",
        "private_key": pem,
        "client_email": "ci@ferry-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": format!("http://{}/oauth2/token", front.host()),
    });
    let key_path = keys.path().join("key.json");
    std::fs::write(&key_path, key.to_string()).unwrap();
    let empty_docker = tempfile::tempdir().unwrap();
    let to = format!("{}/hello", front.host());

    let out = ferry_push(
        project.dir.path(),
        &to,
        &["--auth", "google"],
        &[
            ("DOCKER_CONFIG", empty_docker.path().as_os_str()),
            ("HOME", keys.path().as_os_str()),
            ("GOOGLE_APPLICATION_CREDENTIALS", key_path.as_os_str()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{to}@{}", project.digest));
    assert!(front.seen().google_exchanges >= 1);
    assert_no_secret(&out);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("PRIVATE KEY"), "the key leaked:\n{all}");

    // The endpoint really checks the signature: with another key's public half registered,
    // the same push is refused, and ferry says what the endpoint said.
    let (_, other) = rsa_key(keys.path(), "other");
    *front.front.service_account_public_key.lock().unwrap() = Some(other);
    let out = push_google(
        &front,
        keys.path(),
        &[("GOOGLE_APPLICATION_CREDENTIALS", key_path.as_os_str())],
    );
    let err = failed(&out);
    assert!(
        err.contains("the service-account token exchange failed")
            && err.contains("invalid_grant (the signature does not verify"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY"), "{err}");

    // A key file that is not a key, and a gcloud that is not logged in: the error names
    // Google credentials, both causes, and how to fix them.
    std::fs::write(&key_path, "{}").unwrap();
    let gcloud = helper_named(
        "gcloud",
        "echo 'ERROR: (gcloud.auth.print-access-token) You do not currently have an active account selected.' >&2; exit 1",
    );
    let out = ferry_push(
        project.dir.path(),
        &to,
        &["--auth", "google"],
        &[
            ("PATH", gcloud.path().as_os_str()),
            ("DOCKER_CONFIG", empty_docker.path().as_os_str()),
            ("HOME", keys.path().as_os_str()),
            ("GOOGLE_APPLICATION_CREDENTIALS", key_path.as_os_str()),
        ],
    );
    let err = failed(&out);
    assert!(
        err.contains(&format!(
            "cannot get Google credentials for {}",
            front.host()
        )) && err.contains("You do not currently have an active account selected")
            && err.contains("external_account configuration"),
        "{err}"
    );
}

/// Workload identity federation (CircleCI OIDC): GOOGLE_APPLICATION_CREDENTIALS holds an
/// `external_account` configuration whose token_url (and impersonation URL) is the front. ferry
/// exchanges the OIDC token itself, with no gcloud on PATH, and nothing secret is printed.
fn push_with_external_account(front: &Running, impersonate: bool) -> Output {
    let project = project();
    let dir = tempfile::tempdir().unwrap();
    let subject = dir.path().join("oidc_token");
    std::fs::write(&subject, SUBJECT_TOKEN).unwrap();
    let mut config = serde_json::json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("http://{}/sts/v1/token", front.host()),
        "credential_source": { "file": subject },
    });
    if impersonate {
        config["service_account_impersonation_url"] = serde_json::json!(format!(
            "http://{}/iam/v1/projects/-/serviceAccounts/ci@ferry-test.iam.gserviceaccount.com:generateAccessToken",
            front.host()
        ));
    }
    let config_path = dir.path().join("oidc.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let to = format!("{}/hello", front.host());
    let out = ferry_push(
        project.dir.path(),
        &to,
        &["--auth", "google"],
        &[
            ("PATH", empty.path().as_os_str()),
            ("DOCKER_CONFIG", empty.path().as_os_str()),
            ("HOME", dir.path().as_os_str()),
            ("GOOGLE_APPLICATION_CREDENTIALS", config_path.as_os_str()),
        ],
    );
    assert_no_secret(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{to}@{}", project.digest));
    out
}

#[test]
fn external_account_credentials_are_exchanged_at_the_sts_without_gcloud() {
    let front = start_front();
    push_with_external_account(&front, false);
    let seen = front.seen();
    assert_eq!(
        seen.sts_exchanges.len(),
        1,
        "one exchange, then the token is reused"
    );
    let fields = &seen.sts_exchanges[0];
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    assert_eq!(
        get("requested_token_type"),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    assert_eq!(
        get("subject_token_type"),
        Some("urn:ietf:params:oauth:token-type:jwt")
    );
    assert_eq!(
        get("scope"),
        Some("https://www.googleapis.com/auth/cloud-platform")
    );
    assert!(seen.impersonations.is_empty());
    assert!(
        !seen.token_queries.is_empty(),
        "the registry took the token"
    );
}

#[test]
fn external_account_credentials_impersonate_the_service_account_when_configured() {
    let front = start_front();
    push_with_external_account(&front, true);
    let seen = front.seen();
    assert_eq!(seen.sts_exchanges.len(), 1);
    assert_eq!(seen.impersonations, [format!("Bearer {FEDERATED_TOKEN}")]);
    assert!(
        !seen.token_queries.is_empty(),
        "the registry took the token"
    );
}

#[test]
fn a_failing_token_exchange_names_workload_identity_and_the_fix() {
    let front = start_front();
    let project = project();
    let dir = tempfile::tempdir().unwrap();
    let subject = dir.path().join("oidc_token");
    std::fs::write(&subject, "not-the-subject-token").unwrap();
    let config = serde_json::json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("http://{}/sts/v1/token", front.host()),
        "credential_source": { "file": subject },
    });
    let config_path = dir.path().join("oidc.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = ferry_push(
        project.dir.path(),
        &format!("{}/hello", front.host()),
        &["--auth", "google"],
        &[
            ("PATH", empty.path().as_os_str()),
            ("DOCKER_CONFIG", empty.path().as_os_str()),
            ("HOME", dir.path().as_os_str()),
            ("GOOGLE_APPLICATION_CREDENTIALS", config_path.as_os_str()),
        ],
    );
    let err = failed(&out);
    assert!(
        err.contains(&format!(
            "cannot get Google credentials for {}",
            front.host()
        )) && err.contains("the external_account token exchange failed")
            && err.contains("external_account configuration"),
        "{err}"
    );
    assert!(err.contains("invalid_grant"), "the STS's answer: {err}");
    assert!(!err.contains("not-the-subject-token"), "{err}");
    assert_eq!(front.seen().forwarded, 0);
}

/// An RSA key as Google issues service-account keys (PKCS#8 PEM), and its public half's file.
fn rsa_key(dir: &Path, name: &str) -> (String, PathBuf) {
    require_tool("openssl", "apt-get install openssl");
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&private),
    );
    run_ok(
        Command::new("openssl")
            .arg("pkey")
            .arg("-in")
            .arg(&private)
            .arg("-pubout")
            .arg("-out")
            .arg(&public),
    );
    (std::fs::read_to_string(&private).unwrap(), public)
}

/// `ferry push --auth google` with no gcloud and no docker config: only what `env` gives.
fn push_google(front: &Running, home: &Path, env: &[(&str, &OsStr)]) -> Output {
    let project = project();
    let empty = tempfile::tempdir().unwrap();
    let mut all: Vec<(&str, &OsStr)> = vec![
        ("PATH", empty.path().as_os_str()),
        ("DOCKER_CONFIG", empty.path().as_os_str()),
        ("HOME", home.as_os_str()),
    ];
    all.extend_from_slice(env);
    let to = format!("{}/hello", front.host());
    let out = ferry_push(project.dir.path(), &to, &["--auth", "google"], &all);
    assert_no_secret(&out);
    if out.status.success() {
        assert_eq!(stdout(&out), format!("{to}@{}", project.digest));
    }
    out
}

/// `gcloud auth application-default login` leaves a refresh token in the gcloud config
/// directory; with no GOOGLE_APPLICATION_CREDENTIALS ferry finds it there and refreshes it.
#[test]
fn an_authorized_users_refresh_token_from_gclouds_default_file_logs_in() {
    let front = start_front();
    let home = tempfile::tempdir().unwrap();
    let gcloud = home.path().join("gcloud-config");
    std::fs::create_dir_all(&gcloud).unwrap();
    let user = serde_json::json!({
        "type": "authorized_user",
        "client_id": "client-1",
        "client_secret": "client-secret-1",
        "refresh_token": REFRESH_TOKEN,
        "token_uri": format!("http://{}/oauth2/token", front.host()),
    });
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        user.to_string(),
    )
    .unwrap();
    let out = push_google(
        &front,
        home.path(),
        &[("CLOUDSDK_CONFIG", gcloud.as_os_str())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("authorized user"), "{}", stderr(&out));
    assert_eq!(front.seen().google_logins, [USER_TOKEN]);

    // A revoked refresh token: the endpoint's answer and the fix.
    let mut revoked = user;
    revoked["refresh_token"] = "1//revoked".into();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        revoked.to_string(),
    )
    .unwrap();
    let out = push_google(
        &front,
        home.path(),
        &[("CLOUDSDK_CONFIG", gcloud.as_os_str())],
    );
    let err = failed(&out);
    assert!(
        err.contains("the refresh token was refused")
            && err.contains("invalid_grant")
            && err.contains("gcloud auth application-default login"),
        "{err}"
    );
}

/// `gcloud auth application-default login --impersonate-service-account`: the user's token
/// is exchanged at IAM Credentials for the service account's, which logs in.
#[test]
fn an_impersonated_service_account_logs_in_with_the_accounts_token() {
    let front = start_front();
    let home = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url": format!(
            "http://{}/iam/v1/projects/-/serviceAccounts/deploy@ferry-test.iam.gserviceaccount.com:generateAccessToken",
            front.host()
        ),
        "delegates": [],
        "source_credentials": {
            "type": "authorized_user",
            "client_id": "client-1",
            "client_secret": "client-secret-1",
            "refresh_token": REFRESH_TOKEN,
            "token_uri": format!("http://{}/oauth2/token", front.host()),
        },
    });
    let path = home.path().join("adc.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = push_google(
        &front,
        home.path(),
        &[("GOOGLE_APPLICATION_CREDENTIALS", path.as_os_str())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = front.seen();
    assert_eq!(seen.impersonations, [format!("Bearer {USER_TOKEN}")]);
    assert_eq!(seen.google_logins, [GOOGLE_TOKEN]);
}

/// On Compute Engine and GKE the metadata server gives the machine's (or the pod's) token;
/// GCE_METADATA_HOST points ferry at the fake one.
#[test]
fn with_no_credentials_file_the_metadata_server_gives_the_token() {
    let front = start_front();
    let home = tempfile::tempdir().unwrap();
    let host = front.host();
    let out = push_google(
        &front,
        home.path(),
        &[("GCE_METADATA_HOST", OsStr::new(&host))],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the metadata server"),
        "{}",
        stderr(&out)
    );
    let seen = front.seen();
    assert_eq!(seen.metadata_requests, 1);
    assert_eq!(seen.google_logins, [GOOGLE_TOKEN]);
}

/// A URL credential source whose answer is JSON (`format.subject_token_field_name`), asked
/// with the configuration's headers.
#[test]
fn an_external_account_reads_its_subject_token_from_a_url_source() {
    let front = start_front();
    let home = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("http://{}/sts/v1/token", front.host()),
        "credential_source": {
            "url": format!("http://{}/oidc/token", front.host()),
            "headers": { "X-Oidc-Request": "yes" },
            "format": { "type": "json", "subject_token_field_name": "value" },
        },
    });
    let path = home.path().join("oidc.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = push_google(
        &front,
        home.path(),
        &[("GOOGLE_APPLICATION_CREDENTIALS", path.as_os_str())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(front.seen().sts_exchanges.len(), 1);
    assert_eq!(front.seen().google_logins, [GOOGLE_TOKEN]);
}

/// An executable credential source runs only when GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1
/// (as in Google's libraries), with the audience and its output_file in its environment; its
/// JSON answer's id_token is the subject token. The response it caches in its output_file is
/// used instead of running it while it has not expired.
#[test]
fn an_executable_credential_source_runs_only_when_allowed_and_its_cache_is_reused() {
    let front = start_front();
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("oidc-token");
    let cache = home.path().join("oidc-cache.json");
    let runs = home.path().join("runs");
    write_script(
        &script,
        &format!(
            "#!/bin/sh
[ \"$GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE\" = '{AUDIENCE}' ] || exit 3
[ \"$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE\" = '{cache}' ] || exit 4
echo ran >> '{runs}'
exp=$(( $(/bin/date +%s) + 3600 ))
printf '{{\"version\":1,\"success\":true,\"token_type\":\"urn:ietf:params:oauth:token-type:id_token\",\"id_token\":\"{SUBJECT_TOKEN}\",\"expiration_time\":%s}}' \"$exp\" > '{cache}'
/bin/cat '{cache}'
",
            cache = cache.display(),
            runs = runs.display()
        ),
    );
    let config = serde_json::json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "token_url": format!("http://{}/sts/v1/token", front.host()),
        "credential_source": { "executable": {
            "command": script, "timeout_millis": 5000, "output_file": cache,
        } },
    });
    let path = home.path().join("oidc.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let credentials = ("GOOGLE_APPLICATION_CREDENTIALS", path.as_os_str());
    let ran = || {
        std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .count()
    };

    let err = failed(&push_google(&front, home.path(), &[credentials]));
    assert!(
        err.contains("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1"),
        "{err}"
    );
    assert!(front.seen().sts_exchanges.is_empty());
    assert_eq!(ran(), 0);

    let allow = ("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", OsStr::new("1"));
    let out = push_google(&front, home.path(), &[credentials, allow]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(front.seen().sts_exchanges.len(), 1);
    assert_eq!(front.seen().google_logins, [GOOGLE_TOKEN]);
    assert_eq!(ran(), 1, "no cache yet: the executable ran and wrote one");

    // The cached response has not expired: the next push (another process) reuses it.
    let out = push_google(&front, home.path(), &[credentials, allow]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(front.seen().sts_exchanges.len(), 2);
    assert_eq!(ran(), 1, "the cached subject token was used");

    // Expired (or unreadable): the executable runs again.
    std::fs::write(
        &cache,
        r#"{"version":1,"success":true,"id_token":"stale","expiration_time":1}"#,
    )
    .unwrap();
    let out = push_google(&front, home.path(), &[credentials, allow]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ran(), 2, "an expired cache is not used");
    std::fs::write(&cache, "not json").unwrap();
    let out = push_google(&front, home.path(), &[credentials, allow]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ran(), 3);
    assert_eq!(front.seen().sts_exchanges.len(), 4);
}

/// An AWS credential source (workload identity federation from EC2): the region and the
/// instance role's keys from the instance metadata (IMDSv2), a GetCallerIdentity request signed
/// with them and bound to the audience as the subject token. Keys in the environment come
/// first and leave the metadata alone. No key, session token or signed request is printed.
#[test]
fn an_aws_credential_source_signs_get_caller_identity_with_the_instance_role() {
    let front = start_front();
    let home = tempfile::tempdir().unwrap();
    let base = format!("http://{}", front.host());
    let config = |environment_id: &str| {
        serde_json::json!({
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": AWS_TOKEN_TYPE,
            "token_url": format!("{base}/sts/v1/token"),
            "credential_source": {
                "environment_id": environment_id,
                "region_url": format!("{base}/aws/zone"),
                "url": format!("{base}/aws/creds"),
                "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
                "imdsv2_session_token_url": format!("{base}/aws/token"),
            },
        })
    };
    let path = home.path().join("aws.json");
    std::fs::write(&path, config("aws1").to_string()).unwrap();
    let credentials = ("GOOGLE_APPLICATION_CREDENTIALS", path.as_os_str());

    let out = push_google(&front, home.path(), &[credentials]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(front.seen().aws_requests.len(), 1);
    assert_eq!(
        front.seen().aws_metadata_requests,
        3,
        "the zone, the role, its keys"
    );
    assert_eq!(front.seen().google_logins, [GOOGLE_TOKEN]);

    // Keys and region in the environment: the metadata is not asked.
    let keys_in = |region: &'static str| {
        [
            credentials,
            ("AWS_ACCESS_KEY_ID", OsStr::new(AWS_KEY_ID)),
            ("AWS_SECRET_ACCESS_KEY", OsStr::new(AWS_SECRET)),
            ("AWS_SESSION_TOKEN", OsStr::new(AWS_SESSION)),
            ("AWS_REGION", OsStr::new(region)),
        ]
    };
    let out = push_google(&front, home.path(), &keys_in("us-east-2"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(front.seen().aws_requests.len(), 2);
    assert_eq!(front.seen().aws_metadata_requests, 3);

    // A key for another region is refused by Google's STS, with its reason.
    let err = failed(&push_google(&front, home.path(), &keys_in("eu-west-1")));
    assert!(
        err.contains("not GetCallerIdentity signed for this audience"),
        "{err}"
    );

    // Another version of AWS's source is named, not guessed at.
    std::fs::write(&path, config("aws2").to_string()).unwrap();
    let err = failed(&push_google(&front, home.path(), &[credentials]));
    assert!(err.contains("AWS version `aws2`"), "{err}");
}
