//! An image's supply-chain artifacts in its registry, stored where other tools look:
//!
//! | artifact   | tag                  | format                                               |
//! |------------|----------------------|------------------------------------------------------|
//! | signature  | `sha256-<hex>.sig`   | cosign: simple-signing payload layer, signature in   |
//! |            |                      | the `dev.cosignproject.cosign/signature` annotation  |
//! | provenance | `sha256-<hex>.att`   | cosign: DSSE envelope layer (SLSA v1 in-toto)        |
//! | SBOM       | `sha256-<hex>.sbom`  | CycloneDX JSON layer                                 |
//!
//! The `.att` and `.sbom` manifests also carry `subject` and `artifactType`, so they are OCI
//! 1.1 referrers on registries with the referrers API; the tags are the fallback for those
//! without it (Debian's docker-registry 2.8 answers 404 there). [`verify_image`] reads them
//! back and checks them with a public key.

use std::path::Path;

use base64::Engine as _;
use p256::ecdsa::VerifyingKey;
use serde_json::json;

use crate::registry::{PushOptions, Repository, Session};
use crate::sign::{self, Signer};

pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The image the artifacts are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `host/path`, as named in the signature payload.
    pub repository: String,
    /// `sha256:…`.
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

impl Subject {
    /// `sha256-<hex>.SUFFIX`: where cosign looks for the artifact.
    pub fn tag(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.digest.replace(':', "-"))
    }

    fn descriptor(&self) -> serde_json::Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupplyError {
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Sign(#[from] sign::SignError),
    #[error(
        "invalid image reference {reference:?}: {why}\n  hint: give REPO@sha256:… (what `ferry push` prints) or REPO:TAG"
    )]
    Reference { reference: String, why: String },
    #[error("{reference} does not exist in the registry\n  hint: push it first (`ferry push`)")]
    NoImage { reference: String },
    #[error(
        "{reference} has no signature that verifies with {key}: {why}\n  hint: ship it with `signing_key` set for the environment (its public half is what `require_signature` names), or sign it again"
    )]
    Unsigned {
        reference: String,
        key: String,
        why: String,
    },
    #[error(
        "{reference} has no provenance that verifies with {key}: {why}\n  hint: ferry attaches SLSA provenance when it signs; ship it again with `signing_key` set"
    )]
    NoProvenance {
        reference: String,
        key: String,
        why: String,
    },
    #[error(
        "{reference} has no SBOM: {why}\n  hint: ferry attaches a CycloneDX SBOM to every image it signs; ship it again"
    )]
    NoSbom { reference: String, why: String },
}

/// The tags written by [`attach`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attached {
    pub signature: String,
    pub provenance: String,
    pub sbom: Option<String>,
}

/// Signs `subject` and stores the signature, the signed `provenance` statement and the
/// `sbom` beside it.
pub async fn attach(
    session: &mut Session,
    subject: &Subject,
    signer: &Signer,
    provenance: &[u8],
    sbom: Option<&[u8]>,
) -> Result<Attached, SupplyError> {
    let signature_tag = put_signature(session, subject, signer, Vec::new()).await?;
    let empty = session.put_blob(b"{}".to_vec()).await?;
    let config = json!({ "mediaType": EMPTY_MEDIA_TYPE, "digest": empty, "size": 2 });

    let envelope = sign::dsse_envelope(signer, sign::IN_TOTO_PAYLOAD_TYPE, provenance).await?;
    let layer = layer_of(
        session,
        DSSE_MEDIA_TYPE,
        envelope,
        json!({ SIGNATURE_ANNOTATION: "", "predicateType": crate::attest::SLSA_PROVENANCE_V1 }),
    )
    .await?;
    let provenance_tag = subject.tag("att");
    let manifest = manifest_of(&config, vec![layer], Some(subject), Some(DSSE_MEDIA_TYPE));
    session
        .put_manifest(&provenance_tag, crate::image::MANIFEST_MEDIA_TYPE, manifest)
        .await?;

    let sbom_tag = match sbom {
        Some(sbom) => Some(attach_sbom(session, subject, sbom).await?),
        None => None,
    };
    Ok(Attached {
        signature: signature_tag,
        provenance: provenance_tag,
        sbom: sbom_tag,
    })
}

