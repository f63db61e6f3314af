//! Pushing an image from an OCI layout to any registry that speaks the OCI distribution API
//! (Docker's `registry`, Artifact Registry, GCR, GHCR, Harbor, …).
//!
//! Blobs the registry already has are not sent again. Credentials come from, in order:
//! `~/.docker/config.json` (`auths`, `credHelpers`, `credsStore`), then Google credentials
//! for `gcr.io` and `*-docker.pkg.dev`, else anonymous. Basic and bearer-token challenges are
//! answered. Transient failures are retried with backoff: refused, reset or early-closed
//! connections, timeouts, 429 and 5xx. Every request of a push may be repeated: HEADs and the
//! manifest PUT are idempotent, a repeated POST opens a fresh upload, and a blob PUT whose
//! answer was lost (or whose upload a restarted registry forgot) is checked with a HEAD and,
//! if the blob is not there, uploaded again from a new POST.
//! Secrets live in [`Secret`], which never prints.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, StatusCode, header};

use crate::image::Image;

/// Attempts for one request when the registry fails transiently.
const ATTEMPTS: u32 = 4;

/// A repository reference without tag: `host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub host: String,
    pub path: String,
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.path)
    }
}

impl std::str::FromStr for Repository {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| RegistryError::InvalidReference {
            reference: s.to_string(),
            why: why.to_string(),
        };
        let (host, path) = s
            .split_once('/')
            .ok_or_else(|| invalid("it needs a registry host and a path, e.g. 127.0.0.1:5000/hello or europe-west1-docker.pkg.dev/PROJECT/REPO/hello"))?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(invalid(
                "the first part must be a registry host (with a dot or a port)",
            ));
        }
        if path.contains('@')
            || path
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'))
        {
            return Err(invalid(
                "give the repository without a tag or digest; ferry tags by commit",
            ));
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !path.split('/').all(component_ok) {
            return Err(invalid(
                "path components must be lowercase letters, digits, '.', '_' or '-'",
            ));
        }
        Ok(Repository {
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

/// A credential that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where a credential came from (named in errors, never the credential itself).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    pub source: String,
}

/// The outcome of a push.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pushed {
    pub repository: String,
    pub tag: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
    /// Blobs sent in this push.
    pub uploaded: Vec<String>,
    /// Blobs the registry already had.
    pub skipped: Vec<String>,
}

impl Pushed {
    /// `REPO@sha256:…`: the reference to deploy, immune to the tag moving.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// Where push credentials come from.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum RegistryAuth {
    /// `~/.docker/config.json` (auths, credHelpers, credsStore), then Google credentials for
    /// gcr.io and *-docker.pkg.dev, else anonymous.
    #[default]
    Auto,
    /// Only `~/.docker/config.json` and its credential helpers.
    Docker,
    /// Google credentials (a service-account key or an `external_account` configuration for
    /// workload identity federation in GOOGLE_APPLICATION_CREDENTIALS, application default
    /// credentials, the metadata server, or gcloud), whatever the registry's name:
    /// for Google registries behind a custom host name.
    Google,
    /// No credentials.
    Anonymous,
}

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Plain HTTP. Loopback registries (127.0.0.0/8, localhost) always use it.
    pub insecure: bool,
    /// Explicit credentials (e.g. from flags); otherwise they are looked up.
    pub credentials: Option<Credentials>,
    /// Docker config directory (default: `$DOCKER_CONFIG` or `~/.docker`).
    pub docker_config: Option<PathBuf>,
    /// Where credentials are looked up when none are given.
    pub auth: RegistryAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image repository {reference:?}: {why}")]
    InvalidReference { reference: String, why: String },
    #[error(
        "cannot reach the registry at {url}: {reason}\n  hint: is the registry running and is the address right? (for a plain-HTTP registry that is not on loopback, pass --insecure)"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "the registry {host} refused the credentials ({source_name}): HTTP {status}\n  hint: {hint}"
    )]
    Unauthorized {
        host: String,
        status: u16,
        source_name: String,
        hint: String,
    },
    #[error(
        "the registry {host} has no repository {path} (HTTP {status}: {body})\n  hint: create it first (Artifact Registry: terraform/modules/registry) or check the name"
    )]
    NoRepository {
        host: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("{method} {url} failed: HTTP {status}: {body}")]
    Http {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    // The io error is in the message, so it is not also a `source` (printed twice).
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "cannot copy {reference}: {why}\n  hint: check what the source repository holds: skopeo inspect --raw docker://{reference}"
    )]
    Uncopyable { reference: String, why: String },
    #[error("credential helper docker-credential-{helper} failed for {host}: {why}")]
    Helper {
        helper: String,
        host: String,
        why: String,
    },
    #[error(
        "cannot get Google credentials for {host}: {why}\n  hint: run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key or (workload identity federation) to the external_account configuration `gcloud iam workload-identity-pools create-cred-config` writes"
    )]
    Google { host: String, why: String },
}

