//! SLSA v1 provenance for an image: an in-toto Statement saying which builder turned which
//! source commit, with which command, lock file and toolchain, into which image digest.
//!
//! The statement is built here; it is signed into a DSSE envelope by [`crate::sign`] and
//! stored beside the image by [`crate::supply`].

use std::path::Path;

use serde_json::json;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// What ferry's builds are, for verifiers that match on it.
pub const BUILD_TYPE: &str = "https://github.com/ferry-dev/ferry/blob/main/docs/build-type-v1.md";

/// What the provenance records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFacts {
    /// Repository the image is pushed to (the statement's subject name).
    pub repository: String,
    /// The image's manifest (or index) digest, `sha256:…`.
    pub digest: String,
    /// Source repository URI (`[image] source`), if known.
    pub source: Option<String>,
    /// Full commit hash.
    pub commit: String,
    /// The cargo package built.
    pub package: String,
    /// The environment delivered to.
    pub environment: String,
    /// The build command, as run.
    pub command: Vec<String>,
    /// `sha256:…` of Cargo.lock.
    pub cargo_lock: Option<String>,
    /// `rustc -V` (e.g. `rustc 1.95.0 (…)`).
    pub toolchain: String,
    /// Who built it: the CI job URL, else `ferry on HOST`.
    pub builder: String,
    /// The commit time (start of the build window recorded; keeps the statement reproducible).
    pub time: String,
}

impl BuildFacts {
    /// The facts for an image built from `root`: Cargo.lock's digest, the toolchain, the
    /// builder (CircleCI's job URL when there is one).
    pub fn collect(root: &Path) -> (Option<String>, String, String) {
        let cargo_lock = std::fs::read(root.join("Cargo.lock"))
            .ok()
            .map(|b| crate::image::sha256(&b));
        let toolchain = std::process::Command::new("rustc")
            .arg("-V")
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let builder = std::env::var("CIRCLE_BUILD_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                let host = std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "localhost".into());
                format!("https://github.com/ferry-dev/ferry#local/{host}")
            });
        (cargo_lock, toolchain, builder)
    }
}

/// The in-toto Statement (SLSA v1 predicate) as bytes with a fixed key order.
pub fn provenance(facts: &BuildFacts) -> Vec<u8> {
    let hex = facts.digest.trim_start_matches("sha256:");
    let mut dependencies = vec![json!({
        "uri": match &facts.source {
            Some(s) => format!("git+{s}@{}", facts.commit),
            None => format!("git+commit:{}", facts.commit),
        },
        "digest": { "gitCommit": facts.commit },
    })];
    if let Some(lock) = &facts.cargo_lock {
        dependencies.push(json!({
            "name": "Cargo.lock",
            "digest": { "sha256": lock.trim_start_matches("sha256:") },
        }));
    }
    dependencies.push(json!({
        "name": "rust-toolchain",
        "annotations": { "version": facts.toolchain },
    }));
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": facts.repository, "digest": { "sha256": hex } }],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": facts.source,
                    "commit": facts.commit,
                    "package": facts.package,
                    "environment": facts.environment,
                },
                "internalParameters": { "command": facts.command },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": facts.builder,
                    "version": { "ferry": env!("CARGO_PKG_VERSION") },
                },
                "metadata": { "invocationId": facts.builder, "startedOn": facts.time },
            },
        },
    });
    serde_json::to_vec(&statement).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_names_the_image_source_lock_and_toolchain() {
        let facts = BuildFacts {
            repository: "r.example/ferry/hello".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            source: Some("https://github.com/ferry-dev/ferry".into()),
            commit: "c".repeat(40),
            package: "hello".into(),
            environment: "staging".into(),
            command: vec!["cargo".into(), "build".into()],
            cargo_lock: Some(format!("sha256:{}", "b".repeat(64))),
            toolchain: "rustc 1.95.0".into(),
            builder: "https://circleci.com/gh/x/1".into(),
            time: "2026-01-01T00:00:00Z".into(),
        };
        let doc: serde_json::Value = serde_json::from_slice(&provenance(&facts)).unwrap();
        assert_eq!(doc["_type"], STATEMENT_TYPE);
        assert_eq!(doc["subject"][0]["digest"]["sha256"], "a".repeat(64));
        assert_eq!(doc["predicateType"], SLSA_PROVENANCE_V1);
        let deps = &doc["predicate"]["buildDefinition"]["resolvedDependencies"];
        assert_eq!(deps[0]["digest"]["gitCommit"], "c".repeat(40));
        assert_eq!(deps[1]["digest"]["sha256"], "b".repeat(64));
        assert_eq!(deps[2]["annotations"]["version"], "rustc 1.95.0");
        assert_eq!(provenance(&facts), provenance(&facts));
    }
}
