//! `ferry dev`: the inner loop. ferry watches the service's sources; on a change it rebuilds
//! with the fast profile, assembles the image, starts the new instance beside the old one,
//! runs the readiness and `[[verify]]` checks against it, then switches a stable local port to
//! it and stops the old one once its connections are done. The port is a small TCP proxy inside
//! ferry, so the URL never changes and a switch fails no request. A build or check that fails
//! leaves the old instance serving. Ctrl-C stops everything.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// Where the proxy sends new connections, and how many it has open there.
#[derive(Debug, Clone)]
struct Backend {
    port: u16,
    open: Arc<AtomicUsize>,
}

/// The stable port: accepts connections and pipes each to the current backend.
#[derive(Debug, Clone, Default)]
pub struct Switch {
    current: Arc<Mutex<Option<Backend>>>,
}

impl Switch {
    fn current(&self) -> Option<Backend> {
        self.current.lock().ok().and_then(|b| b.clone())
    }

    /// Sends new connections to `port`; returns the previous backend's open-connection count.
    fn switch_to(&self, port: u16) -> Option<Arc<AtomicUsize>> {
        let next = Backend {
            port,
            open: Arc::new(AtomicUsize::new(0)),
        };
        let mut guard = self.current.lock().ok()?;
        guard.replace(next).map(|old| old.open)
    }

    /// Serves the proxy on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            let Some(backend) = self.current() else {
                continue; // nothing to send it to yet: the client sees a close
            };
            backend.open.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", backend.port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                backend.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

/// Waits until `open` connections reach zero, for at most `limit`.
async fn drained(open: &AtomicUsize, limit: Duration) {
    let started = Instant::now();
    while open.load(Ordering::SeqCst) > 0 && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Source changes, debounced: resolves once paths outside `target/` and `.git/` changed and
/// then nothing changed for `quiet`.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
    events: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {root}: {source}")]
pub struct WatchError {
    root: PathBuf,
    #[source]
    source: notify::Error,
}

impl Watcher {
    pub fn new(root: &Path) -> Result<Self, WatchError> {
        use notify::Watcher as _;
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let ignored = [root.join("target"), root.join(".git")];
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                for path in event.paths {
                    if !ignored.iter().any(|i| path.starts_with(i)) {
                        let _ = tx.send(path);
                    }
                }
            })
            .map_err(|source| WatchError {
                root: root.to_path_buf(),
                source,
            })?;
        watcher
            .watch(root, notify::RecursiveMode::Recursive)
            .map_err(|source| WatchError {
                root: root.to_path_buf(),
                source,
            })?;
        Ok(Self {
            _watcher: watcher,
            events,
        })
    }

    /// The first changed path of the next burst of changes.
    pub async fn changed(&mut self, quiet: Duration) -> Option<PathBuf> {
        let first = self.events.recv().await?;
        loop {
            match tokio::time::timeout(quiet, self.events.recv()).await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return Some(first),
            }
        }
    }
}

/// One generation of the service under `ferry dev`.
pub struct Generation {
    pub number: u32,
    pub running: crate::local::Running,
    pub state_dir: PathBuf,
    log_task: Option<tokio::task::JoinHandle<()>>,
}

impl Generation {
    pub async fn stop(mut self) {
        if let Some(task) = self.log_task.take() {
            task.abort();
        }
        let _ = crate::local::stop(&self.state_dir).await;
    }
}

/// Prints a binary-runtime instance's log lines as they come, each behind `prefix`.
pub fn stream_log(
    running: &crate::local::Running,
    prefix: String,
) -> Option<tokio::task::JoinHandle<()>> {
    let path = running.log.clone()?;
    Some(tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncSeekExt};
        let Ok(file) = tokio::fs::File::open(&path).await else {
            return;
        };
        let mut reader = tokio::io::BufReader::new(file);
        let _ = reader.seek(std::io::SeekFrom::Start(0)).await;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Ok(_) => eprintln!("{prefix} {}", line.trim_end()),
            }
        }
    }))
}

/// What `ferry dev` needs from the command line.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// The stable port (default 8000 when free, else any).
    pub port: Option<u16>,
    pub runtime: crate::config::LocalRuntime,
    /// The local environment's secrets, resolved once at start.
    pub secrets: crate::secrets::Resolved,
}

