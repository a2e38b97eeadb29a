//! `dashboards`: Grafana is healthy, its Prometheus and Loki datasources
//! pass their health checks, every dashboard of the bundle is there by uid,
//! and every panel's query returns data through Grafana (/api/ds/query),
//! the way a browser would ask. Panels without data are listed.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Http, encode};
use super::{Context, Finding, settle};

#[derive(Deserialize)]
struct Health {
    #[serde(default)]
    database: String,
    #[serde(default)]
    version: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Datasource {
    pub uid: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Deserialize)]
struct DatasourceHealth {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct DashboardEnvelope {
    dashboard: Value,
}

#[derive(Deserialize)]
struct QueryResponse {
    #[serde(default)]
    results: BTreeMap<String, DataResponse>,
}

#[derive(Deserialize)]
struct DataResponse {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    frames: Vec<Frame>,
}

#[derive(Deserialize)]
struct Frame {
    #[serde(default)]
    data: FrameData,
}

#[derive(Default, Deserialize)]
struct FrameData {
    #[serde(default)]
    values: Vec<Vec<Value>>,
}

/// The datasource types whose panels verify queries; others (PostgreSQL) are
/// counted and named, not queried.
const QUERIED: [&str; 2] = ["prometheus", "loki"];
/// Panels queried at once: Grafana serves a browser's dozens in parallel too.
const PARALLEL: usize = 8;
/// Panels without data listed in the summary; the evidence lists them all.
const LISTED: usize = 10;

/// Retried until it passes or the timeout: on a fresh stack `rate()` panels
/// need two scrapes before they have data.
pub async fn dashboards(ctx: &Context<'_>, url: &str, http: &Http) -> Finding {
    settle(ctx.deadline, || attempt(ctx, url, http)).await
}

async fn attempt(ctx: &Context<'_>, url: &str, http: &Http) -> Finding {
    let health: Health = match http.get_json(&format!("{url}/api/health")).await {
        Ok(h) => h,
        Err(e) => return Finding::fail(format!("Grafana did not answer: {e}"), vec![]),
    };
    if health.database != "ok" {
        return Finding::fail(
            format!("Grafana is unhealthy: database {}", health.database),
            vec![],
        );
    }
    let mut evidence = vec![format!("Grafana {} healthy", health.version)];
    let mut problems = Vec::new();

    let datasources: Vec<Datasource> = match http.get_json(&format!("{url}/api/datasources")).await
    {
        Ok(d) => d,
        Err(e) => return Finding::fail(format!("cannot list datasources: {e}"), evidence),
    };
    let needs_loki = !ctx.bundle.plan.expectations.log_namespaces.is_empty();
    for kind in QUERIED {
        if kind == "loki" && !needs_loki {
            continue;
        }
        let Some(ds) = datasources.iter().find(|d| d.kind == kind) else {
            problems.push(format!("no {kind} datasource"));
            continue;
        };
        let api = format!("{url}/api/datasources/uid/{}/health", encode(&ds.uid));
        match http.get_for_json::<DatasourceHealth>(&api).await {
            Ok((_, h)) if h.status == "OK" => evidence.push(format!(
                "datasource {} ({kind}): {}",
                ds.name,
                super::http::cap(&h.message, 200)
            )),
            Ok((_, h)) => problems.push(format!(
                "datasource {} ({kind}) is unhealthy: {} {}",
                ds.name,
                super::http::cap(&h.status, 40),
                super::http::cap(&h.message, 200)
            )),
            Err(e) => problems.push(format!("datasource {} ({kind}): {e}", ds.name)),
        }
    }

    let mut silent = Vec::new();
    for uid in &ctx.bundle.plan.expectations.dashboards {
        let api = format!("{url}/api/dashboards/uid/{}", encode(uid));
        let dashboard = match http.get_json::<DashboardEnvelope>(&api).await {
            Ok(d) => d.dashboard,
            Err(e) => {
                problems.push(format!("dashboard {uid} is missing: {e}"));
                continue;
            }
        };
        let report = query_panels(http, url, &dashboard, &datasources).await;
        evidence.push(format!(
            "{uid}: {} panel(s) with data, {} without, {} not queried{}",
            report.with_data,
            report.without.len(),
            report.skipped.len(),
            if report.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", report.skipped.join(", "))
            }
        ));
        for (title, why) in report.without {
            evidence.push(format!("  no data: {uid} / {title}: {why}"));
            silent.push(format!("{uid}/{title}"));
        }
    }

