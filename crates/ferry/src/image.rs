//! A reproducible OCI image from a static binary, written as an OCI image layout — no daemon.
//!
//! One gzip layer holding the binary, owned by root and run as user 65532. Everything that
//! could vary between builds is pinned: tar mtimes (the commit time), owners, entry order,
//! the gzip header (no name, no time) and the JSON key order. The same binary and commit
//! therefore give the same manifest digest on every build.
//!
//! Not here: pushing ([`crate::registry`]) or running ([`crate::local`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use serde_json::json;
use sha2::{Digest, Sha256};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The non-root user the image runs as (the "nonroot" user of distroless images).
pub const USER: &str = "65532:65532";

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The static binary to ship.
    pub binary: PathBuf,
    /// Its name inside the image (`/NAME`), also the entrypoint.
    pub binary_name: String,
    pub port: u16,
    pub tag: String,
    /// Full commit hash (`org.opencontainers.image.revision`).
    pub revision: String,
    /// Commit time, RFC 3339 (`org.opencontainers.image.created`); also the layer's mtimes.
    pub created: String,
    pub created_unix: u64,
    /// `org.opencontainers.image.source`.
    pub source: Option<String>,
    /// `org.opencontainers.image.title`.
    pub title: String,
}

/// A blob in the layout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// An image in an OCI layout directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub layout: PathBuf,
    pub tag: String,
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

impl Image {
    /// Bytes a registry stores for it: manifest, config and compressed layers.
    pub fn compressed_size(&self) -> u64 {
        self.manifest.size + self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }

    /// Path of a blob in the layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path(&self.layout, digest)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "cannot read the binary {path}: {source}\n  hint: run `ferry build` (it compiles the service first)"
    )]
    Binary {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the image layout at {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a usable OCI image layout: {why}\n  hint: run `ferry build` to create it"
    )]
    Layout { path: PathBuf, why: String },
}

/// Assembles the image and writes it to `layout` (replacing what was there). The directory
/// is written beside and renamed into place, so a failure never leaves a half-written layout.
pub fn assemble(spec: &ImageSpec, layout: &Path) -> Result<Image, ImageError> {
    let binary = std::fs::read(&spec.binary).map_err(|source| ImageError::Binary {
        path: spec.binary.clone(),
        source,
    })?;
    let (layer_tar, layer_gz) =
        layer(&binary, &spec.binary_name, spec.created_unix).map_err(|source| {
            ImageError::Write {
                path: layout.to_path_buf(),
                source,
            }
        })?;
    let diff_id = sha256(&layer_tar);

    let mut labels = serde_json::Map::new();
    labels.insert(
        "org.opencontainers.image.revision".into(),
        json!(spec.revision),
    );
    labels.insert(
        "org.opencontainers.image.created".into(),
        json!(spec.created),
    );
    labels.insert("org.opencontainers.image.title".into(), json!(spec.title));
    labels.insert("org.opencontainers.image.version".into(), json!(spec.tag));
    if let Some(source) = &spec.source {
        labels.insert("org.opencontainers.image.source".into(), json!(source));
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": spec.created,
        "config": {
            "User": USER,
            "Entrypoint": [format!("/{}", spec.binary_name)],
            "ExposedPorts": { format!("{}/tcp", spec.port): {} },
            "Env": [format!("PORT={}", spec.port)],
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": spec.created, "created_by": "ferry build" }],
    });
    let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
    let config_blob = Blob {
        media_type: CONFIG_MEDIA_TYPE.into(),
        digest: sha256(&config_bytes),
        size: config_bytes.len() as u64,
    };
    let layer_blob = Blob {
        media_type: LAYER_MEDIA_TYPE.into(),
        digest: sha256(&layer_gz),
        size: layer_gz.len() as u64,
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(&config_blob),
        "layers": [descriptor(&layer_blob)],
        "annotations": labels,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    let manifest_blob = Blob {
        media_type: MANIFEST_MEDIA_TYPE.into(),
        digest: sha256(&manifest_bytes),
        size: manifest_bytes.len() as u64,
    };
    let mut manifest_entry = descriptor(&manifest_blob);
    manifest_entry["annotations"] = json!({ REF_NAME: spec.tag });
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [manifest_entry],
    });

    let write_err = |source| ImageError::Write {
        path: layout.to_path_buf(),
        source,
    };
    let staging = staging_dir(layout);
    let _ = std::fs::remove_dir_all(&staging);
    let write_all = || -> std::io::Result<()> {
        std::fs::create_dir_all(staging.join("blobs").join("sha256"))?;
        std::fs::write(
            staging.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        std::fs::write(staging.join("index.json"), serde_json::to_vec(&index)?)?;
        for (digest, bytes) in [
            (&manifest_blob.digest, &manifest_bytes),
            (&config_blob.digest, &config_bytes),
            (&layer_blob.digest, &layer_gz),
        ] {
            std::fs::write(blob_path(&staging, digest), bytes)?;
        }
        Ok(())
    };
    if let Err(e) = write_all() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(write_err(e));
    }
    if layout.exists() {
        std::fs::remove_dir_all(layout).map_err(write_err)?;
    }
    std::fs::rename(&staging, layout).map_err(write_err)?;
    Ok(Image {
        layout: layout.to_path_buf(),
        tag: spec.tag.clone(),
        manifest: manifest_blob,
        config: config_blob,
        layers: vec![layer_blob],
    })
}

