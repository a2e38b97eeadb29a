//! The phase executor behind `up`: runs the plan's phases in order, skips
//! those the journal shows unchanged, re-applies those whose objects drifted
//! (the check `status` makes), records each in the journal, and stops
//! cleanly between steps when interrupted.

pub mod down;
pub mod errors;
pub mod interrupt;
pub mod secrets;
pub mod status;
pub mod unlock;
pub mod up;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use crate::cluster::journal::{self, Journal, Outcome, PhaseRecord, ReleaseRecord};
use crate::cluster::objects::{
    self, Change, FIELD_MANAGER, INSTALL_ID, MANAGED_BY, ObjectRef, Objects,
};
use crate::cluster::{Kube, wait};
use crate::helm::{Chart, Helm};
use crate::model::Phase;
use crate::render::Bundle;
use crate::render::plan::{PlanPhase, Step};
use crate::report::Reporter;
use interrupt::Interrupt;
use secrets::Resolved;

/// Which phases to run.
#[derive(Debug, Clone)]
pub struct Selection {
    pub from_phase: Option<Phase>,
    pub only: Option<Phase>,
    pub dry_run: bool,
    /// How long each wait (CRDs, rollouts, Prometheus/Alertmanager) may take.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseOutcome {
    Applied,
    Unchanged,
    /// The digest matched but objects had drifted: re-applied.
    Repaired,
    Failed,
    Interrupted,
    /// Not reached: an earlier phase failed or was interrupted.
    NotRun,
    /// Outside --only / --from-phase, or not part of `up` yet.
    Skipped,
    /// --dry-run: what would change.
    DryRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub phase: Phase,
    pub outcome: PhaseOutcome,
    pub detail: String,
    /// One line per object or release touched (or, dry-run, to be touched).
    pub changes: Vec<String>,
    pub duration_ms: u128,
}

/// How a run of phases ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Done,
    Failed { phase: Phase, error: String },
    Interrupted { phase: Phase },
}

pub struct Installer<'a, H: Helm> {
    pub kube: &'a Kube,
    pub objects: Objects,
    pub helm: &'a H,
    pub bundle: &'a Bundle,
    pub secrets: &'a Resolved,
    pub progress: &'a dyn Reporter,
    pub interrupt: Interrupt,
    install_id: String,
    /// The phase running now and what it applied so far, for the journal
    /// entry written after a panic.
    current: std::sync::Mutex<Option<(Phase, PhaseRecord)>>,
}

/// What the journal and the cluster say about a phase before it runs.
enum Before {
    /// Digest, objects, releases and Secrets match: nothing to do.
    Unchanged,
    /// Never applied, another digest, or the last run did not finish.
    Changed,
    /// The digest matches but these objects drifted (what, how).
    Drifted(Vec<String>),
}

/// What went wrong in a step, and what the phase applied before it.
struct StepFailure(String);

impl<E: std::error::Error + 'static> From<E> for StepFailure {
    /// The whole cause chain: a step's failure is kept as text (the
    /// journal, the report).
    fn from(e: E) -> Self {
        StepFailure(crate::error::chain(&e))
    }
}

/// The phases `up` executes: everything but preflight (run before the
/// lock), verify and gitops (their own commands).
pub fn installable(phase: Phase) -> bool {
    phase.installable()
}

impl<'a, H: Helm> Installer<'a, H> {
    pub fn new(
        kube: &'a Kube,
        helm: &'a H,
        bundle: &'a Bundle,
        secrets: &'a Resolved,
        progress: &'a dyn Reporter,
        interrupt: Interrupt,
        install_id: &str,
    ) -> Self {
        Installer {
            kube,
            objects: Objects::for_install(kube, install_id),
            helm,
            bundle,
            secrets,
            progress,
            interrupt,
            install_id: install_id.to_string(),
            current: std::sync::Mutex::new(None),
        }
    }

    fn remember(&self, phase: Phase, record: &PhaseRecord) {
        if let Ok(mut current) = self.current.lock() {
            *current = Some((phase, record.clone()));
        }
    }

    fn forget(&self) {
        if let Ok(mut current) = self.current.lock() {
            *current = None;
        }
    }

