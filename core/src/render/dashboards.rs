//! Grafana dashboards: validated, with optional sections resolved.
//!
//! A panel or a row may carry `"x-telltale-requires"`: a name, or a list of
//! names that must all be present. A name is either a datasource the site
//! configures (`postgres`) or a plugin of the catalogue (`airflow`,
//! `trino`…): the panel is shipped only when the bundle has it, so a
//! profile without Airflow gets no empty Airflow row. A dropped row takes
//! its panels with it (those folded into it, or, for an open row, those
//! below it up to the next row) and the panels further down move up by the
//! height it took. A dashboard left without panels is not shipped at all.

use serde_json::Value;

use crate::model::config::Datasource;
use crate::model::{LocatedError, Source};

/// Panels (and rows) that need a datasource or a plugin carry this key.
pub const REQUIRES_KEY: &str = "x-telltale-requires";

/// What a dashboard's requirements are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Requirements<'a> {
    /// Every name a panel may require: the config's datasources
    /// ([`Datasource`]) and the catalogue's plugins.
    pub known: &'a [&'a str],
    /// The names the bundle has: configured datasources and enabled plugins.
    pub available: &'a [&'a str],
}

/// Parses a dashboard, drops the panels whose requirements the bundle does
/// not meet and strips the marker from the rest. `None`: nothing is left.
pub fn prepare(
    source: &Source,
    uid: &str,
    requirements: Requirements<'_>,
) -> Result<Option<Value>, LocatedError> {
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
    check_names(source, &dashboard["panels"], "panels", requirements.known)?;
    let mut left = true;
    if let Some(panels) = dashboard.get_mut("panels").and_then(Value::as_array_mut) {
        resolve_top(panels, requirements.available);
        left = panels.iter().any(|p| p["type"] != "row")
            || panels.iter().any(|p| {
                p["panels"]
                    .as_array()
                    .is_some_and(|inner| !inner.is_empty())
            });
    }
    if !left {
        return Ok(None);
    }
    // A datasource variable for a datasource that is not configured would
    // show an empty picker: drop it with the panels that used it.
    let missing: Vec<&str> = Datasource::ALL
        .into_iter()
        .filter(|ds| !requirements.available.contains(&ds.name()))
        .map(super::datasources::grafana_type)
        .collect();
    if let Some(vars) = dashboard
        .pointer_mut("/templating/list")
        .and_then(Value::as_array_mut)
    {
        vars.retain(|v| {
            !(v["type"] == "datasource"
                && v["query"].as_str().is_some_and(|q| missing.contains(&q)))
        });
    }
    Ok(Some(dashboard))
}

/// Whether any panel of a dashboard needs `requirement`.
pub fn needs(source: &Source, requirement: &str) -> bool {
    fn any(panels: &Value, requirement: &str) -> bool {
        panels.as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                required(p).iter().any(|r| r == requirement) || any(&p["panels"], requirement)
            })
        })
    }
    serde_json::from_str::<Value>(&source.text).is_ok_and(|d| any(&d["panels"], requirement))
}

/// The names a panel requires: none, one, or a list.
fn required(panel: &Value) -> Vec<String> {
    match panel.get(REQUIRES_KEY) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        Some(_) => vec![String::new()],
        None => Vec::new(),
    }
}

fn met(panel: &Value, available: &[&str]) -> bool {
    required(panel)
        .iter()
        .all(|r| available.contains(&r.as_str()))
}

/// A requirement nobody can meet (a typo, a plugin that does not exist)
/// would silently hide a panel forever: refuse it, with the closest name.
fn check_names(
    source: &Source,
    panels: &Value,
    path: &str,
    known: &[&str],
) -> Result<(), LocatedError> {
    for (i, panel) in panels.as_array().into_iter().flatten().enumerate() {
        let here = format!("{path}[{i}]");
        let targets = panel["targets"].as_array().into_iter().flatten();
        if panel.get(REQUIRES_KEY).is_some()
            || targets.clone().any(|t| t.get(REQUIRES_KEY).is_some())
        {
            let names = required(panel)
                .into_iter()
                .chain(targets.flat_map(required));
            for name in names {
                if !known.contains(&name.as_str()) {
                    let hint = crate::model::suggest::did_you_mean(&name, known.iter().copied())
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    let title = panel["title"].as_str().unwrap_or("?");
                    let (line, column) = locate(&source.text, &name);
                    return Err(LocatedError::new(
                        source,
                        line,
                        column,
                        format!(
                            "panel `{title}` requires `{name}`, which is neither a datasource ({}) nor a plugin of the catalogue{hint}",
                            Datasource::names().join(", ")
                        ),
                    )
                    .at_path(format!("{here}.{REQUIRES_KEY}")));
                }
            }
        }
        check_names(source, &panel["panels"], &format!("{here}.panels"), known)?;
    }
    Ok(())
}

