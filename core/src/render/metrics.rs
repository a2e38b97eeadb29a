//! Metric provenance: every metric name the bundle's rules and dashboards
//! read, and the component that publishes it.
//!
//! A rule or panel on a series nothing exports never fires and never shows
//! data, and nothing says so. Components declare what they publish
//! (`spec.publishes` in plugin.yaml); recording rules publish their
//! `record:` names; Prometheus itself makes a few series from scraping and
//! alerting. The renderer writes the table to `metrics.json` and warns
//! about every name no component of the bundle declares. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::rules::Rule;

/// What Prometheus writes itself: per scrape target, and per alert.
pub const SYNTHETIC: [&str; 10] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    // With --enable-feature=extra-scrape-metrics.
    "scrape_timeout_seconds",
    "scrape_sample_limit",
    "scrape_body_size_bytes",
    "ALERTS",
    "ALERTS_FOR_STATE",
];

/// Who publishes the synthetic series.
pub const SYNTHETIC_COMPONENT: &str = "prometheus (synthetic series)";

/// How a plan warning about a metric nothing publishes begins (the test of
/// every profile looks for it).
pub const UNPUBLISHED: &str = "metric";

/// One reader of a metric: a rule or a dashboard panel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Use {
    pub metric: String,
    /// `rule GROUP/NAME`, `dashboard UID: TITLE` or `dashboard UID: variable NAME`.
    pub by: String,
}

/// One row of metrics.json.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub name: String,
    /// `component (plugin)`, `recording rule GROUP` or the synthetic marker;
    /// empty when nothing in the bundle publishes it.
    pub published_by: Vec<String>,
    pub used_by: Vec<String>,
}

/// The bundle file listing every metric read and its publishers.
pub const FILE: &str = "metrics.json";

/// The stage: every name the bundle reads, who publishes it, and a warning
/// per name nobody does (naming a plugin of the catalogue that would).
pub fn add(b: &mut super::builder::Builder<'_>) -> Result<(), super::RenderError> {
    let table = provenance(&b.reads.uses, &b.reads.publishers);
    b.warnings
        .extend(warnings(&table, &elsewhere(b.catalog, b.r)));
    b.files.add(
        "metric provenance",
        FILE.into(),
        "core",
        super::pretty_json(&serde_json::json!({ "metrics": table })),
    )
}

/// What the catalogue's plugins outside this bundle publish.
fn elsewhere(catalog: &crate::catalog::Catalog, r: &super::Resolved) -> Publishers {
    let mut out = Publishers::default();
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

/// The most parsed expressions [`names_in`] keeps: above the catalogue's
/// rules and panels together, a bound for whatever plugins add.
const NAMES_CACHE: usize = 8192;

/// Every metric name a PromQL expression selects: vector and matrix
/// selectors by name, or by an exact `__name__` matcher. Parsed once per
/// process: a fleet renders the same rules and panels for every cluster,
/// and the parser compiles each `=~` matcher's regex (this was a sixth of a
/// fleet's `plan`).
pub fn names_in(expr: &str) -> Result<BTreeSet<String>, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Names = Result<BTreeSet<String>, String>;
    static CACHE: OnceLock<Mutex<HashMap<String, Names>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(expr).cloned()) {
        return hit;
    }
    let names = parse_names(expr);
    if let Ok(mut c) = cache.lock()
        && c.len() < NAMES_CACHE
    {
        c.insert(expr.to_string(), names.clone());
    }
    names
}

/// Every vector selector of a parsed PromQL expression, those inside range
/// selectors too, in the order they are written.
pub fn vector_selectors(
    parsed: &promql_parser::parser::Expr,
) -> Vec<promql_parser::parser::VectorSelector> {
    use promql_parser::parser::{Expr, VectorSelector};
    struct Collect(Vec<VectorSelector>);
    impl promql_parser::util::ExprVisitor for Collect {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
            match expr {
                Expr::VectorSelector(vs) => self.0.push(vs.clone()),
                Expr::MatrixSelector(ms) => self.0.push(ms.vs.clone()),
                _ => {}
            }
            Ok(true)
        }
    }
    let mut collect = Collect(Vec::new());
    let _ = promql_parser::util::walk_expr(&mut collect, parsed);
    collect.0
}

