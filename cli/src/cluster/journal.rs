//! The journal: a ConfigMap in the stack's namespace recording, per phase,
//! the bundle digest, the objects applied, the helm revisions, the outcome
//! and the time. `up` reads it to skip unchanged phases and resume at a
//! failed one; `status` shows it; `down` removes it last.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use super::Kube;
use super::objects::{FIELD_MANAGER, MANAGED_BY, ObjectRef};
use crate::model::Phase;

pub const CONFIGMAP: &str = "telltale-journal";
const KEY: &str = "journal.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Failed,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub name: String,
    pub chart: String,
    pub version: String,
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub digest: String,
    pub outcome: Outcome,
    pub started: String,
    pub finished: String,
    /// Objects applied in this phase, in order; after a failure, exactly
    /// those applied before it.
    #[serde(default)]
    pub objects: Vec<ObjectRef>,
    #[serde(default)]
    pub releases: Vec<ReleaseRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub profile: String,
    /// The digest of the last bundle `up` worked from.
    pub bundle_digest: String,
    pub phases: BTreeMap<Phase, PhaseRecord>,
}

impl Journal {
    /// The first phase (in phase order) whose last run did not complete.
    pub fn first_unfinished(&self) -> Option<Phase> {
        self.phases
            .iter()
            .find(|(_, r)| r.outcome != Outcome::Applied)
            .map(|(p, _)| *p)
    }
}

pub async fn read(kube: &Kube, namespace: &str) -> Result<Option<Journal>, JournalError> {
    let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), namespace);
    let Some(cm) = api.get_opt(CONFIGMAP).await? else {
        return Ok(None);
    };
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .ok_or(JournalError::Corrupt(format!("{CONFIGMAP} has no {KEY}")))?;
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| JournalError::Corrupt(format!("{CONFIGMAP}/{KEY}: {e}")))
}

pub async fn write(kube: &Kube, namespace: &str, journal: &Journal) -> Result<(), JournalError> {
    let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), namespace);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIGMAP.into()),
            namespace: Some(namespace.into()),
            labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
            ..Default::default()
        },
        data: Some(
            [(
                KEY.to_string(),
                serde_json::to_string_pretty(journal).expect("journal serializes"),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(CONFIGMAP, &params, &Patch::Apply(&cm)).await?;
    Ok(())
}

pub async fn delete(kube: &Kube, namespace: &str) -> Result<(), JournalError> {
    let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), namespace);
    match api.delete(CONFIGMAP, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal is unreadable: {0}")]
    Corrupt(String),
    #[error("cannot reach the journal: {0}")]
    Api(#[from] kube::Error),
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
