//! A reproducible OCI image from a static binary, written as an OCI image layout — no daemon.
//!
//! One gzip layer holding the binary, owned by root and run as a non-root user (65532 by
//! default); a second layer, when the service asks for one, with `[image] files` and a CA
//! bundle. Everything that could vary between builds is pinned: tar mtimes (the commit time),
//! owners, modes, entry order (sorted), the gzip header (no name, no time) and the JSON key
//! order. The same inputs and commit therefore give the same manifest digest on every build.
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

/// Where `ca_certificates = true` puts the CA bundle (where rustls-native-certs, OpenSSL
/// and Go look on Debian-like systems).
pub const CA_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The static binary to ship.
    pub binary: PathBuf,
    /// Its name inside the image (`/NAME`), also the entrypoint.
    pub binary_name: String,
    pub port: u16,
    /// Numeric user and group the image runs as.
    pub user: u32,
    /// `Cmd`: arguments after the entrypoint.
    pub args: Vec<String>,
    /// `Env`: the service's variables, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Files copied into the image: absolute host path → absolute image path.
    pub files: Vec<(PathBuf, String)>,
    /// Add Mozilla's CA bundle (webpki-root-certs) at [`CA_BUNDLE_PATH`].
    pub ca_certificates: bool,
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
    /// The image manifest, or the image index of a multi-platform image.
    pub manifest: Blob,
    /// For an index: the host platform's config and layers (what runs locally).
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// A multi-platform image's manifests, one per platform (`linux/arm64`); empty otherwise.
    pub platforms: Vec<(String, Image)>,
}

impl Image {
    /// Bytes a registry stores for it: manifest, config and compressed layers.
    pub fn compressed_size(&self) -> u64 {
        if !self.platforms.is_empty() {
            return self.manifest.size
                + self
                    .platforms
                    .iter()
                    .map(|(_, i)| i.compressed_size())
                    .sum::<u64>();
        }
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
        "cannot copy {from} into the image: {source}\n  hint: check `[image] files` in ferry.toml (paths are relative to it)"
    )]
    File {
        from: PathBuf,
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
    assemble_for(spec, "amd64", layout)
}

