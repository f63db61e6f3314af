//! `ferry init`'s templates: a commented `ferry.toml`, a `k8s.yml` made from the service's
//! settings, and a CircleCI pipeline. Pure text from a [`Plan`]; writing files is the command's.

use std::fmt::Write as _;

/// What `ferry init` knows about the service it writes files for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub package: String,
    pub binary: String,
    /// Whether the project has other binaries (then ferry.toml must name this one).
    pub several_binaries: bool,
    pub port: u16,
    pub ready_path: Option<String>,
    pub health_path: Option<String>,
}

impl Plan {
    /// A name fit for Kubernetes objects and labels: lowercase letters, digits and `-`.
    pub fn object_name(&self) -> String {
        crate::config::dns_label(&self.package)
    }
}

/// The commented `ferry.toml`.
pub fn ferry_toml(plan: &Plan) -> String {
    let Plan {
        package,
        binary,
        port,
        ..
    } = plan;
    let name = plan.object_name();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# ferry.toml: how ferry delivers `{package}`. Every key is optional unless it says so;\n\
         # the commented lines show the defaults and the other choices.\n\
         #   ferry ship                  test, build the image, run it here, verify it answers\n\
         #   ferry ship --env production the same to a Kubernetes cluster (see the end of this file)\n\
         \n\
         default_environment = \"local\"\n\
         \n\
         [service]"
    );
    if plan.several_binaries {
        let _ = writeln!(
            t,
            "package = \"{package}\"       # the project has several binaries: this one is delivered\nbinary = \"{binary}\""
        );
    } else {
        let _ = writeln!(
            t,
            "# package = \"{package}\"     # default: the package of the project's only binary\n# binary = \"{binary}\""
        );
    }
    let _ = writeln!(
        t,
        "port = {port}                   # the port the service listens on in its container\n\
         # port_env = \"PORT\"          # the variable it reads that port from (\"\" for none)\n\
         # args = [\"--port\", \"${{PORT}}\"]  # command-line arguments; ${{PORT}} expands to the port\n\
         # env = {{ RUST_LOG = \"info\" }}   # variables for the service, in the image and locally"
    );
    match &plan.ready_path {
        Some(p) => {
            let _ = writeln!(t, "ready_path = \"{p}\"");
        }
        None => {
            let _ = writeln!(
                t,
                "# ready_path = \"/readyz\"     # readiness; without it, a TCP connect to the port"
            );
        }
    }
    match &plan.health_path {
        Some(p) => {
            let _ = writeln!(t, "health_path = \"{p}\"");
        }
        None => {
            let _ = writeln!(
                t,
                "# health_path = \"/healthz\"   # liveness, used by k8s.yml's livenessProbe"
            );
        }
    }
    let _ = writeln!(
        t,
        "# user = 65532                # the non-root user and group the image runs as\n\
         \n\
         [image]\n\
         # name = \"{package}\"          # default: the package\n\
         # tag = \"commit\"              # the full commit hash; or \"timestamp\"\n\
         # files = [{{ from = \"static\", to = \"/srv/static\" }}]  # copied into the image\n\
         # ca_certificates = true      # a CA bundle, for a service that calls HTTPS APIs\n\
         \n\
         # Checks run after the local run, and after each rollout of an environment with a `url`.\n\
         # Without any, ferry checks readiness only.\n\
         # [[verify]]\n\
         # path = \"/\"\n\
         # status = 200                # the default\n\
         # contains = \"some text the page must hold\"\n\
         \n\
         # [test]\n\
         # command = [\"cargo\", \"test\", \"--locked\", \"-p\", \"{package}\"]   # the default\n\
         # threads = 8                  # tests at once per test binary (RUST_TEST_THREADS); default: one per core\n\
         \n\
         # Runs the image on this machine: podman, then docker, then the bare binary.\n\
         [environments.local]\n\
         kind = \"local\"\n\
         # runtime = \"auto\"            # or \"podman\", \"docker\", \"binary\"\n\
         # port = 8000                 # the host port (default: 8000 when free, else any)\n\
         \n\
         # Kubernetes environments (GKE here). Fill them in and uncomment them, then:\n\
         #   ferry plan --env staging      what would change, nothing applied\n\
         #   ferry ship --env staging      push, apply k8s.yml, follow the rollout, roll back on failure\n\
         #   ferry promote --from staging --to production   production gets the image staging\n\
         #                                 runs, by digest: nothing is rebuilt (what CI does)\n\
         # [environments.staging]\n\
         # kind = \"kubernetes\"\n\
         # repository = \"europe-west1-docker.pkg.dev/STAGING_PROJECT/REPOSITORY/{name}\"\n\
         # gke = {{ project = \"STAGING_PROJECT\", location = \"europe-west1\", cluster = \"CLUSTER\" }}\n\
         # namespace = \"{name}\"\n\
         # manifest = \"k8s.yml\"\n\
         # vars = {{ REPLICAS = \"1\" }}\n\
         #\n\
         # [environments.production]\n\
         # kind = \"kubernetes\"\n\
         # repository = \"europe-west1-docker.pkg.dev/PROJECT/REPOSITORY/{name}\"\n\
         # gke = {{ project = \"PROJECT\", location = \"europe-west1\", cluster = \"CLUSTER\" }}\n\
         # namespace = \"{name}\"\n\
         # manifest = \"k8s.yml\"\n\
         # vars = {{ REPLICAS = \"2\" }}\n\
         # url = \"https://{name}.example.com\"   # verified after each rollout"
    );
    t
}

