//! The cargo project being delivered, as `cargo metadata` describes it: its packages and
//! their binaries. `ferry init` picks the service from it, and ferry.toml may leave the
//! package and binary out when there is only one binary to pick.

use std::path::{Path, PathBuf};

/// The packages of a cargo project (one package or a workspace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub workspace_root: PathBuf,
    pub packages: Vec<Package>,
}

/// One workspace member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub manifest_path: PathBuf,
    pub binaries: Vec<String>,
    pub has_library: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(
        "cannot run cargo: {0}\n  hint: install Rust with rustup and make sure `cargo` is on PATH"
    )]
    Cargo(#[source] std::io::Error),
    #[error("{dir} is not a cargo project (`cargo metadata` failed: {stderr})")]
    NotCargo { dir: PathBuf, stderr: String },
    #[error("cannot read `cargo metadata`'s output: {0}")]
    Metadata(String),
    #[error(
        "the project at {root} has no binary to deliver (packages: {packages})\n  \
         hint: a web service needs a `src/main.rs` or a [[bin]] target; add one and run this again"
    )]
    NoBinary { root: PathBuf, packages: String },
    #[error(
        "the project has {} binaries: {}\n  hint: pick one with --package NAME (and --binary NAME when a package has several)",
        .choices.len(),
        .choices.join(", ")
    )]
    Ambiguous { choices: Vec<String> },
    #[error("no package `{name}` in the project; its packages are: {choices}")]
    UnknownPackage { name: String, choices: String },
    #[error("no binary `{name}`{} ; the binaries are: {choices}", .package.as_ref().map(|p| format!(" in package `{p}`")).unwrap_or_default())]
    UnknownBinary {
        name: String,
        package: Option<String>,
        choices: String,
    },
}

impl ProjectError {
    /// A choice the user must make (exit code 2), not a failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ProjectError::Ambiguous { .. }
                | ProjectError::UnknownPackage { .. }
                | ProjectError::UnknownBinary { .. }
        )
    }
}

