//! The renderer: model → [`Bundle`], pure and deterministic.
//!
//! Same input, same bytes: no timestamps, maps are sorted, lists keep the
//! order of their sources, and every file's sha256 lands in plan.json.

pub mod alert_values;
pub mod alertmanager;
pub mod dashboards;
pub mod escalation;
pub mod load;
pub mod metrics;
pub mod notify_template;
pub mod objects;
pub mod plan;
pub mod resolve;
pub mod rules;
pub mod sachet;
pub mod sealed;
pub mod slo;
pub mod strvals;
pub mod template;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, CatalogError};
use crate::model::{LocatedError, Phase};
use objects::Object;
use plan::{Expectations, Plan, PlanAlerting, PlanPhase, PlanPlugin, Release, SecretKey, Step};
pub use resolve::{Request, Resolved, resolve};

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

/// A rendered bundle: relative path → content.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub files: BTreeMap<String, String>,
    pub plan: Plan,
    /// plan.json as written.
    pub plan_json: String,
    /// The enabled plugins' inhibit rules, as declared (alertmanager.yaml
    /// holds those that select alerts of this bundle).
    pub inhibitions: Vec<alertmanager::Inhibition>,
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

/// Accumulates the bundle's files and remembers who wrote each.
#[derive(Default)]
struct Files {
    files: BTreeMap<String, String>,
    origin: BTreeMap<String, String>,
}

