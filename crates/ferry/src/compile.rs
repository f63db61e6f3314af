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
    #[error("cannot run `{program}`: {source}\n  hint: check [test] command in ferry.toml")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed:\n{tail}")]
    Failed { command: String, tail: String },
    #[error(
        "cargo built no binary named `{binary}` in package `{package}`\n  hint: check [service] binary in ferry.toml"
    )]
    NoBinary { package: String, binary: String },
    #[error("{path} is dynamically linked; a FROM scratch image needs a static binary")]
    NotStatic { path: PathBuf },
}

/// What the test stage runs.
#[derive(Debug, Clone, Copy)]
pub enum TestRun<'a> {
    /// `[test] command`, run as written.
    Custom(&'a [String]),
    /// `cargo test -p PACKAGE`. With the fast profile it is compiled exactly as the build
    /// stage compiles (profile, target, flags), so the build after it reuses every artifact
    /// and the image holds the very binary the integration tests ran against.
    Cargo {
        package: &'a str,
        binary: &'a str,
        profile: Profile,
    },
}

impl TestRun<'_> {
    /// How the stage is shown.
    pub fn describe(&self) -> String {
        match self {
            TestRun::Custom(command) => command.join(" "),
            TestRun::Cargo {
                package,
                profile: Profile::Fast,
                ..
            } => format!("cargo test --locked -p {package} (compiled as the fast static build)"),
            TestRun::Cargo { package, .. } => format!("cargo test --locked -p {package}"),
        }
    }
}

/// What a passing test stage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tested {
    /// "40 tests passed".
    pub summary: String,
    /// The service's binary as the fast static build makes it, when compiling the tests made
    /// it (integration tests run it): the build stage uses this one instead of compiling again.
    pub binary: Option<PathBuf>,
}

/// Runs the test stage in `root`. On failure the error holds the failing tests' names and
/// panic output, however much the build printed before them.
///
/// `threads` (`[test] threads`) becomes `RUST_TEST_THREADS` for the run, unless ferry's own
/// environment already sets that variable.
pub async fn test(
    root: &Path,
    run: TestRun<'_>,
    threads: Option<u16>,
    progress: impl Fn(&str),
) -> Result<Tested, CompileError> {
    let threads: Vec<(String, String)> = threads
        .filter(|_| std::env::var_os("RUST_TEST_THREADS").is_none())
        .map(|n| ("RUST_TEST_THREADS".to_string(), n.to_string()))
        .into_iter()
        .collect();
    let plain = |package: &str| -> Vec<String> {
        ["test", "--locked", "-p", package]
            .map(String::from)
            .to_vec()
    };
    let (program, args, note) = match run {
        TestRun::Custom(command) => {
            let Some((program, args)) = command.split_first() else {
                return Err(CompileError::Cargo(std::io::Error::other(
                    "the test command is empty",
                )));
            };
            (program.clone(), args.to_vec(), "")
        }
        TestRun::Cargo {
            package,
            binary,
            profile: Profile::Fast,
        } => {
            let mut flags = StaticFlags::new(root, Profile::Fast, TARGET);
            flags.env.extend(threads.iter().cloned());
            let mut args = vec!["test".to_string()];
            args.extend(flags.profile_args.iter().map(|a| a.to_string()));
            args.extend(
                [
                    "--locked",
                    "-p",
                    package,
                    "--target",
                    TARGET,
                    "--message-format=json-render-diagnostics",
                ]
                .map(String::from),
            );
            match run_strings(root, "cargo", &args, &flags.env, &progress).await {
                Ok(out) => {
                    return Ok(Tested {
                        summary: summarize(&out, "cargo", &args),
                        binary: built_binary(&out, binary).filter(|p| is_static(p)),
                    });
                }
                // Tests whose dev-dependencies cannot link statically (a C library with no
                // static archive): run them as cargo would, and build separately.
                Err(CompileError::Failed { tail, .. }) if is_static_link_failure(&tail) => {
                    progress(
                        "the tests cannot link statically; running them with cargo's defaults",
                    );
                    (
                        "cargo".to_string(),
                        plain(package),
                        " (with cargo's defaults: they cannot link statically)",
                    )
                }
                Err(e) => return Err(e),
            }
        }
        TestRun::Cargo { package, .. } => ("cargo".to_string(), plain(package), ""),
    };
    let out = run_strings(root, &program, &args, &threads, &progress).await?;
    Ok(Tested {
        summary: format!("{}{note}", summarize(&out, &program, &args)),
        binary: None,
    })
}

