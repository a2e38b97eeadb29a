//! `telltale down`: uninstall in reverse phase order.

use clap::{ArgAction, Args};

use super::GlobalArgs;
use super::access::{self, ConfirmArgs};
use crate::error::CommandError;
use crate::install::RunEnd;
use crate::install::down::{AllowedReleases, DownOptions, DownOutcome, DownRequest};
use crate::install::errors::end_to_result;
use crate::ui::reporter::Terminal;
use crate::ui::{Printer, prompt, table};

/// Remove what `up` installed, in reverse phase order: helm releases, then
/// the objects the journal recorded, then the journal. CRDs and persistent
/// volumes stay unless asked.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Keep the CRDs telltale applied (their custom resources in other
    /// namespaces would go with them)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", value_name = "BOOL")]
    pub keep_crds: bool,
    /// Keep PersistentVolumeClaims and the namespace (metrics, logs,
    /// dashboards survive a reinstall)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", value_name = "BOOL")]
    pub keep_data: bool,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

pub fn run(args: DownArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    // The config (when there is one) says which context is allowed and
    // which namespace; down itself works from the journal.
    let rendered = access::optional_bundle(global)?;
    let namespace = access::namespace(global, rendered.as_ref());
    let chosen = access::target_for_write(global, rendered.as_ref(), &args.confirm, "down")?;
    if prompt::interactive(global.yes)
        && !prompt::confirm(&format!(
            "Remove the telltale stack from namespace {namespace} on {}?",
            chosen.context()
        ))
    {
        return Err(CommandError::bad_input(
            "not confirmed; nothing was changed",
        ));
    }
    let releases: AllowedReleases = match &rendered {
        Some(bundle) => bundle
            .plan
            .releases
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        None => global
            .catalog()?
            .plugins
            .iter()
            .filter_map(|(name, entry)| {
                let chart = entry.plugin.spec.chart.as_ref()?;
                Some(chart.release_name(name).to_string())
            })
            .collect(),
    };
    let request = DownRequest {
        namespace: namespace.clone(),
        options: DownOptions {
            keep_crds: args.keep_crds,
            keep_data: args.keep_data,
            releases,
        },
    };
    let reporter = Terminal::new(printer);
    let outcome = crate::session::runtime()?
        .block_on(crate::install::down::run(chosen, &request, &reporter))?;
    let report = match outcome {
        DownOutcome::NotInstalled { context } => {
            printer.status(&format!(
                "nothing to remove: no telltale journal in namespace {namespace} on {context}"
            ));
            return Ok(());
        }
        DownOutcome::Ran(report) => report,
    };
    let options = &request.options;
    for s in &report.skipped {
        printer.warn(&format!("skipped {}: {}", s.object, s.reason));
    }
    if printer.is_json() {
        printer.json(&report);
    } else {
        let rows = report
            .phases
            .iter()
            .map(|p| vec![p.phase.to_string(), p.detail.clone()])
            .collect();
        printer.out(&table::render(&["phase", "removed"], rows));
        if printer.verbose > 0 {
            for p in &report.phases {
                for c in &p.changes {
                    printer.out(&format!("  {}: {c}", p.phase));
                }
            }
        }
        let kept: Vec<&str> = [
            (options.keep_crds, "CRDs (--keep-crds=false removes them)"),
            (
                options.keep_data,
                "volumes and the namespace (--keep-data=false removes them)",
            ),
        ]
        .iter()
        .filter(|(keep, _)| *keep)
        .map(|(_, what)| *what)
        .collect();
        if !kept.is_empty() && report.end == RunEnd::Done {
            printer.status(&format!("kept: {}", kept.join("; ")));
        }
    }
    end_to_result(report.end)
}
