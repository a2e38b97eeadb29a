//! telltale: render, install, verify and hand to GitOps an observability
//! stack on Kubernetes.
//!
//! The pure core (documents, catalog, render, secrets, lint) is the
//! `telltale-core` crate, re-exported here under the same paths; this crate
//! adds what talks to the world: the cluster, helm and other programs, the
//! workflows (`install`, `verify`, `gitops`, `init`), and the commands and
//! terminal (`commands`, `ui`: the only places that print).

pub use telltale_core::{catalog, dashboard, lint, model, paths, plural, render, secrets};

pub mod cluster;
pub mod commands;
pub mod error;
pub mod gitops;
pub mod helm;
pub mod init;
pub mod install;
pub mod outdir;
pub mod process;
pub mod tools;
pub mod ui;
pub mod verify;