/// Line and column (1-based) of `name` in the first `x-telltale-requires`
/// value that names it.
fn locate(text: &str, name: &str) -> (u64, u64) {
    let quoted = format!("\"{name}\"");
    for (at, _) in text.match_indices(REQUIRES_KEY) {
        // The value: from the colon after the key to the end of the string
        // or of the list.
        let rest = &text[at + REQUIRES_KEY.len()..];
        let value = rest.trim_start_matches(|c: char| c == '"' || c == ':' || c.is_whitespace());
        if value.is_empty() {
            continue;
        }
        let len = if value.starts_with('[') {
            value.find(']').map_or(value.len(), |e| e + 1)
        } else {
            value[1..].find('"').map_or(value.len(), |e| e + 2)
        };
        if let Some(pos) = value[..len].find(&quoted) {
            let offset = text.len() - value.len() + pos + 1;
            let line = text[..offset].matches('\n').count() as u64 + 1;
            let column = (offset - text[..offset].rfind('\n').map_or(0, |n| n + 1)) as u64 + 1;
            return (line, column);
        }
    }
    (1, 1)
}

/// The dashboard's own panels: an open row owns the panels below it up to
/// the next row, so dropping it drops them and closes the gap.
fn resolve_top(panels: &mut Vec<Value>, available: &[&str]) {
    let y = |p: &Value| p["gridPos"]["y"].as_i64().unwrap_or(0);
    let bottom = |p: &Value| y(p) + p["gridPos"]["h"].as_i64().unwrap_or(0);
    // Sections in order: a row and the panels that follow it.
    let mut order: Vec<usize> = (0..panels.len()).collect();
    order.sort_by_key(|&i| {
        (
            y(&panels[i]),
            panels[i]["gridPos"]["x"].as_i64().unwrap_or(0),
        )
    });
    let mut drop = vec![false; panels.len()];
    // (first y of the removed band, its height), applied afterwards.
    let mut removed: Vec<(i64, i64)> = Vec::new();
    let mut k = 0;
    while k < order.len() {
        let i = order[k];
        let is_open_row = panels[i]["type"] == "row" && panels[i]["collapsed"] != Value::Bool(true);
        if is_open_row && !met(&panels[i], available) {
            let start = y(&panels[i]);
            let mut end = bottom(&panels[i]);
            drop[i] = true;
            k += 1;
            while k < order.len() && panels[order[k]]["type"] != "row" {
                drop[order[k]] = true;
                end = end.max(bottom(&panels[order[k]]));
                k += 1;
            }
            // The band ends where the next row starts, if one follows.
            if k < order.len() {
                end = y(&panels[order[k]]);
            }
            removed.push((start, end - start));
            continue;
        }
        if !met(&panels[i], available) {
            drop[i] = true;
        }
        k += 1;
    }
    let mut index = 0;
    panels.retain(|_| {
        index += 1;
        !drop[index - 1]
    });
    for panel in panels.iter_mut() {
        let at = y(panel);
        let shift: i64 = removed
            .iter()
            .filter(|(start, _)| *start < at)
            .map(|(_, h)| h)
            .sum();
        if shift > 0
            && let Some(pos) = panel.get_mut("gridPos").and_then(Value::as_object_mut)
        {
            pos.insert("y".into(), Value::from(at - shift));
        }
        strip(panel, available);
    }
}

