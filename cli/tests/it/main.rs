//! The integration tests, one binary (cargo's and jj's shape): a module
//! per area, `common` for what they share. One binary links once, so the
//! suite builds in a fraction of the time 28 binaries took; run one area
//! with `cargo test --workspace --all-features --test it AREA::`.
//!
//! The fakes (the API server, fake-helm, the local stack) are the
//! telltale-testing package's (testing/). `--workspace` selects that
//! package's smoke test, also named `it`, so cargo rebuilds its binaries
//! too; `common::fake_helm()` and `common::local_stack_bin()` refuse a
//! binary that is missing or older than its sources.

mod common;

mod bad_input;
mod bundles;
mod cli;
mod dashboards;
mod drift;
mod errors;
mod escalation;
mod expectations;
mod fake_api;
mod fleet;
mod gitops;
mod gitops_reconcile;
mod helm_real;
mod hostile;
mod hub;
mod inhibition;
mod init;
mod install;
mod k6_real;
mod local_stack;
mod metrics;
mod plugins;
mod properties;
mod readme;
mod routing;
mod schemas;
mod set_helm;
mod verify;
mod verify_cluster;
mod verify_profiles;
mod verify_safety;