impl Files {
    fn add(
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

/// The Secret `up` generates Grafana's admin credentials into (the chart's
/// `admin.existingSecret`); verify reads it to query Grafana.
pub const GRAFANA_ADMIN_SECRET: &str = "telltale-grafana-admin";

pub fn render(catalog: &Catalog, request: &Request) -> Result<Bundle, RenderError> {
    let resolved = resolve(catalog, request)?;
    render_resolved(catalog, &resolved)
}

pub fn render_resolved(catalog: &Catalog, r: &Resolved) -> Result<Bundle, RenderError> {
    let ctx = template::Context {
        namespace: r.namespace.clone(),
        cluster: r.cluster.name.clone().unwrap_or_default(),
        profile: r.profile.clone(),
    };
    let runbook_base = r.alerting.runbook_base_url.as_deref();
    let mut files = Files::default();
    let mut objects: Vec<(Phase, Object)> = Vec::new();
    let mut expectations = Expectations::default();
    let mut warnings = r.warnings.clone();

    // Base manifests: one directory per phase.
    for dir in catalog.manifests.subdirs() {
        let phase = Phase::from_name(&dir)
            .filter(|p| p.installable())
            .ok_or_else(|| {
                RenderError::Invalid(LocatedError::new(
                    &crate::model::Source::new(catalog.manifests.display(&dir), ""),
                    1,
                    1,
                    format!("`{dir}` is not a phase that installs objects"),
                ))
            })?;
        for (_, source) in catalog.manifests.files_in(&dir, ".yaml") {
            let rendered = template::render(&source, &ctx)?;
            for o in objects::parse(&rendered, &r.namespace, "core")? {
                objects.push((phase, o));
            }
        }
    }

    // Runbooks of the core alerts, then the plugins'.
    for (name, source) in catalog.runbooks.files_in("", ".md") {
        files.add(
            "runbook",
            format!("runbooks/{name}"),
            &source.name,
            source.text,
        )?;
    }

    let postgres = r.grafana.datasources.postgres.as_ref();
    // What a dashboard panel may require, and what this bundle has.
    let mut known: Vec<&str> = dashboards::DATASOURCES.to_vec();
    known.extend(catalog.plugins.keys().map(String::as_str));
    let mut available: Vec<&str> = r.plugins.iter().map(|p| p.name()).collect();
    if postgres.is_some() {
        available.push("postgres");
    }
    let requirements = dashboards::Requirements {
        known: &known,
        available: &available,
    };
    let mut secret_steps: Vec<Step> = Vec::new();
    // Dashboards with panels left out for want of the PostgreSQL datasource.
    let mut needs_postgres: Vec<String> = Vec::new();
    let mut releases = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut webhooks: Vec<alertmanager::Webhook> = Vec::new();
    let mut inhibitions: Vec<alertmanager::Inhibition> = Vec::new();
    // Every rule of the bundle: the escalation rules derive from its critical
    // alerts, the alert-value records from all its alerts.
    let mut all_rules: Vec<rules::Rule> = Vec::new();
    // The dashboard each alert's notifications link (notify_template.rs).
    let mut alert_dashboards = notify_template::AlertDashboards::default();
    // Metric provenance: what every rule and panel reads, and who publishes it.
    let mut reads = Reads::default();
    // The autoscaler's scale-out point, which sizes verify's load.
    let mut scale_out: Option<load::ScaleOut> = None;
    let mut publishers = metrics::Publishers::with_synthetic();

    for p in &r.plugins {
        let name = p.name();
        let spec = &p.entry.plugin.spec;
        let tree = &p.entry.files;
        let secret_refs = p.secret_refs();
        for (_, source) in tree.files_in("manifests", ".yaml") {
            let rendered = template::render_with_secrets(&source, &ctx, &p.values, &secret_refs)?;
            for o in objects::parse(&rendered, &r.namespace, name)? {
                objects.push((spec.phase, o));
            }
        }
        let mut plugin_alerts: Vec<String> = Vec::new();
        let mut plugin_dashboards: Vec<String> = Vec::new();
        for (file, source) in tree.files_in("rules", ".yaml") {
            let stem = file.trim_end_matches(".yaml");
            let source = crate::model::Source::new(
                source.name.clone(),
                rules::rebase_runbooks(&source.text, runbook_base),
            );
            let group = rules::parse_rule_file(&source, stem)?;
            plugin_alerts.extend(group.rules.iter().filter_map(|r| r.alert.clone()));
            all_rules.extend(group.rules.iter().cloned());
            reads.rules(&group, &mut publishers, &mut warnings);
            let path = format!("prometheus/rules/{stem}.yaml");
            let text = to_yaml(
                &path,
                &rules::RuleFile {
                    groups: vec![group.clone()],
                },
            )?;
            files.add("rule group", path, &source.name, text)?;
            objects.push((
                Phase::Alerting,
                objects::build(
                    "monitoring.coreos.com/v1",
                    "PrometheusRule",
                    stem,
                    &r.namespace,
                    name,
                    json!({"spec": {"groups": [group]}}),
                ),
            ));
            groups.push(stem.to_string());
        }
        for (file, source) in tree.files_in("tests", "_test.yaml") {
            files.add(
                "rule test",
                format!("prometheus/tests/{file}"),
                &source.name,
                rules::rebase_runbooks(&source.text, runbook_base),
            )?;
        }
        for (file, source) in tree.files_in("dashboards", ".json") {
            let uid = file.trim_end_matches(".json");
            // Dashboards link runbooks too (alert history): same base as the rules.
            let source = crate::model::Source::new(
                source.name.clone(),
                rules::rebase_runbooks(&source.text, runbook_base),
            );
            if postgres.is_none() && dashboards::needs(&source, "postgres") {
                needs_postgres.push(uid.to_string());
            }
            let Some(dashboard) = dashboards::prepare(&source, uid, requirements)? else {
                // Every panel needs something this bundle does not have.
                continue;
            };
            reads.dashboard(uid, &dashboard, &mut warnings);
            let text = pretty_json(&dashboard);
            plugin_dashboards.push(uid.to_string());
            // The Alert History table reads the alert-value records.
            if alert_dashboards.fallback.is_none() && text.contains(alert_values::METRIC) {
                alert_dashboards.fallback = Some(uid.to_string());
            }
            files.add(
                "dashboard",
                format!("grafana/dashboards/{uid}.json"),
                &source.name,
                text.clone(),
            )?;
            objects.push((
                Phase::Dashboards,
                dashboard_configmap(uid, &text, &r.namespace, name),
            ));
            expectations.dashboards.push(uid.to_string());
        }
        alert_dashboards.add_plugin(&plugin_alerts, &plugin_dashboards);
        for (file, source) in tree.files_in("runbooks", ".md") {
            files.add(
                "runbook",
                format!("runbooks/{file}"),
                &source.name,
                source.text,
            )?;
        }
        let mut secret_keys: Vec<SecretKey> = p
            .secrets
            .iter()
            .map(|(path, source)| SecretKey {
                key: resolve::secret_key(path),
                source: source.to_string(),
            })
            .collect();
        if name == sachet::PLUGIN {
            // The SMS bridge takes its numbers and token from alerting.receivers.sms.
            if r.alerting.receivers.sms.is_none() && !r.alerting.left_out.iter().any(|l| l == "sms")
            {
                warnings.push("plugin sachet is enabled but alerting.receivers.sms is not configured: no SMS will be sent".into());
            }
            secret_keys.extend(sachet::secret_keys(&r.alerting));
            let path = "sachet/config.yaml.tmpl";
            let yaml = to_yaml(path, &sachet::config(&r.alerting))?;
            objects.push((spec.phase, sachet::config_map(&r.namespace, yaml)));
        }
        if !secret_keys.is_empty() {
            secret_steps.push(Step::Secret {
                name: p.secret_name(),
                namespace: r.namespace.clone(),
                keys: secret_keys,
                annotations: BTreeMap::new(),
            });
        }
        inhibitions.extend(spec.inhibitions.iter().cloned());
        for p in &spec.publishes {
            let by = format!("{} ({name})", p.component);
            for metric in &p.metrics {
                publishers.add(metric, &by);
            }
        }
        if let Some(hook) = &spec.alert_webhook {
            let source = crate::model::Source::new(tree.display("plugin.yaml"), hook.url.clone());
            let url = template::render(&source, &ctx)?.text;
            if alertmanager::receiver_names(&r.alerting).contains(&hook.receiver)
                || webhooks.iter().any(|w| w.receiver == hook.receiver)
            {
                return Err(crate::catalog::locate(
                    &tree.get("plugin.yaml").unwrap_or_default(),
                    "spec.alertWebhook.receiver",
                    format!(
                        "receiver `{}` is already taken (by a tier or another plugin)",
                        hook.receiver
                    ),
                )
                .into());
            }
            webhooks.push(alertmanager::Webhook {
                receiver: hook.receiver.clone(),
                url,
            });
        }
        if let Some(chart) = &spec.chart {
            let release = chart.release_name(name).to_string();
            let mut values = p.values.clone();
            if name == "kube-prometheus-stack" && postgres.is_some() {
                // Grafana expands $VARS in provisioning files: the password
                // reaches the datasource from the Secret, never from a file.
                values::merge(
                    &mut values,
                    json!({"grafana": {"envValueFrom": {"TELLTALE_POSTGRES_PASSWORD": {
                    "secretKeyRef": {"name": "telltale-grafana-postgres", "key": "password"}}}}}),
                );
            }
            let path = format!("helm/{release}/values.yaml");
            files.add("values file", path.clone(), name, to_yaml(&path, &values)?)?;
            releases.push(Release {
                name: release,
                plugin: name.to_string(),
                namespace: r.namespace.clone(),
                chart: chart.name.clone(),
                repository: chart.repository.clone(),
                version: chart.version.clone(),
                phase: spec.phase,
                values: path,
                crds: chart.crds,
            });
        }
        let ex = &spec.expectations;
        for t in &ex.targets {
            // `scrapedBy: chart` holds only for a plugin that has a chart.
            let by_chart = t.scraped_by.as_deref() == Some("chart");
            expectations
                .targets
                .push(crate::model::plugin::TargetExpectation {
                    scraped_by: match (&spec.chart, by_chart) {
                        (Some(chart), true) => Some(format!("chart {}", chart.name)),
                        _ => None,
                    },
                    ..t.clone()
                });
        }
        expectations
            .log_namespaces
            .extend(ex.log_namespaces.iter().cloned());
        expectations
            .external_metrics
            .extend(ex.external_metrics.iter().cloned());
        // Where a plugin's HPA and load target live depends on the namespace
        // the stack goes to: these strings are templates like values.yaml.
        let expand = |text: &str| -> Result<String, RenderError> {
            let source = crate::model::Source::new(tree.display("plugin.yaml"), text.to_string());
            Ok(template::render(&source, &ctx)?.text)
        };
        // A queue's name and URL are the plugin's values (remote-write's `url`).
        for queue in &ex.remote_write {
            let with_values = |text: &str| -> Result<String, RenderError> {
                let source =
                    crate::model::Source::new(tree.display("plugin.yaml"), text.to_string());
                Ok(template::render_with_values(&source, &ctx, &p.values)?
                    .text
                    .trim()
                    .to_string())
            };
            expectations
                .remote_write
                .push(crate::model::plugin::RemoteWriteExpectation {
                    name: with_values(&queue.name)?,
                    url: with_values(&queue.url)?,
                });
        }
        for hpa in &ex.hpas {
            expectations
                .hpas
                .push(crate::model::plugin::HpaExpectation {
                    namespace: expand(&hpa.namespace)?,
                    name: expand(&hpa.name)?,
                });
        }
        let load = match &ex.load {
            Some(load) => Some(crate::model::plugin::LoadExpectation {
                url: expand(&load.url)?,
                hpa: load.hpa.as_deref().map(expand).transpose()?,
                ..load.clone()
            }),
            None => None,
        };
        if let Some(load) = &load {
            if expectations.load.is_some() {
                warnings.push(format!(
                    "plugin {name} also defines a load expectation; the first one ({}) is used",
                    expectations.load.as_ref().map_or("", |l| l.url.as_str())
                ));
            } else {
                expectations.load = Some(load.clone());
            }
        }
        if let Some(s) = &ex.scale_out {
            let resolved = scale_out_of(s, tree, &ctx, &p.values)?;
            if scale_out.is_none() {
                scale_out = Some(resolved);
            }
        }
    }
    if let (Some(l), Some(s)) = (&expectations.load, &scale_out) {
        expectations.load = Some(load::derive(l, s));
    }
    // The PostgreSQL panels show the fine-tune jobs' results: worth a word
    // only where those jobs are monitored.
    if !needs_postgres.is_empty() && r.plugins.iter().any(|p| p.name() == "ml-training") {
        warnings.push(format!(
            "the PostgreSQL panels of {} {} are left out: grafana.datasources.postgres is not configured; set `spec.grafana.datasources.postgres: {{host: HOST:PORT, database: DB, user: USER, password: {{secretRef: {{name: SECRET, key: KEY}}}}}}` to show them",
            if needs_postgres.len() == 1 { "dashboard" } else { "dashboards" },
            needs_postgres.join(", ")
        ));
    }

    // SLOs: recording rules, burn-rate alerts, their tests and a dashboard.
    if !r.slos.is_empty() {
        let base = runbook_base.unwrap_or(rules::DEFAULT_RUNBOOK_BASE);
        let generated = slo::render(&r.slos, &r.slo_selector, base)?;
        for (name, group, test) in generated.groups {
            let alerts: Vec<String> = group.rules.iter().filter_map(|r| r.alert.clone()).collect();
            alert_dashboards.link("telltale-slo", &alerts);
            all_rules.extend(group.rules.iter().cloned());
            reads.rules(&group, &mut publishers, &mut warnings);
            let path = format!("prometheus/rules/{name}.yaml");
            files.add(
                "rule group",
                path.clone(),
                "slos",
                to_yaml(&path, &slo::rule_file(&group))?,
            )?;
            if let Some(test) = test {
                files.add(
                    "rule test",
                    format!("prometheus/tests/{name}_test.yaml"),
                    "slos",
                    test,
                )?;
            }
            objects.push((
                Phase::Alerting,
                objects::build(
                    "monitoring.coreos.com/v1",
                    "PrometheusRule",
                    &name,
                    &r.namespace,
                    "slos",
                    json!({"spec": {"groups": [group]}}),
                ),
            ));
            groups.push(name);
        }
        reads.dashboard("telltale-slo", &generated.dashboard, &mut warnings);
        let text = pretty_json(&generated.dashboard);
        files.add(
            "dashboard",
            "grafana/dashboards/telltale-slo.json".into(),
            "slos",
            text.clone(),
        )?;
        objects.push((
            Phase::Dashboards,
            dashboard_configmap("telltale-slo", &text, &r.namespace, "slos"),
        ));
        expectations.dashboards.push("telltale-slo".into());
    }

    // Each alert's value and runbook as a series, for the Alert History table.
    if let Some(group) = alert_values::group(&all_rules) {
        reads.rules(&group, &mut publishers, &mut warnings);
        let path = format!("prometheus/rules/{}.yaml", alert_values::GROUP);
        let text = to_yaml(
            &path,
            &rules::RuleFile {
                groups: vec![group.clone()],
            },
        )?;
        files.add("rule group", path, "core", text)?;
        objects.push((
            Phase::Alerting,
            objects::build(
                "monitoring.coreos.com/v1",
                "PrometheusRule",
                alert_values::GROUP,
                &r.namespace,
                "core",
                json!({"spec": {"groups": [group]}}),
            ),
        ));
        groups.push(alert_values::GROUP.to_string());
    }

    // Alerting: plain alertmanager.yaml (secrets as *_file) and the Secret that carries it.
    // The alerts as their promtool tests fire them: the label sets the
    // inhibitions and the routing cases are built from.
    let fired = alertmanager::fired_alerts(
        files
            .files
            .iter()
            .filter(|(p, _)| p.starts_with("prometheus/tests/"))
            .map(|(_, t)| t),
    );
    // The escalation chain: rules derived from the critical alerts, with
    // their test (after `fired`: the copies are not inhibition sources).
    warnings.extend(alertmanager::unconfigured_levels(&r.alerting));
    let mut escalated = Vec::new();
    if let Some(e) = escalation::render(
        alertmanager::levels(&r.alerting),
        &escalation::critical_alerts(&all_rules),
        &fired,
    ) {
        let name = escalation::GROUP;
        reads.rules(&e.group, &mut publishers, &mut warnings);
        let path = format!("prometheus/rules/{name}.yaml");
        files.add(
            "rule group",
            path.clone(),
            "escalation",
            to_yaml(
                &path,
                &rules::RuleFile {
                    groups: vec![e.group.clone()],
                },
            )?,
        )?;
        let test_path = format!("prometheus/tests/{name}_test.yaml");
        files.add(
            "rule test",
            test_path.clone(),
            "escalation",
            to_yaml(&test_path, &e.test)?,
        )?;
        objects.push((
            Phase::Alerting,
            objects::build(
                "monitoring.coreos.com/v1",
                "PrometheusRule",
                name,
                &r.namespace,
                "escalation",
                json!({"spec": {"groups": [e.group]}}),
            ),
        ));
        groups.push(name.to_string());
        escalated = e.fired;
    }
    // Every name read, who publishes it; a warning per name nobody does.
    let table = metrics::provenance(&reads.uses, &publishers);
    warnings.extend(metrics::warnings(&table, &elsewhere(catalog, r)));
    files.add(
        "metric provenance",
        METRICS_FILE.into(),
        "core",
        pretty_json(&serde_json::json!({ "metrics": table })),
    )?;
    let am = alertmanager::config(&r.alerting, &r.namespace, &webhooks, &inhibitions, &fired);
    let am_text = to_yaml("alertmanager/alertmanager.yaml", &am)?;
    files.add(
        "alertmanager config",
        "alertmanager/alertmanager.yaml".into(),
        "core",
        am_text.clone(),
    )?;
    let templates = notify_template::render(r.alerting.grafana_url.as_deref(), &alert_dashboards);
    files.add(
        "notification templates",
        notify_template::BUNDLE_PATH.into(),
        "core",
        templates.clone(),
    )?;
    files.add(
        "routing tests",
        "alertmanager/routes-test.yaml".into(),
        "core",
        to_yaml(
            "alertmanager/routes-test.yaml",
            &alertmanager::routes_test(
                &webhooks,
                &inhibitions,
                &fired,
                &escalated,
                r.cluster.name.as_deref().unwrap_or_default(),
                alertmanager::root_receiver(&r.alerting),
            ),
        )?,
    )?;
    // In the secrets phase, not alerting: Alertmanager starts in the metrics
    // phase and must find its configSecret there.
    objects.push((
        Phase::Secrets,
        objects::build(
            "v1",
            "Secret",
            alertmanager::CONFIG_SECRET,
            &r.namespace,
            "core",
            // The operator mounts every other key in /etc/alertmanager/config/.
            json!({"type": "Opaque", "stringData": {
                "alertmanager.yaml": am_text,
                notify_template::FILE: templates,
            }}),
        ),
    ));
    let receiver_keys = alertmanager::receiver_secret_keys(&r.alerting);
    secret_steps.insert(
        0,
        Step::Secret {
            name: alertmanager::RECEIVER_SECRET.into(),
            namespace: r.namespace.clone(),
            keys: receiver_keys
                .iter()
                .map(|(key, source)| SecretKey {
                    key: key.clone(),
                    source: source.to_string(),
                })
                .collect(),
            annotations: BTreeMap::new(),
        },
    );
    secret_steps.insert(
        0,
        Step::Secret {
            name: GRAFANA_ADMIN_SECRET.into(),
            namespace: r.namespace.clone(),
            keys: vec![
                SecretKey {
                    key: "admin-user".into(),
                    source: "fixed:admin".into(),
                },
                SecretKey {
                    key: "admin-password".into(),
                    source: "generated".into(),
                },
            ],
            annotations: BTreeMap::new(),
        },
    );
    if let Some(pg) = postgres {
        secret_steps.push(Step::Secret {
            name: "telltale-grafana-postgres".into(),
            namespace: r.namespace.clone(),
            keys: vec![SecretKey {
                key: "password".into(),
                source: pg.password.to_string(),
            }],
            annotations: BTreeMap::new(),
        });
        let provisioning = json!({
            "apiVersion": 1,
            "datasources": [{
                "name": "PostgreSQL", "uid": "postgres", "type": "grafana-postgresql-datasource",
                "url": pg.host, "user": pg.user,
                "jsonData": {"database": pg.database, "sslmode": pg.sslmode},
                "secureJsonData": {"password": "$TELLTALE_POSTGRES_PASSWORD"},
            }],
        });
        objects.push((
            Phase::Dashboards,
            objects::build(
                "v1",
                "ConfigMap",
                "telltale-datasource-postgres",
                &r.namespace,
                "core",
                json!({
                    "metadata": {"labels": {"grafana_datasource": "1"}},
                    "data": {"postgres.yaml": to_yaml("postgres.yaml", &provisioning)?},
                }),
            ),
        ));
    }

    // Objects into manifests/<NN>-<phase>/.
    let mut apply_steps: BTreeMap<Phase, Vec<Step>> = BTreeMap::new();
    for (phase, object) in &objects {
        check_object(object)?;
        let path = format!("manifests/{}/{}", phase.dir_name(), object.file_name());
        files.add(
            "object",
            path.clone(),
            &object.owner,
            to_yaml(&path, &object.value)?,
        )?;
        apply_steps.entry(*phase).or_default().push(Step::Apply {
            file: path,
            kind: object.kind().to_string(),
            name: object.name().to_string(),
            namespace: object.namespace().to_string(),
        });
    }

    groups.sort();
    expectations.rule_groups = groups;
    expectations.receivers = alertmanager::receiver_names(&r.alerting);
    expectations.targets = merge_targets(expectations.targets, &scraped_jobs(&objects));
    for t in &expectations.targets {
        if t.scraped_by.is_none() && t.requires.is_none() {
            warnings.push(format!(
                "{UNBACKED} `{}`: nothing in the bundle scrapes it (add a ServiceMonitor, or \
                 declare the system it belongs to with `requires:` in the plugin's expectation)",
                t.job
            ));
        }
    }
    let mut log_ns: BTreeSet<String> = expectations.log_namespaces.drain(..).collect();
    if r.plugins
        .iter()
        .any(|p| p.entry.plugin.spec.phase == Phase::Logs)
    {
        log_ns.insert(r.namespace.clone());
    }
    expectations.log_namespaces = log_ns.into_iter().collect();
    expectations.dashboards.sort();
    expectations.external_metrics.sort();
    expectations.external_metrics.dedup();
    expectations.hpas.sort();
    expectations.hpas.dedup();

    // Phases and their steps, in the fixed order.
    let mut phases = Vec::new();
    for phase in Phase::ALL {
        let mut steps = Vec::new();
        match phase {
            Phase::Preflight => steps.extend(preflight_checks()),
            Phase::Crds => {
                for rel in releases.iter().filter(|rel| rel.crds) {
                    steps.push(Step::Crds {
                        release: rel.name.clone(),
                        chart: rel.chart.clone(),
                        repository: rel.repository.clone(),
                        version: rel.version.clone(),
                    });
                }
            }
            Phase::Secrets => steps.extend(
                secret_steps
                    .iter()
                    .cloned()
                    .map(|s| sealed::adoptable(s, r.gitops.as_ref())),
            ),
            Phase::Verify => steps.push(Step::Verify {
                checks: verify_checks(&expectations),
            }),
            Phase::Gitops => {
                if let Some(g) = &r.gitops {
                    steps.push(Step::Gitops {
                        repo: g.repo.clone(),
                        path: g.path.clone(),
                        layout: g.layout.map(|l| l.to_string()),
                    });
                }
            }
            _ => {}
        }
        // Objects before the release of the same phase would fail on missing
        // CRDs for the metrics phase, so releases go first.
        for rel in releases.iter().filter(|rel| rel.phase == phase) {
            steps.push(Step::Helm {
                release: rel.name.clone(),
                namespace: rel.namespace.clone(),
                chart: rel.chart.clone(),
                repository: rel.repository.clone(),
                version: rel.version.clone(),
                values: rel.values.clone(),
            });
        }
        steps.extend(apply_steps.remove(&phase).unwrap_or_default());
        let digest = phase_digest(&steps, &files.files);
        phases.push(PlanPhase {
            name: phase,
            index: phase.index(),
            digest,
            steps,
        });
    }

    let file_digests: BTreeMap<String, String> = files
        .files
        .iter()
        .map(|(p, c)| (p.clone(), sha256(c.as_bytes())))
        .collect();
    let digest = sha256(
        file_digests
            .iter()
            .map(|(p, d)| format!("{p}\0{d}\n"))
            .collect::<String>()
            .as_bytes(),
    );
    let plan = Plan {
        api_version: crate::model::API_VERSION.into(),
        kind: "Plan".into(),
        profile: r.profile.clone(),
        profile_chain: r.profile_chain.clone(),
        config: r.config_name.clone(),
        cluster: r.cluster.clone(),
        namespace: r.namespace.clone(),
        plugins: r
            .plugins
            .iter()
            .map(|p| PlanPlugin {
                name: p.name().to_string(),
                version: p.entry.plugin.metadata.version.clone(),
                phase: p.entry.plugin.spec.phase,
                builtin: p.entry.builtin,
            })
            .collect(),
        releases,
        phases,
        alerting: PlanAlerting {
            receivers: alertmanager::tier_integrations(&r.alerting, &r.namespace),
        },
        expectations,
        warnings,
        digest,
        files: file_digests,
    };
    let plan_json = pretty_json(&plan);
    Ok(Bundle {
        files: files.files,
        plan,
        plan_json,
        inhibitions,
    })
}

/// An autoscaler's `expectations.scaleOut`, its templates rendered with the
/// plugin's values and checked (file and key path on a bad one).
fn scale_out_of(
    s: &crate::model::plugin::ScaleOutExpectation,
    tree: &crate::catalog::Tree,
    ctx: &template::Context,
    values: &serde_json::Value,
) -> Result<load::ScaleOut, RenderError> {
    let manifest = tree.get("plugin.yaml").unwrap_or_default();
    let field = |text: &str| -> Result<String, RenderError> {
        let source = crate::model::Source::new(tree.display("plugin.yaml"), text.to_string());
        Ok(template::render_with_values(&source, ctx, values)?
            .text
            .trim()
            .to_string())
    };
    let bad = |key: &str, value: &str, expected: &str| -> RenderError {
        crate::catalog::locate(
            &manifest,
            &format!("spec.expectations.scaleOut.{key}"),
            format!(
                "`{}` is not {expected}",
                value.chars().take(64).collect::<String>()
            ),
        )
        .into()
    };
    let duration = |key: &str, text: &str| -> Result<std::time::Duration, RenderError> {
        let value = field(text)?;
        humantime::parse_duration(&value)
            .ok()
            .filter(|d| !d.is_zero() && *d <= std::time::Duration::from_secs(3600))
            .ok_or_else(|| bad(key, &value, "a duration up to 1h (e.g. 2m)"))
    };
    let min = field(&s.min_replicas)?;
    let rps = field(&s.requests_per_replica)?;
    Ok(load::ScaleOut {
        hpa: field(&s.hpa)?,
        min_replicas: min
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| bad("minReplicas", &min, "a replica count from 1 to 1000"))?,
        requests_per_replica: rps
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0)
            .ok_or_else(|| {
                bad(
                    "requestsPerReplica",
                    &rps,
                    "a positive number of requests per second",
                )
            })?,
        window: duration("window", &s.window)?,
        interval: duration("interval", &s.interval)?,
    })
}

