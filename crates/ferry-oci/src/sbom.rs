//! A CycloneDX 1.5 JSON SBOM of the crates compiled into a service's binary.
//!
//! The crates are what cargo resolves for building the package alone for the binary's target
//! (`cargo tree -p PACKAGE -e normal,no-proc-macro --target T`): the package and everything it
//! reaches through normal dependencies. Build dependencies and proc-macro crates (and what only
//! they use) run on the build machine and are left out: none of their code is in the binary.
//! Licenses and sources come from `cargo metadata`. Checksums come from `Cargo.lock`. Nothing in the document depends on
//! the machine or the time of the build (the timestamp is the commit's), so the same commit
//! gives the same bytes.
//!
//! Not here: attaching it to the image ([`crate::supply`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error(
        "cannot list the crates of {package} for the SBOM: `cargo metadata` failed: {why}\n  hint: run `cargo metadata --locked` in the project to see why"
    )]
    Metadata { package: String, why: String },
    #[error(
        "`cargo metadata` has no package {package} in its resolve\n  hint: check `[service] package` in ferry.toml"
    )]
    NoPackage { package: String },
}

/// One crate in the binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// `registry+…`, `git+…`; `None` for path crates (the workspace's own).
    pub source: Option<String>,
    pub license: Option<String>,
    /// Cargo.lock's `checksum` (SHA-256 of the .crate file), for registry crates.
    pub checksum: Option<String>,
    /// purls of the crates it depends on (normal dependencies in the binary).
    pub depends_on: BTreeSet<String>,
}

impl Crate {
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

/// The crates compiled into `package`'s binary for `target`: the package first, the others
/// sorted by name and version.
pub fn crates(root: &Path, package: &str, target: &str) -> Result<Vec<Crate>, SbomError> {
    let failed = |why: String| SbomError::Metadata {
        package: package.to_string(),
        why,
    };
    let cargo = |args: &[&str]| -> Result<Vec<u8>, SbomError> {
        let out = std::process::Command::new("cargo")
            .args(args)
            .current_dir(root)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| failed(format!("cannot run cargo: {e}")))?;
        if !out.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(out.stdout)
    };
    let metadata = cargo(&["metadata", "--format-version", "1", "--locked"])?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&metadata).map_err(|e| failed(e.to_string()))?;
    // `cargo metadata` unifies features across the whole workspace; the tree of `-p PACKAGE`
    // has what building that package alone resolves, which is what the binary has.
    let tree = cargo(&[
        "tree",
        "--locked",
        "-p",
        package,
        "-e",
        "normal,no-proc-macro",
        "--target",
        target,
        "--prefix",
        "depth",
        "-f",
        "{p}",
    ])?;
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    from_tree(
        &String::from_utf8_lossy(&tree),
        &metadata,
        &checksums(&lock),
        package,
    )
}

/// `(name, version) → checksum` from Cargo.lock.
fn checksums(lock: &str) -> BTreeMap<(String, String), String> {
    let doc: toml::Table = toml::from_str(lock).unwrap_or_default();
    doc.get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                (
                    p.get("name")?.as_str()?.to_string(),
                    p.get("version")?.as_str()?.to_string(),
                ),
                p.get("checksum")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Crates and edges from `cargo tree --prefix depth -f {p}` lines (`2serde v1.0.0 (*)`),
/// with licenses and sources from `cargo metadata`.
fn from_tree(
    tree: &str,
    metadata: &serde_json::Value,
    checksums: &BTreeMap<(String, String), String>,
    package: &str,
) -> Result<Vec<Crate>, SbomError> {
    let packages: BTreeMap<(String, String), &serde_json::Value> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                (
                    p["name"].as_str()?.to_string(),
                    p["version"].as_str()?.to_string(),
                ),
                p,
            ))
        })
        .collect();
    let mut crates: BTreeMap<(String, String), Crate> = BTreeMap::new();
    let mut stack: Vec<String> = Vec::new();
    let mut root = None;
    for line in tree.lines() {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let mut words = line[digits..].split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let version = version.trim_start_matches('v').to_string();
        let key = (name.to_string(), version.clone());
        let purl = format!("pkg:cargo/{name}@{version}");
        stack.truncate(depth);
        if let Some(parent) = stack.last() {
            let parent_key = crates
                .iter()
                .find(|(_, c)| c.purl() == *parent)
                .map(|(k, _)| k.clone());
            if let Some(k) = parent_key
                && let Some(p) = crates.get_mut(&k)
            {
                p.depends_on.insert(purl.clone());
            }
        }
        if depth == 0 {
            root = Some(purl.clone());
        }
        stack.push(purl);
        crates.entry(key.clone()).or_insert_with(|| {
            let meta = packages.get(&key);
            Crate {
                name: key.0.clone(),
                version: key.1.clone(),
                source: meta.and_then(|m| m["source"].as_str()).map(str::to_string),
                license: meta.and_then(|m| m["license"].as_str()).map(str::to_string),
                checksum: checksums.get(&key).cloned(),
                depends_on: BTreeSet::new(),
            }
        });
    }
    let root = root.ok_or_else(|| SbomError::NoPackage {
        package: package.to_string(),
    })?;
    let mut crates: Vec<Crate> = crates.into_values().collect();
    if let Some(at) = crates.iter().position(|c| c.purl() == root) {
        let root = crates.remove(at);
        crates.insert(0, root);
    }
    Ok(crates)
}

