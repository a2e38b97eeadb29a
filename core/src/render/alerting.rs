//! The alerting stages: the bundle's alerts as their tests fire them, then
//! (after the escalation rules and the metric provenance) alertmanager.yaml
//! with secrets as `*_file` paths, the notification templates, the routing
//! tests, and the Secret that carries the config to Alertmanager.

use serde_json::json;

use super::builder::Builder;
use super::{RenderError, alertmanager, notify_template, objects, routes, to_yaml};
use crate::model::Phase;

/// The stage before the escalation chain: every alert the bundle's promtool
/// tests fire, with its full label set.
pub fn fire(b: &mut Builder<'_>) {
    b.fired = alertmanager::fired_alerts(
        b.files
            .files
            .iter()
            .filter(|(p, _)| p.starts_with("prometheus/tests/"))
            .map(|(_, t)| t),
    );
}

/// The stage: Alertmanager's files and its config Secret.
pub fn add(b: &mut Builder<'_>) -> Result<(), RenderError> {
    let r = b.r;
    let am = alertmanager::config(&r.alerting, &b.webhooks, &b.inhibitions, &b.fired);
    let am_text = to_yaml("alertmanager/alertmanager.yaml", &am)?;
    b.files.add(
        "alertmanager config",
        "alertmanager/alertmanager.yaml".into(),
        "core",
        am_text.clone(),
    )?;
    let templates = notify_template::render(r.alerting.grafana_url.as_deref(), &b.alert_dashboards);
    b.files.add(
        "notification templates",
        notify_template::BUNDLE_PATH.into(),
        "core",
        templates.clone(),
    )?;
    b.routes = routes::routes_test(
        &b.webhooks,
        &b.inhibitions,
        &b.fired,
        &b.escalated,
        r.cluster.name.as_deref().unwrap_or_default(),
        alertmanager::root_receiver(&r.alerting),
    );
    b.files.add(
        "routing tests",
        routes::FILE.into(),
        "core",
        to_yaml(routes::FILE, &b.routes)?,
    )?;
    // In the secrets phase, not alerting: Alertmanager starts in the metrics
    // phase and must find its configSecret there.
    b.objects.push((
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
    Ok(())
}
