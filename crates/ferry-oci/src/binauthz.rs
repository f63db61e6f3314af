//! Binary Authorization attestations: with `binauthz` set for an environment, ferry ship
//! records, after it signs an image, that the environment's attestor vouches for it, so GKE
//! (enforcing the project's policy) admits it.
//!
//! An attestation is a Container Analysis occurrence of kind ATTESTATION on the attestor's
//! note: a payload naming the repository and the image's digest, signed (ECDSA P-256, SHA-256,
//! DER) with the environment's `signing_key`, and the id of the attestor's public key that
//! verifies it. With a Cloud KMS key that id is the key version's
//! `//cloudkms.googleapis.com/v1/…` name, the id terraform/modules/binary-authorization gives
//! the attestor. Credentials are the ones ferry signs with in Cloud KMS
//! ([`crate::sign::google_token`]).
//!
//! Not here: the cosign signature and provenance in the registry ([`crate::supply`]), and the
//! attestor and the policy themselves (Terraform).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::registry::Secret;
use crate::sign::{KeyRef, SignError, Signer};

/// Google's Container Analysis API; `FERRY_CONTAINERANALYSIS_ENDPOINT` points ferry at another.
pub const ENDPOINT: &str = "https://containeranalysis.googleapis.com";
pub const ENDPOINT_VAR: &str = "FERRY_CONTAINERANALYSIS_ENDPOINT";
/// `critical.type` of the payload Binary Authorization verifies.
pub const PAYLOAD_TYPE: &str = "Google cloud binauthz container signature";

/// An environment's `binauthz = { attestor = "projects/P/attestors/A", note = "projects/P/notes/N" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The attestor the project's policy requires, `projects/P/attestors/NAME`; the
    /// attestation is created in its project.
    pub attestor: String,
    /// The attestor's note, `projects/P/notes/NAME`, which attestations are attached to.
    pub note: String,
    /// The id of the attestor's public key. Derived from a `gcpkms://` signing key; needed
    /// with a key file.
    #[serde(default)]
    pub public_key_id: Option<String>,
}

/// [`Settings`] checked against the environment's signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestor {
    /// `projects/P/attestors/NAME`.
    pub name: String,
    /// P: where the occurrence is created.
    pub project: String,
    /// `projects/P/notes/NAME`.
    pub note: String,
    /// What each signature names as its key.
    pub public_key_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BinauthzError {
    #[error(
        "binauthz.{field} = {value:?} is not {shape}\n  hint: `terraform output -raw binauthz_{field}` in terraform/environments/ENV prints it"
    )]
    Name {
        field: &'static str,
        value: String,
        shape: &'static str,
    },
    #[error(
        "binauthz is set but signing_key is not: an attestation is a signature by the key the attestor trusts\n  hint: set signing_key in the same environment (`terraform output -raw signing_key` prints the Cloud KMS key)"
    )]
    NoSigningKey,
    #[error(
        "binauthz.public_key_id is needed with the signing key file {path}: it is how Binary Authorization finds the attestor's key that verifies the signature\n  hint: set it to the id of the attestor's public key (`gcloud container binauthz attestors describe ATTESTOR` shows it), or sign with Cloud KMS (signing_key = \"gcpkms://…\"), whose id ferry derives"
    )]
    NoPublicKeyId { path: PathBuf },
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(
        "cannot get Google credentials to attest {image} in Container Analysis: {why}\n  hint: {}",
        crate::sign::GOOGLE_CREDENTIALS_HINT
    )]
    Credentials { image: String, why: String },
    #[error(
        "cannot reach Container Analysis at {url} to attest {image}: {why}\n  hint: check the network (and {ENDPOINT_VAR}, when set); nothing was deployed, so ship again"
    )]
    Unreachable {
        url: String,
        image: String,
        why: String,
    },
    #[error(
        "Container Analysis refused the attestation of {image} on {note}: HTTP {status}: {message}\n  hint: {hint}"
    )]
    Refused {
        image: String,
        note: String,
        status: u16,
        message: String,
        hint: String,
    },
    #[error(
        "Container Analysis answered the attestation of {image} with no occurrence name: {answer}\n  hint: is {url} Container Analysis's API?"
    )]
    Answer {
        image: String,
        url: String,
        answer: String,
    },
}

/// `projects/P/KIND/NAME` → P.
fn project_of(value: &str, kind: &str) -> Option<String> {
    match value.split('/').collect::<Vec<_>>()[..] {
        ["projects", project, k, name] if k == kind && !project.is_empty() && !name.is_empty() => {
            Some(project.to_string())
        }
        _ => None,
    }
}

