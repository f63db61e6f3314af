//! Crates that Cargo.lock is held, or ferry written, to keep out. Each cost compile time on every clean clone
//! (`ferry ship` compiles ferry first) and brought nothing ferry uses; `cargo update` would
//! bring them back without a word, so this says which hold broke and how to restore it.

use crate::support::workspace;

/// (package kept out, who pulls it, how to hold it off).
const KEPT_OUT: &[(&str, &str, &str)] = &[
    (
        "icu_properties",
        "url → idna → idna_adapter 1.2 (ICU4X, about 6 s of compile units)",
        "cargo update -p idna_adapter --precise 1.1.0   # unicode-rs tables: the same IDNA, 1.5 s",
    ),
    (
        "psm",
        "kube's JSONPath → pest 2.9's stack guard (psm and object, through a build script)",
        "cargo update -p pest --precise 2.8.3",
    ),
    (
        "time",
        "a second date library: k8s-openapi and kube compile jiff, which ferry uses",
        "use jiff (`jiff::Timestamp`) for dates and times",
    ),
    (
        "h2",
        "HTTP/2 for the registry and Kubernetes clients, which speak HTTP/1.1 here",
        "keep reqwest's `http2` and hyper's `http2` features off",
    ),
];

#[test]
fn the_lockfile_keeps_out_the_crates_held_off_for_compile_time() {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).expect("read Cargo.lock");
    let packages: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(
        packages.contains(&"kube-client"),
        "parsed no packages from Cargo.lock"
    );
    let broken: Vec<String> = KEPT_OUT
        .iter()
        .filter(|(name, ..)| packages.contains(name))
        .map(|(name, why, fix)| format!("{name} is back in Cargo.lock ({why})\n  fix: {fix}"))
        .collect();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
