//! The state render's stages thread through: what the bundle has so far
//! (files, objects, Secret steps, releases, expectations, warnings) and
//! what later stages derive from earlier ones (every rule for the
//! escalation chain and the alert values, the alerts' dashboards for the
//! notification templates, the metrics read for their provenance).
//!
//! Each stage (base.rs, plugin.rs, slo.rs, alerting.rs, …) takes the
//! builder and adds to it; the order of the stages is the order of
//! `render_resolved`, and what each adds keeps its order in the bundle
//! (objects become apply steps in the order they were added).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::alertmanager::{Inhibition, Labels, Webhook};
use super::notify_template::AlertDashboards;
use super::objects::{self, Object};
use super::plan::{Expectations, Release, Step};
use super::routes::RoutesTest;
use super::rules::{Rule, RuleFile, RuleGroup};
use super::{RenderError, Resolved, datasources, load, metrics, template, to_yaml};
use crate::catalog::Catalog;
use crate::model::Phase;
use crate::model::config::Datasource;

pub struct Builder<'a> {
    pub catalog: &'a Catalog,
    pub r: &'a Resolved,
    pub ctx: template::Context,
    /// What templates see as `datasources` (datasources.rs).
    pub datasources: Value,
    pub files: Files,
    pub objects: Vec<(Phase, Object)>,
    /// The Secret steps of the secrets phase, in order.
    pub secret_steps: Vec<Step>,
    pub releases: Vec<Release>,
    /// Each release's values by their file.
    pub values: BTreeMap<String, Value>,
    /// The names of the bundle's rule groups (verify's `rules` check).
    pub rule_groups: Vec<String>,
    pub expectations: Expectations,
    pub warnings: Vec<String>,
    /// Every rule of the bundle so far: the escalation rules derive from
    /// its critical alerts, the alert-value records from all its alerts.
    pub rules: Vec<Rule>,
    /// The dashboard each alert's notifications link (notify_template.rs).
    pub alert_dashboards: AlertDashboards,
    /// Metric provenance: what every rule and panel reads, and who publishes it.
    pub reads: Reads,
    pub webhooks: Vec<Webhook>,
    /// The enabled plugins' inhibit rules, as declared.
    pub inhibitions: Vec<Inhibition>,
    /// The autoscaler's scale-out point, which sizes verify's load.
    pub scale_out: Option<load::ScaleOut>,
    /// Dashboards with panels left out for want of a datasource.
    pub left_out_panels: BTreeMap<Datasource, Vec<String>>,
    /// The bundle's alerts as their promtool tests fire them (alerting.rs):
    /// the label sets inhibitions and routing cases are built from.
    pub fired: Vec<Labels>,
    /// The escalated copies as the escalation test fires them.
    pub escalated: Vec<Labels>,
    /// The routing cases and inhibited pairs (alerting.rs).
    pub routes: RoutesTest,
}