impl Settings {
    /// Checks the names and works out the public key id from `signing_key`.
    pub fn check(&self, signing_key: Option<&KeyRef>) -> Result<Attestor, BinauthzError> {
        let project =
            project_of(&self.attestor, "attestors").ok_or_else(|| BinauthzError::Name {
                field: "attestor",
                value: self.attestor.clone(),
                shape: "an attestor's name, projects/PROJECT/attestors/NAME",
            })?;
        if project_of(&self.note, "notes").is_none() {
            return Err(BinauthzError::Name {
                field: "note",
                value: self.note.clone(),
                shape: "a Container Analysis note's name, projects/PROJECT/notes/NAME",
            });
        }
        let public_key_id = match (self.public_key_id.as_deref(), signing_key) {
            (_, None) => return Err(BinauthzError::NoSigningKey),
            (Some(id), Some(_)) if !id.trim().is_empty() => id.to_string(),
            (_, Some(KeyRef::GcpKms(version))) => kms_public_key_id(version),
            (_, Some(KeyRef::File(path))) => {
                return Err(BinauthzError::NoPublicKeyId { path: path.clone() });
            }
        };
        Ok(Attestor {
            name: self.attestor.clone(),
            project,
            note: self.note.clone(),
            public_key_id,
        })
    }
}

/// The id Binary Authorization (and Terraform's `google_kms_crypto_key_version`) gives a Cloud
/// KMS key version: `//cloudkms.googleapis.com/v1/projects/…/cryptoKeyVersions/N`.
pub fn kms_public_key_id(version: &str) -> String {
    format!("//cloudkms.googleapis.com/v1/{version}")
}

/// The payload Binary Authorization verifies for `repository@digest`. Key order is fixed, so
/// the same image always gives the same bytes.
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    let doc = serde_json::json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest },
            "type": PAYLOAD_TYPE,
        },
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// The ATTESTATION occurrence for `repository@digest`: `payload` and its DER `signature`.
pub fn occurrence(
    attestor: &Attestor,
    repository: &str,
    digest: &str,
    payload: &[u8],
    signature: &[u8],
) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::json!({
        "kind": "ATTESTATION",
        "noteName": attestor.note,
        "resourceUri": format!("https://{repository}@{digest}"),
        "attestation": {
            "serializedPayload": b64.encode(payload),
            "signatures": [{
                "publicKeyId": attestor.public_key_id,
                "signature": b64.encode(signature),
            }],
        },
    })
}

/// Container Analysis: where, and with which token.
#[derive(Clone)]
pub struct ContainerAnalysis {
    /// `https://containeranalysis.googleapis.com`, or a stand-in.
    pub endpoint: String,
    /// An access token; otherwise Google credentials are looked up.
    pub token: Option<Secret>,
}

impl ContainerAnalysis {
    /// `FERRY_CONTAINERANALYSIS_ENDPOINT` (else Google's), and the token ferry uses for Cloud
    /// KMS (`FERRY_KMS_TOKEN`, else Google credentials).
    pub fn from_env() -> ContainerAnalysis {
        let endpoint = std::env::var(ENDPOINT_VAR)
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| ENDPOINT.to_string());
        let token = std::env::var(crate::sign::TOKEN_VAR)
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        ContainerAnalysis { endpoint, token }
    }
}

/// What [`attest`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attested {
    /// A new occurrence, by its name.
    Created { occurrence: String },
    /// Container Analysis has this attestation already (ALREADY_EXISTS).
    AlreadyThere,
}

/// Tries a request this many times when Container Analysis is unreachable or answers 429/5xx.
const ATTEMPTS: u32 = 3;

/// Signs the payload for `repository@digest` and creates the attestation occurrence.
pub async fn attest(
    api: &ContainerAnalysis,
    attestor: &Attestor,
    signer: &Signer,
    repository: &str,
    digest: &str,
) -> Result<Attested, BinauthzError> {
    let image = format!("{repository}@{digest}");
    let payload = payload(repository, digest);
    let signature = signer.sign(&payload).await?;
    let body = occurrence(attestor, repository, digest, &payload, &signature);
    let token = crate::sign::google_token(api.token.as_ref())
        .await
        .map_err(|why| BinauthzError::Credentials {
            image: image.clone(),
            why,
        })?;
    crate::install_crypto_provider();
    let url = format!(
        "{}/v1/projects/{}/occurrences",
        api.endpoint.trim_end_matches('/'),
        attestor.project
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| BinauthzError::Unreachable {
            url: url.clone(),
            image: image.clone(),
            why: e.to_string(),
        })?;
    let mut attempt = 1;
    loop {
        let sent = client
            .post(&url)
            .bearer_auth(token.expose())
            .json(&body)
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(%url, error = %e, attempt, "Container Analysis unreachable; retrying");
                pause(attempt).await;
                attempt += 1;
                continue;
            }
            Err(e) => {
                return Err(BinauthzError::Unreachable {
                    url,
                    image,
                    why: e.to_string(),
                });
            }
        };
        let status = resp.status().as_u16();
        let answer: serde_json::Value = resp.json().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return match answer["name"].as_str() {
                Some(name) => Ok(Attested::Created {
                    occurrence: name.to_string(),
                }),
                None => Err(BinauthzError::Answer {
                    image,
                    url,
                    answer: answer.to_string(),
                }),
            };
        }
        if status == 409 {
            return Ok(Attested::AlreadyThere);
        }
        if (status == 429 || status >= 500) && attempt < ATTEMPTS {
            tracing::warn!(%url, status, attempt, "Container Analysis is busy; retrying");
            pause(attempt).await;
            attempt += 1;
            continue;
        }
        let message = answer["error"]["message"]
            .as_str()
            .unwrap_or("no error message")
            .to_string();
        return Err(BinauthzError::Refused {
            hint: refusal_hint(status, attestor),
            image,
            note: attestor.note.clone(),
            status,
            message,
        });
    }
}

