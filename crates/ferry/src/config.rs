//! `ferry.toml`: the service, the image repository and the named environments.
//!
//! Every command reads it; flags and `FERRY_*` variables override it. With no file at all,
//! ferry uses the embedded default: the `hello` service delivered to the `local` environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name ferry looks for, upwards from the current directory.
pub const FILE_NAME: &str = "ferry.toml";

/// The whole of `ferry.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub service: Service,
    #[serde(default)]
    pub image: ImageSettings,
    /// The environment used when none is named (default: `local`).
    #[serde(default = "default_env_name")]
    pub default_environment: String,
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// Where the file was read from; the repository root is its directory.
    #[serde(skip)]
    pub root: PathBuf,
}

/// What is delivered: a cargo package and its binary, listening on a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Cargo package to test and build.
    pub package: String,
    /// Binary target in that package; it becomes the image's entrypoint.
    pub binary: String,
    /// Port the service listens on inside its container.
    pub port: u16,
    /// Liveness endpoint.
    pub health_path: String,
    /// Readiness endpoint.
    pub ready_path: String,
}

impl Default for Service {
    fn default() -> Self {
        Self {
            package: "hello".into(),
            binary: "hello".into(),
            port: 8000,
            health_path: "/healthz".into(),
            ready_path: "/readyz".into(),
        }
    }
}

/// How images are named and tagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    /// Image name used in the local OCI layout and as the default repository path.
    pub name: String,
    /// `commit` (the full commit hash, like the original) or `timestamp` (`<UTC time>-<short hash>`).
    pub tag: TagScheme,
    /// Source URL written into the `org.opencontainers.image.source` annotation.
    pub source: Option<String>,
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            name: "hello".into(),
            tag: TagScheme::Commit,
            source: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TagScheme {
    #[default]
    Commit,
    Timestamp,
}

