//! The `local` environment: run the built image on this machine and prove it serves.
//!
//! The image runs in a real container when podman (or a reachable Docker daemon) is there;
//! otherwise ferry runs the static binary taken from the image's own layer, so what is
//! verified is always the exact bytes that would be shipped. This is not an orchestrator:
//! one instance, replaced on each `ferry ship`, stopped by `ferry stop`.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::config::LocalRuntime;
use crate::verify::{self, Verified, VerifyError};

/// How long a fresh instance may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which runtime actually ran the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Podman,
    Docker,
    Binary,
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Runtime::Podman => "podman",
            Runtime::Docker => "docker",
            Runtime::Binary => "binary",
        })
    }
}

/// What to run and where to publish it.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The OCI image layout directory and the tag inside it.
    pub layout: PathBuf,
    pub tag: String,
    /// This project's name on this machine (see [`crate::config::Config::instance_name`]):
    /// the container, the local image and the binary runtime's files carry it.
    pub instance: String,
    /// Path of the entrypoint binary inside the image, e.g. `hello` (for the binary runtime).
    pub binary_in_image: String,
    /// Port the service listens on inside the container.
    pub container_port: u16,
    /// Host port; `None` picks 8000 when free, else any free port.
    pub host_port: Option<u16>,
    pub readiness: verify::Readiness,
    /// The service's arguments and environment, for the binary runtime (a container gets them
    /// from the image's config).
    pub service: crate::config::Service,
    /// Where `[image] files` go in the image (the binary runtime cannot provide them).
    pub image_files: Vec<String>,
    /// The environment's secrets, given to the instance as variables (values never on a
    /// command line: a container gets `-e NAME` with the value in podman's environment).
    pub secrets: crate::secrets::Resolved,
    pub runtime: LocalRuntime,
    /// Where ferry keeps the running instance's state, logs and extracted binary.
    pub state_dir: PathBuf,
}

/// A running, verified local instance. Its state is on disk so `ferry stop` can find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub runtime: Runtime,
    /// Container name, or the process id for the binary runtime.
    pub id: String,
    pub url: String,
    /// The binary runtime's log file.
    pub log: Option<PathBuf>,
    pub ready_after_ms: u128,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{runtime} is not usable here: {why}\n  hint: {hint}")]
    RuntimeUnavailable {
        runtime: Runtime,
        why: String,
        hint: &'static str,
    },
    #[error("`{command}` failed (exit {code:?}): {stderr}")]
    Command {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "host port {0} is already in use\n  hint: stop what uses it, or set `port` under [environments.local] in ferry.toml"
    )]
    PortInUse(u16),
    #[error("cannot read the image layout {path}: {why}\n  hint: run `ferry build` first")]
    Layout { path: PathBuf, why: String },
    #[error(
        "the instance ({runtime} runtime) exited before it became ready ({status}); its last log lines:\n{log}"
    )]
    Exited {
        runtime: Runtime,
        status: String,
        log: String,
    },
    #[error(
        "the instance ({runtime} runtime) did not become ready: {source}\n  its last log lines:\n{log}"
    )]
    Verify {
        runtime: Runtime,
        #[source]
        source: Box<VerifyError>,
        log: String,
    },
    #[error(
        "the binary runtime cannot run this image: [image] files puts {files} in the image, and a bare process on this machine would not see them\n  \
         hint: install podman (apt-get install podman runc) or set runtime = \"podman\" under [environments.local]"
    )]
    BinaryWithFiles { files: String },
    #[error("cannot write {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Starts the image (replacing a previous local instance) and waits for it to be ready.
