//! Fakes for telltale's tests, kept out of the product package so that
//! `telltale` carries none of them (nor axum, which they serve with):
//!
//! - [`fake_api`]: a **fake** Kubernetes API server, in-process, for the
//!   installer, verify and fleet tests (the machines the tests run on have no
//!   cluster);
//! - the binaries `fake-helm` (a helm that fails or stalls on cue) and
//!   `telltale-local-stack` (real Prometheus, Alertmanager and node-exporter
//!   on 127.0.0.1 with fake Loki, Grafana, SMTP and a notification sink),
//!   which tests of another package find with [`bins::path`].
//!
//! `telltale` dev-depends on this crate, and this crate depends on
//! `telltale` (the local stack loads bundles with telltale's own code): a
//! dev-dependency cycle, which cargo allows.

pub mod bins;
pub mod fake_api;
