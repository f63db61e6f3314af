//! `ferry promote` end to end: a real registry (docker-registry), the fake API server with a
//! staging and a production namespace, the real binary, skopeo and kubectl. Nothing is built:
//! the staging image is pushed by hand, so a cargo build could not even find a service.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use kube_fake::{FakeCluster, Fault};
use serde_json::json;

const COMMIT_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const COMMIT_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A small single-layer OCI image pushed to `repo` (`ferry/staging-hello`); its digest.
async fn push_image(registry: &Registry, repo: &str, layer: &[u8]) -> String {
    push_small_image(&registry.host(), repo, layer).await
}

fn skopeo_digest(reference: &str) -> String {
    require_tool("skopeo", "apt-get install skopeo");
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{reference}"),
    ]));
    sha256(&out.stdout)
}

fn kubectl(fake: &FakeCluster, args: &[&str]) -> String {
    require_tool(
        "kubectl",
        "install kubectl 1.32 from https://dl.k8s.io/release/v1.32.0/bin/linux/amd64/kubectl",
    );
    stdout(&run_ok(
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(fake.kubeconfig_path())
            .args(args),
    ))
}

/// `ferry ARGS` in `dir`. A `COMMIT=HASH` argument is the deployed commit, passed as ferry
/// reads it outside a git checkout (the environment; `--var` may not set ferry's own COMMIT).
async fn ferry_in(dir: &Path, args: &[&str]) -> std::process::Output {
    ferry_with(dir, args, &[]).await
}

/// [`ferry_in`] with more environment variables.
async fn ferry_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let commit = args.iter().find_map(|a| a.strip_prefix("COMMIT="));
    let args: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with("COMMIT="))
        .collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    if let Some(commit) = commit {
        command.env("COMMIT", commit);
    } else {
        command.env_remove("COMMIT");
    }
    command
        .args(&args)
        .current_dir(dir)
        .env("FERRY_OUTPUT", "plain")
        .env("CIRCLE_USERNAME", "ci-alice")
        .env_remove("FERRY_ENV")
        .env_remove("FERRY_CONFIG")
        .env_remove("KUBECONFIG")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null());
    tokio::task::spawn_blocking(move || command.output().expect("run ferry"))
        .await
        .unwrap()
}

/// `ferry deploy --env staging --image IMAGE` as of `commit`.
async fn deploy_staging(dir: &Path, image: &str, commit: &str) -> std::process::Output {
    let commit = format!("COMMIT={commit}");
    ferry_in(
        dir,
        &["deploy", "--env", "staging", "--image", image, &commit],
    )
    .await
}

/// Every object of the kinds a deploy touches in `namespace`, by name (kubectl's view).
fn objects_in(fake: &FakeCluster, namespace: &str) -> String {
    kubectl(
        fake,
        &[
            "get",
            "deploy,rs,pods,svc,cm,secrets,leases",
            "-n",
            namespace,
            "-o",
            "name",
        ],
    )
}

