//! A `kubernetes` environment (GKE in production): push → render → apply → follow the
//! rollout → verify, and plan, status for it (the mechanics are in [`crate::deploy`]).

use std::time::Duration;

use async_trait::async_trait;

use anyhow::Context as _;

use super::{LockRequest, PromoteRequest, RollbackRequest, RunningImage};
use crate::config::{Config, KubernetesEnv};
use crate::deploy::{self, history, lease, rollback};
use crate::output::{Mode, Reporter};
use crate::pipeline::{self, Built, Halted, Outcome, Recorder, Request};
use crate::verify::Readiness;

pub struct Kubernetes {
    pub config: Config,
    pub name: String,
    pub settings: KubernetesEnv,
    /// Resolved by `preflight`, before anything is built.
    pub secrets: std::sync::Mutex<crate::secrets::Resolved>,
}

impl Kubernetes {
    /// The settings the manifest is rendered with: `${SECRETS}` names the environment's
    /// Secret when it declares secrets.
    fn render_settings(&self) -> KubernetesEnv {
        let mut settings = self.settings.clone();
        if !settings.secrets.is_empty() {
            settings
                .vars
                .insert("SECRETS".into(), super::secret_name(&self.config));
        }
        settings
    }

    /// Resolves the environment's secrets once (a `secrets` stage when it declares any).
    async fn resolve_secrets(&self, recorder: &mut Recorder<'_>) -> Result<(), Halted> {
        let resolved = super::resolve_secrets(&self.settings.secrets, recorder).await?;
        if let Ok(mut slot) = self.secrets.lock() {
            *slot = resolved;
        }
        Ok(())
    }

