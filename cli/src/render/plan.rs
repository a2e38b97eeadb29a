//! plan.json: what `up` will do, phase by phase, and what `verify` will prove.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alertmanager::TierIntegrations;
use crate::model::Phase;
use crate::model::config::Cluster;
use crate::model::plugin::{
    HpaExpectation, LoadExpectation, RemoteWriteExpectation, TargetExpectation,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub profile: String,
    pub profile_chain: Vec<String>,
    pub config: Option<String>,
    pub cluster: Cluster,
    pub namespace: String,
    pub plugins: Vec<PlanPlugin>,
    pub releases: Vec<Release>,
    pub phases: Vec<PlanPhase>,
    pub alerting: PlanAlerting,
    pub expectations: Expectations,
    pub warnings: Vec<String>,
    /// sha256 over every file of the bundle (path and content), plan.json excluded.
    pub digest: String,
    /// sha256 of every file of the bundle except plan.json itself.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanPlugin {
    pub name: String,
    pub version: String,
    pub phase: Phase,
    pub builtin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    pub plugin: String,
    pub namespace: String,
    pub chart: String,
    pub repository: String,
    pub version: String,
    pub phase: Phase,
    pub values: String,
    /// CRDs are applied by telltale from the chart, and helm runs with --skip-crds.
    pub crds: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanPhase {
    pub name: Phase,
    pub index: usize,
    /// sha256 over the phase's steps and the files they use: `up` skips a
    /// phase whose digest and objects are unchanged.
    pub digest: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    Check {
        id: String,
        description: String,
    },
    Crds {
        release: String,
        chart: String,
        repository: String,
        version: String,
    },
    Secret {
        name: String,
        namespace: String,
        keys: Vec<SecretKey>,
        /// Annotations `up` writes on the Secret besides telltale's marks:
        /// in the sealed-secrets mode, the controller's adoption mark, so
        /// the SealedSecret the GitOps branch brings can take it over.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        annotations: BTreeMap<String, String>,
    },
    Apply {
        file: String,
        kind: String,
        name: String,
        namespace: String,
    },
    Helm {
        release: String,
        namespace: String,
        chart: String,
        repository: String,
        version: String,
        values: String,
    },
    Verify {
        checks: Vec<String>,
    },
    Gitops {
        repo: Option<String>,
        path: Option<String>,
        layout: Option<String>,
    },
}

impl Step {
    /// A short human description for the plan table.
    pub fn describe(&self) -> String {
        match self {
            Step::Check { id, .. } => format!("check {id}"),
            Step::Crds { chart, version, .. } => format!("crds of {chart}@{version} (server-side)"),
            Step::Secret { name, keys, .. } => {
                format!(
                    "secret {name} ({})",
                    crate::plural::count(keys.len(), "key")
                )
            }
            Step::Apply { kind, name, .. } => format!("apply {kind}/{name}"),
            Step::Helm {
                release,
                chart,
                version,
                ..
            } => format!("helm {release} ({chart}@{version})"),
            Step::Verify { checks } => format!("verify {}", checks.join(",")),
            Step::Gitops { .. } => "gitops branch + pull request".to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecretKey {
    pub key: String,
    /// `env:VAR`, `file:PATH`, `secretRef:name/key`, `prompt`, `generated` (kept once
    /// created) or `fixed:VALUE` for a non-secret constant such as a user name.
    pub source: String,
}

impl Plan {
    /// What `up` will read to fill the bundle's Secrets, in words: the
    /// environment variables, files and existing Secrets its sources name,
    /// and how many values it will ask for. Never a value.
    pub fn requirements(&self) -> Vec<String> {
        let mut env = std::collections::BTreeSet::new();
        let mut files = std::collections::BTreeSet::new();
        let mut secrets = std::collections::BTreeSet::new();
        let mut prompts = 0;
        for step in self.phases.iter().flat_map(|p| &p.steps) {
            let Step::Secret { keys, .. } = step else {
                continue;
            };
            for k in keys {
                if let Some(var) = k.source.strip_prefix("env:") {
                    env.insert(var.to_string());
                } else if let Some(path) = k.source.strip_prefix("file:") {
                    files.insert(path.to_string());
                } else if let Some(r) = k.source.strip_prefix("secretRef:") {
                    secrets.insert(r.to_string());
                } else if k.source == "prompt" {
                    prompts += 1;
                }
            }
        }
        let join =
            |s: std::collections::BTreeSet<String>| s.into_iter().collect::<Vec<_>>().join(", ");
        let mut out = Vec::new();
        if !env.is_empty() {
            out.push(format!("environment: {}", join(env)));
        }
        if !files.is_empty() {
            out.push(format!("files: {}", join(files)));
        }
        if !secrets.is_empty() {
            out.push(format!(
                "existing Secrets in {}: {}",
                self.namespace,
                join(secrets)
            ));
        }
        if prompts > 0 {
            out.push(format!(
                "asked for at the terminal: {}",
                crate::plural::count(prompts, "value")
            ));
        }
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanAlerting {
    pub receivers: Vec<TierIntegrations>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Expectations {
    pub targets: Vec<TargetExpectation>,
    pub rule_groups: Vec<String>,
    pub receivers: Vec<String>,
    pub dashboards: Vec<String>,
    pub log_namespaces: Vec<String>,
    pub external_metrics: Vec<String>,
    pub hpas: Vec<HpaExpectation>,
    pub load: Option<LoadExpectation>,
    /// The remote-write queues Prometheus must send through (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_write: Vec<RemoteWriteExpectation>,
}
