//! `up`'s use case: preflight (changes nothing), the lock, the phases (see
//! [`Installer`]), verify of what was installed and, when asked, the
//! hand-over to Git of exactly the bundle that was installed. Progress and
//! warnings go through the [`Reporter`]; the report is returned (and shown
//! through `show` before the Git hand-over, which reports on stderr).

use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use serde::Serialize;
use serde_json::Value;

use super::errors::{end_to_result, journal_error};
use super::interrupt::Interrupt;
use super::secrets::{Prompted, Resolved};
use super::{Installer, PhaseResult, RunEnd, Selection};
use crate::cluster::preflight::{self, Check, Status};
use crate::cluster::{Kube, journal, lock};
use crate::error::{CommandError, ErrorKind};
use crate::gitops::publish::{self, Rendered};
use crate::model::Phase;
use crate::render::Bundle;
use crate::report::Reporter;
use crate::session::{self, Chosen, cluster_error};
use crate::verify::on_cluster::{self, Options};

/// A preflight check's outcome, for the command's table.
pub use crate::cluster::preflight::Status as CheckStatus;

/// What `up` was asked to do.
pub struct UpRequest<'a> {
    /// Rendered once: what is installed is what the Git hand-over commits.
    pub rendered: Rendered<'a>,
    pub selection: Selection,
    /// Run verify after a successful install.
    pub verify: bool,
    /// The answers to the plan's `prompt` secret sources.
    pub prompted: Prompted,
    /// Hand the installed bundle to Git after a successful install (the
    /// config's spec.gitops; the cluster is reached as `up` reached it).
    pub gitops: Option<session::Where>,
}

#[derive(Debug, Serialize)]
pub struct UpReport {
    pub ok: bool,
    pub context: String,
    pub server: String,
    pub namespace: String,
    pub profile: String,
    pub digest: String,
    pub dry_run: bool,
    pub preflight: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<Phase>,
    pub phases: Vec<PhaseResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs `up` to the end. `show` gets the report once it is final (also
/// when preflight failed), before any Git hand-over; errors before a report
/// exists (connection, lock, journal) return without calling it.
pub fn run(
    chosen: Chosen,
    request: UpRequest<'_>,
    reporter: &dyn Reporter,
    show: &dyn Fn(&UpReport),
) -> Result<(), CommandError> {
    session::runtime()?.block_on(async {
        let kube = chosen.connect().await?;
        let (report, result) = install(&kube, &request, reporter).await?;
        show(&report);
        result
    })?;
    // The last phase, outside the runtime above: the hand-over starts its own.
    if let Some(at) = &request.gitops {
        reporter.status("gitops: handing the rendered state to Git");
        let options = publish::Options::default();
        let report = publish::publish(&request.rendered, &options, at, reporter, true)?;
        reporter.status(&format!("gitops: {}", publish::summary(&report)));
        if let Some(pr) = &report.pull_request {
            reporter.status(&format!(
                "gitops: pull request #{} {}: {}",
                pr.number, pr.action, pr.url
            ));
        }
    }
    Ok(())
}

/// Preflight, the phases and verify: the report, and how the run ended
/// (`Err` before a report exists).
async fn install(
    kube: &Kube,
    request: &UpRequest<'_>,
    reporter: &dyn Reporter,
) -> Result<(UpReport, Result<(), CommandError>), CommandError> {
    let bundle = request.rendered.bundle;
    let selection = &request.selection;
    let interrupt = Interrupt::listen(reporter.interrupt_notice());
    let plan = &bundle.plan;
    let ns = plan.namespace.as_str();

    let (secrets, secret_problems) = Resolved::resolve(kube, plan, &request.prompted).await;
    reporter.phase_started(Phase::Preflight, "checking (changes nothing)");
    let helm = session::helm(&kube.target).await;
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
    reporter.phase_finished(
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
    let mut report = UpReport {
        ok: false,
        context: kube.target.context.clone(),
        server: kube.target.server.clone(),
        namespace: ns.to_string(),
        profile: plan.profile.clone(),
        digest: plan.digest.clone(),
        dry_run: selection.dry_run,
        preflight: Vec::new(),
        resumed_from: None,
        phases: Vec::new(),
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
        let mut err = CommandError::environment(message);
        err.causes = failed
            .iter()
            .map(|c| format!("{}: {}", c.id, c.detail))
            .collect();
        report.preflight = checks;
        return Ok((report, Err(err)));
    }
    report.preflight = checks;
    let mut helm = helm.expect("preflight passed, so helm was found");
    helm.timeout = selection.timeout;

    let installer = |install_id: &str| {
        Installer::new(
            kube,
            &helm,
            bundle,
            &secrets,
            reporter,
            interrupt.clone(),
            install_id,
        )
    };

    if selection.dry_run {
        let journal = journal::read(kube, ns)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let id = install_id(&journal)?;
        let (results, end, _) = installer(&id).up(journal, selection).await;
        report.phases = results;
        report.ok = end == RunEnd::Done;
        return Ok((report, end_to_result(end)));
    }

    ensure_namespace(kube, bundle).await?;
    let lock = lock::acquire(kube, ns, "up").await?;
    if let Some(previous) = &lock.took_over {
        reporter.warn(&format!(
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
            reporter.note(&format!(
                "resuming: phase {phase} did not complete in the last run"
            ));
        }
        let journal = journal.unwrap_or_default();
        let id = install_id(&journal)?;
        let running = installer(&id);
        // A panic (a bug) still records the phase, kills helm and releases
        // the lock below, instead of leaving them to chance.
        match AssertUnwindSafe(running.up(journal, selection))
            .catch_unwind()
            .await
        {
            Ok((results, end, _)) => Ok::<_, CommandError>((resumed, results, end)),
            Err(_) => {
                super::interrupt::kill_helm_groups();
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
        reporter.warn(
            "the lock was taken from this run while it ran (`telltale unlock --force`?): \
             another run may have acted at the same time; check `telltale status`",
        );
    }
    if let Err(e) = released {
        reporter.warn(&format!(
            "the lock could not be released ({e}); run `telltale unlock` once no run is active"
        ));
    }
    report.resumed_from = resumed;
    report.phases = results;
    report.ok = end == RunEnd::Done;
    if let RunEnd::Failed { error, .. } = &end {
        report.error = Some(error.clone());
    }
    if report.ok && request.verify {
        let options = Options::for_up(bundle);
        let verified = on_cluster::execute(bundle, options, Some(kube.clone()), reporter).await?;
        report.ok = verified.ok;
        report.verify = Some(verified);
    }
    let result = end_to_result(end).and_then(|()| match &report.verify {
        Some(verified) => on_cluster::report_to_result(verified).map_err(|e| {
            e.with_hint("the install is complete; fix the cause and run `telltale verify`")
        }),
        None => Ok(()),
    });
    Ok((report, result))
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

/// The Lease and the journal live in the namespace, so it must exist before
/// the lock is taken; it is created from the bundle's Namespace manifest
/// only when missing.
async fn ensure_namespace(kube: &Kube, bundle: &Bundle) -> Result<(), CommandError> {
    let ns = &bundle.plan.namespace;
    let api: Api<Namespace> = Api::all(kube.client.clone());
    let exists = api
        .get_opt(ns)
        .await
        .map_err(|e| cluster_error("reading the namespace", &kube.target.server, e))?;
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
        .map_err(|e| cluster_error("creating the namespace", &kube.target.server, e))?;
    Ok(())
}
