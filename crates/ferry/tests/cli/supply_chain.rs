//! Signatures, provenance and SBOMs in a real registry (Debian's docker-registry), checked by
//! tools ferry's authors did not write: skopeo reads the manifests, openssl verifies the
//! signatures, kube-fake shows that `require_signature` applies nothing for an unsigned image.
//! Binary Authorization attestations go to a fake Container Analysis on loopback, and openssl
//! verifies them too.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::container_analysis::*;
use crate::support::*;
use base64::Engine as _;
use kube_fake::FakeCluster;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A tiny image (its "binary" is a shell script: nothing here runs it) pushed unsigned.
async fn push_image(registry: &Registry, dir: &Path, body: &str) -> ferry::image::Image {
    let spec = crate::support::images::script_spec(dir, body, "amd64");
    let image = ferry::image::assemble(&spec, &dir.join(format!("oci-{body}"))).unwrap();
    let repository: ferry::registry::Repository =
        format!("{}/ferry/hello", registry.host()).parse().unwrap();
    ferry::registry::push(&image, &repository, &Default::default())
        .await
        .unwrap();
    image
}

fn subject(registry: &Registry, image: &ferry::image::Image) -> ferry::supply::Subject {
    ferry::supply::Subject {
        repository: format!("{}/ferry/hello", registry.host()),
        digest: image.manifest.digest.clone(),
        media_type: image.manifest.media_type.clone(),
        size: image.manifest.size,
    }
}

fn statement(subject: &ferry::supply::Subject) -> Vec<u8> {
    crate::support::images::test_provenance(&subject.repository, &subject.digest)
}

/// `ferry keygen` into `dir`: (private, public).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["keygen", "--key-prefix"])
            .arg(&prefix)
            .current_dir(dir),
    );
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

async fn sign(
    registry: &Registry,
    image: &ferry::image::Image,
    private: &Path,
    sbom: Option<&[u8]>,
) -> ferry::supply::Attached {
    let subject = subject(registry, image);
    let signer =
        ferry::sign::Signer::open(&ferry::sign::KeyRef::File(private.to_path_buf())).unwrap();
    let repository: ferry::registry::Repository = subject.repository.parse().unwrap();
    let mut session = ferry::registry::Session::open(&repository, &Default::default())
        .await
        .unwrap();
    ferry::supply::attach(&mut session, &subject, &signer, &statement(&subject), sbom)
        .await
        .unwrap()
}

/// The manifest at `tag`, read by skopeo.
fn skopeo_manifest(registry: &Registry, tag: &str) -> serde_json::Value {
    require_tool("skopeo", "apt-get install skopeo");
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/ferry/hello:{tag}", registry.host()),
    ]));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn blob(registry: &Registry, digest: &str) -> Vec<u8> {
    let (status, body) =
        http_get(registry.port, &format!("/v2/ferry/hello/blobs/{digest}")).unwrap();
    assert_eq!(status, 200, "{body}");
    body.into_bytes()
}

/// `openssl dgst -sha256 -verify PUB -signature SIG DATA` succeeds.
fn openssl_verifies(public: &Path, data: &[u8], signature: &[u8]) -> bool {
    require_tool("openssl", "apt-get install openssl");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data"), data).unwrap();
    std::fs::write(dir.path().join("sig.der"), signature).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(dir.path().join("sig.der"))
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.success(), said.contains("Verified OK"), "{said}");
    out.status.success()
}

/// DSSE's pre-authentication encoding, written out here from the spec rather than taken from
/// ferry, so the check is independent.
fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