/// Pushes every blob of `image` that the registry lacks, then the manifest under its tag.
pub async fn push(
    image: &Image,
    repository: &Repository,
    options: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let mut client = Client::new(repository, options).await?;
    let mut uploaded = Vec::new();
    let mut skipped = Vec::new();
    // A multi-platform image: each platform's blobs and manifest first, so the index
    // pushed last under the tag only names what the registry has.
    for (_, platform) in &image.platforms {
        let digest = &platform.manifest.digest;
        push_one(&mut client, platform, digest, &mut uploaded, &mut skipped).await?;
    }
    push_one(&mut client, image, &image.tag, &mut uploaded, &mut skipped).await?;
    Ok(Pushed {
        repository: repository.to_string(),
        tag: image.tag.clone(),
        digest: image.manifest.digest.clone(),
        uploaded,
        skipped,
    })
}

/// Uploads the blobs of `image` (one platform's, or an index's) the registry lacks, noting
/// each in `uploaded` or `skipped`, then its manifest under `reference` (a tag or a digest).
async fn push_one(
    client: &mut Client,
    image: &Image,
    reference: &str,
    uploaded: &mut Vec<String>,
    skipped: &mut Vec<String>,
) -> Result<(), RegistryError> {
    for blob in image.layers.iter().chain(std::iter::once(&image.config)) {
        if client.has_blob(&blob.digest).await? {
            skipped.push(blob.digest.clone());
            continue;
        }
        let path = image.blob_path(&blob.digest);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|error| RegistryError::Read { path, error })?;
        client.upload_blob(&blob.digest, bytes.into()).await?;
        uploaded.push(blob.digest.clone());
    }
    let path = image.blob_path(&image.manifest.digest);
    let manifest = tokio::fs::read(&path)
        .await
        .map_err(|error| RegistryError::Read { path, error })?;
    client
        .put_manifest(reference, &image.manifest.media_type, manifest.into())
        .await
}

/// What [`copy`] did: the same manifests in the target repository, so the same digests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    pub repository: String,
    /// Manifest (or index) digest, identical in both repositories.
    pub digest: String,
    /// A multi-platform image's manifests, copied before its index.
    pub manifests: Vec<String>,
    /// The supply-chain artifacts carried along, by tag (`sha256-<hex>.sig`, `.att`, `.sbom`
    /// of the image and of each platform's manifest); those the source lacks are left out.
    pub artifacts: Vec<String>,
    /// Blobs mounted from the source repository (one registry: nothing is transferred).
    pub mounted: Vec<String>,
    /// Blobs downloaded from the source registry and uploaded to the target's.
    pub copied: Vec<String>,
    /// Blobs the target already had.
    pub skipped: Vec<String>,
}

