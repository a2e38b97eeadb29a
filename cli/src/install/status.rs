//! `status`: the journal's phases, release versions as helm reports them,
//! and drift: objects changed in the cluster since telltale applied them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::cluster::Kube;
use crate::cluster::journal::{Journal, Outcome};
use crate::cluster::lock::{self, Holder};
use crate::cluster::objects::{ObjectRef, Objects};
use crate::helm::Helm;
use crate::model::Phase;
use crate::render::Bundle;

#[derive(Debug, Serialize)]
pub struct Report {
    pub context: String,
    pub namespace: String,
    pub installed: bool,
    pub profile: Option<String>,
    /// Whether the journal's last bundle is the one the config renders now.
    pub up_to_date: Option<bool>,
    pub lock: Option<Holder>,
    pub phases: Vec<PhaseStatus>,
    pub releases: Vec<ReleaseStatus>,
    pub drift: Vec<Drift>,
}

#[derive(Debug, Serialize)]
pub struct PhaseStatus {
    pub phase: Phase,
    pub outcome: Outcome,
    pub finished: String,
    pub objects: usize,
    /// None when no bundle was rendered to compare with.
    pub digest_matches: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ReleaseStatus {
    pub name: String,
    pub chart: String,
    pub version: String,
    pub revision: u64,
    /// What helm reports now: `deployed@3`, `missing`, …
    pub live: String,
}

#[derive(Debug, Serialize)]
pub struct Drift {
    pub object: String,
    pub change: String,
}

/// `status`'s use case: connects, reads the journal, helm's releases, the
/// lock and drift.
pub async fn run(
    chosen: crate::session::Chosen,
    namespace: &str,
    bundle: Option<&Bundle>,
) -> Result<Report, crate::error::CommandError> {
    let kube = chosen.connect().await?;
    let server = kube.target.server.clone();
    let journal = crate::cluster::journal::read(&kube, namespace)
        .await
        .map_err(|e| super::errors::journal_error(e, namespace, &server))?;
    let helm = crate::session::helm(&kube.target).await.ok();
    status(&kube, helm.as_ref(), namespace, journal, bundle)
        .await
        .map_err(|e| crate::session::cluster_error("reading the stack", &server, e))
}

pub async fn status<H: Helm>(
    kube: &Kube,
    helm: Option<&H>,
    namespace: &str,
    journal: Option<Journal>,
    bundle: Option<&Bundle>,
) -> Result<Report, kube::Error> {
    let lock = lock::holder(kube, namespace).await?;
    let mut report = Report {
        context: kube.target.context.clone(),
        namespace: namespace.into(),
        installed: journal.is_some(),
        profile: journal.as_ref().map(|j| j.profile.clone()),
        up_to_date: None,
        lock,
        phases: Vec::new(),
        releases: Vec::new(),
        drift: Vec::new(),
    };
    let Some(journal) = journal else {
        return Ok(report);
    };
    let planned: BTreeMap<Phase, &String> = bundle
        .map(|b| b.plan.phases.iter().map(|p| (p.name, &p.digest)).collect())
        .unwrap_or_default();
    report.up_to_date = bundle.map(|b| {
        b.plan
            .phases
            .iter()
            .filter(|p| p.name.installable())
            .all(|p| {
                journal
                    .phases
                    .get(&p.name)
                    .is_some_and(|r| r.digest == p.digest && r.outcome == Outcome::Applied)
            })
    });
    // The manifests the bundle holds, to ask the server what applying them
    // again would change.
    let manifests: BTreeMap<ObjectRef, Value> = bundle
        .map(|b| {
            b.objects
                .values()
                .map(|o| (ObjectRef::of(&o.value), o.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    // Applying again would write the same install id: only real edits differ.
    let objects = Objects::for_install(kube, &journal.install_id);
    for (phase, record) in &journal.phases {
        report.phases.push(PhaseStatus {
            phase: *phase,
            outcome: record.outcome,
            finished: record.finished.clone(),
            objects: record.objects.len(),
            digest_matches: planned.get(phase).map(|d| **d == record.digest),
            error: record.error.clone(),
        });
        for release in &record.releases {
            let (live, change) = match helm {
                Some(helm) => match helm.status(&release.name, namespace).await {
                    Ok(Some(s)) if s.revision == release.revision => {
                        (format!("{} at revision {}", s.status, s.revision), None)
                    }
                    Ok(Some(s)) => (
                        format!("{} at revision {}", s.status, s.revision),
                        Some(format!(
                            "helm has revision {}, telltale installed {}",
                            s.revision, release.revision
                        )),
                    ),
                    Ok(None) => ("missing".into(), Some("missing".into())),
                    Err(e) => (format!("unknown: {}", crate::error::chain(&e)), None),
                },
                None => ("unknown: helm not available".into(), None),
            };
            if let Some(change) = change {
                report.drift.push(Drift {
                    object: format!("release {}", release.name),
                    change,
                });
            }
            report.releases.push(ReleaseStatus {
                name: release.name.clone(),
                chart: release.chart.clone(),
                version: release.version.clone(),
                revision: release.revision,
                live,
            });
        }
        for object in &record.objects {
            let change = match manifests.get(object) {
                Some(manifest) => objects.drift(manifest).await?,
                None => objects
                    .get(object)
                    .await?
                    .is_none()
                    .then(|| "missing".to_string()),
            };
            if let Some(change) = change {
                report.drift.push(Drift {
                    object: object.to_string(),
                    change,
                });
            }
        }
    }
    Ok(report)
}