    /// The phase a panic interrupted, as a failed journal entry.
    pub fn crashed_phase(&self) -> Option<(Phase, PhaseRecord)> {
        let (phase, mut record) = self.current.lock().ok()?.clone()?;
        record.outcome = Outcome::Failed;
        record.finished = journal::now();
        record.error =
            Some("telltale crashed during this phase (a bug; see the message above)".into());
        Some((phase, record))
    }

    fn namespace(&self) -> &str {
        &self.bundle.plan.namespace
    }

    /// Runs the selected phases, writing the journal after each one that
    /// did something. Returns the per-phase results and how the run ended.
    pub async fn up(
        &self,
        mut journal: Journal,
        selection: &Selection,
    ) -> (Vec<PhaseResult>, RunEnd, Journal) {
        let plan = &self.bundle.plan;
        journal.profile = plan.profile.clone();
        journal.install_id = self.install_id.clone();
        let mut results = Vec::new();
        let mut end = RunEnd::Done;
        for phase in &plan.phases {
            let name = phase.name;
            if !installable(name) {
                continue;
            }
            if !matches!(end, RunEnd::Done) {
                results.push(result(
                    name,
                    PhaseOutcome::NotRun,
                    "not reached",
                    vec![],
                    None,
                ));
                continue;
            }
            let selected = match (selection.only, selection.from_phase) {
                (Some(only), _) => only == name,
                (None, Some(from)) => name >= from,
                (None, None) => true,
            };
            if !selected {
                results.push(result(
                    name,
                    PhaseOutcome::Skipped,
                    "not selected",
                    vec![],
                    None,
                ));
                continue;
            }
            let forced = selection.only.is_some() || selection.from_phase.is_some();
            let started = Instant::now();
            let mut repaired = Vec::new();
            if !forced && !selection.dry_run {
                match self.before(phase, journal.phases.get(&name)).await {
                    Ok(Before::Unchanged) => {
                        self.progress.phase_finished(
                            name,
                            true,
                            "unchanged (digest and objects match)",
                        );
                        results.push(result(
                            name,
                            PhaseOutcome::Unchanged,
                            "digest and objects match the journal",
                            vec![],
                            Some(started),
                        ));
                        continue;
                    }
                    Ok(Before::Changed) => {}
                    Ok(Before::Drifted(drifted)) => repaired = drifted,
                    Err(e) => {
                        end = RunEnd::Failed {
                            phase: name,
                            error: e.0.clone(),
                        };
                        self.progress.phase_finished(name, false, &e.0);
                        results.push(result(
                            name,
                            PhaseOutcome::Failed,
                            &e.0,
                            vec![],
                            Some(started),
                        ));
                        continue;
                    }
                }
            }

            self.progress
                .phase_started(name, &format!("{} step(s)", phase.steps.len()));
            let started_at = journal::now();
            let mut record = PhaseRecord {
                digest: phase.digest.clone(),
                outcome: Outcome::Applied,
                started: started_at,
                finished: String::new(),
                objects: Vec::new(),
                releases: Vec::new(),
                error: None,
            };
            let mut changes = Vec::new();
            self.remember(name, &record);
            let run = self
                .run_phase(phase, selection, &mut record, &mut changes)
                .await;
            self.forget();
            record.finished = journal::now();
            let (outcome, detail) = match run {
                Ok(()) if selection.dry_run => (PhaseOutcome::DryRun, summary(&changes, true)),
                Ok(()) if !repaired.is_empty() => {
                    let detail = format!("repaired drift: {}", repaired.join("; "));
                    changes.insert(0, detail.clone());
                    (PhaseOutcome::Repaired, detail)
                }
                Ok(()) => (PhaseOutcome::Applied, summary(&changes, false)),
                Err(PhaseStop::Interrupted) => {
                    record.outcome = Outcome::Interrupted;
                    end = RunEnd::Interrupted { phase: name };
                    (
                        PhaseOutcome::Interrupted,
                        format!(
                            "interrupted after {} object(s) and {} release(s)",
                            record.objects.len(),
                            record.releases.len()
                        ),
                    )
                }
                Err(PhaseStop::Failed(e)) => {
                    record.outcome = Outcome::Failed;
                    record.error = Some(e.clone());
                    end = RunEnd::Failed {
                        phase: name,
                        error: e.clone(),
                    };
                    (PhaseOutcome::Failed, e)
                }
            };
            self.progress
                .phase_finished(name, outcome != PhaseOutcome::Failed, &detail);
            results.push(result(name, outcome, &detail, changes, Some(started)));
            if !selection.dry_run {
                journal.bundle_digest = plan.digest.clone();
                journal.phases.insert(name, record);
                if let Err(e) = journal::write(self.kube, self.namespace(), &journal).await {
                    // The phase happened; only its record is missing. Say so loudly.
                    let error = format!(
                        "phase {name} ran but the journal could not be written: {}",
                        crate::error::chain(&e)
                    );
                    end = RunEnd::Failed { phase: name, error };
                }
            }
        }
        (results, end, journal)
    }

