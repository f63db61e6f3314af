//! The real kubectl against the fake: if kubectl cannot tell the difference for these
//! operations, neither can ferry's deploy stage.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use kube_fake::{FakeCluster, Fault, Options};

fn kubectl(cluster: &FakeCluster, args: &[&str]) -> Output {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("kubectl").is_file()));
    assert!(
        found,
        "kubectl not found on PATH: these tests check the fake against the real kubectl 1.32. \
         Install it with `curl -LO https://dl.k8s.io/release/v1.32.0/bin/linux/amd64/kubectl && \
         sudo install -m 0755 kubectl /usr/local/bin/kubectl`, or from the pkgs.k8s.io apt \
         repository (https://pkgs.k8s.io/core:/stable:/v1.32/deb/). Debian's `kubernetes-client` \
         package is kubectl 1.20, too old for this."
    );
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args)
        .output()
        .expect("run kubectl")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fixture(image: &str, deadline: u32) -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/web.yml"),
    )
    .unwrap();
    let text = text.replace("example.com/web:1", image).replace(
        "progressDeadlineSeconds: 120",
        &format!("progressDeadlineSeconds: {deadline}"),
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn apply(cluster: &FakeCluster, image: &str, deadline: u32) -> String {
    let file = fixture(image, deadline);
    // The fake serves no OpenAPI document, so kubectl's client-side schema check is off.
    ok(&kubectl(
        cluster,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            file.path().to_str().unwrap(),
        ],
    ))
}

