//! Signing what ferry pushes, in formats other tools verify: ECDSA P-256 over SHA-256 with
//! DER signatures (what cosign, policy-controller and Binary Authorization's Sigstore check
//! expect), cosign's simple-signing payload, and DSSE envelopes for attestations.
//!
//! Keys are PEM: the private key PKCS#8 (`PRIVATE KEY`, as `openssl genpkey` writes), the
//! public key SubjectPublicKeyInfo (`PUBLIC KEY`, what `cosign verify --key` and
//! `openssl dgst -verify` read). A key may also live in Google Cloud KMS
//! (`gcpkms://projects/…/cryptoKeyVersions/N`): ferry then sends the SHA-256 digest to KMS's
//! `asymmetricSign` and never holds the private key.
//!
//! Not here: where signatures are stored in a registry ([`crate::supply`]).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use sha2::{Digest as _, Sha256};

use crate::registry::Secret;

/// The media type of cosign's simple-signing payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The in-toto payload type inside DSSE envelopes.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read the key {path}: {source}\n  hint: {hint}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        hint: &'static str,
    },
    #[error(
        "{path} is not a {what} in PEM: {why}\n  hint: `ferry keygen` writes a key pair ferry can use (PKCS#8 `PRIVATE KEY` and `PUBLIC KEY`, ECDSA P-256)"
    )]
    Parse {
        path: PathBuf,
        what: &'static str,
        why: String,
    },
    #[error(
        "{path} exists; ferry keygen does not overwrite keys\n  hint: pass --force to replace it, or choose another --key-prefix"
    )]
    Exists { path: PathBuf },
    #[error("cannot encode the new key pair as PEM: {0}")]
    Encode(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid Cloud KMS key {uri:?}: {why}\n  hint: use gcpkms://projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY/cryptoKeyVersions/N"
    )]
    KmsUri { uri: String, why: String },
    #[error("Cloud KMS could not sign with {key}: {why}\n  hint: {hint}")]
    Kms {
        key: String,
        why: String,
        hint: String,
    },
}

/// The public half of a key pair, written beside the private key.
pub fn public_key_path(private: &Path) -> PathBuf {
    private.with_extension("pub")
}

/// A fresh ECDSA P-256 key pair as PEM: (private PKCS#8, public SPKI).
pub fn generate() -> Result<(Secret, String), SignError> {
    let key = SigningKey::random(&mut rand_core::OsRng);
    let encode = |e: String| SignError::Encode(e);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map(|pem| Secret::new(pem.as_str()))
        .map_err(|e| encode(e.to_string()))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| encode(e.to_string()))?;
    Ok((private, public))
}

/// Writes a new key pair to `PREFIX.key` (mode 0600) and `PREFIX.pub`; returns both paths.
pub fn write_key_pair(prefix: &Path, force: bool) -> Result<(PathBuf, PathBuf), SignError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let private_path = prefix.with_extension("key");
    let public_path = prefix.with_extension("pub");
    for path in [&private_path, &public_path] {
        if path.exists() && !force {
            return Err(SignError::Exists { path: path.clone() });
        }
    }
    let (private, public) = generate()?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SignError::Write { path, source }
    };
    let _ = std::fs::remove_file(&private_path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private_path)
        .map_err(write_err(&private_path))?;
    file.write_all(private.expose().as_bytes())
        .map_err(write_err(&private_path))?;
    std::fs::write(&public_path, public).map_err(write_err(&public_path))?;
    Ok((private_path, public_path))
}

/// Where an environment's signing key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A PEM private key file.
    File(PathBuf),
    /// `projects/…/cryptoKeyVersions/N` in Cloud KMS.
    GcpKms(String),
}

impl KeyRef {
    /// `gcpkms://…` or a path (relative to `root`).
    pub fn parse(value: &str, root: &Path) -> Result<KeyRef, SignError> {
        match value.strip_prefix("gcpkms://") {
            Some(name) => {
                let parts: Vec<&str> = name.split('/').collect();
                let shape = [
                    "projects",
                    "",
                    "locations",
                    "",
                    "keyRings",
                    "",
                    "cryptoKeys",
                    "",
                    "cryptoKeyVersions",
                    "",
                ];
                let ok = parts.len() == shape.len()
                    && parts
                        .iter()
                        .zip(shape)
                        .all(|(p, s)| !p.is_empty() && (s.is_empty() || *p == s));
                if !ok {
                    return Err(SignError::KmsUri {
                        uri: value.to_string(),
                        why: "it must name a key version".into(),
                    });
                }
                Ok(KeyRef::GcpKms(name.to_string()))
            }
            None => Ok(KeyRef::File(root.join(value))),
        }
    }
}

