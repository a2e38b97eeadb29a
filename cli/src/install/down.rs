//! `down`: undo what the journal says `up` did, in reverse phase order.
//! Releases are uninstalled, managed objects deleted; CRDs and persistent
//! data stay unless asked (`--keep-crds=false`, `--keep-data=false`).
//!
//! The journal is a ConfigMap anyone with edit rights in the namespace can
//! change, so it is a list of candidates, not of orders. An object is deleted
//! only when (a) its live labels carry telltale's marks with the journal's
//! install id, (b) a journal entry names it, and (c) it is in the namespace
//! `down` runs on, or is a CustomResourceDefinition (the one cluster-scoped
//! kind telltale applies). Anything else is reported as skipped, never
//! deleted.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams};

use super::{PhaseOutcome, PhaseResult, RunEnd, interrupt::Interrupt, result};
use crate::cluster::Kube;
use crate::cluster::journal::{self, Journal};
use crate::cluster::objects::{self, ObjectRef, Objects};
use crate::helm::Helm;
use crate::report::Reporter;

#[derive(Debug, Clone)]
pub struct DownOptions {
    pub keep_crds: bool,
    pub keep_data: bool,
    pub releases: AllowedReleases,
}

/// The helm releases `down` may uninstall: the journal cannot prove a
/// release is telltale's (helm's own records carry no install id), so a
/// journal entry is acted on only when telltale itself would install a
/// release of that name (the current plan's, or any catalogue plugin's when
/// there is no config). Anything else is reported and left alone, with its
/// PersistentVolumeClaims.
pub type AllowedReleases = std::collections::BTreeSet<String>;

/// A journal entry `down` refused to act on, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub object: String,
    pub reason: String,
}

/// Why `down` may not delete this object, or None when it may: the checks
/// that need no request.
pub fn out_of_bounds(object: &ObjectRef, namespace: &str) -> Option<String> {
    if object.namespace.is_empty() {
        (object.kind != "CustomResourceDefinition").then(|| {
            format!(
                "it is cluster-scoped and not a CustomResourceDefinition (telltale installs no other cluster-scoped {})",
                object.kind
            )
        })
    } else {
        (object.namespace != namespace)
            .then(|| format!("it is outside the namespace telltale manages ({namespace})"))
    }
}

/// Tears down phase by phase, rewriting the journal after each so an
/// interrupted `down` resumes where it stopped.
pub async fn down<H: Helm>(
    kube: &Kube,
    helm: &H,
    namespace: &str,
    mut journal: Journal,
    options: &DownOptions,
    progress: &dyn Reporter,
    interrupt: &Interrupt,
) -> (Vec<PhaseResult>, RunEnd, Vec<Skipped>) {
    let mut skipped = Vec::new();
    let objects = Objects::new(kube);
    let install_id = journal.install_id.clone();
    let mut results = Vec::new();
    let phases: Vec<_> = journal.phases.keys().rev().copied().collect();
    for phase in phases {
        if interrupt.is_set() {
            return (results, RunEnd::Interrupted { phase }, skipped);
        }
        let started = std::time::Instant::now();
        let record = journal.phases[&phase].clone();
        progress.phase_started(phase, "removing");
        let mut changes = Vec::new();
        let mut failure = None;
        for release in record.releases.iter().rev() {
            if !options.releases.contains(&release.name) {
                skipped.push(Skipped {
                    object: format!("helm release {}", release.name),
                    reason: "telltale installs no release of that name (not in the plan or the catalogue)"
                        .into(),
                });
                continue;
            }
            progress.step(phase, &format!("helm uninstall {}", release.name));
            match helm.uninstall(&release.name, namespace).await {
                Ok(()) => changes.push(format!("uninstalled release {}", release.name)),
                Err(e) if e.is_missing_release() => {}
                Err(e) => {
                    failure = Some(crate::error::chain(&e));
                    break;
                }
            }
            if !options.keep_data {
                match delete_claims(kube, namespace, &release.name).await {
                    Ok(n) if n > 0 => changes.push(format!(
                        "deleted {n} PersistentVolumeClaim(s) of {}",
                        release.name
                    )),
                    Ok(_) => {}
                    Err(e) => {
                        failure = Some(crate::error::chain(&e));
                        break;
                    }
                }
            }
        }
        if failure.is_none() {
            for object in record.objects.iter().rev() {
                let kept = match object.kind.as_str() {
                    "CustomResourceDefinition" => options.keep_crds,
                    // The namespace holds the data (and the lock): the
                    // command removes it last, after releasing the lock.
                    "Namespace" => true,
                    _ => false,
                };
                if kept {
                    continue;
                }
                if let Some(reason) = out_of_bounds(object, namespace) {
                    skipped.push(Skipped {
                        object: object.to_string(),
                        reason,
                    });
                    continue;
                }
                let live = match objects.get(object).await {
                    Ok(Some(live)) => live,
                    Ok(None) => continue,
                    Err(e) => {
                        failure =
                            Some(format!("cannot read {object}: {}", crate::error::chain(&e)));
                        break;
                    }
                };
                if let Err(reason) = objects::owned(&live, &install_id) {
                    skipped.push(Skipped {
                        object: object.to_string(),
                        reason: format!("not telltale's to delete: {reason}"),
                    });
                    continue;
                }
                progress.step(phase, &format!("delete {object}"));
                match objects.delete(object).await {
                    Ok(true) => changes.push(format!("deleted {object}")),
                    Ok(false) => {}
                    Err(e) => {
                        failure = Some(format!(
                            "cannot delete {object}: {}",
                            crate::error::chain(&e)
                        ));
                        break;
                    }
                }
            }
        }
        if let Some(error) = failure {
            progress.phase_finished(phase, false, &error);
            let (results, end) = failed(results, phase, error, changes, started);
            return (results, end, skipped);
        }
        journal.phases.remove(&phase);
        let write = if journal.phases.is_empty() {
            journal::delete(kube, namespace).await
        } else {
            journal::write(kube, namespace, &journal).await
        };
        if let Err(e) = write {
            let error = format!(
                "phase {phase} removed but the journal could not be updated: {}",
                crate::error::chain(&e)
            );
            let (results, end) = failed(results, phase, error, changes, started);
            return (results, end, skipped);
        }
        let detail = format!("{} removal(s)", changes.len());
        progress.phase_finished(phase, true, &detail);
        results.push(result(
            phase,
            PhaseOutcome::Applied,
            &detail,
            changes,
            Some(started),
        ));
    }
    (results, RunEnd::Done, skipped)
}

