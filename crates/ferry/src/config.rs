//! `ferry.toml`: the service, its image, how it is verified, and the named environments.
//!
//! Every command but `init` and `completions` reads it; flags and `FERRY_*` variables override
//! it. There is no hidden default service: without a `ferry.toml`, commands stop and say to run
//! `ferry init`. Every key has a default where one can be derived (the package and binary come
//! from `cargo metadata` when the project has exactly one binary).

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
    /// `[[verify]]`: HTTP checks run after a local run and after a rollout with a `url`.
    #[serde(default)]
    pub verify: Vec<Check>,
    #[serde(default)]
    pub test: TestSettings,
    /// The environment used when none is named (default: `local`).
    #[serde(default = "default_env_name")]
    pub default_environment: String,
    /// Read separately (see [`parse_environments`]) so an error points at its key's line.
    #[serde(skip)]
    pub environments: BTreeMap<String, Environment>,
    #[serde(default, rename = "environments", skip_serializing)]
    environments_table: Option<toml::Table>,
    /// Why the package and binary could not be worked out, if they could not.
    #[serde(skip)]
    service_error: Option<String>,
    /// Where the file was read from; the repository root is its directory.
    #[serde(skip)]
    pub root: PathBuf,
}

/// What is delivered: a cargo package's binary, listening on a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Cargo package to test and build (default: the one with the project's only binary).
    #[serde(default)]
    pub package: String,
    /// Binary target in that package; the image's entrypoint (default: its only binary).
    #[serde(default)]
    pub binary: String,
    /// Port the service listens on inside its container (default 8080).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The variable the service reads its port from (default `PORT`; `""` for none, e.g. when
    /// the port is given in `args`).
    #[serde(default = "default_port_env")]
    pub port_env: String,
    /// Command-line arguments after the binary; `${PORT}` expands to the port.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables for the service, in the image and in the local run; `${PORT}`
    /// expands.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Readiness endpoint; without it readiness is a TCP connect to the port.
    pub ready_path: Option<String>,
    /// Liveness endpoint, used by the `k8s.yml` that `ferry init` writes.
    pub health_path: Option<String>,
    /// Numeric user (and group) the image runs as (default 65532, distroless' "nonroot").
    #[serde(default = "default_user")]
    pub user: u32,
}

impl Default for Service {
    fn default() -> Self {
        Self {
            package: String::new(),
            binary: String::new(),
            port: default_port(),
            port_env: default_port_env(),
            args: Vec::new(),
            env: BTreeMap::new(),
            ready_path: None,
            health_path: None,
            user: default_user(),
        }
    }
}

/// The name `${PORT}` is written as in `args` and `env`.
pub const PORT_PLACEHOLDER: &str = "${PORT}";

impl Service {
    /// `args` with `${PORT}` expanded to `port`.
    pub fn args_for(&self, port: u16) -> Vec<String> {
        self.args.iter().map(|a| expand_port(a, port)).collect()
    }

    /// The service's environment for `port`: `port_env` (unless empty) and `env`, expanded.
    pub fn env_for(&self, port: u16) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        if !self.port_env.is_empty() {
            vars.insert(self.port_env.clone(), port.to_string());
        }
        for (k, v) in &self.env {
            vars.insert(k.clone(), expand_port(v, port));
        }
        vars
    }
}

fn expand_port(text: &str, port: u16) -> String {
    text.replace(PORT_PLACEHOLDER, &port.to_string())
}

/// How images are named, tagged and what they hold besides the binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    /// Image name used in the local OCI layout and local names (default: the package).
    #[serde(default)]
    pub name: String,
    /// `commit` (the full commit hash) or `timestamp` (`<UTC time>-<short hash>`).
    #[serde(default)]
    pub tag: TagScheme,
    /// Source URL written into the `org.opencontainers.image.source` annotation.
    pub source: Option<String>,
    /// Files and directories copied into the image: `{ from = "static", to = "/srv/static" }`.
    #[serde(default)]
    pub files: Vec<FileCopy>,
    /// Add a CA bundle at `/etc/ssl/certs/ca-certificates.crt` (for services calling HTTPS APIs).
    #[serde(default)]
    pub ca_certificates: bool,
    /// Platforms to build for, e.g. `["linux/amd64", "linux/arm64"]`: one static binary each,
    /// under one OCI image index. Default: this machine's only (a plain image manifest).
    #[serde(default)]
    pub platforms: Vec<String>,
}