/// The CycloneDX 1.5 JSON document for `crates` (the first is the binary's package).
/// `timestamp` is the commit time, RFC 3339.
pub fn cyclonedx(crates: &[Crate], timestamp: &str) -> Vec<u8> {
    use sha2::Digest as _;
    let component = |c: &Crate, kind: &str| {
        let mut doc = json!({
            "type": kind,
            "bom-ref": c.purl(),
            "name": c.name,
            "version": c.version,
            "purl": c.purl(),
        });
        if let Some(sum) = &c.checksum {
            doc["hashes"] = json!([{ "alg": "SHA-256", "content": sum }]);
        }
        if let Some(license) = &c.license {
            doc["licenses"] = json!([{ "expression": license }]);
        }
        if let Some(source) = c.source.as_deref().filter(|s| s.starts_with("git+")) {
            doc["externalReferences"] = json!([{ "type": "vcs", "url": source }]);
        }
        doc
    };
    let Some((root, rest)) = crates.split_first() else {
        return Vec::new();
    };
    let components: Vec<_> = rest.iter().map(|c| component(c, "library")).collect();
    let dependencies: Vec<_> = crates
        .iter()
        .map(|c| json!({ "ref": c.purl(), "dependsOn": c.depends_on }))
        .collect();
    // A serial number derived from the content: stable for the same crates.
    let seed = sha2::Sha256::digest(
        serde_json::to_vec(&(&components, &dependencies, root.purl())).unwrap_or_default(),
    );
    let mut b: [u8; 16] = seed[..16].try_into().unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    let serial = format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    let doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "ferry",
                    "version": env!("CARGO_PKG_VERSION"),
                }],
            },
            "component": component(root, "application"),
        },
        "components": components,
        "dependencies": dependencies,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> serde_json::Value {
        let reg = "registry+https://github.com/rust-lang/crates.io-index";
        json!({ "packages": [
            { "name": "app", "version": "1.0.0", "source": null, "license": "MIT" },
            { "name": "lib", "version": "1.0.0", "source": reg, "license": "MIT" },
            { "name": "core", "version": "2.0.0", "source": reg, "license": null },
        ] })
    }

    #[test]
    fn only_crates_linked_into_the_binary_are_listed() {
        let sums = BTreeMap::from([(("lib".into(), "1.0.0".into()), "ab".repeat(32))]);
        let tree = "0app v1.0.0 (/somewhere/app)\n1lib v1.0.0\n2core v2.0.0\n1core v2.0.0 (*)\n";
        let crates = from_tree(tree, &metadata(), &sums, "app").unwrap();
        let names: Vec<_> = crates.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "core", "lib"]);
        assert_eq!(
            crates[2].depends_on,
            BTreeSet::from(["pkg:cargo/core@2.0.0".to_string()])
        );
        assert_eq!(
            crates[2].checksum.as_deref(),
            Some("ab".repeat(32).as_str())
        );
        assert_eq!(crates[0].source, None);
        assert_eq!(
            crates[0].depends_on,
            BTreeSet::from([
                "pkg:cargo/core@2.0.0".to_string(),
                "pkg:cargo/lib@1.0.0".to_string()
            ])
        );
        let doc: serde_json::Value =
            serde_json::from_slice(&cyclonedx(&crates, "2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(doc["metadata"]["component"]["name"], "app");
        assert_eq!(doc["components"][1]["hashes"][0]["alg"], "SHA-256");
        assert_eq!(
            cyclonedx(&crates, "2026-01-01T00:00:00Z"),
            cyclonedx(&crates, "2026-01-01T00:00:00Z")
        );
    }
}