/// A failed start leaves nothing running.
pub async fn start(spec: &RunSpec) -> Result<Running, LocalError> {
    stop(&spec.state_dir).await?;
    let mut host_port = pick_port(spec.host_port)?;
    let runtime = choose_runtime(spec.runtime).await?;
    if runtime == Runtime::Binary && !spec.image_files.is_empty() {
        return Err(LocalError::BinaryWithFiles {
            files: spec.image_files.join(", "),
        });
    }
    let mut attempt = 1;
    let (id, log) = loop {
        let started = match runtime {
            Runtime::Podman | Runtime::Docker => start_container(runtime, spec, host_port)
                .await
                .map(|id| (id, None)),
            Runtime::Binary => start_binary(spec, host_port)
                .await
                .map(|(pid, log)| (pid.to_string(), Some(log))),
        };
        match started {
            // A port ferry chose was free when it looked, but another program (another
            // project's ferry, say) took it before the runtime bound it: choose again.
            Err(e) if spec.host_port.is_none() && attempt < 3 && is_port_taken(&e) => {
                tracing::debug!(
                    "port {host_port} was taken before the runtime bound it; choosing another"
                );
                host_port = pick_port(Some(0))?;
                attempt += 1;
            }
            other => break other?,
        }
    };
    let url = format!("http://127.0.0.1:{host_port}");
    let instance = Instance {
        runtime,
        id: id.clone(),
        log: log.clone(),
    };
    let outcome = tokio::select! {
        verified = verify::verify(&url, &spec.readiness, &[], READY_TIMEOUT, || Ok(())) => verified
            .map_err(|source| (source, ())),
        status = instance.wait_exit() => {
            let log = instance.log_tail().await;
            instance.remove().await;
            return Err(LocalError::Exited { runtime, status, log });
        }
    };
    let Verified { ready_after_ms, .. } = match outcome {
        Ok(v) => v,
        Err((source, ())) => {
            let log = instance.log_tail().await;
            instance.remove().await;
            return Err(LocalError::Verify {
                runtime,
                source: Box::new(source),
                log,
            });
        }
    };
    let running = Running {
        runtime,
        id,
        url,
        log,
        ready_after_ms,
    };
    write_state(&spec.state_dir, &running)?;
    Ok(running)
}

/// Stops the instance recorded in `state_dir`, if any. Returns what was stopped.
pub async fn stop(state_dir: &Path) -> Result<Option<Running>, LocalError> {
    let Some(running) = read_state(state_dir) else {
        return Ok(None);
    };
    let instance = Instance {
        runtime: running.runtime,
        id: running.id.clone(),
        log: running.log.clone(),
    };
    instance.remove().await;
    let path = state_file(state_dir);
    std::fs::remove_file(&path).map_err(|source| LocalError::State { path, source })?;
    Ok(Some(running))
}

/// The recorded instance, and whether it is ready now.
pub async fn status(state_dir: &Path, readiness: &verify::Readiness) -> Option<(Running, bool)> {
    let running = read_state(state_dir)?;
    let serving = verify::is_ready(&running.url, readiness).await;
    Some((running, serving))
}

/// The last log lines of a running instance (for a failed check).
pub async fn log_tail(running: &Running) -> String {
    Instance {
        runtime: running.runtime,
        id: running.id.clone(),
        log: running.log.clone(),
    }
    .log_tail()
    .await
}

fn state_file(state_dir: &Path) -> PathBuf {
    state_dir.join("instance.json")
}