/// A named place to deliver to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Environment {
    /// The embedded default: build into an OCI layout and run it on this machine.
    Local(LocalEnv),
    /// A real Kubernetes cluster (GKE in production).
    Kubernetes(Box<KubernetesEnv>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LocalEnv {
    /// Host port to publish the service on (default: a free port).
    pub port: Option<u16>,
    /// `auto` (podman, then docker, then the bare binary), `podman`, `docker` or `binary`.
    #[serde(default)]
    pub runtime: LocalRuntime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LocalRuntime {
    #[default]
    Auto,
    Podman,
    Docker,
    Binary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesEnv {
    /// Image repository to push to, e.g. `europe-west1-docker.pkg.dev/PROJECT/ferry/hello`.
    pub repository: String,
    /// Talk plain HTTP to the registry (only for registries on loopback).
    #[serde(default)]
    pub insecure_registry: bool,
    /// Where push credentials come from: `auto` (docker config, then Google credentials for
    /// gcr.io and *-docker.pkg.dev), `docker`, `google` or `anonymous`.
    #[serde(default)]
    pub registry_auth: crate::registry::RegistryAuth,
    /// kubeconfig context to use (default: the GKE cluster's context when `gke` is set, else
    /// the current context).
    pub context: Option<String>,
    /// kubeconfig file (default: `$KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The GKE cluster. Without `context`, ferry uses the context `gcloud container clusters
    /// get-credentials` writes for it; `ferry status` names it. Credentials come from the kubeconfig.
    pub gke: Option<GkeCluster>,
    /// Namespace the manifest is applied to.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The manifest template, relative to the repository root.
    #[serde(default = "default_manifest")]
    pub manifest: PathBuf,
    /// Extra `${VAR}` values for the manifest.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Require `--approve` before applying (a manual gate).
    #[serde(default)]
    pub approval: bool,
    /// Public URL to verify after the rollout (GET / must say Hello, World!).
    pub url: Option<String>,
    /// Refuse `ferry deploy --image` without a digest (`REPO@sha256:…`); otherwise a tag-only
    /// image is deployed with a warning.
    #[serde(default)]
    pub require_digest: bool,
}

impl KubernetesEnv {
    /// The kubeconfig context to use: `context`, else the GKE cluster's, else none (the
    /// kubeconfig's current context).
    pub fn effective_context(&self) -> Option<String> {
        self.context
            .clone()
            .or_else(|| self.gke.as_ref().map(GkeCluster::context_name))
    }
}

/// Per-run overrides of a kubernetes environment's settings, for `ship` and `plan`.
///
/// A flag beats its `FERRY_*` variable, which beats ferry.toml. The variables are read by
/// [`KubernetesOverrides::apply`] (not by clap) so the precedence is one tested function.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct KubernetesOverrides {
    /// Image repository to push to, instead of the environment's `repository`
    /// [env: FERRY_REPOSITORY].
    #[arg(long, value_name = "REPO")]
    pub repository: Option<String>,
    /// kubeconfig context, instead of the environment's `context` or GKE cluster
    /// [env: FERRY_CONTEXT].
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace to deploy to, instead of the environment's `namespace` [env: FERRY_NAMESPACE].
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// A manifest variable over the environment's `vars`, e.g. --var REPLICAS=3 (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

/// The variables that stand in for the override flags.
pub const FERRY_REPOSITORY: &str = "FERRY_REPOSITORY";
pub const FERRY_CONTEXT: &str = "FERRY_CONTEXT";
pub const FERRY_NAMESPACE: &str = "FERRY_NAMESPACE";

/// Override flags given for an environment they do not apply to.
#[derive(Debug, thiserror::Error)]
#[error(
    "{flags} only apply to kubernetes environments, and `{environment}` is a local one\n  \
     hint: pick a kubernetes environment with --env, or leave {flags} out"
)]
pub struct OverridesNotApplicable {
    pub flags: String,
    pub environment: String,
}

impl KubernetesOverrides {
    /// Applies the overrides to `environment`: flags, then `FERRY_*` variables read through
    /// `lookup` (empty counts as unset), then what ferry.toml says. A local environment takes
    /// no flags and ignores the variables.
    pub fn apply(
        &self,
        name: &str,
        environment: &mut Environment,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), OverridesNotApplicable> {
        let env = match environment {
            Environment::Kubernetes(env) => env,
            Environment::Local(_) => {
                let flags = self.given_flags();
                if flags.is_empty() {
                    return Ok(());
                }
                return Err(OverridesNotApplicable {
                    flags: flags.join(", "),
                    environment: name.to_string(),
                });
            }
        };
        let pick = |flag: &Option<String>, var: &str| {
            flag.clone()
                .or_else(|| lookup(var).filter(|v| !v.is_empty()))
        };
        if let Some(repository) = pick(&self.repository, FERRY_REPOSITORY) {
            env.repository = repository;
        }
        if let Some(context) = pick(&self.context, FERRY_CONTEXT) {
            env.context = Some(context);
        }
        if let Some(namespace) = pick(&self.namespace, FERRY_NAMESPACE) {
            env.namespace = namespace;
        }
        env.vars.extend(self.vars.iter().cloned());
        Ok(())
    }

    fn given_flags(&self) -> Vec<&'static str> {
        [
            (self.repository.is_some(), "--repository"),
            (self.context.is_some(), "--context"),
            (self.namespace.is_some(), "--namespace"),
            (!self.vars.is_empty(), "--var"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }
}

/// `KEY=VALUE` with a manifest variable name (letters, digits, `_`; not starting with a digit).
pub fn parse_var(s: &str) -> Result<(String, String), String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("expected KEY=VALUE, got {s:?}"));
    };
    let mut chars = key.chars();
    let is_name = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        return Err(format!(
            "{key:?} is not a variable name: use letters, digits and _, not starting with a digit (e.g. REPLICAS=3)"
        ));
    }
    crate::render::check_settable(key, "--var").map_err(|e| e.to_string())?;
    Ok((key.to_string(), value.to_string()))
}

/// A GKE cluster: the Google Cloud project, the region or zone, and the cluster's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GkeCluster {
    pub project: String,
    /// Region (`europe-west1`) or zone (`europe-west1-b`).
    pub location: String,
    pub cluster: String,
}

impl GkeCluster {
    /// The context `gcloud container clusters get-credentials` adds to the kubeconfig:
    /// `gke_PROJECT_LOCATION_CLUSTER`.
    pub fn context_name(&self) -> String {
        format!("gke_{}_{}_{}", self.project, self.location, self.cluster)
    }

    /// The command that writes this cluster's context and credentials into the kubeconfig.
    pub fn get_credentials_command(&self) -> String {
        format!(
            "gcloud container clusters get-credentials {} --location {} --project {}",
            self.cluster, self.location, self.project
        )
    }
}

impl std::fmt::Display for GkeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GKE cluster {} (project {}, location {})",
            self.cluster, self.project, self.location
        )
    }
}

fn default_env_name() -> String {
    "local".into()
}
fn default_namespace() -> String {
    "default".into()
}
fn default_manifest() -> PathBuf {
    PathBuf::from("k8s.yml")
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service: Service::default(),
            image: ImageSettings::default(),
            default_environment: default_env_name(),
            environments: BTreeMap::new(),
            root: PathBuf::from("."),
        }
    }
}

