//! Secrets for the service. An environment declares where each comes from:
//!
//! ```toml
//! secrets = { DATABASE_URL = "env:PROD_DATABASE_URL", API_KEY = "gcpsm://projects/P/secrets/api-key/versions/latest" }
//! ```
//!
//! `env:VAR` reads ferry's own environment (CI's secret store); `gcpsm://` reads Google Secret
//! Manager. Values are resolved before anything is applied or started, held in [`Value`]s
//! that print as `***`, and reach only the service: its Kubernetes Secret, or the environment
//! of the local instance. Keys and sources may be printed; values never are.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// A secret's value: never printed, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Value(String);

impl Value {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where one secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `env:VAR`: a variable of ferry's own environment.
    Env(String),
    /// `gcpsm://projects/P/secrets/S/versions/V`: Google Secret Manager.
    SecretManager(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env(var) => write!(f, "env:{var}"),
            Source::SecretManager(name) => write!(f, "gcpsm://{name}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret {key}: {source_text:?} is not a source ferry knows\n  hint: write env:VARIABLE or gcpsm://projects/PROJECT/secrets/NAME/versions/VERSION"
    )]
    BadSource { key: String, source_text: String },
    #[error(
        "secret {key}: {origin} is not set, so nothing was applied or started\n  hint: export {var} (in CI: add it to the job's context)"
    )]
    MissingEnv {
        key: String,
        origin: Source,
        var: String,
    },
    #[error("secret {key}: {origin} could not be read, so nothing was applied or started: {why}")]
    SecretManager {
        key: String,
        origin: Source,
        why: String,
    },
    #[error(
        "secret {key}: the name is not a valid environment variable (letters, digits and _, not starting with a digit)"
    )]
    BadKey { key: String },
}

/// The secrets of one environment, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    values: BTreeMap<String, Value>,
}

impl Resolved {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// A digest of every key and value: it changes when any value does, so a pod template
    /// annotated with it rolls; it reveals nothing of the values.
    pub fn checksum(&self) -> String {
        let mut hash = Sha256::new();
        for (k, v) in &self.values {
            hash.update(k.as_bytes());
            hash.update([0]);
            hash.update(v.0.as_bytes());
            hash.update([0]);
        }
        hex::encode(hash.finalize())
    }

    /// A copy of `text` with every value (and its base64) replaced by `***`, for anything
    /// that might echo one back (an API error, a diff).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in self.values.values().filter(|v| !v.0.is_empty()) {
            out = out.replace(
                &v_b64(&value.0, &base64::engine::general_purpose::STANDARD),
                "***",
            );
            out = out.replace(&value.0, "***");
        }
        out
    }
}

fn v_b64(v: &str, engine: &impl base64::Engine) -> String {
    engine.encode(v.as_bytes())
}

/// Parses `env:VAR` / `gcpsm://…`.
pub fn parse_source(key: &str, text: &str) -> Result<Source, SecretError> {
    let bad = || SecretError::BadSource {
        key: key.to_string(),
        source_text: text.to_string(),
    };
    if let Some(var) = text.strip_prefix("env:") {
        if var.is_empty() {
            return Err(bad());
        }
        return Ok(Source::Env(var.to_string()));
    }
    if let Some(name) = text.strip_prefix("gcpsm://") {
        let parts: Vec<&str> = name.split('/').collect();
        let shape_ok = parts.len() == 6
            && parts[0] == "projects"
            && parts[2] == "secrets"
            && parts[4] == "versions"
            && parts.iter().all(|p| !p.is_empty());
        if !shape_ok {
            return Err(bad());
        }
        return Ok(Source::SecretManager(name.to_string()));
    }
    Err(bad())
}

/// Reads Google Secret Manager: `GET {endpoint}/v1/{name}:access` with a bearer token.
pub trait SecretManager {
    fn access(&self, name: &str)
    -> impl std::future::Future<Output = Result<Value, String>> + Send;
}

/// Secret Manager over HTTPS; the endpoint may be overridden (`FERRY_SECRETMANAGER_ENDPOINT`,
/// for tests and private endpoints).
pub struct GoogleSecretManager {
    pub endpoint: String,
    pub token: crate::registry::Secret,
}

impl SecretManager for GoogleSecretManager {
    async fn access(&self, name: &str) -> Result<Value, String> {
        use base64::Engine as _;
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let url = format!("{}/v1/{name}:access", self.endpoint.trim_end_matches('/'));
        let resp = client
            .get(&url)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {}", self.endpoint, e.without_url()))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.map_err(|e| e.without_url().to_string())?;
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no message");
            return Err(format!("HTTP {}: {message}", status.as_u16()));
        }
        let data = body["payload"]["data"]
            .as_str()
            .ok_or("the answer has no payload.data")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("payload.data is not base64: {e}"))?;
        String::from_utf8(bytes)
            .map(Value)
            .map_err(|_| "the secret is not UTF-8 text".to_string())
    }
}