    /// A phase is unchanged when the journal applied this digest and every
    /// object and release it recorded is still there, carrying telltale's
    /// marks, as the bundle has it (and, for Secrets, still holding what the
    /// sources give). Object drift is the question `status` asks.
    async fn before(
        &self,
        phase: &PlanPhase,
        record: Option<&PhaseRecord>,
    ) -> Result<Before, StepFailure> {
        let Some(record) = record else {
            return Ok(Before::Changed);
        };
        if record.outcome != Outcome::Applied || record.digest != phase.digest {
            return Ok(Before::Changed);
        }
        for release in &record.releases {
            let status = self.helm.status(&release.name, self.namespace()).await?;
            if status.is_none_or(|s| s.revision != release.revision || s.status != "deployed") {
                return Ok(Before::Changed);
            }
        }
        let mut drifted = Vec::new();
        for object in &record.objects {
            match self.objects.get(object).await? {
                None => drifted.push(format!("{object} (missing)")),
                // Handed over (a SealedSecret's controller adopted it): not drift.
                Some(live) if handed_over(&live) => {}
                Some(live) => {
                    if let Err(why) = objects::owned(&live, &self.install_id) {
                        drifted.push(format!("{object} ({why})"));
                    }
                }
            }
        }
        for step in &phase.steps {
            match step {
                Step::Apply { file, .. } => {
                    let Some(object) = self.bundle.objects.get(file) else {
                        continue;
                    };
                    let manifest = &object.value;
                    let r = ObjectRef::of(manifest);
                    if drifted.iter().any(|d| d.starts_with(&r.to_string())) {
                        continue;
                    }
                    if let Some(change) = self.objects.drift(manifest).await? {
                        drifted.push(format!("{r} ({change})"));
                    }
                }
                Step::Secret {
                    name,
                    namespace,
                    keys,
                    annotations,
                } => {
                    let existing = self.secret(namespace, name).await?;
                    if existing.as_ref().is_some_and(secret_handed_over) {
                        continue;
                    }
                    let data = self
                        .secrets
                        .data((namespace, name), keys, existing.as_ref())?;
                    if !secrets::matches(existing.as_ref(), &data)
                        || !secrets::annotated(existing.as_ref(), annotations)
                    {
                        // Names the Secret, never its content.
                        drifted.push(format!("Secret/{name} in {namespace} (data changed)"));
                    }
                }
                _ => {}
            }
        }
        Ok(if drifted.is_empty() {
            Before::Unchanged
        } else {
            Before::Drifted(drifted)
        })
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<KubeSecret>, kube::Error> {
        let api: Api<KubeSecret> = Api::namespaced(self.kube.client.clone(), namespace);
        api.get_opt(name).await
    }

    async fn run_phase(
        &self,
        phase: &PlanPhase,
        selection: &Selection,
        record: &mut PhaseRecord,
        changes: &mut Vec<String>,
    ) -> Result<(), PhaseStop> {
        for step in &phase.steps {
            // Between steps is where an interrupt is honoured: the step
            // before it has settled and is recorded.
            if self.interrupt.is_set() {
                return Err(PhaseStop::Interrupted);
            }
            self.progress.step(phase.name, &step.describe());
            // A second interrupt abandons the step (its helm is killed):
            // what the step applied before is in `record` already.
            let step_result = tokio::select! {
                biased;
                () = self.interrupt.hard() => return Err(PhaseStop::Interrupted),
                r = self.run_step(phase.name, step, selection, record, changes) => r,
            };
            // The step may end first because the interrupt killed its helm:
            // that is an interrupted phase, not a failed one.
            if step_result.is_err() && self.interrupt.is_hard() {
                return Err(PhaseStop::Interrupted);
            }
            step_result.map_err(|e| PhaseStop::Failed(format!("{}: {}", step.describe(), e.0)))?;
            self.remember(phase.name, record);
            #[cfg(feature = "fault-injection")]
            if std::env::var("TELLTALE_FAULT_PANIC_IN_PHASE")
                .ok()
                .as_deref()
                == Some(phase.name.to_string().as_str())
            {
                panic!(
                    "fault injection: TELLTALE_FAULT_PANIC_IN_PHASE={}",
                    phase.name
                );
            }
        }
        if self.interrupt.is_set() && phase.steps.is_empty() {
            return Err(PhaseStop::Interrupted);
        }
        Ok(())
    }

    async fn apply(
        &self,
        object: &Value,
        dry_run: bool,
        record: &mut PhaseRecord,
        changes: &mut Vec<String>,
    ) -> Result<(), StepFailure> {
        let r = ObjectRef::of(object);
        let change = match self.objects.apply(object, dry_run).await {
            Ok(change) => change,
            // Dry-run on a fresh cluster: the kind arrives with an earlier
            // phase's CRDs, so the server cannot be asked yet.
            Err(kube::Error::Api(e)) if dry_run && e.code == 404 => Change::Created,
            Err(e) => return Err(e.into()),
        };
        if change != Change::Unchanged {
            let verb = match (change, dry_run) {
                (Change::Created, false) => "created",
                (Change::Created, true) => "would create",
                (_, false) => "updated",
                (_, true) => "would update",
            };
            changes.push(format!("{verb} {r}"));
        }
        if !dry_run {
            record.objects.push(r);
        }
        Ok(())
    }

    async fn run_step(
        &self,
        phase: Phase,
        step: &Step,
        selection: &Selection,
        record: &mut PhaseRecord,
        changes: &mut Vec<String>,
    ) -> Result<(), StepFailure> {
        let (dry_run, timeout) = (selection.dry_run, selection.timeout);
        match step {
            Step::Apply { file, .. } => {
                let object = self
                    .bundle
                    .objects
                    .get(file)
                    .ok_or_else(|| StepFailure(format!("{file} is not in the bundle")))?;
                self.apply(&object.value, dry_run, record, changes).await
            }
            Step::Crds {
                release,
                chart,
                repository,
                version,
            } => {
                let chart = Chart {
                    release,
                    namespace: self.namespace(),
                    chart,
                    repository,
                    version,
                };
                let text = self.helm.show_crds(&chart).await?;
                let crds = parse_documents(&text)?;
                for crd in &crds {
                    self.apply(crd, dry_run, record, changes).await?;
                }
                if !dry_run {
                    for crd in &crds {
                        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
                        self.progress
                            .step(phase, &format!("waiting for CRD {name} to be established"));
                        wait::crd_established(&self.objects, name, timeout).await?;
                    }
                }
                Ok(())
            }
            Step::Secret {
                name,
                namespace,
                keys,
                annotations,
            } => {
                let existing = self.secret(namespace, name).await?;
                let r = ObjectRef {
                    api_version: "v1".into(),
                    kind: "Secret".into(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                };
                // The sealed-secrets controller adopted it: the SealedSecret
                // in Git is its source now. Writing it again would fight the
                // controller, and it is no longer telltale's to record.
                if let Some(owner) = existing.as_ref().and_then(sealed_owner) {
                    changes.push(format!(
                        "left {r} to the sealed-secrets controller (owned by {owner})"
                    ));
                    return Ok(());
                }
                let data = self
                    .secrets
                    .data((namespace, name), keys, existing.as_ref())?;
                if !secrets::matches(existing.as_ref(), &data)
                    || !secrets::annotated(existing.as_ref(), annotations)
                {
                    let secret = KubeSecret {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some(namespace.clone()),
                            annotations: (!annotations.is_empty()).then(|| annotations.clone()),
                            labels: Some(
                                [
                                    (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                                    (INSTALL_ID.to_string(), self.install_id.clone()),
                                ]
                                .into(),
                            ),
                            ..Default::default()
                        },
                        type_: Some("Opaque".into()),
                        data: Some(secrets::to_bytes(&data)),
                        ..Default::default()
                    };
                    let api: Api<KubeSecret> = Api::namespaced(self.kube.client.clone(), namespace);
                    let mut params = PatchParams::apply(FIELD_MANAGER).force();
                    params.dry_run = dry_run;
                    // The error of a failed write names the object, never the data.
                    match api.patch(name, &params, &Patch::Apply(&secret)).await {
                        Ok(_) => {}
                        // Dry-run on a fresh cluster: the namespace comes with an earlier phase.
                        Err(kube::Error::Api(e)) if dry_run && e.code == 404 => {}
                        Err(e) => {
                            return Err(StepFailure(format!(
                                "cannot write Secret {name}: {}",
                                redact_api_error(&e)
                            )));
                        }
                    }
                    let verb = match (existing.is_some(), dry_run) {
                        (false, false) => "created",
                        (false, true) => "would create",
                        (true, false) => "updated",
                        (true, true) => "would update",
                    };
                    changes.push(format!(
                        "{verb} {r} ({})",
                        crate::plural::count(keys.len(), "key")
                    ));
                }
                if !dry_run {
                    record.objects.push(r);
                }
                Ok(())
            }
            Step::Helm {
                release,
                namespace,
                chart,
                repository,
                version,
                values,
            } => {
                let values_text = self
                    .bundle
                    .files
                    .get(values)
                    .ok_or_else(|| StepFailure(format!("{values} is not in the bundle")))?;
                let chart_ref = Chart {
                    release,
                    namespace,
                    chart,
                    repository,
                    version,
                };
                self.helm
                    .upgrade_install(&chart_ref, values_text, dry_run)
                    .await?;
                if dry_run {
                    changes.push(format!(
                        "would upgrade --install {release} ({chart}@{version})"
                    ));
                    return Ok(());
                }
                let status = self.helm.status(release, namespace).await?.ok_or_else(|| {
                    StepFailure(format!(
                        "helm reports no release {release} after installing it"
                    ))
                })?;
                record.releases.push(ReleaseRecord {
                    name: release.clone(),
                    chart: chart.clone(),
                    version: version.clone(),
                    revision: status.revision,
                });
                changes.push(format!(
                    "release {release} {chart}@{version} at revision {}",
                    status.revision
                ));
                self.progress
                    .step(phase, &format!("waiting for {release} to roll out"));
                wait::release_rolled_out(&self.objects, namespace, release, timeout).await?;
                if phase == Phase::Metrics {
                    self.progress
                        .step(phase, "waiting for Prometheus and Alertmanager");
                    wait::operator_resources_available(&self.objects, namespace, timeout).await?;
                }
                Ok(())
            }
            Step::Check { .. } | Step::Verify { .. } | Step::Gitops { .. } => Ok(()),
        }
    }
}

enum PhaseStop {
    Failed(String),
    Interrupted,
}

/// An API error about a Secret, without any part of the request body the
/// server may have echoed.
fn redact_api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.reason, status.code),
        other => other.to_string(),
    }
}

