//! A `kubernetes` environment (GKE in production): push → render → apply → follow the
//! rollout → verify, and plan, status for it (the mechanics are in [`crate::deploy`]).

use std::time::Duration;

use async_trait::async_trait;

use crate::config::{Config, KubernetesEnv};
use crate::deploy;
use crate::output::{Mode, Reporter};
use crate::pipeline::{self, Built, Halted, Outcome, Recorder, Request};
use crate::verify::Readiness;

pub struct Kubernetes {
    pub config: Config,
    pub name: String,
    pub settings: KubernetesEnv,
}

#[async_trait]
impl super::Environment for Kubernetes {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn preflight(
        &self,
        request: &Request,
        recorder: &mut Recorder<'_>,
    ) -> Result<(), Halted> {
        pipeline::approval_gate(&self.settings, request, recorder).await?;
        pipeline::check_manifest(&self.config, &self.settings, recorder).await
    }

    async fn deliver(
        &self,
        built: &Built,
        request: &Request,
        recorder: &mut Recorder<'_>,
    ) -> Result<(), Halted> {
        let config = &self.config;
        let env = &self.settings;
        use anyhow::Context as _;
        let env_name = recorder.summary.environment.clone();
        let pushed = recorder
            .stage("push", &format!("→ {}", env.repository), async |_s| {
                let repository: crate::registry::Repository = env.repository.parse()?;
                let options = crate::registry::PushOptions {
                    insecure: env.insecure_registry,
                    auth: env.registry_auth,
                    ..Default::default()
                };
                let pushed = crate::registry::push(&built.image, &repository, &options).await?;
                let detail = format!(
                    "{} ({} uploaded, {} already there)",
                    pushed.pinned(),
                    pushed.uploaded.len(),
                    pushed.skipped.len()
                );
                Ok((pushed, detail))
            })
            .await?;
        if let Some(image) = recorder.summary.image.as_mut() {
            image.reference = Some(pushed.pinned());
        }
        pipeline::sign_and_check(config, env, built, &pushed, recorder).await?;
        let rendered = recorder
            .stage("render", &env.manifest.display().to_string(), async |_s| {
                let rendered = pipeline::render_for(
                    config,
                    &env_name,
                    env,
                    &pushed.pinned(),
                    Some(&built.commit.hash),
                )?;
                let detail = format!(
                    "{} objects from {}",
                    rendered.objects.len(),
                    env.manifest.display()
                );
                Ok((rendered, detail))
            })
            .await?;
        let target = pipeline::target(config, env);
        let options = crate::deploy::DeployOptions {
            namespace: env.namespace.clone(),
            rollback: !request.no_rollback,
            ..Default::default()
        };
        let rollout = recorder
            .stage(
                "deploy",
                &format!("apply to {}", crate::deploy::describe_target(&target)),
                async |stage| {
                    let cluster = pipeline::connect(config, env).await?;
                    let rollout =
                        crate::deploy::deploy(&cluster, &rendered.objects, &options, &|line| {
                            stage.progress(line)
                        })
                        .await
                        .context("deploy failed")?;
                    Ok((rollout, String::new()))
                },
            )
            .await?;
        recorder.summary.rollout = Some(rollout.clone());
        // One wording for the outcome, the one `ferry deploy` prints: `Rollout`'s Display.
        let outcome = match &rollout {
            crate::deploy::Rollout::Succeeded { .. } => {
                if let Some(last) = recorder.summary.stages.last_mut() {
                    last.detail = rollout.to_string();
                }
                None
            }
            crate::deploy::Rollout::RolledBack { .. } => Some(Outcome::RolledBack),
            crate::deploy::Rollout::Failed { .. } => Some(Outcome::Failed),
        };
        if let Some(outcome) = outcome {
            let error = anyhow::anyhow!("{rollout}");
            pipeline::mark_failed(recorder, "deploy", &error, outcome);
            return Err(Halted { error });
        }
        match &env.url {
            Some(url) => {
                recorder.summary.url = Some(url.clone());
                let readiness = Readiness::from_path(config.service.ready_path.as_deref());
                recorder
                    .stage("verify", url, async |_s| {
                        let v = crate::verify::verify(
                            url,
                            &readiness,
                            &config.verify,
                            Duration::from_secs(60),
                            || Ok(()),
                        )
                        .await?;
                        Ok(((), v.describe()))
                    })
                    .await?;
            }
            None => recorder.skip("verify", "no `url` for this environment"),
        }
        Ok(())
    }

