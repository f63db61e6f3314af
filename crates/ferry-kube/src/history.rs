//! The deploy history of an environment, kept in its cluster, not on the machine that ran
//! ferry: a ConfigMap `ferry-history-SERVICE` in the namespace whose `history.json` holds
//! the last [`KEPT`] records (revision, commit, image, time, who, what, outcome), newest last.
//! The ReplicaSets the deployment controller keeps (`revisionHistoryLimit`) are what can be
//! rolled back to; a record says whether its revision is still among them.
//!
//! Writes are read-modify-write with the ConfigMap's resourceVersion, retried on 409, so two
//! writers never lose each other's records (the deploy lock already keeps them apart).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use super::rollback::{commit_of_template, image_of_template, revision_of};
use super::rollout::owned_replica_sets;
use super::{Cluster, DeployError};

/// How many records the ConfigMap keeps.
pub const KEPT: usize = 100;
const KEY: &str = "history.json";

/// The ConfigMap's name for a service: `ferry-history-hello`.
pub fn configmap_name(service: &str) -> String {
    super::lease::lease_name(service).replacen("ferry-lock-", "ferry-history-", 1)
}

/// One deploy of one Deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The Deployment revision the image ran as (its ReplicaSet's
    /// `deployment.kubernetes.io/revision`), when the controller made one.
    pub revision: Option<i64>,
    pub deployment: String,
    pub commit: Option<String>,
    /// The image reference, pinned by digest (`REPO@sha256:…`).
    pub image: String,
    /// RFC 3339, UTC.
    pub time: String,
    /// The CI user or the git author ([`super::actor::who`]).
    pub who: String,
    /// `ship`, `deploy`, `promote` or `rollback`.
    pub what: String,
    /// `succeeded`, `rolled_back` or `failed`.
    pub outcome: String,
    /// The failure, for an outcome other than `succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Record {
    /// `sha256:…` of the image, when it is pinned.
    pub fn digest(&self) -> Option<&str> {
        self.image.rsplit_once('@').map(|(_, d)| d)
    }
}

/// A revision that can be rolled back to: a ReplicaSet still kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Available {
    pub revision: i64,
    pub commit: Option<String>,
    pub image: String,
}

impl std::fmt::Display for Available {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let commit = self
            .commit
            .as_deref()
            .map(|c| c.chars().take(12).collect::<String>())
            .unwrap_or_else(|| "-".into());
        write!(
            f,
            "revision {} (commit {commit}, {})",
            self.revision, self.image
        )
    }
}

fn now() -> String {
    // Whole seconds: Timestamp's RFC 3339 form has no fraction then.
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// The records, oldest first (none when nothing was recorded yet).
pub async fn read(
    cluster: &Cluster,
    namespace: &str,
    service: &str,
) -> Result<Vec<Record>, DeployError> {
    let name = configmap_name(service);
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), namespace);
    let live = api
        .get_opt(&name)
        .await
        .map_err(|e| DeployError::from_kube(e, "ConfigMap", &name, &cluster.server))?;
    Ok(live.as_ref().map(records_of).unwrap_or_default())
}

fn records_of(cm: &ConfigMap) -> Vec<Record> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// Appends `record`, keeping the last [`KEPT`].
pub async fn append(
    cluster: &Cluster,
    namespace: &str,
    service: &str,
    record: Record,
) -> Result<(), DeployError> {
    let name = configmap_name(service);
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), namespace);
    let error = |e: kube::Error| DeployError::from_kube(e, "ConfigMap", &name, &cluster.server);
    loop {
        let live = api.get_opt(&name).await.map_err(error)?;
        let mut records = live.as_ref().map(records_of).unwrap_or_default();
        records.push(record.clone());
        let excess = records.len().saturating_sub(KEPT);
        records.drain(..excess);
        let text = serde_json::to_string_pretty(&records)
            .map_err(|e| DeployError::Client(e.to_string()))?;
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                resource_version: live
                    .as_ref()
                    .and_then(|l| l.metadata.resource_version.clone()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "ferry".to_string(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            data: Some([(KEY.to_string(), text)].into()),
            ..ConfigMap::default()
        };
        let written = match live {
            None => api.create(&PostParams::default(), &cm).await,
            Some(_) => api.replace(&name, &PostParams::default(), &cm).await,
        };
        match written {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(error(e)),
        }
    }
}

/// What a deploy, ship or rollback records: for `deployment`, the revision whose template runs
/// `image`, with the outcome.
pub struct Outcome<'a> {
    pub what: &'a str,
    pub deployment: &'a str,
    pub image: &'a str,
    pub commit: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: Option<String>,
}

