//! Google access tokens for the registry, Cloud KMS, Container Analysis and Secret Manager,
//! found the way Google's client libraries find them (application default credentials):
//!
//! 1. the file `GOOGLE_APPLICATION_CREDENTIALS` names, else the one `gcloud auth
//!    application-default login` wrote. Its `type` says what it holds:
//!    - `service_account`: a key; a JWT signed with it is exchanged at its `token_uri`;
//!    - `authorized_user`: a refresh token, exchanged at Google's OAuth endpoint;
//!    - `external_account` (workload identity federation, what CI systems use instead of
//!      keys): the subject token from its `credential_source` (a file, a URL, an approved
//!      executable, or AWS: a signed GetCallerIdentity request, [`crate::aws`]) is exchanged at the Security Token Service, then, with
//!      `service_account_impersonation_url`, for a service account's token;
//!    - `impersonated_service_account`: its source credentials' token for the service
//!      account's;
//! 2. the metadata server, on Compute Engine and GKE (or wherever `GCE_METADATA_HOST` points);
//! 3. `gcloud auth print-access-token`, when nothing above gave a token.
//!
//! A token is kept for the rest of the process until a minute before it expires. Neither a
//! token nor a key nor a subject token is ever part of an error or a log line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use crate::registry::{Secret, form_encode};

/// The scope every token here is asked for.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The scope of a federated token that is only used to impersonate a service account.
const IAM: &str = "https://www.googleapis.com/auth/iam";
const OAUTH_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const STS_TOKEN_URL: &str = "https://sts.googleapis.com/v1/token";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// How long any one request to a token endpoint may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A Google access token (cloud-platform scope) and where it came from, in words for
/// messages. Application default credentials first, then `gcloud auth print-access-token`;
/// the error names what each of them said.
pub async fn access_token() -> Result<(Secret, String), String> {
    let key = std::env::var("GOOGLE_APPLICATION_CREDENTIALS").unwrap_or_default();
    if let Some(cached) = cached(&key) {
        return Ok(cached);
    }
    let library = match credentials_file() {
        Some(path) => from_file(&path).await,
        None => match metadata_host() {
            Some(host) => metadata_token(&host).await,
            None => Err("no application default credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, `gcloud auth application-default login` has not been run, and this is not a Google Cloud machine".to_string()),
        },
    };
    let fresh = match library {
        Ok(fresh) => fresh,
        Err(library_error) => match gcloud_token().await {
            Ok(token) => Fresh {
                token,
                source: "gcloud auth print-access-token".to_string(),
                // gcloud refreshes its own tokens; ask it again after a few minutes.
                lifetime: Duration::from_secs(300),
            },
            Err(gcloud_error) => {
                return Err(format!("{library_error}; and gcloud: {gcloud_error}"));
            }
        },
    };
    remember(&key, &fresh);
    Ok((fresh.token, fresh.source))
}

/// A token just issued, with how long it is good for.
struct Fresh {
    token: Secret,
    source: String,
    lifetime: Duration,
}

struct Cached {
    key: String,
    token: Secret,
    source: String,
    until: Instant,
}

static CACHE: std::sync::Mutex<Option<Cached>> = std::sync::Mutex::new(None);

fn cached(key: &str) -> Option<(Secret, String)> {
    let cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .as_ref()
        .filter(|c| c.key == key && Instant::now() < c.until)
        .map(|c| (c.token.clone(), c.source.clone()))
}

fn remember(key: &str, fresh: &Fresh) {
    // A minute of margin, so a token is not handed out just before it expires.
    let lifetime = fresh.lifetime.saturating_sub(Duration::from_secs(60));
    *CACHE.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
        key: key.to_string(),
        token: fresh.token.clone(),
        source: fresh.source.clone(),
        until: Instant::now() + lifetime,
    });
}

/// GOOGLE_APPLICATION_CREDENTIALS, else the file `gcloud auth application-default login`
/// writes (under CLOUDSDK_CONFIG, else ~/.config/gcloud), when there is one.
fn credentials_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty())
    {
        return Some(PathBuf::from(path));
    }
    let gcloud_dir = std::env::var_os("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/gcloud")))?;
    Some(gcloud_dir.join("application_default_credentials.json")).filter(|p| p.is_file())
}

/// What a credentials file holds, by its `type`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum CredentialsFile {
    ServiceAccount(ServiceAccountKey),
    AuthorizedUser(AuthorizedUser),
    ExternalAccount(Box<ExternalAccount>),
    ImpersonatedServiceAccount(Impersonated),
}

