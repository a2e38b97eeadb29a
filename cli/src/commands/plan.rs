//! `telltale plan`: render the bundle to a directory and print the phases.

use std::path::{Path, PathBuf};

use clap::Args;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::render::{self, Bundle};
use crate::ui::{Printer, table};

/// Render the bundle (helm values, manifests per phase, rules and their
/// tests, alertmanager.yaml, dashboards, runbooks, plan.json) to a directory
/// and print the phase plan. Needs no cluster. The same input always gives
/// the same bytes.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Where to write the bundle; replaced only when empty or holding a
    /// bundle telltale wrote (every file listed in its plan.json, unchanged)
    #[arg(long, value_name = "DIR", default_value = "telltale-out")]
    pub out: PathBuf,
}

pub fn run(args: PlanArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    let catalog = global.catalog()?;
    let request = global.request()?;
    let bundle = render::render(&catalog, &request)?;
    for warning in &bundle.plan.warnings {
        printer.warn(warning);
    }
    write_bundle(&bundle, &args.out)?;
    if printer.is_json() {
        printer.out(bundle.plan_json.trim_end());
        return Ok(());
    }
    printer.out(&phase_table(&bundle));
    printer.status(&format!(
        "\nprofile {} · {} plugins · {} files written to {} · digest {}",
        bundle.plan.profile,
        bundle.plan.plugins.len(),
        bundle.files.len() + 1,
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
                kinds.push(format!("apply {applies} objects"));
            }
            let checks = phase
                .steps
                .iter()
                .filter(|s| matches!(s, render::plan::Step::Check { .. }))
                .count();
            if checks > 0 {
                kinds.push(format!("{checks} checks"));
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

/// Writes the bundle to `out` through sibling directories, so `out` holds
/// either the old bundle or the new one, never a mix; refuses to replace a
/// directory holding anything telltale did not write (see [`crate::outdir`]).
pub fn write_bundle(bundle: &Bundle, out: &Path) -> Result<(), CommandError> {
    let files = bundle
        .files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .chain(std::iter::once(("plan.json", bundle.plan_json.as_str())));
    crate::outdir::replace_dir(out, files).map_err(|e| {
        let hint = e.hint();
        let err = if e.is_bad_input() {
            CommandError::bad_input(e.to_string())
        } else {
            CommandError::environment(e.to_string())
        };
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    })
}
