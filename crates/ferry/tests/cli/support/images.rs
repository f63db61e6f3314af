//! Images as ferry writes them, without a compiler (their "binaries" are shell scripts that
//! nothing runs), signed as `ferry ship` signs them, and the OCI image-spec's schemas as the
//! independent check of their JSON (scripts/validate-oci).

use std::path::Path;
use std::process::{Command, Output};

use super::*;

pub const IMAGE_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The spec of a tiny image whose "binary" is a shell script saying `body` (nothing runs it).
pub fn script_spec(dir: &Path, body: &str, arch: &str) -> ferry::image::ImageSpec {
    let binary = dir.join(format!("app-{body}-{arch}"));
    std::fs::write(&binary, format!("#!/bin/sh\necho {body} on {arch}\n")).unwrap();
    ferry::image::ImageSpec {
        binary,
        binary_name: "app".into(),
        port: 8000,
        user: 65532,
        args: vec![],
        env: vec![],
        files: vec![],
        ca_certificates: false,
        tag: format!("t-{body}"),
        revision: IMAGE_COMMIT.into(),
        created: "2026-01-01T00:00:00Z".into(),
        created_unix: 1_767_225_600,
        source: Some("https://github.com/ferry-dev/ferry".into()),
        title: "app".into(),
    }
}

/// A linux/amd64 + linux/arm64 image index in an OCI layout under `dir`, written by the code
/// `ferry build` uses for `[image] platforms`.
pub fn two_platform_image(dir: &Path, body: &str) -> ferry::image::Image {
    let parts: Vec<_> = ["linux/amd64", "linux/arm64"]
        .iter()
        .map(|p| {
            let platform = ferry::compile::Platform::parse(p).unwrap();
            let spec = script_spec(dir, body, &platform.architecture);
            (platform, spec)
        })
        .collect();
    let host = ferry::compile::Platform::parse("linux/amd64").unwrap();
    ferry::image::assemble_index(&parts, &host, &dir.join(format!("oci-{body}"))).unwrap()
}

/// `ferry keygen` into `dir`: (private, public).
pub fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let prefix = dir.join(name);
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["keygen", "--key-prefix"])
            .arg(&prefix)
            .current_dir(dir),
    );
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// A CycloneDX document naming `what` (the tests check where it goes, not what it lists).
pub fn sbom_for(what: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": { "component": { "type": "application", "name": what } },
        "components": [],
    }))
    .unwrap()
}

/// Signs `image`, pushed to `repository` (`host/path`), as `ferry ship` does with
/// `signing_key`: the cosign signature, SLSA provenance and an SBOM of the image, and an SBOM
/// of each platform's manifest.
pub async fn sign_like_ship(repository: &str, image: &ferry::image::Image, private: &Path) {
    let subject = |blob: &ferry::image::Blob| ferry::supply::Subject {
        repository: repository.to_string(),
        digest: blob.digest.clone(),
        media_type: blob.media_type.clone(),
        size: blob.size,
    };
    let top = subject(&image.manifest);
    let statement = test_provenance(repository, &top.digest);
    let signer =
        ferry::sign::Signer::open(&ferry::sign::KeyRef::File(private.to_path_buf())).unwrap();
    let parsed: ferry::registry::Repository = repository.parse().unwrap();
    let mut session = ferry::registry::Session::open(&parsed, &Default::default())
        .await
        .unwrap();
    ferry::supply::attach(
        &mut session,
        &top,
        &signer,
        &statement,
        Some(&sbom_for("index")),
    )
    .await
    .unwrap();
    for (platform, child) in &image.platforms {
        ferry::supply::attach_sbom(&mut session, &subject(&child.manifest), &sbom_for(platform))
            .await
            .unwrap();
    }
}

/// `scripts/validate-oci ARGS`: the OCI image-spec's JSON schemas (Debian's
/// golang-github-opencontainers-image-spec-dev) checked by the `jsonschema` library.
pub fn validate_oci(args: &[&std::ffi::OsStr]) -> Output {
    require_tool("python3", "apt-get install python3");
    let schemas = "/usr/share/gocode/src/github.com/opencontainers/image-spec/schema";
    assert!(
        Path::new(schemas)
            .join("image-manifest-schema.json")
            .is_file(),
        "the OCI image-spec schemas are missing from {schemas}: apt-get install golang-github-opencontainers-image-spec-dev (scripts/install-test-deps installs it)"
    );
    Command::new(workspace().join("scripts/validate-oci"))
        .args(args)
        .env_remove("OCI_SCHEMA_DIR")
        .output()
        .unwrap()
}

/// A SLSA provenance statement for `repository@digest` with fixed build facts, as a test
/// signs it.
pub fn test_provenance(repository: &str, digest: &str) -> Vec<u8> {
    ferry::attest::provenance(&ferry::attest::BuildFacts {
        repository: repository.to_string(),
        digest: digest.to_string(),
        source: Some("https://github.com/ferry-dev/ferry".into()),
        commit: IMAGE_COMMIT.into(),
        package: "app".into(),
        environment: "test".into(),
        command: vec!["cargo".into(), "build".into(), "--release".into()],
        cargo_lock: Some(format!("sha256:{}", "c".repeat(64))),
        toolchain: "rustc 1.95.0".into(),
        builder: "https://ci.example/job/1".into(),
        time: "2026-01-01T00:00:00Z".into(),
    })
}