/// Why `ferry.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The io error is in the message, so it is not also a `source` (printed twice).
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "the configuration file {path} does not exist\n  \
         hint: check the path given to --config (or FERRY_CONFIG); create the file with `ferry init`, or leave --config out to use the ferry.toml found upwards from the current directory"
    )]
    NotFound { path: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path}:{line}: default_environment = \"{name}\" names no environment; the environments are: {choices}"
    )]
    UnknownDefault {
        path: PathBuf,
        line: usize,
        name: String,
        choices: String,
    },
    #[error(
        "unknown environment `{name}` in {path}; the environments are: {choices}\n  \
         hint: add `[environments.{name}]` to {path} or pick one of the above with --env"
    )]
    UnknownEnvironment {
        name: String,
        path: PathBuf,
        choices: String,
    },
    #[error(transparent)]
    ReservedVar(#[from] crate::render::ReservedVar),
}

impl Config {
    /// Parses `ferry.toml` text; `path` is used in messages and to find the repository root.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.root = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        if config.environment(None).is_err() {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with("default_environment"))
                .map_or(1, |i| i + 1);
            return Err(ConfigError::UnknownDefault {
                path: path.to_path_buf(),
                line,
                name: config.default_environment.clone(),
                choices: config.environment_names().join(", "),
            });
        }
        reject_reserved_vars(&config, text, path)?;
        Ok(config)
    }

    /// Names of every environment, `local` included, sorted.
    pub fn environment_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.environments.keys().cloned().collect();
        if !self.environments.contains_key("local") {
            names.push("local".into());
        }
        names.sort_unstable();
        names
    }

    /// Reads the given file, or finds `ferry.toml` upwards from `start`; none found means
    /// the embedded default rooted at `start`.
    pub fn load(explicit: Option<&Path>, start: &Path) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => start
                .ancestors()
                .map(|dir| dir.join(FILE_NAME))
                .find(|candidate| candidate.is_file()),
        };
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|error| {
                    if error.kind() == std::io::ErrorKind::NotFound {
                        ConfigError::NotFound { path: path.clone() }
                    } else {
                        ConfigError::Read {
                            path: path.clone(),
                            error,
                        }
                    }
                })?;
                Self::parse(&text, &path)
            }
            None => Ok(Config {
                root: start.to_path_buf(),
                ..Config::default()
            }),
        }
    }

    /// The environment called `name` (or the default one). `local` always exists.
    pub fn environment(&self, name: Option<&str>) -> Result<(String, Environment), ConfigError> {
        let name = name.unwrap_or(&self.default_environment).to_string();
        match self.environments.get(&name) {
            Some(env) => Ok((name, env.clone())),
            None if name == "local" => Ok((name, Environment::Local(LocalEnv::default()))),
            None => Err(ConfigError::UnknownEnvironment {
                name,
                path: self.root.join(FILE_NAME),
                choices: self.environment_names().join(", "),
            }),
        }
    }
}

