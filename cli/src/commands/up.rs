//! `telltale up`: preflight, then the phases, resumable and idempotent.

use clap::Args;

use super::GlobalArgs;
use super::access::{self, ConfirmArgs};
use crate::error::CommandError;
use crate::gitops::publish::{self, Rendered};
use crate::install::secrets::Prompted;
use crate::install::up::{CheckStatus, UpReport, UpRequest};
use crate::install::{PhaseOutcome, Selection};
use crate::model::Phase;
use crate::render;
use crate::ui::reporter::Terminal;
use crate::ui::{Printer, prompt, table};

/// Install or upgrade the stack phase by phase. Preflight runs first and
/// changes nothing; a phase whose digest and objects match the journal is
/// skipped; after a failure the next run resumes at the failed phase.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Run this phase and every later one, even when unchanged
    #[arg(long, value_enum, value_name = "PHASE", conflicts_with = "only")]
    pub from_phase: Option<Phase>,
    /// Run only this phase, even when unchanged
    #[arg(long, value_enum, value_name = "PHASE")]
    pub only: Option<Phase>,
    /// Preflight, server-side dry-run of every manifest and helm's server
    /// dry-run; print what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long helm and each wait (CRDs, rollouts, Prometheus and
    /// Alertmanager available) may take
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::model::validate::bounded_duration)]
    pub timeout: std::time::Duration,
    /// Do not run verify after the install (the checks plan.json's verify
    /// phase lists, through port-forwards; `telltale verify` runs them later)
    #[arg(long)]
    pub skip_verify: bool,
    /// After a successful install, run `telltale gitops` with the config's
    /// spec.gitops (branch + pull request with the rendered state)
    #[arg(long, conflicts_with = "dry_run")]
    pub gitops: bool,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    /// With a Fleet config: how many clusters are installed at once (1 to 64)
    #[arg(long, value_name = "N", default_value = "4", value_parser = crate::fleet::parse_parallel)]
    pub parallel: usize,
}

pub fn run(args: UpArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    if let Some(fleet) = global.fleet()? {
        // One pull request for the fleet: `telltale gitops` after the fleet's up.
        global.refuse_single_cluster_flags(&[("--gitops", args.gitops)])?;
        crate::fleet::check_renders(&fleet, &global.fleet_inputs())?;
        let runs = crate::fleet::fan_out(
            &fleet,
            args.parallel,
            &crate::ui::reporter::Terminal::new(printer),
            &|_| Vec::new(),
            &crate::fleet::summarise_up,
        )?;
        let (report, result) = crate::fleet::outcome(&fleet, "up", &runs, None);
        crate::ui::fleet::print_report(printer, &report);
        return result;
    }
    let catalog = global.catalog()?;
    // Rendered once: what is installed is what `--gitops` commits.
    let request = global.request()?;
    let resolved = render::resolve(&catalog, &request)?;
    let bundle = render::render_resolved(&catalog, &resolved)?;
    for warning in &bundle.plan.warnings {
        printer.warn(warning);
    }
    if args.gitops {
        // Refused before the cluster is touched, not after the install.
        publish::check_configured(&bundle, &resolved)?;
    }
    let chosen = access::target_for_write(global, Some(&bundle), &args.confirm, "up")?;
    // Prompts (secret sources with `prompt: true`) come before the runtime
    // starts and before any progress line takes the terminal.
    let prompted = Prompted::ask(
        &bundle.plan,
        prompt::interactive(global.yes),
        &prompt::secret,
    );
    let up = UpRequest {
        rendered: Rendered {
            request: &request,
            resolved: &resolved,
            bundle: &bundle,
        },
        selection: Selection {
            from_phase: args.from_phase,
            only: args.only,
            dry_run: args.dry_run,
            timeout: args.timeout,
        },
        verify: !args.dry_run && !args.skip_verify,
        prompted,
        gitops: args.gitops.then(|| access::at(global)),
    };
    let reporter = Terminal::new(printer);
    crate::install::up::run(chosen, up, &reporter, &|report| {
        print_report(printer, report)
    })
}

fn print_report(printer: &Printer, report: &UpReport) {
    if printer.is_json() {
        printer.json(report);
        return;
    }
    let failed_checks: Vec<Vec<String>> = report
        .preflight
        .iter()
        .filter(|c| c.status != CheckStatus::Pass || printer.verbose > 0)
        .map(|c| {
            vec![
                c.id.name().to_string(),
                format!("{:?}", c.status).to_lowercase(),
                c.detail.clone(),
            ]
        })
        .collect();
    if !failed_checks.is_empty() {
        printer.out(&table::render(
            &["check", "status", "detail"],
            failed_checks,
        ));
        printer.out("");
    }
    if report.phases.is_empty() {
        return;
    }
    let rows = report
        .phases
        .iter()
        .map(|p| {
            vec![
                p.phase.to_string(),
                outcome_text(p.outcome).to_string(),
                format!("{:.1}s", p.duration_ms as f64 / 1000.0),
                p.detail.clone(),
            ]
        })
        .collect();
    printer.out(&table::render(
        &["phase", "outcome", "time", "detail"],
        rows,
    ));
    if report.dry_run || printer.verbose > 0 {
        for p in &report.phases {
            for change in &p.changes {
                printer.out(&format!("  {}: {change}", p.phase));
            }
        }
    }
    if let Some(verified) = &report.verify {
        printer.out("");
        printer.out(&crate::ui::verify::text(verified, printer.verbose > 0));
    }
}

fn outcome_text(o: PhaseOutcome) -> &'static str {
    match o {
        PhaseOutcome::Applied => "applied",
        PhaseOutcome::Unchanged => "unchanged",
        PhaseOutcome::Repaired => "repaired drift",
        PhaseOutcome::Failed => "FAILED",
        PhaseOutcome::Interrupted => "interrupted",
        PhaseOutcome::NotRun => "not run",
        PhaseOutcome::Skipped => "skipped",
        PhaseOutcome::DryRun => "dry-run",
    }
}
