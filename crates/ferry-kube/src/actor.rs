//! Who runs ferry, for the deploy lock and the history: the CI user when a CI system says
//! who started the job, else the git author configured here, else the login name.

/// The CI systems' variables naming the user who started the job, in the order tried.
pub const CI_USER_VARS: &[&str] = &[
    "FERRY_ACTOR",
    "CIRCLE_USERNAME",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "BUILDKITE_BUILD_CREATOR",
];

/// `alice` (from CI), `Alice Example` (git's user.name) or `alice` (`$USER`).
pub fn who() -> String {
    who_from(|v| std::env::var(v).ok(), git_user_name)
}

fn who_from(var: impl Fn(&str) -> Option<String>, git: impl Fn() -> Option<String>) -> String {
    CI_USER_VARS
        .iter()
        .find_map(|v| var(v).filter(|s| !s.trim().is_empty()))
        .or_else(git)
        .or_else(|| var("USER").filter(|s| !s.is_empty()))
        .or_else(|| var("LOGNAME").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn git_user_name() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", "user.name"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}

/// This machine's host name.
pub fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).into_owned();
        if !name.is_empty() {
            return name;
        }
    }
    "localhost".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ci_user_wins_then_git_then_the_login() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |v: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == v)
                    .map(|(_, x)| x.to_string())
            }
        };
        assert_eq!(
            who_from(
                env(&[("CIRCLE_USERNAME", "alice"), ("USER", "root")]),
                || { Some("Git Name".into()) }
            ),
            "alice"
        );
        assert_eq!(
            who_from(env(&[("USER", "root")]), || Some("Git Name".into())),
            "Git Name"
        );
        assert_eq!(who_from(env(&[("USER", "root")]), || None), "root");
    }
}
