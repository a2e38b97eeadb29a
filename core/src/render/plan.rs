//! plan.json: what `up` will do, phase by phase, and what `verify` will prove.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alertmanager::TierIntegrations;
use crate::model::Phase;
use crate::model::config::Cluster;
use crate::model::plugin::{
    HpaExpectation, LoadExpectation, RemoteWriteExpectation, TargetExpectation,
};
use crate::secrets::KeySource;

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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
        id: PreflightCheck,
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
        checks: Vec<CheckId>,
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
            Step::Verify { checks } => format!(
                "verify {}",
                checks
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Step::Gitops { .. } => "gitops branch + pull request".to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecretKey {
    pub key: String,
    pub source: KeySource,
}

/// A check of the preflight phase: read-only, before the first write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreflightCheck {
    Context,
    Api,
    ServerVersion,
    Helm,
    Secrets,
    Rbac,
    StorageClass,
    Capacity,
}

impl PreflightCheck {
    /// In the order preflight runs and plan.json lists them.
    pub const ALL: [PreflightCheck; 8] = [
        PreflightCheck::Context,
        PreflightCheck::Api,
        PreflightCheck::ServerVersion,
        PreflightCheck::Helm,
        PreflightCheck::Secrets,
        PreflightCheck::Rbac,
        PreflightCheck::StorageClass,
        PreflightCheck::Capacity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PreflightCheck::Context => "context",
            PreflightCheck::Api => "api",
            PreflightCheck::ServerVersion => "server-version",
            PreflightCheck::Helm => "helm",
            PreflightCheck::Secrets => "secrets",
            PreflightCheck::Rbac => "rbac",
            PreflightCheck::StorageClass => "storage-class",
            PreflightCheck::Capacity => "capacity",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            PreflightCheck::Context => "the kube context is the one pinned in the config",
            PreflightCheck::Api => "the API server is reachable",
            PreflightCheck::ServerVersion => "the server version is supported",
            PreflightCheck::Helm => "helm is installed (>= 3.14; 4.x preferred)",
            PreflightCheck::Secrets => {
                "every secret source resolves (env set, file readable, Secret present)"
            }
            PreflightCheck::Rbac => "every permission the plan needs (SelfSubjectAccessReview)",
            PreflightCheck::StorageClass => {
                "a default StorageClass exists when volumes are requested"
            }
            PreflightCheck::Capacity => "node allocatable covers the summed requests",
        }
    }
}

impl std::fmt::Display for PreflightCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A check of `verify`; plan.json's verify step lists those the profile
/// declares something for. An unknown name in a plan is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum CheckId {
    Targets,
    Rules,
    Alertmanager,
    Notifications,
    Logs,
    Dashboards,
    Autoscaling,
    Load,
    #[serde(rename = "remote-write")]
    RemoteWrite,
}

impl CheckId {
    pub const ALL: [CheckId; 9] = [
        CheckId::Targets,
        CheckId::Rules,
        CheckId::Alertmanager,
        CheckId::Notifications,
        CheckId::Logs,
        CheckId::Dashboards,
        CheckId::Autoscaling,
        CheckId::Load,
        CheckId::RemoteWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckId::Targets => "targets",
            CheckId::Rules => "rules",
            CheckId::Alertmanager => "alertmanager",
            CheckId::Notifications => "notifications",
            CheckId::Logs => "logs",
            CheckId::Dashboards => "dashboards",
            CheckId::Autoscaling => "autoscaling",
            CheckId::Load => "load",
            CheckId::RemoteWrite => "remote-write",
        }
    }
}

impl Plan {
    /// The checks of the verify step.
    pub fn verify_checks(&self) -> Vec<CheckId> {
        self.phases
            .iter()
            .flat_map(|p| &p.steps)
            .filter_map(|s| match s {
                Step::Verify { checks } => Some(checks),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

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
                match &k.source {
                    KeySource::Env(var) => {
                        env.insert(var.clone());
                    }
                    KeySource::File(path) => {
                        files.insert(path.clone());
                    }
                    KeySource::SecretRef { name, key } => {
                        secrets.insert(format!("{name}/{key}"));
                    }
                    KeySource::Prompt => prompts += 1,
                    KeySource::Generated | KeySource::Fixed(_) => {}
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