fn verify_image(reference: &str, public: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["verify-image", reference, "--key"])
        .arg(public)
        .env("FERRY_OUTPUT", "plain")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cosign_signature_verifies_with_openssl_and_a_tampered_one_does_not() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(dir.path(), "ferry");
    assert!(
        std::fs::read_to_string(&private)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let image = push_image(&registry, dir.path(), "one").await;
    let attached = sign(&registry, &image, &private, None).await;
    let hex = image.manifest.digest.trim_start_matches("sha256:");
    assert_eq!(attached.signature, format!("sha256-{hex}.sig"));

    let manifest = skopeo_manifest(&registry, &attached.signature);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let signature = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let payload = blob(&registry, layer["digest"].as_str().unwrap());
    let doc: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        doc["critical"]["identity"]["docker-reference"],
        format!("{}/ferry/hello", registry.host())
    );
    assert_eq!(
        doc["critical"]["image"]["docker-manifest-digest"],
        image.manifest.digest
    );
    assert_eq!(doc["critical"]["type"], "cosign container image signature");

    assert!(openssl_verifies(&public, &payload, &signature));
    let mut tampered = payload.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 1;
    assert!(!openssl_verifies(&public, &tampered, &signature));
    let mut bad_signature = signature.clone();
    let at = bad_signature.len() - 1;
    bad_signature[at] ^= 1;
    assert!(!openssl_verifies(&public, &payload, &bad_signature));
    // Another key's public half does not verify it either.
    let (_, other_public) = keygen(dir.path(), "other");
    assert!(!openssl_verifies(&other_public, &payload, &signature));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provenance_envelope_verifies_with_openssl_and_names_the_build() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(dir.path(), "ferry");
    let image = push_image(&registry, dir.path(), "two").await;
    let attached = sign(&registry, &image, &private, None).await;
    let manifest = skopeo_manifest(&registry, &attached.provenance);
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.dsse.envelope.v1+json"
    );
    assert_eq!(manifest["subject"]["digest"], image.manifest.digest);
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
    assert_eq!(
        layer["annotations"]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    let envelope: serde_json::Value =
        serde_json::from_slice(&blob(&registry, layer["digest"].as_str().unwrap())).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload_type = envelope["payloadType"].as_str().unwrap();
    assert_eq!(payload_type, "application/vnd.in-toto+json");
    let payload = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let signature = b64
        .decode(envelope["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    assert!(openssl_verifies(
        &public,
        &dsse_pae(payload_type, &payload),
        &signature
    ));
    // The signature covers the type too: another type, same payload, does not verify.
    assert!(!openssl_verifies(
        &public,
        &dsse_pae("application/json", &payload),
        &signature
    ));
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        image.manifest.digest.trim_start_matches("sha256:")
    );
    let definition = &statement["predicate"]["buildDefinition"];
    assert_eq!(definition["externalParameters"]["commit"], COMMIT);
    assert_eq!(
        definition["resolvedDependencies"][0]["digest"]["gitCommit"],
        COMMIT
    );
    assert_eq!(
        statement["predicate"]["runDetails"]["builder"]["id"],
        "https://ci.example/job/1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_image_checks_signature_provenance_and_sbom_with_the_key() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(dir.path(), "ferry");
    let (_, other_public) = keygen(dir.path(), "other");
    let image = push_image(&registry, dir.path(), "three").await;
    let reference = format!("{}/ferry/hello@{}", registry.host(), image.manifest.digest);

    let out = verify_image(&reference, &public);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no signature"),
        "{}",
        stderr(&out)
    );

    // Signed, with provenance, but no SBOM: still refused.
    sign(&registry, &image, &private, None).await;
    let out = verify_image(&reference, &public);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("has no SBOM"), "{}", stderr(&out));

    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[]}"#;
    let attached = sign(&registry, &image, &private, Some(sbom)).await;
    // An OCI 1.1 referrer of the image, found by its tag on a registry without the API.
    let manifest = skopeo_manifest(&registry, attached.sbom.as_deref().unwrap());
    assert_eq!(manifest["artifactType"], "application/vnd.cyclonedx+json");
    assert_eq!(manifest["subject"]["digest"], image.manifest.digest);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(
        blob(&registry, manifest["layers"][0]["digest"].as_str().unwrap()),
        sbom.to_vec()
    );
    let out = verify_image(&reference, &public);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), reference);
    // By tag too: the tag resolves to the same digest.
    let out = verify_image(&format!("{}/ferry/hello:t-three", registry.host()), &public);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), reference);

    let out = verify_image(&reference, &other_public);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no signature that verifies with"),
        "{}",
        stderr(&out)
    );
}

/// A project whose `prod` environment requires signatures from `public`.
fn project(dir: &Path, registry: &Registry, fake: &FakeCluster, public: &Path) {
    let repository = format!("{}/ferry/hello", registry.host());
    let env = kubernetes_env(
        "prod",
        &repository,
        fake.kubeconfig_path(),
        "default",
        &repository_manifest(),
    );
    let toml = format!("{env}require_signature = \"{}\"\n", public.display());
    std::fs::write(dir.join("ferry.toml"), toml).unwrap();
}