/// The bundle file listing every metric read and its publishers.
pub const METRICS_FILE: &str = "metrics.json";

/// What the bundle's rules and dashboards read, and what its recording
/// rules publish.
#[derive(Default)]
struct Reads {
    uses: Vec<metrics::Use>,
}

impl Reads {
    fn rules(
        &mut self,
        group: &rules::RuleGroup,
        publishers: &mut metrics::Publishers,
        warnings: &mut Vec<String>,
    ) {
        for rule in &group.rules {
            if let Some(record) = &rule.record {
                publishers.add(record, &format!("recording rule {}", group.name));
            }
        }
        match metrics::rule_uses(&group.name, &group.rules) {
            Ok(uses) => self.uses.extend(uses),
            Err(e) => warnings.push(format!("cannot read the metrics of {e}")),
        }
    }

    fn dashboard(&mut self, uid: &str, dashboard: &serde_json::Value, warnings: &mut Vec<String>) {
        match metrics::dashboard_uses(uid, dashboard) {
            Ok(uses) => self.uses.extend(uses),
            Err(e) => warnings.push(format!("cannot read the metrics of {e}")),
        }
    }
}

/// What the catalogue's plugins outside this bundle publish: named in the
/// warning about a metric nothing in the bundle publishes.
fn elsewhere(catalog: &Catalog, r: &Resolved) -> metrics::Publishers {
    let mut out = metrics::Publishers::default();
    for (name, entry) in &catalog.plugins {
        if r.plugins.iter().any(|p| p.name() == name) {
            continue;
        }
        for p in &entry.plugin.spec.publishes {
            for metric in &p.metrics {
                out.add(metric, &format!("plugin {name}"));
            }
        }
    }
    out
}

