//! telltale: render, install, verify and hand to GitOps an observability
//! stack on Kubernetes.
//!
//! The pure core (documents, catalog, render, secrets, lint) is the
//! `telltale-core` crate, re-exported here under the same paths; this crate
//! adds what talks to the world: the cluster, helm and other programs, and
//! the use cases (`install`, `verify`, `gitops`, `fleet`, `init`, reached
//! through `session`) that do the work and report through
//! [`report::Reporter`]; `commands` parse flags, call one use case and print
//! through `ui`, the only module that writes to the terminal.

pub use telltale_core::{catalog, dashboard, lint, model, paths, plural, render, secrets};

pub mod cluster;
pub mod commands;
pub mod error;
pub mod executables;
pub mod fleet;
pub mod gitops;
pub mod helm;
pub mod init;
pub mod install;
pub mod outdir;
pub mod planning;
pub mod process;
pub mod report;
pub mod runbooks;
pub mod session;
pub mod tools;
pub mod ui;
pub mod verify;