impl ImageSettings {
    /// The platforms of a multi-platform image; `None` when only the host's is built.
    pub fn multi_platform(
        &self,
    ) -> Result<Option<Vec<crate::compile::Platform>>, crate::compile::UnknownPlatform> {
        let mut platforms = self
            .platforms
            .iter()
            .map(|p| crate::compile::Platform::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        platforms.dedup();
        let host = crate::compile::Platform::host();
        if platforms.is_empty() || platforms == [host.clone()] {
            return Ok(None);
        }
        // The host's first: its binary is the one a local run uses.
        platforms.sort_by_key(|p| *p != host);
        Ok(Some(platforms))
    }
}

/// One `[image] files` entry: a path in the project copied to an absolute path in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCopy {
    /// File or directory, relative to the project root.
    pub from: PathBuf,
    /// Absolute path inside the image.
    pub to: String,
}

/// One `[[verify]]` check: `GET path` answers `status`, and the body contains `contains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub path: String,
    #[serde(default = "default_status")]
    pub status: u16,
    pub contains: Option<String>,
}

/// `[test]`: how the test stage runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestSettings {
    /// The command, as a list. Unset: `cargo test --locked -p PACKAGE`, compiled as the build
    /// compiles when the environment builds fast (see `compile::TestRun`).
    pub command: Option<Vec<String>>,
    /// How many tests run at once in each test binary: the stage sets `RUST_TEST_THREADS` (unless
    /// it is already set). Unset: libtest's default, one per core. Tests that mostly wait
    /// (timeouts, drains, child processes) finish sooner with more.
    pub threads: Option<u16>,
}

