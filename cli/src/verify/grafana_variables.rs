//! The template-variable queries Grafana runs when a dashboard loads,
//! before any panel (panels wait for their variables): each query
//! variable whose `refresh` is on load (1) or on time-range change (2),
//! asked of its datasource through Grafana's resource API the way the
//! Prometheus datasource's frontend asks (grafana
//! `packages/grafana-prometheus/src/metric_find_query.ts`): `label_values`
//! through `/api/v1/series` with `match[]` (or `/api/v1/label/<l>/values`
//! when the datasource says it is a Prometheus ≥ 2.24), `label_names()`,
//! `metrics()`, `query_result()` and a bare selector through their APIs,
//! over the dashboard's time range. A variable that reads another one waits
//! for it, so they run in levels.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::grafana::{Datasource, interpolate_variables, variables};
use super::http::encode;

/// A Prometheus variable query, as Grafana's frontend tells them apart.
#[derive(Debug, Clone, PartialEq)]
pub enum VariableQuery {
    LabelNames,
    LabelValues {
        label: String,
        selector: Option<String>,
    },
    Metrics(String),
    QueryResult(String),
    Series(String),
}

static LABEL_VALUES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^label_values\((?:(.+),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)\s*$").expect("a regex")
});
static LABEL_NAMES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^label_names\((.*)\)\s*$").expect("a regex"));
static METRICS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^metrics\((.+)\)\s*$").expect("a regex"));
static QUERY_RESULT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^query_result\((.+)\)\s*$").expect("a regex"));

impl VariableQuery {
    /// None for the empty forms Grafana answers without asking.
    pub fn parse(text: &str) -> Option<VariableQuery> {
        let text = text.trim();
        if text.is_empty() || ["label_values()", "metrics()", "query_result()"].contains(&text) {
            return None;
        }
        if LABEL_NAMES.is_match(text) {
            return Some(VariableQuery::LabelNames);
        }
        if let Some(c) = LABEL_VALUES.captures(text) {
            let selector = c
                .get(1)
                .map(|m| m.as_str().trim().to_string())
                .filter(|s| !s.replace(' ', "").is_empty() && s.replace(' ', "") != "{}");
            return Some(VariableQuery::LabelValues {
                label: c[2].to_string(),
                selector,
            });
        }
        if let Some(c) = METRICS.captures(text) {
            return Some(VariableQuery::Metrics(c[1].to_string()));
        }
        if let Some(c) = QUERY_RESULT.captures(text) {
            return Some(VariableQuery::QueryResult(c[1].to_string()));
        }
        Some(VariableQuery::Series(text.to_string()))
    }

    /// The PromQL it reads, if any (a selector or an expression).
    pub fn reads(&self) -> Option<&str> {
        match self {
            VariableQuery::LabelValues { selector, .. } => selector.as_deref(),
            VariableQuery::QueryResult(e) | VariableQuery::Series(e) => Some(e),
            _ => None,
        }
    }

    /// The Prometheus API path and query string Grafana's frontend sends
    /// (through `/api/datasources/uid/<uid>/resources/`), over
    /// `[start, end]` in seconds.
    pub fn path(&self, start: i64, end: i64, label_match_api: bool) -> String {
        let range = format!("start={start}&end={end}");
        match self {
            VariableQuery::LabelNames => format!("api/v1/labels?{range}"),
            VariableQuery::LabelValues { label, selector } => match selector {
                Some(s) if !label_match_api => {
                    format!("api/v1/series?match%5B%5D={}&{range}", encode(s))
                }
                Some(s) => format!(
                    "api/v1/label/{}/values?match%5B%5D={}&{range}",
                    encode(label),
                    encode(s)
                ),
                None => format!("api/v1/label/{}/values?{range}", encode(label)),
            },
            VariableQuery::Metrics(_) => format!("api/v1/label/__name__/values?{range}"),
            VariableQuery::QueryResult(e) => {
                format!("api/v1/query?query={}&time={end}", encode(e))
            }
            VariableQuery::Series(s) => {
                format!("api/v1/series?match%5B%5D={}&{range}", encode(s))
            }
        }
    }
}

/// A variable's query text: a string, or the query editor's object.
pub fn query_text(variable: &Value) -> &str {
    match &variable["query"] {
        Value::String(q) => q,
        q => q["query"].as_str().unwrap_or_default(),
    }
}

/// One variable query as the browser sends it on load.
#[derive(Debug, Clone, PartialEq)]
pub struct VariableRequest {
    pub name: String,
    /// Runs after every request of a lower level.
    pub level: usize,
    /// Relative to Grafana's URL.
    pub path: String,
}

/// Variables not asked (another datasource kind, one not provisioned).
#[derive(Debug, Default)]
pub struct Requests {
    pub requests: Vec<VariableRequest>,
    pub skipped: Vec<String>,
}

/// The variable queries `dashboard` runs on load over `[start, end]`
/// (seconds), other variables in them at their current values.
pub fn requests(dashboard: &Value, datasources: &[Datasource], start: i64, end: i64) -> Requests {
    let vars = variables(dashboard);
    let list: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .filter(|v| matches!(v["refresh"].as_u64(), Some(1) | Some(2)))
        .collect();
    let names: Vec<&str> = list.iter().filter_map(|v| v["name"].as_str()).collect();
    let mut out = Requests::default();
    let levels = levels(&list, &names);
    for (variable, level) in list.iter().zip(levels) {
        let name = variable["name"].as_str().unwrap_or_default().to_string();
        let kind = variable["datasource"]["type"]
            .as_str()
            .unwrap_or("prometheus");
        if kind != "prometheus" {
            out.skipped.push(format!("{name}: {kind}"));
            continue;
        }
        let Some(ds) = datasources.iter().find(|d| d.kind == kind) else {
            out.skipped.push(format!("{name}: no {kind} datasource"));
            continue;
        };
        let text = interpolate_variables(query_text(variable), &vars);
        let Some(query) = VariableQuery::parse(&text) else {
            continue;
        };
        out.requests.push(VariableRequest {
            name,
            level,
            path: format!(
                "/api/datasources/uid/{}/resources/{}",
                encode(&ds.uid),
                query.path(start, end, label_match_api(ds))
            ),
        });
    }
    out
}