/// Runs the loop until Ctrl-C (or `stop` resolves, for tests).
pub async fn run(
    config: &crate::config::Config,
    options: &DevOptions,
    reporter: &crate::output::Reporter,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = match options.port {
        Some(port) => TcpListener::bind(("127.0.0.1", port)).await,
        None => match TcpListener::bind(("127.0.0.1", 8000)).await {
            Ok(l) => Ok(l),
            Err(_) => TcpListener::bind(("127.0.0.1", 0)).await,
        },
    }
    .map_err(|e| {
        anyhow::anyhow!("cannot listen on the dev port: {e}\n  hint: pick another with --port")
    })?;
    let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let switch = Switch::default();
    let proxy = tokio::spawn(switch.clone().serve(listener));
    let mut watcher = Watcher::new(&config.root)?;
    tokio::pin!(stop);

    let mut current: Option<Generation> = None;
    let mut number = 0;
    let mut reason = "start".to_string();
    let outcome = loop {
        number += 1;
        let started = Instant::now();
        match generation(config, options, reporter, number).await {
            Ok(next) => {
                let old = switch.switch_to(next.running.url_port());
                reporter.info(format!(
                    "#{number} serving at {url} ({reason}: rebuilt, started and verified in {:.1} s)",
                    started.elapsed().as_secs_f64()
                ));
                if let Some(previous) = current.replace(next) {
                    if let Some(open) = old {
                        drained(&open, Duration::from_secs(10)).await;
                    }
                    previous.stop().await;
                }
            }
            Err(e) => {
                let keeps = if current.is_some() {
                    "the previous instance keeps serving"
                } else {
                    "nothing is serving yet"
                };
                reporter.info(format!("#{number} failed ({keeps}): {e:#}"));
            }
        }
        tokio::select! {
            changed = watcher.changed(Duration::from_millis(150)) => match changed {
                Some(path) => {
                    reason = format!(
                        "{} changed",
                        path.strip_prefix(&config.root).unwrap_or(&path).display()
                    );
                }
                None => break Ok(()),
            },
            () = &mut stop => break Ok(()),
        }
    };
    proxy.abort();
    if let Some(last) = current.take() {
        last.stop().await;
    }
    reporter.info("ferry dev: stopped");
    outcome
}

/// Builds and starts one generation beside the current one, and verifies it.
async fn generation(
    config: &crate::config::Config,
    options: &DevOptions,
    reporter: &crate::output::Reporter,
    number: u32,
) -> anyhow::Result<Generation> {
    use crate::pipeline::{Recorder, Request, Tests};
    let request = Request {
        tests: Tests::NotPart,
        allow_dirty: true,
        profile: crate::compile::Profile::Fast,
        ..Request::default()
    };
    let mut recorder = Recorder::new(reporter, crate::pipeline::summary("dev", "dev", "local"));
    let built = crate::pipeline::build_image(config, &request, &mut recorder)
        .await
        .map_err(|h| h.error)?;
    let state_dir = config
        .root
        .join("target")
        .join("ferry")
        .join("dev")
        .join(format!("{number}"));
    let spec = crate::local::RunSpec {
        layout: built.image.layout.clone(),
        tag: built.image.tag.clone(),
        instance: format!("{}-dev{number}", config.instance_name()),
        binary_in_image: config.service.binary.clone(),
        container_port: config.service.port,
        host_port: None,
        readiness: crate::verify::Readiness::from_path(config.service.ready_path.as_deref()),
        service: config.service.clone(),
        image_files: config.image.files.iter().map(|f| f.to.clone()).collect(),
        secrets: options.secrets.clone(),
        runtime: options.runtime,
        state_dir: state_dir.clone(),
    };
    let running = crate::local::start(&spec).await?;
    let log_task = stream_log(&running, format!("[{} #{number}]", config.image.name));
    let generation = Generation {
        number,
        running,
        state_dir,
        log_task,
    };
    let checked = crate::verify::verify(
        &generation.running.url,
        &spec.readiness,
        &config.verify,
        Duration::from_secs(10),
        || Ok(()),
    )
    .await;
    if let Err(e) = checked {
        generation.stop().await;
        return Err(e.into());
    }
    Ok(generation)
}

impl crate::local::Running {
    /// The host port of its URL.
    pub fn url_port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn backend(reply: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        port
    }

    async fn ask(port: u16) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"hi").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn the_stable_port_follows_each_switch_and_counts_open_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let switch = Switch::default();
        tokio::spawn(switch.clone().serve(listener));
        let (a, b) = (backend("A").await, backend("B").await);
        assert!(switch.switch_to(a).is_none());
        assert_eq!(ask(port).await, "A");
        let old = switch.switch_to(b).expect("the previous backend");
        assert_eq!(ask(port).await, "B");
        drained(&old, Duration::from_secs(2)).await;
        assert_eq!(old.load(Ordering::SeqCst), 0);
    }
}