async fn ferry_deploy(dir: &Path, image: &str) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .args([
            "deploy",
            "--env",
            "prod",
            "--image",
            image,
            "--timeout",
            "60",
        ])
        .current_dir(dir)
        .env("FERRY_OUTPUT", "plain")
        // ferry's own COMMIT: from git in a checkout, from the environment outside one.
        .env("COMMIT", COMMIT)
        .env_remove("FERRY_CONFIG")
        .env_remove("KUBECONFIG");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_an_unsigned_image_where_signatures_are_required_applies_nothing() {
    ferry::install_crypto_provider();
    let registry = Registry::start();
    let fake = fast_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(dir.path(), "ferry");
    let (other_private, _) = keygen(dir.path(), "other");
    project(dir.path(), &registry, &fake, &public);
    let image = push_image(&registry, dir.path(), "four").await;
    let reference = format!("{}/ferry/hello@{}", registry.host(), image.manifest.digest);
    let deployment = "/apis/apps/v1/namespaces/default/deployments/hello";

    let out = ferry_deploy(dir.path(), &reference).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("refusing to deploy"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    assert!(
        fake.get_json(deployment).is_none(),
        "a Deployment was applied"
    );
    assert!(
        fake.get_json("/api/v1/namespaces/default/services/hello")
            .is_none()
    );

    // Signed with a key the environment does not trust: still nothing.
    sign(&registry, &image, &other_private, None).await;
    let out = ferry_deploy(dir.path(), &reference).await;
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(fake.get_json(deployment).is_none());

    sign(&registry, &image, &private, None).await;
    let out = ferry_deploy(dir.path(), &reference).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let applied = fake.get_json(deployment).expect("deployed");
    assert_eq!(
        applied["spec"]["template"]["spec"]["containers"][0]["image"],
        reference
    );
}

/// The SBOM ferry writes for `hello` in `repo`.
fn hello_sbom(repo: &Path) -> Vec<u8> {
    let crates = ferry::sbom::crates(repo, "hello", ferry::compile::TARGET).unwrap();
    ferry::sbom::cyclonedx(&crates, "2026-01-01T00:00:00Z")
}

#[test]
fn the_sbom_is_valid_cyclonedx_1_5_lists_the_linked_crates_and_is_the_same_from_two_clones() {
    require_tool("python3", "apt-get install python3");
    let ws = workspace();
    let sbom = hello_sbom(&ws);

    // CycloneDX's own library validates it against the 1.5 JSON schema (strict).
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &sbom).unwrap();
    let check = "import sys\n\
        try:\n    from cyclonedx.validation.json import JsonStrictValidator\n    from cyclonedx.schema import SchemaVersion\n\
        except ImportError:\n    sys.exit('cyclonedx-python-lib missing: pip install \"cyclonedx-python-lib[json-validation]\" (scripts/install-test-deps)')\n\
        e = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
        sys.exit(('invalid: ' + str(e.data.message)) if e else 0)\n";
    run_ok(Command::new("python3").args(["-c", check]).arg(file.path()));

    // Exactly what cargo itself says is linked: normal dependencies, no proc-macros.
    let tree = run_ok(Command::new("cargo").current_dir(&ws).args([
        "tree",
        "--locked",
        "-p",
        "hello",
        "-e",
        "normal,no-proc-macro",
        "--target",
        ferry::compile::TARGET,
        "--prefix",
        "none",
        "-f",
        "{p}",
    ]));
    let expected: std::collections::BTreeSet<String> = String::from_utf8_lossy(&tree.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some(format!(
                "{}@{}",
                words.next()?,
                words.next()?.trim_start_matches('v')
            ))
        })
        .collect();
    let doc: serde_json::Value = serde_json::from_slice(&sbom).unwrap();
    let mut listed: std::collections::BTreeSet<String> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        })
        .collect();
    let root = &doc["metadata"]["component"];
    listed.insert(format!(
        "{}@{}",
        root["name"].as_str().unwrap(),
        root["version"].as_str().unwrap()
    ));
    assert_eq!(listed, expected);
    assert!(listed.contains(&format!("hello@{}", env!("CARGO_PKG_VERSION"))));
    assert!(
        !listed.iter().any(|c| c.starts_with("serde_derive@")),
        "proc-macros are not linked"
    );

    // Registry crates carry Cargo.lock's checksum.
    let lock = std::fs::read_to_string(ws.join("Cargo.lock")).unwrap();
    let tokio = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "tokio")
        .expect("tokio is in hello");
    let sum = tokio["hashes"][0]["content"].as_str().unwrap();
    assert!(lock.contains(&format!("checksum = \"{sum}\"")), "{sum}");

    // Another clone at another path: the same bytes.
    let one = scratch_repo();
    let two = scratch_repo();
    assert_eq!(hello_sbom(one.path()), hello_sbom(two.path()));
    assert_eq!(hello_sbom(one.path()), sbom);
}