/// Signs `subject` (cosign's simple-signing payload naming its repository and digest) and
/// stores the signature as `sha256-<hex>.sig` after the signature layers in `keep` (cosign
/// keeps every signature of an image as one layer of that manifest); returns the tag.
async fn put_signature(
    session: &mut Session,
    subject: &Subject,
    signer: &Signer,
    keep: Vec<serde_json::Value>,
) -> Result<String, SupplyError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let empty = session.put_blob(b"{}".to_vec()).await?;
    let config = json!({ "mediaType": EMPTY_MEDIA_TYPE, "digest": empty, "size": 2 });
    let payload = sign::simple_signing_payload(&subject.repository, &subject.digest);
    let signature = signer.sign(&payload).await?;
    let layer = layer_of(
        session,
        sign::SIMPLE_SIGNING_MEDIA_TYPE,
        payload,
        json!({ SIGNATURE_ANNOTATION: b64.encode(signature) }),
    )
    .await?;
    let tag = subject.tag("sig");
    let mut layers = keep;
    layers.push(layer);
    let manifest = manifest_of(&config, layers, None, None);
    session
        .put_manifest(&tag, crate::image::MANIFEST_MEDIA_TYPE, manifest)
        .await?;
    Ok(tag)
}

/// Signs the image at `reference` (`REPO@sha256:…`) in its own repository: what an
/// environment with `signing_key` does to an image promoted into it. The provenance and SBOM
/// come from the build and travel with the image; the signatures it arrived with are kept,
/// and this environment's is added beside them. Returns the signature's tag.
pub async fn sign_in_place(
    reference: &str,
    signer: &Signer,
    options: &PushOptions,
) -> Result<String, SupplyError> {
    let (repository, at) = parse_reference(reference)?;
    let mut session = Session::open(&repository, options).await?;
    let subject = resolve(&mut session, &repository, &at, reference).await?;
    let kept = match session.get_manifest(&subject.tag("sig")).await? {
        Some((_, bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|m| m["layers"].as_array().cloned())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    put_signature(&mut session, &subject, signer, kept).await
}

/// Stores `sbom` as an OCI 1.1 referrer of `subject`, tagged `sha256-<hex>.sbom`; returns
/// the tag. (Each platform of a multi-platform image gets its own.)
pub async fn attach_sbom(
    session: &mut Session,
    subject: &Subject,
    sbom: &[u8],
) -> Result<String, SupplyError> {
    let empty = session.put_blob(b"{}".to_vec()).await?;
    let config = json!({ "mediaType": EMPTY_MEDIA_TYPE, "digest": empty, "size": 2 });
    let layer = layer_of(session, CYCLONEDX_MEDIA_TYPE, sbom.to_vec(), json!({})).await?;
    let tag = subject.tag("sbom");
    let manifest = manifest_of(
        &config,
        vec![layer],
        Some(subject),
        Some(CYCLONEDX_MEDIA_TYPE),
    );
    session
        .put_manifest(&tag, crate::image::MANIFEST_MEDIA_TYPE, manifest)
        .await?;
    Ok(tag)
}

async fn layer_of(
    session: &mut Session,
    media_type: &str,
    bytes: Vec<u8>,
    annotations: serde_json::Value,
) -> Result<serde_json::Value, SupplyError> {
    let size = bytes.len();
    let digest = session.put_blob(bytes).await?;
    let mut layer = json!({ "mediaType": media_type, "digest": digest, "size": size });
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        layer["annotations"] = annotations;
    }
    Ok(layer)
}

fn manifest_of(
    config: &serde_json::Value,
    layers: Vec<serde_json::Value>,
    subject: Option<&Subject>,
    artifact_type: Option<&str>,
) -> Vec<u8> {
    let mut doc = json!({
        "schemaVersion": 2,
        "mediaType": crate::image::MANIFEST_MEDIA_TYPE,
        "config": config,
        "layers": layers,
    });
    if let Some(t) = artifact_type {
        doc["artifactType"] = t.into();
    }
    if let Some(s) = subject {
        doc["subject"] = s.descriptor();
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// `REPO@sha256:…` or `REPO:TAG` split into the repository and the digest or tag.
pub fn parse_reference(reference: &str) -> Result<(Repository, String), SupplyError> {
    let invalid = |why: &str| SupplyError::Reference {
        reference: reference.to_string(),
        why: why.to_string(),
    };
    let (repo, at) = match reference.split_once('@') {
        Some((repo, digest)) => {
            let hex = digest.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid("the digest must be sha256: and 64 hex digits"));
            }
            (repo, digest.to_string())
        }
        None => match reference.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag.to_string()),
            _ => return Err(invalid("it names neither a digest nor a tag")),
        },
    };
    let repository: Repository = repo
        .parse()
        .map_err(|e: crate::registry::RegistryError| invalid(&e.to_string()))?;
    Ok((repository, at))
}

