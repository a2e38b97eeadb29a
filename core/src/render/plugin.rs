//! One enabled plugin's content: its manifests, rules and their tests,
//! dashboards, runbooks, Secret, inhibitions, the metrics it publishes, its
//! alert webhook, its helm release and its expectations. Nothing here
//! depends on which plugin it is.

use std::collections::BTreeMap;

use super::alertmanager::{self, Webhook};
use super::builder::Builder;
use super::plan::{Release, SecretKey, Step};
use super::resolve::{self, EnabledPlugin};
use super::{
    RenderError, alert_values, bridge, dashboards, datasources, expectations, objects, rules,
    template, to_yaml,
};
use crate::model::Source;
use crate::secrets::KeySource;

/// The stage, for one plugin.
pub fn add(b: &mut Builder<'_>, p: &EnabledPlugin) -> Result<(), RenderError> {
    manifests(b, p)?;
    let alerts = rule_groups(b, p)?;
    let dashboards = dashboards(b, p)?;
    b.alert_dashboards.add_plugin(&alerts, &dashboards);
    bridge::objects(b, p)?;
    for (file, source) in p.entry.files.files_in("runbooks", ".md") {
        b.files.add(
            "runbook",
            format!("runbooks/{file}"),
            &source.name,
            source.text,
        )?;
    }
    secret(b, p);
    let spec = &p.entry.plugin.spec;
    b.inhibitions.extend(spec.inhibitions.iter().cloned());
    for published in &spec.publishes {
        let by = format!("{} ({})", published.component, p.name());
        for metric in &published.metrics {
            b.reads.publishers.add(metric, &by);
        }
    }
    webhook(b, p)?;
    release(b, p)?;
    expectations::add_plugin(b, p)
}

fn manifests(b: &mut Builder<'_>, p: &EnabledPlugin) -> Result<(), RenderError> {
    let secrets = p.secret_refs();
    let scope = template::Scope {
        values: Some(&p.values),
        secrets: Some(&secrets),
        datasources: Some(&b.datasources),
        alerting: None,
    };
    for (_, source) in p.entry.files.files_in("manifests", ".yaml") {
        let rendered = template::render_in(&source, &b.ctx, scope)?;
        for o in objects::parse(&rendered, &b.r.namespace, p.name())? {
            b.objects.push((p.entry.plugin.spec.phase, o));
        }
    }
    Ok(())
}

/// Rule groups and their tests, runbook links rebased; returns the alerts.
fn rule_groups(b: &mut Builder<'_>, p: &EnabledPlugin) -> Result<Vec<String>, RenderError> {
    let base = b.r.alerting.runbook_base_url.as_deref();
    let mut alerts = Vec::new();
    for (file, source) in p.entry.files.files_in("rules", ".yaml") {
        let stem = file.trim_end_matches(".yaml");
        let source = Source::new(
            source.name.clone(),
            rules::rebase_runbooks(&source.text, base),
        );
        let group = rules::parse_rule_file(&source, stem)?;
        alerts.extend(group.rules.iter().filter_map(|r| r.alert.clone()));
        b.rules.extend(group.rules.iter().cloned());
        b.rule_group(&group, &source.name, p.name())?;
    }
    for (file, source) in p.entry.files.files_in("tests", "_test.yaml") {
        b.files.add(
            "rule test",
            format!("prometheus/tests/{file}"),
            &source.name,
            rules::rebase_runbooks(&source.text, base),
        )?;
    }
    Ok(alerts)
}

/// Dashboards with the panels this bundle can fill; returns their uids.
fn dashboards(b: &mut Builder<'_>, p: &EnabledPlugin) -> Result<Vec<String>, RenderError> {
    let (catalog, r) = (b.catalog, b.r);
    // What a panel may require, and what this bundle has.
    let mut known: Vec<&str> = crate::model::config::Datasource::names();
    known.extend(catalog.plugins.keys().map(String::as_str));
    let mut available: Vec<&str> = crate::model::config::Datasource::ALL
        .iter()
        .filter(|d| r.grafana.datasources.configured(**d))
        .map(|d| d.name())
        .collect();
    available.extend(r.plugins.iter().map(|p| p.name()));
    let requirements = dashboards::Requirements {
        known: &known,
        available: &available,
    };
    let base = r.alerting.runbook_base_url.as_deref();
    let mut uids = Vec::new();
    for (file, source) in p.entry.files.files_in("dashboards", ".json") {
        let uid = file.trim_end_matches(".json");
        // Dashboards link runbooks too (alert history): same base as the rules.
        let source = Source::new(
            source.name.clone(),
            rules::rebase_runbooks(&source.text, base),
        );
        datasources::note_left_out(b, &source, uid);
        let Some(dashboard) = dashboards::prepare(&source, uid, requirements)? else {
            // Every panel needs something this bundle does not have.
            continue;
        };
        let text = b.dashboard(uid, &dashboard, &source.name, p.name())?;
        uids.push(uid.to_string());
        // The Alert History table reads the alert-value records.
        if b.alert_dashboards.fallback.is_none() && text.contains(alert_values::METRIC) {
            b.alert_dashboards.fallback = Some(uid.to_string());
        }
    }
    Ok(uids)
}

/// The plugin's Secret: its declared secrets with a source, and those of
/// the integration it bridges.
fn secret(b: &mut Builder<'_>, p: &EnabledPlugin) {
    let mut keys: Vec<SecretKey> = p
        .secrets
        .iter()
        .map(|(path, source)| SecretKey {
            key: resolve::secret_key(path),
            source: KeySource::from(source),
        })
        .collect();
    keys.extend(bridge::secret_keys(b, p));
    if !keys.is_empty() {
        b.secret_steps.push(Step::Secret {
            name: p.secret_name(),
            namespace: b.r.namespace.clone(),
            keys,
            annotations: BTreeMap::new(),
        });
    }
}

/// `spec.alertWebhook`: a receiver every alert reaches first.
fn webhook(b: &mut Builder<'_>, p: &EnabledPlugin) -> Result<(), RenderError> {
    let Some(hook) = &p.entry.plugin.spec.alert_webhook else {
        return Ok(());
    };
    let tree = &p.entry.files;
    let source = Source::new(tree.display("plugin.yaml"), hook.url.clone());
    let url = template::render(&source, &b.ctx)?.text;
    if alertmanager::receiver_names(&b.r.alerting).contains(&hook.receiver)
        || b.webhooks.iter().any(|w| w.receiver == hook.receiver)
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
    b.webhooks.push(Webhook {
        receiver: hook.receiver.clone(),
        url,
    });
    Ok(())
}

/// `spec.chart`: the release and its values file.
fn release(b: &mut Builder<'_>, p: &EnabledPlugin) -> Result<(), RenderError> {
    let spec = &p.entry.plugin.spec;
    let Some(chart) = &spec.chart else {
        return Ok(());
    };
    let name = p.name();
    let release = chart.release_name(name).to_string();
    let path = format!("helm/{release}/values.yaml");
    b.files.add(
        "values file",
        path.clone(),
        name,
        to_yaml(&path, &p.values)?,
    )?;
    b.values.insert(path.clone(), p.values.clone());
    b.releases.push(Release {
        name: release,
        plugin: name.to_string(),
        namespace: b.r.namespace.clone(),
        chart: chart.name.clone(),
        repository: chart.repository.clone(),
        version: chart.version.clone(),
        phase: spec.phase,
        values: path,
        crds: chart.crds,
    });
    Ok(())
}
