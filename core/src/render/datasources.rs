//! The Grafana datasources the config adds (`grafana.datasources`): for
//! each one configured, a provisioning ConfigMap the Grafana sidecar loads
//! and the Secret `up` writes its password to. Grafana expands `$VARS` in
//! provisioning files, so the password reaches the datasource from that
//! Secret through an environment variable, never from a file; which
//! release runs Grafana is the plugins' business: templates see each
//! datasource as `datasources.<name>: {env, password: {name, key}}` and the
//! plugin that runs Grafana sets the variable in its own overlay.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::builder::Builder;
use super::objects;
use super::plan::{SecretKey, Step};
use super::{RenderError, to_yaml};
use crate::model::Phase;
use crate::model::config::{Datasource, GrafanaDatasources};
use crate::secrets::KeySource;

/// The key of a datasource's Secret that holds the password.
pub const PASSWORD_KEY: &str = "password";

/// The Secret `up` writes a datasource's password to.
pub fn secret_name(ds: Datasource) -> String {
    format!("telltale-grafana-{}", ds.name())
}

/// The environment variable Grafana expands in the provisioning file.
pub fn env_var(ds: Datasource) -> String {
    format!("TELLTALE_{}_PASSWORD", ds.name().to_uppercase())
}

/// Grafana's plugin type of the datasource, as dashboards' datasource
/// variables name it.
pub fn grafana_type(ds: Datasource) -> &'static str {
    match ds {
        Datasource::Postgres => "grafana-postgresql-datasource",
    }
}

/// How people call it.
fn label(ds: Datasource) -> &'static str {
    match ds {
        Datasource::Postgres => "PostgreSQL",
    }
}

/// What telltale.yaml sets to configure it (the warning's suggestion).
fn example(ds: Datasource) -> &'static str {
    match ds {
        Datasource::Postgres => {
            "{host: HOST:PORT, database: DB, user: USER, password: {secretRef: {name: SECRET, key: KEY}}}"
        }
    }
}

/// What templates see as `datasources`: the configured ones only.
pub fn template_view(configured: &GrafanaDatasources) -> Value {
    let view: serde_json::Map<String, Value> = Datasource::ALL
        .into_iter()
        .filter(|ds| configured.configured(*ds))
        .map(|ds| {
            (
                ds.name().to_string(),
                json!({"env": env_var(ds), "password": {"name": secret_name(ds), "key": PASSWORD_KEY}}),
            )
        })
        .collect();
    Value::Object(view)
}

/// The stage: each configured datasource's Secret step and provisioning
/// ConfigMap (dashboards phase).
pub fn add(b: &mut Builder<'_>) -> Result<(), RenderError> {
    let Some(pg) = &b.r.grafana.datasources.postgres else {
        return Ok(());
    };
    let ds = Datasource::Postgres;
    b.secret_steps.push(Step::Secret {
        name: secret_name(ds),
        namespace: b.r.namespace.clone(),
        keys: vec![SecretKey {
            key: PASSWORD_KEY.into(),
            source: KeySource::from(&pg.password),
        }],
        annotations: BTreeMap::new(),
    });
    let provisioning = json!({
        "apiVersion": 1,
        "datasources": [{
            "name": label(ds), "uid": ds.name(), "type": grafana_type(ds),
            "url": pg.host, "user": pg.user,
            "jsonData": {"database": pg.database, "sslmode": pg.sslmode},
            "secureJsonData": {"password": format!("${}", env_var(ds))},
        }],
    });
    let file = format!("{}.yaml", ds.name());
    let text = to_yaml(&file, &provisioning)?;
    b.objects.push((
        Phase::Dashboards,
        objects::build(
            "v1",
            "ConfigMap",
            &format!("telltale-datasource-{}", ds.name()),
            &b.r.namespace,
            "core",
            json!({
                "metadata": {"labels": {"grafana_datasource": "1"}},
                "data": {file: text},
            }),
        ),
    ));
    Ok(())
}

/// Records the dashboard `uid` as losing panels for each datasource it
/// needs that is not configured.
pub fn note_left_out(b: &mut Builder<'_>, source: &crate::model::Source, uid: &str) {
    for ds in Datasource::ALL {
        if !b.r.grafana.datasources.configured(ds) && super::dashboards::needs(source, ds.name()) {
            b.left_out_panels
                .entry(ds)
                .or_default()
                .push(uid.to_string());
        }
    }
}

/// The stage: a warning per datasource whose absence leaves panels out,
/// when an enabled plugin is shown through it (plugin.yaml
/// `spec.datasources`; the PostgreSQL panels show the fine-tune jobs'
/// results, worth a word only where those jobs are monitored).
pub fn warn_left_out(b: &mut Builder<'_>) {
    for (ds, uids) in &b.left_out_panels {
        let shown_through =
            b.r.plugins
                .iter()
                .any(|p| p.entry.plugin.spec.datasources.contains(ds));
        if uids.is_empty() || !shown_through {
            continue;
        }
        b.warnings.push(format!(
            "the {} panels of {} {} are left out: grafana.datasources.{name} is not configured; set `spec.grafana.datasources.{name}: {}` to show them",
            label(*ds),
            if uids.len() == 1 { "dashboard" } else { "dashboards" },
            uids.join(", "),
            example(*ds),
            name = ds.name(),
        ));
    }
}