    async fn plan(
        &self,
        built: &Built,
        request: &Request,
        recorder: &mut Recorder<'_>,
    ) -> Result<(), Halted> {
        let (config, env, name) = (&self.config, &self.settings, &self.name);
        let reference = format!("{}@{}", env.repository, built.image.manifest.digest);
        recorder.skip("push", &format!("plan: would push {reference}"));
        let rendered = recorder
            .stage("render", &env.manifest.display().to_string(), async |_s| {
                let r =
                    pipeline::render_for(config, name, env, &reference, Some(&built.commit.hash))?;
                let detail = format!("{} objects", r.objects.len());
                Ok((r, detail))
            })
            .await?;
        let json = recorder.reporter().mode() == Mode::Json;
        match pipeline::connect(config, env).await {
            Ok(cluster) => {
                let diffs = recorder
                    .stage("dry-run", "server-side dry run", async |_s| {
                        let diffs =
                            deploy::dry_run(&cluster, &rendered.objects, &env.namespace).await?;
                        let detail = format!("{} objects would change", diffs.len());
                        Ok((diffs, detail))
                    })
                    .await?;
                if !json {
                    for d in diffs {
                        println!("{d}");
                    }
                }
            }
            Err(e) if request.offline => {
                recorder.skip(
                    "dry-run",
                    &format!(
                        "--offline: cluster not reached ({})",
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                );
                if !json {
                    recorder
                        .reporter()
                        .info("no dry run (--offline); the rendered manifest follows on stdout");
                    print!("{}", rendered.text);
                }
            }
            Err(e) => {
                // A plan that checked nothing must not pass a CI job.
                recorder
                    .stage("dry-run", "server-side dry run", async |_s| -> anyhow::Result<((), String)> {
                        Err(anyhow::Error::new(e).context(
                            "cannot reach the cluster for a dry run\n  \
                             hint: fix the kubeconfig or context as said below, or pass --offline to plan without a cluster",
                        ))
                    })
                    .await?;
            }
        }
        Ok(())
    }

    async fn status(&self, reporter: &Reporter) -> anyhow::Result<()> {
        let (config, k, name) = (&self.config, &self.settings, &self.name);
        let target = pipeline::target(config, k);
        let cluster = pipeline::connect(config, k).await?;
        let deployments = deploy::status(&cluster, &k.namespace).await?;
        if reporter.mode() == Mode::Json {
            let doc = serde_json::json!({
                "environment": name,
                "gke": k.gke,
                "context": target.context,
                "server": cluster.server,
                "namespace": k.namespace,
                "deployments": deployments,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(());
        }
        println!("{}", where_it_runs(name, k, &target, &cluster.server));
        println!(
            "{:<16} {:<9} {:<8} {:<14} IMAGE",
            "DEPLOYMENT", "READY", "REVISION", "COMMIT"
        );
        for d in deployments {
            println!(
                "{:<16} {:<9} {:<8} {:<14} {}",
                d.name,
                format!("{}/{}", d.ready, d.desired),
                d.revision.unwrap_or_default(),
                d.commit
                    .map(|c| c.chars().take(12).collect::<String>())
                    .unwrap_or_default(),
                d.image
            );
        }
        Ok(())
    }

    async fn stop(&self, _reporter: &Reporter) -> anyhow::Result<()> {
        anyhow::bail!(
            "`ferry stop` stops a local instance; `{}` is a kubernetes environment\n  \
             hint: scale or delete its Deployment with kubectl, or run `ferry stop` for the local one",
            self.name
        )
    }
}

/// `staging: GKE cluster ferry-staging (project ferry-staging, location europe-west1), context
/// gke_…, namespace hello` — or the server when there is no GKE cluster.
fn where_it_runs(name: &str, env: &KubernetesEnv, target: &deploy::Target, server: &str) -> String {
    let cluster = match &env.gke {
        Some(gke) => gke.to_string(),
        None => server.to_string(),
    };
    let context = match &target.context {
        Some(c) => format!("context {c}"),
        None => "the current context".to_string(),
    };
    format!("{name}: {cluster}, {context}, namespace {}", env.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Environment, GkeCluster};

    #[test]
    fn status_names_the_gke_cluster_its_context_and_namespace() {
        let config = Config::parse(
            include_str!("../../../../ferry.toml"),
            std::path::Path::new("/repo/ferry.toml"),
        )
        .unwrap();
        let Environment::Kubernetes(env) = config.environment(Some("staging")).unwrap().1 else {
            panic!("staging is kubernetes");
        };
        let target = crate::pipeline::target(&config, &env);
        assert_eq!(
            where_it_runs("staging", &env, &target, "https://34.0.0.1"),
            "staging: GKE cluster ferry-staging (project ferry-staging, location europe-west1), \
             context gke_ferry-staging_europe-west1_ferry-staging, namespace hello"
        );
        let plain = KubernetesEnv {
            gke: None::<GkeCluster>,
            ..*env
        };
        assert_eq!(
            where_it_runs(
                "e2e",
                &plain,
                &deploy::Target::default(),
                "http://127.0.0.1:1"
            ),
            "e2e: http://127.0.0.1:1, the current context, namespace hello"
        );
    }
}