impl Project {
    /// Runs `cargo metadata --no-deps` in `dir`.
    pub fn read(dir: &Path) -> Result<Self, ProjectError> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(ProjectError::Cargo)?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr = stderr
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap_or(stderr.trim())
                .to_string();
            return Err(ProjectError::NotCargo {
                dir: dir.to_path_buf(),
                stderr,
            });
        }
        Self::from_metadata(&String::from_utf8_lossy(&out.stdout))
    }

    /// Reads `cargo metadata --format-version 1` output.
    pub fn from_metadata(json: &str) -> Result<Self, ProjectError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ProjectError::Metadata(e.to_string()))?;
        let members: Vec<&str> = value["workspace_members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str())
            .collect();
        let mut packages: Vec<Package> = value["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
            .map(|p| {
                let kinds = |t: &serde_json::Value, kind: &str| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == kind))
                };
                let targets = p["targets"].as_array().cloned().unwrap_or_default();
                let mut binaries: Vec<String> = targets
                    .iter()
                    .filter(|t| kinds(t, "bin"))
                    .filter_map(|t| t["name"].as_str().map(String::from))
                    .collect();
                binaries.sort();
                Package {
                    name: p["name"].as_str().unwrap_or_default().to_string(),
                    manifest_path: PathBuf::from(p["manifest_path"].as_str().unwrap_or_default()),
                    binaries,
                    has_library: targets.iter().any(|t| kinds(t, "lib") || kinds(t, "rlib")),
                }
            })
            .collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Project {
            workspace_root: PathBuf::from(value["workspace_root"].as_str().unwrap_or_default()),
            packages,
        })
    }

    /// The service's package and binary: the ones asked for, or the only binary there is.
    pub fn pick_binary(
        &self,
        package: Option<&str>,
        binary: Option<&str>,
    ) -> Result<(String, String), ProjectError> {
        let candidates: Vec<&Package> = match package {
            Some(name) => {
                let found = self
                    .packages
                    .iter()
                    .find(|p| p.name == name)
                    .ok_or_else(|| ProjectError::UnknownPackage {
                        name: name.to_string(),
                        choices: self.package_names(),
                    })?;
                vec![found]
            }
            None => self.packages.iter().collect(),
        };
        let pairs: Vec<(String, String)> = candidates
            .iter()
            .flat_map(|p| p.binaries.iter().map(|b| (p.name.clone(), b.clone())))
            .collect();
        let describe = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(p, b)| format!("{b} (package {p})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(binary) = binary {
            let matching: Vec<(String, String)> =
                pairs.iter().filter(|(_, b)| b == binary).cloned().collect();
            return match matching.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(ProjectError::UnknownBinary {
                    name: binary.to_string(),
                    package: package.map(String::from),
                    choices: describe(&pairs),
                }),
                _ => Err(ProjectError::Ambiguous {
                    choices: matching
                        .iter()
                        .map(|(p, b)| format!("{b} (package {p})"))
                        .collect(),
                }),
            };
        }
        match pairs.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ProjectError::NoBinary {
                root: self.workspace_root.clone(),
                packages: self.package_names(),
            }),
            many => Err(ProjectError::Ambiguous {
                choices: many
                    .iter()
                    .map(|(p, b)| format!("{b} (package {p})"))
                    .collect(),
            }),
        }
    }

    fn package_names(&self) -> String {
        self.packages
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(packages: &[(&str, &[&str])]) -> Project {
        Project {
            workspace_root: PathBuf::from("/w"),
            packages: packages
                .iter()
                .map(|(name, bins)| Package {
                    name: name.to_string(),
                    manifest_path: PathBuf::from(format!("/w/{name}/Cargo.toml")),
                    binaries: bins.iter().map(|b| b.to_string()).collect(),
                    has_library: true,
                })
                .collect(),
        }
    }

    #[test]
    fn the_only_binary_is_picked() {
        let p = project(&[("core", &[]), ("web", &["web"])]);
        assert_eq!(
            p.pick_binary(None, None).unwrap(),
            ("web".into(), "web".into())
        );
    }

    #[test]
    fn several_binaries_are_listed_until_one_is_named() {
        let p = project(&[("api", &["api", "migrate"]), ("worker", &["worker"])]);
        let err = p.pick_binary(None, None).unwrap_err();
        assert!(err.is_usage());
        let text = err.to_string();
        assert!(text.contains("3 binaries"), "{text}");
        assert!(text.contains("migrate (package api)"), "{text}");
        assert!(text.contains("--package"), "{text}");
        assert_eq!(
            p.pick_binary(Some("worker"), None).unwrap(),
            ("worker".into(), "worker".into())
        );
        assert!(p.pick_binary(Some("api"), None).is_err(), "api has two");
        assert_eq!(
            p.pick_binary(Some("api"), Some("api")).unwrap(),
            ("api".into(), "api".into())
        );
        assert_eq!(
            p.pick_binary(None, Some("migrate")).unwrap(),
            ("api".into(), "migrate".into())
        );
        let err = p.pick_binary(Some("nope"), None).unwrap_err().to_string();
        assert!(err.contains("api, worker"), "{err}");
    }

    #[test]
    fn a_project_without_binaries_says_so() {
        let err = project(&[("lib", &[])])
            .pick_binary(None, None)
            .unwrap_err();
        assert!(!err.is_usage());
        assert!(err.to_string().contains("no binary to deliver"), "{err}");
    }

    #[test]
    fn metadata_members_and_targets_are_read() {
        let json = r#"{"workspace_root":"/w","workspace_members":["path+file:///w#web@0.1.0"],
          "packages":[{"id":"path+file:///w#web@0.1.0","name":"web","manifest_path":"/w/Cargo.toml",
          "targets":[{"kind":["lib"],"name":"web"},{"kind":["bin"],"name":"web"},{"kind":["test"],"name":"api"}]}]}"#;
        let p = Project::from_metadata(json).unwrap();
        assert_eq!(p.packages.len(), 1);
        assert_eq!(p.packages[0].binaries, ["web"]);
        assert!(p.packages[0].has_library);
    }
}
