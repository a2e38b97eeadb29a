//! telltale's pure core: the documents (`model`), the built-in profiles and
//! plugins (`catalog`), the bundle (`render`), secret sources and the
//! redacting `Secret` (`secrets`), and the content checks (`lint`).
//!
//! Nothing here reaches a cluster, the network, a process or the terminal,
//! and nothing here is async: the crate has no tokio, kube, reqwest, git or
//! terminal dependency, so the compiler keeps it pure (`cargo tree -p
//! telltale-core -e normal` shows it). The one file-system reader is
//! `catalog`, for `--plugin-dir` trees and the documents a command names.

pub mod catalog;
pub mod dashboard;
pub mod lint;
pub mod model;
pub mod paths;
pub mod plural;
pub mod render;
pub mod secrets;
