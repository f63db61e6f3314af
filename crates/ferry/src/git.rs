//! Commit identity: which commit is being delivered, when it was made, whether the work tree
//! has uncommitted changes. The image tag derives from it. Uses the real `git` binary.

use std::path::Path;
use std::process::Command;

use jiff::Timestamp;

use crate::config::TagScheme;

/// The commit being delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full hash (40 hex digits).
    pub hash: String,
    /// Abbreviated hash (12 hex digits).
    pub short: String,
    /// Committer time.
    pub time: Timestamp,
    /// Uncommitted changes to tracked files, or untracked files not ignored.
    pub dirty: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git is not installed or not on PATH ({0})\n  hint: apt-get install git")]
    Missing(std::io::Error),
    #[error(
        "{dir} is not inside a git repository\n  hint: ferry tags images by commit; run it from a clone (or `git init && git commit`)"
    )]
    NotARepository { dir: String },
    #[error(
        "the repository at {dir} has no commits yet\n  hint: commit your work first: `git add -A && git commit`"
    )]
    NoCommits { dir: String },
    #[error(
        "the work tree has uncommitted changes, so the image would not match commit {short}:\n{changes}\n  \
         hint: commit or stash them, or pass --allow-dirty (the tag then ends in -dirty)"
    )]
    Dirty { short: String, changes: String },
    #[error("`git {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
}

impl Commit {
    /// Reads HEAD of the repository containing `dir`.
    pub fn discover(dir: &Path) -> Result<Commit, GitError> {
        let shown = dir.display().to_string();
        match git(dir, &["rev-parse", "--is-inside-work-tree"]) {
            Ok(_) => {}
            Err(GitError::Failed { stderr, .. }) if stderr.contains("not a git repository") => {
                return Err(GitError::NotARepository { dir: shown });
            }
            Err(e) => return Err(e),
        }
        let hash = match git(dir, &["rev-parse", "--verify", "-q", "HEAD"]) {
            Ok(h) if !h.is_empty() => h,
            _ => return Err(GitError::NoCommits { dir: shown }),
        };
        let seconds: i64 = git(dir, &["show", "-s", "--format=%ct", "HEAD"])?
            .parse()
            .map_err(|_| GitError::Failed {
                args: "show -s --format=%ct HEAD".into(),
                stderr: "not a timestamp".into(),
            })?;
        let time = Timestamp::from_second(seconds).map_err(|e| GitError::Failed {
            args: "show -s --format=%ct HEAD".into(),
            stderr: e.to_string(),
        })?;
        let dirty = !git(dir, &["status", "--porcelain", "--untracked-files=normal"])?.is_empty();
        Ok(Commit {
            short: hash.chars().take(12).collect(),
            hash,
            time,
            dirty,
        })
    }

    /// Refuses a dirty tree unless allowed; lists what is uncommitted.
    pub fn require_clean(&self, dir: &Path, allow_dirty: bool) -> Result<(), GitError> {
        if !self.dirty || allow_dirty {
            return Ok(());
        }
        let changes = git(dir, &["status", "--short"])?
            .lines()
            .take(10)
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        Err(GitError::Dirty {
            short: self.short.clone(),
            changes,
        })
    }

    /// The image tag: the full hash (like the original pipeline), or `<UTC time>-<short hash>`;
    /// `-dirty` is appended for a dirty tree so it never passes for the commit.
    pub fn tag(&self, scheme: TagScheme) -> String {
        let base = match scheme {
            TagScheme::Commit => self.hash.clone(),
            TagScheme::Timestamp => {
                let t = self.time.to_zoned(jiff::tz::TimeZone::UTC);
                format!("{}-{}", t.strftime("%Y%m%dT%H%M%SZ"), self.short)
            }
        };
        if self.dirty {
            format!("{base}-dirty")
        } else {
            base
        }
    }

    /// Commit time as RFC 3339 (UTC), for the `org.opencontainers.image.created` annotation.
    pub fn time_rfc3339(&self) -> String {
        // Whole seconds (git's), so no fraction is written.
        self.time.to_string()
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(GitError::Missing)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(GitError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_DATE", "2024-05-06T07:08:09Z")
            .env("GIT_COMMITTER_DATE", "2024-05-06T07:08:09Z")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        sh(dir.path(), &["init", "-q"]);
        dir
    }

    #[test]
    fn a_clean_commit_gives_its_hash_time_and_tags() {
        let dir = repo();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        sh(dir.path(), &["add", "a"]);
        sh(dir.path(), &["commit", "-qm", "one"]);
        let c = Commit::discover(dir.path()).unwrap();
        assert_eq!(c.hash.len(), 40);
        assert!(!c.dirty);
        assert_eq!(c.time_rfc3339(), "2024-05-06T07:08:09Z");
        assert_eq!(c.tag(TagScheme::Commit), c.hash);
        assert_eq!(
            c.tag(TagScheme::Timestamp),
            format!("20240506T070809Z-{}", &c.hash[..12])
        );
        c.require_clean(dir.path(), false).unwrap();
    }

    #[test]
    fn a_dirty_tree_is_refused_with_the_changes_unless_allowed() {
        let dir = repo();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        sh(dir.path(), &["add", "a"]);
        sh(dir.path(), &["commit", "-qm", "one"]);
        std::fs::write(dir.path().join("a"), "2").unwrap();
        let c = Commit::discover(dir.path()).unwrap();
        assert!(c.dirty);
        let err = c.require_clean(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("M a"), "{err}");
        assert!(err.contains("--allow-dirty"), "{err}");
        c.require_clean(dir.path(), true).unwrap();
        assert!(c.tag(TagScheme::Commit).ends_with("-dirty"));
    }

    #[test]
    fn not_a_repository_and_no_commits_are_told_apart() {
        let plain = tempfile::tempdir().unwrap();
        let err = Commit::discover(plain.path()).unwrap_err();
        assert!(matches!(err, GitError::NotARepository { .. }), "{err}");
        let empty = repo();
        let err = Commit::discover(empty.path()).unwrap_err();
        assert!(matches!(err, GitError::NoCommits { .. }), "{err}");
    }
}