/// A `k8s.yml` for the service: a Deployment pinned by ferry to the pushed digest, with
/// probes on the service's paths (TCP when it has none), the restricted security context
/// and a LoadBalancer Service.
pub fn k8s_yml(plan: &Plan) -> String {
    let name = plan.object_name();
    let port = plan.port;
    let probe = |path: &Option<String>| match path {
        Some(p) => format!("httpGet:\n              path: {p}\n              port: http"),
        None => "tcpSocket:\n              port: http".to_string(),
    };
    let readiness = probe(&plan.ready_path);
    let liveness = probe(if plan.health_path.is_some() {
        &plan.health_path
    } else {
        &plan.ready_path
    });
    format!(
        "# `{package}` on Kubernetes, written by `ferry init`. ferry renders it at each deploy:\n\
         #   $${{IMAGE}}        the pushed image, pinned by digest (REPO@sha256:…)\n\
         #   $${{COMMIT}}       the full commit hash being delivered\n\
         #   $${{ENVIRONMENT}}  the ferry.toml environment (staging, production, …)\n\
         #   $${{NAMESPACE}}    the environment's namespace\n\
         #   $${{REPLICAS}}     from the environment's `vars`\n\
         # An undefined variable is an error, never an empty string. Write $$$$ for a literal $$.\n\
         # The port ({port}), the service's arguments and variables are in the image (ferry.toml).\n\
         # To run on GKE's Arm nodes, add under the pod spec:\n\
         #   tolerations: [{{ key: kubernetes.io/arch, operator: Equal, value: arm64, effect: NoSchedule }}]\n\
         apiVersion: v1\n\
         kind: Service\n\
         metadata:\n\
         \x20 name: {name}\n\
         \x20 namespace: ${{NAMESPACE}}\n\
         \x20 labels:\n\
         \x20   app.kubernetes.io/name: {name}\n\
         \x20   app.kubernetes.io/managed-by: ferry\n\
         spec:\n\
         \x20 type: LoadBalancer\n\
         \x20 selector:\n\
         \x20   app.kubernetes.io/name: {name}\n\
         \x20 ports:\n\
         \x20   - name: http\n\
         \x20     port: 80\n\
         \x20     targetPort: http\n\
         \x20     protocol: TCP\n\
         ---\n\
         apiVersion: apps/v1\n\
         kind: Deployment\n\
         metadata:\n\
         \x20 name: {name}\n\
         \x20 namespace: ${{NAMESPACE}}\n\
         \x20 labels:\n\
         \x20   app.kubernetes.io/name: {name}\n\
         \x20   app.kubernetes.io/managed-by: ferry\n\
         \x20   ferry.dev/environment: ${{ENVIRONMENT}}\n\
         \x20 annotations:\n\
         \x20   ferry.dev/commit: \"${{COMMIT}}\"\n\
         spec:\n\
         \x20 replicas: ${{REPLICAS}}\n\
         \x20 revisionHistoryLimit: 5\n\
         \x20 progressDeadlineSeconds: 300\n\
         \x20 selector:\n\
         \x20   matchLabels:\n\
         \x20     app.kubernetes.io/name: {name}\n\
         \x20 strategy:\n\
         \x20   type: RollingUpdate\n\
         \x20   rollingUpdate:\n\
         \x20     maxUnavailable: 0\n\
         \x20     maxSurge: 1\n\
         \x20 template:\n\
         \x20   metadata:\n\
         \x20     labels:\n\
         \x20       app.kubernetes.io/name: {name}\n\
         \x20     annotations:\n\
         \x20       ferry.dev/commit: \"${{COMMIT}}\"\n\
         \x20   spec:\n\
         \x20     automountServiceAccountToken: false\n\
         \x20     enableServiceLinks: false\n\
         \x20     terminationGracePeriodSeconds: 30\n\
         \x20     securityContext:\n\
         \x20       runAsNonRoot: true\n\
         \x20       runAsUser: 65532\n\
         \x20       runAsGroup: 65532\n\
         \x20       fsGroup: 65532\n\
         \x20       seccompProfile:\n\
         \x20         type: RuntimeDefault\n\
         \x20     containers:\n\
         \x20       - name: {name}\n\
         \x20         image: ${{IMAGE}}\n\
         \x20         ports:\n\
         \x20           - name: http\n\
         \x20             containerPort: {port}\n\
         \x20             protocol: TCP\n\
         \x20         readinessProbe:\n\
         \x20           {readiness}\n\
         \x20           periodSeconds: 2\n\
         \x20           failureThreshold: 3\n\
         \x20         livenessProbe:\n\
         \x20           {liveness}\n\
         \x20           initialDelaySeconds: 5\n\
         \x20           periodSeconds: 10\n\
         \x20           failureThreshold: 3\n\
         \x20         resources:\n\
         \x20           requests:\n\
         \x20             cpu: 50m\n\
         \x20             memory: 32Mi\n\
         \x20           limits:\n\
         \x20             memory: 128Mi\n\
         \x20         securityContext:\n\
         \x20           allowPrivilegeEscalation: false\n\
         \x20           readOnlyRootFilesystem: true\n\
         \x20           privileged: false\n\
         \x20           capabilities:\n\
         \x20             drop: [\"ALL\"]\n",
        package = plan.package,
    )
}