fn parse_names(expr: &str) -> Result<BTreeSet<String>, String> {
    use promql_parser::label::MatchOp;
    let parsed = promql_parser::parser::parse(expr).map_err(|e| e.to_string())?;
    let mut names = BTreeSet::new();
    for vs in vector_selectors(&parsed) {
        if let Some(name) = vs.name {
            names.insert(name);
        }
        for m in &vs.matchers.matchers {
            if m.name == "__name__" && m.op == MatchOp::Equal {
                names.insert(m.value.clone());
            }
        }
    }
    Ok(names)
}

/// The metrics each rule reads.
pub fn rule_uses(group: &str, rules: &[Rule]) -> Result<Vec<Use>, String> {
    let mut out = Vec::new();
    for rule in rules {
        let name = rule
            .alert
            .as_deref()
            .or(rule.record.as_deref())
            .unwrap_or("");
        let by = format!("rule {group}/{name}");
        for metric in names_in(&rule.expr).map_err(|e| format!("{by}: {e}"))? {
            out.push(Use {
                metric,
                by: by.clone(),
            });
        }
    }
    Ok(out)
}

/// The metrics a dashboard's Prometheus panels and query variables read,
/// with the variables and Grafana's macros filled in as a browser would.
pub fn dashboard_uses(uid: &str, dashboard: &Value) -> Result<Vec<Use>, String> {
    let vars = crate::dashboard::variables(dashboard);
    let mut out = Vec::new();
    let mut add = |expr: &str, by: String| -> Result<(), String> {
        let expr = crate::dashboard::interpolate(expr, &vars);
        for metric in names_in(&expr).map_err(|e| format!("{by}: {e}\n  {expr}"))? {
            out.push(Use {
                metric,
                by: by.clone(),
            });
        }
        Ok(())
    };
    for panel in crate::dashboard::panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let kind = target["datasource"]["type"]
                .as_str()
                .or(panel["datasource"]["type"].as_str())
                .unwrap_or("prometheus");
            if kind != "prometheus" {
                continue;
            }
            if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                add(expr, format!("dashboard {uid}: {title}"))?;
            }
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" || var["datasource"]["type"].as_str() != Some("prometheus") {
            continue;
        }
        let query = match &var["query"] {
            Value::String(q) => q.as_str(),
            q => q["query"].as_str().unwrap_or(""),
        };
        if let Some(expr) = variable_promql(query) {
            let name = var["name"].as_str().unwrap_or("?");
            add(&expr, format!("dashboard {uid}: variable {name}"))?;
        }
    }
    Ok(out)
}

/// The PromQL inside a Prometheus variable query: `label_values(EXPR,
/// label)` and `query_result(EXPR)`; none for `label_values(label)` and
/// `metrics(regex)`, which read no particular metric.
fn variable_promql(query: &str) -> Option<String> {
    let q = query.trim();
    if let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (expr, _label) = inner.rsplit_once(',')?;
        return Some(expr.trim().to_string());
    }
    q.strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
        .map(|e| e.trim().to_string())
}

/// Metric name → who publishes it in this bundle.
#[derive(Debug, Default, Clone)]
pub struct Publishers(BTreeMap<String, BTreeSet<String>>);

impl Publishers {
    /// With Prometheus' synthetic series.
    pub fn with_synthetic() -> Self {
        let mut p = Publishers::default();
        for name in SYNTHETIC {
            p.add(name, SYNTHETIC_COMPONENT);
        }
        p
    }

    pub fn add(&mut self, metric: &str, by: &str) {
        self.0
            .entry(metric.to_string())
            .or_default()
            .insert(by.to_string());
    }