/// Something that signs: a key in memory, or one in Cloud KMS.
pub enum Signer {
    Local(SigningKey),
    GcpKms {
        /// `projects/…/cryptoKeyVersions/N`.
        name: String,
        /// The API endpoint (`https://cloudkms.googleapis.com`, or `FERRY_KMS_ENDPOINT`).
        endpoint: String,
        /// An access token (`FERRY_KMS_TOKEN`); otherwise Google credentials are looked up.
        token: Option<Secret>,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Local(_) => f.write_str("Signer::Local(***)"),
            Signer::GcpKms { name, .. } => write!(f, "Signer::GcpKms({name})"),
        }
    }
}

/// Google's Cloud KMS API; `FERRY_KMS_ENDPOINT` points ferry at another (tests).
pub const KMS_ENDPOINT: &str = "https://cloudkms.googleapis.com";
/// An access token for Cloud KMS and Container Analysis, used instead of looking up Google
/// credentials (tests).
pub const TOKEN_VAR: &str = "FERRY_KMS_TOKEN";

impl Signer {
    /// Opens the key `key` names.
    pub fn open(key: &KeyRef) -> Result<Signer, SignError> {
        match key {
            KeyRef::File(path) => {
                let pem = std::fs::read_to_string(path).map_err(|source| SignError::Read {
                    path: path.clone(),
                    source,
                    hint: "create one with `ferry keygen`, or fix `signing_key` in ferry.toml",
                })?;
                let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| SignError::Parse {
                    path: path.clone(),
                    what: "PKCS#8 ECDSA P-256 private key",
                    why: e.to_string(),
                })?;
                Ok(Signer::Local(key))
            }
            KeyRef::GcpKms(name) => Ok(Signer::GcpKms {
                name: name.clone(),
                endpoint: std::env::var("FERRY_KMS_ENDPOINT")
                    .unwrap_or_else(|_| KMS_ENDPOINT.to_string()),
                token: std::env::var(TOKEN_VAR).ok().map(Secret::new),
            }),
        }
    }

    /// An ECDSA P-256 signature over SHA-256(`message`), DER-encoded.
    pub async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            Signer::Local(key) => {
                let signature: DerSignature = key.sign(message);
                Ok(signature.as_bytes().to_vec())
            }
            Signer::GcpKms {
                name,
                endpoint,
                token,
            } => kms_sign(endpoint, name, token.as_ref(), message).await,
        }
    }
}

/// Where Google credentials come from, for an error's hint.
pub const GOOGLE_CREDENTIALS_HINT: &str =
    "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS";

/// An access token: `token` when given (`FERRY_KMS_TOKEN`), else the Google credentials the
/// registry uses too ([`crate::google::access_token`]: workload identity federation,
/// a service-account key, application default credentials, the metadata server, gcloud).
/// Cloud KMS and Container Analysis ([`crate::binauthz`]) share it.
pub async fn google_token(token: Option<&Secret>) -> Result<Secret, String> {
    if let Some(token) = token {
        return Ok(token.clone());
    }
    crate::install_crypto_provider();
    let (token, source) = crate::google::access_token().await?;
    tracing::debug!(%source, "Google access token");
    Ok(token)
}

/// `asymmetricSign` with the message's SHA-256 digest; KMS answers a DER signature.
async fn kms_sign(
    endpoint: &str,
    name: &str,
    token: Option<&Secret>,
    message: &[u8],
) -> Result<Vec<u8>, SignError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let fail = |why: String, hint: &str| SignError::Kms {
        key: name.to_string(),
        why,
        hint: hint.to_string(),
    };
    let token = google_token(token)
        .await
        .map_err(|why| fail(why, GOOGLE_CREDENTIALS_HINT))?;
    crate::install_crypto_provider();
    let digest = Sha256::digest(message);
    let body = serde_json::json!({ "digest": { "sha256": b64.encode(digest) } });
    let url = format!(
        "{}/v1/{name}:asymmetricSign",
        endpoint.trim_end_matches('/')
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token.expose())
        .json(&body)
        .send()
        .await
        .map_err(|e| fail(e.to_string(), "is the KMS endpoint reachable?"))?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = answer["error"]["message"]
            .as_str()
            .unwrap_or("no error message")
            .to_string();
        return Err(fail(
            format!("HTTP {status}: {message}"),
            "the signing account needs roles/cloudkms.signer on the key (terraform/ grants it to CI)",
        ));
    }
    answer["signature"]
        .as_str()
        .and_then(|s| b64.decode(s).ok())
        .ok_or_else(|| {
            fail(
                "the answer has no base64 `signature`".into(),
                "is the endpoint Cloud KMS?",
            )
        })
}

/// Reads a PEM public key (`PUBLIC KEY`, ECDSA P-256).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, SignError> {
    let pem = std::fs::read_to_string(path).map_err(|source| SignError::Read {
        path: path.to_path_buf(),
        source,
        hint: "give the public key `ferry keygen` wrote (PREFIX.pub)",
    })?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| SignError::Parse {
        path: path.to_path_buf(),
        what: "ECDSA P-256 public key",
        why: e.to_string(),
    })
}

