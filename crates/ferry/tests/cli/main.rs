//! ferry's integration tests, one binary (one link, and the support code compiled once):
//! each module is what one file of tests checks, through the real `ferry` binary and the real
//! parts a user would have (a registry, podman, git, kubectl), or kube-fake.
//!
//! Modules whose tests are named `e2e_*` build and ship real services; `.config/nextest.toml`
//! runs them in lanes so they share the two cores without starving each other.

mod support;

mod any_service_e2e;
mod cli_errors;
mod credentials;
mod dependencies;
mod deploy_fake;
mod deploy_wire;
mod dev_e2e;
mod image_e2e;
mod multi_platform_e2e;
mod promote_e2e;
mod rbac_fake;
mod registry_auth;
mod registry_faults;
mod registry_scopes;
mod ship_e2e;
mod ship_kubernetes_e2e;
mod supply_chain;
