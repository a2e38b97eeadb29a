//! `telltale version`: the build (version, git commit) and what it supports:
//! the Kubernetes and helm versions preflight accepts and the chart versions
//! the catalogue pins.

use clap::Args;
use serde::Serialize;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::ui::{Printer, table};

/// Print telltale's version, git commit and the versions it supports
#[derive(Debug, Args)]
pub struct VersionArgs {}

/// `telltale --version` and `telltale version`'s first line.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TELLTALE_GIT_COMMIT"),
    ")"
);

#[derive(Serialize)]
struct Report {
    version: &'static str,
    commit: &'static str,
    kubernetes: String,
    helm: String,
    charts: Vec<Chart>,
}

#[derive(Serialize)]
struct Chart {
    plugin: String,
    chart: String,
    version: String,
    repository: String,
}

pub fn run(_args: VersionArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    let catalog = global.catalog()?;
    let charts = catalog
        .plugins
        .iter()
        .filter_map(|(name, entry)| {
            let chart = entry.plugin.spec.chart.as_ref()?;
            Some(Chart {
                plugin: name.clone(),
                chart: chart.name.clone(),
                version: chart.version.clone(),
                repository: chart.repository.clone(),
            })
        })
        .collect();
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("TELLTALE_GIT_COMMIT"),
        kubernetes: format!(">= 1.{}", crate::session::MIN_KUBERNETES_MINOR),
        helm: format!(">= {} (3.x and 4.x)", crate::helm::MIN_VERSION),
        charts,
    };
    if printer.is_json() {
        printer.json(&report);
        return Ok(());
    }
    printer.out(&format!("telltale {LONG_VERSION}"));
    printer.out(&format!(
        "supports Kubernetes {}, helm {}",
        report.kubernetes, report.helm
    ));
    let rows = report
        .charts
        .iter()
        .map(|c| vec![c.plugin.clone(), c.chart.clone(), c.version.clone()])
        .collect();
    printer.out(&table::render(&["plugin", "chart", "version"], rows));
    Ok(())
}