/// A multi-platform image: one manifest per `(platform, spec)` (each spec holding that
/// platform's binary) under one OCI image index, written to `layout`. `host` names the
/// platform whose config and layers the returned [`Image`] carries for local runs.
pub fn assemble_index(
    parts: &[(crate::image::Platform, ImageSpec)],
    host: &crate::image::Platform,
    layout: &Path,
) -> Result<Image, ImageError> {
    let write_err = |source| ImageError::Write {
        path: layout.to_path_buf(),
        source,
    };
    let staging = staging_dir(layout);
    let _ = std::fs::remove_dir_all(&staging);
    let mut children = Vec::new();
    for (platform, spec) in parts {
        let dir = staging.with_extension(&platform.architecture);
        let child = assemble_for(spec, &platform.architecture, &dir)?;
        children.push((platform.clone(), dir, child));
    }
    let Some((_, _, first)) = children.first() else {
        return Err(write_err(std::io::Error::other("no platforms to build")));
    };
    let tag = first.tag.clone();
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .map(|(platform, _, child)| {
            let mut entry = descriptor(&child.manifest);
            entry["platform"] = json!({ "architecture": platform.architecture, "os": platform.os });
            entry
        })
        .collect();
    let index_bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": manifests,
    }))
    .unwrap_or_default();
    let index_blob = Blob {
        media_type: INDEX_MEDIA_TYPE.into(),
        digest: sha256(&index_bytes),
        size: index_bytes.len() as u64,
    };
    let mut entry = descriptor(&index_blob);
    entry["annotations"] = json!({ REF_NAME: tag });
    let top = json!({ "schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [entry] });
    let write_all = || -> std::io::Result<()> {
        std::fs::create_dir_all(staging.join("blobs").join("sha256"))?;
        std::fs::write(
            staging.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        std::fs::write(staging.join("index.json"), serde_json::to_vec(&top)?)?;
        std::fs::write(blob_path(&staging, &index_blob.digest), &index_bytes)?;
        for (_, dir, _) in &children {
            for blob in std::fs::read_dir(dir.join("blobs").join("sha256"))? {
                let blob = blob?;
                std::fs::rename(
                    blob.path(),
                    staging.join("blobs/sha256").join(blob.file_name()),
                )?;
            }
            std::fs::remove_dir_all(dir)?;
        }
        Ok(())
    };
    if let Err(e) = write_all() {
        let _ = std::fs::remove_dir_all(&staging);
        for (_, dir, _) in &children {
            let _ = std::fs::remove_dir_all(dir);
        }
        return Err(write_err(e));
    }
    if layout.exists() {
        std::fs::remove_dir_all(layout).map_err(write_err)?;
    }
    std::fs::rename(&staging, layout).map_err(write_err)?;
    let platforms: Vec<(String, Image)> = children
        .into_iter()
        .map(|(platform, _, child)| {
            (
                platform.to_string(),
                Image {
                    layout: layout.to_path_buf(),
                    ..child
                },
            )
        })
        .collect();
    Ok(for_host(
        index_blob,
        tag,
        layout,
        platforms,
        &host.to_string(),
    ))
}

/// An index's [`Image`]: the host's config and layers (else the first platform's).
fn for_host(
    manifest: Blob,
    tag: String,
    layout: &Path,
    platforms: Vec<(String, Image)>,
    host: &str,
) -> Image {
    let local = platforms
        .iter()
        .find(|(p, _)| p == host)
        .or(platforms.first())
        .map(|(_, i)| i.clone());
    Image {
        layout: layout.to_path_buf(),
        tag,
        manifest,
        config: local.as_ref().map(|i| i.config.clone()).unwrap_or(Blob {
            media_type: CONFIG_MEDIA_TYPE.into(),
            digest: String::new(),
            size: 0,
        }),
        layers: local.map(|i| i.layers).unwrap_or_default(),
        platforms,
    }
}

/// [`assemble`] for the OCI `architecture` (`amd64`, `arm64`).
fn assemble_for(spec: &ImageSpec, architecture: &str, layout: &Path) -> Result<Image, ImageError> {
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
    let mut layers = vec![(layer_tar, layer_gz)];
    let extra = extra_entries(spec)?;
    if !extra.is_empty() {
        let files = files_layer(&extra, spec.created_unix).map_err(|source| ImageError::Write {
            path: layout.to_path_buf(),
            source,
        })?;
        layers.push(files);
    }
    let diff_ids: Vec<String> = layers.iter().map(|(tar, _)| sha256(tar)).collect();

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
    let mut env = spec.env.clone();
    env.sort();
    let mut container = json!({
        "User": format!("{0}:{0}", spec.user),
        "Entrypoint": [format!("/{}", spec.binary_name)],
        "ExposedPorts": { format!("{}/tcp", spec.port): {} },
        "Env": env,
        "WorkingDir": "/",
        "Labels": labels,
    });
    if !spec.args.is_empty() {
        container["Cmd"] = json!(spec.args);
    }
    let config = json!({
        "architecture": architecture,
        "os": "linux",
        "created": spec.created,
        "config": container,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": [{ "created": spec.created, "created_by": "ferry build" }],
    });
    let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
    let config_blob = Blob {
        media_type: CONFIG_MEDIA_TYPE.into(),
        digest: sha256(&config_bytes),
        size: config_bytes.len() as u64,
    };
    let layer_blobs: Vec<Blob> = layers
        .iter()
        .map(|(_, gz)| Blob {
            media_type: LAYER_MEDIA_TYPE.into(),
            digest: sha256(gz),
            size: gz.len() as u64,
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(&config_blob),
        "layers": layer_blobs.iter().map(descriptor).collect::<Vec<_>>(),
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
        ] {
            std::fs::write(blob_path(&staging, digest), bytes)?;
        }
        for (blob, (_, gz)) in layer_blobs.iter().zip(&layers) {
            std::fs::write(blob_path(&staging, &blob.digest), gz)?;
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
        layers: layer_blobs,
        platforms: Vec::new(),
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
    if entry["mediaType"] == INDEX_MEDIA_TYPE {
        let index = verified_blob(layout, entry, &read, &bad)?;
        let index_json: serde_json::Value =
            serde_json::from_slice(&read(blob_path(layout, &index.digest))?)
                .map_err(|e| bad(format!("image index: {e}")))?;
        let mut platforms = Vec::new();
        for m in index_json["manifests"].as_array().into_iter().flatten() {
            let platform = format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or_default(),
                m["platform"]["architecture"].as_str().unwrap_or_default()
            );
            platforms.push((platform, open_manifest(layout, m, &found_tag, &read, &bad)?));
        }
        let host = crate::image::Platform::host().to_string();
        return Ok(for_host(index, found_tag, layout, platforms, &host));
    }
    open_manifest(layout, entry, &found_tag, &read, &bad)
}

/// The image manifest `entry` points at, with its config and layers checked.
fn open_manifest(
    layout: &Path,
    entry: &serde_json::Value,
    found_tag: &str,
    read: &impl Fn(PathBuf) -> Result<Vec<u8>, ImageError>,
    bad: &impl Fn(String) -> ImageError,
) -> Result<Image, ImageError> {
    let manifest = verified_blob(layout, entry, read, bad)?;
    let manifest_json: serde_json::Value =
        serde_json::from_slice(&read(blob_path(layout, &manifest.digest))?)
            .map_err(|e| bad(format!("manifest: {e}")))?;
    let config = verified_blob(layout, &manifest_json["config"], read, bad)?;
    let layers = manifest_json["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| verified_blob(layout, l, read, bad))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Image {
        layout: layout.to_path_buf(),
        tag: found_tag.to_string(),
        manifest,
        config,
        layers,
        platforms: Vec::new(),
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

/// Beside the layout, named for this process, so two ferry runs never share one.
fn staging_dir(layout: &Path) -> PathBuf {
    let name = layout
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    layout.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// An entry of the files layer: a directory, or a file with its bytes and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { bytes: Vec<u8>, mode: u32 },
}

/// The files layer's entries by path (no leading `/`), parents included, sorted.
fn extra_entries(
    spec: &ImageSpec,
) -> Result<std::collections::BTreeMap<String, Entry>, ImageError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut entries = std::collections::BTreeMap::new();
    let add_parents = |entries: &mut std::collections::BTreeMap<String, Entry>, path: &str| {
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            entries.entry(parent.clone()).or_insert(Entry::Dir);
        }
    };
    if spec.ca_certificates {
        let path = CA_BUNDLE_PATH.trim_start_matches('/').to_string();
        add_parents(&mut entries, &path);
        entries.insert(
            path,
            Entry::File {
                bytes: ca_bundle(),
                mode: 0o644,
            },
        );
    }
    for (from, to) in &spec.files {
        let err = |source| ImageError::File {
            from: from.clone(),
            source,
        };
        let to = to.trim_matches('/').to_string();
        let mut stack = vec![(from.clone(), to)];
        while let Some((host, image)) = stack.pop() {
            let meta = std::fs::metadata(&host).map_err(err)?;
            add_parents(&mut entries, &image);
            if meta.is_dir() {
                entries.insert(image.clone(), Entry::Dir);
                for child in std::fs::read_dir(&host).map_err(err)? {
                    let child = child.map_err(err)?;
                    let name = child.file_name().to_string_lossy().into_owned();
                    stack.push((child.path(), format!("{image}/{name}")));
                }
            } else {
                let bytes = std::fs::read(&host).map_err(err)?;
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                entries.insert(image, Entry::File { bytes, mode });
            }
        }
    }
    Ok(entries)
}

/// Mozilla's CA certificates (the webpki-root-certs crate, pinned by Cargo.lock) as PEM.
pub fn ca_bundle() -> Vec<u8> {
    use base64::Engine as _;
    let mut pem = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

/// The files layer: entries in path order, owned by root, fixed modes and mtimes.
fn files_layer(
    entries: &std::collections::BTreeMap<String, Entry>,
    mtime: u64,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, entry) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        match entry {
            Entry::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, format!("{path}/"), std::io::empty())?;
            }
            Entry::File { bytes, mode } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, path, bytes.as_slice())?;
            }
        }
    }
    gzip(tar.into_inner()?)
}