/// Each variable's level: one more than the highest of the variables its
/// query names (a cycle stays at the deepest level reached).
fn levels(list: &[&Value], names: &[&str]) -> Vec<usize> {
    let refers = |text: &str, name: &str| {
        [
            format!("${{{name}}}"),
            format!("${{{name}:"),
            format!("[[{name}]]"),
        ]
        .iter()
        .any(|p| text.contains(p.as_str()))
            || text.match_indices(&format!("${name}")).any(|(at, m)| {
                !text[at + m.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    let deps: Vec<Vec<usize>> = list
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let text = query_text(v);
            (0..names.len())
                .filter(|j| *j != i && refers(text, names[*j]))
                .collect()
        })
        .collect();
    let mut level = vec![0; list.len()];
    for _ in 0..list.len() {
        for i in 0..list.len() {
            level[i] = deps[i].iter().map(|j| level[*j] + 1).max().unwrap_or(0);
        }
    }
    level
}

/// Whether the datasource says it is a Prometheus that takes `match[]` on
/// its label-values API (jsonData `prometheusType`/`prometheusVersion`);
/// kube-prometheus-stack's default datasource says nothing, so Grafana
/// asks `/api/v1/series`.
fn label_match_api(ds: &Datasource) -> bool {
    let version = ds.json_data["prometheusVersion"]
        .as_str()
        .and_then(|v| semver::Version::parse(v.trim_start_matches('v')).ok());
    ds.json_data["prometheusType"] == "Prometheus"
        && version.is_some_and(|v| v >= semver::Version::new(2, 24, 0))
}

/// Variables by level, for running in order.
pub fn by_level(requests: Vec<VariableRequest>) -> Vec<Vec<VariableRequest>> {
    let mut levels: BTreeMap<usize, Vec<VariableRequest>> = BTreeMap::new();
    for r in requests {
        levels.entry(r.level).or_default().push(r);
    }
    levels.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prometheus(json_data: Value) -> Datasource {
        Datasource {
            uid: "prom".into(),
            name: "Prometheus".into(),
            kind: "prometheus".into(),
            json_data,
        }
    }

    #[test]
    fn queries_are_told_apart_as_grafana_does() {
        use VariableQuery::*;
        assert_eq!(
            VariableQuery::parse("label_values(kube_pod_info{cluster=~\"a\"}, namespace)"),
            Some(LabelValues {
                label: "namespace".into(),
                selector: Some("kube_pod_info{cluster=~\"a\"}".into())
            })
        );
        assert_eq!(
            VariableQuery::parse("label_values(job)"),
            Some(LabelValues {
                label: "job".into(),
                selector: None
            })
        );
        assert_eq!(VariableQuery::parse("label_names()"), Some(LabelNames));
        assert_eq!(
            VariableQuery::parse("query_result(topk(5, up))"),
            Some(QueryResult("topk(5, up)".into()))
        );
        assert_eq!(
            VariableQuery::parse("up{job=\"x\"}"),
            Some(Series("up{job=\"x\"}".into()))
        );
        assert_eq!(VariableQuery::parse("metrics()"), None);
    }

    #[test]
    fn label_values_go_through_series_unless_the_datasource_says_prometheus_2_24() {
        let dashboard = json!({"templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "cluster", "type": "query", "refresh": 2,
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"qryType": 1, "query": "label_values(kube_node_info, cluster)"},
             "current": {"value": "$__all"}},
            {"name": "namespace", "type": "query", "refresh": 1,
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": "label_values(kube_pod_info{cluster=~\"$cluster\"}, namespace)"},
            {"name": "never", "type": "query", "refresh": 0, "query": "label_values(up, job)"},
            {"name": "logs", "type": "query", "refresh": 1,
             "datasource": {"type": "loki", "uid": "loki"}, "query": "label_values(app)"},
        ]}});
        let r = requests(&dashboard, &[prometheus(json!({}))], 100, 43_300);
        let got: Vec<(&str, usize, &str)> = r
            .requests
            .iter()
            .map(|r| (r.name.as_str(), r.level, r.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "cluster",
                    0,
                    "/api/datasources/uid/prom/resources/api/v1/series?match%5B%5D=kube_node_info&start=100&end=43300"
                ),
                (
                    "namespace",
                    1,
                    "/api/datasources/uid/prom/resources/api/v1/series?match%5B%5D=kube_pod_info%7Bcluster%3D~%22.%2A%22%7D&start=100&end=43300"
                ),
            ]
        );
        assert_eq!(r.skipped, ["logs: loki"]);
        let r = requests(
            &dashboard,
            &[prometheus(
                json!({"prometheusType": "Prometheus", "prometheusVersion": "3.5.0"}),
            )],
            100,
            43_300,
        );
        assert!(
            r.requests[0].path.ends_with(
                "api/v1/label/cluster/values?match%5B%5D=kube_node_info&start=100&end=43300"
            ),
            "{:?}",
            r.requests[0]
        );
        assert_eq!(by_level(r.requests).len(), 2);
    }
}
