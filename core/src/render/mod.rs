//! The renderer: model → [`Bundle`], pure and deterministic.
//!
//! Same input, same bytes: no timestamps, maps are sorted, lists keep the
//! order of their sources, and every file's sha256 lands in plan.json.
//!
//! Rendering is a row of stages over one [`builder::Builder`]
//! ([`render_resolved`] lists them), each in the module of its concern. No
//! stage names a plugin: what a plugin brings is its data (plugin.yaml,
//! templates, overlays), so a new plugin needs no change here.

pub mod alert_values;
pub mod alerting;
pub mod alertmanager;
mod base;
pub mod bridge;
pub mod builder;
pub mod dashboards;
pub mod datasources;
pub mod escalation;
pub mod expectations;
pub mod load;
pub mod metrics;
pub mod notify_template;
pub mod objects;
pub mod phases;
pub mod plan;
mod plugin;
mod read;
pub mod resolve;
pub mod routes;
pub mod rules;
pub mod sealed;
mod secret_steps;
pub mod slo;
pub mod strvals;
pub mod template;
pub mod values;

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, CatalogError};
use crate::model::LocatedError;
use builder::Builder;
pub use expectations::UNBACKED;
pub use metrics::FILE as METRICS_FILE;
use plan::Plan;
pub use resolve::{Request, Resolved, resolve};
pub use routes::RoutesTest;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Invalid(#[from] LocatedError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("no profile selected")]
    NoProfile { known: Vec<String> },
    #[error("{what} `{name}` is defined twice: in {first} and in {second}")]
    Duplicate {
        what: &'static str,
        name: String,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Slo(#[from] slo::SloError),
    #[error("cannot serialize {path}: {message}")]
    Serialize { path: String, message: String },
}

impl RenderError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RenderError::Invalid(e) => e.hint.clone(),
            RenderError::Catalog(e) => e.hint(),
            RenderError::NoProfile { known } => Some(format!(
                "pass --profile NAME or set spec.profile in telltale.yaml; built-in profiles: {}",
                known.join(", ")
            )),
            RenderError::Duplicate { .. } => Some("rename one of them".into()),
            RenderError::Slo(_) => Some("see docs: an SLO's errors and total are PromQL with {{window}} and {{selector}} placeholders".into()),
            RenderError::Serialize { .. } => None,
        }
    }
}

/// A rendered bundle: every file (relative path → content) and the typed
/// data the rest of the program reads instead of parsing the files back.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub files: BTreeMap<String, String>,
    pub plan: Plan,
    /// plan.json as written.
    pub plan_json: String,
    /// The enabled plugins' inhibit rules, as declared (alertmanager.yaml
    /// holds those that select alerts of this bundle).
    pub inhibitions: Vec<alertmanager::Inhibition>,
    /// alertmanager/routes-test.yaml, typed: the routing cases verify replays.
    pub routes: RoutesTest,
    /// Every object of the bundle by its file (the Apply steps' `file`),
    /// as rendered: what `up` applies and preflight reads API groups from.
    pub objects: BTreeMap<String, objects::Object>,
    /// Every release's helm values by their file (a release's `values`):
    /// what preflight sizes volumes and requests from.
    pub values: BTreeMap<String, serde_json::Value>,
}

pub fn to_yaml<T: Serialize>(path: &str, value: &T) -> Result<String, RenderError> {
    serde_saphyr::to_string(value).map_err(|e| RenderError::Serialize {
        path: path.to_string(),
        message: e.to_string(),
    })
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON as the bundle writes it: pretty, with a final newline.
fn pretty_json<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

/// The Secret `up` generates Grafana's admin credentials into (the chart's
/// `admin.existingSecret`); verify reads it to query Grafana.
pub const GRAFANA_ADMIN_SECRET: &str = "telltale-grafana-admin";

pub fn render(catalog: &Catalog, request: &Request) -> Result<Bundle, RenderError> {
    let resolved = resolve(catalog, request)?;
    render_resolved(catalog, &resolved)
}

/// The stages, in order; each adds to the builder (builder.rs says what it
/// holds). The order is the bundle's: objects become apply steps in the
/// order the stages add them, warnings are listed as they are found.
pub fn render_resolved(catalog: &Catalog, r: &Resolved) -> Result<Bundle, RenderError> {
    let mut b = Builder::new(catalog, r);
    base::add(&mut b)?;
    for p in &r.plugins {
        plugin::add(&mut b, p)?;
    }
    expectations::derive_load(&mut b);
    datasources::warn_left_out(&mut b);
    slo::add(&mut b)?;
    alert_values::add(&mut b)?;
    alerting::fire(&mut b);
    escalation::add(&mut b)?;
    metrics::add(&mut b)?;
    alerting::add(&mut b)?;
    secret_steps::add(&mut b);
    datasources::add(&mut b)?;
    phases::finish(b)
}