impl Copied {
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// The tag suffixes of an image's supply-chain artifacts (see [`crate::supply`]).
const ARTIFACT_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// How deep indexes may nest (an index of indexes is legal, an endless chain is not).
const MAX_INDEX_DEPTH: usize = 4;

/// Copies the image `source` (`REPO@sha256:…`) into `target` byte for byte, so its digest
/// stays the same: within one registry the blobs are mounted from the source repository
/// (cross-repository blob mount), across registries they are downloaded and uploaded; then the
/// manifest is put by digest. An image index (multi-platform) has each platform's blobs and
/// manifest copied first, then the index. The image's cosign-style artifacts — the
/// `sha256-<hex>.sig`, `.att` and `.sbom` tags of its digest and of each platform's — follow
/// with their blobs, so signatures and SBOMs verify on the copy; missing ones are not an
/// error. Nothing is rebuilt. Source and target use `options` each for their own host's
/// credentials.
pub async fn copy(
    source: &str,
    target: &Repository,
    options: &PushOptions,
) -> Result<Copied, RegistryError> {
    let (repo, digest) = source
        .split_once('@')
        .ok_or_else(|| RegistryError::InvalidReference {
            reference: source.to_string(),
            why: "not pinned by digest (REPO@sha256:…)".into(),
        })?;
    let from: Repository = repo.parse()?;
    let mut copier = Copier {
        // Only read from the source: its reader (production's account on staging's
        // repository) is refused a token that could push there.
        src: Client::new(&from, options).await?.pull_only(),
        dst: Client::new(target, options).await?,
        same_registry: from.host == target.host,
        from,
        done: Copied {
            repository: target.to_string(),
            digest: digest.to_string(),
            manifests: Vec::new(),
            artifacts: Vec::new(),
            mounted: Vec::new(),
            copied: Vec::new(),
            skipped: Vec::new(),
        },
    };
    copier
        .manifest(digest, Some(digest), 0)
        .await?
        .ok_or_else(|| RegistryError::Uncopyable {
            reference: source.to_string(),
            why: "the source repository has no such manifest".into(),
        })?;
    let subjects: Vec<String> = std::iter::once(digest.to_string())
        .chain(copier.done.manifests.iter().cloned())
        .collect();
    for subject in subjects {
        for suffix in ARTIFACT_SUFFIXES {
            let tag = format!("{}.{suffix}", subject.replace(':', "-"));
            if copier
                .manifest(&tag, None, MAX_INDEX_DEPTH)
                .await?
                .is_some()
            {
                copier.done.artifacts.push(tag);
            }
        }
    }
    Ok(copier.done)
}

/// One [`copy`]: both repositories' clients and what has been done so far.
struct Copier {
    src: Client,
    dst: Client,
    from: Repository,
    same_registry: bool,
    done: Copied,
}

impl Copier {
    /// Copies the manifest at `reference` (a digest, or an artifact's tag) with everything it
    /// names, and puts it under the same reference. `expected`: the digest it must hash to.
    /// `None` when the source has no such manifest.
    async fn manifest(
        &mut self,
        reference: &str,
        expected: Option<&str>,
        depth: usize,
    ) -> Result<Option<()>, RegistryError> {
        let Some((media_type, bytes)) = self.src.get_manifest(reference).await? else {
            return Ok(None);
        };
        let at = match reference.starts_with("sha256:") {
            true => format!("{}@{reference}", self.from),
            false => format!("{}:{reference}", self.from),
        };
        let invalid = |why: String| RegistryError::Uncopyable {
            reference: at.clone(),
            why,
        };
        let digest = crate::image::sha256(&bytes);
        if let Some(expected) = expected
            && digest != expected
        {
            return Err(invalid(format!(
                "the registry's manifest hashes to {digest}, not to the digest asked for"
            )));
        }
        let parsed: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("the manifest is not JSON: {e}")))?;
        if let Some(children) = parsed["manifests"].as_array() {
            if depth >= MAX_INDEX_DEPTH {
                return Err(invalid(format!(
                    "indexes nest deeper than {MAX_INDEX_DEPTH} levels"
                )));
            }
            for child in children {
                let child = child["digest"]
                    .as_str()
                    .ok_or_else(|| invalid("an index entry has no digest".into()))?
                    .to_string();
                // Digests name their bytes, so an index cannot contain itself: no cycles.
                let copied = Box::pin(self.manifest(&child, Some(&child), depth + 1)).await?;
                if copied.is_none() {
                    return Err(invalid(format!(
                        "the index names {child}, which the source repository does not have"
                    )));
                }
                self.done.manifests.push(child);
            }
        } else {
            let blobs: Vec<String> = std::iter::once(&parsed["config"])
                .chain(parsed["layers"].as_array().into_iter().flatten())
                .filter_map(|b| b["digest"].as_str().map(str::to_string))
                .collect();
            if blobs.is_empty() {
                return Err(invalid(
                    "neither an image manifest (no config) nor an index (no manifests)".into(),
                ));
            }
            for blob in blobs {
                self.blob(blob).await?;
            }
        }
        self.dst
            .put_manifest(reference, &media_type, bytes::Bytes::from(bytes))
            .await?;
        Ok(Some(()))
    }

    /// Mounts or copies one blob the target lacks.
    async fn blob(&mut self, blob: String) -> Result<(), RegistryError> {
        if self.dst.has_blob(&blob).await? {
            self.done.skipped.push(blob);
            return Ok(());
        }
        if self.same_registry && self.dst.mount_blob(&blob, &self.from.path).await? {
            self.done.mounted.push(blob);
            return Ok(());
        }
        let url = format!("{}/v2/{}/blobs/{blob}", self.src.base, self.from.path);
        let resp = self.src.send(Method::GET, &url, None, None).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.src.failure("GET", &url, resp).await);
        }
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        if crate::image::sha256(&bytes) != blob {
            return Err(RegistryError::Uncopyable {
                reference: format!("{}@{blob}", self.from),
                why: "the blob the source registry sent does not hash to its digest".into(),
            });
        }
        self.dst.upload_blob(&blob, bytes).await?;
        self.done.copied.push(blob);
        Ok(())
    }
}

