//! One ferry at a time in a checkout. `build`, `ship`, `plan` and `stop` hold an exclusive
//! lock on `target/ferry/lock` while they run; a second ferry says who holds it and waits.
//! The lock is the kernel's (`flock`), so it goes away with its holder, however it dies.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

/// Held until dropped.
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the lock file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock file of the project rooted at `root`.
pub fn path(root: &Path) -> PathBuf {
    root.join("target").join("ferry").join("lock")
}

/// Takes the project's lock for `what` (e.g. "shipping"). When another ferry holds it,
/// `waiting` is told who (its pid and what it is doing) and this waits for it.
pub async fn acquire(
    root: &Path,
    what: &str,
    waiting: impl FnOnce(&str),
) -> Result<ProjectLock, LockError> {
    let path = path(root);
    let open_err = |source| LockError::Open {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(open_err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(open_err)?;
    if !try_flock(&file).map_err(|source| LockError::Lock {
        path: path.clone(),
        source,
    })? {
        // The holder writes who it is just after it takes the lock: give it that moment.
        let mut holder = String::new();
        for _ in 0..20 {
            holder.clear();
            let _ = file.rewind();
            let _ = file.read_to_string(&mut holder);
            if !holder.trim().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let holder = holder.trim();
        waiting(if holder.is_empty() {
            "another ferry"
        } else {
            holder
        });
        let fd_file = file.try_clone().map_err(open_err)?;
        tokio::task::spawn_blocking(move || flock(&fd_file, libc::LOCK_EX))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|source| LockError::Lock {
                path: path.clone(),
                source,
            })?;
    }
    // Who holds it now, for the next one to read.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(
        file,
        "another ferry (pid {}) is {what} in this checkout",
        std::process::id()
    );
    let _ = file.flush();
    Ok(ProjectLock { _file: file })
}

/// `true` when the lock was free and is now held.
fn try_flock(file: &File) -> std::io::Result<bool> {
    match flock(file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

fn flock(file: &File, operation: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock takes a file descriptor we own for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_second_holder_is_told_who_holds_it_and_waits_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "shipping", |_| panic!("free"))
            .await
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let root = dir.path().to_path_buf();
        let second = tokio::spawn(async move {
            acquire(&root, "stopping", move |holder| {
                tx.send(holder.to_string()).unwrap();
            })
            .await
            .unwrap()
        });
        let told = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(5)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            told,
            format!(
                "another ferry (pid {}) is shipping in this checkout",
                std::process::id()
            )
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !second.is_finished(),
            "the second waits while the first holds it"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("released")
            .unwrap();
    }
}