/// A fake Cloud KMS on loopback: `POST /v1/{name}:asymmetricSign` with a bearer token signs
/// the SHA-256 digest it is sent with its own P-256 key, as KMS does (DER, base64).
async fn fake_kms(
    key: p256::ecdsa::SigningKey,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode};
    use p256::ecdsa::signature::hazmat::PrehashSigner as _;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<String>>>;
    let seen: Seen = Default::default();
    async fn sign(
        State((key, seen)): State<(p256::ecdsa::SigningKey, Seen)>,
        UrlPath(rest): UrlPath<String>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> Result<axum::Json<serde_json::Value>, (StatusCode, String)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer test-token") {
            return Err((
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"message":"no token"}}"#.into(),
            ));
        }
        seen.lock().unwrap().push(rest.clone());
        let digest = b64
            .decode(body["digest"]["sha256"].as_str().unwrap_or_default())
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        let signature: p256::ecdsa::Signature = key
            .sign_prehash(&digest)
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        Ok(axum::Json(
            serde_json::json!({ "signature": b64.encode(signature.to_der().as_bytes()) }),
        ))
    }
    let app = axum::Router::new()
        .route("/v1/{*rest}", axum::routing::post(sign))
        .with_state((key, seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_kms_key_signs_through_the_kms_api_and_openssl_verifies_it() {
    use p256::pkcs8::EncodePublicKey as _;
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let public = dir.path().join("kms.pub");
    std::fs::write(
        &public,
        key.verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let (port, seen) = fake_kms(key).await;
    let name = "projects/p/locations/global/keyRings/ferry/cryptoKeys/signing/cryptoKeyVersions/1";
    let key_ref = ferry::sign::KeyRef::parse(&format!("gcpkms://{name}"), dir.path()).unwrap();
    assert_eq!(key_ref, ferry::sign::KeyRef::GcpKms(name.into()));
    let signer = ferry::sign::Signer::GcpKms {
        name: name.into(),
        endpoint: format!("http://127.0.0.1:{port}"),
        token: Some(ferry::registry::Secret::new("test-token")),
    };

    let image = push_image(&registry, dir.path(), "kms").await;
    let subject = subject(&registry, &image);
    let repository: ferry::registry::Repository = subject.repository.parse().unwrap();
    let mut session = ferry::registry::Session::open(&repository, &Default::default())
        .await
        .unwrap();
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1}"#;
    let attached = ferry::supply::attach(
        &mut session,
        &subject,
        &signer,
        &statement(&subject),
        Some(sbom),
    )
    .await
    .unwrap();
    // Two signing calls, both for the key version: the signature and the provenance envelope.
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!("{name}:asymmetricSign"),
            format!("{name}:asymmetricSign")
        ]
    );
    let manifest = skopeo_manifest(&registry, &attached.signature);
    let layer = &manifest["layers"][0];
    let signature = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let payload = blob(&registry, layer["digest"].as_str().unwrap());
    assert!(openssl_verifies(&public, &payload, &signature));
    let reference = format!("{}@{}", subject.repository, subject.digest);
    let out = verify_image(&reference, &public);
    assert!(out.status.success(), "{}", stderr(&out));

    // A refused token is an error that says what to do.
    let refused = ferry::sign::Signer::GcpKms {
        name: name.into(),
        endpoint: format!("http://127.0.0.1:{port}"),
        token: Some(ferry::registry::Secret::new("wrong")),
    };
    let err = refused.sign(b"x").await.unwrap_err().to_string();
    assert!(err.contains("Cloud KMS could not sign"), "{err}");
    assert!(err.contains("roles/cloudkms.signer"), "{err}");
}