/// A distribution-API client for one repository, holding its authorization.
struct Client {
    http: reqwest::Client,
    base: String,
    repository: Repository,
    credentials: Option<Credentials>,
    authorization: Option<Secret>,
    /// `Accept` for the next requests (manifests).
    accept: Option<&'static str>,
    /// What a bearer token is asked to allow on `repository`.
    access: Access,
}

/// The actions a client asks a token service for on its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Read only: the source of a copy.
    Pull,
    /// Read and write: a push, or the target of a copy.
    PullPush,
}

/// How long a request may take: [`REQUEST_TIMEOUT`], or for a large body the time it takes at
/// 128 KiB/s (1 Mbit/s), so a big layer on a slow uplink is not cut off while it uploads.
fn upload_timeout(body_len: usize) -> Duration {
    const SLOWEST_UPLINK: u64 = 128 * 1024;
    REQUEST_TIMEOUT.max(Duration::from_secs(body_len as u64 / SLOWEST_UPLINK))
}

/// How long a request without a large body may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

impl Client {
    async fn new(repository: &Repository, options: &PushOptions) -> Result<Self, RegistryError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| RegistryError::Unreachable {
                url: repository.host.clone(),
                reason: e.to_string(),
            })?;
        let scheme = if options.insecure || is_loopback(&repository.host) {
            "http"
        } else {
            "https"
        };
        let credentials = match &options.credentials {
            Some(c) => Some(c.clone()),
            None => match options.auth {
                RegistryAuth::Anonymous => None,
                RegistryAuth::Google => Some(google_credentials(&repository.host).await?),
                RegistryAuth::Docker | RegistryAuth::Auto => {
                    lookup_credentials(
                        &repository.host,
                        options.docker_config.as_deref(),
                        options.auth == RegistryAuth::Auto,
                    )
                    .await?
                }
            },
        };
        match &credentials {
            Some(c) => tracing::debug!("credentials for {}: {}", repository.host, c.source),
            None => tracing::debug!("no credentials for {}", repository.host),
        }
        Ok(Self {
            http,
            base: format!("{scheme}://{}", repository.host),
            repository: repository.clone(),
            credentials,
            authorization: None,
            accept: None,
            access: Access::PullPush,
        })
    }

    /// This client only reads: its tokens are asked for `pull` alone.
    fn pull_only(mut self) -> Self {
        self.access = Access::Pull;
        self
    }

    /// The `scope` of a token request for this client's repository.
    fn token_scope(&self) -> String {
        let actions = match self.access {
            Access::Pull => "pull",
            Access::PullPush => "pull,push",
        };
        format!("repository:{}:{actions}", self.repository.path)
    }

    /// Cross-repository mount of `digest` from `from` (same registry). `false`: the registry
    /// declined (it then opened an upload, which is left to expire) and the blob must be sent.
    async fn mount_blob(&mut self, digest: &str, from: &str) -> Result<bool, RegistryError> {
        let url = format!(
            "{}/v2/{}/blobs/uploads/?mount={digest}&from={from}",
            self.base, self.repository.path
        );
        let resp = self.send(Method::POST, &url, None, None).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false),
            _ => Err(self.failure("POST", &url, resp).await),
        }
    }

    /// The manifest at `reference` (digest or tag) and its media type; `None` when absent.
    async fn get_manifest(
        &mut self,
        reference: &str,
    ) -> Result<Option<(String, Vec<u8>)>, RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{reference}",
            self.base, self.repository.path
        );
        self.accept = Some(MANIFEST_ACCEPT);
        let resp = self.send(Method::GET, &url, None, None).await;
        self.accept = None;
        let resp = resp?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.failure("GET", &url, resp).await),
        }
        let header = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_string())
            .filter(|v| !v.is_empty());
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Unreachable {
            url: url.clone(),
            reason: root_cause(&e),
        })?;
        // Without a Content-Type, the document's own mediaType says what it is.
        let media_type = header
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|d| d["mediaType"].as_str().map(str::to_string))
            })
            .unwrap_or_else(|| crate::image::MANIFEST_MEDIA_TYPE.to_string());
        Ok(Some((media_type, bytes.to_vec())))
    }

    async fn has_blob(&mut self, digest: &str) -> Result<bool, RegistryError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository.path);
        let resp = self.send(Method::HEAD, &url, None, None).await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.failure("HEAD", &url, resp).await),
        }
    }

    /// Uploads a blob (POST, then PUT by digest). When the PUT's answer is lost, or the
    /// registry no longer knows the upload (it restarted), the blob may or may not be stored:
    /// a HEAD tells, and if it is not there the upload starts again.
    async fn upload_blob(
        &mut self,
        digest: &str,
        bytes: bytes::Bytes,
    ) -> Result<(), RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upload_once(digest, bytes.clone()).await? {
                Uploaded::Stored => return Ok(()),
                Uploaded::Unknown(_) if self.has_blob(digest).await? => return Ok(()),
                Uploaded::Unknown(error) if attempt >= ATTEMPTS => return Err(error),
                Uploaded::Unknown(error) => {
                    tracing::warn!(%digest, "upload lost ({error}); starting it again");
                    backoff(attempt).await;
                }
            }
        }
    }

    async fn upload_once(
        &mut self,
        digest: &str,
        bytes: bytes::Bytes,
    ) -> Result<Uploaded, RegistryError> {
        let url = format!("{}/v2/{}/blobs/uploads/", self.base, self.repository.path);
        let resp = self.send(Method::POST, &url, None, None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            // Starting an upload can only 404 when the repository itself is missing.
            let status = resp.status().as_u16();
            let body = short_body(resp).await;
            return Err(RegistryError::NoRepository {
                host: self.repository.host.clone(),
                path: self.repository.path.clone(),
                status,
                body,
            });
        }
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.failure("POST", &url, resp).await);
        }
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={digest}");
        let resp = match self
            .send(
                Method::PUT,
                &put,
                Some("application/octet-stream"),
                Some(bytes),
            )
            .await
        {
            Ok(resp) => resp,
            Err(error @ RegistryError::Unreachable { .. }) => return Ok(Uploaded::Unknown(error)),
            Err(error) => return Err(error),
        };
        match resp.status() {
            StatusCode::CREATED => Ok(Uploaded::Stored),
            // BLOB_UPLOAD_UNKNOWN: a repeated PUT after the first one stored the blob, or a
            // registry that lost its upload sessions.
            StatusCode::NOT_FOUND => Ok(Uploaded::Unknown(self.failure("PUT", &put, resp).await)),
            _ => Err(self.failure("PUT", &put, resp).await),
        }
    }

    async fn put_manifest(
        &mut self,
        tag: &str,
        media_type: &str,
        bytes: bytes::Bytes,
    ) -> Result<(), RegistryError> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.repository.path);
        let resp = self
            .send(Method::PUT, &url, Some(media_type), Some(bytes))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.failure("PUT", &url, resp).await);
        }
        Ok(())
    }

    /// Sends with retries on transient failures, answering one auth challenge.
    async fn send(
        &mut self,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.http.request(method.clone(), url);
            if let Some(auth) = &self.authorization {
                request = request.header(header::AUTHORIZATION, auth.expose());
            }
            if let Some(ct) = content_type {
                request = request.header(header::CONTENT_TYPE, ct);
            }
            if let Some(accept) = self.accept {
                request = request.header(header::ACCEPT, accept);
            }
            if let Some(body) = &body {
                request = request
                    .timeout(upload_timeout(body.len()))
                    .body(body.clone());
            }
            let resp = match request.send().await {
                Ok(resp) => resp,
                Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                    tracing::warn!(
                        "{method} {} failed ({}); retrying",
                        without_query(url),
                        root_cause(&e)
                    );
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => {
                    return Err(RegistryError::Unreachable {
                        url: self.base.clone(),
                        reason: gave_up(&e, attempt),
                    });
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                self.authorize(&challenge).await?;
                continue;
            }
            if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                && attempt < ATTEMPTS
            {
                backoff(attempt).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(self.unauthorized(status.as_u16()));
            }
            return Ok(resp);
        }
    }

    /// Answers a `WWW-Authenticate` challenge: Basic with the credentials, or a Bearer token
    /// fetched from the realm (with the credentials, or anonymously).
    async fn authorize(&mut self, challenge: &str) -> Result<(), RegistryError> {
        let basic = self.credentials.as_ref().map(|c| {
            let raw = format!("{}:{}", c.username, c.password.expose());
            Secret::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
        });
        let lower = challenge.to_ascii_lowercase();
        if lower.starts_with("basic") {
            self.authorization = Some(basic.ok_or_else(|| self.unauthorized(401))?);
            return Ok(());
        }
        if !lower.starts_with("bearer") {
            return Err(self.unauthorized(401));
        }
        let params = challenge_params(challenge);
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.unauthorized(401))?;
        let mut query: Vec<(String, String)> =
            params.into_iter().filter(|(k, _)| k == "service").collect();
        query.push(("scope".into(), self.token_scope()));
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let mut request = self.http.get(with_query(&realm, &query));
            if let Some(basic) = &basic {
                request = request.header(header::AUTHORIZATION, basic.expose());
            }
            match request.send().await {
                Ok(resp) => break resp,
                Err(e) if attempt < ATTEMPTS && is_transient(&e) => backoff(attempt).await,
                Err(e) => {
                    return Err(RegistryError::Unreachable {
                        url: realm.clone(),
                        reason: gave_up(&e, attempt),
                    });
                }
            }
        };
        if !resp.status().is_success() {
            return Err(self.unauthorized(resp.status().as_u16()));
        }
        let body: serde_json::Value = resp.json().await.map_err(|_| self.unauthorized(401))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .ok_or_else(|| self.unauthorized(401))?;
        self.authorization = Some(Secret::new(format!("Bearer {token}")));
        Ok(())
    }

    fn unauthorized(&self, status: u16) -> RegistryError {
        let host = self.repository.host.clone();
        let (source_name, hint) = match &self.credentials {
            Some(c) => (
                c.source.clone(),
                format!(
                    "check the credentials for {host} (`docker login {host}`), or that this account may {} {}",
                    match self.access {
                        Access::Pull => "pull from",
                        Access::PullPush => "push to",
                    },
                    self.repository.path
                ),
            ),
            None => (
                "anonymous".to_string(),
                if is_google(&host) {
                    "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS".to_string()
                } else {
                    format!(
                        "log in with `docker login {host}` (ferry reads ~/.docker/config.json and its credential helpers)"
                    )
                },
            ),
        };
        RegistryError::Unauthorized {
            host,
            status,
            source_name,
            hint,
        }
    }

    async fn failure(&self, method: &str, url: &str, resp: reqwest::Response) -> RegistryError {
        let status = resp.status().as_u16();
        let body = short_body(resp).await;
        if status == 404 && (body.contains("NAME_UNKNOWN") || body.contains("name unknown")) {
            return RegistryError::NoRepository {
                host: self.repository.host.clone(),
                path: self.repository.path.clone(),
                status,
                body,
            };
        }
        RegistryError::Http {
            method: method.to_string(),
            url: url.to_string(),
            status,
            body,
        }
    }
}