/// Inside a row (and below): drop what is not met, strip the marker; a
/// query (`targets[]`) may require a name too (one query of a panel reading
/// an optional exporter's series).
fn strip(panel: &mut Value, available: &[&str]) {
    if let Value::Object(map) = panel {
        map.remove(REQUIRES_KEY);
    }
    if let Some(targets) = panel.get_mut("targets").and_then(Value::as_array_mut) {
        targets.retain(|t| met(t, available));
        for target in targets.iter_mut() {
            if let Value::Object(map) = target {
                map.remove(REQUIRES_KEY);
            }
        }
    }
    if let Some(children) = panel.get_mut("panels").and_then(Value::as_array_mut) {
        children.retain(|p| met(p, available));
        for child in children.iter_mut() {
            strip(child, available);
        }
    }
}

/// The names a dashboard's panels, rows and queries require.
pub fn requirements(dashboard: &Value) -> std::collections::BTreeSet<String> {
    fn walk(panels: &Value, out: &mut std::collections::BTreeSet<String>) {
        for p in panels.as_array().into_iter().flatten() {
            let targets = p["targets"].as_array().into_iter().flatten();
            for item in std::iter::once(p).chain(targets) {
                out.extend(required(item).into_iter().filter(|r| !r.is_empty()));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(&dashboard["panels"], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(d: &Value) -> Source {
        Source::new("d.json", d.to_string())
    }

    const KNOWN: [&str; 3] = [POSTGRES, "airflow", "trino"];
    /// The config's datasource the tests require panels of.
    const POSTGRES: &str = Datasource::Postgres.name();

    fn panel(id: i64, ty: &str, y: i64, h: i64) -> Value {
        json!({"id": id, "type": ty, "title": format!("p{id}"), "gridPos": {"x": 0, "y": y, "w": 24, "h": h}})
    }

    #[test]
    fn an_open_row_takes_its_panels_and_the_rest_moves_up() {
        let mut airflow = panel(3, "row", 4, 1);
        airflow["x-telltale-requires"] = json!("airflow");
        let d = json!({"uid": "d", "panels": [
            panel(1, "row", 0, 1), panel(2, "stat", 1, 3),
            airflow, panel(4, "stat", 5, 7), panel(5, "stat", 5, 7),
            panel(6, "row", 12, 1), panel(7, "stat", 13, 2),
        ]});
        let req = Requirements {
            known: &KNOWN,
            available: &["trino"],
        };
        let out = prepare(&source(&d), "d", req).unwrap().unwrap();
        let kept: Vec<(i64, i64)> = out["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].as_i64().unwrap(),
                    p["gridPos"]["y"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(kept, [(1, 0), (2, 1), (6, 4), (7, 5)]);
        // With Airflow: everything, unmoved, and no marker left.
        let req = Requirements {
            known: &KNOWN,
            available: &["airflow"],
        };
        let out = prepare(&source(&d), "d", req).unwrap().unwrap();
        assert_eq!(out["panels"].as_array().unwrap().len(), 7);
        assert!(!out.to_string().contains(REQUIRES_KEY));
    }

    #[test]
    fn a_list_needs_every_name_and_an_emptied_dashboard_is_not_shipped() {
        let mut both = panel(1, "stat", 0, 3);
        both["x-telltale-requires"] = json!(["airflow", "trino"]);
        let d = json!({"uid": "d", "panels": [both]});
        let only_trino = Requirements {
            known: &KNOWN,
            available: &["trino"],
        };
        assert!(prepare(&source(&d), "d", only_trino).unwrap().is_none());
        let all = Requirements {
            known: &KNOWN,
            available: &["trino", "airflow"],
        };
        assert!(prepare(&source(&d), "d", all).unwrap().is_some());
    }

    #[test]
    fn an_unknown_requirement_is_refused_with_a_suggestion() {
        let mut p = panel(1, "stat", 0, 3);
        p["x-telltale-requires"] = json!("airfow");
        let d = json!({"uid": "d", "panels": [p]});
        let req = Requirements {
            known: &KNOWN,
            available: &[],
        };
        let e = prepare(&source(&d), "d", req).unwrap_err().to_string();
        assert!(
            e.contains("`airfow`") && e.contains("did you mean `airflow`"),
            "{e}"
        );
    }
}
