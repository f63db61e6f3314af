//! Proves a running instance serves: readiness first, then the `[[verify]]` checks.
//!
//! Readiness is `GET ready_path` answering 2xx when the service has one, else a TCP connect
//! to its port. Each check is a `GET path` that must answer `status` with a body containing
//! `contains`. Used after a local run and after a Kubernetes rollout (when the environment has
//! a URL). It only reads; it never changes what it checks.

use std::time::{Duration, Instant};

use crate::config::Check;

/// How to tell the instance is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// `GET path` answers 2xx.
    Http(String),
    /// The port accepts a TCP connection.
    Tcp,
}

impl Readiness {
    /// `ready_path` when the service has one, else a TCP connect.
    pub fn from_path(ready_path: Option<&str>) -> Self {
        match ready_path {
            Some(path) => Readiness::Http(path.to_string()),
            None => Readiness::Tcp,
        }
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readiness::Http(path) => write!(f, "GET {path}"),
            Readiness::Tcp => f.write_str("a TCP connect"),
        }
    }
}

/// A verified instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    pub url: String,
    /// How long readiness took to turn green, in milliseconds.
    pub ready_after_ms: u128,
    /// How many `[[verify]]` checks passed.
    pub checks: usize,
}

impl Verified {
    /// `ready after 120 ms, 2 checks passed`.
    pub fn describe(&self) -> String {
        let checks = match self.checks {
            0 => "no [[verify]] checks".to_string(),
            1 => "1 check passed".to_string(),
            n => format!("{n} checks passed"),
        };
        format!(
            "{} ready after {} ms, {checks}",
            self.url, self.ready_after_ms
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "{url} was not ready ({readiness}) within {waited:?} (last: {last})\n  \
         hint: look at the service's log for why it is not ready"
    )]
    NeverReady {
        url: String,
        readiness: Readiness,
        waited: Duration,
        last: String,
    },
    #[error(
        "[[verify]] GET {url}{path} answered {status} with body {body:?}; expected {expected}\n  \
         hint: fix the service, or the check in ferry.toml if it expects the wrong thing"
    )]
    CheckFailed {
        url: String,
        path: String,
        status: u16,
        body: String,
        expected: String,
    },
    #[error("GET {url}{path} failed: {source}")]
    Request {
        url: String,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} is not a URL ferry can check: {why}")]
    BadUrl { url: String, why: String },
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Waits until the instance at `url` is ready (or `timeout` passes), then runs `checks`.
/// `alive` is asked between polls so a crashed process fails at once instead of timing out.
pub async fn verify(
    url: &str,
    readiness: &Readiness,
    checks: &[Check],
    timeout: Duration,
    alive: impl FnMut() -> Result<(), String>,
) -> Result<Verified, VerifyError> {
    let url = url.trim_end_matches('/').to_string();
    let client = client()?;
    let ready_after_ms = wait_ready(&client, &url, readiness, timeout, alive).await?;
    for check in checks {
        run_check(&client, &url, check).await?;
    }
    Ok(Verified {
        url,
        ready_after_ms,
        checks: checks.len(),
    })
}

/// Whether the instance at `url` is ready right now (for `ferry status`).
pub async fn is_ready(url: &str, readiness: &Readiness) -> bool {
    let Ok(client) = client() else {
        return false;
    };
    let url = url.trim_end_matches('/');
    probe(&client, url, readiness).await.is_ok()
}

fn client() -> Result<reqwest::Client, VerifyError> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(VerifyError::Client)
}