/// Resolves every declared secret; the first that cannot be read stops everything.
pub async fn resolve(
    declared: &BTreeMap<String, String>,
    lookup: impl Fn(&str) -> Option<String>,
    manager: Option<&impl SecretManager>,
) -> Result<Resolved, SecretError> {
    let mut values = BTreeMap::new();
    for (key, text) in declared {
        if crate::config::parse_var(&format!("{key}=")).is_err() {
            return Err(SecretError::BadKey { key: key.clone() });
        }
        let source = parse_source(key, text)?;
        let value = match &source {
            Source::Env(var) => lookup(var)
                .map(Value)
                .ok_or_else(|| SecretError::MissingEnv {
                    key: key.clone(),
                    origin: source.clone(),
                    var: var.clone(),
                })?,
            Source::SecretManager(name) => {
                let Some(manager) = manager else {
                    return Err(SecretError::SecretManager {
                        key: key.clone(),
                        origin: source.clone(),
                        why: "no Google credentials to read Secret Manager with".into(),
                    });
                };
                manager
                    .access(name)
                    .await
                    .map_err(|why| SecretError::SecretManager {
                        key: key.clone(),
                        origin: source.clone(),
                        why,
                    })?
            }
        };
        values.insert(key.clone(), value);
    }
    Ok(Resolved { values })
}

/// The Secret Manager endpoint: `FERRY_SECRETMANAGER_ENDPOINT`, else Google's.
pub fn secret_manager_endpoint() -> String {
    std::env::var("FERRY_SECRETMANAGER_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://secretmanager.googleapis.com".into())
}

/// Resolves an environment's `secrets` with ferry's own environment and, when a `gcpsm://`
/// source is declared, Google credentials: the same chain as the registry and Cloud KMS
/// (`google::access_token`: workload identity federation, a service-account key,
/// application default credentials, the metadata server, gcloud).
pub async fn resolve_declared(
    declared: &BTreeMap<String, String>,
) -> Result<Resolved, SecretError> {
    let lookup = |var: &str| std::env::var(var).ok();
    let first_sm = declared
        .iter()
        .find(|(_, source)| source.starts_with("gcpsm://"));
    let Some((key, source)) = first_sm else {
        return resolve(declared, lookup, None::<&GoogleSecretManager>).await;
    };
    crate::install_crypto_provider();
    let token = crate::google::access_token()
        .await
        .map(|(token, _source)| token)
        .map_err(|why| SecretError::SecretManager {
            key: key.clone(),
            origin: parse_source(key, source).unwrap_or(Source::SecretManager(source.clone())),
            why: format!("no Google credentials: {why}"),
        })?;
    let manager = GoogleSecretManager {
        endpoint: secret_manager_endpoint(),
        token,
    };
    resolve(declared, lookup, Some(&manager)).await
}

/// The Kubernetes Secret holding `resolved`, named `name`, for server-side apply.
pub fn secret_object(name: &str, namespace: &str, resolved: &Resolved) -> serde_json::Value {
    use base64::Engine as _;
    let data: serde_json::Map<String, serde_json::Value> = resolved
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(v.expose().as_bytes()),
                ),
            )
        })
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { "app.kubernetes.io/managed-by": "ferry" },
        },
        "type": "Opaque",
        "data": data,
    })
}

/// The annotation on pod templates that rolls the pods when a secret changes.
pub const CHECKSUM_ANNOTATION: &str = "ferry.dev/secrets-checksum";

/// Puts the secrets' checksum on the pod template of every workload in `objects`.
pub fn annotate_templates(objects: &mut [serde_json::Value], checksum: &str) {
    for object in objects.iter_mut() {
        let kind = object["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") {
            continue;
        }
        let template = &mut object["spec"]["template"]["metadata"];
        if !template["annotations"].is_object() {
            template["annotations"] = serde_json::json!({});
        }
        template["annotations"][CHECKSUM_ANNOTATION] = serde_json::json!(checksum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl SecretManager for Fake {
        async fn access(&self, name: &str) -> Result<Value, String> {
            match name {
                "projects/p/secrets/api-key/versions/latest" => Ok(Value("sm-value".into())),
                _ => Err("HTTP 404: Secret [x] not found".into()),
            }
        }
    }

    fn declared(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn env_and_secret_manager_sources_resolve_and_never_print() {
        let d = declared(&[
            ("DATABASE_URL", "env:PROD_DB"),
            (
                "API_KEY",
                "gcpsm://projects/p/secrets/api-key/versions/latest",
            ),
        ]);
        let lookup = |v: &str| (v == "PROD_DB").then(|| "postgres://u:hunter2@db".to_string());
        let r = resolve(&d, lookup, Some(&Fake)).await.unwrap();
        assert_eq!(r.keys().collect::<Vec<_>>(), ["API_KEY", "DATABASE_URL"]);
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("sm-value"),
            "{shown}"
        );
        let redacted = r.redact("url=postgres://u:hunter2@db b64=c20tdmFsdWU=");
        assert_eq!(redacted, "url=*** b64=***");
        let before = r.checksum();
        let lookup2 = |v: &str| (v == "PROD_DB").then(|| "postgres://other".to_string());
        let r2 = resolve(&d, lookup2, Some(&Fake)).await.unwrap();
        assert_ne!(
            before,
            r2.checksum(),
            "a changed value changes the checksum"
        );
        assert!(!before.contains("hunter2"));
    }

    #[tokio::test]
    async fn a_missing_secret_names_its_key_and_source() {
        let err = resolve(&declared(&[("TOKEN", "env:NOPE")]), |_| None, Some(&Fake))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret TOKEN: env:NOPE is not set"), "{err}");
        let err = resolve(
            &declared(&[("K", "gcpsm://projects/p/secrets/gone/versions/1")]),
            |_| None,
            Some(&Fake),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("secret K: gcpsm://projects/p/secrets/gone/versions/1"),
            "{err}"
        );
        assert!(err.contains("404"), "{err}");
        for bad in ["vault:x", "env:", "gcpsm://projects/p/secrets/s"] {
            assert!(parse_source("K", bad).is_err(), "{bad}");
        }
    }
}