/// The executable cargo reported building for the bin target `binary` (not a test harness).
fn built_binary(messages: &str, binary: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == binary)
        .filter(|v| v["profile"]["test"] == false)
        .filter(|v| {
            v["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
}

/// "12 tests passed" from libtest's `test result: ok. 12 passed; ...` lines, summed.
fn summarize(output: &str, program: &str, args: &[String]) -> String {
    let passed: u64 = output
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
        .sum();
    if passed > 0 || program == "cargo" {
        format!("{passed} tests passed")
    } else {
        format!("`{program} {}` passed", args.join(" "))
    }
}

/// Whether a failed compile failed at linking statically, not in the code.
fn is_static_link_failure(report: &str) -> bool {
    [
        "linking with `",
        "could not find native static library",
        "cannot find -l",
    ]
    .iter()
    .any(|m| report.contains(m))
}

async fn run_strings(
    root: &Path,
    program: &str,
    args: &[String],
    env: &[(String, String)],
    progress: &impl Fn(&str),
) -> Result<String, CompileError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_program(root, program, &args, &env, progress).await
}

/// How cargo is run for a static build of one target with one profile: the profile's
/// arguments and the environment (static C runtime, paths remapped so the bytes do not depend
/// on where the checkout is, cross linkers). The build stage and the fast test stage share it.
struct StaticFlags {
    profile_args: &'static [&'static str],
    env: Vec<(String, String)>,
}

impl StaticFlags {
    fn new(root: &Path, profile: Profile, target: &str) -> StaticFlags {
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
        let mut env = vec![
            ("CARGO_ENCODED_RUSTFLAGS".to_string(), rustflags),
            ("SOURCE_DATE_EPOCH".to_string(), "0".to_string()),
        ];
        env.extend(cross_env(target));
        StaticFlags {
            profile_args: match profile {
                Profile::Release => &["--release"],
                Profile::Fast => &FAST_PROFILE,
            },
            env,
        }
    }
}

/// How the service is compiled for its image.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// cargo's `release` profile, as the project sets it (fat LTO here): what production runs.
    #[default]
    Release,
    /// Incremental and unoptimised (cargo's `dev`, no debug info): a one-line change rebuilds
    /// in seconds. For the local environment and `ferry dev`; never reproducible across paths.
    Fast,
}

/// The profile `Profile::Fast` builds with, defined on the command line so a project needs
/// no change to its Cargo.toml.
const FAST_PROFILE: [&str; 6] = [
    "--profile",
    "ferry-fast",
    "--config",
    "profile.ferry-fast.inherits=\"dev\"",
    "--config",
    "profile.ferry-fast.debug=false",
];

pub use ferry_oci::image::{Platform, UnknownPlatform};

/// Builds `binary` of `package` statically for [`TARGET`] and returns its path.
pub async fn build_static(
    root: &Path,
    package: &str,
    binary: &str,
    profile: Profile,
    progress: impl Fn(&str),
) -> Result<PathBuf, CompileError> {
    build_static_for(root, package, binary, profile, TARGET, progress).await
}