/// What [`verify_image`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// `REPO@sha256:…`.
    pub reference: String,
    pub signature: String,
    pub provenance: String,
    /// Where the SBOM was found (referrers API or tag), and its digest.
    pub sbom: String,
    /// The builder and commit the provenance names.
    pub builder: String,
    pub commit: String,
}

/// Resolves `reference` to the image's subject descriptor.
async fn resolve(
    session: &mut Session,
    repository: &Repository,
    at: &str,
    reference: &str,
) -> Result<Subject, SupplyError> {
    let (media_type, bytes) =
        session
            .get_manifest(at)
            .await?
            .ok_or_else(|| SupplyError::NoImage {
                reference: reference.to_string(),
            })?;
    Ok(Subject {
        repository: repository.to_string(),
        digest: crate::image::sha256(&bytes),
        media_type: media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        size: bytes.len() as u64,
    })
}

/// The manifest at `tag` and its layers' bytes (each checked against its digest).
async fn artifact(
    session: &mut Session,
    tag: &str,
) -> Result<Option<Vec<(serde_json::Value, Vec<u8>)>>, SupplyError> {
    let Some((_, bytes)) = session.get_manifest(tag).await? else {
        return Ok(None);
    };
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut out = Vec::new();
    for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let digest = layer["digest"].as_str().unwrap_or_default().to_string();
        if let Some(blob) = session.get_blob(&digest).await?
            && crate::image::sha256(&blob) == digest
        {
            out.push((layer, blob));
        }
    }
    Ok(Some(out))
}

/// Checks the cosign signature of `subject` with `key`.
async fn check_signature(
    session: &mut Session,
    subject: &Subject,
    key: &VerifyingKey,
) -> Result<String, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let tag = subject.tag("sig");
    let layers = artifact(session, &tag)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no {tag}"))?;
    for (layer, payload) in &layers {
        let Some(signature) = layer["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .and_then(|s| b64.decode(s).ok())
        else {
            continue;
        };
        if !sign::verify(key, payload, &signature) {
            continue;
        }
        let doc: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
        if doc["critical"]["image"]["docker-manifest-digest"] == subject.digest.as_str() {
            return Ok(tag);
        }
    }
    Err(format!(
        "none of the {} signature(s) in {tag} verifies for {}",
        layers.len(),
        subject.digest
    ))
}