async fn fast() -> FakeCluster {
    FakeCluster::start(Options {
        clock_scale: 20.0,
        ..Options::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_and_rollout_status_on_a_healthy_rollout() {
    let cluster = fast().await;
    // Slow enough (1.5 s real) that kubectl is still waiting when it first looks, even on a
    // loaded machine, so the progress lines are printed.
    cluster.inject(
        "example.com/web:1",
        Fault::SlowStart(Duration::from_secs(30)),
    );
    let applied = apply(&cluster, "example.com/web:1", 120);
    assert!(
        applied.contains("deployment.apps/web serverside-applied"),
        "{applied}"
    );
    assert!(
        applied.contains("service/web serverside-applied"),
        "{applied}"
    );
    let status = ok(&kubectl(
        &cluster,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    ));
    assert!(
        status.contains("Waiting for deployment \"web\" rollout to finish"),
        "progress lines: {status}"
    );
    assert!(
        status
            .trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    let table = ok(&kubectl(&cluster, &["get", "deploy,rs,pods", "-o", "wide"]));
    assert!(table.contains("deployment.apps/web   2/2"), "{table}");
    assert!(table.contains("example.com/web:1"), "{table}");
    assert_eq!(table.matches("Running").count(), 2, "{table}");
    // The managed state is what the real controller would write.
    let d = cluster
        .get_json("/apis/apps/v1/namespaces/default/deployments/web")
        .unwrap();
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_fails_on_the_progress_deadline() {
    let cluster = fast().await;
    cluster.inject("example.com/web:never", Fault::NeverReady);
    apply(&cluster, "example.com/web:never", 20);
    let out = kubectl(
        &cluster,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deployment \"web\" exceeded its progress deadline"),
        "{err}"
    );
    let events = ok(&kubectl(&cluster, &["get", "events"]));
    assert!(events.contains("Readiness probe failed"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_undo_returns_to_the_previous_replica_set() {
    let cluster = fast().await;
    apply(&cluster, "example.com/web:1", 120);
    ok(&kubectl(
        &cluster,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    ));
    cluster.inject("example.com/web:2", Fault::ImagePull);
    apply(&cluster, "example.com/web:2", 120);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pods = ok(&kubectl(&cluster, &["get", "pods"]));
    assert!(
        pods.contains("ImagePullBackOff") || pods.contains("ErrImagePull"),
        "{pods}"
    );
    let history = ok(&kubectl(
        &cluster,
        &["rollout", "history", "deployment/web"],
    ));
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    ok(&kubectl(&cluster, &["rollout", "undo", "deployment/web"]));
    ok(&kubectl(
        &cluster,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    ));
    let d = cluster
        .get_json("/apis/apps/v1/namespaces/default/deployments/web")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "example.com/web:1"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3",
        "undo makes the old revision the newest"
    );
    let rs = ok(&kubectl(&cluster, &["get", "rs", "-o", "wide"]));
    assert_eq!(
        rs.lines().count(),
        3,
        "undo reuses the old ReplicaSet instead of making a new one:\n{rs}"
    );
    let events = ok(&kubectl(&cluster, &["get", "events"]));
    assert!(
        events.contains("Failed to pull image \"example.com/web:2\""),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_show_the_crash_loop_and_events_the_back_off() {
    let cluster = fast().await;
    cluster.inject(
        "example.com/web:crash",
        Fault::CrashLoop {
            log: "starting\npanic: no DATABASE_URL\n".into(),
            exit_code: 2,
        },
    );
    apply(&cluster, "example.com/web:crash", 120);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pods = ok(&kubectl(&cluster, &["get", "pods", "-o", "name"]));
    let pod = pods.lines().next().expect("a pod");
    let logs = ok(&kubectl(&cluster, &["logs", pod, "--tail=1"]));
    assert_eq!(logs.trim(), "panic: no DATABASE_URL");
    let table = ok(&kubectl(&cluster, &["get", "pods"]));
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    let events = ok(&kubectl(&cluster, &["get", "events"]));
    assert!(
        events.contains("Back-off restarting failed container"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sees_errors_as_the_real_server_returns_them() {
    let cluster = fast().await;
    let missing = kubectl(&cluster, &["get", "deployment", "nope"]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("deployments.apps \"nope\" not found")
    );
    let file = fixture("example.com/web:1", 120);
    let out = kubectl(
        &cluster,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-n",
            "absent",
            "-f",
            file.path().to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("namespaces \"absent\" not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The repository's `k8s.yml` rendered as `ferry render` would for staging: `${NAME}` from
/// `values`, `$$` for a literal `$`. A placeholder without a value fails the test.
fn render_repository_manifest(values: &HashMap<&str, &str>) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s.yml");
    let template =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = String::new();
    let mut rest = template.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {}", path.display()));
            let name = &after[..end];
            let value = values.get(name).unwrap_or_else(|| {
                panic!(
                    "{} uses ${{{name}}}, which this test gives no value; add it",
                    path.display()
                )
            });
            out.push_str(value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    // `$${X}` in comments renders to a literal `${X}`; nothing else may look like one.
    for line in out.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(!line.contains("${"), "unrendered placeholder: {line}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_repository_k8s_yml_and_lists_what_it_made() {
    let cluster = fast().await;
    let image = format!(
        "europe-west1-docker.pkg.dev/ferry-staging/ferry/hello@sha256:{}",
        "ab".repeat(32)
    );
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let values = HashMap::from([
        ("IMAGE", image.as_str()),
        ("COMMIT", commit),
        ("ENVIRONMENT", "staging"),
        ("NAMESPACE", "hello"),
        ("REPLICAS", "2"),
    ]);
    let rendered = render_repository_manifest(&values);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &rendered).unwrap();

    ok(&kubectl(&cluster, &["create", "namespace", "hello"]));
    let applied = ok(&kubectl(
        &cluster,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            file.path().to_str().unwrap(),
        ],
    ));
    assert!(
        applied.contains("service/hello serverside-applied"),
        "{applied}"
    );
    assert!(
        applied.contains("deployment.apps/hello serverside-applied"),
        "{applied}"
    );
    assert!(
        applied.contains("poddisruptionbudget.policy/hello serverside-applied"),
        "{applied}"
    );
    assert!(
        applied.contains("networkpolicy.networking.k8s.io/hello serverside-applied"),
        "{applied}"
    );
    let status = ok(&kubectl(
        &cluster,
        &[
            "rollout",
            "status",
            "deployment/hello",
            "-n",
            "hello",
            "--timeout=60s",
        ],
    ));
    assert!(
        status.contains("deployment \"hello\" successfully rolled out"),
        "{status}"
    );

    let table = ok(&kubectl(
        &cluster,
        &["get", "deploy,rs,pods", "-o", "wide", "-n", "hello"],
    ));
    let deployment_row = table
        .lines()
        .find(|l| l.starts_with("deployment.apps/hello "))
        .unwrap_or_else(|| panic!("no deployment row:\n{table}"));
    assert!(deployment_row.contains(" 2/2 "), "{table}");
    assert!(deployment_row.contains(&image), "{table}");
    assert!(
        deployment_row.contains("app.kubernetes.io/name=hello"),
        "{table}"
    );
    let rs_rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("replicaset.apps/hello-"))
        .collect();
    assert_eq!(rs_rows.len(), 1, "{table}");
    let pod_rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("pod/hello-"))
        .collect();
    assert_eq!(pod_rows.len(), 2, "{table}");
    for row in pod_rows {
        assert!(row.contains("1/1") && row.contains("Running"), "{table}");
    }

    let services = ok(&kubectl(&cluster, &["get", "svc", "-n", "hello"]));
    assert!(
        services.contains("hello") && services.contains("LoadBalancer"),
        "{services}"
    );
    let d = cluster
        .get_json("/apis/apps/v1/namespaces/hello/deployments/hello")
        .unwrap();
    assert_eq!(d["metadata"]["annotations"]["ferry.dev/commit"], commit);
    assert_eq!(d["metadata"]["labels"]["ferry.dev/environment"], "staging");
    assert_eq!(d["spec"]["minReadySeconds"], 5);

    // The disruption budget and the network policy, by their short names, as kubectl prints them.
    let guards = ok(&kubectl(&cluster, &["get", "pdb,netpol", "-n", "hello"]));
    let pdb_row = guards
        .lines()
        .find(|l| l.starts_with("poddisruptionbudget.policy/hello "))
        .unwrap_or_else(|| panic!("no PodDisruptionBudget row:\n{guards}"));
    let pdb_cells: Vec<&str> = pdb_row.split_whitespace().collect();
    assert_eq!(
        pdb_cells[1..3],
        ["N/A", "1"],
        "min available, max unavailable: {guards}"
    );
    let netpol_row = guards
        .lines()
        .find(|l| l.starts_with("networkpolicy.networking.k8s.io/hello "))
        .unwrap_or_else(|| panic!("no NetworkPolicy row:\n{guards}"));
    assert!(
        netpol_row.contains(" app.kubernetes.io/name=hello "),
        "{guards}"
    );
    let pdb = cluster
        .get_json("/apis/policy/v1/namespaces/hello/poddisruptionbudgets/hello")
        .unwrap();
    assert_eq!(pdb["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow");
    assert_eq!(pdb["metadata"]["generation"], 1);
    let policy = cluster
        .get_json("/apis/networking.k8s.io/v1/namespaces/hello/networkpolicies/hello")
        .unwrap();
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "http");
    assert_eq!(
        policy["metadata"]["managedFields"][0]["manager"], "kubectl",
        "{policy}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_conflicts_between_managers_until_forced() {
    let cluster = fast().await;
    apply(&cluster, "example.com/web:1", 120);
    let scaled = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        scaled.path(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    )
    .unwrap();
    let path = scaled.path().to_str().unwrap();
    let args = [
        "apply",
        "--server-side",
        "--validate=false",
        "--field-manager",
        "ops",
        "-f",
        path,
    ];
    let refused = kubectl(&cluster, &args);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--force-conflicts"),
        "kubectl's advice: {stderr}"
    );
    let replicas = ok(&kubectl(
        &cluster,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    ));
    assert_eq!(replicas, "2", "a refused apply changes nothing");

    ok(&kubectl(
        &cluster,
        &[&args[..], &["--force-conflicts"]].concat(),
    ));
    let yaml = ok(&kubectl(
        &cluster,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
    ));
    assert!(yaml.contains("replicas: 3"), "{yaml}");
    for expected in [
        "manager: ops",
        "manager: kubectl",
        "operation: Apply",
        "fieldsType: FieldsV1",
        "f:replicas: {}",
        "k:{\"name\":\"web\"}:",
    ] {
        assert!(yaml.contains(expected), "{expected} missing from:\n{yaml}");
    }
    let plain = ok(&kubectl(
        &cluster,
        &["get", "deployment", "web", "-o", "yaml"],
    ));
    assert!(
        !plain.contains("managedFields"),
        "kubectl hides them by default:\n{plain}"
    );

    // `kubectl set image` sends a strategic merge patch: containers merge by name, its
    // directives are not stored, and the change is an Update by kubectl-set.
    ok(&kubectl(
        &cluster,
        &["set", "image", "deployment/web", "web=example.com/web:2"],
    ));
    let yaml = ok(&kubectl(
        &cluster,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
    ));
    assert!(yaml.contains("image: example.com/web:2"), "{yaml}");
    assert!(yaml.contains("manager: kubectl-set"), "{yaml}");
    assert!(yaml.contains("operation: Update"), "{yaml}");
    assert!(!yaml.contains("$setElementOrder"), "{yaml}");
}

/// `kubectl get lease` lists Leases with their holder, and `kubectl delete lease` removes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_and_deletes_leases() {
    let cluster = fast().await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: deploy-lock\nspec:\n  holderIdentity: alice@ci pid 7\n  leaseDurationSeconds: 30\n",
    )
    .unwrap();
    ok(&kubectl(
        &cluster,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            file.path().to_str().unwrap(),
        ],
    ));
    let listed = ok(&kubectl(&cluster, &["get", "lease"]));
    let mut lines = listed.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "HOLDER", "AGE"], "{listed}");
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("deploy-lock") && row.contains("alice@ci pid 7"),
        "{listed}"
    );
    let holder = ok(&kubectl(
        &cluster,
        &[
            "get",
            "lease",
            "deploy-lock",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    ));
    assert_eq!(holder, "alice@ci pid 7");
    ok(&kubectl(&cluster, &["delete", "lease", "deploy-lock"]));
    let after = kubectl(&cluster, &["get", "lease"]);
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("No resources found"),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
}