fn parse_documents(text: &str) -> Result<Vec<Value>, StepFailure> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn summary(changes: &[String], dry_run: bool) -> String {
    match (changes.len(), dry_run) {
        (0, true) => "no changes".into(),
        (0, false) => "applied; nothing changed".into(),
        (n, true) => format!("{n} change(s) would be made"),
        (n, false) => format!("{n} change(s)"),
    }
}

fn result(
    phase: Phase,
    outcome: PhaseOutcome,
    detail: &str,
    changes: Vec<String>,
    started: Option<Instant>,
) -> PhaseResult {
    PhaseResult {
        phase,
        outcome,
        detail: detail.into(),
        changes,
        duration_ms: started.map(|s| s.elapsed().as_millis()).unwrap_or(0),
    }
}

/// The SealedSecret controlling a live Secret (`SealedSecret/name`): the
/// sealed-secrets controller adopted it.
fn sealed_owner(secret: &KubeSecret) -> Option<String> {
    secret
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true) && r.kind == "SealedSecret")
        .map(|r| format!("SealedSecret/{}", r.name))
}

fn secret_handed_over(secret: &KubeSecret) -> bool {
    sealed_owner(secret).is_some()
}

/// A live object a SealedSecret's controller took over.
fn handed_over(live: &Value) -> bool {
    objects::controller(live).is_some_and(|c| c.starts_with("SealedSecret/"))
}
