//! `telltale up`: preflight, then the phases, resumable and idempotent.

use std::panic::AssertUnwindSafe;

use clap::Args;
use futures::FutureExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use serde::Serialize;
use serde_json::Value;

use super::GlobalArgs;
use super::access::{self, ConfirmArgs};
use crate::cluster::preflight::{self, Check, Status};
use crate::cluster::{Kube, journal, lock};
use crate::error::{CommandError, ErrorKind};
use crate::install::interrupt::Interrupt;
use crate::install::secrets::Resolved;
use crate::install::{Installer, PhaseOutcome, PhaseResult, RunEnd, Selection};
use crate::model::Phase;
use crate::render::{self, Bundle};
use crate::report::Reporter as _;
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
    #[arg(long, value_name = "N", default_value = "4", value_parser = super::fleet::parse_parallel)]
    pub parallel: usize,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    ok: bool,
    context: &'a str,
    server: &'a str,
    namespace: &'a str,
    profile: &'a str,
    digest: &'a str,
    dry_run: bool,
    preflight: &'a [Check],
    #[serde(skip_serializing_if = "Option::is_none")]
    resumed_from: Option<Phase>,
    phases: &'a [PhaseResult],
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<crate::verify::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(args: UpArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    if let Some(fleet) = global.fleet()? {
        // One pull request for the fleet: `telltale gitops` after the fleet's up.
        super::fleet::refuse_single_cluster_flags(global, &[("--gitops", args.gitops)])?;
        super::fleet::check_renders(&fleet, global)?;
        let runs = super::fleet::fan_out(
            &fleet,
            args.parallel,
            printer,
            &|_| Vec::new(),
            &super::fleet::summarise_up,
        )?;
        return super::fleet::finish(&fleet, "up", &runs, None, printer);
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
        super::gitops::check_configured(&bundle, &resolved)?;
    }
    let pin = access::pin_of(Some(&bundle));
    let (target, config) = access::target_for_write(global, &pin, &args.confirm, "up")?;
    access::runtime()?.block_on(async {
        let kube = access::connect(target, config).await?;
        up(&kube, &bundle, &args, global, printer).await
    })?;
    if args.gitops {
        // The last phase, outside the runtime above: gitops starts its own.
        let installed = super::gitops::Rendered {
            request: &request,
            resolved: &resolved,
            bundle: &bundle,
        };
        super::gitops::run_after_up(global, printer, installed)?;
    }
    Ok(())
}