/// How a blob upload ended when it did not plainly succeed or fail.
enum Uploaded {
    Stored,
    /// The PUT's answer was lost or the upload was unknown: the blob may or may not be there.
    Unknown(RegistryError),
}

/// A failure of the connection rather than of the request: refused, reset, closed before the
/// answer, timed out. Worth another attempt; a malformed request or redirect loop is not.
fn is_transient(e: &reqwest::Error) -> bool {
    !(e.is_builder() || e.is_redirect() || e.is_decode() || e.is_status())
}

fn gave_up(e: &reqwest::Error, attempts: u32) -> String {
    if attempts > 1 {
        format!("{} (after {attempts} attempts)", root_cause(e))
    } else {
        root_cause(e)
    }
}

/// A URL for logs: upload locations carry the registry's upload state in their query.
fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(u, _)| u)
}

/// The start of an error body, for messages (registries answer JSON `errors`).
async fn short_body(resp: reqwest::Response) -> String {
    resp.text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

/// Google's registries: Container Registry and Artifact Registry.
pub fn is_google(host: &str) -> bool {
    host == "gcr.io" || host.ends_with(".gcr.io") || host.ends_with("-docker.pkg.dev")
}

/// `Bearer realm="…",service="…",scope="…"` → pairs.
fn challenge_params(challenge: &str) -> Vec<(String, String)> {
    let rest = challenge.split_once(' ').map_or("", |(_, r)| r);
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                value.push(c);
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.push((key.trim().to_ascii_lowercase(), value));
    }
    out
}