impl TestSettings {
    /// `[test] command` when it is set (and not empty); else ferry runs `cargo test`.
    pub fn custom(&self) -> Option<&[String]> {
        self.command.as_deref().filter(|c| !c.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TagScheme {
    #[default]
    Commit,
    Timestamp,
}

/// A named place to deliver to (read by [`parse_environments`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Environment {
    /// The embedded default: build into an OCI layout and run it on this machine.
    Local(LocalEnv),
    /// A real Kubernetes cluster (GKE in production).
    Kubernetes(Box<KubernetesEnv>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalEnv {
    /// Host port to publish the service on (default: a free port).
    pub port: Option<u16>,
    /// `auto` (podman, then docker, then the bare binary), `podman`, `docker` or `binary`.
    #[serde(default)]
    pub runtime: LocalRuntime,
    /// `fast` (incremental, unoptimised: a one-line change ships in seconds) or `release` (the
    /// bytes production runs). Kubernetes environments always build `release`.
    #[serde(default = "default_local_profile")]
    pub profile: crate::compile::Profile,
    /// Secrets for the service, `NAME = "env:VAR"` or `"gcpsm://projects/P/secrets/S/versions/V"`:
    /// given to the local instance as environment variables, never printed.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// The `kind` key that selected this struct (read by [`parse_environments`]).
    #[serde(default, rename = "kind", skip_serializing)]
    #[doc(hidden)]
    pub kind_tag: Option<String>,
}

impl Default for LocalEnv {
    fn default() -> Self {
        Self {
            port: None,
            runtime: LocalRuntime::default(),
            profile: default_local_profile(),
            secrets: BTreeMap::new(),
            kind_tag: None,
        }
    }
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
    /// Public URL checked after the rollout: readiness, then every `[[verify]]` check.
    pub url: Option<String>,
    /// Stop a rollout at the first cause that will not fix itself (a pull error, a crash loop,
    /// readiness failing past its probes' grace). `false`: wait out the progress deadline.
    #[serde(default = "yes")]
    pub fail_fast: bool,
    /// Secrets for the service, `NAME = "env:VAR"` or `"gcpsm://projects/P/secrets/S/versions/V"`:
    /// written into a Kubernetes Secret named `${SECRETS}` with server-side apply, never printed.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Sign every pushed image (cosign format) and attach signed SLSA provenance: a PEM
    /// private key path (`ferry keygen`), or `gcpkms://projects/…/cryptoKeyVersions/N`.
    pub signing_key: Option<String>,
    /// A PEM public key: refuse, before applying anything, to deploy an image whose
    /// signature does not verify with it.
    pub require_signature: Option<PathBuf>,
    /// Binary Authorization: after signing, attest the image for this attestor, in Container
    /// Analysis on its note (`{ attestor = "projects/P/attestors/A", note = "projects/P/notes/N" }`).
    /// Needs `signing_key`.
    pub binauthz: Option<crate::binauthz::Settings>,
    /// The `kind` key that selected this struct (read by [`parse_environments`]).
    #[serde(default, rename = "kind", skip_serializing)]
    #[doc(hidden)]
    pub kind_tag: Option<String>,
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
    /// Plain HTTP to the registry, as `insecure_registry = true` (loopback registries always
    /// use it).
    #[arg(long)]
    pub insecure: bool,
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
        env.insecure_registry |= self.insecure;
        Ok(())
    }

    fn given_flags(&self) -> Vec<&'static str> {
        [
            (self.repository.is_some(), "--repository"),
            (self.context.is_some(), "--context"),
            (self.namespace.is_some(), "--namespace"),
            (!self.vars.is_empty(), "--var"),
            (self.insecure, "--insecure"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }
}

pub use ferry_kube::dns_label;

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
        format!("gcloud {}", self.get_credentials_args().join(" "))
    }

    /// gcloud's arguments for [`GkeCluster::get_credentials_command`]: the cluster's DNS
    /// endpoint, so the kubeconfig works with the public IP endpoint off.
    pub fn get_credentials_args(&self) -> [&str; 9] {
        [
            "container",
            "clusters",
            "get-credentials",
            &self.cluster,
            "--location",
            &self.location,
            "--project",
            &self.project,
            "--dns-endpoint",
        ]
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

fn default_local_profile() -> crate::compile::Profile {
    crate::compile::Profile::Fast
}
fn default_port() -> u16 {
    8080
}
fn default_port_env() -> String {
    "PORT".into()
}
fn default_user() -> u32 {
    65532
}
fn default_status() -> u16 {
    200
}
fn default_env_name() -> String {
    "local".into()
}
fn yes() -> bool {
    true
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
            verify: Vec::new(),
            test: TestSettings::default(),
            default_environment: default_env_name(),
            environments: BTreeMap::new(),
            environments_table: None,
            service_error: None,
            root: PathBuf::from("."),
        }
    }
}

/// Why `ferry.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no {FILE_NAME} in {start} or any directory above it\n  \
         hint: run `ferry init` in your cargo project to write one (or pass --config FILE)"
    )]
    Missing { start: PathBuf },
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
    #[error("{message}")]
    Unresolved { message: String },
    #[error("{path}: {message}\n  hint: {hint}")]
    Service {
        path: PathBuf,
        message: String,
        hint: String,
    },
    #[error(transparent)]
    ReservedVar(#[from] crate::render::ReservedVar),
    // The error carries its own hint; printed once, so not a `source`.
    #[error("{path}: environments.{environment}: {error}")]
    Binauthz {
        path: PathBuf,
        environment: String,
        error: Box<crate::binauthz::BinauthzError>,
    },
}

impl ConfigError {
    /// Whether this is a usage error (exit code 2) rather than a failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ConfigError::Missing { .. } | ConfigError::NotFound { .. }
        )
    }
}

