//! Grafana dashboards: validated, with optional sections resolved.
//!
//! A panel, a row or a single query may need something the bundle may not
//! have: a datasource the site configures (`postgres`) or a plugin whose
//! exporter publishes its series (`airflow`, `postgres-exporter`…). It
//! says so with `"x-telltale-requires": NAME` and is left out of a bundle
//! without it, so no panel reads a metric nothing publishes.

use serde_json::Value;

use crate::model::{LocatedError, Source};

/// Panels, rows and queries that need a datasource or a plugin carry this
/// key with its name.
pub const REQUIRES_KEY: &str = "x-telltale-requires";

/// Parses a dashboard and drops the panels whose required datasource is not
/// configured; strips the marker from the rest.
pub fn prepare(source: &Source, uid: &str, available: &[&str]) -> Result<Value, LocatedError> {
    let mut dashboard: Value = serde_json::from_str(&source.text).map_err(|e| {
        LocatedError::new(
            source,
            e.line() as u64,
            e.column() as u64,
            format!("invalid dashboard JSON: {e}"),
        )
    })?;
    if dashboard["uid"].as_str() != Some(uid) {
        return Err(LocatedError::new(
            source,
            1,
            1,
            format!("the dashboard uid must equal its file name `{uid}`"),
        )
        .at_path("uid"));
    }
    if let Some(panels) = dashboard.get_mut("panels").and_then(Value::as_array_mut) {
        resolve_panels(panels, available);
    }
    // A datasource variable for a datasource that is not configured would
    // show an empty picker: drop it with the panels that used it.
    if !available.contains(&"postgres")
        && let Some(vars) = dashboard
            .pointer_mut("/templating/list")
            .and_then(Value::as_array_mut)
    {
        vars.retain(|v| {
            !(v["type"] == "datasource" && v["query"] == "grafana-postgresql-datasource")
        });
    }
    Ok(dashboard)
}

/// Whether any panel of a dashboard needs `requirement` (a datasource name).
pub fn needs(source: &Source, requirement: &str) -> bool {
    fn any(panels: &Value, requirement: &str) -> bool {
        panels.as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p.get(REQUIRES_KEY).and_then(Value::as_str) == Some(requirement)
                    || any(&p["panels"], requirement)
            })
        })
    }
    serde_json::from_str::<Value>(&source.text).is_ok_and(|d| any(&d["panels"], requirement))
}

/// Whether everything `item` requires is available.
fn kept(item: &Value, available: &[&str]) -> bool {
    match item.get(REQUIRES_KEY).and_then(Value::as_str) {
        Some(requirement) => available.contains(&requirement),
        None => true,
    }
}

fn resolve_panels(panels: &mut Vec<Value>, available: &[&str]) {
    panels.retain(|p| kept(p, available));
    for panel in panels.iter_mut() {
        if let Value::Object(map) = panel {
            map.remove(REQUIRES_KEY);
        }
        if let Some(targets) = panel.get_mut("targets").and_then(Value::as_array_mut) {
            targets.retain(|t| kept(t, available));
            for target in targets.iter_mut() {
                if let Value::Object(map) = target {
                    map.remove(REQUIRES_KEY);
                }
            }
        }
        if let Some(children) = panel.get_mut("panels").and_then(Value::as_array_mut) {
            resolve_panels(children, available);
        }
    }
}

/// The names a dashboard's panels, rows and queries require.
pub fn requirements(dashboard: &Value) -> std::collections::BTreeSet<String> {
    fn walk(panels: &Value, out: &mut std::collections::BTreeSet<String>) {
        for p in panels.as_array().into_iter().flatten() {
            let targets = p["targets"].as_array().into_iter().flatten();
            for item in std::iter::once(p).chain(targets) {
                if let Some(r) = item.get(REQUIRES_KEY).and_then(Value::as_str) {
                    out.insert(r.to_string());
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(&dashboard["panels"], &mut out);
    out
}