// ---- Binary Authorization attestations ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binauthz_attestations_verify_with_openssl_and_an_existing_one_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(dir.path(), "ferry");
    let key = ferry::sign::KeyRef::File(private);
    let signer = ferry::sign::Signer::open(&key).unwrap();
    let settings = ferry::binauthz::Settings {
        attestor: "projects/p/attestors/ferry".into(),
        note: "projects/p/notes/ferry-note".into(),
        public_key_id: Some("ni:///sha-256;test-key".into()),
    };
    let attestor = settings.check(Some(&key)).unwrap();
    let repository = "europe-west1-docker.pkg.dev/p/ferry/hello";
    let digest = format!("sha256:{}", "b".repeat(64));

    // Container Analysis busy once: the second try creates one occurrence.
    let (endpoint, seen) = fake_container_analysis(Answer::BusyOnce).await;
    let api = ferry::binauthz::ContainerAnalysis {
        endpoint,
        token: Some(ferry::registry::Secret::new("test-token")),
    };
    let attested = ferry::binauthz::attest(&api, &attestor, &signer, repository, &digest)
        .await
        .unwrap();
    assert_eq!(
        attested,
        ferry::binauthz::Attested::Created {
            occurrence: "projects/p/occurrences/occ-1".into()
        }
    );
    let occurrence = {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests.len(), 2);
        assert!(
            seen.requests
                .iter()
                .all(|(path, _)| path == "/v1/projects/p/occurrences")
        );
        assert_eq!(seen.created.len(), 1);
        seen.created[0].clone()
    };
    let occurrence = &occurrence;
    assert_eq!(occurrence["kind"], "ATTESTATION");
    assert_eq!(occurrence["noteName"], "projects/p/notes/ferry-note");
    assert_eq!(
        occurrence["resourceUri"],
        format!("https://{repository}@{digest}")
    );
    let (payload, signature, id) = attestation_parts(occurrence);
    assert_eq!(id, "ni:///sha-256;test-key");
    assert_binauthz_payload(&payload, repository, &digest);
    assert!(openssl_verifies(&public, &payload, &signature));
    let mut tampered = payload.clone();
    let at = tampered.len() - 5;
    tampered[at] ^= 1;
    assert!(!openssl_verifies(&public, &tampered, &signature));

    // ALREADY_EXISTS: the image is attested already, which is what was asked.
    let (endpoint, seen) = fake_container_analysis(Answer::Conflict).await;
    let api = ferry::binauthz::ContainerAnalysis {
        endpoint,
        token: Some(ferry::registry::Secret::new("test-token")),
    };
    let attested = ferry::binauthz::attest(&api, &attestor, &signer, repository, &digest)
        .await
        .unwrap();
    assert_eq!(attested, ferry::binauthz::Attested::AlreadyThere);
    assert_eq!(seen.lock().unwrap().requests.len(), 1);

    // A refused token says what to do.
    let api = ferry::binauthz::ContainerAnalysis {
        endpoint: api.endpoint,
        token: Some(ferry::registry::Secret::new("wrong")),
    };
    let err = ferry::binauthz::attest(&api, &attestor, &signer, repository, &digest)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(
        err.contains("gcloud auth application-default login"),
        "{err}"
    );
}