impl CredentialsFile {
    fn kind(&self) -> &'static str {
        match self {
            CredentialsFile::ServiceAccount(_) => "service-account key",
            CredentialsFile::AuthorizedUser(_) => "authorized user",
            CredentialsFile::ExternalAccount(_) => "workload identity federation",
            CredentialsFile::ImpersonatedServiceAccount(_) => "impersonated service account",
        }
    }
}

#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Deserialize)]
struct AuthorizedUser {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Deserialize)]
struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    #[serde(default)]
    token_url: Option<String>,
    credential_source: CredentialSource,
    #[serde(default)]
    service_account_impersonation_url: Option<String>,
    #[serde(default)]
    service_account_impersonation: Option<ImpersonationOptions>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    workforce_pool_user_project: Option<String>,
}

#[derive(Deserialize, Default)]
struct ImpersonationOptions {
    #[serde(default)]
    token_lifetime_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct CredentialSource {
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    executable: Option<Executable>,
    #[serde(default)]
    environment_id: Option<String>,
    #[serde(default)]
    region_url: Option<String>,
    #[serde(default)]
    regional_cred_verification_url: Option<String>,
    #[serde(default)]
    imdsv2_session_token_url: Option<String>,
    #[serde(default)]
    format: Option<SourceFormat>,
}

#[derive(Deserialize)]
struct SourceFormat {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    subject_token_field_name: Option<String>,
}

#[derive(Deserialize)]
struct Executable {
    command: String,
    #[serde(default)]
    timeout_millis: Option<u64>,
    /// Where the executable caches its response; an unexpired one there is used instead of
    /// running it again.
    #[serde(default)]
    output_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Impersonated {
    service_account_impersonation_url: String,
    source_credentials: Box<CredentialsFile>,
    #[serde(default)]
    delegates: Vec<String>,
}

async fn from_file(path: &Path) -> Result<Fresh, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the Google credentials file {shown}: {e}"))?;
    // serde's message names the field or the unknown type, never a value of the file.
    let file: CredentialsFile = serde_json::from_str(&text).map_err(|e| {
        format!("{shown} is not a Google credentials file ({e}); it needs a `type` of service_account, authorized_user, external_account or impersonated_service_account")
    })?;
    let (token, lifetime) = match &file {
        CredentialsFile::ExternalAccount(config) => {
            external_account(config).await.map_err(|e| {
                format!("the external_account configuration {shown} did not give a token: {e}")
            })?
        }
        other => token_for(other)
            .await
            .map_err(|e| format!("{shown}: {e}"))?,
    };
    Ok(Fresh {
        token,
        source: format!("{} ({shown})", file.kind()),
        lifetime,
    })
}

/// The token of any credentials but an external account's, which `from_file` words itself.
async fn token_for(file: &CredentialsFile) -> Result<(Secret, Duration), String> {
    match file {
        CredentialsFile::ServiceAccount(key) => service_account(key).await,
        CredentialsFile::AuthorizedUser(user) => authorized_user(user).await,
        CredentialsFile::ExternalAccount(config) => external_account(config).await,
        CredentialsFile::ImpersonatedServiceAccount(imp) => {
            if matches!(
                *imp.source_credentials,
                CredentialsFile::ImpersonatedServiceAccount(_)
            ) {
                return Err("its source_credentials are themselves an impersonated service account; Google allows one level".into());
            }
            let (source, _) = Box::pin(token_for(&imp.source_credentials)).await?;
            impersonate(
                &imp.service_account_impersonation_url,
                &source,
                &imp.delegates,
                3600,
            )
            .await
        }
    }
}

fn http() -> Result<reqwest::Client, String> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// A service-account key: a JWT it signs (RS256) for an access token (RFC 7523).
async fn service_account(key: &ServiceAccountKey) -> Result<(Secret, Duration), String> {
    let token_uri = key.token_uri.as_deref().unwrap_or(OAUTH_TOKEN_URL);
    let assertion = signed_jwt(key, token_uri, now_unix())?;
    let answer = post_form(
        token_uri,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ],
        None,
    )
    .await
    .map_err(|e| format!("the service-account token exchange failed: {e}"))?;
    oauth_token(&answer)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The JWT a service account presents: issued by its email, for the token endpoint, for
/// CLOUD_PLATFORM, good for an hour from `now`.
fn signed_jwt(key: &ServiceAccountKey, audience: &str, now: u64) -> Result<String, String> {
    let der =
        pem_body(&key.private_key).ok_or("its private_key is not a PEM private key".to_string())?;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| ring::signature::RsaKeyPair::from_der(&der))
        .map_err(|e| format!("its private_key is not an RSA key Google issues ({e})"))?;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
    if let Some(kid) = &key.private_key_id {
        header["kid"] = kid.clone().into();
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": CLOUD_PLATFORM,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing with its private_key failed".to_string())?;
    Ok(format!("{input}.{}", b64(&signature)))
}