/// A CircleCI pipeline shaped like ferry's own: test and install ferry once on every branch;
/// on master ship staging with that binary, wait for an approval, then promote to production
/// exactly the image staging runs, in a job with no Rust toolchain.
pub fn circleci(plan: &Plan) -> String {
    let _ = plan;
    "# CircleCI pipeline written by `ferry init --ci circleci`.\n\
     # Every branch: the tests, and ferry installed once as a static binary handed to the\n\
     # deploy jobs. master: ship to staging, wait for an approval, then promote to production\n\
     # the image staging runs, by digest: nothing is rebuilt, and the production job has no\n\
     # Rust toolchain.\n\
     # ferry.toml needs both environments (the commented [environments.staging] and\n\
     # [environments.production] it came with). Each context gives its job that environment's\n\
     # credentials (e.g. GCP OIDC); production's must also read staging: pull from staging's\n\
     # repository, and in its namespace the Role `ferry rbac --env staging --promote-source`\n\
     # prints.\n\
     version: 2.1\n\
     \n\
     executors:\n\
     \x20 rust:\n\
     \x20   docker:\n\
     \x20     - image: cimg/rust:1.95\n\
     \x20   resource_class: large\n\
     \x20 # No Rust: the production job runs the ferry the test job installed, and builds nothing.\n\
     \x20 deploy:\n\
     \x20   docker:\n\
     \x20     - image: cimg/base:2026.10\n\
     \n\
     jobs:\n\
     \x20 test:\n\
     \x20   executor: rust\n\
     \x20   steps:\n\
     \x20     - checkout\n\
     \x20     - run: cargo test --locked\n\
     \x20     - run:\n\
     \x20         name: Install ferry, once, as a static binary (the deploy jobs run this one)\n\
     \x20         command: |\n\
     \x20           RUSTFLAGS='-C target-feature=+crt-static' cargo install --locked --root /tmp/workspace \\\n\
     \x20             --target x86_64-unknown-linux-gnu --git https://github.com/ferry-dev/ferry ferry\n\
     \x20           /tmp/workspace/bin/ferry --version\n\
     \x20     - run: /tmp/workspace/bin/ferry build\n\
     \x20     - persist_to_workspace:\n\
     \x20         root: /tmp/workspace\n\
     \x20         paths:\n\
     \x20           - bin/ferry\n\
     \x20 # Builds the service's image (ferry compiles it), pushes it to staging and deploys it.\n\
     \x20 ship-staging:\n\
     \x20   executor: rust\n\
     \x20   steps:\n\
     \x20     - checkout\n\
     \x20     - attach_workspace:\n\
     \x20         at: /tmp/workspace\n\
     \x20     # On GKE, where gcloud and gke-gcloud-auth-plugin are installed and logged in, first:\n\
     \x20     # - run: /tmp/workspace/bin/ferry credentials --env staging\n\
     \x20     - run: /tmp/workspace/bin/ferry ship --env staging --skip-tests\n\
     \x20 # Deploys to production exactly what staging runs: no cargo, nothing built.\n\
     \x20 promote-production:\n\
     \x20   executor: deploy\n\
     \x20   steps:\n\
     \x20     - checkout\n\
     \x20     - attach_workspace:\n\
     \x20         at: /tmp/workspace\n\
     \x20     # On GKE (gcloud as above), both clusters' kubeconfig contexts first:\n\
     \x20     # - run: /tmp/workspace/bin/ferry credentials --env staging\n\
     \x20     # - run: /tmp/workspace/bin/ferry credentials --env production\n\
     \x20     - run: /tmp/workspace/bin/ferry promote --from staging --to production\n\
     \n\
     workflows:\n\
     \x20 deliver:\n\
     \x20   jobs:\n\
     \x20     - test\n\
     \x20     - ship-staging:\n\
     \x20         context: staging\n\
     \x20         requires: [test]\n\
     \x20         filters:\n\
     \x20           branches:\n\
     \x20             only: master\n\
     \x20     - approve-production:\n\
     \x20         type: approval\n\
     \x20         requires: [ship-staging]\n\
     \x20         filters:\n\
     \x20           branches:\n\
     \x20             only: master\n\
     \x20     - promote-production:\n\
     \x20         context: production\n\
     \x20         requires: [approve-production]\n\
     \x20         filters:\n\
     \x20           branches:\n\
     \x20             only: master\n"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            package: "my_api".into(),
            binary: "my-api".into(),
            several_binaries: false,
            port: 3000,
            ready_path: Some("/ready".into()),
            health_path: None,
        }
    }

    #[test]
    fn the_ferry_toml_parses_and_says_what_it_was_told() {
        let text = ferry_toml(&plan());
        let config = crate::config::Config::parse(&text, std::path::Path::new("/p/ferry.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.service.port, 3000);
        assert_eq!(config.service.ready_path.as_deref(), Some("/ready"));
        assert_eq!(
            config.service.package, "",
            "one binary: derived, not written"
        );
        assert_eq!(config.environment_names(), ["local"]);
        let mut several = plan();
        several.several_binaries = true;
        let config = crate::config::Config::parse(
            &ferry_toml(&several),
            std::path::Path::new("/p/ferry.toml"),
        )
        .unwrap();
        assert_eq!(config.service.package, "my_api");
        assert_eq!(config.service.binary, "my-api");
    }

    #[test]
    fn the_commented_kubernetes_example_parses_once_uncommented() {
        let text = ferry_toml(&plan());
        let start = text.find("# [environments.staging]").unwrap();
        let uncommented: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let whole = format!("{}\n{uncommented}\n", &text[..start]);
        let config = crate::config::Config::parse(&whole, std::path::Path::new("/p/ferry.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{whole}"));
        for name in ["staging", "production"] {
            assert!(
                matches!(
                    config.environment(Some(name)).unwrap().1,
                    crate::config::Environment::Kubernetes(_)
                ),
                "{name}"
            );
        }
    }

    /// The generated pipeline's jobs, and its one workflow's entries.
    fn circleci_config() -> (serde_json::Value, Vec<serde_json::Value>) {
        let text = circleci(&plan());
        let config: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let workflow = config["workflows"]["deliver"]["jobs"]
            .as_array()
            .unwrap_or_else(|| panic!("no workflows.deliver.jobs in\n{text}"))
            .clone();
        (config["jobs"].clone(), workflow)
    }

    /// A job's `run` commands, one-line and `command:` forms alike.
    fn runs(job: &serde_json::Value) -> Vec<String> {
        job["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("no steps in {job}"))
            .iter()
            .filter_map(|step| match &step["run"] {
                serde_json::Value::String(c) => Some(c.clone()),
                serde_json::Value::Object(o) => o["command"].as_str().map(str::to_string),
                _ => None,
            })
            .collect()
    }

    /// A job's entry in the workflow: its `requires`, `context`, `filters`.
    fn entry<'a>(workflow: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
        workflow
            .iter()
            .find_map(|e| e.get(name))
            .unwrap_or_else(|| panic!("no {name} in the workflow: {workflow:?}"))
    }

    #[test]
    fn the_circleci_pipeline_installs_ferry_once_ships_staging_then_promotes_it() {
        let (jobs, workflow) = circleci_config();
        let installing: Vec<&str> = jobs
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, job)| runs(job).iter().any(|r| r.contains("cargo install")))
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(installing, ["test"], "ferry is installed once");
        assert!(
            runs(&jobs["test"]).iter().any(|r| r.contains("crt-static")),
            "static, so the Rust-less production image runs it"
        );
        assert!(
            jobs["test"]["steps"]
                .to_string()
                .contains("persist_to_workspace")
        );

        let staging = runs(&jobs["ship-staging"]);
        assert!(
            staging.contains(&"/tmp/workspace/bin/ferry ship --env staging --skip-tests".into()),
            "{staging:?}"
        );
        assert_eq!(entry(&workflow, "ship-staging")["context"], "staging");
        assert_eq!(
            entry(&workflow, "ship-staging")["requires"],
            serde_json::json!(["test"])
        );

        let production = runs(&jobs["promote-production"]);
        assert_eq!(
            production,
            ["/tmp/workspace/bin/ferry promote --from staging --to production"],
            "the production job promotes, and builds and ships nothing"
        );
        assert_eq!(jobs["promote-production"]["executor"], "deploy");
        assert!(
            jobs["promote-production"]["steps"]
                .to_string()
                .contains("attach_workspace")
        );

        // staging, then the approval, then production with production's context.
        let approve = entry(&workflow, "approve-production");
        assert_eq!(approve["type"], "approval");
        assert_eq!(approve["requires"], serde_json::json!(["ship-staging"]));
        let promote = entry(&workflow, "promote-production");
        assert_eq!(
            promote["requires"],
            serde_json::json!(["approve-production"])
        );
        assert_eq!(promote["context"], "production");
        for name in ["ship-staging", "approve-production", "promote-production"] {
            assert_eq!(
                entry(&workflow, name)["filters"]["branches"]["only"],
                "master",
                "{name} runs on master only"
            );
        }
    }

    #[test]
    fn the_k8s_yml_renders_with_the_port_probes_and_security_context() {
        let text = k8s_yml(&plan());
        let vars: std::collections::BTreeMap<String, String> = [
            ("IMAGE", "r.example/my-api@sha256:0"),
            ("COMMIT", "abc"),
            ("ENVIRONMENT", "production"),
            ("NAMESPACE", "my-api"),
            ("REPLICAS", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rendered = crate::render::render(&text, std::path::Path::new("k8s.yml"), &vars)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(rendered.objects.len(), 2);
        let deployment = &rendered.objects[1];
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(deployment["metadata"]["name"], "my-api");
        assert_eq!(container["ports"][0]["containerPort"], 3000);
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/ready",
            "no health_path: liveness uses the ready path"
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
            true
        );
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

        let mut healthy = plan();
        healthy.health_path = Some("/livez".into());
        let rendered =
            crate::render::render(&k8s_yml(&healthy), std::path::Path::new("k8s.yml"), &vars)
                .unwrap();
        let container = &rendered.objects[1]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/livez",
            "health_path is used"
        );
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");

        let mut bare = plan();
        bare.ready_path = None;
        let text = k8s_yml(&bare);
        let rendered =
            crate::render::render(&text, std::path::Path::new("k8s.yml"), &vars).unwrap();
        let container = &rendered.objects[1]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["readinessProbe"]["tcpSocket"]["port"], "http");
        assert_eq!(container["livenessProbe"]["tcpSocket"]["port"], "http");
    }
}
