//! shelf: a small file server, ferry's second example. It is unlike `hello` on purpose:
//! it reads its port from `SHELF_PORT` (not `PORT`), needs the directory to serve as a
//! command-line argument, answers `/health` with `shelf ok` (not `Hello, World!`) and serves
//! files that must be inside its image. Standard library only.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(root) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: shelf DIRECTORY  (and SHELF_PORT=PORT in the environment)");
        return ExitCode::from(2);
    };
    let Some(port) = std::env::var("SHELF_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    else {
        eprintln!("shelf: set SHELF_PORT to the port to listen on");
        return ExitCode::from(2);
    };
    if !root.is_dir() {
        eprintln!("shelf: {} is not a directory", root.display());
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shelf: cannot listen on port {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("shelf: serving {} on port {port}", root.display());
    for stream in listener.incoming().flatten() {
        let root = root.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &root);
        });
    }
    ExitCode::SUCCESS
}

fn serve(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Read the rest of the head; shelf needs nothing from it.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let (status, body) = respond(&request_line, root);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

/// The status line and body for one request line, e.g. `GET /files/a.txt HTTP/1.1`.
fn respond(request_line: &str, root: &Path) -> (&'static str, Vec<u8>) {
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return ("400 Bad Request", b"bad request\n".to_vec());
    };
    if method != "GET" {
        return ("405 Method Not Allowed", b"GET only\n".to_vec());
    }
    match target {
        "/health" => ("200 OK", b"shelf ok\n".to_vec()),
        "/" => {
            let count = std::fs::read_dir(root).map(|d| d.count()).unwrap_or(0);
            ("200 OK", format!("shelf: {count} files\n").into_bytes())
        }
        _ => match target.strip_prefix("/files/") {
            Some(name) if !name.is_empty() && !name.contains('/') && !name.starts_with('.') => {
                match std::fs::read(root.join(name)) {
                    Ok(bytes) => ("200 OK", bytes),
                    Err(_) => ("404 Not Found", b"no such file\n".to_vec()),
                }
            }
            _ => ("404 Not Found", b"not found\n".to_vec()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_files_and_refusals() {
        let dir = std::env::temp_dir().join(format!("shelf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), "A").unwrap();
        assert_eq!(respond("GET /health HTTP/1.1", &dir), ("200 OK", b"shelf ok\n".to_vec()));
        assert_eq!(respond("GET /files/a.txt HTTP/1.1", &dir), ("200 OK", b"A".to_vec()));
        assert_eq!(respond("GET /files/../x HTTP/1.1", &dir).0, "404 Not Found");
        assert_eq!(respond("POST / HTTP/1.1", &dir).0, "405 Method Not Allowed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