/// The DER inside a PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()
        .filter(|der| !der.is_empty())
}

/// `gcloud auth application-default login`'s refresh token for an access token.
async fn authorized_user(user: &AuthorizedUser) -> Result<(Secret, Duration), String> {
    let token_uri = user.token_uri.as_deref().unwrap_or(OAUTH_TOKEN_URL);
    let answer = post_form(
        token_uri,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &user.refresh_token),
            ("client_id", &user.client_id),
            ("client_secret", &user.client_secret),
        ],
        None,
    )
    .await
    .map_err(|e| {
        format!(
            "the refresh token was refused ({e}); run `gcloud auth application-default login` again"
        )
    })?;
    oauth_token(&answer)
}

/// Workload identity federation: the subject token for a federated token at the STS
/// (RFC 8693), then, when configured, that for a service account's token.
async fn external_account(config: &ExternalAccount) -> Result<(Secret, Duration), String> {
    let subject = subject_token(config).await?;
    let impersonating = config.service_account_impersonation_url.is_some();
    let mut fields = vec![
        ("grant_type", TOKEN_EXCHANGE.to_string()),
        ("audience", config.audience.clone()),
        (
            "scope",
            if impersonating { IAM } else { CLOUD_PLATFORM }.to_string(),
        ),
        ("requested_token_type", ACCESS_TOKEN_TYPE.to_string()),
        ("subject_token_type", config.subject_token_type.clone()),
        ("subject_token", subject.expose().to_string()),
    ];
    let client = config
        .client_id
        .as_deref()
        .zip(config.client_secret.as_deref());
    if let (Some(project), None) = (&config.workforce_pool_user_project, client) {
        fields.push((
            "options",
            serde_json::json!({ "userProject": project }).to_string(),
        ));
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let token_url = config.token_url.as_deref().unwrap_or(STS_TOKEN_URL);
    let answer = post_form(token_url, &fields, client)
        .await
        .map_err(|e| format!("the external_account token exchange failed: {e}"))?;
    let (federated, lifetime) = oauth_token(&answer)?;
    match &config.service_account_impersonation_url {
        None => Ok((federated, lifetime)),
        Some(url) => {
            let seconds = config
                .service_account_impersonation
                .as_ref()
                .and_then(|o| o.token_lifetime_seconds)
                .unwrap_or(3600);
            impersonate(url, &federated, &[], seconds)
                .await
                .map_err(|e| format!("impersonating the service account failed: {e}"))
        }
    }
}

/// The subject token of an external account's `credential_source`.
async fn subject_token(config: &ExternalAccount) -> Result<Secret, String> {
    let source = &config.credential_source;
    // AWS's source has a `url` too (the metadata's): it is told apart by its environment_id.
    if let Some(environment_id) = &source.environment_id {
        let aws = crate::aws::AwsSource {
            environment_id: environment_id.clone(),
            region_url: source.region_url.clone(),
            url: source.url.clone(),
            regional_cred_verification_url: source.regional_cred_verification_url.clone(),
            imdsv2_session_token_url: source.imdsv2_session_token_url.clone(),
        };
        return crate::aws::subject_token(&aws, &config.audience, &http()?).await;
    }
    let raw = if let Some(file) = &source.file {
        std::fs::read_to_string(file).map_err(|e| {
            format!(
                "cannot read its credential_source file {}: {e}",
                file.display()
            )
        })?
    } else if let Some(url) = &source.url {
        let mut request = http()?.get(url);
        for (name, value) in &source.headers {
            request = request.header(name, value);
        }
        let resp = request
            .send()
            .await
            .map_err(|e| format!("cannot reach its credential_source url {url}: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("its credential_source url {url} answered {status}"));
        }
        body
    } else if let Some(executable) = &source.executable {
        return executable_token(executable, config).await;
    } else {
        return Err("its credential_source names no file, url or executable".into());
    };
    let format = source.format.as_ref();
    let token = match format.and_then(|f| f.kind.as_deref()).unwrap_or("text") {
        "text" => raw.trim().to_string(),
        "json" => {
            let field = format
                .and_then(|f| f.subject_token_field_name.as_deref())
                .ok_or(
                    "its credential_source format is json but names no subject_token_field_name",
                )?;
            let value: serde_json::Value = serde_json::from_str(&raw)
                .map_err(|_| "its credential_source did not give JSON".to_string())?;
            value[field]
                .as_str()
                .ok_or(format!(
                    "its credential_source JSON has no string field `{field}`"
                ))?
                .to_string()
        }
        other => {
            return Err(format!(
                "its credential_source format type `{other}` is neither text nor json"
            ));
        }
    };
    if token.is_empty() {
        return Err("its credential_source gave an empty subject token".into());
    }
    Ok(Secret::new(token))
}

/// An executable credential source (Google's "pluggable auth"): allowed only when
/// GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1, as in Google's libraries; it prints a JSON
/// response with the subject token.
async fn executable_token(
    executable: &Executable,
    config: &ExternalAccount,
) -> Result<Secret, String> {
    if std::env::var("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES").as_deref() != Ok("1") {
        return Err("its credential_source is an executable, and executables run only with GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1".into());
    }
    let mut words = executable.command.split_whitespace();
    let program = words
        .next()
        .ok_or("its credential_source executable has an empty command")?;
    if let Some(cached) = executable.output_file.as_deref().and_then(cached_response) {
        tracing::debug!(program, "subject token from the executable's output_file");
        return Ok(cached);
    }
    let mut command = tokio::process::Command::new(program);
    if let Some(path) = &executable.output_file {
        command.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", path);
    }
    command
        .args(words)
        .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", &config.audience)
        .env(
            "GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE",
            &config.subject_token_type,
        )
        .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let limit = Duration::from_millis(executable.timeout_millis.unwrap_or(30_000));
    let out = tokio::time::timeout(limit, command.output())
        .await
        .map_err(|_| {
            format!("its credential_source executable `{program}` did not finish within {limit:?}")
        })?
        .map_err(|e| format!("cannot run its credential_source executable `{program}`: {e}"))?;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "its credential_source executable `{program}` did not print a JSON response ({})",
            out.status
        )
    })?;
    subject_token_from(&answer, program)
}

