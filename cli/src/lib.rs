//! telltale: render, install, verify and hand to GitOps an observability
//! stack on Kubernetes.
//!
//! The library is split so the core stays pure: `model` parses documents,
//! `catalog` finds profiles and plugins (embedded or on disk), `render` turns
//! them into a [`render::Bundle`] without I/O; the use cases (`install`,
//! `verify`, `gitops`, `fleet`, reached through `session`) do the work and
//! report through [`report::Reporter`]; `commands` parse flags, call one use
//! case and print through `ui`, the only module that writes to the terminal.

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