fn gzip(tar_bytes: Vec<u8>) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::default());
    gz.write_all(&tar_bytes)?;
    let compressed = gz.finish()?;
    Ok((tar_bytes, compressed))
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
    gzip(tar.into_inner()?)
}

/// A platform an image runs on, as OCI names it (`linux/arm64`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

/// A platform ferry cannot build for.
#[derive(Debug, thiserror::Error)]
#[error(
    "ferry cannot build for the platform {0:?}\n  hint: `[image] platforms` takes \"linux/amd64\" and \"linux/arm64\""
)]
pub struct UnknownPlatform(pub String);

impl Platform {
    pub fn parse(name: &str) -> Result<Platform, UnknownPlatform> {
        match name {
            "linux/amd64" | "linux/arm64" | "linux/arm64/v8" => {
                let mut parts = name.split('/');
                Ok(Platform {
                    os: parts.next().unwrap_or_default().to_string(),
                    architecture: parts.next().unwrap_or_default().to_string(),
                })
            }
            other => Err(UnknownPlatform(other.to_string())),
        }
    }

    /// The machine ferry runs on.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: match std::env::consts::ARCH {
                "aarch64" => "arm64".into(),
                _ => "amd64".into(),
            },
        }
    }

    /// The Rust target whose static binaries run there: glibc with `+crt-static` on amd64
    /// (what ferry always built), musl on arm64 (static by default, linked by rust-lld, so no
    /// cross toolchain is needed for pure-Rust services).
    pub fn rust_target(&self) -> &'static str {
        match self.architecture.as_str() {
            "arm64" => "aarch64-unknown-linux-musl",
            _ => "x86_64-unknown-linux-gnu",
        }
    }
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
            user: 65532,
            args: Vec::new(),
            env: vec!["PORT=8000".into()],
            files: Vec::new(),
            ca_certificates: false,
            tag: "abc".into(),
            revision: "a".repeat(40),
            created: "2024-05-06T07:08:09Z".into(),
            created_unix: 1_714_979_289,
            source: Some("https://example.com/ferry".into()),
            title: "hello".into(),
        }
    }

    #[test]
    fn a_multi_platform_image_is_an_index_that_reads_back_with_the_host_layers() {
        use crate::image::Platform;
        let dir = tempfile::tempdir().unwrap();
        let amd = spec(dir.path());
        let arm_binary = dir.path().join("hello-arm64");
        std::fs::write(&arm_binary, b"\x7fELF pretend arm64 binary").unwrap();
        let arm = ImageSpec {
            binary: arm_binary,
            ..amd.clone()
        };
        let parts = [
            (Platform::parse("linux/amd64").unwrap(), amd),
            (Platform::parse("linux/arm64").unwrap(), arm),
        ];
        let host = Platform::parse("linux/amd64").unwrap();
        let a = assemble_index(&parts, &host, &dir.path().join("a")).unwrap();
        let b = assemble_index(&parts, &host, &dir.path().join("b")).unwrap();
        assert_eq!(a.manifest.digest, b.manifest.digest);
        assert_eq!(a.manifest.media_type, INDEX_MEDIA_TYPE);
        let names: Vec<&str> = a.platforms.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"]);
        assert_ne!(a.platforms[0].1.layers, a.platforms[1].1.layers);
        assert_eq!(a.layers, a.platforms[0].1.layers);
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(a.blob_path(&a.platforms[1].1.config.digest)).unwrap(),
        )
        .unwrap();
        assert_eq!(config["architecture"], "arm64");
        let back = open(&dir.path().join("a"), Some("abc")).unwrap();
        assert_eq!(back.manifest, a.manifest);
        assert_eq!(back.platforms.len(), 2);
        assert!(
            !dir.path().read_dir().unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("partial"))
        );
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

    /// (path, mode, uid, mtime, is_dir) of every entry of a gzip layer, in order.
    fn entries(image: &Image, layer: usize) -> Vec<(String, u32, u64, u64, bool)> {
        let file = std::fs::File::open(image.blob_path(&image.layers[layer].digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                    h.entry_type().is_dir(),
                )
            })
            .collect()
    }

    #[test]
    fn files_and_the_ca_bundle_go_into_a_second_layer_sorted_and_pinned() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let static_dir = dir.path().join("static");
        std::fs::create_dir_all(static_dir.join("css")).unwrap();
        std::fs::write(static_dir.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(static_dir.join("css/site.css"), "h1{}").unwrap();
        std::fs::write(static_dir.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            static_dir.join("run.sh"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::set_permissions(
            static_dir.join("index.html"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let mut spec = spec(dir.path());
        spec.files = vec![(static_dir.clone(), "/srv/static".into())];
        spec.ca_certificates = true;
        let a = assemble(&spec, &dir.path().join("a")).unwrap();
        assert_eq!(a.layers.len(), 2);
        let listed = entries(&a, 1);
        let paths: Vec<&str> = listed.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/ssl/",
                "etc/ssl/certs/",
                "etc/ssl/certs/ca-certificates.crt",
                "srv/",
                "srv/static/",
                "srv/static/css/",
                "srv/static/css/site.css",
                "srv/static/index.html",
                "srv/static/run.sh",
            ]
        );
        for (path, mode, uid, mtime, is_dir) in &listed {
            assert_eq!((*uid, *mtime), (0, spec.created_unix), "{path}");
            let want = if *is_dir || path.ends_with("run.sh") {
                0o755
            } else {
                0o644
            };
            assert_eq!(*mode, want, "{path}");
        }
        // The bundle is PEM, every certificate of webpki-root-certs.
        let bundle = String::from_utf8(ca_bundle()).unwrap();
        assert_eq!(
            bundle.matches("-----BEGIN CERTIFICATE-----").count(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);

        // Same inputs, same digest — file modes and mtimes on disk do not leak in.
        std::fs::set_permissions(
            static_dir.join("index.html"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let b = assemble(&spec, &dir.path().join("b")).unwrap();
        assert_eq!(a.manifest.digest, b.manifest.digest);
        // A changed file changes the files layer, not the binary's.
        std::fs::write(static_dir.join("index.html"), "<h1>changed</h1>").unwrap();
        let c = assemble(&spec, &dir.path().join("c")).unwrap();
        assert_eq!(a.layers[0], c.layers[0]);
        assert_ne!(a.layers[1], c.layers[1]);
    }

    #[test]
    fn args_env_and_user_reach_the_config_and_a_bad_from_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path());
        spec.args = vec!["--root".into(), "/srv".into()];
        spec.env = vec!["Z=1".into(), "APP_PORT=8000".into()];
        spec.user = 1000;
        let image = assemble(&spec, &dir.path().join("a")).unwrap();
        assert_eq!(image.layers.len(), 1, "no files: one layer");
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(image.blob_path(&image.config.digest)).unwrap())
                .unwrap();
        assert_eq!(config["config"]["Cmd"], json!(["--root", "/srv"]));
        assert_eq!(
            config["config"]["Env"],
            json!(["APP_PORT=8000", "Z=1"]),
            "sorted"
        );
        assert_eq!(config["config"]["User"], "1000:1000");

        spec.files = vec![(dir.path().join("nope"), "/x".into())];
        let err = assemble(&spec, &dir.path().join("b"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nope") && err.contains("[image] files"),
            "{err}"
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