/// `ferry.binauthz.toml` in the checkout (git ignores it): an environment signing with a
/// Cloud KMS key and attesting for Binary Authorization.
fn write_binauthz_config(repo: &Path, registry: &Registry, fake: &FakeCluster) -> String {
    let repository = format!("{}/ferry/hello", registry.host());
    std::fs::write(
        repo.join("ferry.binauthz.toml"),
        format!(
            "[service]\npackage = \"hello\"\nbinary = \"hello\"\nport = 8000\nready_path = \"/readyz\"\n\n[image]\nname = \"hello\"\ntag = \"commit\"\nsource = \"https://github.com/ferry-dev/ferry\"\n\n\
             [environments.prod]\nkind = \"kubernetes\"\nrepository = \"{repository}\"\nkubeconfig = \"{}\"\nnamespace = \"default\"\nmanifest = \"k8s.yml\"\nvars = {{ REPLICAS = \"2\" }}\n\
             signing_key = \"gcpkms://{KMS_KEY}\"\n\
             binauthz = {{ attestor = \"projects/ferry-e2e/attestors/ferry\", note = \"projects/ferry-e2e/notes/ferry-note\" }}\n",
            fake.kubeconfig_path().display(),
        ),
    )
    .unwrap();
    std::fs::write(
        repo.join(".git/info/exclude"),
        "ferry.binauthz.toml\nferry.mp.toml\nferry.e2e.toml\n",
    )
    .unwrap();
    repository
}

const KMS_KEY: &str = "projects/ferry-e2e/locations/europe-west1/keyRings/ferry/cryptoKeys/image-signing/cryptoKeyVersions/1";

/// How the ship gets its Google token.
enum Google<'a> {
    /// `FERRY_KMS_TOKEN=test-token`.
    Token,
    /// An `external_account` configuration (workload identity federation, as in CI) at this
    /// path, and no FERRY_KMS_TOKEN.
    ExternalAccount(&'a Path),
}