/// Docker config first (auths, credHelpers, credsStore), then (with `google`) Google
/// credentials for Google's registries.
async fn lookup_credentials(
    host: &str,
    docker_config: Option<&std::path::Path>,
    google: bool,
) -> Result<Option<Credentials>, RegistryError> {
    let dir = docker_config.map(PathBuf::from).or_else(|| {
        std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
    });
    if let Some(dir) = dir {
        let path = dir.join("config.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let config: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(helper) = config["credHelpers"][host].as_str() {
                return run_helper(helper, host).await.map(Some);
            }
            for key in [
                host.to_string(),
                format!("https://{host}"),
                format!("http://{host}"),
            ] {
                if let Some(auth) = config["auths"][&key]["auth"].as_str() {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .unwrap_or_default();
                    if let Some((user, pass)) = decoded.split_once(':') {
                        return Ok(Some(Credentials {
                            username: user.to_string(),
                            password: Secret::new(pass),
                            source: format!("{} (auths.{key})", path.display()),
                        }));
                    }
                }
            }
            if let Some(store) = config["credsStore"].as_str()
                && let Ok(c) = run_helper(store, host).await
            {
                return Ok(Some(c));
            }
        }
    }
    if google && is_google(host) {
        return google_credentials(host).await.map(Some);
    }
    Ok(None)
}

