//! A fake Container Analysis (Binary Authorization's attestations) on loopback, and what to
//! check of the occurrences ferry creates. It wants the bearer token `test-token`, as the
//! fake Cloud KMS does.

use base64::Engine as _;

/// How the fake Container Analysis answers `POST /v1/projects/P/occurrences`.
#[derive(Clone, Copy, PartialEq)]
pub enum Answer {
    /// Stores the occurrence and answers it with a name, as Container Analysis does.
    Create,
    /// 403 PERMISSION_DENIED, as for an account without notes.attacher.
    Refuse,
    /// 409 ALREADY_EXISTS.
    Conflict,
    /// 503 once, then as `Create`.
    BusyOnce,
}

#[derive(Default)]
pub struct Occurrences {
    /// Every request: its path and body.
    pub requests: Vec<(String, serde_json::Value)>,
    /// The occurrences stored.
    pub created: Vec<serde_json::Value>,
}

pub type SeenOccurrences = std::sync::Arc<std::sync::Mutex<Occurrences>>;

/// A fake Container Analysis on loopback: its endpoint and what it was sent. It wants the
/// same bearer token as [`fake_kms`].
pub async fn fake_container_analysis(answer: Answer) -> (String, SeenOccurrences) {
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let seen: SeenOccurrences = Default::default();
    let state = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let seen = state.clone();
            async move {
                let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer test-token");
                if !authorized {
                    return (
                        StatusCode::UNAUTHORIZED,
                        r#"{"error":{"message":"no token"}}"#.to_string(),
                    );
                }
                let path = uri.path().to_string();
                let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let mut seen = seen.lock().unwrap();
                seen.requests.push((path.clone(), doc.clone()));
                let ok_path = path.starts_with("/v1/projects/") && path.ends_with("/occurrences");
                if method != Method::POST || !ok_path {
                    return (
                        StatusCode::NOT_FOUND,
                        format!(r#"{{"error":{{"message":"no {path}"}}}}"#),
                    );
                }
                match answer {
                    Answer::Refuse => (
                        StatusCode::FORBIDDEN,
                        r#"{"error":{"code":403,"message":"Permission 'containeranalysis.notes.attachOccurrence' denied","status":"PERMISSION_DENIED"}}"#.to_string(),
                    ),
                    Answer::Conflict => (
                        StatusCode::CONFLICT,
                        r#"{"error":{"code":409,"message":"Requested entity already exists","status":"ALREADY_EXISTS"}}"#.to_string(),
                    ),
                    Answer::BusyOnce if seen.requests.len() == 1 => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"error":{"code":503,"message":"try again"}}"#.to_string(),
                    ),
                    Answer::Create | Answer::BusyOnce => {
                        let project = path.split('/').nth(3).unwrap_or_default().to_string();
                        let mut stored = doc;
                        let name = format!(
                            "projects/{project}/occurrences/occ-{}",
                            seen.created.len() + 1
                        );
                        stored["name"] = name.into();
                        seen.created.push(stored.clone());
                        (StatusCode::OK, stored.to_string())
                    }
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

/// The payload and DER signature of an ATTESTATION occurrence, with its key id.
pub fn attestation_parts(occurrence: &serde_json::Value) -> (Vec<u8>, Vec<u8>, String) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let attestation = &occurrence["attestation"];
    let payload = b64
        .decode(attestation["serializedPayload"].as_str().unwrap())
        .unwrap();
    let signatures = attestation["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 1, "{occurrence}");
    let signature = b64
        .decode(signatures[0]["signature"].as_str().unwrap())
        .unwrap();
    let id = signatures[0]["publicKeyId"].as_str().unwrap().to_string();
    (payload, signature, id)
}

/// Checks that `payload` is Binary Authorization's for `repository@digest`.
pub fn assert_binauthz_payload(payload: &[u8], repository: &str, digest: &str) {
    let doc: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(doc["critical"]["identity"]["docker-reference"], repository);
    assert_eq!(doc["critical"]["image"]["docker-manifest-digest"], digest);
    assert_eq!(
        doc["critical"]["type"],
        "Google cloud binauthz container signature"
    );
}