    pub fn get(&self, metric: &str) -> Option<&BTreeSet<String>> {
        self.0.get(metric)
    }
}

/// The metrics.json table: every metric read, who publishes it, who reads it.
pub fn provenance(uses: &[Use], publishers: &Publishers) -> Vec<Provenance> {
    let mut by_metric: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for u in uses {
        by_metric.entry(&u.metric).or_default().insert(&u.by);
    }
    by_metric
        .into_iter()
        .map(|(name, users)| Provenance {
            name: name.to_string(),
            published_by: publishers
                .get(name)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
            used_by: users.into_iter().map(String::from).collect(),
        })
        .collect()
}

/// One warning per metric nothing publishes, naming its first readers and,
/// when a plugin outside the bundle publishes it, that plugin.
pub fn warnings(table: &[Provenance], elsewhere: &Publishers) -> Vec<String> {
    table
        .iter()
        .filter(|p| p.published_by.is_empty())
        .map(|p| {
            let users = if p.used_by.len() > 3 {
                format!(
                    "{} and {} more",
                    p.used_by[..3].join("; "),
                    p.used_by.len() - 3
                )
            } else {
                p.used_by.join("; ")
            };
            let hint = match elsewhere.get(&p.name) {
                Some(by) => format!(
                    " ({} publishes it: enable it)",
                    by.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                None => String::new(),
            };
            format!(
                "{UNPUBLISHED} `{}` is published by no component of this bundle{hint}; read by {users}",
                p.name
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_selectors_and_exact_name_matchers() {
        let names = names_in(
            r#"sum(rate(a_total{job="x"}[5m])) / on () group_left b + {__name__="c"} + {__name__=~"d.*"} + vector(1)"#,
        )
        .unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a_total", "b", "c"]);
    }

    #[test]
    fn dashboard_queries_are_read_with_their_variables_filled() {
        let d = serde_json::json!({
            "templating": {"list": [
                {"name": "job", "type": "custom", "query": "api", "current": {"value": "api"}},
                {"name": "node", "type": "query", "datasource": {"type": "prometheus"},
                 "query": {"query": "label_values(kube_node_info{job=\"$job\"}, node)"}},
            ]},
            "panels": [
                {"title": "rate", "datasource": {"type": "prometheus"},
                 "targets": [{"expr": "rate(http_requests_total{job=\"$job\"}[$__rate_interval])"}]},
                {"title": "row", "type": "row", "panels": [
                    {"title": "sql", "datasource": {"type": "grafana-postgresql-datasource"},
                     "targets": [{"rawSql": "SELECT 1"}]},
                ]},
            ],
        });
        let uses = dashboard_uses("d", &d).unwrap();
        let got: Vec<(&str, &str)> = uses
            .iter()
            .map(|u| (u.metric.as_str(), u.by.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("http_requests_total", "dashboard d: rate"),
                ("kube_node_info", "dashboard d: variable node"),
            ]
        );
    }

    #[test]
    fn an_unpublished_metric_is_a_warning_naming_the_plugin_that_would_publish_it() {
        let uses = vec![
            Use {
                metric: "pg_up".into(),
                by: "rule g/PostgresDown".into(),
            },
            Use {
                metric: "up".into(),
                by: "rule g/TargetDown".into(),
            },
        ];
        let table = provenance(&uses, &Publishers::with_synthetic());
        assert_eq!(table[1].published_by, [SYNTHETIC_COMPONENT]);
        let mut elsewhere = Publishers::default();
        elsewhere.add("pg_up", "pg_exporter (pg-exporter)");
        let w = warnings(&table, &elsewhere);
        assert_eq!(
            w,
            [
                "metric `pg_up` is published by no component of this bundle (pg_exporter (pg-exporter) publishes it: enable it); read by rule g/PostgresDown"
            ]
        );
    }
}
