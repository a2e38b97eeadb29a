//! Every dashboard of every profile's bundle: unique panel ids, gridPos
//! inside 24 columns without overlaps, a datasource and a query on every
//! panel, PromQL that parses, a 12h default range.

mod common;

use common::*;
use serde_json::Value;

fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        // Collapsed rows keep their panels inside.
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Grafana macros and variables replaced so the PromQL parser sees plain PromQL.
fn plain_promql(expr: &str) -> String {
    let mut e = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "12h")
        .replace("${__range}", "12h");
    // Variables inside strings are fine; bare ones (e.g. in a number) are not.
    for (var, value) in [
        ("${compute_eur_per_hour}", "0.1644"),
        ("$compute_eur_per_hour", "0.1644"),
    ] {
        e = e.replace(var, value);
    }
    e
}

fn check_dashboard(name: &str, d: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if d["time"]["from"] != "now-12h" {
        problems.push(format!(
            "{name}: default time range is {} not now-12h",
            d["time"]["from"]
        ));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut boxes: Vec<(i64, i64, i64, i64, String)> = Vec::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or("?").to_string();
        let id = p["id"].as_i64();
        match id {
            Some(id) if ids.insert(id) => {}
            _ => problems.push(format!(
                "{name}/{title}: panel id {id:?} missing or duplicated"
            )),
        }
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_i64().unwrap_or(-1),
            g["y"].as_i64().unwrap_or(-1),
            g["w"].as_i64().unwrap_or(0),
            g["h"].as_i64().unwrap_or(0),
        );
        if x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > 24 {
            problems.push(format!("{name}/{title}: gridPos {g} outside 24 columns"));
        }
        for (bx, by, bw, bh, other) in &boxes {
            if x < bx + bw && bx < &(x + w) && y < by + bh && by < &(y + h) {
                problems.push(format!("{name}/{title}: overlaps {other}"));
            }
        }
        boxes.push((x, y, w, h, title.clone()));
        if p["type"] == "row" {
            continue;
        }
        if p["datasource"].is_null() {
            problems.push(format!("{name}/{title}: no datasource"));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        let queries: Vec<&Value> = targets
            .iter()
            .filter(|t| {
                t["expr"]
                    .as_str()
                    .or(t["rawSql"].as_str())
                    .is_some_and(|q| !q.trim().is_empty())
            })
            .collect();
        if queries.is_empty() {
            problems.push(format!("{name}/{title}: no query"));
        }
        let is_prometheus = p["datasource"]["type"] == "prometheus";
        for t in targets {
            let ds_type = t["datasource"]["type"]
                .as_str()
                .unwrap_or(p["datasource"]["type"].as_str().unwrap_or(""));
            if let (true, Some(expr)) =
                (is_prometheus || ds_type == "prometheus", t["expr"].as_str())
                && ds_type != "loki"
                && let Err(e) = promql_parser::parser::parse(&plain_promql(expr))
            {
                problems.push(format!(
                    "{name}/{title}: PromQL does not parse: {e}\n  {expr}"
                ));
            }
        }
    }
    problems
}

#[test]
fn every_dashboard_of_every_profile_is_well_formed() {
    let mut problems = Vec::new();
    for profile in PROFILES {
        let bundle = render_profile(profile);
        let dashboards = files_with_prefix(&bundle, "grafana/dashboards/");
        assert!(
            dashboards.len() >= 3,
            "{profile}: {} dashboards",
            dashboards.len()
        );
        for (path, text) in dashboards {
            let d: Value = serde_json::from_str(text).unwrap();
            problems.extend(check_dashboard(&format!("{profile}:{path}"), &d));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_catches_overlaps_and_bad_promql() {
    let d: Value = serde_json::json!({
        "time": {"from": "now-12h"},
        "panels": [
            {"id": 1, "title": "a", "type": "stat", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 4}, "datasource": {"type": "prometheus"}, "targets": [{"expr": "up"}]},
            {"id": 2, "title": "b", "type": "stat", "gridPos": {"x": 6, "y": 2, "w": 12, "h": 4}, "datasource": {"type": "prometheus"}, "targets": [{"expr": "sum(up"}]},
        ]
    });
    let problems = check_dashboard("t", &d);
    assert!(
        problems.iter().any(|p| p.contains("overlaps a")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("does not parse")),
        "{problems:?}"
    );
}

#[test]
fn production_infrastructure_dashboard_has_all_sections() {
    let bundle = render_profile("production");
    let d: Value =
        serde_json::from_str(&bundle.files["grafana/dashboards/telltale-infrastructure.json"])
            .unwrap();
    let all = panels(&d);
    let rows: Vec<i64> = all
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["gridPos"]["y"].as_i64().unwrap())
        .collect();
    assert_eq!(
        rows,
        [0, 3, 11, 19, 29, 35, 41, 47, 55, 63, 71],
        "rows at the seed's y positions"
    );
    let others = all.iter().filter(|p| p["type"] != "row").count();
    assert!(others >= 35, "{others} panels");
    for var in ["datasource", "cluster", "namespace", "postgres"] {
        assert!(
            d["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == var),
            "variable {var}"
        );
    }
}

#[test]
fn the_postgres_section_needs_a_postgres_datasource() {
    let bundle = render_profile("kind");
    let d: Value =
        serde_json::from_str(&bundle.files["grafana/dashboards/telltale-infrastructure.json"])
            .unwrap();
    let all = panels(&d);
    assert_eq!(
        all.iter().filter(|p| p["type"] == "row").count(),
        10,
        "no drift section without PostgreSQL"
    );
    assert!(
        !bundle.files["grafana/dashboards/telltale-infrastructure.json"]
            .contains("x-telltale-requires")
    );
    assert!(
        !all.iter()
            .any(|p| p["datasource"]["type"] == "grafana-postgresql-datasource")
    );
    assert!(
        !d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "postgres")
    );
}
