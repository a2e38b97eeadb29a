//! `telltale status`: phases from the journal, releases, drift.

use clap::Args;

use super::GlobalArgs;
use super::access;
use crate::error::CommandError;
use crate::ui::{Printer, table};

/// Show what the in-cluster journal records: each phase's outcome and
/// whether it matches the bundle the config renders now, the helm releases,
/// the lock holder, and drift (objects changed or deleted since telltale
/// applied them). Exits 1 when there is drift.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// With a Fleet config: how many clusters are read at once (1 to 64)
    #[arg(long, value_name = "N", default_value = "4", value_parser = crate::fleet::parse_parallel)]
    pub parallel: usize,
}

pub fn run(args: StatusArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    if let Some(fleet) = global.fleet()? {
        global.refuse_single_cluster_flags(&[])?;
        crate::fleet::check_renders(&fleet, &global.fleet_inputs())?;
        let runs = crate::fleet::fan_out(
            &fleet,
            args.parallel,
            &crate::ui::reporter::Terminal::new(printer),
            &|_| Vec::new(),
            &crate::fleet::summarise_status,
        )?;
        let (report, result) = crate::fleet::outcome(&fleet, "status", &runs, None);
        crate::ui::fleet::print_report(printer, &report);
        return result;
    }
    let bundle = access::optional_bundle(global)?;
    let namespace = access::namespace(global, bundle.as_ref());
    let chosen = access::target_pinned(global, bundle.as_ref())?;
    let report = crate::session::runtime()?.block_on(crate::install::status::run(
        chosen,
        &namespace,
        bundle.as_ref(),
    ))?;
    print_report(printer, &report, &namespace);
    if report.drift.is_empty() {
        Ok(())
    } else {
        Err(CommandError::new(
            crate::error::ErrorKind::Failed,
            format!(
                "{} object(s) drifted from what telltale applied",
                report.drift.len()
            ),
        )
        .with_hint("`telltale up --from-phase PHASE` re-applies them"))
    }
}

fn print_report(printer: &Printer, report: &crate::install::status::Report, namespace: &str) {
    if printer.is_json() {
        printer.json(&report);
    } else if !report.installed {
        printer.out(&format!(
            "not installed: no telltale journal in namespace {namespace} on {}",
            report.context
        ));
    } else {
        printer.out(&format!(
            "context {} · namespace {} · profile {}{}",
            report.context,
            report.namespace,
            report.profile.as_deref().unwrap_or("?"),
            match report.up_to_date {
                Some(true) => " · up to date with the config",
                Some(false) => " · the config renders a different bundle: run `telltale up`",
                None => "",
            }
        ));
        if let Some(holder) = &report.lock {
            printer.out(&format!("locked by {holder}"));
        }
        let rows = report
            .phases
            .iter()
            .map(|p| {
                vec![
                    p.phase.to_string(),
                    format!("{:?}", p.outcome).to_lowercase(),
                    p.finished.clone(),
                    p.objects.to_string(),
                    match p.digest_matches {
                        Some(true) => "yes".into(),
                        Some(false) => "no".into(),
                        None => "?".into(),
                    },
                    p.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        printer.out(&table::render(
            &[
                "phase", "outcome", "finished", "objects", "current", "error",
            ],
            rows,
        ));
        if !report.releases.is_empty() {
            printer.out("");
            let rows = report
                .releases
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        format!("{}@{}", r.chart, r.version),
                        r.revision.to_string(),
                        r.live.clone(),
                    ]
                })
                .collect();
            printer.out(&table::render(
                &["release", "chart", "revision", "helm"],
                rows,
            ));
        }
        printer.out("");
        if report.drift.is_empty() {
            printer.out("no drift: every object is as telltale applied it");
        } else {
            let rows = report
                .drift
                .iter()
                .map(|d| vec![d.object.clone(), d.change.clone()])
                .collect();
            printer.out(&table::render(&["drifted", "change"], rows));
        }
    }
}