async fn wait_ready(
    client: &reqwest::Client,
    url: &str,
    readiness: &Readiness,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<u128, VerifyError> {
    let started = Instant::now();
    loop {
        let last = match probe(client, url, readiness).await {
            Ok(()) => return Ok(started.elapsed().as_millis()),
            Err(ProbeError::Fatal(e)) => return Err(e),
            Err(ProbeError::NotYet(last)) => last,
        };
        if let Err(why) = alive() {
            return Err(VerifyError::NeverReady {
                url: url.to_string(),
                readiness: readiness.clone(),
                waited: started.elapsed(),
                last: why,
            });
        }
        if started.elapsed() > timeout {
            return Err(VerifyError::NeverReady {
                url: url.to_string(),
                readiness: readiness.clone(),
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

enum ProbeError {
    NotYet(String),
    Fatal(VerifyError),
}

async fn probe(
    client: &reqwest::Client,
    url: &str,
    readiness: &Readiness,
) -> Result<(), ProbeError> {
    match readiness {
        Readiness::Http(path) => match client.get(format!("{url}{path}")).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(ProbeError::NotYet(format!(
                "HTTP {}",
                resp.status().as_u16()
            ))),
            Err(e) => Err(ProbeError::NotYet(short_error(&e))),
        },
        Readiness::Tcp => {
            let bad = |why: String| {
                ProbeError::Fatal(VerifyError::BadUrl {
                    url: url.to_string(),
                    why,
                })
            };
            let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
            let host = parsed
                .host_str()
                .ok_or_else(|| bad("it has no host".into()))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = parsed
                .port_or_known_default()
                .ok_or_else(|| bad("it has no port".into()))?;
            let connect = tokio::net::TcpStream::connect((host.as_str(), port));
            match tokio::time::timeout(Duration::from_secs(2), connect).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(ProbeError::NotYet(format!("TCP connect: {e}"))),
                Err(_) => Err(ProbeError::NotYet("TCP connect timed out".into())),
            }
        }
    }
}

async fn run_check(client: &reqwest::Client, url: &str, check: &Check) -> Result<(), VerifyError> {
    let request_failed = |source| VerifyError::Request {
        url: url.to_string(),
        path: check.path.clone(),
        source,
    };
    let resp = client
        .get(format!("{url}{}", check.path))
        .send()
        .await
        .map_err(request_failed)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(request_failed)?;
    let status_ok = status == check.status;
    let body_ok = check.contains.as_ref().is_none_or(|c| body.contains(c));
    if status_ok && body_ok {
        return Ok(());
    }
    let expected = match &check.contains {
        Some(c) => format!("{} with a body containing {c:?}", check.status),
        None => check.status.to_string(),
    };
    Err(VerifyError::CheckFailed {
        url: url.to_string(),
        path: check.path.clone(),
        status,
        body: body.chars().take(200).collect(),
        expected,
    })
}

fn short_error(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP server answering every request with `status` and `body`.
    async fn serve(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = sock.read(&mut buf).await;
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn check(path: &str, status: u16, contains: Option<&str>) -> Check {
        Check {
            path: path.into(),
            status,
            contains: contains.map(String::from),
        }
    }

    const READY: fn() -> Result<(), String> = || Ok(());

    #[tokio::test]
    async fn a_serving_instance_verifies_with_its_checks() {
        let url = serve("200 OK", "Hello, World!").await;
        let checks = [check("/", 200, Some("Hello")), check("/x", 200, None)];
        let v = verify(
            &url,
            &Readiness::Http("/readyz".into()),
            &checks,
            Duration::from_secs(2),
            READY,
        )
        .await
        .unwrap();
        assert_eq!(v.url, url);
        assert_eq!(v.checks, 2);
        assert!(v.describe().contains("2 checks passed"), "{}", v.describe());
    }

    #[tokio::test]
    async fn a_check_that_does_not_hold_names_path_status_and_body() {
        let url = serve("200 OK", "It works!").await;
        let err = verify(
            &url,
            &Readiness::Tcp,
            &[check("/about", 200, Some("Hello, World!"))],
            Duration::from_secs(2),
            READY,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("/about"), "{err}");
        assert!(err.contains("answered 200"), "{err}");
        assert!(err.contains("It works!"), "{err}");
        assert!(err.contains("\"Hello, World!\""), "{err}");
    }

    #[tokio::test]
    async fn a_wrong_status_fails_the_check() {
        let url = serve("404 Not Found", "nope").await;
        let err = verify(
            &url,
            &Readiness::Tcp,
            &[check("/", 200, None)],
            Duration::from_secs(2),
            READY,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("answered 404"), "{err}");
        let ok = verify(
            &url,
            &Readiness::Tcp,
            &[check("/", 404, None)],
            Duration::from_secs(2),
            READY,
        )
        .await;
        assert!(ok.is_ok(), "a check may expect 404");
    }

    #[tokio::test]
    async fn without_a_ready_path_readiness_is_a_tcp_connect() {
        // Every path answers 503: HTTP readiness never passes, a TCP connect does.
        let url = serve("503 Service Unavailable", "").await;
        let v = verify(&url, &Readiness::Tcp, &[], Duration::from_secs(2), READY)
            .await
            .unwrap();
        assert_eq!(v.checks, 0);
        let err = verify(
            &url,
            &Readiness::Http("/readyz".into()),
            &[],
            Duration::from_millis(300),
            READY,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("HTTP 503"), "{err}");
        let closed = verify(
            "http://127.0.0.1:9",
            &Readiness::Tcp,
            &[],
            Duration::from_millis(300),
            READY,
        )
        .await
        .unwrap_err();
        assert!(closed.to_string().contains("TCP connect"), "{closed}");
    }

    #[tokio::test]
    async fn a_dead_process_fails_at_once() {
        let started = Instant::now();
        let err = verify(
            "http://127.0.0.1:9",
            &Readiness::Http("/readyz".into()),
            &[],
            Duration::from_secs(30),
            || Err("process exited with status 1".into()),
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("exited with status 1"), "{err}");
    }
}
