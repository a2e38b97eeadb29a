//! telltale: render, install, verify and hand to GitOps an observability
//! stack on Kubernetes.
//!
//! The library is split so the core stays pure: `model` parses documents,
//! `catalog` finds profiles and plugins (embedded or on disk), `render` turns
//! them into a [`render::Bundle`] without I/O; `commands` and `ui` are the
//! only places that print.

pub mod catalog;
pub mod cluster;
pub mod commands;
pub mod error;
pub mod executables;
pub mod fleet;
pub mod gitops;
pub mod helm;
pub mod init;
pub mod install;
pub mod lint;
pub mod model;
pub mod outdir;
pub mod planning;
pub mod plural;
pub mod process;
pub mod render;
pub mod report;
pub mod runbooks;
pub mod secrets;
pub mod session;
pub mod tools;
pub mod ui;
pub mod verify;