fn read_state(state_dir: &Path) -> Option<Running> {
    let text = std::fs::read_to_string(state_file(state_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(state_dir: &Path, running: &Running) -> Result<(), LocalError> {
    let path = state_file(state_dir);
    std::fs::create_dir_all(state_dir).map_err(|source| LocalError::State {
        path: state_dir.to_path_buf(),
        source,
    })?;
    let text = serde_json::to_string_pretty(running).unwrap_or_default();
    std::fs::write(&path, text).map_err(|source| LocalError::State { path, source })
}

/// A runtime's refusal because the host port is in use (podman's and docker's words).
fn is_port_taken(error: &LocalError) -> bool {
    let text = error.to_string();
    text.contains("address already in use") || text.contains("port is already allocated")
}

/// `requested`, if it is free (`Some(0)`: any free port); else 8000 when free, else any.
fn pick_port(requested: Option<u16>) -> Result<u16, LocalError> {
    let bind = |port| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    match requested {
        Some(port) => bind(port)
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|_| LocalError::PortInUse(port)),
        None => bind(8000)
            .or_else(|_| bind(0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|_| LocalError::PortInUse(8000)),
    }
}

async fn choose_runtime(wanted: LocalRuntime) -> Result<Runtime, LocalError> {
    choose_runtime_on(wanted, std::env::var_os("PATH").as_deref()).await
}

/// Resolves `wanted` with the programs found on `path` (a `PATH` value): `auto` takes podman,
/// then docker, and falls back to the bare binary when neither can run a container.
async fn choose_runtime_on(
    wanted: LocalRuntime,
    path: Option<&std::ffi::OsStr>,
) -> Result<Runtime, LocalError> {
    match wanted {
        LocalRuntime::Podman => probe(Runtime::Podman, path).await.map(|()| Runtime::Podman),
        LocalRuntime::Docker => probe(Runtime::Docker, path).await.map(|()| Runtime::Docker),
        LocalRuntime::Binary => Ok(Runtime::Binary),
        LocalRuntime::Auto => {
            for runtime in [Runtime::Podman, Runtime::Docker] {
                match probe(runtime, path).await {
                    Ok(()) => return Ok(runtime),
                    Err(e) => tracing::debug!("auto runtime: {e}"),
                }
            }
            Ok(Runtime::Binary)
        }
    }
}

/// Checks that a container runtime on `path` can actually run something, not just print its
/// version.
async fn probe(runtime: Runtime, path: Option<&std::ffi::OsStr>) -> Result<(), LocalError> {
    let (program, args, hint): (&str, &[&str], &'static str) = match runtime {
        Runtime::Podman => (
            "podman",
            &["info", "--format", "{{.Host.OCIRuntime.Name}}"],
            "apt-get install podman runc",
        ),
        Runtime::Docker => (
            "docker",
            &["info", "--format", "{{.ServerVersion}}"],
            "start the Docker daemon, or use podman",
        ),
        Runtime::Binary => return Ok(()),
    };
    let unavailable = |why: String| LocalError::RuntimeUnavailable { runtime, why, hint };
    let executable =
        find_on(path, program).ok_or_else(|| unavailable(format!("`{program}` is not on PATH")))?;
    let out = Command::new(&executable)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| unavailable(format!("{}: {e}", executable.display())))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(unavailable(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

fn container_name(spec: &RunSpec) -> String {
    format!("ferry-{}", spec.instance)
}

async fn start_container(
    runtime: Runtime,
    spec: &RunSpec,
    host_port: u16,
) -> Result<String, LocalError> {
    let name = container_name(spec);
    let publish = format!("127.0.0.1:{host_port}:{}", spec.container_port);
    // Run it as Kubernetes will: read-only root, no capabilities, no privilege escalation.
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "-p".into(),
        publish,
        "--read-only".into(),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        "--ulimit=nofile=20000:20000".into(),
        "--ulimit=nproc=4096:4096".into(),
    ];
    // runc works on every kernel podman supports; crun does not on hybrid cgroups.
    if runtime == Runtime::Podman && which("runc") {
        args.push("--runtime=runc".into());
    }
    for key in spec.secrets.keys() {
        args.push("-e".into());
        args.push(key.to_string());
    }
    let image = load_image(runtime, spec).await?;
    args.push(image);
    let program = runtime.to_string();
    let secret_env: Vec<(String, String)> = spec
        .secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.expose().to_string()))
        .collect();
    if let Err(e) = run_ok_with(&program, &args, &secret_env).await {
        // A run that fails after creating the container (its port taken at bind time) leaves
        // it behind under this name: remove it, so nothing is left and a retry can use the name.
        let _ = tokio::process::Command::new(&program)
            .args(["rm", "-f", &name])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        return Err(e);
    }
    Ok(name)
}

/// The name the image gets in the local container store: fully qualified, so neither podman
/// nor Docker rewrites it, and independent of where the layout lives (podman's `oci:PATH`
/// transport derives a name from the path and rejects one with capitals in it).
fn local_reference(spec: &RunSpec) -> String {
    format!("localhost/ferry-{}:{}", spec.instance, spec.tag)
}

/// Loads the image into podman's store or the Docker daemon and returns its reference.
///
/// The image goes in as a `docker save` archive (`manifest.json`, config and layer blobs, with
/// the reference in `RepoTags`): the one format every podman and every Docker since 1.10 loads
/// with the name it carries. The layout's bytes are reused as they are, so the digests match.
async fn load_image(runtime: Runtime, spec: &RunSpec) -> Result<String, LocalError> {
    let image =
        crate::image::open(&spec.layout, Some(&spec.tag)).map_err(|e| LocalError::Layout {
            path: spec.layout.clone(),
            why: e.to_string(),
        })?;
    std::fs::create_dir_all(&spec.state_dir).map_err(|source| LocalError::State {
        path: spec.state_dir.clone(),
        source,
    })?;
    let reference = local_reference(spec);
    let archive = spec
        .state_dir
        .join(format!("image-{}.tar", std::process::id()));
    let written = {
        let archive = archive.clone();
        let reference = reference.clone();
        tokio::task::spawn_blocking(move || write_docker_archive(&image, &reference, &archive))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    };
    written.map_err(|source| LocalError::State {
        path: archive.clone(),
        source,
    })?;
    let loaded = run_ok(
        &runtime.to_string(),
        &["load".into(), "-i".into(), archive.display().to_string()],
    )
    .await;
    let _ = std::fs::remove_file(&archive);
    loaded?;
    Ok(reference)
}

/// Writes `image` as a `docker save` archive named `reference`.
pub fn write_docker_archive(
    image: &crate::image::Image,
    reference: &str,
    archive: &Path,
) -> std::io::Result<()> {
    let entry = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let manifest = serde_json::json!([{
        "Config": entry(&image.config.digest),
        "RepoTags": [reference],
        "Layers": image.layers.iter().map(|l| entry(&l.digest)).collect::<Vec<_>>(),
    }]);
    let file = std::fs::File::create(archive)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let mut append = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes)
    };
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        append(
            &entry(&blob.digest),
            &std::fs::read(image.blob_path(&blob.digest))?,
        )?;
    }
    append("manifest.json", &serde_json::to_vec(&manifest)?)?;
    tar.into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}