async fn up(
    kube: &Kube,
    bundle: &Bundle,
    args: &UpArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<(), CommandError> {
    let progress = Terminal::new(printer);
    let interrupt = Interrupt::listen(crate::ui::interrupt_notice);
    let plan = &bundle.plan;
    let ns = plan.namespace.as_str();

    // Prompts (secret sources with `prompt: true`) come before any progress
    // line takes the terminal.
    let (secrets, secret_problems) =
        Resolved::resolve(kube, plan, prompt::interactive(global.yes)).await;
    progress.phase_started(Phase::Preflight, "checking (changes nothing)");
    let helm = access::helm(&kube.target).await;
    let inputs = preflight::Inputs {
        bundle,
        pinned_context: plan.cluster.context.as_deref(),
        helm: helm
            .as_ref()
            .map(|h| h.version.clone())
            .map_err(|e| crate::error::chain(e)),
        secret_problems,
    };
    let checks = preflight::run(kube, &inputs).await;
    let failed: Vec<&Check> = checks.iter().filter(|c| c.status == Status::Fail).collect();
    progress.phase_finished(
        Phase::Preflight,
        failed.is_empty(),
        &if failed.is_empty() {
            format!(
                "{} passed",
                crate::plural::count(
                    checks.iter().filter(|c| c.status == Status::Pass).count(),
                    "check"
                )
            )
        } else {
            format!("{} failed", crate::plural::count(failed.len(), "check"))
        },
    );
    let mut report = Report {
        ok: false,
        context: &kube.target.context,
        server: &kube.target.server,
        namespace: ns,
        profile: &plan.profile,
        digest: &plan.digest,
        dry_run: args.dry_run,
        preflight: &checks,
        resumed_from: None,
        phases: &[],
        verify: None,
        error: None,
    };
    if !failed.is_empty() {
        let message = format!(
            "preflight failed ({}); nothing was changed",
            failed
                .iter()
                .map(|c| c.id.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        report.error = Some(message.clone());
        print_report(printer, &report);
        let mut err = CommandError::environment(message);
        err.causes = failed
            .iter()
            .map(|c| format!("{}: {}", c.id, c.detail))
            .collect();
        return Err(err);
    }
    let mut helm = helm.expect("preflight passed, so helm was found");
    helm.timeout = args.timeout;

    let selection = Selection {
        from_phase: args.from_phase,
        only: args.only,
        dry_run: args.dry_run,
        timeout: args.timeout,
    };
    let installer = |install_id: &str| {
        Installer::new(
            kube,
            &helm,
            bundle,
            &secrets,
            &progress,
            interrupt.clone(),
            install_id,
        )
    };

    if args.dry_run {
        let journal = journal::read(kube, ns)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let id = install_id(&journal)?;
        let (results, end, _) = installer(&id).up(journal, &selection).await;
        report.phases = &results;
        report.ok = end == RunEnd::Done;
        print_report(printer, &report);
        return end_to_result(end);
    }

    ensure_namespace(kube, bundle).await?;
    let lock = lock::acquire(kube, ns, "up").await.map_err(lock_error)?;
    if let Some(previous) = &lock.took_over {
        printer.warn(&format!(
            "took over an expired lock: {previous} stopped renewing it"
        ));
    }
    let outcome = async {
        let journal = journal::read(kube, ns)
            .await
            .map_err(|e| journal_error(e, ns, &kube.target.server))?;
        let resumed = journal.as_ref().and_then(|j| j.first_unfinished());
        if let Some(phase) = resumed
            && selection.only.is_none()
            && selection.from_phase.is_none()
        {
            progress.note(&format!(
                "resuming: phase {phase} did not complete in the last run"
            ));
        }
        let journal = journal.unwrap_or_default();
        let id = install_id(&journal)?;
        let running = installer(&id);
        // A panic (a bug) still records the phase, kills helm and releases
        // the lock below, instead of leaving them to chance.
        match AssertUnwindSafe(running.up(journal, &selection))
            .catch_unwind()
            .await
        {
            Ok((results, end, _)) => Ok::<_, CommandError>((resumed, results, end)),
            Err(_) => {
                crate::install::interrupt::kill_helm_groups();
                let phase = running.crashed_phase();
                let recorded = match &phase {
                    Some((phase, record)) => record_crash(kube, ns, &id, *phase, record).await,
                    None => Ok(()),
                };
                let at = phase
                    .map(|(p, _)| format!(" during phase {p}"))
                    .unwrap_or_default();
                let mut err = CommandError::new(
                    ErrorKind::Failed,
                    format!("telltale crashed{at} (a bug); helm was stopped and the lock released"),
                )
                .with_hint(
                    "please report it with the message above; `telltale up` resumes at this phase",
                );
                if let Err(e) = recorded {
                    err.causes.push(format!(
                        "the journal could not record it: {}",
                        crate::error::chain(&e)
                    ));
                }
                Err(err)
            }
        }
    }
    .await;
    // The lock goes whatever happened above.
    let lost = lock.lost();
    let released = lock.release().await;
    let (resumed, results, end) = outcome?;
    if lost {
        printer.warn(
            "the lock was taken from this run while it ran (`telltale unlock --force`?): \
             another run may have acted at the same time; check `telltale status`",
        );
    }
    if let Err(e) = released {
        printer.warn(&format!(
            "the lock could not be released ({e}); run `telltale unlock` once no run is active"
        ));
    }
    report.resumed_from = resumed;
    report.phases = &results;
    report.ok = end == RunEnd::Done;
    if let RunEnd::Failed { error, .. } = &end {
        report.error = Some(error.clone());
    }
    if report.ok && !args.dry_run && !args.skip_verify {
        let options = super::verify::Options::for_up(bundle);
        let verified = super::verify::execute(bundle, options, Some(kube.clone()), printer).await?;
        report.ok = verified.ok;
        report.verify = Some(verified);
    }
    print_report(printer, &report);
    end_to_result(end)?;
    match &report.verify {
        Some(verified) => super::verify::report_to_result(verified).map_err(|e| {
            e.with_hint("the install is complete; fix the cause and run `telltale verify`")
        }),
        None => Ok(()),
    }
}

/// Writes the crashed phase into the journal as failed.
async fn record_crash(
    kube: &Kube,
    ns: &str,
    id: &str,
    phase: Phase,
    record: &journal::PhaseRecord,
) -> Result<(), journal::JournalError> {
    let mut current = journal::read(kube, ns).await?.unwrap_or_default();
    if current.install_id.is_empty() {
        current.install_id = id.to_string();
    }
    current.phases.insert(phase, record.clone());
    journal::write(kube, ns, &current).await
}

/// The journal's install id, or a new one for a first install (or a journal
/// written before install ids: every object gets the id on this run).
fn install_id(journal: &journal::Journal) -> Result<String, CommandError> {
    if !journal.install_id.is_empty() {
        return Ok(journal.install_id.clone());
    }
    journal::new_install_id().map_err(|e| CommandError::environment(e.to_string()))
}

/// A journal that cannot be read: exit 3 (the cluster's state is wrong, not
/// the command line), with the commands that recover.
pub fn journal_error(e: journal::JournalError, ns: &str, server: &str) -> CommandError {
    match e {
        journal::JournalError::Corrupt(_) => CommandError::environment(format!(
            "{e}; nothing was changed"
        ))
        .with_hint(format!(
            "inspect it with `kubectl -n {ns} get configmap {cm} -o yaml`; to recover, delete it \
             (`kubectl -n {ns} delete configmap {cm}`) and run `telltale up`, which re-applies \
             every phase and writes a new journal (then `telltale down` works again)",
            cm = journal::CONFIGMAP
        )),
        other => access::cluster_error("reading the journal", server, other),
    }
}

/// The Lease and the journal live in the namespace, so it must exist before
/// the lock is taken; it is created from the bundle's Namespace manifest
/// only when missing.
async fn ensure_namespace(kube: &Kube, bundle: &Bundle) -> Result<(), CommandError> {
    let ns = &bundle.plan.namespace;
    let api: Api<Namespace> = Api::all(kube.client.clone());
    let exists = api
        .get_opt(ns)
        .await
        .map_err(|e| access::cluster_error("reading the namespace", &kube.target.server, e))?;
    if exists.is_some() {
        return Ok(());
    }
    let manifest = bundle
        .files
        .iter()
        .find(|(path, _)| path.starts_with("manifests/01-namespace/Namespace_"))
        .and_then(|(_, text)| serde_saphyr::from_str::<Value>(text).ok())
        .unwrap_or_else(|| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    crate::cluster::objects::Objects::new(kube)
        .apply(&manifest, false)
        .await
        .map_err(|e| access::cluster_error("creating the namespace", &kube.target.server, e))?;
    Ok(())
}

pub fn lock_error(e: lock::LockError) -> CommandError {
    e.into()
}

pub fn end_to_result(end: RunEnd) -> Result<(), CommandError> {
    match end {
        RunEnd::Done => Ok(()),
        RunEnd::Failed { phase, error } => Err(CommandError::new(
            ErrorKind::Failed,
            format!("phase {phase} failed: {error}"),
        )
        .with_hint("fix the cause and run `telltale up` again: it resumes at this phase")),
        RunEnd::Interrupted { phase } => Err(CommandError::new(
            ErrorKind::Interrupted,
            format!("interrupted during phase {phase}; the journal records what was applied"),
        )
        .with_hint("`telltale up` resumes at this phase")),
    }
}

fn print_report(printer: &Printer, report: &Report<'_>) {
    if printer.is_json() {
        printer.json(report);
        return;
    }
    let failed_checks: Vec<Vec<String>> = report
        .preflight
        .iter()
        .filter(|c| c.status != Status::Pass || printer.verbose > 0)
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
        for p in report.phases {
            for change in &p.changes {
                printer.out(&format!("  {}: {change}", p.phase));
            }
        }
    }
    if let Some(verified) = &report.verify {
        printer.out("");
        printer.out(&crate::verify::report::text(verified, printer.verbose > 0));
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