/// The response an executable cached in its `output_file`, when it is there, succeeded, and
/// says when it expires, later than now (Google's rule: a cached response without an
/// expiration_time is not reused).
fn cached_response(path: &Path) -> Option<Secret> {
    let answer: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    answer["expiration_time"]
        .as_u64()
        .filter(|e| *e > now_unix())?;
    subject_token_from(&answer, "output_file").ok()
}

/// The subject token in an executable's response (printed, or cached in its output_file).
fn subject_token_from(answer: &serde_json::Value, program: &str) -> Result<Secret, String> {
    if answer["success"] != true {
        let why = answer["message"].as_str().unwrap_or("no message");
        return Err(format!(
            "its credential_source executable `{program}` failed: {why}"
        ));
    }
    if let Some(expires) = answer["expiration_time"].as_u64()
        && expires <= now_unix()
    {
        return Err(format!(
            "its credential_source executable `{program}` gave an expired token"
        ));
    }
    let token = answer["id_token"]
        .as_str()
        .or(answer["saml_response"].as_str())
        .filter(|t| !t.is_empty())
        .ok_or(format!(
            "its credential_source executable `{program}` gave no id_token or saml_response"
        ))?;
    Ok(Secret::new(token))
}

/// IAM Credentials' generateAccessToken: `source`'s token for the service account's.
async fn impersonate(
    url: &str,
    source: &Secret,
    delegates: &[String],
    lifetime_seconds: u64,
) -> Result<(Secret, Duration), String> {
    let mut body = serde_json::json!({
        "scope": [CLOUD_PLATFORM],
        "lifetime": format!("{lifetime_seconds}s"),
    });
    if !delegates.is_empty() {
        body["delegates"] = delegates.into();
    }
    let resp = http()?
        .post(url)
        .bearer_auth(source.expose())
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let answer = json_answer(url, resp).await?;
    let token = answer["accessToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or(format!("{url} answered without an accessToken"))?;
    let lifetime = answer["expireTime"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|until| until.duration_since(jiff::Timestamp::now()))
        .and_then(|left| Duration::try_from(left).ok())
        .unwrap_or(Duration::from_secs(lifetime_seconds));
    Ok((Secret::new(token), lifetime))
}

/// The metadata server's host on Google Cloud: GCE_METADATA_HOST when set, else
/// metadata.google.internal on a machine whose firmware says it is Google's (Compute Engine,
/// GKE nodes and their pods). Elsewhere there is none to ask, and no time is spent on it.
fn metadata_host() -> Option<String> {
    if let Some(host) = std::env::var("GCE_METADATA_HOST")
        .ok()
        .filter(|h| !h.is_empty())
    {
        return Some(host);
    }
    let product = std::fs::read_to_string("/sys/class/dmi/id/product_name").unwrap_or_default();
    product
        .trim()
        .starts_with("Google")
        .then(|| "metadata.google.internal".to_string())
}

/// The token of the machine's (or, on GKE with workload identity, the pod's) service account.
async fn metadata_token(host: &str) -> Result<Fresh, String> {
    let url = format!(
        "http://{host}/computeMetadata/v1/instance/service-accounts/default/token?scopes={}",
        form_encode(CLOUD_PLATFORM)
    );
    let resp = http()?
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|e| format!("the metadata server at {host} did not answer: {e}"))?;
    let answer = json_answer(&format!("the metadata server at {host}"), resp).await?;
    let (token, lifetime) = oauth_token(&answer)?;
    Ok(Fresh {
        token,
        source: format!("the metadata server ({host})"),
        lifetime,
    })
}