fn image_in(fake: &FakeCluster, namespace: &str) -> String {
    fake.get_json(&format!(
        "/apis/apps/v1/namespaces/{namespace}/deployments/hello"
    ))
    .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_copies_the_running_digest_to_another_repository_and_deploys_it() {
    let registry = Registry::start();
    let fake = fast_cluster().await;
    kubectl(&fake, &["create", "namespace", "staging"]);
    kubectl(&fake, &["create", "namespace", "production"]);
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let manifest = repository_manifest();
    let env = |name: &str| {
        let repository = format!("{host}/ferry/{name}-hello");
        kubernetes_env(name, &repository, fake.kubeconfig_path(), name, &manifest) + "\n"
    };
    // An environment with `approval = true` is not promoted to without --approve.
    let gated = env("production").replace("[environments.production]", "[environments.gated]")
        + "approval = true\n\n";
    // A third environment in another registry: there blobs are copied, not mounted.
    let other = Registry::start();
    kubectl(&fake, &["create", "namespace", "mirror"]);
    let mirror = env("mirror").replace(&host, &other.host());
    std::fs::write(
        dir.path().join("ferry.toml"),
        format!(
            "[image]\nname = \"hello\"\n\n{}{}{mirror}{gated}",
            env("staging"),
            env("production")
        ),
    )
    .unwrap();

    // Staging runs commit A, pushed (not built) to its repository.
    let d1 = push_image(&registry, "ferry/staging-hello", b"layer one").await;
    let staged = format!("{host}/ferry/staging-hello@{d1}");
    let out = deploy_staging(dir.path(), &staged, COMMIT_A).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let out = ferry_in(
        dir.path(),
        &[
            "--output",
            "json",
            "promote",
            "--from",
            "staging",
            "--to",
            "production",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["source"]["environment"], "staging");
    assert_eq!(doc["source"]["commit"], COMMIT_A);
    assert_eq!(doc["source"]["digest"], d1.as_str());
    let promoted = format!("{host}/ferry/production-hello@{d1}");
    assert_eq!(doc["image"], promoted.as_str());
    assert_eq!(doc["rollout"]["outcome"], "succeeded");
    assert_eq!(
        doc["copied"]["mounted"].as_array().unwrap().len(),
        2,
        "one registry: config and layer mounted, not sent: {doc}"
    );
    // Unsigned, to a target that does not require signatures: promoted, no artifacts.
    assert_eq!(doc["copied"]["artifacts"], json!([]), "{doc}");
    // The same digest in both repositories, by the registry's own account.
    assert_eq!(skopeo_digest(&staged), d1);
    assert_eq!(skopeo_digest(&promoted), d1);
    assert_eq!(image_in(&fake, "production"), promoted);
    assert_eq!(
        fake.get_json("/apis/apps/v1/namespaces/production/deployments/hello")
            .unwrap()["metadata"]["annotations"]["ferry.dev/commit"],
        COMMIT_A
    );
    assert!(
        !dir.path().join("target").exists(),
        "nothing was built: no target/ in the project"
    );

    let out = ferry_in(
        dir.path(),
        &["promote", "--from", "staging", "--to", "gated"],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("environment `gated` requires approval")
            && stderr(&out).contains("re-run with --approve"),
        "{}",
        stderr(&out)
    );

    let out = ferry_in(
        dir.path(),
        &[
            "--output", "json", "promote", "--from", "staging", "--to", "mirror",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["copied"]["copied"].as_array().unwrap().len(),
        2,
        "across registries the blobs are copied: {doc}"
    );
    let mirrored = format!("{}/ferry/mirror-hello@{d1}", other.host());
    assert_eq!(skopeo_digest(&mirrored), d1);
    assert_eq!(image_in(&fake, "mirror"), mirrored);

    // A promote whose rollout fails rolls the target back and leaves the source untouched.
    let d2 = push_image(&registry, "ferry/staging-hello", b"layer two").await;
    let staged2 = format!("{host}/ferry/staging-hello@{d2}");
    let out = deploy_staging(dir.path(), &staged2, COMMIT_B).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let staging_before = fake
        .get_json("/apis/apps/v1/namespaces/staging/deployments/hello")
        .unwrap();
    fake.inject(
        &format!("{host}/ferry/production-hello@{d2}"),
        Fault::ImagePull,
    );
    let out = ferry_in(
        dir.path(),
        &["promote", "--from", "staging", "--to", "production"],
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot pull image") && err.contains("which is serving again"),
        "{err}"
    );
    assert_eq!(
        image_in(&fake, "production"),
        promoted,
        "production rolled back to A"
    );
    let staging_after = fake
        .get_json("/apis/apps/v1/namespaces/staging/deployments/hello")
        .unwrap();
    assert_eq!(
        staging_before["metadata"]["resourceVersion"], staging_after["metadata"]["resourceVersion"],
        "the source is only read"
    );
    assert_eq!(image_in(&fake, "staging"), staged2);

    // The history of production has both promotes; --commit promotes an earlier revision.
    let out = ferry_in(
        dir.path(),
        &["--output", "json", "history", "--env", "production"],
    )
    .await;
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<(&str, &str, &str)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["what"].as_str().unwrap(),
                r["commit"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("promote", COMMIT_B, "rolled_back"),
            ("promote", COMMIT_A, "succeeded")
        ]
    );
    fake.clear_faults();
    let out = ferry_in(
        dir.path(),
        &[
            "promote",
            "--from",
            "staging",
            "--to",
            "production",
            "--commit",
            &COMMIT_B[..8],
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        image_in(&fake, "production"),
        format!("{host}/ferry/production-hello@{d2}")
    );
}

/// GET of a manifest by its tag or digest in `repo`: the HTTP status.
fn manifest_status(registry: &Registry, repo: &str, reference: &str) -> u16 {
    let (status, _) =
        http_get(registry.port, &format!("/v2/{repo}/manifests/{reference}")).unwrap();
    status
}

fn verify_image(reference: &str, public: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["verify-image", reference, "--key"])
        .arg(public)
        .env("FERRY_OUTPUT", "plain")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_carries_a_signed_multi_platform_index_and_refuses_an_unsigned_one() {
    use crate::support::images::*;
    let registry = Registry::start();
    let other = Registry::start();
    let fake = fast_cluster().await;
    for ns in ["staging", "production", "mirror"] {
        kubectl(&fake, &["create", "namespace", ns]);
    }
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keygen(dir.path(), "ferry");
    let (other_private, _) = keygen(dir.path(), "other");
    let host = registry.host();
    let manifest = repository_manifest();
    let env = |name: &str, host: &str, require: bool| {
        let repository = format!("{host}/ferry/{name}-hello");
        let mut s = kubernetes_env(name, &repository, fake.kubeconfig_path(), name, &manifest);
        if require {
            s.push_str(&format!("require_signature = \"{}\"\n", public.display()));
        }
        s + "\n"
    };
    std::fs::write(
        dir.path().join("ferry.toml"),
        format!(
            "[image]\nname = \"hello\"\n\n{}{}{}",
            env("staging", &host, false),
            env("production", &host, true),
            env("mirror", &other.host(), true),
        ),
    )
    .unwrap();

    // Staging runs a two-platform index, pushed unsigned (staging requires nothing).
    let image = two_platform_image(dir.path(), "mp");
    let staging_repo: ferry::registry::Repository =
        format!("{host}/ferry/staging-hello").parse().unwrap();
    ferry::registry::push(&image, &staging_repo, &Default::default())
        .await
        .unwrap();
    let digest = image.manifest.digest.clone();
    assert_eq!(
        image.manifest.media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    let staged = format!("{staging_repo}@{digest}");
    let out = deploy_staging(dir.path(), &staged, COMMIT_A).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let staging_before = fake
        .get_json("/apis/apps/v1/namespaces/staging/deployments/hello")
        .unwrap();
    let production_before = objects_in(&fake, "production");

    // Unsigned, then signed with a key production does not trust: refused before anything
    // is copied, locked or applied.
    for signed_by in [None, Some(&other_private)] {
        if let Some(key) = signed_by {
            sign_like_ship(&staging_repo.to_string(), &image, key).await;
        }
        let out = ferry_in(
            dir.path(),
            &["promote", "--from", "staging", "--to", "production"],
        )
        .await;
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("refusing to promote"), "{err}");
        assert!(err.contains("nothing was copied or applied"), "{err}");
        assert!(
            err.contains(&public.display().to_string()),
            "names the key: {err}"
        );
        assert!(err.contains("hint:"), "{err}");
        assert!(
            fake.get_json("/apis/apps/v1/namespaces/production/deployments/hello")
                .is_none(),
            "a Deployment was applied"
        );
        assert_eq!(
            objects_in(&fake, "production"),
            production_before,
            "the production namespace is unchanged"
        );
        assert_eq!(
            manifest_status(&registry, "ferry/production-hello", &digest),
            404,
            "nothing was copied to the target repository"
        );
    }

    // Signed as `ferry ship` signs: promoted, the index and each platform's manifest with the
    // same digests, the signature, provenance and SBOMs carried along.
    sign_like_ship(&staging_repo.to_string(), &image, &private).await;
    let out = ferry_in(
        dir.path(),
        &[
            "--output",
            "json",
            "promote",
            "--from",
            "staging",
            "--to",
            "production",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let promoted = format!("{host}/ferry/production-hello@{digest}");
    assert_eq!(doc["image"], promoted.as_str());
    assert_eq!(doc["rollout"]["outcome"], "succeeded");
    let children: Vec<String> = image
        .platforms
        .iter()
        .map(|(_, c)| c.manifest.digest.clone())
        .collect();
    assert_eq!(doc["copied"]["manifests"], json!(children), "{doc}");
    let tag = |d: &str, suffix: &str| format!("{}.{suffix}", d.replace(':', "-"));
    let mut artifacts = vec![
        tag(&digest, "sig"),
        tag(&digest, "att"),
        tag(&digest, "sbom"),
    ];
    artifacts.extend(children.iter().map(|c| tag(c, "sbom")));
    assert_eq!(doc["copied"]["artifacts"], json!(artifacts), "{doc}");
    assert!(
        doc["copied"]["copied"].as_array().unwrap().is_empty()
            && !doc["copied"]["mounted"].as_array().unwrap().is_empty(),
        "one registry: every blob mounted, none sent: {doc}"
    );
    let staged_raw = skopeo_digest(&staged);
    assert_eq!(staged_raw, digest);
    assert_eq!(skopeo_digest(&promoted), digest);
    for child in &children {
        assert_eq!(
            skopeo_digest(&format!("{host}/ferry/production-hello@{child}")),
            *child
        );
    }
    for artifact in &artifacts {
        assert_eq!(
            skopeo_digest(&format!("{host}/ferry/production-hello:{artifact}")),
            skopeo_digest(&format!("{host}/ferry/staging-hello:{artifact}")),
            "{artifact} is the same manifest in both repositories"
        );
    }
    let out = verify_image(&promoted, &public);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), promoted);
    assert_eq!(image_in(&fake, "production"), promoted);
    let staging_after = fake
        .get_json("/apis/apps/v1/namespaces/staging/deployments/hello")
        .unwrap();
    assert_eq!(
        staging_before["metadata"]["resourceVersion"], staging_after["metadata"]["resourceVersion"],
        "the source is only read"
    );

    // Another registry: the blobs are copied, and the copy verifies there too.
    let out = ferry_in(
        dir.path(),
        &[
            "--output", "json", "promote", "--from", "staging", "--to", "mirror",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["copied"]["mounted"].as_array().unwrap().is_empty()
            && !doc["copied"]["copied"].as_array().unwrap().is_empty(),
        "across registries the blobs are copied: {doc}"
    );
    assert_eq!(doc["copied"]["artifacts"], json!(artifacts), "{doc}");
    let mirrored = format!("{}/ferry/mirror-hello@{digest}", other.host());
    assert_eq!(skopeo_digest(&mirrored), digest);
    let out = verify_image(&mirrored, &public);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(image_in(&fake, "mirror"), mirrored);
}

/// A target that signs what it runs (`signing_key`, `binauthz`): the promoted copy keeps the
/// build's signature, which the target's `require_signature` checks before anything is
/// copied, and gets the target's own beside it, and one Binary Authorization attestation for
/// the target repository's digest, all before the rollout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_into_a_signing_environment_signs_the_copy_and_attests_it() {
    use crate::support::container_analysis::*;
    use crate::support::images::*;
    let registry = Registry::start();
    let fake = fast_cluster().await;
    for ns in ["staging", "production"] {
        kubectl(&fake, &["create", "namespace", ns]);
    }
    let dir = tempfile::tempdir().unwrap();
    let (build_private, build_public) = keygen(dir.path(), "build");
    let (production_private, production_public) = keygen(dir.path(), "production");
    let (endpoint, seen) = fake_container_analysis(Answer::Create).await;
    let host = registry.host();
    let manifest = repository_manifest();
    let env = |name: &str| {
        let repository = format!("{host}/ferry/{name}-hello");
        kubernetes_env(name, &repository, fake.kubeconfig_path(), name, &manifest)
    };
    std::fs::write(
        dir.path().join("ferry.toml"),
        format!(
            "[image]\nname = \"hello\"\n\n{}\n{}require_signature = \"{}\"\nsigning_key = \"{}\"\nbinauthz = {{ attestor = \"projects/ferry-production/attestors/ferry\", note = \"projects/ferry-production/notes/ferry-note\", public_key_id = \"ni:///sha-256;production\" }}\n",
            env("staging"),
            env("production"),
            build_public.display(),
            production_private.display(),
        ),
    )
    .unwrap();

    let image = two_platform_image(dir.path(), "signing");
    let staging_repo = format!("{host}/ferry/staging-hello");
    ferry::registry::push(&image, &staging_repo.parse().unwrap(), &Default::default())
        .await
        .unwrap();
    sign_like_ship(&staging_repo, &image, &build_private).await;
    let digest = image.manifest.digest.clone();
    let staged = format!("{staging_repo}@{digest}");
    let out = deploy_staging(dir.path(), &staged, COMMIT_A).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let google = [
        ("FERRY_CONTAINERANALYSIS_ENDPOINT", endpoint.as_str()),
        ("FERRY_KMS_TOKEN", "test-token"),
    ];
    let out = ferry_with(
        dir.path(),
        &["promote", "--from", "staging", "--to", "production"],
        &google,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for stage in ["check signature", "copy", "sign", "attest", "deploy"] {
        assert!(err.contains(stage), "no {stage} stage in:\n{err}");
    }
    let promoted = format!("{host}/ferry/production-hello@{digest}");
    assert_eq!(image_in(&fake, "production"), promoted);

    // Both signatures verify on the copy: the build's (carried) and production's (made here).
    let options = ferry::registry::PushOptions::default();
    for public in [&build_public, &production_public] {
        let checked = ferry::supply::require_signature(&promoted, public, &options).await;
        assert_eq!(checked.unwrap(), promoted, "{}", public.display());
    }
    // The staging repository's signature is the build's alone.
    assert!(
        ferry::supply::require_signature(&staged, &production_public, &options)
            .await
            .is_err(),
        "production's key signed only its own copy"
    );

    // One attestation, for the production repository's digest, signed with production's key.
    let created = seen.lock().unwrap().created.clone();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        created[0]["noteName"],
        "projects/ferry-production/notes/ferry-note"
    );
    assert_eq!(created[0]["resourceUri"], format!("https://{promoted}"));
    let (payload, signature, id) = attestation_parts(&created[0]);
    assert_eq!(id, "ni:///sha-256;production");
    assert_binauthz_payload(&payload, &format!("{host}/ferry/production-hello"), &digest);
    let key = ferry::sign::read_public_key(&production_public).unwrap();
    assert!(ferry::sign::verify(&key, &payload, &signature));

    // A refused attestation stops the promote before the rollout: production keeps running
    // what it ran, and says why.
    let (refusing, _) = fake_container_analysis(Answer::Refuse).await;
    let out = ferry_with(
        dir.path(),
        &["promote", "--from", "staging", "--to", "production"],
        &[
            ("FERRY_CONTAINERANALYSIS_ENDPOINT", refusing.as_str()),
            ("FERRY_KMS_TOKEN", "test-token"),
        ],
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot attest"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    assert_eq!(image_in(&fake, "production"), promoted);
}
