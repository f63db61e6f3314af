//! A minimal HTTP/1.1 client for talking to the fake over its socket.
//!
//! The workspace builds reqwest with `rustls-no-provider`, and installing a crypto provider
//! just to speak plain HTTP to loopback would add a dependency; this is all the tests need:
//! one request per connection, `Content-Length` or chunked bodies, and a line-by-line reader
//! for watch streams.

#![allow(dead_code)] // Each test binary uses a different part.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.body))
    }
}

/// The fake at `base` (`http://127.0.0.1:PORT`).
#[derive(Clone)]
pub struct Client {
    addr: String,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self {
            addr: base.trim_start_matches("http://").to_string(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, "").await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None, "").await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some("application/json"), &body.to_string())
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send("PUT", path, Some("application/json"), &body.to_string())
            .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Reply {
        self.send("PATCH", path, Some(content_type), &body.to_string())
            .await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut reader = self.open(method, path, content_type, body).await;
        let (status, chunked, length) = read_head(&mut reader).await;
        let body = if chunked {
            let mut out = Vec::new();
            while let Some(chunk) = read_chunk(&mut reader).await {
                out.extend(chunk);
            }
            out
        } else if let Some(n) = length {
            let mut out = vec![0; n];
            reader.read_exact(&mut out).await.expect("read body");
            out
        } else {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).await.expect("read body");
            out
        };
        Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Opens a watch (`path` carries `watch=true` and any other parameters) and reads it.
    pub async fn watch(&self, path: &str) -> Watch {
        self.watch_unread(path).await.start()
    }

    /// Opens a watch but reads nothing of its body until [`Unread::start`]: a lagging watcher.
    pub async fn watch_unread(&self, path: &str) -> Unread {
        let mut reader = self.open_with("GET", path, None, "", Some(4096)).await;
        let (status, chunked, _) = read_head(&mut reader).await;
        assert_eq!(status, 200, "watch {path} was refused");
        assert!(chunked, "a watch streams a chunked body");
        Unread { reader }
    }

    async fn open(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> BufReader<TcpStream> {
        self.open_with(method, path, content_type, body, None).await
    }

    /// `recv_buffer` shrinks the socket's receive buffer (set before connecting, so the TCP
    /// window stays small): an unread watch then blocks the server after a few kilobytes.
    async fn open_with(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
        recv_buffer: Option<u32>,
    ) -> BufReader<TcpStream> {
        let addr: std::net::SocketAddr = self.addr.parse().expect("a socket address");
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let mut stream = socket
            .connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.addr));
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("send head");
        stream.write_all(body.as_bytes()).await.expect("send body");
        BufReader::new(stream)
    }
}

/// Status code, whether the body is chunked, and its `Content-Length`.
async fn read_head(reader: &mut BufReader<TcpStream>) -> (u16, bool, Option<usize>) {
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let (mut chunked, mut length) = (false, None);
    loop {
        line.clear();
        reader.read_line(&mut line).await.expect("header line");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
            if name == "content-length" {
                length = value.parse().ok();
            }
        }
    }
    (status, chunked, length)
}

/// The next chunk of a chunked body, or `None` at its end.
async fn read_chunk(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
    if size == 0 {
        return None;
    }
    let mut chunk = vec![0; size + 2]; // data and its CRLF
    reader.read_exact(&mut chunk).await.ok()?;
    chunk.truncate(size);
    Some(chunk)
}

/// An open watch whose body nobody reads yet.
pub struct Unread {
    reader: BufReader<TcpStream>,
}

impl Unread {
    pub fn start(self) -> Watch {
        Watch::spawn(self.reader)
    }
}

/// A watch stream: one JSON event per line, read by a task so a timed-out wait loses nothing.
pub struct Watch {
    events: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl Watch {
    fn spawn(mut reader: BufReader<TcpStream>) -> Self {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            while let Some(chunk) = read_chunk(&mut reader).await {
                pending.extend(chunk);
                while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    let event = serde_json::from_slice(&line).expect("a watch line is JSON");
                    if tx.send(event).is_err() {
                        return;
                    }
                }
            }
        });
        Self { events }
    }

    /// The next event, or `None` if the stream ended or nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}