/// POSTs an `application/x-www-form-urlencoded` body; the JSON answer, or why not.
async fn post_form(
    url: &str,
    fields: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Result<serde_json::Value, String> {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut request = http()?
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let resp = request
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    json_answer(url, resp).await
}

/// A token endpoint's JSON answer; on an error status, the status and the endpoint's own
/// `error` and `error_description` (never what was sent).
async fn json_answer(what: &str, resp: reqwest::Response) -> Result<serde_json::Value, String> {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let value: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if !status.is_success() {
        let said = value.as_ref().map(describe_error).unwrap_or_default();
        return Err(format!("{what} answered {status}{said}"));
    }
    value.ok_or(format!("{what} answered {status} but not with JSON"))
}

/// `: invalid_grant (The audience is wrong)` from an OAuth or Google API error body.
fn describe_error(body: &serde_json::Value) -> String {
    let (code, description) = match &body["error"] {
        serde_json::Value::String(code) => (code.clone(), body["error_description"].as_str()),
        serde_json::Value::Object(e) => (
            e.get("status")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_string(),
            e.get("message").and_then(|m| m.as_str()),
        ),
        _ => return String::new(),
    };
    match description {
        Some(d) if !d.is_empty() => format!(": {code} ({d})"),
        _ if !code.is_empty() => format!(": {code}"),
        _ => String::new(),
    }
}

/// `access_token` and `expires_in` of an OAuth answer.
fn oauth_token(answer: &serde_json::Value) -> Result<(Secret, Duration), String> {
    let token = answer["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("the token endpoint answered without an access_token")?;
    let lifetime = Duration::from_secs(answer["expires_in"].as_u64().unwrap_or(3600));
    Ok((Secret::new(token), lifetime))
}

async fn gcloud_token() -> Result<Secret, String> {
    let out = tokio::process::Command::new("gcloud")
        .args(["auth", "print-access-token", "--quiet"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run gcloud: {e}"))?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || token.is_empty() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(if why.is_empty() {
            format!("`gcloud auth print-access-token` failed ({})", out.status)
        } else {
            why
        });
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bodies_are_found_between_the_armour_lines() {
        let pem = "junk\n-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\n";
        assert_eq!(pem_body(pem), Some(vec![0, 1, 2, 3]));
        assert_eq!(pem_body("no armour"), None);
        assert_eq!(pem_body("-----BEGIN X-----\n!!\n-----END X-----"), None);
    }

    #[test]
    fn error_bodies_are_described_by_their_code_and_description_only() {
        let oauth =
            serde_json::json!({"error": "invalid_grant", "error_description": "bad audience"});
        assert_eq!(describe_error(&oauth), ": invalid_grant (bad audience)");
        let google = serde_json::json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "no"}});
        assert_eq!(describe_error(&google), ": PERMISSION_DENIED (no)");
        assert_eq!(describe_error(&serde_json::json!({"x": 1})), "");
    }

    #[test]
    fn a_credentials_file_of_an_unknown_type_is_named_without_its_contents() {
        let err = serde_json::from_str::<CredentialsFile>(r#"{"type":"api_key","key":"s3cret"}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("api_key") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_key_that_is_not_rsa_is_refused_before_anything_is_sent() {
        let key = ServiceAccountKey {
            client_email: "ci@p.iam.gserviceaccount.com".into(),
            private_key: "-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----".into(),
            private_key_id: None,
            token_uri: None,
        };
        let err = signed_jwt(&key, OAUTH_TOKEN_URL, 0).unwrap_err();
        assert!(err.contains("not an RSA key"), "{err}");
    }
}
