//! Proves a running instance serves: readiness first, then the page itself.
//!
//! Used after a local run and after a Kubernetes rollout (when the environment has a URL).
//! It only reads; it never changes what it checks.

use std::time::{Duration, Instant};

/// What the service must answer on `/`.
pub const EXPECTED_BODY: &str = "Hello, World!";

/// A verified instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    pub url: String,
    /// How long readiness took to turn green, in milliseconds.
    pub ready_after_ms: u128,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "{url}{ready_path} did not answer 200 within {waited:?} (last: {last})\n  \
         hint: look at the service's log for why it is not ready"
    )]
    NeverReady {
        url: String,
        ready_path: String,
        waited: Duration,
        last: String,
    },
    #[error("GET {url}/ answered {status}, expected 200")]
    BadStatus { url: String, status: u16 },
    #[error("GET {url}/ answered {body:?}, expected it to contain {EXPECTED_BODY:?}")]
    WrongBody { url: String, body: String },
    #[error("GET {url}/ failed: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Polls `ready_path` until it answers 200 (or `timeout` passes), then checks `GET /`.
/// `alive` is asked between polls so a crashed process fails at once instead of timing out.
pub async fn verify(
    url: &str,
    ready_path: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<Verified, VerifyError> {
    let url = url.trim_end_matches('/').to_string();
    crate::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(VerifyError::Client)?;
    let started = Instant::now();
    loop {
        let last = match client.get(format!("{url}{ready_path}")).send().await {
            Ok(resp) if resp.status().is_success() => break,
            Ok(resp) => format!("HTTP {}", resp.status().as_u16()),
            Err(e) => short_error(&e),
        };
        if let Err(why) = alive() {
            return Err(VerifyError::NeverReady {
                url,
                ready_path: ready_path.to_string(),
                waited: started.elapsed(),
                last: why,
            });
        }
        if started.elapsed() > timeout {
            return Err(VerifyError::NeverReady {
                url,
                ready_path: ready_path.to_string(),
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_after_ms = started.elapsed().as_millis();
    let resp = client
        .get(format!("{url}/"))
        .send()
        .await
        .map_err(|source| VerifyError::Request {
            url: url.clone(),
            source,
        })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(VerifyError::BadStatus { url, status });
    }
    let body = resp.text().await.map_err(|source| VerifyError::Request {
        url: url.clone(),
        source,
    })?;
    if !body.contains(EXPECTED_BODY) {
        let body: String = body.chars().take(200).collect();
        return Err(VerifyError::WrongBody { url, body });
    }
    Ok(Verified {
        url,
        ready_after_ms,
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

    /// A one-route HTTP server answering every request with `status` and `body`.
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

    #[tokio::test]
    async fn a_serving_instance_verifies() {
        let url = serve("200 OK", "Hello, World!").await;
        let v = verify(&url, "/readyz", Duration::from_secs(2), || Ok(()))
            .await
            .unwrap();
        assert_eq!(v.url, url);
    }

    #[tokio::test]
    async fn a_wrong_page_is_reported_with_its_body() {
        let url = serve("200 OK", "It works!").await;
        let err = verify(&url, "/readyz", Duration::from_secs(2), || Ok(()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("It works!"), "{err}");
    }

    #[tokio::test]
    async fn never_ready_times_out_with_the_last_status() {
        let url = serve("503 Service Unavailable", "").await;
        let err = verify(&url, "/readyz", Duration::from_millis(300), || Ok(()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("HTTP 503"), "{err}");
    }

    #[tokio::test]
    async fn a_dead_process_fails_at_once() {
        let started = Instant::now();
        let err = verify(
            "http://127.0.0.1:9",
            "/readyz",
            Duration::from_secs(30),
            || Err("process exited with status 1".into()),
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("exited with status 1"), "{err}");
    }
}
