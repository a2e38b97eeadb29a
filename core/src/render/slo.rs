//! SLOs as multi-window, multi-burn-rate rules (the SRE workbook's
//! recipe for a 30-day window), their promtool tests, and the SLO dashboard.
//!
//! Page when the error budget burns 14.4× too fast over 1h (confirmed over
//! 5m) or 6× over 6h (confirmed over 30m); open a ticket at 3× over 1d
//! (2h) or 1× over 3d (6h).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::rules::{Rule, RuleFile, RuleGroup};
use crate::model::Slo;

pub const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];
pub const RUNBOOK: &str = "SLO_BURN.md";

/// What the renderer adds for the SLOs of a stack.
pub struct SloFiles {
    /// (group name, rule group, test file text or None)
    pub groups: Vec<(String, RuleGroup, Option<String>)>,
    pub dashboard: Value,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "SLO `{name}`: {field}, once `{{{{window}}}}` and `{{{{selector}}}}` are filled in: {message}"
)]
pub struct SloError {
    pub name: String,
    pub field: &'static str,
    pub message: String,
}

fn camel(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A decimal without float noise: 0.0009999999 → "0.001".
fn decimal(x: f64) -> String {
    let s = format!("{x:.10}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Go's `%.4g`, which Prometheus' humanizePercentage uses.
fn g4(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let exp = x.abs().log10().floor() as i32;
    let decimals = (3 - exp).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn fill(query: &str, window: &str, selector: &str) -> String {
    query
        .replace("{{window}}", window)
        .replace("{{selector}}", selector)
}

pub fn record_name(window: &str) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

pub fn render(slos: &[Slo], selector: &str, runbook_base: &str) -> Result<SloFiles, SloError> {
    let mut groups = Vec::new();
    for slo in slos {
        let budget = (100.0 - slo.objective) / 100.0;
        let recordings = recordings(slo, selector)?;
        let group = format!("telltale-slo-{}", slo.name);
        groups.push((
            group.clone(),
            RuleGroup {
                name: group.clone(),
                interval: None,
                rules: recordings,
            },
            None,
        ));

        let (fast, slow) = burn_alerts(slo, budget, runbook_base);
        let alerts_group = format!("{group}-alerts");
        let test = test_file(slo, &alerts_group, budget, &fast, &slow);
        groups.push((
            alerts_group.clone(),
            RuleGroup {
                name: alerts_group,
                interval: None,
                rules: vec![fast, slow],
            },
            Some(test),
        ));
    }
    for slo in slos {
        if let Some(panel) = &slo.panel {
            let q = fill(&panel.query, "5m", selector);
            promql_parser::parser::parse(&q).map_err(|e| SloError {
                name: slo.name.clone(),
                field: "panel.query",
                message: format!("invalid PromQL: {e}"),
            })?;
        }
    }
    Ok(SloFiles {
        groups,
        dashboard: dashboard(slos, selector),
    })
}

/// The recording rules of one SLO: its error ratio over every window.
fn recordings(slo: &Slo, selector: &str) -> Result<Vec<Rule>, SloError> {
    let mut recordings = Vec::new();
    for window in WINDOWS {
        let (errors, total) = (
            fill(&slo.errors, window, selector),
            fill(&slo.total, window, selector),
        );
        for (field, q) in [("errors", &errors), ("total", &total)] {
            promql_parser::parser::parse(q).map_err(|e| SloError {
                name: slo.name.clone(),
                field,
                message: format!("invalid PromQL: {e}"),
            })?;
            if let Some(message) = super::rules::integer_bound_matchers(q).into_iter().next() {
                return Err(SloError {
                    name: slo.name.clone(),
                    field,
                    message,
                });
            }
        }
        recordings.push(Rule {
            alert: None,
            record: Some(record_name(window)),
            expr: format!("({errors})\n/\n({total})"),
            for_: None,
            keep_firing_for: None,
            labels: BTreeMap::from([("slo".to_string(), slo.name.clone())]),
            annotations: BTreeMap::new(),
        });
    }
    Ok(recordings)
}

/// The burn-rate alerts of one SLO: the fast burn pages, the slow one
/// opens a ticket (multiwindow, multi-burn-rate).
fn burn_alerts(slo: &Slo, budget: f64, runbook_base: &str) -> (Rule, Rule) {
    let b = decimal(budget);
    let sel = format!("{{slo=\"{}\"}}", slo.name);
    let burn = |long: &str, short: &str, factor: &str| {
        format!(
            "({} > ({factor} * {b}) and {} > ({factor} * {b}))",
            format_args!("{}{sel}", record_name(long)),
            format_args!("{}{sel}", record_name(short)),
        )
    };
    let name = camel(&slo.name);
    let sla = format!("{}% over {}", decimal(slo.objective), slo.window);
    let runbook = format!("{}/{RUNBOOK}", runbook_base.trim_end_matches('/'));
    let alert = |suffix: &str,
                 expr: String,
                 for_: &str,
                 severity: &str,
                 priority: &str,
                 summary: &str,
                 window: &str| Rule {
        alert: Some(format!("{name}{suffix}")),
        record: None,
        expr,
        for_: Some(for_.to_string()),
        keep_firing_for: None,
        labels: BTreeMap::from([
            ("severity".to_string(), severity.to_string()),
            ("priority".to_string(), priority.to_string()),
            ("category".to_string(), "sla".to_string()),
        ]),
        annotations: BTreeMap::from([
            (
                "summary".to_string(),
                format!("SLO {{{{ $labels.slo }}}} {summary}"),
            ),
            (
                "description".to_string(),
                format!(
                    "The error ratio of {{{{ $labels.slo }}}} over {window} is {{{{ $value | humanizePercentage }}}}; the objective allows {}.",
                    g4(budget * 100.0) + "%"
                ),
            ),
            ("sla".to_string(), sla.clone()),
            ("runbook_url".to_string(), runbook.clone()),
        ]),
    };
    let fast = alert(
        "BudgetBurnFast",
        format!(
            "{}\nor\n{}",
            burn("1h", "5m", "14.4"),
            burn("6h", "30m", "6")
        ),
        "2m",
        "critical",
        "P0",
        "is burning its error budget fast (page)",
        "1h",
    );
    let slow = alert(
        "BudgetBurnSlow",
        format!("{}\nor\n{}", burn("1d", "2h", "3"), burn("3d", "6h", "1")),
        "15m",
        "warning",
        "P1",
        "is burning its error budget (ticket)",
        "1d",
    );
    (fast, slow)
}

/// Synthetic recorded ratios at given multiples of the budget: the page
/// fires at 20×, only the ticket at 4×, nothing at 0.5×.
fn test_file(slo: &Slo, group: &str, budget: f64, fast: &Rule, slow: &Rule) -> String {
    let series = |factor: f64| -> Vec<Value> {
        WINDOWS
            .iter()
            .map(|w| json!({"series": format!("{}{{slo=\"{}\"}}", record_name(w), slo.name), "values": format!("{}+0x40", decimal(budget * factor))}))
            .collect()
    };
    let expected = |rule: &Rule, value: f64| -> Value {
        let mut labels: BTreeMap<String, String> = rule.labels.clone();
        labels.insert("slo".into(), slo.name.clone());
        let annotations: BTreeMap<String, String> = rule
            .annotations
            .iter()
            .map(|(k, v)| {
                let v = v.replace("{{ $labels.slo }}", &slo.name).replace(
                    "{{ $value | humanizePercentage }}",
                    &format!("{}%", g4(value * 100.0)),
                );
                (k.clone(), v)
            })
            .collect();
        json!([{"exp_labels": labels, "exp_annotations": annotations}])
    };
    let name = |r: &Rule| r.alert.clone().unwrap_or_default();
    let doc = json!({
        "rule_files": [format!("../rules/{group}.yaml")],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": series(20.0), "alert_rule_test": [
                {"eval_time": "1m", "alertname": name(fast), "exp_alerts": []},
                {"eval_time": "5m", "alertname": name(fast), "exp_alerts": expected(fast, budget * 20.0)},
            ]},
            {"interval": "1m", "input_series": series(4.0), "alert_rule_test": [
                {"eval_time": "20m", "alertname": name(fast), "exp_alerts": []},
                {"eval_time": "20m", "alertname": name(slow), "exp_alerts": expected(slow, budget * 4.0)},
            ]},
            {"interval": "1m", "input_series": series(0.5), "alert_rule_test": [
                {"eval_time": "30m", "alertname": name(slow), "exp_alerts": []},
            ]},
        ],
    });
    serde_saphyr::to_string(&doc).unwrap_or_default()
}

/// Seed 002's SLA dashboard: per SLO its SLI over 24 h (the seed's
/// measurement window) beside the SLO's window and the error budget left,
/// the burn rates, and its indicator against its line (response time with
/// the 5 s line, error rate with the 1 % line) when the SLO names one; then
/// the service's instance status and cardinality (series per scrape).
/// Window-long averages are instant queries: as range queries they would
/// read the whole window at every step of the 12 h view.
fn dashboard(slos: &[Slo], selector: &str) -> Value {
    let mut panels = Vec::new();
    let mut at = Grid { id: 1, y: 0 };
    for slo in slos {
        panels.extend(slo_panels(slo, selector, &mut at));
    }
    panels.extend(service_panels(selector, &at));
    json!({
        "uid": "telltale-slo",
        "title": "SLOs",
        "description": "The SLA dashboard: each SLO's SLI over 24 hours and over its window, the error budget and burn rates, its indicator against its threshold, and the service's instance status and cardinality.",
        "tags": ["telltale", "slo"],
        "schemaVersion": 39,
        "editable": false,
        "time": {"from": "now-12h", "to": "now"},
        "refresh": "1m",
        // `cluster` as every dashboard has it: a notification's link selects
        // the alert's cluster (notify_template.rs).
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0},
            {"name": "cluster", "label": "Cluster", "type": "query",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "definition": "label_values(up, cluster)",
             "query": {"query": "label_values(up, cluster)", "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
             "current": {"selected": true, "text": "All", "value": "$__all"}, "hide": 0,
             "includeAll": true, "multi": false, "options": [], "refresh": 2, "regex": "", "sort": 1, "allValue": ".*"},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    })
}

/// The next free panel id and row of a dashboard being laid out.
struct Grid {
    id: i64,
    y: i64,
}

/// The Prometheus datasource of every panel: the dashboard's variable.
fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

fn target(ref_id: &str, expr: String, legend: &str, instant: bool) -> Value {
    json!({"refId": ref_id, "expr": expr, "legendFormat": legend, "datasource": datasource(),
           "range": !instant, "instant": instant})
}

/// One SLO's row: its SLI over 24 hours and over its window, the error
/// budget left, the burn rates, and its indicator against its threshold.
fn slo_panels(slo: &Slo, selector: &str, at: &mut Grid) -> Vec<Value> {
    let ds = datasource();
    let mut panels = Vec::new();
    let (mut id, mut y) = (at.id, at.y);
    let budget = decimal((100.0 - slo.objective) / 100.0);
    let sel = format!("{{slo=\"{}\"}}", slo.name);
    let r1h = format!("{}{sel}", record_name("1h"));
    panels.push(json!({"id": id, "type": "row", "title": format!("{} — {}% over {}", slo.name, decimal(slo.objective), slo.window),
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "collapsed": false, "panels": []}));
    id += 1;
    y += 1;
    let stat = |id: i64,
                x: i64,
                title: &str,
                description: &str,
                expr: String,
                unit: &str,
                steps: Value| {
        json!({
            "id": id, "type": "stat", "title": title, "description": description, "datasource": ds,
            "gridPos": {"x": x, "y": y, "w": 4, "h": 6},
            "targets": [target("A", expr, "", true)],
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}, "overrides": []},
            "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}},
        })
    };
    let sli_steps = json!([{"color": "red", "value": null}, {"color": "green", "value": slo.objective / 100.0}]);
    panels.push(stat(
        id,
        0,
        "SLI (24h)",
        "The SLI over the last 24 hours (the SLA's measurement window).",
        format!("1 - {}{sel}", record_name("1d")),
        "percentunit",
        sli_steps.clone(),
    ));
    panels.push(stat(
        id + 1,
        4,
        &format!("SLI ({})", slo.window),
        "The SLI over the SLO's window.",
        format!("1 - avg_over_time({r1h}[{}])", slo.window),
        "percentunit",
        sli_steps,
    ));
    panels.push(stat(id + 2, 8, &format!("Error budget remaining ({})", slo.window), "The share of the window's error budget not spent yet.",
        format!("1 - (avg_over_time({r1h}[{}]) / {budget})", slo.window), "percentunit",
        json!([{"color": "red", "value": null}, {"color": "yellow", "value": 0.25}, {"color": "green", "value": 0.5}])));
    let burn_targets: Vec<Value> = ["5m", "1h", "6h", "1d"]
        .iter()
        .zip(["A", "B", "C", "D"])
        .map(|(w, ref_id)| {
            target(
                ref_id,
                format!("{}{sel} / {budget}", record_name(w)),
                w,
                false,
            )
        })
        .collect();
    panels.push(json!({
        "id": id + 3, "type": "timeseries", "title": "Burn rate (1 = on budget)", "datasource": ds,
        "gridPos": {"x": 12, "y": y, "w": 12, "h": 6},
        "targets": burn_targets,
        "fieldConfig": {"defaults": {"unit": "short", "thresholds": {"mode": "absolute", "steps": [
            {"color": "green", "value": null}, {"color": "yellow", "value": 6}, {"color": "red", "value": 14.4}]},
            "custom": {"thresholdsStyle": {"mode": "dashed"}}}, "overrides": []},
    }));
    id += 4;
    y += 6;
    if let Some(panel) = &slo.panel {
        panels.push(json!({
            "id": id, "type": "timeseries", "title": panel.title, "datasource": ds,
            "description": format!("The dashed red line is the SLO's threshold ({}).", panel.threshold),
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 7},
            "targets": [target("A", fill(&panel.query, "$__rate_interval", selector), "", false)],
            "fieldConfig": {"defaults": {"unit": panel.unit.clone().unwrap_or_else(|| "short".into()),
                "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": null}, {"color": "red", "value": panel.threshold}]},
                "custom": {"thresholdsStyle": {"mode": "dashed"}}}, "overrides": []},
        }));
        id += 1;
        y += 7;
    }
    (at.id, at.y) = (id, y);
    panels
}