/// Whether `signature` (DER, or the raw 64-byte form) signs SHA-256(`message`) with `key`.
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let parsed = Signature::from_der(signature).or_else(|_| Signature::from_slice(signature));
    parsed.is_ok_and(|s| key.verify(message, &s).is_ok())
}

/// Cosign's simple-signing payload for `repository@digest`. Key order is fixed, so the
/// same image always gives the same bytes.
pub fn simple_signing_payload(repository: &str, digest: &str) -> Vec<u8> {
    let doc = serde_json::json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// DSSE's pre-authentication encoding: what the envelope's signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope around `payload`, signed by `signer`.
pub async fn dsse_envelope(
    signer: &Signer,
    payload_type: &str,
    payload: &[u8],
) -> Result<Vec<u8>, SignError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = signer.sign(&pae(payload_type, payload)).await?;
    let envelope = serde_json::json!({
        "payloadType": payload_type,
        "payload": b64.encode(payload),
        "signatures": [{ "keyid": "", "sig": b64.encode(signature) }],
    });
    Ok(serde_json::to_vec(&envelope).unwrap_or_default())
}

/// Why a DSSE envelope did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("the envelope is not DSSE JSON: {0}")]
    Malformed(String),
    #[error("no signature in the envelope verifies with the key")]
    BadSignature,
}

/// Verifies a DSSE envelope with `key`; returns its payload type and payload.
pub fn open_dsse(key: &VerifyingKey, envelope: &[u8]) -> Result<(String, Vec<u8>), EnvelopeError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let doc: serde_json::Value =
        serde_json::from_slice(envelope).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    let payload_type = doc["payloadType"]
        .as_str()
        .ok_or_else(|| EnvelopeError::Malformed("no payloadType".into()))?;
    let payload = doc["payload"]
        .as_str()
        .and_then(|p| b64.decode(p).ok())
        .ok_or_else(|| EnvelopeError::Malformed("no base64 payload".into()))?;
    let message = pae(payload_type, &payload);
    let verified = doc["signatures"].as_array().is_some_and(|sigs| {
        sigs.iter().any(|s| {
            s["sig"]
                .as_str()
                .and_then(|sig| b64.decode(sig).ok())
                .is_some_and(|sig| verify(key, &message, &sig))
        })
    });
    if !verified {
        return Err(EnvelopeError::BadSignature);
    }
    Ok((payload_type.to_string(), payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Signer {
        let (private, _) = generate().unwrap();
        Signer::Local(SigningKey::from_pkcs8_pem(private.expose()).unwrap())
    }

    #[tokio::test]
    async fn signatures_verify_and_tampering_breaks_them() {
        let signer = key();
        let Signer::Local(k) = &signer else {
            unreachable!()
        };
        let public = *k.verifying_key();
        let sig = signer.sign(b"payload").await.unwrap();
        assert!(verify(&public, b"payload", &sig));
        assert!(!verify(&public, b"payloae", &sig));
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(!verify(&public, b"payload", &bad));
    }

    #[tokio::test]
    async fn dsse_envelopes_round_trip_and_reject_a_changed_payload() {
        let signer = key();
        let Signer::Local(k) = &signer else {
            unreachable!()
        };
        let public = *k.verifying_key();
        let env = dsse_envelope(&signer, IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}")
            .await
            .unwrap();
        assert_eq!(
            open_dsse(&public, &env).unwrap(),
            (IN_TOTO_PAYLOAD_TYPE.to_string(), b"{\"a\":1}".to_vec())
        );
        let mut doc: serde_json::Value = serde_json::from_slice(&env).unwrap();
        doc["payload"] = base64::engine::general_purpose::STANDARD
            .encode(b"{\"a\":2}")
            .into();
        assert_eq!(
            open_dsse(&public, &serde_json::to_vec(&doc).unwrap()),
            Err(EnvelopeError::BadSignature)
        );
    }

    #[test]
    fn pae_is_the_dsse_encoding() {
        assert_eq!(pae("t", b"hello"), b"DSSEv1 1 t 5 hello".to_vec());
    }

    #[test]
    fn kms_uris_must_name_a_key_version() {
        let root = Path::new("/repo");
        assert_eq!(
            KeyRef::parse(
                "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
                root
            )
            .unwrap(),
            KeyRef::GcpKms(
                "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1".into()
            )
        );
        assert!(KeyRef::parse("gcpkms://projects/p/locations/global/keyRings/r", root).is_err());
        assert_eq!(
            KeyRef::parse("keys/ferry.key", root).unwrap(),
            KeyRef::File("/repo/keys/ferry.key".into())
        );
    }
}