/// Reads back an image from a layout, checking every blob's digest.
pub fn open(layout: &Path, tag: Option<&str>) -> Result<Image, ImageError> {
    let bad = |why: String| ImageError::Layout {
        path: layout.to_path_buf(),
        why,
    };
    let read = |path: PathBuf| -> Result<Vec<u8>, ImageError> {
        std::fs::read(&path).map_err(|e| bad(format!("{}: {e}", path.display())))
    };
    let index: serde_json::Value = serde_json::from_slice(&read(layout.join("index.json"))?)
        .map_err(|e| bad(format!("index.json: {e}")))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let entry = match tag {
        Some(tag) => manifests.iter().find(|m| m["annotations"][REF_NAME] == tag),
        None => manifests.first(),
    }
    .ok_or_else(|| bad(format!("no image tagged {}", tag.unwrap_or("(any)"))))?;
    let found_tag = entry["annotations"][REF_NAME]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let manifest = verified_blob(layout, entry, &read, &bad)?;
    let manifest_json: serde_json::Value =
        serde_json::from_slice(&read(blob_path(layout, &manifest.digest))?)
            .map_err(|e| bad(format!("manifest: {e}")))?;
    let config = verified_blob(layout, &manifest_json["config"], &read, &bad)?;
    let layers = manifest_json["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| verified_blob(layout, l, &read, &bad))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Image {
        layout: layout.to_path_buf(),
        tag: found_tag,
        manifest,
        config,
        layers,
    })
}

fn verified_blob(
    layout: &Path,
    descriptor: &serde_json::Value,
    read: &impl Fn(PathBuf) -> Result<Vec<u8>, ImageError>,
    bad: &impl Fn(String) -> ImageError,
) -> Result<Blob, ImageError> {
    let digest = descriptor["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let bytes = read(blob_path(layout, &digest))?;
    if sha256(&bytes) != digest {
        return Err(bad(format!("blob {digest} does not match its digest")));
    }
    Ok(Blob {
        media_type: descriptor["mediaType"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        digest,
        size: bytes.len() as u64,
    })
}

fn descriptor(blob: &Blob) -> serde_json::Value {
    json!({ "mediaType": blob.media_type, "digest": blob.digest, "size": blob.size })
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    layout.join("blobs").join(algorithm).join(hex)
}

fn staging_dir(layout: &Path) -> PathBuf {
    let name = layout
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    layout.with_file_name(format!(".{name}.partial"))
}

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The layer: an uncompressed tar (for the diff id) and its gzip (the blob).
fn layer(binary: &[u8], name: &str, mtime: u64) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, binary)?;
    let tar_bytes = tar.into_inner()?;
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::default());
    gz.write_all(&tar_bytes)?;
    Ok((tar_bytes, gz.finish()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> ImageSpec {
        let binary = dir.join("hello");
        std::fs::write(&binary, b"\x7fELF pretend binary").unwrap();
        ImageSpec {
            binary,
            binary_name: "hello".into(),
            port: 8000,
            tag: "abc".into(),
            revision: "a".repeat(40),
            created: "2024-05-06T07:08:09Z".into(),
            created_unix: 1_714_979_289,
            source: Some("https://example.com/ferry".into()),
            title: "hello".into(),
        }
    }

    #[test]
    fn the_same_input_gives_the_same_digest_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let a = assemble(&spec, &dir.path().join("a")).unwrap();
        let b = assemble(&spec, &dir.path().join("b")).unwrap();
        assert_eq!(a.manifest.digest, b.manifest.digest);
        let back = open(&dir.path().join("a"), Some("abc")).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn a_different_commit_gives_a_different_digest() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path());
        let a = assemble(&spec, &dir.path().join("a")).unwrap();
        spec.revision = "b".repeat(40);
        let b = assemble(&spec, &dir.path().join("b")).unwrap();
        assert_ne!(a.manifest.digest, b.manifest.digest);
        assert_eq!(a.layers, b.layers, "same binary, same layer");
    }

    #[test]
    fn the_config_runs_as_non_root_with_entrypoint_and_port() {
        let dir = tempfile::tempdir().unwrap();
        let image = assemble(&spec(dir.path()), &dir.path().join("a")).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(image.blob_path(&image.config.digest)).unwrap())
                .unwrap();
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"][0], "/hello");
        assert!(config["config"]["ExposedPorts"]["8000/tcp"].is_object());
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.revision"],
            "a".repeat(40)
        );
    }

    #[test]
    fn a_tampered_blob_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let image = assemble(&spec(dir.path()), &dir.path().join("a")).unwrap();
        std::fs::write(image.blob_path(&image.layers[0].digest), b"tampered").unwrap();
        let err = open(&dir.path().join("a"), None).unwrap_err().to_string();
        assert!(err.contains("does not match its digest"), "{err}");
    }

    #[test]
    fn a_missing_binary_leaves_no_layout() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path());
        spec.binary = dir.path().join("missing");
        assert!(assemble(&spec, &dir.path().join("a")).is_err());
        assert!(!dir.path().join("a").exists());
    }
}
