//! The service's own build: `cargo test` for the test stage, and a statically linked,
//! path-independent release build for the image.
//!
//! Static (`+crt-static`) so the binary runs in a `FROM scratch` image; paths remapped so
//! the same commit gives the same bytes wherever it is checked out.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// The target the image runs on.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(
        "cannot run cargo: {0}\n  hint: install Rust with rustup and make sure `cargo` is on PATH"
    )]
    Cargo(#[source] std::io::Error),
    #[error("`{command}` failed; its last lines:\n{tail}")]
    Failed { command: String, tail: String },
    #[error(
        "cargo built no binary named `{binary}` in package `{package}`\n  hint: check [service] binary in ferry.toml"
    )]
    NoBinary { package: String, binary: String },
    #[error("{path} is dynamically linked; a FROM scratch image needs a static binary")]
    NotStatic { path: PathBuf },
}

/// Runs the package's tests (`cargo test --locked -p PACKAGE`).
pub async fn test(
    root: &Path,
    package: &str,
    progress: impl Fn(&str),
) -> Result<String, CompileError> {
    let args = ["test", "--locked", "-p", package];
    let output = run_cargo(root, &args, &[], &progress).await?;
    // "test result: ok. 16 passed; ..." lines, summed.
    let passed: u64 = output
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
        .sum();
    Ok(format!("{passed} tests passed"))
}

/// Builds `binary` of `package` statically for [`TARGET`] and returns its path.
pub async fn build_static(
    root: &Path,
    package: &str,
    binary: &str,
    progress: impl Fn(&str),
) -> Result<PathBuf, CompileError> {
    let root_abs = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    // Encoded (0x1f-separated) so a checkout path with spaces stays one flag.
    let rustflags = [
        "-C".to_string(),
        "target-feature=+crt-static".to_string(),
        format!("--remap-path-prefix={}=/build", root_abs.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
    ]
    .join("\x1f");
    let args = [
        "build",
        "--release",
        "--locked",
        "-p",
        package,
        "--bin",
        binary,
        "--target",
        TARGET,
        "--message-format=json-render-diagnostics",
    ];
    let output = run_cargo(
        root,
        &args,
        &[
            ("CARGO_ENCODED_RUSTFLAGS", rustflags.as_str()),
            ("SOURCE_DATE_EPOCH", "0"),
        ],
        &progress,
    )
    .await?;
    let path = output
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == binary)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| CompileError::NoBinary {
            package: package.into(),
            binary: binary.into(),
        })?;
    if !is_static(&path) {
        return Err(CompileError::NotStatic { path });
    }
    Ok(path)
}

/// An ELF file with no `PT_INTERP` program header needs no dynamic loader.
pub fn is_static(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        // PT_INTERP = 3
        at + 4 <= bytes.len()
            && u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) != 3
    })
}

/// Runs cargo in `root`; stdout is returned, stderr is kept for the error and each
/// `Compiling …` line is passed to `progress`.
async fn run_cargo(
    root: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    progress: &impl Fn(&str),
) -> Result<String, CompileError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(CompileError::Cargo)?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| CompileError::Cargo(std::io::Error::other("no stdout")))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| CompileError::Cargo(std::io::Error::other("no stderr")))?;
    let reading = tokio::spawn(async move {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out).await;
        out
    });
    let mut lines = BufReader::new(stderr).lines();
    let mut tail: Vec<String> = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let trimmed = line.trim_start();
        if trimmed.starts_with("Compiling") || trimmed.starts_with("Running") {
            progress(trimmed);
        }
        tail.push(line);
        if tail.len() > 200 {
            tail.remove(0);
        }
    }
    let status = child.wait().await.map_err(CompileError::Cargo)?;
    let out = reading.await.unwrap_or_default();
    if status.success() {
        // Test binaries print their results on stdout.
        Ok(out)
    } else {
        let mut combined: Vec<&str> = out.lines().filter(|l| !l.starts_with('{')).collect();
        combined.extend(tail.iter().map(String::as_str));
        let start = combined.len().saturating_sub(40);
        Err(CompileError::Failed {
            command: format!("cargo {}", args.join(" ")),
            tail: combined[start..]
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_is_not_static() {
        // /bin/sh on Debian is dynamically linked.
        assert!(!is_static(Path::new("/bin/sh")));
        assert!(!is_static(Path::new("/nonexistent")));
    }
}