async fn run_helper(helper: &str, host: &str) -> Result<Credentials, RegistryError> {
    use tokio::io::AsyncWriteExt;
    let err = |why: String| RegistryError::Helper {
        helper: helper.to_string(),
        host: host.to_string(),
        why,
    };
    let mut child = tokio::process::Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may answer without reading its input; its exit status and output decide.
        match stdin.write_all(host.as_bytes()).await {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(err(e.to_string())),
            _ => {}
        }
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|_| err("its answer is not JSON".into()))?;
    Ok(Credentials {
        username: v["Username"].as_str().unwrap_or_default().to_string(),
        password: Secret::new(v["Secret"].as_str().unwrap_or_default()),
        source: format!("docker-credential-{helper}"),
    })
}

/// Google's access token for the registry ([`crate::google::access_token`]).
async fn google_credentials(host: &str) -> Result<Credentials, RegistryError> {
    let (token, source) =
        crate::google::access_token()
            .await
            .map_err(|why| RegistryError::Google {
                host: host.to_string(),
                why,
            })?;
    Ok(Credentials {
        username: "oauth2accesstoken".into(),
        password: token,
        source,
    })
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `url` with `pairs` appended to its query.
fn with_query(url: &str, pairs: &[(String, String)]) -> String {
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{query}")
}

/// Manifests and blobs beside an image — signatures, attestations, SBOMs — and reading them
/// back, with the same credentials and retries as [`push`].
pub struct Session {
    client: Client,
}

/// Media types a manifest GET accepts (distribution answers 404 for an OCI manifest
/// requested without its type).
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl Session {
    pub async fn open(
        repository: &Repository,
        options: &PushOptions,
    ) -> Result<Session, RegistryError> {
        Ok(Session {
            client: Client::new(repository, options).await?,
        })
    }

    /// Uploads `bytes` unless the registry has them; returns their digest.
    pub async fn put_blob(&mut self, bytes: Vec<u8>) -> Result<String, RegistryError> {
        let digest = crate::image::sha256(&bytes);
        if !self.client.has_blob(&digest).await? {
            self.client.upload_blob(&digest, bytes.into()).await?;
        }
        Ok(digest)
    }

    /// Stores a manifest under `reference` (a tag, or its own digest).
    pub async fn put_manifest(
        &mut self,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RegistryError> {
        self.client
            .put_manifest(reference, media_type, bytes.into())
            .await
    }

    /// The manifest at `reference` (tag or digest) with its media type; `None` when absent.
    pub async fn get_manifest(
        &mut self,
        reference: &str,
    ) -> Result<Option<(String, Vec<u8>)>, RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{reference}",
            self.client.base, self.client.repository.path
        );
        self.get(&url, MANIFEST_ACCEPT).await
    }

    /// The blob `digest`; `None` when absent.
    pub async fn get_blob(&mut self, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.client.base, self.client.repository.path
        );
        Ok(self.get(&url, "*/*").await?.map(|(_, bytes)| bytes))
    }

    /// GET with `accept`, answering one auth challenge.
    async fn get(
        &mut self,
        url: &str,
        accept: &str,
    ) -> Result<Option<(String, Vec<u8>)>, RegistryError> {
        let client = &mut self.client;
        let mut challenged = false;
        loop {
            let mut request = client.http.get(url).header(header::ACCEPT, accept);
            if let Some(auth) = &client.authorization {
                request = request.header(header::AUTHORIZATION, auth.expose());
            }
            let resp = request
                .send()
                .await
                .map_err(|e| RegistryError::Unreachable {
                    url: client.base.clone(),
                    reason: root_cause(&e),
                })?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    let challenge = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    client.authorize(&challenge).await?;
                }
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(client.unauthorized(resp.status().as_u16()));
                }
                status if status.is_success() => {
                    let media_type = resp
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let bytes = resp.bytes().await.map_err(|e| RegistryError::Unreachable {
                        url: url.to_string(),
                        reason: root_cause(&e),
                    })?;
                    return Ok(Some((media_type, bytes.to_vec())));
                }
                _ => return Err(client.failure("GET", url, resp).await),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_large_upload_gets_the_time_a_slow_uplink_needs() {
        use std::time::Duration;
        assert_eq!(super::upload_timeout(0), Duration::from_secs(300));
        assert_eq!(
            super::upload_timeout(2 << 20),
            Duration::from_secs(300),
            "2 MiB"
        );
        // 200 MiB at 128 KiB/s: 1600 s, not the 300 s that would cut it off.
        assert_eq!(super::upload_timeout(200 << 20), Duration::from_secs(1600));
    }

    #[test]
    fn form_encoding_escapes_everything_but_the_unreserved() {
        assert_eq!(form_encode("a b&c=d/é:"), "a+b%26c%3Dd%2F%C3%A9%3A");
        assert_eq!(form_encode("A-z_0.9*"), "A-z_0.9*");
    }

    #[test]
    fn query_pairs_are_appended_to_a_realm_with_or_without_its_own_query() {
        let pairs = [("scope".to_string(), "repository:a/b:pull,push".to_string())];
        assert_eq!(
            with_query("http://h/token", &pairs),
            "http://h/token?scope=repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(with_query("http://h/t?x=1", &pairs).matches('?').count(), 1);
    }

    use super::*;

    #[test]
    fn repositories_parse_and_bad_ones_say_why() {
        let r: Repository = "europe-west1-docker.pkg.dev/p/ferry/hello".parse().unwrap();
        assert_eq!(r.host, "europe-west1-docker.pkg.dev");
        assert_eq!(r.path, "p/ferry/hello");
        assert!("127.0.0.1:5000/hello".parse::<Repository>().is_ok());
        for bad in [
            "hello",
            "library/hello",
            "127.0.0.1:5000/Hello",
            "127.0.0.1:5000/hello:v1",
            "r.io/a@sha256:0",
        ] {
            let err = bad.parse::<Repository>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials {
            username: "u".into(),
            password: Secret::new("hunter2"),
            source: "test".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_copy_source_asks_for_pull_and_a_push_for_pull_push() {
        let repository: Repository = "registry.example/staging/hello".parse().unwrap();
        let options = PushOptions {
            auth: RegistryAuth::Anonymous,
            ..Default::default()
        };
        let client = Client::new(&repository, &options).await.unwrap();
        assert_eq!(client.token_scope(), "repository:staging/hello:pull,push");
        assert_eq!(
            client.pull_only().token_scope(),
            "repository:staging/hello:pull"
        );
    }

    #[test]
    fn bearer_challenges_parse() {
        let p = challenge_params(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[1], ("service".into(), "registry.example".into()));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn google_hosts_are_recognised() {
        assert!(is_google("gcr.io"));
        assert!(is_google("eu.gcr.io"));
        assert!(is_google("europe-west1-docker.pkg.dev"));
        assert!(!is_google("ghcr.io"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(!is_loopback("registry.example:5000"));
    }
}