/// The last row: the service's instance status and cardinality.
fn service_panels(selector: &str, at: &Grid) -> Vec<Value> {
    let ds = datasource();
    let (id, mut y) = (at.id, at.y);
    let mut panels = Vec::new();
    // The service the SLOs measure: its instances and its cardinality.
    panels.push(json!({"id": id, "type": "row", "title": "Service health and cardinality",
        "description": "Prometheus' own series: up and scrape_samples_scraped / scrape_series_added for every target of the service, and the head series of the TSDB (metric explosion shows in both).",
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "collapsed": false, "panels": []}));
    y += 1;
    panels.push(json!({
        "id": id + 1, "type": "state-timeline", "title": "Instance status", "datasource": ds,
        "description": "1 up (green), 0 down (red), per instance of the service.",
        "gridPos": {"x": 0, "y": y, "w": 12, "h": 7},
        "targets": [target("A", format!("max by (instance) (up{{ {selector} }})"), "{{instance}}", false)],
        "fieldConfig": {"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}]}, "overrides": []},
    }));
    panels.push(json!({
        "id": id + 2, "type": "timeseries", "title": "Cardinality", "datasource": ds,
        "description": "Samples each scrape of the service returns, new series per scrape, and Prometheus' head series: a label that explodes shows here first.",
        "gridPos": {"x": 12, "y": y, "w": 12, "h": 7},
        "targets": [
            target("A", format!("sum by (instance) (scrape_samples_scraped{{ {selector} }})"), "{{instance}} samples/scrape", false),
            target("B", format!("sum by (instance) (scrape_series_added{{ {selector} }})"), "{{instance}} series added", false),
            target("C", "sum(prometheus_tsdb_head_series)".to_string(), "Prometheus head series", false),
        ],
        "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
    }));
    panels
}

/// The stage: each SLO's recording rules, burn-rate alerts and their
/// test, and the SLO dashboard its alerts link.
pub fn add(b: &mut super::builder::Builder<'_>) -> Result<(), super::RenderError> {
    if b.r.slos.is_empty() {
        return Ok(());
    }
    let base =
        b.r.alerting
            .runbook_base_url
            .as_deref()
            .unwrap_or(super::rules::DEFAULT_RUNBOOK_BASE);
    let generated = render(&b.r.slos, &b.r.slo_selector, base)?;
    for (name, group, test) in generated.groups {
        let alerts: Vec<String> = group.rules.iter().filter_map(|r| r.alert.clone()).collect();
        b.alert_dashboards.link(DASHBOARD, &alerts);
        b.rules.extend(group.rules.iter().cloned());
        b.rule_group(&group, "slos", "slos")?;
        if let Some(test) = test {
            b.files.add(
                "rule test",
                format!("prometheus/tests/{name}_test.yaml"),
                "slos",
                test,
            )?;
        }
    }
    b.dashboard(DASHBOARD, &generated.dashboard, "slos", "slos")?;
    Ok(())
}

/// The uid of the SLO dashboard.
pub const DASHBOARD: &str = "telltale-slo";

/// The rule file text of a group.
pub fn rule_file(group: &RuleGroup) -> RuleFile {
    RuleFile {
        groups: vec![group.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integer_formatted_le_in_an_slo_is_refused() {
        let slo = Slo {
            name: "latency".into(),
            objective: 95.0,
            window: "30d".into(),
            description: None,
            errors: "sum(rate(h_bucket{ {{selector}}, le=\"5\" }[{{window}}]))".into(),
            total: "sum(rate(h_count{ {{selector}} }[{{window}}]))".into(),
            panel: None,
        };
        let e = render(&[slo], "job=\"api\"", "https://x")
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("Prometheus 3")),
            "{e:?}"
        );
    }

    #[test]
    fn numbers_print_like_prometheus() {
        assert_eq!(decimal((100.0 - 99.9) / 100.0), "0.001");
        assert_eq!(g4(0.02 * 100.0), "2");
        assert_eq!(g4(0.004 * 100.0), "0.4");
        assert_eq!(g4(12.3456), "12.35");
    }

    #[test]
    fn burn_rate_thresholds_follow_the_workbook() {
        let slo = Slo {
            name: "api".into(),
            objective: 99.9,
            window: "30d".into(),
            description: None,
            errors: "sum(rate(e{ {{selector}} }[{{window}}]))".into(),
            total: "sum(rate(t{ {{selector}} }[{{window}}]))".into(),
            panel: None,
        };
        let files = render(&[slo], "job=\"api\"", "https://x").unwrap();
        let (_, alerts, test) = &files.groups[1];
        let fast = &alerts.rules[0].expr;
        assert!(
            fast.contains("slo:sli_error:ratio_rate1h{slo=\"api\"} > (14.4 * 0.001)"),
            "{fast}"
        );
        assert!(
            fast.contains("slo:sli_error:ratio_rate30m{slo=\"api\"} > (6 * 0.001)"),
            "{fast}"
        );
        let slow = &alerts.rules[1].expr;
        assert!(
            slow.contains("ratio_rate1d{slo=\"api\"} > (3 * 0.001)")
                && slow.contains("ratio_rate6h{slo=\"api\"} > (1 * 0.001)"),
            "{slow}"
        );
        assert!(
            files.groups[0].1.rules[0]
                .expr
                .contains("e{ job=\"api\" }[5m]")
        );
        assert!(test.as_ref().unwrap().contains("alert_rule_test"));
    }
}
