//! Benchmark: seconds from the moment a pod first reports a pull failure (`ErrImagePull`, then
//! `ImagePullBackOff`) to the failure report,
//! ferry's deploy stage beside `kubectl rollout status`, against the same fake cluster.
//! Run: `cargo run -q -p ferry --example fail_fast` (needs kubectl on PATH).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kube_fake::{FakeCluster, Fault, Options};

const SCALE: f64 = 10.0;
const GOOD: &str = "registry.example/ferry/hello@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const BAD: &str = "registry.example/ferry/hello@sha256:badbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbad0";

fn manifest(image: &str) -> ferry::render::Rendered {
    let vars: BTreeMap<String, String> = [
        ("IMAGE", image),
        ("COMMIT", "c0ffee"),
        ("ENVIRONMENT", "bench"),
        ("NAMESPACE", "default"),
        ("REPLICAS", "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    ferry::render::render_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s.yml"),
        &vars,
    )
    .expect("render")
}

/// Returns the moment a pod first reports a pull failure (`ErrImagePull` or
/// `ImagePullBackOff`), polling the API in-process every 5 ms.
async fn pull_failure_seen(cluster: &ferry::deploy::Cluster) -> Instant {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(cluster.client.clone(), "default");
    loop {
        if let Ok(list) = pods.list(&Default::default()).await {
            let failing = list.items.iter().any(|pod| {
                pod.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
                    .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
                    .any(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
            });
            if failing {
                return Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn fresh() -> (FakeCluster, ferry::deploy::Cluster) {
    let fake = FakeCluster::start(Options {
        clock_scale: SCALE,
        ..Options::default()
    })
    .await
    .expect("fake");
    let cluster = ferry::deploy::connect(&ferry::deploy::Target {
        kubeconfig: Some(fake.kubeconfig_path().into()),
        context: None,
        ..Default::default()
    })
    .await
    .expect("connect");
    let opts = ferry::deploy::DeployOptions::default();
    ferry::deploy::deploy(&cluster, &manifest(GOOD).objects, &opts, &|_| {})
        .await
        .expect("first deploy");
    fake.inject(BAD, Fault::ImagePull);
    (fake, cluster)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    ferry::install_crypto_provider();
    // ferry
    let (fake, cluster) = fresh().await;
    let opts = ferry::deploy::DeployOptions {
        rollback: false,
        ..Default::default()
    };
    let watcher = ferry::deploy::Cluster {
        client: cluster.client.clone(),
        server: cluster.server.clone(),
    };
    let seen = tokio::spawn(async move { pull_failure_seen(&watcher).await });
    let rollout = ferry::deploy::deploy(&cluster, &manifest(BAD).objects, &opts, &|_| {})
        .await
        .expect("deploy");
    let reported = Instant::now();
    let backoff = seen.await.expect("watcher");
    drop(fake);
    assert!(
        matches!(rollout, ferry::deploy::Rollout::Failed { .. }),
        "{rollout:?}"
    );
    let ferry_s = reported.saturating_duration_since(backoff).as_secs_f64();
    let ferry_said = match &rollout {
        ferry::deploy::Rollout::Failed { failure, .. } => failure
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };

    // kubectl rollout status on the same scenario
    let (fake, cluster) = fresh().await;
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), manifest(BAD).text).expect("write");
    let apply = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(fake.kubeconfig_path())
        .args(["apply", "--server-side", "--validate=false", "-f"])
        .arg(file.path())
        .output()
        .expect("kubectl apply");
    assert!(apply.status.success());
    let kubeconfig = fake.kubeconfig_path().to_path_buf();
    let status = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["rollout", "status", "deployment/hello", "--timeout=600s"])
            .output()
            .expect("kubectl");
        (Instant::now(), out)
    });
    let backoff = pull_failure_seen(&cluster).await;
    let (reported, out) = status.await.expect("status");
    let kubectl_s = reported.saturating_duration_since(backoff).as_secs_f64();
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();

    println!("| tool | pull failure on the pod → failure reported | what it said |");
    println!("|---|---|---|");
    println!("| ferry deploy | {ferry_s:.2} s | {ferry_said} |");
    println!(
        "| kubectl rollout status | {:.0} s in cluster time ({kubectl_s:.1} s real at clock x{SCALE}) | {said} |",
        kubectl_s * SCALE
    );
}