/// Object names become file names and API paths: a Kubernetes name, kind
/// and namespace, checked before any file is built from them.
fn check_object(object: &Object) -> Result<(), RenderError> {
    use crate::model::validate;
    let name = object.name();
    let problem =
        if object.kind().is_empty() || !object.kind().chars().all(|c| c.is_ascii_alphanumeric()) {
            Some(("kind", "a Kubernetes kind (letters and digits)".to_string()))
        } else if let Err(i) = validate::dns_subdomain(name) {
            Some(("metadata.name", i.expected))
        } else if !object.namespace().is_empty()
            && let Err(i) = validate::dns_label(object.namespace())
        {
            Some(("metadata.namespace", i.expected))
        } else {
            None
        };
    match problem {
        None => Ok(()),
        Some((path, expected)) => Err(RenderError::Invalid(
            LocatedError::new(
                &crate::model::Source::new(format!("object of {}", object.owner), ""),
                1,
                1,
                format!(
                    "{} `{}`: expected {expected}",
                    object.kind().chars().take(64).collect::<String>(),
                    name.chars().take(64).collect::<String>()
                ),
            )
            .at_path(path),
        )),
    }
}

fn pretty_json<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

fn dashboard_configmap(uid: &str, text: &str, namespace: &str, owner: &str) -> Object {
    objects::build(
        "v1",
        "ConfigMap",
        &format!("telltale-dashboard-{uid}"),
        namespace,
        owner,
        json!({
            // The kube-prometheus-stack Grafana sidecar loads ConfigMaps with this label.
            "metadata": {"labels": {"grafana_dashboard": "1"}},
            "data": {format!("{uid}.json"): text},
        }),
    )
}