impl Config {
    /// Parses `ferry.toml` text; `path` is used in messages and to find the repository root.
    /// Keys left out get their defaults; the package and binary stay empty until
    /// [`Config::resolve_service`] asks cargo.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |e: toml::de::Error| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut config: Config = toml::from_str(text).map_err(invalid)?;
        let table = config.environments_table.take().unwrap_or_default();
        config.environments = parse_environments(text, &table).map_err(invalid)?;
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
        config.check_settings(path)?;
        reject_reserved_vars(&config, text, path)?;
        Ok(config)
    }

    /// Checks what serde cannot: `[image] files` targets, `[[verify]]` paths, the test command.
    fn check_settings(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |message: String, hint: &str| ConfigError::Service {
            path: path.to_path_buf(),
            message,
            hint: hint.to_string(),
        };
        for file in &self.image.files {
            if !file.to.starts_with('/') || file.to.split('/').any(|c| c == "..") {
                return Err(bad(
                    format!(
                        "[image] files: `to = {:?}` is not an absolute path inside the image",
                        file.to
                    ),
                    "write it as an absolute path, e.g. to = \"/srv/static\"",
                ));
            }
            if file.from.is_absolute()
                || file
                    .from
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(bad(
                    format!(
                        "[image] files: `from = {:?}` must be a path inside the project",
                        file.from
                    ),
                    "give it relative to the directory of ferry.toml, e.g. from = \"static\"",
                ));
            }
        }
        for check in &self.verify {
            if !check.path.starts_with('/') {
                return Err(bad(
                    format!("[[verify]] path = {:?} does not start with /", check.path),
                    "write the path part of the URL, e.g. path = \"/\"",
                ));
            }
        }
        for (key, value) in [
            ("ready_path", &self.service.ready_path),
            ("health_path", &self.service.health_path),
        ] {
            if let Some(value) = value
                && !value.starts_with('/')
            {
                return Err(bad(
                    format!("[service] {key} = {value:?} does not start with /"),
                    "write the path part of the URL, e.g. \"/healthz\"",
                ));
            }
        }
        for (name, env) in &self.environments {
            let Environment::Kubernetes(k) = env else {
                continue;
            };
            if let Some(binauthz) = &k.binauthz {
                let key = k
                    .signing_key
                    .as_deref()
                    .map(|key| crate::sign::KeyRef::parse(key, &self.root))
                    .transpose()
                    .map_err(crate::binauthz::BinauthzError::from)
                    .and_then(|key| binauthz.check(key.as_ref()));
                if let Err(error) = key {
                    return Err(ConfigError::Binauthz {
                        path: path.to_path_buf(),
                        environment: name.clone(),
                        error: Box::new(error),
                    });
                }
            }
        }
        if self.test.threads == Some(0) {
            return Err(bad(
                "[test] threads = 0".into(),
                "give at least 1, or leave it out for one test per core",
            ));
        }
        if self.test.command.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad(
                "[test] command is empty".into(),
                "leave it out for `cargo test --locked -p PACKAGE`, or give a program and its arguments",
            ));
        }
        Ok(())
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

    /// Reads the given file, or finds `ferry.toml` upwards from `start`, and fills in the
    /// service's package and binary from cargo when ferry.toml leaves them out.
    pub fn load(explicit: Option<&Path>, start: &Path) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => start
                .ancestors()
                .map(|dir| dir.join(FILE_NAME))
                .find(|candidate| candidate.is_file())
                .ok_or_else(|| ConfigError::Missing {
                    start: start.to_path_buf(),
                })?,
        };
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
        let mut config = Self::parse(&text, &path)?;
        // Commands that build need the package; the others (deploy, status, …) may run where
        // there is no cargo project at all, so the error waits for [`Config::require_service`].
        if let Err(e) = config.resolve_service(&path) {
            config.service_error = Some(e.to_string());
        }
        Ok(config)
    }

    /// Fails when the service's package and binary could not be worked out.
    pub fn require_service(&self) -> Result<(), ConfigError> {
        match &self.service_error {
            Some(message) => Err(ConfigError::Unresolved {
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Fills in `[service] package`/`binary` (from `cargo metadata`) and `[image] name`
    /// when ferry.toml leaves them out.
    pub fn resolve_service(&mut self, path: &Path) -> Result<(), ConfigError> {
        if self.image.name.is_empty() && !self.service.package.is_empty() {
            self.image.name = self.service.package.clone();
        }
        if self.service.package.is_empty() || self.service.binary.is_empty() {
            let project =
                crate::project::Project::read(&self.root).map_err(|e| ConfigError::Service {
                    path: path.to_path_buf(),
                    message: format!("cannot work out the service's package and binary: {e}"),
                    hint: "set [service] package and binary in ferry.toml".into(),
                })?;
            let (package, binary) = project
                .pick_binary(
                    Some(self.service.package.as_str()).filter(|p| !p.is_empty()),
                    Some(self.service.binary.as_str()).filter(|b| !b.is_empty()),
                )
                .map_err(|e| ConfigError::Service {
                    path: path.to_path_buf(),
                    // The first line: its own hint is for `ferry init`'s flags.
                    message: e.to_string().lines().next().unwrap_or_default().to_string(),
                    hint: "set [service] package and binary in ferry.toml".into(),
                })?;
            self.service.package = package;
            self.service.binary = binary;
        }
        if self.image.name.is_empty() {
            self.image.name = self.service.package.clone();
        }
        self.service_error = None;
        Ok(())
    }

    /// A name for this project on this machine: the image name and a short hash of the
    /// project's root, so two checkouts never share containers, images or state.
    pub fn instance_name(&self) -> String {
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let digest = crate::image::sha256(root.as_os_str().as_encoded_bytes());
        let hex = digest.trim_start_matches("sha256:");
        format!("{}-{}", dns_label(&self.image.name), &hex[..8])
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

/// Reads `[environments.*]`. Each environment is deserialized straight from the document
/// (not from a buffered copy, as serde's tagged enums do), so an error inside one points at
/// the offending key's line.
fn parse_environments(
    text: &str,
    table: &toml::Table,
) -> Result<BTreeMap<String, Environment>, toml::de::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Local,
        Kubernetes,
    }
    #[derive(Deserialize)]
    struct KindOnly {
        kind: Kind,
    }
    let mut environments = BTreeMap::new();
    for name in table.keys() {
        let env = match pick_environment::<KindOnly>(text, name)?.kind {
            Kind::Local => Environment::Local(pick_environment(text, name)?),
            Kind::Kubernetes => Environment::Kubernetes(Box::new(pick_environment(text, name)?)),
        };
        environments.insert(name.clone(), env);
    }
    Ok(environments)
}

/// Deserializes `environments.NAME` of the document `text` as a `T`.
fn pick_environment<T: serde::de::DeserializeOwned>(
    text: &str,
    name: &str,
) -> Result<T, toml::de::Error> {
    use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
    use std::marker::PhantomData;

    struct Document<'n, T>(&'n str, PhantomData<T>);
    struct Environments<'n, T>(&'n str, PhantomData<T>);

    impl<'de, T: serde::de::DeserializeOwned> DeserializeSeed<'de> for Document<'_, T> {
        type Value = T;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, T: serde::de::DeserializeOwned> Visitor<'de> for Document<'_, T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a ferry.toml document")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == "environments" {
                    found = map.next_value_seed(Environments::<T>(self.0, PhantomData))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            found.ok_or_else(|| A::Error::custom(format!("no environment `{}`", self.0)))
        }
    }
    impl<'de, T: serde::de::DeserializeOwned> DeserializeSeed<'de> for Environments<'_, T> {
        type Value = Option<T>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, T: serde::de::DeserializeOwned> Visitor<'de> for Environments<'_, T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a table of environments")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == self.0 {
                    found = Some(map.next_value::<T>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    Document::<T>(name, PhantomData).deserialize(toml::Deserializer::parse(text)?)
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

    #[test]
    fn platforms_default_to_the_host_and_put_it_first() {
        let with = |platforms: &[&str]| ImageSettings {
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
            ..ImageSettings::default()
        };
        let host = crate::compile::Platform::host();
        assert_eq!(with(&[]).multi_platform().unwrap(), None);
        assert_eq!(with(&[&host.to_string()]).multi_platform().unwrap(), None);
        let both = with(&["linux/arm64", "linux/amd64"])
            .multi_platform()
            .unwrap()
            .unwrap();
        assert_eq!(both[0], host);
        assert_eq!(both.len(), 2);
        let err = with(&["linux/s390x"])
            .multi_platform()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"linux/s390x\"") && err.contains("linux/arm64"),
            "{err}"
        );
    }

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
            "gcloud container clusters get-credentials hello --location europe-west1 --project ferry-staging --dns-endpoint"
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

    #[test]
    fn production_attests_for_the_attestor_terraform_makes_with_the_kms_key_id() {
        let config = parse(include_str!("../../../ferry.toml")).unwrap();
        let Environment::Kubernetes(k) = config.environment(Some("production")).unwrap().1 else {
            panic!("production is kubernetes");
        };
        let key =
            crate::sign::KeyRef::parse(k.signing_key.as_deref().unwrap(), &config.root).unwrap();
        let attestor = k.binauthz.unwrap().check(Some(&key)).unwrap();
        // terraform/modules/binary-authorization's defaults: attestor "ferry", note "ferry-note",
        // and the signing module's key ring "ferry", key "image-signing", version 1.
        assert_eq!(attestor.name, "projects/ferry-production/attestors/ferry");
        assert_eq!(attestor.note, "projects/ferry-production/notes/ferry-note");
        assert_eq!(
            attestor.public_key_id,
            "//cloudkms.googleapis.com/v1/projects/ferry-production/locations/europe-west1/keyRings/ferry/cryptoKeys/image-signing/cryptoKeyVersions/1"
        );
    }

    #[test]
    fn binauthz_needs_a_signing_key_and_well_formed_names() {
        let env = |extra: &str| {
            parse(&format!(
                "[environments.prod]\nkind = \"kubernetes\"\nrepository = \"r.example/hello\"\n{extra}"
            ))
        };
        let binauthz =
            "binauthz = { attestor = \"projects/p/attestors/a\", note = \"projects/p/notes/n\" }\n";
        let err = env(binauthz).unwrap_err().to_string();
        assert!(
            err.contains("environments.prod: binauthz is set but signing_key is not"),
            "{err}"
        );
        let err = env(&format!("signing_key = \"keys/ferry.key\"\n{binauthz}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("binauthz.public_key_id is needed"), "{err}");
        let kms = "signing_key = \"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1\"\n";
        assert!(env(&format!("{kms}{binauthz}")).is_ok());
        let err = env(&format!(
            "{kms}binauthz = {{ attestor = \"ferry\", note = \"projects/p/notes/n\" }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("binauthz.attestor = \"ferry\" is not an attestor's name"),
            "{err}"
        );
        let err = env(&format!(
            "{kms}binauthz = {{ attestor = \"projects/p/attestors/a\", note = \"n\", extra = 1 }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `extra`"), "{err}");
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
            insecure: true,
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
        assert!(
            env.insecure_registry,
            "--insecure is the same on ship and plan as on push"
        );
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
    fn an_empty_file_takes_every_default() {
        let config = parse("").unwrap();
        assert_eq!(config.service, Service::default());
        assert_eq!(config.service.port, 8080);
        assert_eq!(config.service.port_env, "PORT");
        assert_eq!(config.service.user, 65532);
        assert_eq!(
            config.service.ready_path, None,
            "readiness is a TCP connect"
        );
        assert!(config.verify.is_empty());
        assert_eq!(config.test.custom(), None, "ferry runs cargo test");
        let custom = parse("[test]\ncommand = [\"make\", \"check\"]\n").unwrap();
        assert_eq!(
            custom.test.custom(),
            Some(&["make".to_string(), "check".to_string()][..])
        );
        assert_eq!(config.test.threads, None, "libtest's default: one per core");
        assert_eq!(
            parse("[test]\nthreads = 8\n").unwrap().test.threads,
            Some(8)
        );
        let zero = parse("[test]\nthreads = 0\n").unwrap_err().to_string();
        assert!(zero.contains("[test] threads = 0"), "{zero}");
        assert!(zero.contains("at least 1"), "{zero}");
        assert!(matches!(
            config.environment(None).unwrap().1,
            Environment::Local(_)
        ));
    }

    #[test]
    fn service_settings_expand_the_port_in_args_and_env() {
        let config = parse(
            "[service]\nport = 9000\nport_env = \"\"\nargs = [\"--listen\", \"0.0.0.0:${PORT}\"]\nenv = { ORIGIN = \"http://localhost:${PORT}\", MODE = \"x\" }\n",
        )
        .unwrap();
        assert_eq!(config.service.args_for(9000), ["--listen", "0.0.0.0:9000"]);
        let env = config.service.env_for(1234);
        assert_eq!(
            env.get("ORIGIN").map(String::as_str),
            Some("http://localhost:1234")
        );
        assert!(
            !env.contains_key("PORT"),
            "port_env = \"\" sets no port variable"
        );
        let config = parse("[service]\nport_env = \"APP_PORT\"\n").unwrap();
        assert_eq!(
            config
                .service
                .env_for(8080)
                .get("APP_PORT")
                .map(String::as_str),
            Some("8080")
        );
    }

    #[test]
    fn verify_checks_and_image_files_are_read_and_checked() {
        let config = parse(
            "[image]\nfiles = [{ from = \"static\", to = \"/srv/static\" }]\nca_certificates = true\n[[verify]]\npath = \"/health\"\ncontains = \"ok\"\n[[verify]]\npath = \"/missing\"\nstatus = 404\n",
        )
        .unwrap();
        assert_eq!(config.verify.len(), 2);
        assert_eq!(config.verify[0].status, 200);
        assert_eq!(config.verify[1].status, 404);
        assert_eq!(config.image.files[0].to, "/srv/static");
        assert!(config.image.ca_certificates);
        for (bad, why) in [
            (
                "[image]\nfiles = [{ from = \"s\", to = \"srv\" }]\n",
                "absolute",
            ),
            (
                "[image]\nfiles = [{ from = \"../x\", to = \"/x\" }]\n",
                "inside the project",
            ),
            ("[[verify]]\npath = \"health\"\n", "start with /"),
            ("[test]\ncommand = []\n", "empty"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn an_error_inside_an_environment_points_at_its_line() {
        let text = "[service]\nport = 80\n\n[environments.staging]\nkind = \"kubernetes\"\nrepository = \"r/x\"\nnamespcae = \"x\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("line 7"), "{err}");
        assert!(err.contains("namespcae"), "{err}");
        let text = "[environments.staging]\nkind = \"kubernetes\"\nrepository = \"r/x\"\napproval = \"yes\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
        let text = "[environments.dev]\nkind = \"local\"\n\nport = \"x\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn no_ferry_toml_is_a_usage_error_that_says_to_run_init() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::load(None, dir.path()).unwrap_err();
        assert!(err.is_usage());
        assert!(err.to_string().contains("ferry init"), "{err}");
        let err = Config::load(Some(&dir.path().join("nope.toml")), dir.path()).unwrap_err();
        assert!(err.is_usage());
        let text = err.to_string();
        assert!(text.contains("nope.toml does not exist"), "{text}");
        assert!(text.contains("--config"), "{text}");
    }

    #[test]
    fn the_instance_name_carries_the_project_and_its_root() {
        let mut a = parse("[image]\nname = \"My_App\"\n").unwrap();
        let mut b = a.clone();
        a.root = PathBuf::from("/srv/one");
        b.root = PathBuf::from("/srv/two");
        assert!(
            a.instance_name().starts_with("my-app-"),
            "{}",
            a.instance_name()
        );
        assert_ne!(a.instance_name(), b.instance_name());
        assert_eq!(a.instance_name(), a.clone().instance_name());
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