async fn pause(attempt: u32) {
    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
}

fn refusal_hint(status: u16, attestor: &Attestor) -> String {
    match status {
        401 => format!(
            "the Google credentials were not accepted: {}",
            crate::sign::GOOGLE_CREDENTIALS_HINT
        ),
        403 => format!(
            "the account needs roles/containeranalysis.notes.attacher on {} and containeranalysis.occurrences.create in project {} (terraform/modules/binary-authorization grants both to CI's deploy account); nothing was deployed",
            attestor.note, attestor.project
        ),
        404 => format!(
            "check that the note {} exists (`terraform output -raw binauthz_note`) and that the Container Analysis API is enabled in project {}",
            attestor.note, attestor.project
        ),
        _ => "Container Analysis may be unavailable: ship again; nothing was deployed".into(),
    }
}

impl std::fmt::Display for Attested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attested::Created { occurrence } => f.write_str(occurrence),
            Attested::AlreadyThere => f.write_str("already attested"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(attestor: &str, note: &str, id: Option<&str>) -> Settings {
        Settings {
            attestor: attestor.into(),
            note: note.into(),
            public_key_id: id.map(str::to_string),
        }
    }

    const KMS: &str = "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1";

    #[test]
    fn a_cloud_kms_key_gives_the_public_key_id_terraform_gives_the_attestor() {
        let key = KeyRef::GcpKms(KMS.into());
        let checked = settings(
            "projects/p/attestors/ferry",
            "projects/p/notes/ferry-note",
            None,
        )
        .check(Some(&key))
        .unwrap();
        assert_eq!(
            checked,
            Attestor {
                name: "projects/p/attestors/ferry".into(),
                project: "p".into(),
                note: "projects/p/notes/ferry-note".into(),
                public_key_id: format!("//cloudkms.googleapis.com/v1/{KMS}"),
            }
        );
    }

    #[test]
    fn a_key_file_needs_an_explicit_public_key_id_and_names_need_their_shape() {
        let file = KeyRef::File("/keys/ferry.key".into());
        let ok = settings("projects/p/attestors/a", "projects/p/notes/n", None);
        let err = ok.check(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("binauthz.public_key_id is needed"), "{err}");
        assert!(err.contains("/keys/ferry.key"), "{err}");
        let with_id = settings(
            "projects/p/attestors/a",
            "projects/p/notes/n",
            Some("ni:///x"),
        );
        assert_eq!(with_id.check(Some(&file)).unwrap().public_key_id, "ni:///x");
        assert!(matches!(
            ok.check(None).unwrap_err(),
            BinauthzError::NoSigningKey
        ));
        for (attestor, note, field) in [
            ("ferry", "projects/p/notes/n", "attestor"),
            ("projects/p/notes/n", "projects/p/notes/n", "attestor"),
            ("projects//attestors/a", "projects/p/notes/n", "attestor"),
            ("projects/p/attestors/a", "projects/p/attestors/a", "note"),
            ("projects/p/attestors/a", "projects/p/notes/n/x", "note"),
        ] {
            let err = settings(attestor, note, None)
                .check(Some(&KeyRef::GcpKms(KMS.into())))
                .unwrap_err();
            assert!(
                matches!(&err, BinauthzError::Name { field: f, .. } if *f == field),
                "{attestor} {note}: {err}"
            );
        }
    }

    #[test]
    fn the_payload_and_occurrence_are_what_binary_authorization_reads() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let payload = payload("europe-west1-docker.pkg.dev/p/ferry/hello", &digest);
        let doc: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"critical": {
                "identity": {"docker-reference": "europe-west1-docker.pkg.dev/p/ferry/hello"},
                "image": {"docker-manifest-digest": digest},
                "type": "Google cloud binauthz container signature",
            }})
        );
        let attestor = settings("projects/p/attestors/a", "projects/p/notes/n", None)
            .check(Some(&KeyRef::GcpKms(KMS.into())))
            .unwrap();
        let occ = occurrence(&attestor, "r.example/x", &digest, b"P", b"S");
        assert_eq!(occ["noteName"], "projects/p/notes/n");
        assert_eq!(occ["kind"], "ATTESTATION");
        assert_eq!(occ["resourceUri"], format!("https://r.example/x@{digest}"));
        assert_eq!(occ["attestation"]["serializedPayload"], "UA==");
        assert_eq!(occ["attestation"]["signatures"][0]["signature"], "Uw==");
        assert_eq!(
            occ["attestation"]["signatures"][0]["publicKeyId"],
            format!("//cloudkms.googleapis.com/v1/{KMS}")
        );
    }
}