fn phase_digest(steps: &[Step], files: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(steps).unwrap_or_default());
    for step in steps {
        let used = match step {
            Step::Apply { file, .. } => Some(file),
            Step::Helm { values, .. } => Some(values),
            _ => None,
        };
        if let Some(content) = used.and_then(|f| files.get(f)) {
            hasher.update(content.as_bytes());
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn preflight_checks() -> Vec<Step> {
    [
        (
            "context",
            "the kube context is the one pinned in the config",
        ),
        ("api", "the API server is reachable"),
        ("server-version", "the server version is supported"),
        ("helm", "helm is installed (>= 3.14; 4.x preferred)"),
        (
            "secrets",
            "every secret source resolves (env set, file readable, Secret present)",
        ),
        (
            "rbac",
            "every permission the plan needs (SelfSubjectAccessReview)",
        ),
        (
            "storage-class",
            "a default StorageClass exists when volumes are requested",
        ),
        ("capacity", "node allocatable covers the summed requests"),
    ]
    .into_iter()
    .map(|(id, d)| Step::Check {
        id: id.into(),
        description: d.into(),
    })
    .collect()
}

fn verify_checks(ex: &Expectations) -> Vec<String> {
    let mut checks = vec!["targets", "rules", "alertmanager", "notifications"];
    if !ex.log_namespaces.is_empty() {
        checks.push("logs");
    }
    if !ex.dashboards.is_empty() {
        checks.push("dashboards");
    }
    if !ex.external_metrics.is_empty() || !ex.hpas.is_empty() {
        checks.push("autoscaling");
    }
    if ex.load.is_some() {
        checks.push("load");
    }
    if !ex.remote_write.is_empty() {
        checks.push("remote-write");
    }
    checks.into_iter().map(String::from).collect()
}

/// How a plan warning about an expected job nothing scrapes begins (the
/// lint of every profile looks for it).
pub const UNBACKED: &str = "expected target job";

/// The jobs the bundle's monitors make Prometheus scrape, each with the
/// object that does: a relabelling that sets `job`, a Probe's `jobName`, or
/// else (a ServiceMonitor's job is its Service's name) the monitor's name
/// and the names its selector matches.
fn scraped_jobs(objects: &[(Phase, Object)]) -> BTreeMap<String, String> {
    let mut jobs = BTreeMap::new();
    for (_, o) in objects {
        let kind = o.kind();
        if !matches!(
            kind,
            "ServiceMonitor" | "PodMonitor" | "Probe" | "ScrapeConfig"
        ) {
            continue;
        }
        let by = format!("{kind}/{}", o.name());
        let spec = &o.value["spec"];
        let mut names: Vec<String> = Vec::new();
        for endpoints in ["endpoints", "podMetricsEndpoints"] {
            for e in spec[endpoints].as_array().into_iter().flatten() {
                for r in e["relabelings"].as_array().into_iter().flatten() {
                    if r["targetLabel"] == "job"
                        && let Some(job) = r["replacement"].as_str()
                    {
                        names.push(job.to_string());
                    }
                }
            }
        }
        if let Some(job) = spec["jobName"].as_str() {
            names.push(job.to_string());
        }
        if names.is_empty() {
            names.push(o.name().to_string());
            if let Some(labels) = spec["selector"]["matchLabels"].as_object() {
                names.extend(labels.values().filter_map(|v| v.as_str().map(String::from)));
            }
        }
        for name in names {
            jobs.entry(name).or_insert_with(|| by.clone());
        }
    }
    jobs
}

/// One expectation per job: the highest minimum wins, what scrapes it is
/// the bundle's monitor or the plugin's chart, and a job the bundle scrapes
/// needs no outside system.
fn merge_targets(
    targets: Vec<crate::model::plugin::TargetExpectation>,
    scraped: &BTreeMap<String, String>,
) -> Vec<crate::model::plugin::TargetExpectation> {
    let mut by_job: BTreeMap<String, crate::model::plugin::TargetExpectation> = BTreeMap::new();
    for t in targets {
        match by_job.get_mut(&t.job) {
            Some(known) => {
                known.min = known.min.max(t.min);
                known.scraped_by = known.scraped_by.take().or(t.scraped_by);
                known.requires = known.requires.take().or(t.requires);
            }
            None => {
                by_job.insert(t.job.clone(), t);
            }
        }
    }
    by_job
        .into_values()
        .map(|mut t| {
            if let Some(by) = scraped.get(&t.job) {
                t.scraped_by = Some(by.clone());
            }
            t
        })
        .collect()
}