    if !silent.is_empty() {
        let mut listed: Vec<&str> = silent.iter().take(LISTED).map(String::as_str).collect();
        if silent.len() > LISTED {
            listed.push("…");
        }
        problems.push(format!(
            "{} panel(s) without data: {}",
            silent.len(),
            listed.join(", ")
        ));
    }
    if problems.is_empty() {
        Finding::pass(
            format!(
                "Grafana healthy; {} dashboard(s) present and every panel has data",
                ctx.bundle.plan.expectations.dashboards.len()
            ),
            evidence,
        )
    } else {
        Finding::fail(problems.join("; "), evidence)
    }
}

#[derive(Default)]
struct PanelsReport {
    with_data: usize,
    without: Vec<(String, String)>,
    skipped: Vec<String>,
}

async fn query_panels(
    http: &Http,
    url: &str,
    dashboard: &Value,
    datasources: &[Datasource],
) -> PanelsReport {
    let vars = variables(dashboard);
    let mut report = PanelsReport::default();
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("(untitled)").to_string();
        let Some(targets) = panel["targets"].as_array().filter(|t| !t.is_empty()) else {
            continue;
        };
        let kind = datasource_type(panel, &targets[0]);
        let Some(ds) = datasources.iter().find(|d| d.kind == kind) else {
            report.skipped.push(format!("{title}: {kind}"));
            continue;
        };
        if !QUERIED.contains(&kind.as_str()) {
            report.skipped.push(format!("{title}: {kind}"));
            continue;
        }
        let body: Vec<Value> = targets
            .iter()
            .filter(|t| t["hide"] != json!(true))
            .filter_map(|t| {
                let expr = t["expr"].as_str()?;
                Some(json!({
                    "refId": t["refId"].as_str().unwrap_or("A"),
                    "datasource": {"uid": ds.uid, "type": ds.kind},
                    "expr": interpolate(expr, &vars),
                    "range": true,
                    "instant": false,
                    "intervalMs": 60000,
                    "maxDataPoints": 60,
                }))
            })
            .collect();
        if body.is_empty() {
            continue;
        }
        queries.push((
            title,
            json!({"queries": body, "from": "now-1h", "to": "now"}),
        ));
    }
    let api = format!("{url}/api/ds/query");
    let mut answers = futures::stream::iter(queries.into_iter().map(|(title, body)| {
        let api = api.clone();
        async move {
            let answer = http.post_for_json::<QueryResponse>(&api, &body).await;
            (title, answer)
        }
    }))
    .buffered(PARALLEL);
    while let Some((title, answer)) = answers.next().await {
        match answer {
            Ok((_, response)) => {
                let errors: Vec<String> = response
                    .results
                    .values()
                    .filter_map(|r| r.error.clone())
                    .collect();
                let has_data = response.results.values().any(|r| {
                    r.frames
                        .iter()
                        .any(|f| f.data.values.iter().skip(1).any(|v| !v.is_empty()))
                });
                if has_data && errors.is_empty() {
                    report.with_data += 1;
                } else if !errors.is_empty() {
                    report.without.push((title, errors.join("; ")));
                } else {
                    report.without.push((title, "empty result".into()));
                }
            }
            Err(e) => report.without.push((title, e.to_string())),
        }
    }
    report
}

/// Every panel, including those folded into rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        for inner in panel["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// The datasource type a panel queries: the target's, else the panel's.
/// `${datasource}`-style references name a datasource variable whose type
/// is given next to it.
fn datasource_type(panel: &Value, target: &Value) -> String {
    for ds in [&target["datasource"], &panel["datasource"]] {
        if let Some(kind) = ds["type"].as_str() {
            return kind.to_string();
        }
    }
    "prometheus".into()
}