/// `vars` of an environment may not set what ferry sets itself (IMAGE, COMMIT, …): the image
/// deployed must be the one pushed. The error names the environment and, when found, the line.
fn reject_reserved_vars(config: &Config, text: &str, path: &Path) -> Result<(), ConfigError> {
    for (name, env) in &config.environments {
        let Environment::Kubernetes(k) = env else {
            continue;
        };
        // The environment's own lines start at its table header.
        let start = text
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("[environments.{name}")))
            .unwrap_or(0);
        for var in k.vars.keys() {
            let line = text
                .lines()
                .skip(start)
                .position(|l| {
                    l.split(['{', ',']).any(|part| {
                        part.trim_start()
                            .strip_prefix(var.as_str())
                            .is_some_and(|rest| rest.trim_start().starts_with('='))
                    })
                })
                .map_or(String::new(), |i| format!(":{}", start + i + 1));
            let place = format!("environments.{name}.vars in {}{line}", path.display());
            crate::render::check_settable(var, &place)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/repo/ferry.toml"))
    }

    #[test]
    fn the_committed_file_parses_with_staging_and_production() {
        let text = include_str!("../../../ferry.toml");
        let config = parse(text).expect("ferry.toml parses");
        assert_eq!(config.root, PathBuf::from("/repo"));
        assert_eq!(
            config.environment_names(),
            ["local", "production", "staging"]
        );
        let (name, env) = config.environment(None).unwrap();
        assert_eq!(name, "local");
        assert!(matches!(env, Environment::Local(_)));
        match config.environment(Some("production")).unwrap().1 {
            Environment::Kubernetes(k) => {
                assert!(k.repository.ends_with("/hello"));
                assert_eq!(k.manifest, PathBuf::from("k8s.yml"));
            }
            other => panic!("production should be kubernetes, got {other:?}"),
        }
    }

    fn kubernetes(text: &str) -> KubernetesEnv {
        let config = parse(&format!(
            "[environments.k]\nkind = \"kubernetes\"\nrepository = \"r.example/hello\"\n{text}"
        ))
        .unwrap();
        match config.environment(Some("k")).unwrap().1 {
            Environment::Kubernetes(k) => *k,
            other => panic!("kubernetes expected, got {other:?}"),
        }
    }

    #[test]
    fn gke_without_a_context_uses_the_context_gcloud_writes() {
        let env = kubernetes(
            "gke = { project = \"ferry-staging\", location = \"europe-west1\", cluster = \"hello\" }\n",
        );
        assert_eq!(
            env.effective_context().as_deref(),
            Some("gke_ferry-staging_europe-west1_hello")
        );
        assert_eq!(
            env.gke.unwrap().get_credentials_command(),
            "gcloud container clusters get-credentials hello --location europe-west1 --project ferry-staging"
        );
    }

    #[test]
    fn an_explicit_context_wins_over_gke_and_none_means_the_current_one() {
        let env = kubernetes(
            "context = \"mine\"\ngke = { project = \"p\", location = \"l\", cluster = \"c\" }\n",
        );
        assert_eq!(env.effective_context().as_deref(), Some("mine"));
        assert_eq!(kubernetes("").effective_context(), None);
    }

    #[test]
    fn the_committed_environments_reach_their_gke_clusters() {
        let config = parse(include_str!("../../../ferry.toml")).unwrap();
        for name in ["staging", "production"] {
            let Environment::Kubernetes(k) = config.environment(Some(name)).unwrap().1 else {
                panic!("{name} is kubernetes");
            };
            assert_eq!(
                k.effective_context(),
                Some(format!("gke_ferry-{name}_europe-west1_ferry-{name}"))
            );
        }
    }

    fn staging_with(overrides: &KubernetesOverrides, vars: &[(&str, &str)]) -> KubernetesEnv {
        let config = parse(include_str!("../../../ferry.toml")).unwrap();
        let (name, mut env) = config.environment(Some("staging")).unwrap();
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        overrides
            .apply(&name, &mut env, |k| vars.get(k).cloned())
            .unwrap();
        match env {
            Environment::Kubernetes(k) => *k,
            other => panic!("staging is kubernetes, got {other:?}"),
        }
    }

    #[test]
    fn without_overrides_ferry_toml_stands() {
        let env = staging_with(&KubernetesOverrides::default(), &[]);
        assert_eq!(
            env.repository,
            "europe-west1-docker.pkg.dev/ferry-staging/ferry/hello"
        );
        assert_eq!(env.context, None);
        assert_eq!(env.namespace, "hello");
        assert_eq!(env.vars["REPLICAS"], "2");
    }

    #[test]
    fn ferry_variables_override_ferry_toml() {
        let env = staging_with(
            &KubernetesOverrides::default(),
            &[
                ("FERRY_REPOSITORY", "127.0.0.1:5000/hello"),
                ("FERRY_CONTEXT", "kind-ci"),
                ("FERRY_NAMESPACE", "ci"),
            ],
        );
        assert_eq!(env.repository, "127.0.0.1:5000/hello");
        assert_eq!(env.effective_context().as_deref(), Some("kind-ci"));
        assert_eq!(env.namespace, "ci");
    }

    #[test]
    fn flags_override_ferry_variables_and_ferry_toml() {
        let flags = KubernetesOverrides {
            repository: Some("flag.example/hello".into()),
            context: Some("flag-context".into()),
            namespace: Some("flag-ns".into()),
            vars: vec![
                ("REPLICAS".into(), "5".into()),
                ("EXTRA".into(), "x".into()),
            ],
        };
        let env = staging_with(
            &flags,
            &[
                ("FERRY_REPOSITORY", "env.example/hello"),
                ("FERRY_CONTEXT", "env-context"),
                ("FERRY_NAMESPACE", "env-ns"),
            ],
        );
        assert_eq!(env.repository, "flag.example/hello");
        assert_eq!(env.context.as_deref(), Some("flag-context"));
        assert_eq!(env.namespace, "flag-ns");
        assert_eq!(env.vars["REPLICAS"], "5", "--var beats ferry.toml's vars");
        assert_eq!(env.vars["EXTRA"], "x");
    }

    #[test]
    fn each_override_falls_through_on_its_own_and_empty_variables_are_unset() {
        let flags = KubernetesOverrides {
            namespace: Some("flag-ns".into()),
            ..Default::default()
        };
        let env = staging_with(
            &flags,
            &[("FERRY_CONTEXT", "env-context"), ("FERRY_REPOSITORY", "")],
        );
        assert_eq!(env.namespace, "flag-ns");
        assert_eq!(env.context.as_deref(), Some("env-context"));
        assert_eq!(
            env.repository, "europe-west1-docker.pkg.dev/ferry-staging/ferry/hello",
            "an empty FERRY_REPOSITORY does not blank the repository"
        );
    }

    #[test]
    fn override_flags_on_a_local_environment_are_an_error_and_variables_are_ignored() {
        let config = parse("").unwrap();
        let (name, mut env) = config.environment(None).unwrap();
        let lookup = |_: &str| Some("set-in-ci".to_string());
        KubernetesOverrides::default()
            .apply(&name, &mut env, lookup)
            .expect("FERRY_* variables do not concern local");
        let flags = KubernetesOverrides {
            repository: Some("r".into()),
            vars: vec![("A".into(), "1".into())],
            ..Default::default()
        };
        let err = flags
            .apply(&name, &mut env, lookup)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--repository, --var only apply to kubernetes"),
            "{err}"
        );
        assert!(err.contains("`local`"), "{err}");
    }

    #[test]
    fn var_flags_need_a_variable_name() {
        assert_eq!(
            parse_var("REPLICAS=3=4"),
            Ok(("REPLICAS".into(), "3=4".into()))
        );
        assert!(parse_var("REPLICAS").unwrap_err().contains("KEY=VALUE"));
        assert!(
            parse_var("3X=1")
                .unwrap_err()
                .contains("not a variable name")
        );
        assert!(parse_var("=1").is_err());
    }

    #[test]
    fn ferrys_own_variables_are_refused_in_var_flags_and_in_vars() {
        for name in ["IMAGE", "COMMIT", "ENVIRONMENT", "NAMESPACE"] {
            let err = parse_var(&format!("{name}=evil.example/x:latest")).unwrap_err();
            assert!(
                err.starts_with(&format!("--var cannot set {name}")),
                "{err}"
            );
        }
        let err = parse(
            "[environments.k]\nkind = \"kubernetes\"\nrepository = \"r.example/hello\"\n\n[environments.k.vars]\nREPLICAS = \"2\"\nIMAGE = \"evil.example/x:latest\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("environments.k.vars in /repo/ferry.toml:7 cannot set IMAGE"),
            "{err}"
        );
        let err = parse(
            "[environments.a]\nkind = \"kubernetes\"\nrepository = \"r.example/hello\"\nvars = { NAMESPACE_SUFFIX = \"-a\" }\n[environments.k]\nkind = \"kubernetes\"\nrepository = \"r.example/hello\"\nvars = { REPLICAS = \"2\", NAMESPACE = \"x\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("environments.k.vars in /repo/ferry.toml:8 cannot set NAMESPACE"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_is_the_embedded_default() {
        let config = parse("").unwrap();
        assert_eq!(config.service, Service::default());
        assert!(matches!(
            config.environment(None).unwrap().1,
            Environment::Local(_)
        ));
    }

    #[test]
    fn unknown_keys_are_rejected_with_line_and_choices() {
        let err = parse("[service]\npackage = \"hello\"\nbinray = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/repo/ferry.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("binray"), "{err}");
        assert!(err.contains("binary"), "valid keys listed: {err}");
    }

    #[test]
    fn wrong_types_name_the_line() {
        let err = parse("[service]\nport = \"eighty\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn unknown_environment_kind_lists_the_kinds() {
        let err = parse("[environments.x]\nkind = \"nomad\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nomad"), "{err}");
        assert!(err.contains("local") && err.contains("kubernetes"), "{err}");
    }

    #[test]
    fn unknown_environment_lists_the_choices() {
        let config = parse("[environments.staging]\nkind = \"local\"\n").unwrap();
        let err = config.environment(Some("prod")).unwrap_err().to_string();
        assert!(err.contains("`prod`"), "{err}");
        assert!(err.contains("local, staging"), "{err}");
    }

    #[test]
    fn an_unknown_default_environment_names_its_line() {
        let err = parse("# top\ndefault_environment = \"prod\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ferry.toml:2"), "{err}");
        assert!(err.contains("local"), "{err}");
    }
}