    fn resolved_secrets(&self) -> crate::secrets::Resolved {
        self.secrets.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl super::Environment for Kubernetes {
    fn declared_secrets(&self) -> &std::collections::BTreeMap<String, String> {
        &self.settings.secrets
    }

    fn manifest_inputs(&self) -> super::ManifestInputs {
        let settings = self.render_settings();
        super::ManifestInputs {
            namespace: settings.namespace,
            manifest: settings.manifest,
            vars: settings.vars,
        }
    }

    fn cluster(&self) -> Option<super::ClusterSettings> {
        Some(super::ClusterSettings {
            target: crate::pipeline::target(&self.config, &self.settings),
            namespace: self.settings.namespace.clone(),
            gke: self.settings.gke.clone(),
            fail_fast: self.settings.fail_fast,
            require_digest: self.settings.require_digest,
        })
    }

    fn registry(&self) -> Option<super::RegistrySettings> {
        Some(super::RegistrySettings {
            repository: self.settings.repository.clone(),
            insecure: self.settings.insecure_registry,
            auth: self.settings.registry_auth,
        })
    }

    async fn check_signature(&self, reference: &str, reporter: &Reporter) -> anyhow::Result<()> {
        crate::pipeline::check_required_signature(
            &self.config,
            &self.settings,
            reference,
            reporter,
            "refusing to deploy an image whose signature does not verify; nothing was applied",
        )
        .await
    }

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
        pipeline::check_manifest(&self.config, &self.render_settings(), recorder).await?;
        self.resolve_secrets(recorder).await
    }

    async fn deliver(
        &self,
        built: &Built,
        request: &Request,
        recorder: &mut Recorder<'_>,
    ) -> Result<(), Halted> {
        let config = &self.config;
        let render_settings = self.render_settings();
        let env = &render_settings;
        let secrets = self.resolved_secrets();
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
                let mut rendered = pipeline::render_for(
                    config,
                    &env_name,
                    env,
                    &pushed.pinned(),
                    Some(&built.commit.hash),
                )?;
                let mut detail = format!(
                    "{} objects from {}",
                    rendered.objects.len(),
                    env.manifest.display()
                );
                if !secrets.is_empty() {
                    add_secret(config, env, &secrets, &mut rendered.objects);
                    detail.push_str(&format!(
                        ", and Secret {} ({})",
                        super::secret_name(config),
                        secrets.keys().collect::<Vec<_>>().join(", ")
                    ));
                }
                Ok((rendered, detail))
            })
            .await?;
        let target = pipeline::target(config, env);
        let options = crate::deploy::DeployOptions {
            namespace: env.namespace.clone(),
            rollback: !request.no_rollback,
            fail_fast: env.fail_fast,
            applyset: Some(deploy::applyset::ApplySet::new(
                &config.image.name,
                &env.namespace,
            )),
            ..Default::default()
        };
        let rollout = recorder
            .stage(
                "deploy",
                &format!("apply to {}", crate::deploy::describe_target(&target)),
                async |stage| {
                    let cluster = pipeline::connect(config, &self.name, env).await?;
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
        self.record_rollout(
            &rendered.objects,
            &rollout,
            request.operation.unwrap_or("ship"),
            &pushed.pinned(),
            Some(&built.commit.hash),
        )
        .await;
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
        let render_settings = self.render_settings();
        let (config, env, name) = (&self.config, &render_settings, &self.name);
        // A plan resolves the secrets too: a missing one fails it, as it would fail the ship.
        self.resolve_secrets(recorder).await?;
        let secrets = self.resolved_secrets();
        let reference = format!("{}@{}", env.repository, built.image.manifest.digest);
        recorder.skip("push", &format!("plan: would push {reference}"));
        let rendered = recorder
            .stage("render", &env.manifest.display().to_string(), async |_s| {
                let mut r =
                    pipeline::render_for(config, name, env, &reference, Some(&built.commit.hash))?;
                let detail = format!("{} objects", r.objects.len());
                if !secrets.is_empty() {
                    // The dry run sees the Secret (values included) like the apply would;
                    // the diff below never shows its data.
                    add_secret(config, env, &secrets, &mut r.objects);
                }
                Ok((r, detail))
            })
            .await?;
        let json = recorder.reporter().mode() == Mode::Json;
        match pipeline::connect(config, &self.name, env).await {
            Ok(cluster) => {
                let set = deploy::applyset::ApplySet::new(&config.image.name, &env.namespace);
                let (diffs, pruned) = recorder
                    .stage("dry-run", "server-side dry run", async |_s| {
                        let mut objects = rendered.objects.clone();
                        set.label(&mut objects);
                        let diffs = deploy::dry_run(&cluster, &objects, &env.namespace).await?;
                        let pruned = deploy::would_prune(&cluster, &set, &objects).await?;
                        let mut detail = format!("{} objects would change", diffs.len());
                        if !pruned.is_empty() {
                            detail.push_str(&format!(
                                ", {} would be deleted ({})",
                                pruned.len(),
                                pruned
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                        Ok(((diffs, pruned), detail))
                    })
                    .await?;
                if !json {
                    for d in diffs {
                        println!("{}", secrets.redact(&d.to_string()));
                    }
                    for member in pruned {
                        println!(
                            "--- live {member}\n+++ deleted: no longer in the manifest (ApplySet {})",
                            set.parent
                        );
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
        let cluster = pipeline::connect(config, name, k).await?;
        let deployments = deploy::status(&cluster, &k.namespace).await?;
        // Best effort: a cluster that will not show its Leases still shows its Deployments.
        let lock = lease::current(&cluster, &k.namespace, &self.lease_name())
            .await
            .ok()
            .flatten();
        if reporter.mode() == Mode::Json {
            let doc = serde_json::json!({
                "environment": name,
                "gke": k.gke,
                "context": target.context,
                "server": cluster.server,
                "namespace": k.namespace,
                "deployments": deployments,
                "lock": lock,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(());
        }
        println!("{}", where_it_runs(name, k, &target, &cluster.server));
        if let Some(lock) = &lock {
            println!("deploy lock: {}", lock.describe());
        }
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

    async fn rbac(&self, user: &str, access: crate::rbac::Access) -> anyhow::Result<String> {
        let settings = self.render_settings();
        if access == crate::rbac::Access::PromoteSource {
            let name = format!("ferry-promote-source-{}", self.name);
            let history = history::configmap_name(&self.config.image.name);
            let role = crate::rbac::promote_source_role(&name, &settings.namespace, &history);
            let binding = crate::rbac::binding(&name, &settings.namespace, user);
            return Ok(format!(
                "# Read-only, in namespace {ns}: what `ferry promote --from {env}` reads there (the history,\n\
                 # the Deployments and their ReplicaSets), for the identity of the environment promoted to\n\
                 # (printed by `ferry rbac --env {env} --promote-source`; apply it with `kubectl apply -f -`).\n---\n{}---\n{}",
                serde_saphyr::to_string(&role).unwrap_or_default(),
                serde_saphyr::to_string(&binding).unwrap_or_default(),
                ns = settings.namespace,
                env = self.name,
            ));
        }
        let stand_in = "registry.invalid/stand-in@sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let rendered = pipeline::render_for(
            &self.config,
            &self.name,
            &settings,
            stand_in,
            Some(&"0".repeat(40)),
        )?;
        let name = format!("ferry-deploy-{}", self.name);
        let role = crate::rbac::role(
            &name,
            &settings.namespace,
            &rendered.objects,
            !settings.secrets.is_empty(),
        );
        let binding = crate::rbac::binding(&name, &settings.namespace, user);
        Ok(format!(
            "# What ferry needs in namespace {ns} to ship, follow, roll back and report on `{env}`\n\
             # (printed by `ferry rbac --env {env}`; apply it with `kubectl apply -f -`).\n---\n{}---\n{}",
            serde_saphyr::to_string(&role).unwrap_or_default(),
            serde_saphyr::to_string(&binding).unwrap_or_default(),
            ns = settings.namespace,
            env = self.name,
        ))
    }

    async fn hold_lock(
        &self,
        request: &LockRequest,
        recorder: &mut Recorder<'_>,
    ) -> Result<Option<lease::Held>, Halted> {
        let namespace = &self.settings.namespace;
        let name = self.lease_name();
        let held = recorder
            .stage(
                "lock",
                &format!("Lease {namespace}/{name}"),
                async |stage| {
                    let cluster =
                        pipeline::connect(&self.config, &self.name, &self.settings).await?;
                    let claim = lease::Claim::new(request.operation, request.commit.clone());
                    let held =
                        lease::acquire(&cluster, namespace, &name, &claim, request.wait, &|s| {
                            stage.progress(format!(
                                "held by {}; waiting up to {}s",
                                s.describe(),
                                request.wait.as_secs()
                            ))
                        })
                        .await?;
                    let detail = format!("held by {}", held.state.holder);
                    Ok((held, detail))
                },
            )
            .await?;
        Ok(Some(held))
    }

    async fn lock(&self, message: &str, reporter: &Reporter) -> anyhow::Result<()> {
        let (namespace, name) = (&self.settings.namespace, self.lease_name());
        let cluster = pipeline::connect(&self.config, &self.name, &self.settings).await?;
        let mut claim = lease::Claim::new("lock", None);
        claim.manual = true;
        claim.message = Some(message.to_string());
        let held = lease::acquire(&cluster, namespace, &name, &claim, Duration::ZERO, &|_| {})
            .await
            .with_context(|| format!("cannot lock {}", self.name))?;
        if reporter.mode() == Mode::Json {
            println!("{}", serde_json::to_string_pretty(&held.state)?);
        } else {
            reporter.info(format!(
                "locked {}: {}; deploys are refused until `ferry unlock --env {}`",
                self.name,
                held.state.describe(),
                self.name
            ));
        }
        Ok(())
    }

    async fn unlock(&self, force: bool, reporter: &Reporter) -> anyhow::Result<()> {
        let (namespace, name) = (&self.settings.namespace, self.lease_name());
        let cluster = pipeline::connect(&self.config, &self.name, &self.settings).await?;
        let removed = lease::remove(&cluster, namespace, &name, force)
            .await
            .with_context(|| format!("cannot unlock {}", self.name))?;
        if reporter.mode() == Mode::Json {
            println!(
                "{}",
                serde_json::json!({"environment": self.name, "removed": removed})
            );
            return Ok(());
        }
        match removed {
            Some(state) => reporter.info(format!(
                "unlocked {} (it was {})",
                self.name,
                state.describe()
            )),
            None => reporter.info(format!("{} was not locked", self.name)),
        }
        Ok(())
    }

    async fn history(&self, reporter: &Reporter) -> anyhow::Result<()> {
        let namespace = &self.settings.namespace;
        let cluster = pipeline::connect(&self.config, &self.name, &self.settings).await?;
        let records = history::read(&cluster, namespace, &self.config.image.name).await?;
        let mut kept = std::collections::BTreeMap::new();
        for deployment in records.iter().map(|r| r.deployment.clone()) {
            if let std::collections::btree_map::Entry::Vacant(slot) = kept.entry(deployment) {
                let available = history::available(&cluster, namespace, slot.key())
                    .await
                    .unwrap_or_default();
                slot.insert(available);
            }
        }
        let is_kept = |r: &history::Record| {
            kept.get(&r.deployment).is_some_and(|a| {
                a.iter()
                    .any(|a| Some(a.revision) == r.revision && a.image == r.image)
            })
        };
        if reporter.mode() == Mode::Json {
            let list: Vec<serde_json::Value> = records
                .iter()
                .rev()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["digest"] = serde_json::json!(r.digest());
                    v["available"] = serde_json::json!(is_kept(r));
                    v
                })
                .collect();
            let doc = serde_json::json!({
                "environment": self.name,
                "namespace": namespace,
                "where": format!("ConfigMap {namespace}/{}", history::configmap_name(&self.config.image.name)),
                "history": list,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(());
        }
        if records.is_empty() {
            println!(
                "{}: no deploys recorded yet (ferry ship --env {} records one)",
                self.name, self.name
            );
            return Ok(());
        }
        println!(
            "{:<8} {:<12} {:<19} {:<20} {:<16} {:<9} OUTCOME",
            "REVISION", "COMMIT", "DIGEST", "TIME", "WHO", "WHAT"
        );
        for r in records.iter().rev() {
            let revision = match r.revision {
                Some(n) if is_kept(r) => n.to_string(),
                Some(n) => format!("{n} (gone)"),
                None => "-".into(),
            };
            println!(
                "{:<8} {:<12} {:<19} {:<20} {:<16} {:<9} {}",
                revision,
                r.commit
                    .as_deref()
                    .map(|c| c.chars().take(12).collect::<String>())
                    .unwrap_or_else(|| "-".into()),
                r.digest()
                    .map(|d| d.chars().take(19).collect::<String>())
                    .unwrap_or_else(|| "-".into()),
                r.time,
                r.who,
                r.what,
                r.outcome.replace('_', " ")
            );
        }
        Ok(())
    }

    async fn running_image(&self, commit: Option<&str>) -> anyhow::Result<RunningImage> {
        let namespace = &self.settings.namespace;
        let cluster = pipeline::connect(&self.config, &self.name, &self.settings).await?;
        let records = history::read(&cluster, namespace, &self.config.image.name).await?;
        let deployment = self.the_deployment(&cluster, &records, None).await?;
        let (image, commit) = match commit {
            Some(commit) => {
                let available = history::available(&cluster, namespace, &deployment).await?;
                let found = history::choose(&available, commit).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} keeps no revision of {deployment} built from commit {commit:?}; these are:\n{}\n  hint: pass one of their commits to --commit",
                        self.name,
                        available.iter().map(|a| format!("    {a}")).collect::<Vec<_>>().join("\n")
                    )
                })?;
                (found.image.clone(), found.commit.clone())
            }
            None => {
                let live = deploy::status(&cluster, namespace)
                    .await?
                    .into_iter()
                    .find(|d| d.name == deployment)
                    .ok_or_else(|| {
                        anyhow::anyhow!("deployment {deployment} is gone from {namespace}")
                    })?;
                (live.image, live.commit)
            }
        };
        if !image.contains("@sha256:") {
            anyhow::bail!(
                "{} runs {image}, which is not pinned by digest, so what it runs cannot be promoted exactly\n  hint: ship it with ferry, which deploys REPO@sha256:…",
                self.name
            );
        }
        Ok(RunningImage {
            environment: self.name.clone(),
            deployment,
            image,
            commit,
        })
    }

    async fn promote(
        &self,
        source: &RunningImage,
        request: &PromoteRequest,
        reporter: &Reporter,
    ) -> anyhow::Result<()> {
        if self.settings.approval && !request.approve {
            anyhow::bail!(
                "environment `{}` requires approval (approval = true in ferry.toml); nothing was copied or deployed\n  \
                 hint: re-run with --approve",
                self.name
            );
        }
        // An image the target may not run is refused before anything is copied, locked or
        // applied there.
        pipeline::check_required_signature(
            &self.config,
            &self.settings,
            &source.image,
            reporter,
            &format!(
                "refusing to promote {} to {}: its signature does not verify; nothing was copied or applied",
                source.image, self.name
            ),
        )
        .await?;
        let cluster = pipeline::connect(&self.config, &self.name, &self.settings).await?;
        let claim = lease::Claim::new("promote", source.commit.clone());
        let held = self
            .deploy_lock(&cluster, &claim, request.lock_wait, reporter)
            .await
            .with_context(|| format!("cannot promote to {}", self.name))?;
        let result = self.promote_held(&cluster, source, request, reporter).await;
        held.release().await;
        result
    }

    async fn rollback(&self, request: &RollbackRequest, reporter: &Reporter) -> anyhow::Result<()> {
        let cluster = pipeline::connect(&self.config, &self.name, &self.settings).await?;
        let claim = lease::Claim::new("rollback", None);
        let held = self
            .deploy_lock(&cluster, &claim, request.lock_wait, reporter)
            .await
            .with_context(|| format!("cannot roll back {}", self.name))?;
        let result = self.roll_back(&cluster, request, reporter).await;
        held.release().await;
        result
    }

    async fn stop(&self, _reporter: &Reporter) -> anyhow::Result<()> {
        anyhow::bail!(
            "`ferry stop` stops a local instance; `{}` is a kubernetes environment\n  \
             hint: scale or delete its Deployment with kubectl, or run `ferry stop` for the local one",
            self.name
        )
    }
}

impl Kubernetes {
    fn lease_name(&self) -> String {
        lease::lease_name(&self.config.image.name)
    }

    /// The environment's deploy lock for `claim`, waiting up to `wait` (and saying so) while
    /// another run holds it.
    async fn deploy_lock(
        &self,
        cluster: &deploy::Cluster,
        claim: &lease::Claim,
        wait: Duration,
        reporter: &Reporter,
    ) -> Result<lease::Held, lease::LockError> {
        let on_wait = |s: &lease::LockState| {
            reporter.info(format!(
                "the deploy lock is held by {}; waiting",
                s.describe()
            ))
        };
        lease::acquire(
            cluster,
            &self.settings.namespace,
            &self.lease_name(),
            claim,
            wait,
            &on_wait,
        )
        .await
    }

    /// Adds the rollout's outcome to the history; a history that cannot be written is a
    /// warning, not a failed deploy.
    async fn record_rollout(
        &self,
        objects: &[serde_json::Value],
        rollout: &deploy::Rollout,
        what: &str,
        image: &str,
        commit: Option<&str>,
    ) {
        let Ok(cluster) = pipeline::connect(&self.config, &self.name, &self.settings).await else {
            return;
        };
        record_rollout(
            &cluster,
            &self.settings.namespace,
            &self.config.image.name,
            objects,
            rollout,
            what,
            image,
            commit,
        )
        .await;
    }

    /// The Deployment this service's history names, else the only one in the namespace.
    async fn the_deployment(
        &self,
        cluster: &deploy::Cluster,
        records: &[history::Record],
        named: Option<&str>,
    ) -> anyhow::Result<String> {
        let namespace = &self.settings.namespace;
        if let Some(d) = named {
            return Ok(d.to_string());
        }
        if let Some(r) = records.last() {
            return Ok(r.deployment.clone());
        }
        let all = deploy::status(cluster, namespace).await?;
        match all.as_slice() {
            [one] => Ok(one.name.clone()),
            [] => anyhow::bail!(
                "there is no Deployment in namespace {namespace} of {}\n  hint: ship it first: ferry ship --env {}",
                self.name,
                self.name
            ),
            many => anyhow::bail!(
                "namespace {namespace} has {} Deployments ({}) and no history says which is this service's\n  hint: name one with --deployment NAME",
                many.len(),
                many.iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    async fn promote_held(
        &self,
        cluster: &deploy::Cluster,
        source: &RunningImage,
        request: &PromoteRequest,
        reporter: &Reporter,
    ) -> anyhow::Result<()> {
        let env = self.render_settings();
        let target: crate::registry::Repository = env.repository.parse()?;
        let options = crate::registry::PushOptions {
            insecure: env.insecure_registry,
            auth: env.registry_auth,
            ..Default::default()
        };
        let stage = reporter.stage("copy", format!("{} → {target}", source.image));
        let copied = match crate::registry::copy(&source.image, &target, &options).await {
            Ok(c) => {
                let mut detail = c.pinned();
                if !c.manifests.is_empty() {
                    detail.push_str(&format!(", {} platform manifests", c.manifests.len()));
                }
                if !c.artifacts.is_empty() {
                    detail.push_str(&format!(", {} signature/SBOM artifacts", c.artifacts.len()));
                }
                stage.done(format!(
                    "{detail} ({} blobs mounted, {} copied, {} already there)",
                    c.mounted.len(),
                    c.copied.len(),
                    c.skipped.len()
                ));
                c
            }
            Err(e) => {
                stage.failed(e.to_string().lines().next().unwrap_or_default());
                return Err(e.into());
            }
        };
        let image = copied.pinned();
        // An environment that signs what it runs signs (and attests) the copy in its own
        // repository, as ship would have.
        pipeline::sign_promoted(&self.config, &env, &image, reporter).await?;
        // What the target's cluster (and its admission policy) will check: the copy, with the
        // signature carried along or made here.
        pipeline::check_required_signature(
            &self.config,
            &env,
            &image,
            reporter,
            &format!(
                "refusing to deploy {image}: its signature does not verify in the target repository; nothing was applied"
            ),
        )
        .await?;
        let mut rendered = pipeline::render_for(
            &self.config,
            &self.name,
            &env,
            &image,
            source.commit.as_deref(),
        )?;
        let secrets = self.resolved_secrets();
        if !secrets.is_empty() {
            add_secret(&self.config, &env, &secrets, &mut rendered.objects);
        }
        let stage = reporter.stage(
            "deploy",
            format!(
                "{} objects → namespace {}",
                rendered.objects.len(),
                env.namespace
            ),
        );
        let options = deploy::DeployOptions {
            namespace: env.namespace.clone(),
            rollback: !request.no_rollback,
            fail_fast: env.fail_fast,
            applyset: Some(deploy::applyset::ApplySet::new(
                &self.config.image.name,
                &env.namespace,
            )),
            ..Default::default()
        };
        let rollout = deploy::deploy(cluster, &rendered.objects, &options, &|l| stage.progress(l))
            .await
            .context("promote failed")?;
        record_rollout(
            cluster,
            &env.namespace,
            &self.config.image.name,
            &rendered.objects,
            &rollout,
            "promote",
            &image,
            source.commit.as_deref(),
        )
        .await;
        if reporter.mode() == Mode::Json {
            let doc = serde_json::json!({
                "environment": self.name,
                "source": {
                    "environment": source.environment,
                    "deployment": source.deployment,
                    "commit": source.commit,
                    "digest": source.digest(),
                    "image": source.image,
                },
                "image": image,
                "copied": copied,
                "rollout": rollout,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        match &rollout {
            deploy::Rollout::Succeeded { .. } => {
                stage.done(rollout.to_string());
                reporter.info(format!(
                    "promoted {} (commit {}, {}) from {} to {}",
                    image,
                    source
                        .commit
                        .as_deref()
                        .map(|c| c.chars().take(12).collect::<String>())
                        .unwrap_or_else(|| "-".into()),
                    source.digest(),
                    source.environment,
                    self.name
                ));
                Ok(())
            }
            deploy::Rollout::RolledBack {
                deployment,
                restored,
                ..
            } => {
                stage.failed(format!(
                    "{deployment}: rolled back to revision {}",
                    restored.revision
                ));
                anyhow::bail!("promote failed: {rollout}")
            }
            deploy::Rollout::Failed {
                deployment,
                failure,
                ..
            } => {
                stage.failed(format!("{deployment}: {}", failure.headline()));
                anyhow::bail!("promote failed: {rollout}")
            }
        }
    }

    async fn roll_back(
        &self,
        cluster: &deploy::Cluster,
        request: &RollbackRequest,
        reporter: &Reporter,
    ) -> anyhow::Result<()> {
        let namespace = &self.settings.namespace;
        let service = &self.config.image.name;
        let records = history::read(cluster, namespace, service).await?;
        let deployment = self
            .the_deployment(cluster, &records, request.deployment.as_deref())
            .await?;
        let (live, sets) = history::deployment_and_sets(&cluster.client, namespace, &deployment)
            .await
            .map_err(|e| {
                deploy::DeployError::from_kube(e, "Deployment", &deployment, &cluster.server)
            })?;
        let available = history::available(cluster, namespace, &deployment).await?;
        let current = rollback::revision_of(live.metadata.annotations.as_ref());
        let listed = || {
            available
                .iter()
                .map(|a| {
                    format!(
                        "    {a}{}",
                        if Some(a.revision) == current {
                            "  ← running"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let target = match &request.to {
            Some(to) => history::choose(&available, to).ok_or_else(|| {
                anyhow::anyhow!(
                    "revision {to:?} of deployment {deployment} is no longer available (the cluster keeps the last revisionHistoryLimit ReplicaSets); these are:\n{}\n  hint: pass one of them to --to, by revision number or commit",
                    listed()
                )
            })?,
            None => history::previous_healthy(&available, current, &records).ok_or_else(|| {
                anyhow::anyhow!(
                    "deployment {deployment} has no earlier healthy revision to roll back to; kept revisions:\n{}",
                    listed()
                )
            })?,
        };
        if Some(target.revision) == current {
            reporter.info(format!(
                "{deployment} already runs revision {} ({}); nothing to roll back",
                target.revision, target.image
            ));
            return Ok(());
        }
        let Some(set) = sets.iter().find(|rs| {
            rollback::revision_of(rs.metadata.annotations.as_ref()) == Some(target.revision)
        }) else {
            anyhow::bail!(
                "revision {} of {deployment} disappeared while rolling back",
                target.revision
            );
        };
        let stage = reporter.stage("rollback", format!("{deployment} → {target}"));
        let restored = rollback::restore(&cluster.client, namespace, &live, set)
            .await
            .map_err(|e| {
                deploy::DeployError::from_kube(e, "Deployment", &deployment, &cluster.server)
            })?;
        let Some(restored) = restored else {
            stage.failed("that revision has no pod template");
            anyhow::bail!(
                "revision {} of {deployment} has no pod template to restore",
                target.revision
            );
        };
        let wait = deploy::rollout::WaitOptions {
            timeout: None,
            fail_fast: self.settings.fail_fast,
            poll: Duration::from_millis(500),
        };
        let outcome = deploy::rollout::wait(&cluster.client, namespace, &deployment, &wait, &|l| {
            stage.progress(l)
        })
        .await
        .map_err(|e| {
            deploy::DeployError::from_kube(e, "Deployment", &deployment, &cluster.server)
        })?;
        let (result, detail) = match &outcome {
            Ok(_) => ("succeeded", None),
            Err(failure) => ("failed", Some(failure.to_string())),
        };
        let record = history::record(
            cluster,
            namespace,
            &self.config.image.name,
            history::Outcome {
                what: "rollback",
                deployment: &deployment,
                image: &restored.image,
                commit: restored.commit.as_deref(),
                outcome: result,
                detail,
            },
        )
        .await;
        if let Err(e) = &record {
            reporter.info(format!(
                "warning: the rollback was not recorded in the history: {e}"
            ));
        }
        let after = deploy::status(cluster, namespace)
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|d| d.name == deployment));
        if reporter.mode() == Mode::Json {
            let doc = serde_json::json!({
                "environment": self.name,
                "deployment": deployment,
                "from_revision": current,
                "to": target,
                "revision": after.as_ref().and_then(|d| d.revision.clone()),
                "outcome": result,
                "failure": outcome.as_ref().err(),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        match outcome {
            Ok(_) => {
                stage.done(format!(
                    "{deployment} runs {} again (commit {}), now as revision {}",
                    restored.image,
                    restored
                        .commit
                        .as_deref()
                        .map(|c| c.chars().take(12).collect::<String>())
                        .unwrap_or_else(|| "-".into()),
                    after.and_then(|d| d.revision).unwrap_or_default()
                ));
                Ok(())
            }
            Err(failure) => {
                stage.failed(failure.headline());
                anyhow::bail!(
                    "the rollback of {deployment} to revision {} did not become available: {failure}",
                    target.revision
                )
            }
        }
    }
}

/// Records each Deployment of a rollout in the history (see [`Kubernetes::record_rollout`]).
#[allow(clippy::too_many_arguments)]
pub async fn record_rollout(
    cluster: &deploy::Cluster,
    namespace: &str,
    service: &str,
    objects: &[serde_json::Value],
    rollout: &deploy::Rollout,
    what: &str,
    image: &str,
    commit: Option<&str>,
) {
    let deployments = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter_map(|o| o["metadata"]["name"].as_str());
    for deployment in deployments {
        let (outcome, detail) = match rollout {
            deploy::Rollout::Succeeded { .. } => ("succeeded", None),
            deploy::Rollout::RolledBack {
                deployment: d,
                failure,
                ..
            } if d == deployment => ("rolled_back", Some(failure.headline())),
            deploy::Rollout::Failed {
                deployment: d,
                failure,
                ..
            } if d == deployment => ("failed", Some(failure.headline())),
            _ => ("succeeded", None),
        };
        let written = history::record(
            cluster,
            namespace,
            service,
            history::Outcome {
                what,
                deployment,
                image,
                commit,
                outcome,
                detail,
            },
        )
        .await;
        if let Err(e) = written {
            tracing::warn!("the deploy of {deployment} was not recorded in the history: {e}");
        }
    }
}

/// Adds the environment's Secret to the objects to apply, and the checksum of its values to
/// every pod template, so a changed secret rolls the pods.
fn add_secret(
    config: &Config,
    env: &KubernetesEnv,
    secrets: &crate::secrets::Resolved,
    objects: &mut Vec<serde_json::Value>,
) {
    crate::secrets::annotate_templates(objects, &secrets.checksum());
    objects.insert(
        0,
        crate::secrets::secret_object(&super::secret_name(config), &env.namespace, secrets),
    );
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