/// Builds `binary` of `package` statically for the Rust `target` and returns its path.
pub async fn build_static_for(
    root: &Path,
    package: &str,
    binary: &str,
    profile: Profile,
    target: &str,
    progress: impl Fn(&str),
) -> Result<PathBuf, CompileError> {
    let flags = StaticFlags::new(root, profile, target);
    let args: Vec<&str> = ["build"]
        .into_iter()
        .chain(flags.profile_args.iter().copied())
        .chain([
            "--locked",
            "-p",
            package,
            "--bin",
            binary,
            "--target",
            target,
            "--message-format=json-render-diagnostics",
        ])
        .collect();
    let env: Vec<(&str, &str)> = flags
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let output = run_program(root, "cargo", &args, &env, &progress).await?;
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

/// For a target other than the host's: rust-lld links (musl brings its own C runtime), and a
/// cross C compiler, when installed, builds crates with C code (ring). A linker or CC the
/// caller set wins.
fn cross_env(target: &str) -> Vec<(String, String)> {
    if target == TARGET {
        return Vec::new();
    }
    let upper = target.to_uppercase().replace('-', "_");
    let lower = target.replace('-', "_");
    let mut env = Vec::new();
    let linker = format!("CARGO_TARGET_{upper}_LINKER");
    if std::env::var_os(&linker).is_none() {
        env.push((linker, "rust-lld".to_string()));
    }
    let cc = format!("CC_{lower}");
    let gcc = match target {
        "aarch64-unknown-linux-musl" => "aarch64-linux-gnu-gcc",
        _ => "",
    };
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    if std::env::var_os(&cc).is_none() && !gcc.is_empty() && on_path(gcc) {
        env.push((cc, gcc.to_string()));
    }
    env
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

/// Lines cargo prints while it works, which say nothing about why a build or test failed.
fn is_progress(line: &str) -> bool {
    let t = line.trim_start();
    [
        "Compiling ",
        "Downloading ",
        "Downloaded ",
        "Blocking ",
        "Updating ",
        "Locking ",
        "Adding ",
        "Fresh ",
        "Checking ",
        "Running ",
        "Finished ",
        "Doc-tests ",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

/// What a failed run should show: the failing tests (libtest's `failures:` blocks, with each
/// test's name and panic) when there are any, else the last lines that are not progress.
pub fn failure_report(stdout: &str, stderr: &str) -> String {
    let mut blocks: Vec<&str> = Vec::new();
    let mut inside = false;
    for line in stdout.lines() {
        if line == "failures:" {
            inside = true;
        }
        if inside {
            blocks.push(line);
        }
        if line.starts_with("test result: FAILED") {
            inside = false;
        }
    }
    let lines: Vec<&str> = if blocks.is_empty() {
        let all: Vec<&str> = stdout
            .lines()
            .filter(|l| !l.starts_with('{'))
            .chain(stderr.lines())
            .filter(|l| !is_progress(l))
            .collect();
        let start = all.len().saturating_sub(40);
        all[start..].to_vec()
    } else {
        // The panics, then cargo's own verdict (`error: test failed, to rerun pass ...`).
        let start = blocks.len().saturating_sub(400);
        let mut shown = blocks[start..].to_vec();
        shown.extend(stderr.lines().filter(|l| l.starts_with("error")));
        shown
    };
    lines
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `program` in `root` (`cargo` means `$CARGO` when set); stdout is returned, stderr is
/// kept for the error and each `Compiling …` line is passed to `progress`.
async fn run_program(
    root: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    progress: &impl Fn(&str),
) -> Result<String, CompileError> {
    let executable = if program == "cargo" {
        std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
    } else {
        program.to_string()
    };
    let mut child = Command::new(&executable)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            if program == "cargo" {
                CompileError::Cargo(e)
            } else {
                CompileError::Spawn {
                    program: program.to_string(),
                    source: e,
                }
            }
        })?;
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
    let mut kept: Vec<String> = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let trimmed = line.trim_start();
        if trimmed.starts_with("Compiling") || trimmed.starts_with("Running") {
            progress(trimmed);
        }
        if !is_progress(&line) {
            kept.push(line);
            if kept.len() > 2000 {
                kept.remove(0);
            }
        }
    }
    let status = child.wait().await.map_err(CompileError::Cargo)?;
    let out = reading.await.unwrap_or_default();
    if status.success() {
        // Test binaries print their results on stdout.
        Ok(out)
    } else {
        let mut command = vec![program.to_string()];
        command.extend(args.iter().map(|a| a.to_string()));
        Err(CompileError::Failed {
            command: command.join(" "),
            tail: failure_report(&out, &kept.join("\n")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_test_run_shows_the_failing_tests_after_any_amount_of_compiling() {
        let mut stderr = String::new();
        for i in 0..500 {
            stderr.push_str(&format!("   Compiling crate{i} v1.0.0\n"));
        }
        stderr.push_str("error: test failed, to rerun pass `--lib`\n");
        let stdout = "running 2 tests\ntest a ... ok\ntest b ... FAILED\n\nfailures:\n\n---- tests::b stdout ----\nthread 'tests::b' panicked at src/lib.rs:9:5:\nassertion `left == right` failed\n  left: 1\n right: 2\n\nfailures:\n    tests::b\n\ntest result: FAILED. 1 passed; 1 failed; 0 ignored\n";
        let report = failure_report(stdout, &stderr);
        assert!(report.contains("---- tests::b stdout ----"), "{report}");
        assert!(report.contains("panicked at src/lib.rs:9:5"), "{report}");
        assert!(report.contains("right: 2"), "{report}");
        assert!(report.contains("to rerun pass"), "{report}");
        assert!(!report.contains("Compiling"), "{report}");
    }

    #[test]
    fn a_compile_error_shows_the_error_not_the_progress() {
        let mut stderr = String::from(
            "error[E0425]: cannot find value `x` in this scope\n --> src/main.rs:2:5\n",
        );
        for i in 0..100 {
            stderr.push_str(&format!("   Compiling crate{i} v1.0.0\n"));
        }
        let report = failure_report("", &stderr);
        assert!(report.contains("E0425"), "{report}");
        assert!(!report.contains("Compiling"), "{report}");
    }

    #[test]
    fn the_tested_binary_is_the_bin_target_not_a_test_harness() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"web","kind":["bin"]},"profile":{"test":true},"executable":"/t/deps/web-1"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"web","kind":["lib"]},"profile":{"test":false},"executable":null}"#,
            "test result: ok. 3 passed; 0 failed",
            r#"{"reason":"compiler-artifact","target":{"name":"web","kind":["bin"]},"profile":{"test":false},"executable":"/t/web"}"#,
        ]
        .join("\n");
        assert_eq!(
            built_binary(&messages, "web"),
            Some(PathBuf::from("/t/web"))
        );
        assert_eq!(built_binary(&messages, "other"), None);
        assert_eq!(summarize(&messages, "cargo", &[]), "3 tests passed");
        assert!(is_static_link_failure(
            "error: linking with `cc` failed: exit status: 1\n  = note: /usr/bin/ld: cannot find -lssl"
        ));
        assert!(!is_static_link_failure(
            "error[E0425]: cannot find value `x`"
        ));
    }

    #[test]
    fn a_dynamic_executable_is_not_static() {
        // /bin/sh on Debian is dynamically linked.
        assert!(!is_static(Path::new("/bin/sh")));
        assert!(!is_static(Path::new("/nonexistent")));
    }
}
