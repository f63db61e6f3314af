//! Runs a fake cluster until Ctrl-C and prints its kubeconfig path — for poking at it with
//! kubectl by hand: `cargo run -p kube-fake --example serve -- [CLOCK_SCALE]`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scale = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let cluster = kube_fake::FakeCluster::start(kube_fake::Options {
        clock_scale: scale,
        ..Default::default()
    })
    .await?;
    if let Some(image) = std::env::args().nth(2) {
        cluster.inject(&image, kube_fake::Fault::ImagePull);
    }
    let copy = std::env::temp_dir().join("kube-fake.kubeconfig");
    std::fs::copy(cluster.kubeconfig_path(), &copy)?;
    println!("{} (kubeconfig: {})", cluster.url(), copy.display());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
