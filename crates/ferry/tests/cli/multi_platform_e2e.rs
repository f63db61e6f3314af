//! `ferry ship` of a two-platform image to a kubernetes environment that signs and requires
//! signatures: the real binary, Debian's docker-registry, kube-fake; checked with skopeo,
//! `file` and qemu-user-static (called directly: the machine has no binfmt registration).
//!
//! Its name starts with `e2e_`: nextest runs it apart from the other heavy tests, and it
//! shares their checkout and release build (`support::checkout`).

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

fn skopeo_json(args: &[&str]) -> serde_json::Value {
    require_tool("skopeo", "apt-get install skopeo");
    let out = run_ok(Command::new("skopeo").args(args));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The entrypoint binary of the image that `skopeo --override-arch ARCH` picks from `reference`.
fn binary_for(reference: &str, arch: &str, dir: &Path) -> std::path::PathBuf {
    let layout = dir.join(format!("oci-{arch}"));
    run_ok(Command::new("skopeo").args([
        "--override-arch",
        arch,
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:x", layout.display()),
    ]));
    let read_json = |path: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index = read_json(layout.join("index.json"));
    let manifest = read_json(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let gz = std::fs::File::open(blob(manifest["layers"][0]["digest"].as_str().unwrap())).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('/')
            == "hello"
        {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            let out = dir.join(format!("hello-{arch}"));
            std::fs::write(&out, bytes).unwrap();
            // The mode the image gives it (qemu-user runs only executable files).
            let mode = entry.header().mode().unwrap();
            assert_eq!(mode & 0o111, 0o111, "/hello is not executable in the image");
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode)).unwrap();
            return out;
        }
    }
    panic!("no /hello in the {arch} image's first layer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_multi_platform_ship_pushes_a_signed_index_whose_arm64_binary_serves() {
    require_tool("file", "apt-get install file");
    require_tool("qemu-aarch64-static", "apt-get install qemu-user-static");
    let repo = checkout();
    let registry = Registry::start();
    let fake = fast_cluster().await;
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("ferry");
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["keygen", "--key-prefix"])
            .arg(&prefix),
    );
    let repository = format!("{}/ferry/hello", registry.host());
    std::fs::write(
        repo.join("ferry.mp.toml"),
        format!(
            "[service]\npackage = \"hello\"\nbinary = \"hello\"\nport = 8000\nready_path = \"/readyz\"\n\n[image]\nname = \"hello\"\ntag = \"commit\"\nsource = \"https://github.com/ferry-dev/ferry\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
             [environments.e2e]\nkind = \"kubernetes\"\nrepository = \"{repository}\"\nkubeconfig = \"{}\"\nnamespace = \"default\"\nmanifest = \"k8s.yml\"\nvars = {{ REPLICAS = \"2\" }}\n\
             signing_key = \"{}\"\nrequire_signature = \"{}\"\n",
            fake.kubeconfig_path().display(),
            prefix.with_extension("key").display(),
            prefix.with_extension("pub").display(),
        ),
    )
    .unwrap();
    std::fs::write(
        repo.join(".git/info/exclude"),
        "ferry.mp.toml\nferry.e2e.toml\n",
    )
    .unwrap();

    let ship_repo = repo.clone();
    let out = tokio::task::spawn_blocking(move || {
        ferry(
            &ship_repo,
            &[
                "--config",
                "ferry.mp.toml",
                "--output",
                "json",
                "ship",
                "--env",
                "e2e",
                "--skip-tests",
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_matches_schema(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages: Vec<&str> = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "lock",
            "test",
            "build",
            "image",
            "push",
            "sign",
            "check signature",
            "render",
            "deploy",
            "verify"
        ]
    );
    let pinned = summary["image"]["reference"].as_str().unwrap().to_string();
    let tag = summary["image"]["tag"].as_str().unwrap();

    // The tag names an OCI index with one manifest per platform.
    let index = skopeo_json(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repository}:{tag}"),
    ]);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    // Each platform's manifest has its own SBOM referrer (tag fallback on this registry).
    for m in index["manifests"].as_array().unwrap() {
        let digest = m["digest"].as_str().unwrap();
        let sbom = skopeo_json(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{repository}:{}.sbom", digest.replace(':', "-")),
        ]);
        assert_eq!(sbom["artifactType"], "application/vnd.cyclonedx+json");
        assert_eq!(sbom["subject"]["digest"], digest);
    }
    // The layout ship wrote, and the index, manifests, configs, signature, provenance and
    // SBOMs it pushed, validate against the OCI image-spec's own schemas.
    let raw = tempfile::tempdir().unwrap();
    let digest = pinned.rsplit_once('@').unwrap().1;
    let artifact = |d: &str, suffix: &str| format!("{repository}:{}.{suffix}", d.replace(':', "-"));
    let mut documents: Vec<(String, bool)> = vec![(pinned.clone(), false)];
    for suffix in ["sig", "att", "sbom"] {
        documents.push((artifact(digest, suffix), false));
    }
    for m in index["manifests"].as_array().unwrap() {
        let child = m["digest"].as_str().unwrap();
        documents.push((format!("{repository}@{child}"), false));
        documents.push((format!("{repository}@{child}"), true));
        documents.push((artifact(child, "sbom"), false));
    }
    let mut paths = vec![repo.join("target/ferry/oci/hello")];
    for (i, (reference, config)) in documents.iter().enumerate() {
        let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
        if *config {
            args.push("--config");
        }
        let reference = format!("docker://{reference}");
        args.push(&reference);
        let out = run_ok(Command::new("skopeo").args(&args));
        let path = raw.path().join(format!("doc-{i}.json"));
        std::fs::write(&path, &out.stdout).unwrap();
        paths.push(path);
    }
    let mut args = vec![std::ffi::OsStr::new("auto")];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let out = crate::support::images::validate_oci(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    // The layout: oci-layout, index.json, the index, 2 manifests, 2 configs (7); read back:
    // the index, its .sig, .att and .sbom, and per platform the manifest, config and .sbom (10).
    assert_eq!(stdout(&out), "validate-oci: 17 document(s) valid");

    let arm = skopeo_json(&[
        "--override-arch",
        "arm64",
        "inspect",
        "--tls-verify=false",
        &format!("docker://{repository}:{tag}"),
    ]);
    assert_eq!(arm["Architecture"], "arm64");
    assert_eq!(arm["Os"], "linux");

    // The arm64 binary is a static aarch64 executable that serves under qemu.
    let work = tempfile::tempdir().unwrap();
    let binary = binary_for(&pinned, "arm64", work.path());
    let described = stdout(&run_ok(Command::new("file").arg(&binary)));
    assert!(described.contains("ARM aarch64"), "{described}");
    assert!(described.contains("statically linked"), "{described}");
    let amd = binary_for(&pinned, "amd64", work.path());
    let described = stdout(&run_ok(Command::new("file").arg(&amd)));
    assert!(described.contains("x86-64"), "{described}");

    let port = free_port();
    let mut child = Command::new("qemu-aarch64-static")
        .arg(&binary)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = std::panic::catch_unwind(|| {
        wait_for_200(port, "/", Duration::from_secs(30));
        http_get(port, "/").unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    let (status, body) = served.expect("the arm64 binary answers GET / under qemu");
    assert_eq!(status, 200);
    assert!(body.contains("Hello, World!"), "{body}");

    // The index is signed, attested and has an SBOM; the cluster runs it by digest.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["verify-image", &pinned, "--key"])
        .arg(prefix.with_extension("pub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let deployment = fake
        .get_json("/apis/apps/v1/namespaces/default/deployments/hello")
        .expect("deployed");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        pinned.as_str()
    );
}
