//! Every dashboard of every profile's bundle: unique panel ids, gridPos
//! inside 24 columns without overlaps, a datasource and a query on every
//! panel, PromQL that parses, a 12h default range; and the Alert History
//! table evaluated by real Prometheus 3.

use crate::common::*;
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

/// The longest `[…]` window of a query, in seconds (`[24h]`, `[6h:15s]`).
fn longest_window(expr: &str) -> u64 {
    let mut longest = 0;
    for (at, _) in expr.match_indices('[') {
        let rest = &expr[at + 1..];
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        let Ok(n) = rest[..digits].parse::<u64>() else {
            continue;
        };
        let unit = match rest[digits..].chars().next() {
            Some('s') => 1,
            Some('m') if !rest[digits..].starts_with("ms") => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            Some('w') => 604_800,
            _ => continue,
        };
        longest = longest.max(n * unit);
    }
    longest
}

/// A panel that shows one value: a stat without a sparkline, a gauge, a
/// bar gauge, a table reduced to its last values.
fn shows_one_value(p: &Value) -> bool {
    match p["type"].as_str() {
        Some("stat") => p["options"]["graphMode"] == "none",
        Some("gauge") | Some("bargauge") => true,
        Some("table") => p["transformations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["id"] == "reduce"),
        _ => false,
    }
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
            // One value from an hour-long (or longer) window, asked as a
            // range query: every step of the 12 h load reads the whole
            // window again (a 24 h window at a 30 s step reads each series'
            // samples some 500 times over), to draw the last point only.
            if let Some(expr) = t["expr"].as_str()
                && ds_type != "loki"
                && shows_one_value(p)
                && t["instant"] != true
                && longest_window(expr) >= 3_600
            {
                problems.push(format!(
                    "{name}/{title}: shows one value of a window of {} s as a range query: make it instant\n  {expr}",
                    longest_window(expr)
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
            {"id": 3, "title": "c", "type": "stat", "options": {"graphMode": "none"}, "gridPos": {"x": 0, "y": 6, "w": 6, "h": 4}, "datasource": {"type": "prometheus"}, "targets": [{"expr": "sum(increase(x_total[24h]))", "range": true}]},
            {"id": 4, "title": "d", "type": "stat", "options": {"graphMode": "none"}, "gridPos": {"x": 6, "y": 6, "w": 6, "h": 4}, "datasource": {"type": "prometheus"}, "targets": [{"expr": "sum(increase(x_total[24h]))", "instant": true}]},
            {"id": 5, "title": "e", "type": "timeseries", "gridPos": {"x": 12, "y": 6, "w": 6, "h": 4}, "datasource": {"type": "prometheus"}, "targets": [{"expr": "sum(increase(x_total[24h]))"}]},
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
    let range: Vec<&String> = problems
        .iter()
        .filter(|p| p.contains("make it instant"))
        .collect();
    assert!(
        range.len() == 1 && range[0].starts_with("t/c: shows one value of a window of 86400 s"),
        "{problems:?}"
    );
}

#[test]
fn production_infrastructure_dashboard_has_all_sections() {
    // The drift panels need the site's PostgreSQL datasource (left out until set).
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: production\n  grafana:\n    datasources:\n      postgres: {host: 'db.ml.svc:5432', database: results, user: reader, password: {secretRef: {name: grafana-postgres, key: password}}}\n";
    let bundle = crate::common::render_with("production", Some(config), &[]);
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
    let rows: Vec<&str> = all
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    // No drift section without PostgreSQL, no Airflow section without the
    // airflow plugin (kind has neither).
    assert_eq!(rows.len(), 9, "{rows:?}");
    assert!(!rows.contains(&"Airflow Health"), "{rows:?}");
    assert!(
        !all.iter().any(|p| p["title"] == "Scheduler Heartbeat"
            || p["title"] == "DB Connections"
            || p["title"] == "Certificate Expiry"),
        "panels of plugins kind does not enable"
    );
    assert!(
        !all.iter()
            .any(|p| p["title"] == "Performance Drift Indicators"),
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

fn query(prometheus: &local::Daemon, promql: &str) -> Vec<Value> {
    let body: Value = ureq::get(&format!("{}/api/v1/query", prometheus.url))
        .query("query", promql)
        .call()
        .unwrap_or_else(|e| panic!("query {promql}: {e}"))
        .body_mut()
        .read_json()
        .unwrap();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The Alert History panel's target column: the first of pod, PVC, node,
/// instance, job an alert carries (the panel's label_replace chain).
fn history_target(labels: &Value) -> String {
    ["pod", "persistentvolumeclaim", "node", "instance", "job"]
        .iter()
        .find_map(|l| labels[l].as_str().filter(|v| !v.is_empty()))
        .unwrap_or_default()
        .to_string()
}

/// Synthetic series that make a handful of production alerts fire with
/// values that do not move: a PVC 95% full (Full and NearFull), a node whose
/// descriptors are 85% used, an OOM-killed Job pod and a Pending pod.
fn history_series(_: f64, _: f64) -> String {
    [
        r#"kubelet_volume_stats_used_bytes{namespace="prod",persistentvolumeclaim="data-db-0"} 95"#,
        r#"kubelet_volume_stats_capacity_bytes{namespace="prod",persistentvolumeclaim="data-db-0"} 100"#,
        r#"node_filefd_allocated{instance="worker-1:9100"} 8500"#,
        r#"node_filefd_maximum{instance="worker-1:9100"} 10000"#,
        r#"kube_pod_container_status_restarts_total{namespace="ml",pod="ftf-run-7",container="train"} 0"#,
        r#"kube_pod_container_status_terminated_reason{namespace="ml",pod="ftf-run-7",container="train",reason="OOMKilled"} 1"#,
        r#"kube_pod_info{namespace="ml",pod="ftf-run-7",node="compute-1",uid="u1"} 1"#,
        r#"kube_pod_status_phase{namespace="prod",pod="api-0",phase="Pending"} 1"#,
        r#"kube_pod_info{namespace="prod",pod="api-0",node="worker-2",uid="u2"} 1"#,
    ]
    .join("\n")
        + "\n"
}

/// The Alert History table of the production dashboard, evaluated by real
/// Prometheus 3 on the bundle's own rules firing over synthetic series: each
/// firing alert has a row whose value is the alert's value and whose runbook
/// is the one its runbook_url annotation names, exactly as Prometheus' own
/// /api/v1/alerts reports them, and a row with the time it became active.
#[test]
fn alert_history_shows_each_alerts_value_and_runbook_as_prometheus_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = render_profile("production");
    let exporter = local::exporter(history_series);
    let prometheus = local::rules_over(&bundle, dir.path(), &[("synthetic", &exporter)]);

    let dashboard: Value =
        serde_json::from_str(&bundle.files["grafana/dashboards/telltale-infrastructure.json"])
            .unwrap();
    let history = panels(&dashboard)
        .into_iter()
        .find(|p| p["title"] == "Alert History")
        .expect("the Alert History panel");
    let expr = |ref_id: &str| {
        let t = history["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["refId"] == ref_id)
            .unwrap();
        t["expr"].as_str().unwrap().replace("$__range", "10m")
    };
    let rename = &history["transformations"][1]["options"]["renameByName"];
    assert_eq!(rename["Value #B"], "Value", "{rename}");
    assert_eq!(rename["runbook"], "Runbook", "{rename}");

    let wanted = [
        "PersistentVolumeFull",
        "PersistentVolumeNearFull",
        "FileDescriptorsHigh",
        "OOMKilled",
        "PodStuckPending",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let (alerts, values, times) = loop {
        let alerts: Vec<Value> = local::prometheus_alerts(&prometheus)
            .into_iter()
            // An escalation copy (label `escalation`) carries the level as
            // its value and shares its alert's row.
            .filter(|a| a["state"] == "firing" && a["labels"]["escalation"].is_null())
            .collect();
        let firing = |n: &str| alerts.iter().any(|a| a["labels"]["alertname"] == n);
        let values = query(&prometheus, &expr("B"));
        let times = query(&prometheus, &expr("A"));
        // Every firing alert has its value row (the record is evaluated in
        // its own group, a moment after the alert).
        let rows = |rows: &[Value]| {
            alerts.iter().all(|a| {
                rows.iter().any(|r| {
                    r["metric"]["alertname"] == a["labels"]["alertname"]
                        && r["metric"]["target"].as_str().unwrap_or_default()
                            == history_target(&a["labels"])
                })
            })
        };
        if wanted.iter().all(|n| firing(n)) && rows(&values) && rows(&times) {
            break (alerts, values, times);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 40 s: firing {:?}, {} value rows, {} time rows\n{}",
            alerts
                .iter()
                .map(|a| a["labels"]["alertname"].clone())
                .collect::<Vec<_>>(),
            values.len(),
            times.len(),
            prometheus.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let number = |v: &Value| v.as_str().unwrap().parse::<f64>().unwrap();
    for alert in &alerts {
        let labels = &alert["labels"];
        let name = labels["alertname"].as_str().unwrap();
        let target = history_target(labels);
        let row = values
            .iter()
            .find(|r| {
                r["metric"]["alertname"] == name
                    && r["metric"]["target"].as_str().unwrap_or_default() == target
            })
            .unwrap();
        let (want, got) = (number(&alert["value"]), number(&row["value"][1]));
        assert!(
            (want - got).abs() <= 1e-9 * want.abs().max(1.0),
            "{name} {target}: the table shows {got}, the alert's value is {want}"
        );
        assert_eq!(row["metric"]["severity"], labels["severity"], "{name}");
        let url = alert["annotations"]["runbook_url"].as_str().unwrap();
        let runbook = url.rsplit('/').next().unwrap().trim_end_matches(".md");
        assert_eq!(row["metric"]["runbook"], runbook, "{name}: {url}");
        let time = times
            .iter()
            .find(|r| {
                r["metric"]["alertname"] == name
                    && r["metric"]["target"].as_str().unwrap_or_default() == target
            })
            .unwrap();
        let active = humantime::parse_rfc3339_weak(alert["activeAt"].as_str().unwrap())
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let shown = number(&time["value"][1]) / 1000.0;
        assert!(
            (shown - active).abs() < 2.0,
            "{name}: active since {active}, the table shows {shown}"
        );
        eprintln!("{name} {target}: value {got}, runbook {runbook}");
    }
}
