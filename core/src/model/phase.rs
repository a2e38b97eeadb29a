//! The fixed phase order of an install.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Preflight,
    Namespace,
    Crds,
    Secrets,
    Metrics,
    Logs,
    Exporters,
    Alerting,
    Dashboards,
    Autoscaling,
    Verify,
    Gitops,
}

impl Phase {
    pub const ALL: [Phase; 12] = [
        Phase::Preflight,
        Phase::Namespace,
        Phase::Crds,
        Phase::Secrets,
        Phase::Metrics,
        Phase::Logs,
        Phase::Exporters,
        Phase::Alerting,
        Phase::Dashboards,
        Phase::Autoscaling,
        Phase::Verify,
        Phase::Gitops,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Namespace => "namespace",
            Phase::Crds => "crds",
            Phase::Secrets => "secrets",
            Phase::Metrics => "metrics",
            Phase::Logs => "logs",
            Phase::Exporters => "exporters",
            Phase::Alerting => "alerting",
            Phase::Dashboards => "dashboards",
            Phase::Autoscaling => "autoscaling",
            Phase::Verify => "verify",
            Phase::Gitops => "gitops",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The directory name under `manifests/`: `04-metrics`.
    pub fn dir_name(self) -> String {
        format!("{:02}-{}", self.index(), self.name())
    }

    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Phases a plugin or a base manifest may install into.
    pub fn installable(self) -> bool {
        !matches!(self, Phase::Preflight | Phase::Verify | Phase::Gitops)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