fn failed(
    mut results: Vec<PhaseResult>,
    phase: crate::model::Phase,
    error: String,
    changes: Vec<String>,
    started: std::time::Instant,
) -> (Vec<PhaseResult>, RunEnd) {
    results.push(result(
        phase,
        PhaseOutcome::Failed,
        &error,
        changes,
        Some(started),
    ));
    (results, RunEnd::Failed { phase, error })
}

/// PVCs a release's StatefulSets left behind (helm never deletes them).
async fn delete_claims(kube: &Kube, namespace: &str, release: &str) -> Result<usize, kube::Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(kube.client.clone(), namespace);
    let selector = format!("app.kubernetes.io/instance={release}");
    let claims = api.list(&ListParams::default().labels(&selector)).await?;
    let mut n = 0;
    for claim in claims.items {
        if let Some(name) = claim.metadata.name {
            api.delete(&name, &DeleteParams::default()).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// What `down` was asked to remove, and where.
pub struct DownRequest {
    pub namespace: String,
    pub options: DownOptions,
}

/// What `down` did.
pub enum DownOutcome {
    /// No journal in the namespace: nothing was removed.
    NotInstalled {
        context: String,
    },
    Ran(DownReport),
}

#[derive(Debug, serde::Serialize)]
pub struct DownReport {
    pub ok: bool,
    pub context: String,
    pub namespace: String,
    pub phases: Vec<PhaseResult>,
    /// Journal entries not deleted: outside the namespace, or without
    /// telltale's marks and this install's id.
    pub skipped: Vec<Skipped>,
    pub namespace_deleted: bool,
    #[serde(skip)]
    pub end: RunEnd,
}

/// `down`'s use case: connects, takes the lock, removes what the journal
/// recorded (see [`down`]), releases the lock and, without `keep_data`,
/// deletes the namespace.
pub async fn run(
    chosen: crate::session::Chosen,
    request: &DownRequest,
    reporter: &dyn Reporter,
) -> Result<DownOutcome, crate::error::CommandError> {
    use crate::error::{CommandError, ErrorKind};
    use k8s_openapi::api::core::v1::Namespace;

    let kube = chosen.connect().await?;
    let server = kube.target.server.clone();
    let namespace = request.namespace.as_str();
    let options = &request.options;
    let interrupt = Interrupt::listen(reporter.interrupt_notice());
    let Some(journal) = journal::read(&kube, namespace)
        .await
        .map_err(|e| super::errors::journal_error(e, namespace, &server))?
    else {
        return Ok(DownOutcome::NotInstalled {
            context: kube.target.context.clone(),
        });
    };
    let helm = crate::session::helm(&kube.target)
        .await
        .map_err(|e| CommandError::from_error(ErrorKind::Environment, &e))?;
    let lock = crate::cluster::lock::acquire(&kube, namespace, "down").await?;
    if journal.install_id.is_empty() {
        reporter.warn(
            "the journal has no install id (written by an older telltale): no object can be \
             proven telltale's, so none is deleted; run `telltale up` once to mark them",
        );
    }
    let (phases, end, skipped) = down(
        &kube, &helm, namespace, journal, options, reporter, &interrupt,
    )
    .await;
    let released = lock.release().await;
    let mut namespace_deleted = false;
    if end == RunEnd::Done && !options.keep_data {
        let api: Api<Namespace> = Api::all(kube.client.clone());
        match api.delete(namespace, &DeleteParams::default()).await {
            Ok(_) => namespace_deleted = true,
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(crate::session::cluster_error(
                    "deleting the namespace",
                    &server,
                    e,
                ));
            }
        }
    } else if let Err(e) = released {
        reporter.warn(&format!("the lock could not be released: {e}"));
    }
    Ok(DownOutcome::Ran(DownReport {
        ok: end == RunEnd::Done,
        context: kube.target.context.clone(),
        namespace: namespace.to_string(),
        phases,
        skipped,
        namespace_deleted,
        end,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: &str, namespace: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: "x".into(),
        }
    }

    #[test]
    fn only_the_managed_namespace_and_crds_are_in_bounds() {
        assert_eq!(
            out_of_bounds(&r("ConfigMap", "monitoring"), "monitoring"),
            None
        );
        assert_eq!(
            out_of_bounds(&r("CustomResourceDefinition", ""), "monitoring"),
            None
        );
        assert!(out_of_bounds(&r("Deployment", "kube-system"), "monitoring").is_some());
        assert!(out_of_bounds(&r("ClusterRole", ""), "monitoring").is_some());
    }
}