async fn start_binary(spec: &RunSpec, host_port: u16) -> Result<(u32, PathBuf), LocalError> {
    let dir = spec.state_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| LocalError::State {
        path: dir.clone(),
        source,
    })?;
    let binary = dir.join(&spec.instance);
    extract_binary(&spec.layout, &spec.tag, &spec.binary_in_image, &binary)?;
    let log = dir.join(format!("{}.log", spec.instance));
    let log_file = std::fs::File::create(&log).map_err(|source| LocalError::State {
        path: log.clone(),
        source,
    })?;
    let err_file = log_file.try_clone().map_err(|source| LocalError::State {
        path: log.clone(),
        source,
    })?;
    let child = Command::new(&binary)
        .args(spec.service.args_for(host_port))
        .envs(spec.service.env_for(host_port))
        .envs(spec.secrets.iter().map(|(k, v)| (k, v.expose())))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        // Its own process group: a Ctrl-C meant for ferry does not stop the service.
        .process_group(0)
        .spawn()
        .map_err(|source| LocalError::Spawn {
            program: binary.display().to_string(),
            source,
        })?;
    let pid = child.id().unwrap_or_default();
    // The child outlives ferry; tokio does not kill it on drop.
    drop(child);
    Ok((pid, log))
}

/// Copies the entrypoint out of the image's layer, so the binary runtime runs the shipped bytes.
pub fn extract_binary(
    layout: &Path,
    tag: &str,
    binary_in_image: &str,
    to: &Path,
) -> Result<(), LocalError> {
    let err = |why: String| LocalError::Layout {
        path: layout.to_path_buf(),
        why,
    };
    let read_json = |path: PathBuf| -> Result<serde_json::Value, LocalError> {
        let text =
            std::fs::read_to_string(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| err(format!("{}: {e}", path.display())))
    };
    let blob = |digest: &str| -> PathBuf {
        let (algo, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        layout.join("blobs").join(algo).join(hex)
    };
    let index = read_json(layout.join("index.json"))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let entry = manifests
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .or_else(|| manifests.first())
        .ok_or_else(|| err(format!("index.json lists no image tagged {tag}")))?;
    let digest = entry["digest"].as_str().unwrap_or_default();
    let manifest = read_json(blob(digest))?;
    let wanted = binary_in_image.trim_start_matches('/');
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let path = blob(layer["digest"].as_str().unwrap_or_default());
        let file =
            std::fs::File::open(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let entries = archive.entries().map_err(|e| err(e.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| err(e.to_string()))?;
            let name = entry.path().map_err(|e| err(e.to_string()))?;
            if name
                .to_string_lossy()
                .trim_start_matches("./")
                .trim_start_matches('/')
                == wanted
            {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| err(e.to_string()))?;
                let tmp = to.with_extension(format!("tmp-{}", std::process::id()));
                std::fs::write(&tmp, &bytes).map_err(|source| LocalError::State {
                    path: tmp.clone(),
                    source,
                })?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                    .and_then(|()| std::fs::rename(&tmp, to))
                    .map_err(|source| LocalError::State {
                        path: to.to_path_buf(),
                        source,
                    })?;
                return Ok(());
            }
        }
    }
    Err(err(format!("no layer contains /{wanted}")))
}

