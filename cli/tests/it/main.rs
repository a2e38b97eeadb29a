//! The integration tests, one binary (cargo's and jj's shape): a module
//! per area, `common` for what they share. One binary links once, so the
//! suite builds in a fraction of the time 28 binaries took; run one area
//! with `cargo test -p telltale --all-features --test it AREA::`.
//!
//! The areas that drive the local stack or the fault-injecting helm need
//! the binaries those features build; without the features they are left
//! out, as their own test targets were before.

mod common;

mod bad_input;
mod bundles;
mod cli;
mod dashboards;
mod drift;
mod errors;
#[cfg(feature = "local-stack")]
mod escalation;
mod expectations;
mod fake_api;
mod fleet;
#[cfg(feature = "fake-helm")]
mod gitops;
mod gitops_reconcile;
mod helm_real;
mod hostile;
mod hub;
mod inhibition;
mod init;
#[cfg(feature = "fake-helm")]
mod install;
#[cfg(feature = "local-stack")]
mod k6_real;
#[cfg(feature = "local-stack")]
mod local_stack;
mod metrics;
mod plugins;
mod properties;
mod readme;
#[cfg(feature = "local-stack")]
mod routing;
mod schemas;
mod set_helm;
#[cfg(feature = "local-stack")]
mod verify;
mod verify_cluster;
#[cfg(feature = "local-stack")]
mod verify_profiles;
mod verify_safety;