/// Checks the signed SLSA provenance of `subject`; returns (tag, builder, commit).
async fn check_provenance(
    session: &mut Session,
    subject: &Subject,
    key: &VerifyingKey,
) -> Result<(String, String, String), String> {
    let tag = subject.tag("att");
    let layers = artifact(session, &tag)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no {tag}"))?;
    let hex = subject.digest.trim_start_matches("sha256:");
    let mut why = format!("{tag} has no DSSE envelope");
    for (_, envelope) in &layers {
        let (payload_type, payload) = match sign::open_dsse(key, envelope) {
            Ok(opened) => opened,
            Err(e) => {
                why = e.to_string();
                continue;
            }
        };
        let doc: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        let names_subject = doc["subject"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["digest"]["sha256"] == hex));
        if payload_type != sign::IN_TOTO_PAYLOAD_TYPE
            || doc["predicateType"] != crate::attest::SLSA_PROVENANCE_V1
            || !names_subject
        {
            why = "the verified statement is not SLSA v1 provenance for this digest".into();
            continue;
        }
        let predicate = &doc["predicate"];
        return Ok((
            tag,
            predicate["runDetails"]["builder"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            predicate["buildDefinition"]["externalParameters"]["commit"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
    }
    Err(why)
}

/// Finds the CycloneDX SBOM of `subject`: the `.sbom` tag (ferry always writes it; registries
/// with the referrers API list the same manifest there).
async fn check_sbom(session: &mut Session, subject: &Subject) -> Result<String, String> {
    let tag = subject.tag("sbom");
    let layers = artifact(session, &tag)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no {tag}"))?;
    for (layer, bytes) in &layers {
        let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
        if layer["mediaType"] == CYCLONEDX_MEDIA_TYPE && doc["bomFormat"] == "CycloneDX" {
            return Ok(format!(
                "{tag} ({})",
                layer["digest"].as_str().unwrap_or_default()
            ));
        }
    }
    Err(format!("{tag} holds no CycloneDX document"))
}

/// Whether `reference`'s signature verifies with the public key at `key_path`: what
/// `require_signature` checks before anything is applied. Returns the pinned reference.
pub async fn require_signature(
    reference: &str,
    key_path: &Path,
    options: &PushOptions,
) -> Result<String, SupplyError> {
    let key = sign::read_public_key(key_path)?;
    let (repository, at) = parse_reference(reference)?;
    let mut session = Session::open(&repository, options).await?;
    let subject = resolve(&mut session, &repository, &at, reference).await?;
    check_signature(&mut session, &subject, &key)
        .await
        .map_err(|why| SupplyError::Unsigned {
            reference: reference.to_string(),
            key: key_path.display().to_string(),
            why,
        })?;
    Ok(format!("{repository}@{}", subject.digest))
}

/// Checks `reference`'s signature and provenance with the public key at `key_path`, and
/// that it has an SBOM.
pub async fn verify_image(
    reference: &str,
    key_path: &Path,
    options: &PushOptions,
) -> Result<Verified, SupplyError> {
    let key = sign::read_public_key(key_path)?;
    let (repository, at) = parse_reference(reference)?;
    let mut session = Session::open(&repository, options).await?;
    let subject = resolve(&mut session, &repository, &at, reference).await?;
    let key_name = key_path.display().to_string();
    let signature = check_signature(&mut session, &subject, &key)
        .await
        .map_err(|why| SupplyError::Unsigned {
            reference: reference.to_string(),
            key: key_name.clone(),
            why,
        })?;
    let (provenance, builder, commit) = check_provenance(&mut session, &subject, &key)
        .await
        .map_err(|why| SupplyError::NoProvenance {
            reference: reference.to_string(),
            key: key_name.clone(),
            why,
        })?;
    let sbom = check_sbom(&mut session, &subject)
        .await
        .map_err(|why| SupplyError::NoSbom {
            reference: reference.to_string(),
            why,
        })?;
    Ok(Verified {
        reference: format!("{repository}@{}", subject.digest),
        signature,
        provenance,
        sbom,
        builder,
        commit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_by_digest_or_tag() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let (repo, at) = parse_reference(&format!("127.0.0.1:5000/ferry/hello@{digest}")).unwrap();
        assert_eq!(repo.to_string(), "127.0.0.1:5000/ferry/hello");
        assert_eq!(at, digest);
        let (repo, at) = parse_reference("127.0.0.1:5000/ferry/hello:v1").unwrap();
        assert_eq!((repo.path.as_str(), at.as_str()), ("ferry/hello", "v1"));
        assert!(parse_reference("127.0.0.1:5000/ferry/hello").is_err());
        assert!(parse_reference("127.0.0.1:5000/ferry/hello@sha256:12").is_err());
    }

    #[test]
    fn artifact_tags_are_cosigns() {
        let s = Subject {
            repository: "r.io/a".into(),
            digest: format!("sha256:{}", "b".repeat(64)),
            media_type: crate::image::MANIFEST_MEDIA_TYPE.into(),
            size: 1,
        };
        assert_eq!(s.tag("sig"), format!("sha256-{}.sig", "b".repeat(64)));
    }
}
