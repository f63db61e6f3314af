//! The `local` environment: run the built image on this machine and prove it serves
//! (the mechanics of running it are in [`crate::local`]).

use std::time::Duration;

use async_trait::async_trait;

use super::resolve_secrets;
use crate::config::{Config, LocalEnv};
use crate::output::{Mode, Reporter};
use crate::pipeline::{Built, Halted, Recorder, Request, local_state_dir};
use crate::verify::Readiness;

pub struct LocalEnvironment {
    pub config: Config,
    pub name: String,
    pub settings: LocalEnv,
    /// Resolved by `preflight`, before anything is built.
    pub secrets: std::sync::Mutex<crate::secrets::Resolved>,
}

impl LocalEnvironment {
    fn readiness(&self) -> Readiness {
        Readiness::from_path(self.config.service.ready_path.as_deref())
    }

    fn run_spec(&self, built: &Built, secrets: crate::secrets::Resolved) -> crate::local::RunSpec {
        let config = &self.config;
        crate::local::RunSpec {
            layout: built.image.layout.clone(),
            tag: built.image.tag.clone(),
            instance: config.instance_name(),
            binary_in_image: config.service.binary.clone(),
            container_port: config.service.port,
            host_port: self.settings.port,
            readiness: self.readiness(),
            service: config.service.clone(),
            image_files: config.image.files.iter().map(|f| f.to.clone()).collect(),
            secrets,
            runtime: self.settings.runtime,
            state_dir: local_state_dir(config),
        }
    }
}

#[async_trait]
impl super::Environment for LocalEnvironment {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    async fn preflight(&self, _: &Request, recorder: &mut Recorder<'_>) -> Result<(), Halted> {
        let resolved = resolve_secrets(&self.settings.secrets, recorder).await?;
        if let Ok(mut slot) = self.secrets.lock() {
            *slot = resolved;
        }
        Ok(())
    }

    async fn deliver(
        &self,
        built: &Built,
        _request: &Request,
        recorder: &mut Recorder<'_>,
    ) -> Result<(), Halted> {
        let secrets = self.secrets.lock().map(|s| s.clone()).unwrap_or_default();
        let spec = self.run_spec(built, secrets);
        let running = recorder
            .stage("run", "start the image on this machine", async |_stage| {
                let running = crate::local::start(&spec).await?;
                let detail = format!("{} via {} ({})", running.url, running.runtime, running.id);
                Ok((running, detail))
            })
            .await?;
        recorder.summary.url = Some(running.url.clone());
        let checks = self.config.verify.clone();
        let state_dir = spec.state_dir.clone();
        recorder
            .stage("verify", &verify_what(&checks), async |_stage| {
                let result = crate::verify::verify(
                    &running.url,
                    &spec.readiness,
                    &checks,
                    Duration::from_secs(10),
                    || Ok(()),
                )
                .await;
                match result {
                    Ok(v) => Ok(((), v.describe())),
                    Err(e) => {
                        // A service that does not verify is not left serving.
                        let log = crate::local::log_tail(&running).await;
                        let _ = crate::local::stop(&state_dir).await;
                        Err(anyhow::Error::new(e).context(format!(
                            "the instance ({} runtime) did not verify and was stopped; its last log lines:\n{log}",
                            running.runtime
                        )))
                    }
                }
            })
            .await?;
        Ok(())
    }

    async fn plan(
        &self,
        _built: &Built,
        _request: &Request,
        recorder: &mut Recorder<'_>,
    ) -> Result<(), Halted> {
        recorder.skip("render", "local environment: nothing to render");
        Ok(())
    }

    async fn status(&self, reporter: &Reporter) -> anyhow::Result<()> {
        let dir = local_state_dir(&self.config);
        let name = &self.name;
        match crate::local::status(&dir, &self.readiness()).await {
            Some((running, serving)) => {
                if reporter.mode() == Mode::Json {
                    println!(
                        "{}",
                        serde_json::json!({"environment": name, "instance": running, "serving": serving})
                    );
                } else {
                    println!(
                        "{name}: {} via {} ({}) — {}",
                        running.url,
                        running.runtime,
                        running.id,
                        if serving { "serving" } else { "NOT serving" }
                    );
                }
            }
            None => println!("{name}: nothing running (start it with `ferry ship`)"),
        }
        Ok(())
    }

    async fn stop(&self, reporter: &Reporter) -> anyhow::Result<()> {
        let state_dir = local_state_dir(&self.config);
        match crate::local::stop(&state_dir).await? {
            Some(running) => reporter.info(format!(
                "stopped {} ({}, {})",
                running.url, running.runtime, running.id
            )),
            None => reporter.info("nothing is running locally"),
        }
        Ok(())
    }

    fn declared_secrets(&self) -> &std::collections::BTreeMap<String, String> {
        &self.settings.secrets
    }

    fn stop_hint(&self) -> Option<&'static str> {
        Some("stop it with: ferry stop")
    }

    async fn rbac(&self, _user: &str, _access: crate::rbac::Access) -> anyhow::Result<String> {
        anyhow::bail!(
            "`{}` is a local environment: nothing to grant\n  hint: name a kubernetes environment with --env",
            self.name
        )
    }

    async fn lock(&self, _message: &str, _reporter: &Reporter) -> anyhow::Result<()> {
        Err(self.not_supported("lock"))
    }

    async fn unlock(&self, _force: bool, _reporter: &Reporter) -> anyhow::Result<()> {
        Err(self.not_supported("unlock"))
    }

    async fn history(&self, _reporter: &Reporter) -> anyhow::Result<()> {
        Err(self.not_supported("history"))
    }

    async fn rollback(
        &self,
        _request: &super::RollbackRequest,
        _reporter: &Reporter,
    ) -> anyhow::Result<()> {
        Err(self.not_supported("rollback"))
    }

    async fn running_image(&self, _commit: Option<&str>) -> anyhow::Result<super::RunningImage> {
        Err(self.not_supported("promote"))
    }

    async fn promote(
        &self,
        _source: &super::RunningImage,
        _request: &super::PromoteRequest,
        _reporter: &Reporter,
    ) -> anyhow::Result<()> {
        Err(self.not_supported("promote"))
    }

    fn profile(&self) -> crate::compile::Profile {
        self.settings.profile
    }
}

impl LocalEnvironment {
    fn not_supported(&self, command: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "`ferry {command}` is not supported for a local environment (`{}` is local: one instance on this machine, no revisions and no deploy lock)\n  \
             hint: pick a kubernetes environment with --env NAME",
            self.name
        )
    }
}

/// `readiness and 2 [[verify]] checks`, for the verify stage's line.
pub fn verify_what(checks: &[crate::config::Check]) -> String {
    match checks {
        [] => "readiness (no [[verify]] checks)".to_string(),
        [one] => format!("readiness and GET {}", one.path),
        many => format!("readiness and {} [[verify]] checks", many.len()),
    }
}
