//! Runs a fake cluster until Ctrl-C (or SIGTERM) and prints its URL and kubeconfig path, for
//! poking at it with kubectl by hand: `cargo run -p kube-fake -- --help`.
//!
//! Each instance writes its own kubeconfig (named after its port, or where `--kubeconfig`
//! says) and removes it on exit, so several can run side by side.

use std::path::PathBuf;

use clap::Parser;

/// A fake Kubernetes API server with simulated controllers, for kubectl by hand.
///
/// Prints `URL (kubeconfig: FILE)` once it listens; stop it with Ctrl-C.
/// Then e.g. `kubectl --kubeconfig FILE get deploy,rs,pods -o wide`.
#[derive(Debug, Parser)]
#[command(name = "kube-fake")]
struct Args {
    /// Simulated seconds per real second (pods start and become ready this much faster).
    #[arg(default_value_t = 10.0, value_name = "CLOCK_SCALE")]
    clock_scale: f64,
    /// Pods running this image fail to pull it (ErrImagePull, then ImagePullBackOff).
    #[arg(value_name = "FAILING_IMAGE")]
    failing_image: Option<String>,
    /// Where to write the kubeconfig (default: kube-fake-PORT.kubeconfig in the temp dir).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = kube_fake::FakeCluster::start(kube_fake::Options {
        clock_scale: args.clock_scale,
        ..Default::default()
    })
    .await?;
    if let Some(image) = &args.failing_image {
        cluster.inject(image, kube_fake::Fault::ImagePull);
    }
    let port = cluster.url().rsplit(':').next().unwrap_or("0").to_string();
    let copy = args
        .kubeconfig
        .unwrap_or_else(|| std::env::temp_dir().join(format!("kube-fake-{port}.kubeconfig")));
    std::fs::copy(cluster.kubeconfig_path(), &copy)
        .map_err(|e| anyhow::anyhow!("cannot write the kubeconfig to {}: {e}", copy.display()))?;
    // Listening for both signals before the line that says the server is up: a Ctrl-C sent
    // as soon as it is read must stop the server cleanly, not kill it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    println!("{} (kubeconfig: {})", cluster.url(), copy.display());
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = term.recv() => {}
    }
    // Leave no kubeconfig pointing at a server that is gone.
    let _ = std::fs::remove_file(&copy);
    Ok(())
}