/// A started instance, for waiting on it, reading its log and removing it.
struct Instance {
    runtime: Runtime,
    id: String,
    log: Option<PathBuf>,
}

impl Instance {
    /// Resolves when the instance exits, with a description of how.
    async fn wait_exit(&self) -> String {
        match self.runtime {
            Runtime::Podman | Runtime::Docker => {
                let out = Command::new(self.runtime.to_string())
                    .args(["wait", &self.id])
                    .stdin(Stdio::null())
                    .output()
                    .await;
                match out {
                    Ok(o) => format!("exit code {}", String::from_utf8_lossy(&o.stdout).trim()),
                    Err(e) => format!("cannot wait for it: {e}"),
                }
            }
            Runtime::Binary => {
                let pid = self.id.clone();
                loop {
                    if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(&pid) {
                        return "the process exited".into();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn log_tail(&self) -> String {
        let text = match self.runtime {
            Runtime::Podman | Runtime::Docker => Command::new(self.runtime.to_string())
                .args(["logs", "--tail", "20", &self.id])
                .stdin(Stdio::null())
                .output()
                .await
                .map(|o| {
                    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                    s.push_str(&String::from_utf8_lossy(&o.stderr));
                    s
                })
                .unwrap_or_default(),
            Runtime::Binary => self
                .log
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default(),
        };
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(20);
        lines[start..]
            .iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops and removes the instance; best effort, it may be gone already.
    async fn remove(&self) {
        match self.runtime {
            Runtime::Podman | Runtime::Docker => {
                let _ = Command::new(self.runtime.to_string())
                    .args(["rm", "-f", "-t", "10", &self.id])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await;
            }
            Runtime::Binary => {
                let _ = Command::new("kill")
                    .args(["-TERM", &self.id])
                    .stderr(Stdio::null())
                    .status()
                    .await;
                for _ in 0..100 {
                    if !Path::new(&format!("/proc/{}", self.id)).exists() || is_zombie(&self.id) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn which(program: &str) -> bool {
    find_on(std::env::var_os("PATH").as_deref(), program).is_some()
}

/// The first `program` in the directories of `path` (a `PATH` value).
fn find_on(path: Option<&std::ffi::OsStr>, program: &str) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

async fn run_ok<S: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[S],
) -> Result<String, LocalError> {
    run_ok_with(program, args, &[]).await
}

/// [`run_ok`] with extra variables in the program's environment (never shown in errors).
async fn run_ok_with<S: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[S],
    env: &[(String, String)],
) -> Result<String, LocalError> {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| LocalError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        Err(LocalError::Command {
            command: format!("{program} {}", shown.join(" ")),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_taken_port_is_refused_when_asked_for_and_any_free_one_is_found_otherwise() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap().port();
        assert!(matches!(pick_port(Some(taken)), Err(LocalError::PortInUse(p)) if p == taken));
        let any = pick_port(Some(0)).unwrap();
        assert!(any != 0 && any != taken);
    }

    #[test]
    fn podmans_and_dockers_port_conflicts_are_recognised_and_nothing_else() {
        let failed = |stderr: &str| LocalError::Command {
            command: "podman run".into(),
            code: Some(126),
            stderr: stderr.into(),
        };
        assert!(is_port_taken(&failed(
            "Error: cannot listen on the TCP port: listen tcp4 127.0.0.1:8000: bind: address already in use"
        )));
        assert!(is_port_taken(&failed(
            "Bind for 127.0.0.1:8000 failed: port is already allocated"
        )));
        assert!(!is_port_taken(&failed("Error: image not known")));
    }

    /// A directory to use as PATH, holding shell scripts named after runtimes.
    fn path_with(programs: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, script) in programs {
            let file = dir.path().join(name);
            std::fs::write(&file, format!("#!/bin/sh\n{script}\n")).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[tokio::test]
    async fn auto_runtime_is_the_bare_binary_when_path_has_neither_runtime() {
        let empty = path_with(&[]);
        let runtime = choose_runtime_on(LocalRuntime::Auto, Some(empty.path().as_os_str()))
            .await
            .unwrap();
        assert_eq!(runtime, Runtime::Binary);
        let runtime = choose_runtime_on(LocalRuntime::Auto, None).await.unwrap();
        assert_eq!(runtime, Runtime::Binary, "no PATH at all");
    }

    #[tokio::test]
    async fn auto_runtime_takes_the_first_usable_one_in_order() {
        let both = path_with(&[("podman", "echo runc"), ("docker", "echo 27.0")]);
        let runtime = choose_runtime_on(LocalRuntime::Auto, Some(both.path().as_os_str()))
            .await
            .unwrap();
        assert_eq!(runtime, Runtime::Podman);

        // A docker client without a daemon does not count.
        let broken_podman = path_with(&[
            ("podman", "echo 'no runtime' >&2; exit 125"),
            (
                "docker",
                "echo 'Cannot connect to the Docker daemon' >&2; exit 1",
            ),
        ]);
        let runtime = choose_runtime_on(LocalRuntime::Auto, Some(broken_podman.path().as_os_str()))
            .await
            .unwrap();
        assert_eq!(runtime, Runtime::Binary);

        let docker_only = path_with(&[("docker", "echo 27.0")]);
        let runtime = choose_runtime_on(LocalRuntime::Auto, Some(docker_only.path().as_os_str()))
            .await
            .unwrap();
        assert_eq!(runtime, Runtime::Docker);
    }

    #[tokio::test]
    async fn an_explicit_runtime_missing_from_path_is_an_error_with_the_fix() {
        let empty = path_with(&[]);
        let err = choose_runtime_on(LocalRuntime::Podman, Some(empty.path().as_os_str()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("podman is not usable here"), "{err}");
        assert!(err.contains("`podman` is not on PATH"), "{err}");
        assert!(err.contains("apt-get install podman runc"), "{err}");
    }
}
