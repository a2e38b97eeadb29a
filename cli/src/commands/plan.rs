//! `telltale plan`: render the bundle to a directory and print the phases.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Args;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::fleet::plan::Planned;
/// Where the tests' helpers (and older callers) find it; it lives in `planning`.
pub use crate::planning::write_bundle;
use crate::render::{self, Bundle};
use crate::ui::{Printer, table};

/// Render the bundle (helm values, manifests per phase, rules and their
/// tests, alertmanager.yaml, dashboards, runbooks, plan.json) to a directory
/// and print the phase plan. Needs no cluster. The same input always gives
/// the same bytes. With a Fleet config: one bundle per cluster in
/// OUT/<cluster>/ and OUT/fleet.json.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Where to write the bundle; replaced only when empty or holding a
    /// bundle telltale wrote (every file listed in its plan.json, unchanged)
    #[arg(long, value_name = "DIR", default_value = "telltale-out")]
    pub out: PathBuf,
    /// Do not run promtool and amtool on the rendered bundle (by default
    /// they run when found on PATH, and a bundle they refuse is not written)
    #[arg(long)]
    pub no_tool_check: bool,
}

pub fn run(args: PlanArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    if let Some(fleet) = global.fleet()? {
        let planned = crate::fleet::plan::run(
            &fleet,
            &args.out,
            args.no_tool_check,
            &global.fleet_inputs(),
            &crate::ui::reporter::Terminal::new(printer),
        )?;
        print_fleet(printer, &fleet, &planned, &args.out);
        return Ok(());
    }
    let catalog = global.catalog()?;
    let request = global.request()?;
    let bundle = render::render(&catalog, &request)?;
    for warning in &bundle.plan.warnings {
        printer.warn(warning);
    }
    if !args.no_tool_check {
        crate::planning::tool_check(&catalog, &bundle)?;
    }
    crate::planning::write_bundle(&bundle, &args.out)?;
    if printer.is_json() {
        printer.json_text(&bundle.plan_json);
        return Ok(());
    }
    printer.out(&phase_table(&bundle));
    let needs = bundle.plan.requirements();
    if !needs.is_empty() {
        printer.status(&format!(
            "\n`telltale up` will read (secret sources; the values never enter the bundle):\n  {}",
            needs.join("\n  ")
        ));
    }
    printer.status(&format!(
        "\nprofile {} · {} · {} written to {} · digest {}",
        bundle.plan.profile,
        crate::plural::count(bundle.plan.plugins.len(), "plugin"),
        crate::plural::count(bundle.files.len() + 1, "file"),
        args.out.display(),
        &bundle.plan.digest[..12],
    ));
    Ok(())
}

pub fn phase_table(bundle: &Bundle) -> String {
    let rows = bundle
        .plan
        .phases
        .iter()
        .map(|phase| {
            let mut kinds: Vec<String> = Vec::new();
            let applies = phase
                .steps
                .iter()
                .filter(|s| matches!(s, render::plan::Step::Apply { .. }))
                .count();
            for step in &phase.steps {
                if !matches!(
                    step,
                    render::plan::Step::Apply { .. } | render::plan::Step::Check { .. }
                ) {
                    kinds.push(step.describe());
                }
            }
            if applies > 0 {
                kinds.push(format!("apply {}", crate::plural::count(applies, "object")));
            }
            let checks = phase
                .steps
                .iter()
                .filter(|s| matches!(s, render::plan::Step::Check { .. }))
                .count();
            if checks > 0 {
                kinds.push(crate::plural::count(checks, "check"));
            }
            vec![
                format!("{:02}", phase.index),
                phase.name.to_string(),
                phase.steps.len().to_string(),
                if kinds.is_empty() {
                    "—".to_string()
                } else {
                    kinds.join("; ")
                },
            ]
        })
        .collect();
    table::render(&["#", "phase", "steps", "what"], rows)
}

/// A fleet's plan: fleet.json with `-o json`, else a row per cluster.
fn print_fleet(printer: &Printer, fleet: &crate::fleet::Fleet, planned: &Planned, out: &Path) {
    if printer.is_json() {
        printer.json_text(&planned.index);
        return;
    }
    let rows = fleet
        .members()
        .zip(&planned.bundles)
        .map(|(c, b)| {
            vec![
                c.name.clone(),
                c.context.clone(),
                b.plan.profile.clone(),
                b.plan.plugins.len().to_string(),
                (b.files.len() + 1).to_string(),
                b.plan.digest[..12].to_string(),
            ]
        })
        .collect();
    printer.out(&table::render(
        &[
            "cluster", "context", "profile", "plugins", "files", "digest",
        ],
        rows,
    ));
    let needs: BTreeSet<String> = planned
        .bundles
        .iter()
        .flat_map(|b| b.plan.requirements())
        .collect();
    if !needs.is_empty() {
        printer.status(&format!(
            "\n`telltale up` will read (secret sources, in the clusters' runs; the values never enter a bundle):\n  {}",
            needs.into_iter().collect::<Vec<_>>().join("\n  ")
        ));
    }
    printer.status(&format!(
        "\nfleet {} · {} · {} written to {} (one directory per cluster, fleet.json)",
        fleet.name(),
        crate::plural::count(planned.bundles.len(), "cluster"),
        crate::plural::count(planned.written + 1, "file"),
        out.display(),
    ));
}