/// The dashboard's template variables at their current (or "All") values,
/// the way the browser would send them.
pub fn variables(dashboard: &Value) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(name) = v["name"].as_str() else {
            continue;
        };
        let all = v["allValue"].as_str().unwrap_or(".*").to_string();
        let value = match &v["current"]["value"] {
            Value::String(s) if s == "$__all" => all,
            Value::String(s) => s.clone(),
            Value::Array(items) => {
                let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                if items.contains(&"$__all") || items.is_empty() {
                    all
                } else if items.len() == 1 {
                    items[0].to_string()
                } else {
                    format!("({})", items.join("|"))
                }
            }
            _ => match &v["query"] {
                Value::String(s) if v["type"] != "query" && v["type"] != "datasource" => s.clone(),
                _ => all,
            },
        };
        vars.insert(name.to_string(), value);
    }
    vars
}

/// Replaces `$name`, `${name}`, `${name:format}` and `[[name]]` with the
/// variable's value, and Grafana's interval macros with fixed ones.
pub fn interpolate(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let lookup = |name: &str| -> Option<String> {
        match name {
            "__rate_interval" | "__interval" | "__auto" => Some("1m".into()),
            "__interval_ms" => Some("60000".into()),
            "__range" => Some("1h".into()),
            "__range_s" => Some("3600".into()),
            _ => vars.get(name).cloned(),
        }
    };
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(pos) = rest.find(['$', '[']) {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some(inner) = rest.strip_prefix("${")
            && let Some(end) = inner.find('}')
        {
            let name = inner[..end].split(':').next().unwrap_or_default();
            if let Some(value) = lookup(name) {
                out.push_str(&value);
                rest = &inner[end + 1..];
                continue;
            }
        } else if let Some(inner) = rest.strip_prefix("[[")
            && let Some(end) = inner.find("]]")
            && let Some(value) = lookup(&inner[..end])
        {
            out.push_str(&value);
            rest = &inner[end + 2..];
            continue;
        } else if let Some(inner) = rest.strip_prefix('$') {
            let len = ident(inner);
            if len > 0
                && let Some(value) = lookup(&inner[..len])
            {
                out.push_str(&value);
                rest = &inner[len..];
                continue;
            }
        }
        out.push_str(&rest[..1]);
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_take_current_or_all_values_and_macros_are_fixed() {
        let dashboard = json!({"templating": {"list": [
            {"name": "namespace", "type": "query", "allValue": ".+", "current": {"value": ["$__all"]}},
            {"name": "cluster", "type": "query", "current": {"value": "$__all"}},
            {"name": "node", "type": "custom", "current": {"value": ["a", "b"]}},
            {"name": "batch", "type": "textbox", "query": "finetune.*", "current": {"value": "finetune.*"}},
            {"name": "ds", "type": "datasource", "query": "prometheus", "current": {}},
        ]}});
        let vars = variables(&dashboard);
        assert_eq!(vars["namespace"], ".+");
        assert_eq!(vars["cluster"], ".*");
        assert_eq!(vars["node"], "(a|b)");
        assert_eq!(vars["batch"], "finetune.*");
        assert_eq!(
            interpolate(
                r#"sum(rate(x{namespace=~"$namespace", c=~"${cluster}", n=~"[[node]]", p=~"${batch:regex}"}[$__rate_interval])) $price"#,
                &vars
            ),
            r#"sum(rate(x{namespace=~".+", c=~".*", n=~"(a|b)", p=~"finetune.*"}[1m])) $price"#
        );
    }

    #[test]
    fn panels_inside_rows_are_found() {
        let dashboard = json!({"panels": [
            {"type": "row", "title": "r", "panels": [{"title": "inner"}]},
            {"title": "outer"},
        ]});
        let titles: Vec<&str> = panels(&dashboard)
            .iter()
            .filter_map(|p| p["title"].as_str())
            .collect();
        assert_eq!(titles, ["r", "inner", "outer"]);
    }
}