/// Records `outcome`, reading the revision from the Deployment's ReplicaSets.
pub async fn record(
    cluster: &Cluster,
    namespace: &str,
    service: &str,
    outcome: Outcome<'_>,
) -> Result<Record, DeployError> {
    let revision = available(cluster, namespace, outcome.deployment)
        .await
        .ok()
        .and_then(|sets| {
            sets.iter()
                .filter(|a| a.image == outcome.image)
                .map(|a| a.revision)
                .max()
        });
    let record = Record {
        revision,
        deployment: outcome.deployment.to_string(),
        commit: outcome.commit.map(str::to_string),
        image: outcome.image.to_string(),
        time: now(),
        who: super::actor::who(),
        what: outcome.what.to_string(),
        outcome: outcome.outcome.to_string(),
        detail: outcome.detail,
    };
    append(cluster, namespace, service, record.clone()).await?;
    Ok(record)
}

/// The revisions of `deployment` that can still be restored, newest first.
pub async fn available(
    cluster: &Cluster,
    namespace: &str,
    deployment: &str,
) -> Result<Vec<Available>, DeployError> {
    let (_, sets) = deployment_and_sets(&cluster.client, namespace, deployment)
        .await
        .map_err(|e| DeployError::from_kube(e, "Deployment", deployment, &cluster.server))?;
    let mut out: Vec<Available> = sets
        .iter()
        .filter_map(|rs| {
            let revision = revision_of(rs.metadata.annotations.as_ref())?;
            let template = rs.spec.as_ref()?.template.as_ref()?;
            Some(Available {
                revision,
                commit: commit_of_template(template),
                image: image_of_template(template),
            })
        })
        .collect();
    out.sort_by_key(|a| std::cmp::Reverse(a.revision));
    Ok(out)
}

pub async fn deployment_and_sets(
    client: &Client,
    namespace: &str,
    deployment: &str,
) -> Result<(Deployment, Vec<ReplicaSet>), kube::Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let d = api.get(deployment).await?;
    let sets = owned_replica_sets(client, namespace, &d).await?;
    Ok((d, sets))
}

/// Which kept revision `to` names: a revision number, or a commit (a prefix of at least 7 hex
/// digits; the newest revision built from it).
pub fn choose<'a>(available: &'a [Available], to: &str) -> Option<&'a Available> {
    let to = to.trim();
    if let Ok(n) = to.parse::<i64>()
        && to.len() < 7
    {
        return available.iter().find(|a| a.revision == n);
    }
    if to.len() < 7 {
        return None;
    }
    available
        .iter()
        .filter(|a| a.commit.as_deref().is_some_and(|c| c.starts_with(to)))
        .max_by_key(|a| a.revision)
}

/// The revision a bare `ferry rollback` goes back to: the newest kept revision, other than the
/// one running, whose image last shipped successfully (by the history); without history, the
/// newest kept revision below the current one.
pub fn previous_healthy<'a>(
    available: &'a [Available],
    current: Option<i64>,
    records: &[Record],
) -> Option<&'a Available> {
    let current_image = available
        .iter()
        .find(|a| Some(a.revision) == current)
        .map(|a| a.image.as_str());
    let others = || {
        available
            .iter()
            .filter(move |a| Some(a.revision) != current && Some(a.image.as_str()) != current_image)
    };
    others()
        .find(|a| {
            records
                .iter()
                .any(|r| r.image == a.image && r.outcome == "succeeded")
        })
        .or_else(|| others().find(|a| current.is_none_or(|c| a.revision < c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(revision: i64, commit: &str) -> Available {
        Available {
            revision,
            commit: Some(commit.into()),
            image: format!("r/hello@sha256:{commit}"),
        }
    }

    fn shipped(commit: &str, outcome: &str) -> Record {
        Record {
            revision: None,
            deployment: "hello".into(),
            commit: Some(commit.into()),
            image: format!("r/hello@sha256:{commit}"),
            time: "2026-12-01T10:00:00Z".into(),
            who: "alice".into(),
            what: "ship".into(),
            outcome: outcome.into(),
            detail: None,
        }
    }

    #[test]
    fn a_revision_is_named_by_number_or_by_commit_prefix() {
        let sets = [
            kept(3, "cccccccc1"),
            kept(2, "bbbbbbbb2"),
            kept(1, "aaaaaaaa3"),
        ];
        assert_eq!(choose(&sets, "2").map(|a| a.revision), Some(2));
        assert_eq!(choose(&sets, "aaaaaaa").map(|a| a.revision), Some(1));
        assert_eq!(choose(&sets, "9"), None);
        assert_eq!(choose(&sets, "dddddddd"), None);
        assert_eq!(choose(&sets, "aaa"), None, "too short to be a commit");
    }

    #[test]
    fn a_bare_rollback_skips_revisions_that_never_shipped_well() {
        // 3 runs now; 2 was a failed ship (rolled back); 1 shipped fine.
        let sets = [kept(3, "c"), kept(2, "b"), kept(1, "a")];
        let records = [
            shipped("a", "succeeded"),
            shipped("b", "rolled_back"),
            shipped("c", "succeeded"),
        ];
        assert_eq!(
            previous_healthy(&sets, Some(3), &records).map(|a| a.revision),
            Some(1)
        );
        assert_eq!(
            previous_healthy(&sets, Some(3), &[]).map(|a| a.revision),
            Some(2),
            "without history: the one below"
        );
        assert_eq!(previous_healthy(&sets[..1], Some(3), &records), None);
    }
}