/// A fake Google STS on loopback: `POST /sts/v1/token` exchanges the subject token for
/// `test-token`, the token the fake KMS and Container Analysis want. Its endpoint and how many
/// exchanges it made.
async fn fake_sts(
    subject: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let exchanges = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = exchanges.clone();
    let app = axum::Router::new().route(
        "/sts/v1/token",
        axum::routing::post(move |body: String| {
            let counter = counter.clone();
            async move {
                let given = body
                    .split('&')
                    .any(|field| field == format!("subject_token={subject}"));
                if !given {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        r#"{"error":"invalid_grant"}"#.to_string(),
                    );
                }
                counter.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::OK,
                    r#"{"access_token":"test-token","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}"#.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), exchanges)
}

/// `ferry ship --env prod` in `repo` with ferry.binauthz.toml, Google's APIs on loopback.
async fn ship_attested(
    repo: &Path,
    kms: u16,
    container_analysis: &str,
    google: Google<'_>,
) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    match google {
        Google::Token => command.env("FERRY_KMS_TOKEN", "test-token"),
        Google::ExternalAccount(config) => command
            .env_remove("FERRY_KMS_TOKEN")
            .env("GOOGLE_APPLICATION_CREDENTIALS", config),
    };
    command
        .args([
            "--config",
            "ferry.binauthz.toml",
            "--output",
            "json",
            "ship",
            "--env",
            "prod",
            "--skip-tests",
        ])
        .current_dir(repo)
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target").join("e2e").join("target"),
        )
        .env("FERRY_OUTPUT", "plain")
        .env("FERRY_KMS_ENDPOINT", format!("http://127.0.0.1:{kms}"))
        .env("FERRY_CONTAINERANALYSIS_ENDPOINT", container_analysis)
        .env_remove("FERRY_ENV")
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stage_names(summary: &serde_json::Value) -> Vec<String> {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// A Cloud KMS key for the fake KMS and its public half in `dir`.
fn kms_key(dir: &Path) -> (p256::ecdsa::SigningKey, PathBuf) {
    use p256::pkcs8::EncodePublicKey as _;
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let public = dir.join("kms.pub");
    std::fs::write(
        &public,
        key.verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    (key, public)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_signed_ship_attests_the_pushed_digest_once_for_binary_authorization() {
    let repo = checkout();
    let registry = Registry::start();
    let fake = fast_cluster().await;
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = kms_key(keys.path());
    let (kms, _) = fake_kms(key).await;
    let (container_analysis, seen) = fake_container_analysis(Answer::Create).await;
    let repository = write_binauthz_config(&repo, &registry, &fake);
    // CI's credentials: a CircleCI OIDC token exchanged at Google's STS (here, a fake).
    const SUBJECT: &str = "circleci-oidc-token";
    let (sts, exchanges) = fake_sts(SUBJECT).await;
    let subject = keys.path().join("oidc-token");
    std::fs::write(&subject, SUBJECT).unwrap();
    let credentials = keys.path().join("external-account.json");
    std::fs::write(
        &credentials,
        serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/circleci/providers/circleci-oidc",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{sts}/sts/v1/token"),
            "credential_source": { "file": subject },
        })
        .to_string(),
    )
    .unwrap();

    let out = ship_attested(
        &repo,
        kms,
        &container_analysis,
        Google::ExternalAccount(&credentials),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        exchanges.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the KMS and Container Analysis token came from the STS"
    );
    assert!(!stderr(&out).contains("test-token"), "a token was printed");
    assert_matches_schema(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages = stage_names(&summary);
    let at = |name: &str| stages.iter().position(|s| s == name).unwrap();
    assert!(
        at("push") < at("sign") && at("sign") < at("attest"),
        "{stages:?}"
    );
    assert!(at("attest") < at("render"), "{stages:?}");
    let pinned = summary["image"]["reference"].as_str().unwrap().to_string();
    let digest = pinned.split_once('@').unwrap().1.to_string();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.created.len(), 1, "exactly one occurrence");
    assert_eq!(seen.requests.len(), 1);
    assert_eq!(seen.requests[0].0, "/v1/projects/ferry-e2e/occurrences");
    let occurrence = &seen.created[0];
    assert_eq!(occurrence["kind"], "ATTESTATION");
    assert_eq!(
        occurrence["noteName"],
        "projects/ferry-e2e/notes/ferry-note"
    );
    assert_eq!(occurrence["resourceUri"], format!("https://{pinned}"));
    let (payload, signature, id) = attestation_parts(occurrence);
    // The id Terraform gives the attestor's key: google_kms_crypto_key_version's.
    assert_eq!(id, format!("//cloudkms.googleapis.com/v1/{KMS_KEY}"));
    assert_binauthz_payload(&payload, &repository, &digest);
    assert!(openssl_verifies(&public, &payload, &signature));
    let mut tampered = payload.clone();
    let at = tampered.len() - 5;
    tampered[at] ^= 1;
    assert!(!openssl_verifies(&public, &tampered, &signature));
    let attest = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "attest")
        .unwrap();
    assert!(
        attest["detail"]
            .as_str()
            .unwrap()
            .starts_with("projects/ferry-e2e/occurrences/occ-1"),
        "{attest}"
    );

    let deployment = fake
        .get_json("/apis/apps/v1/namespaces/default/deployments/hello")
        .expect("deployed");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        pinned.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_refused_attestation_fails_ship_before_anything_is_applied() {
    let repo = checkout();
    let registry = Registry::start();
    let fake = fast_cluster().await;
    let keys = tempfile::tempdir().unwrap();
    let (key, _) = kms_key(keys.path());
    let (kms, _) = fake_kms(key).await;
    let (container_analysis, seen) = fake_container_analysis(Answer::Refuse).await;
    write_binauthz_config(&repo, &registry, &fake);

    let out = ship_attested(&repo, kms, &container_analysis, Google::Token).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Container Analysis refused the attestation of"),
        "{err}"
    );
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(
        err.contains(
            "roles/containeranalysis.notes.attacher on projects/ferry-e2e/notes/ferry-note"
        ),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["failed_stage"], "attest", "{summary}");
    let stages = stage_names(&summary);
    assert!(
        !stages.iter().any(|s| s == "render" || s == "deploy"),
        "{stages:?}"
    );
    assert_eq!(seen.lock().unwrap().created.len(), 0);
    assert!(
        fake.get_json("/apis/apps/v1/namespaces/default/deployments/hello")
            .is_none(),
        "a Deployment was applied"
    );
    assert!(
        fake.get_json("/api/v1/namespaces/default/services/hello")
            .is_none()
    );
}

/// `skopeo inspect --raw [--config] docker://REFERENCE` written to `dir/name`.
fn skopeo_raw_to(reference: &str, config: bool, dir: &Path, name: &str) -> PathBuf {
    require_tool("skopeo", "apt-get install skopeo");
    let mut command = Command::new("skopeo");
    command.args(["inspect", "--raw", "--tls-verify=false"]);
    if config {
        command.arg("--config");
    }
    let out = run_ok(command.arg(format!("docker://{reference}")));
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layouts_manifests_index_config_and_artifacts_validate_against_the_oci_schemas() {
    use crate::support::images::{sign_like_ship, two_platform_image, validate_oci};
    use std::ffi::OsStr;
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = keygen(dir.path(), "ferry");

    // The layouts ferry writes (a single-platform image and a two-platform one)...
    let single = push_image(&registry, dir.path(), "schema").await;
    let multi = two_platform_image(dir.path(), "schema-mp");
    // ...and what the registry holds after a signed push, as skopeo reads it back: the
    // index, each platform's manifest and config, the signature, provenance and SBOMs.
    let repository = format!("{}/ferry/hello", registry.host());
    let parsed: ferry::registry::Repository = repository.parse().unwrap();
    ferry::registry::push(&multi, &parsed, &Default::default())
        .await
        .unwrap();
    sign_like_ship(&repository, &multi, &private).await;
    let raw = tempfile::tempdir().unwrap();
    let at = |d: &str| format!("{repository}@{d}");
    let tag = |d: &str, suffix: &str| format!("{repository}:{}.{suffix}", d.replace(':', "-"));
    let index_path = skopeo_raw_to(&at(&multi.manifest.digest), false, raw.path(), "index");
    let mut documents = vec![index_path.clone()];
    for suffix in ["sig", "att", "sbom"] {
        documents.push(skopeo_raw_to(
            &tag(&multi.manifest.digest, suffix),
            false,
            raw.path(),
            suffix,
        ));
    }
    for (platform, child) in &multi.platforms {
        let name = platform.replace('/', "-");
        let digest = &child.manifest.digest;
        documents.push(skopeo_raw_to(&at(digest), false, raw.path(), &name));
        documents.push(skopeo_raw_to(
            &tag(digest, "sbom"),
            false,
            raw.path(),
            &format!("{name}.sbom"),
        ));
        documents.push(skopeo_raw_to(
            &at(digest),
            true,
            raw.path(),
            &format!("{name}.config"),
        ));
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    let mut args = vec![
        OsStr::new("auto"),
        single.layout.as_os_str(),
        multi.layout.as_os_str(),
    ];
    args.extend(documents.iter().map(|p| p.as_os_str()));
    let out = validate_oci(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    // Layouts: oci-layout, index.json, manifest, config (4) and oci-layout, index.json, the
    // index, 2 manifests, 2 configs (7); from the registry: 4 + 3 per platform (10).
    assert_eq!(stdout(&out), "validate-oci: 21 document(s) valid");

    // The validator can fail: a manifest with a size that is a string and no layers, an
    // index of a wrong version, a layout whose config does not match its digest.
    let broken_manifest = raw.path().join("broken-manifest");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(raw.path().join("linux-arm64")).unwrap()).unwrap();
    manifest["config"]["size"] = "2".into();
    manifest["layers"] = serde_json::json!([]);
    std::fs::write(&broken_manifest, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let mut bad_index = index.clone();
    bad_index["schemaVersion"] = 3.into();
    bad_index["manifests"][0]["digest"] = "not-a-digest".into();
    let broken_index = raw.path().join("broken-index");
    std::fs::write(&broken_index, serde_json::to_vec(&bad_index).unwrap()).unwrap();
    let broken_layout = dir.path().join("broken-layout");
    copy_tree(&multi.layout, &broken_layout);
    let config = &multi.platforms[1].1.config.digest;
    std::fs::write(
        broken_layout
            .join("blobs/sha256")
            .join(config.trim_start_matches("sha256:")),
        br#"{"architecture":1}"#,
    )
    .unwrap();
    let out = validate_oci(&[
        OsStr::new("auto"),
        broken_manifest.as_os_str(),
        broken_index.as_os_str(),
        broken_layout.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for expected in [
        "broken-manifest: not a valid OCI manifest at config/size: '2' is not of type 'integer'",
        "broken-manifest: not a valid OCI manifest at layers: [] should be non-empty",
        "broken-index: not a valid OCI index at schemaVersion",
        "broken-index: not a valid OCI index at manifests/0/digest",
        "does not hash to its digest",
        "not a valid OCI config at architecture: 1 is not of type 'string'",
    ] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
}