impl<'a> Builder<'a> {
    pub fn new(catalog: &'a Catalog, r: &'a Resolved) -> Builder<'a> {
        Builder {
            catalog,
            r,
            ctx: template::Context {
                namespace: r.namespace.clone(),
                cluster: r.cluster.name.clone().unwrap_or_default(),
                profile: r.profile.clone(),
            },
            datasources: datasources::template_view(&r.grafana.datasources),
            files: Files::default(),
            objects: Vec::new(),
            secret_steps: Vec::new(),
            releases: Vec::new(),
            values: BTreeMap::new(),
            rule_groups: Vec::new(),
            expectations: Expectations::default(),
            warnings: r.warnings.clone(),
            rules: Vec::new(),
            alert_dashboards: AlertDashboards::default(),
            reads: Reads {
                uses: Vec::new(),
                publishers: metrics::Publishers::with_synthetic(),
            },
            webhooks: Vec::new(),
            inhibitions: Vec::new(),
            scale_out: None,
            left_out_panels: BTreeMap::new(),
            fired: Vec::new(),
            escalated: Vec::new(),
            routes: RoutesTest::default(),
        }
    }

    /// A rule group: its file, its PrometheusRule in the alerting phase,
    /// and what it reads and records.
    pub fn rule_group(
        &mut self,
        group: &RuleGroup,
        origin: &str,
        owner: &str,
    ) -> Result<(), RenderError> {
        self.reads.rules(group, &mut self.warnings);
        let path = format!("prometheus/rules/{}.yaml", group.name);
        let text = to_yaml(
            &path,
            &RuleFile {
                groups: vec![group.clone()],
            },
        )?;
        self.files.add("rule group", path, origin, text)?;
        self.objects.push((
            Phase::Alerting,
            objects::build(
                "monitoring.coreos.com/v1",
                "PrometheusRule",
                &group.name,
                &self.r.namespace,
                owner,
                json!({"spec": {"groups": [group]}}),
            ),
        ));
        self.rule_groups.push(group.name.clone());
        Ok(())
    }

    /// A dashboard: its file, the ConfigMap the Grafana sidecar loads, and
    /// verify's expectation that Grafana serves it.
    pub fn dashboard(
        &mut self,
        uid: &str,
        dashboard: &Value,
        origin: &str,
        owner: &str,
    ) -> Result<String, RenderError> {
        self.reads.dashboard(uid, dashboard, &mut self.warnings);
        let text = super::pretty_json(dashboard);
        self.files.add(
            "dashboard",
            format!("grafana/dashboards/{uid}.json"),
            origin,
            text.clone(),
        )?;
        self.objects.push((
            Phase::Dashboards,
            dashboard_configmap(uid, &text, &self.r.namespace, owner),
        ));
        self.expectations.dashboards.push(uid.to_string());
        Ok(text)
    }
}

fn dashboard_configmap(uid: &str, text: &str, namespace: &str, owner: &str) -> Object {
    objects::build(
        "v1",
        "ConfigMap",
        &format!("telltale-dashboard-{uid}"),
        namespace,
        owner,
        json!({
            // The Grafana sidecar loads ConfigMaps with this label.
            "metadata": {"labels": {"grafana_dashboard": "1"}},
            "data": {format!("{uid}.json"): text},
        }),
    )
}

/// Accumulates the bundle's files and remembers who wrote each.
#[derive(Default)]
pub struct Files {
    pub files: BTreeMap<String, String>,
    origin: BTreeMap<String, String>,
}

impl Files {
    pub fn add(
        &mut self,
        what: &'static str,
        path: String,
        origin: &str,
        content: String,
    ) -> Result<(), RenderError> {
        if let Some(first) = self.origin.get(&path) {
            return Err(RenderError::Duplicate {
                what,
                name: path,
                first: first.clone(),
                second: origin.to_string(),
            });
        }
        self.origin.insert(path.clone(), origin.to_string());
        self.files.insert(path, content);
        Ok(())
    }
}

/// What the bundle's rules and dashboards read, and who publishes what.
pub struct Reads {
    pub uses: Vec<metrics::Use>,
    pub publishers: metrics::Publishers,
}

impl Reads {
    pub fn rules(&mut self, group: &RuleGroup, warnings: &mut Vec<String>) {
        for rule in &group.rules {
            if let Some(record) = &rule.record {
                self.publishers
                    .add(record, &format!("recording rule {}", group.name));
            }
        }
        match metrics::rule_uses(&group.name, &group.rules) {
            Ok(uses) => self.uses.extend(uses),
            Err(e) => warnings.push(format!("cannot read the metrics of {e}")),
        }
    }

    pub fn dashboard(&mut self, uid: &str, dashboard: &Value, warnings: &mut Vec<String>) {
        match metrics::dashboard_uses(uid, dashboard) {
            Ok(uses) => self.uses.extend(uses),
            Err(e) => warnings.push(format!("cannot read the metrics of {e}")),
        }
    }
}
