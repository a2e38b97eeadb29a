//! The history the local stack can start with (`--history 12h`): which
//! series the bundle's dashboards read, and those series over the past
//! hours as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`.
//! Pure: the caller scrapes, writes and runs promtool (see backfill.rs).
//!
//! Nothing is invented from nothing: every series is one the local stack's
//! own daemons export right now (seen by a first Prometheus in a few
//! scrapes, with the labels the live one gives them), extended backwards at
//! the bundle's scrape interval:
//! - a counter goes back at the rate it was seen moving at, to zero at
//!   most: one younger than the history (a machine booted, a process
//!   started since) reads zero before it started. The series of one
//!   histogram or summary (same labels but `le`) move together, so buckets
//!   stay cumulative and `_count` equals `+Inf`, and no counter resets
//!   where the history meets the live scrapes;
//! - a gauge that did not move stays where it is (`up`, info metrics, sizes,
//!   limits); one that moved wobbles around its value within a few times
//!   the range it moved in; one that moves with the clock (a timestamp) is
//!   the clock's;
//! - recording rules' outputs and `ALERTS` are left out: promtool computes
//!   the records the dashboards read from this history
//!   (`create-blocks-from rules`, in [`Reads::layers`] order), and alerts
//!   cannot be backfilled.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};
use serde_json::Value;

pub type Labels = BTreeMap<String, String>;

/// Series Prometheus computes itself from rules: never backfilled raw.
const RULE_OUTPUTS: [&str; 2] = ["ALERTS", "ALERTS_FOR_STATE"];

/// One vector selector: all its matchers must match (or, for
/// `{a="1" or b="2"}`, all of one alternative).
#[derive(Debug, Clone)]
struct Selector(Vec<Vec<Matcher>>);

impl Selector {
    fn from_vs(vs: &VectorSelector) -> Self {
        let mut base = vs.matchers.matchers.clone();
        if let Some(name) = &vs.name {
            base.retain(|m| m.name != "__name__");
            base.push(Matcher::new(MatchOp::Equal, "__name__", name));
        }
        let mut alternatives: Vec<Vec<Matcher>> = vs
            .matchers
            .or_matchers
            .iter()
            .map(|alt| {
                let mut alt = alt.clone();
                alt.extend(base.iter().filter(|m| m.name == "__name__").cloned());
                alt
            })
            .collect();
        if alternatives.is_empty() {
            alternatives.push(base);
        }
        Selector(alternatives)
    }

    fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().any(|all| {
            all.iter()
                .all(|m| m.is_match(labels.get(&m.name).map(String::as_str).unwrap_or_default()))
        })
    }

    /// Whether a series named `name` could be selected (its name matchers).
    fn may_select_name(&self, name: &str) -> bool {
        self.0.iter().any(|all| {
            all.iter()
                .filter(|m| m.name == "__name__")
                .all(|m| m.is_match(name))
        })
    }
}

/// Every vector selector of a PromQL expression.
fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    struct Collect(Vec<Selector>);
    impl promql_parser::util::ExprVisitor for Collect {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
            match expr {
                Expr::VectorSelector(vs) => self.0.push(Selector::from_vs(vs)),
                Expr::MatrixSelector(ms) => self.0.push(Selector::from_vs(&ms.vs)),
                _ => {}
            }
            Ok(true)
        }
    }
    let parsed = promql_parser::parser::parse(expr).map_err(|e| format!("`{expr}`: {e}"))?;
    let mut collect = Collect(Vec::new());
    let _ = promql_parser::util::walk_expr(&mut collect, &parsed);
    Ok(collect.0)
}

/// One recording rule of the bundle, in its group.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub group: String,
    /// The group's own `interval`, when it has one.
    pub interval: Option<String>,
    pub record: String,
    pub expr: String,
    pub labels: Value,
}

/// The recording rules of a rule file (`groups: [{name, rules: [...]}]`).
pub fn records(file: &Value) -> Vec<Record> {
    let mut out = Vec::new();
    for group in file["groups"].as_array().into_iter().flatten() {
        let name = group["name"].as_str().unwrap_or_default();
        for rule in group["rules"].as_array().into_iter().flatten() {
            let (Some(record), Some(expr)) = (rule["record"].as_str(), rule["expr"].as_str())
            else {
                continue;
            };
            out.push(Record {
                group: name.to_string(),
                interval: group["interval"].as_str().map(String::from),
                record: record.to_string(),
                expr: expr.to_string(),
                labels: rule["labels"].clone(),
            });
        }
    }
    out
}

/// The queries a dashboard runs on load: every panel's (rows' panels
/// too) and every query variable's (`label_values(<selector>, label)`,
/// `query_result(<expr>)`), template variables and Grafana's macros
/// filled in so that they parse.
pub fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    use telltale::verify::grafana::{datasource_type, interpolate, panels, variables};
    let vars = variables(dashboard);
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if datasource_type(panel, target) != "prometheus" {
                continue;
            }
            if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                out.push(interpolate(expr, &vars));
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        use telltale::verify::grafana_variables::{VariableQuery, query_text};
        if variable["type"] != "query" {
            continue;
        }
        let query = interpolate(query_text(variable), &vars);
        if let Some(expr) = VariableQuery::parse(&query)
            .as_ref()
            .and_then(VariableQuery::reads)
        {
            out.push(expr.to_string());
        }
    }
    out
}

/// What the dashboards read, as the history must hold it: the raw series
/// (selected by the dashboards' selectors and those of the records they
/// read), and the records to compute from them, in layers: a layer reads
/// only raw series and the layers before it (promtool's rules backfill
/// cannot see a rule it computes in the same run).
#[derive(Debug, Default)]
pub struct Reads {
    raw: Vec<Selector>,
    /// Every record name of the bundle: rule outputs are never raw.
    record_names: BTreeSet<String>,
    pub layers: Vec<Vec<Record>>,
    /// Queries that do not parse, or records in a cycle: said, skipped.
    pub notes: Vec<String>,
}

impl Reads {
    pub fn new(queries: &[String], all_records: &[Record]) -> Reads {
        let mut out = Reads {
            record_names: all_records.iter().map(|r| r.record.clone()).collect(),
            ..Reads::default()
        };
        let mut read = Vec::new();
        for query in queries {
            match selectors(query) {
                Ok(s) => read.extend(s),
                Err(e) => out
                    .notes
                    .push(format!("a dashboard query does not parse: {e}")),
            }
        }
        // The records the dashboards read, and the records those read.
        let mut needed: Vec<(&Record, Vec<Selector>)> = Vec::new();
        let mut grew = true;
        while grew {
            grew = false;
            for record in all_records {
                if needed.iter().any(|(r, _)| std::ptr::eq(*r, record))
                    || !read.iter().any(|s| s.may_select_name(&record.record))
                {
                    continue;
                }
                match selectors(&record.expr) {
                    Ok(s) => {
                        read.extend(s.iter().cloned());
                        needed.push((record, s));
                        grew = true;
                    }
                    Err(e) => out.notes.push(format!("record {}: {e}", record.record)),
                }
            }
        }
        // Layer n reads records of layers below n only.
        let mut layer_of: Vec<Option<usize>> = vec![None; needed.len()];
        for _ in 0..=needed.len() {
            for i in 0..needed.len() {
                if layer_of[i].is_some() {
                    continue;
                }
                let mut layer = Some(0);
                for (j, (other, _)) in needed.iter().enumerate() {
                    if needed[i].1.iter().any(|s| s.may_select_name(&other.record)) {
                        layer = match (layer, layer_of[j]) {
                            (Some(l), Some(o)) if i != j => Some(l.max(o + 1)),
                            _ => None,
                        };
                    }
                }
                layer_of[i] = layer;
            }
        }
        for (i, (record, _)) in needed.iter().enumerate() {
            match layer_of[i] {
                Some(layer) => {
                    if out.layers.len() <= layer {
                        out.layers.resize(layer + 1, Vec::new());
                    }
                    out.layers[layer].push((*record).clone());
                }
                None => out.notes.push(format!(
                    "record {} reads itself (directly or through another record): not backfilled",
                    record.record
                )),
            }
        }
        out.raw = read;
        out
    }

    /// Whether the history holds this series raw.
    pub fn wants(&self, labels: &Labels) -> bool {
        let name = labels.get("__name__").map(String::as_str).unwrap_or("");
        !name.is_empty()
            && !RULE_OUTPUTS.contains(&name)
            && !self.record_names.contains(name)
            && self.raw.iter().any(|s| s.matches(labels))
    }
}

/// A layer of records as a rule file for promtool: the bundle's groups
/// (name, interval), each with the layer's rules of that group.
pub fn rule_file(layer: &[Record]) -> Value {
    let mut groups: Vec<(String, Option<String>, Vec<Value>)> = Vec::new();
    for r in layer {
        let mut rule = serde_json::json!({"record": r.record, "expr": r.expr});
        if r.labels.is_object() {
            rule["labels"] = r.labels.clone();
        }
        match groups.iter_mut().find(|(g, _, _)| *g == r.group) {
            Some((_, _, rules)) => rules.push(rule),
            None => groups.push((r.group.clone(), r.interval.clone(), vec![rule])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, interval, rules)| {
            let mut g = serde_json::json!({"name": name, "rules": rules});
            if let Some(i) = interval {
                g["interval"] = Value::String(i);
            }
            g
        })
        .collect();
    serde_json::json!({ "groups": groups })
}

/// One series as the first Prometheus saw it: samples `(seconds, value)`.
#[derive(Debug, Clone)]
pub struct Observed {
    pub labels: Labels,
    pub samples: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// A series' kind from Prometheus' metadata (`/api/v1/metadata`: family
/// name → type); without metadata (`up`, `scrape_*`) a `_total` name is a
/// counter and anything else a gauge.
pub fn kind(name: &str, metadata: &BTreeMap<String, String>) -> Kind {
    if let Some(kind) = metadata.get(name) {
        return match kind.as_str() {
            "counter" => Kind::Counter,
            _ => Kind::Gauge,
        };
    }
    for suffix in ["_bucket", "_count", "_sum", "_total"] {
        if let Some(family) = name.strip_suffix(suffix)
            && let Some(kind) = metadata
                .get(family)
                .or_else(|| metadata.get(&format!("{family}_total")))
        {
            return match (kind.as_str(), suffix) {
                ("counter", _) | ("histogram", _) | ("summary", _) => Kind::Counter,
                _ => Kind::Gauge,
            };
        }
    }
    if name.ends_with("_total") {
        Kind::Counter
    } else {
        Kind::Gauge
    }
}

/// The time points of the history: `points` samples `step_ms` apart, the
/// last at `end_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub end_ms: i64,
    pub step_ms: i64,
    pub points: usize,
}

impl Span {
    fn at(&self, k: usize) -> i64 {
        self.end_ms - (self.points - 1 - k) as i64 * self.step_ms
    }

    fn seconds(&self) -> f64 {
        (self.points.saturating_sub(1) as i64 * self.step_ms) as f64 / 1000.0
    }
}

/// What was written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub series: usize,
    pub samples: usize,
}

/// Writes `series` over `span` as OpenMetrics, series by series in name
/// order (a family's samples together, each series' in time order, as
/// promtool's block writer needs them), ending with `# EOF`.
pub fn write_openmetrics(
    out: &mut impl Write,
    series: &[Observed],
    metadata: &BTreeMap<String, String>,
    span: Span,
) -> std::io::Result<Written> {
    let mut written = Written::default();
    let mut order: Vec<&Observed> = series.iter().filter(|s| !s.samples.is_empty()).collect();
    order.sort_by(|a, b| a.labels.cmp(&b.labels));
    order.sort_by(|a, b| name(&a.labels).cmp(name(&b.labels)));
    let groups = counter_groups(&order, metadata, span);
    for s in order {
        let key = name(&s.labels);
        let values = match kind(key, metadata) {
            Kind::Counter => counter(s, &groups[&group_key(&s.labels)]),
            Kind::Gauge => gauge(s, span),
        };
        let labels = exposition_labels(&s.labels);
        for (k, value) in values.into_iter().enumerate() {
            let t = span.at(k);
            writeln!(
                out,
                "{key}{labels} {} {}.{:03}",
                number(value),
                t.div_euclid(1000),
                t.rem_euclid(1000)
            )?;
        }
        written.series += 1;
        written.samples += span.points;
    }
    writeln!(out, "# EOF")?;
    Ok(written)
}

fn name(labels: &Labels) -> &str {
    labels.get("__name__").map(String::as_str).unwrap_or("")
}

/// The series of one histogram or summary (or one plain counter): the
/// family name and every label but `le`.
fn group_key(labels: &Labels) -> String {
    let name = name(labels);
    let family = ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| *k != "__name__" && *k != "le")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{family}{{{}}}", rest.join(","))
}

/// A counter group's shared shape: at each point, the fraction of its
/// current value the group's counters had then.
struct Group {
    fraction: Vec<f64>,
}

/// Each group's age is its counters' total over their total rate (how
/// long they took to count what they have, at the rate seen). An old
/// group (at least as old as the history) goes back at that rate; a young
/// one (a machine booted, a process started since the history begins)
/// climbs from zero since its start and reads zero before it. Every
/// counter of a group is the same fraction of its current value at each
/// point, so buckets stay cumulative, `_count` stays the `+Inf` bucket, and
/// nothing resets where the history meets the live scrapes.
fn counter_groups<'a>(
    series: &[&'a Observed],
    metadata: &BTreeMap<String, String>,
    span: Span,
) -> BTreeMap<String, Group> {
    let mut members: BTreeMap<String, Vec<&'a Observed>> = BTreeMap::new();
    for s in series {
        if kind(name(&s.labels), metadata) == Kind::Counter {
            members.entry(group_key(&s.labels)).or_default().push(s);
        }
    }
    let history = span.seconds();
    members
        .into_iter()
        .map(|(key, members)| {
            let (total, rate) = members.iter().fold((0.0, 0.0), |(v, r), s| {
                let (last, rate) = last_and_rate(s);
                (v + last.max(0.0), r + rate)
            });
            let age = if rate > 0.0 && total > 0.0 {
                total / rate
            } else {
                f64::INFINITY
            };
            // Increments of 1 ± 0.4 per step from the group's start,
            // shared by the group.
            let first = (0..span.points)
                .find(|k| ((span.end_ms - span.at(*k)) as f64 / 1000.0) <= age)
                .unwrap_or(0);
            let floor = if age > history {
                1.0 - history / age
            } else {
                0.0
            };
            let mut rng = Rng::new(&key);
            let mut climbed = 0.0;
            let steps: Vec<f64> = (0..span.points)
                .map(|k| {
                    if k > first {
                        climbed += 1.0 + 0.4 * rng.signed();
                    }
                    climbed
                })
                .collect();
            let fraction = steps
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    if k < first || age.is_infinite() {
                        return if age.is_infinite() { 1.0 } else { 0.0 };
                    }
                    let share = if climbed > 0.0 { c / climbed } else { 1.0 };
                    floor + (1.0 - floor) * share
                })
                .collect();
            (key, Group { fraction })
        })
        .collect()
}

/// The last value seen and the rate it moved at (0 when it did not, or
/// was reset between the samples).
fn last_and_rate(s: &Observed) -> (f64, f64) {
    let (t0, v0) = s.samples[0];
    let (t1, v1) = s.samples[s.samples.len() - 1];
    let rate = if t1 > t0 && v1 > v0 {
        (v1 - v0) / (t1 - t0)
    } else {
        0.0
    };
    (v1, rate)
}

fn all_integers(s: &Observed) -> bool {
    s.samples.iter().all(|(_, v)| v.fract() == 0.0)
}

fn counter(s: &Observed, group: &Group) -> Vec<f64> {
    let (last, _) = last_and_rate(s);
    let last = last.max(0.0);
    let integers = all_integers(s);
    let points = group.fraction.len();
    group
        .fraction
        .iter()
        .enumerate()
        .map(|(k, f)| {
            if k + 1 == points {
                // Where it is now: the live scrapes continue from here.
                return last;
            }
            let v = last * f;
            if integers { v.floor() } else { v }
        })
        .collect()
}

fn gauge(s: &Observed, span: Span) -> Vec<f64> {
    let (t0, first) = s.samples[0];
    let (t1, last) = s.samples[s.samples.len() - 1];
    let (min, max) = s
        .samples
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    // A gauge that did not move (or holds NaN) stays as it is.
    if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) || !last.is_finite() {
        return vec![last; span.points];
    }
    // A timestamp moves with the clock: it is the clock's, back then.
    let slope = (last - first) / (t1 - t0).max(f64::EPSILON);
    if (0.5..2.0).contains(&slope) {
        return (0..span.points)
            .map(|k| last - (span.end_ms - span.at(k)) as f64 / 1000.0)
            .collect();
    }
    let mut amplitude = 3.0 * (max - min);
    if last != 0.0 {
        amplitude = amplitude.min(0.2 * last.abs());
    }
    let non_negative = min >= 0.0;
    let integers = all_integers(s);
    let mut rng = Rng::new(&format!("{:?}", s.labels));
    let mut x: f64 = 0.0;
    (0..span.points)
        .map(|k| {
            if k + 1 == span.points {
                return last;
            }
            // A bounded random walk around the value seen.
            x = 0.9 * x + 0.1 * rng.signed() * 3.0;
            let mut v = last + amplitude * x.clamp(-1.0, 1.0);
            if non_negative {
                v = v.max(0.0);
            }
            if integers { v.round() } else { v }
        })
        .collect()
}

/// `{a="1",b="2"}` without `__name__`, escaped as the text formats want.
fn exposition_labels(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// OpenMetrics numbers: `NaN`, `+Inf`, `-Inf`, else the shortest decimal.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// splitmix64, seeded by the text it is for: the same history every run.
struct Rng(u64);

impl Rng {
    fn new(seed: &str) -> Self {
        // FNV-1a
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h)
    }

    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn observed(pairs: &[(&str, &str)], samples: &[(f64, f64)]) -> Observed {
        Observed {
            labels: labels(pairs),
            samples: samples.to_vec(),
        }
    }

    const SPAN: Span = Span {
        end_ms: 100_000_000,
        step_ms: 30_000,
        points: 1_440,
    };

    /// Parses what write_openmetrics wrote: series text → values.
    fn parse(text: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
        let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut words = line.rsplitn(3, ' ');
            let t: f64 = words.next().unwrap().parse().unwrap();
            let v: f64 = words.next().unwrap().parse().unwrap();
            let series = words.next().unwrap().to_string();
            out.entry(series)
                .or_default()
                .push(((t * 1000.0).round() as i64, v));
        }
        out
    }

    #[test]
    fn the_dashboards_selectors_choose_the_series_and_records_come_in_layers() {
        let rules = records(&json!({"groups": [
            {"name": "a", "rules": [
                {"record": "job:up:sum", "expr": "sum by (job) (up{job=~\"node.*\"})"},
                {"record": "job:up:avg6h", "expr": "avg_over_time(job:up:sum[6h])", "labels": {"x": "1"}},
                {"alert": "Down", "expr": "up == 0"},
                {"record": "unused", "expr": "sum(prometheus_tsdb_head_series)"},
            ]},
        ]}));
        assert_eq!(rules.len(), 3);
        let reads = Reads::new(
            &[
                "rate(node_cpu_seconds_total{mode!=\"idle\"}[1m])".into(),
                "job:up:avg6h > 0".into(),
            ],
            &rules,
        );
        let layers: Vec<Vec<&str>> = reads
            .layers
            .iter()
            .map(|l| l.iter().map(|r| r.record.as_str()).collect())
            .collect();
        assert_eq!(layers, [vec!["job:up:sum"], vec!["job:up:avg6h"]]);
        let cpu = |mode: &str| {
            labels(&[
                ("__name__", "node_cpu_seconds_total"),
                ("mode", mode),
                ("cpu", "0"),
            ])
        };
        assert!(reads.wants(&cpu("user")));
        assert!(!reads.wants(&cpu("idle")));
        // A record's input is read; a record's output and ALERTS never raw.
        assert!(reads.wants(&labels(&[("__name__", "up"), ("job", "node-exporter")])));
        assert!(!reads.wants(&labels(&[("__name__", "up"), ("job", "alertmanager")])));
        assert!(!reads.wants(&labels(&[("__name__", "job:up:sum")])));
        assert!(!reads.wants(&labels(&[("__name__", "prometheus_tsdb_head_series")])));
        let file = rule_file(&reads.layers[1]);
        assert_eq!(
            file,
            json!({"groups": [{"name": "a", "rules": [
                {"record": "job:up:avg6h", "expr": "avg_over_time(job:up:sum[6h])", "labels": {"x": "1"}},
            ]}]})
        );
    }

    #[test]
    fn a_record_reading_itself_is_said_and_skipped() {
        let rules = records(&json!({"groups": [{"name": "g", "rules": [
            {"record": "loop", "expr": "loop offset 1m"},
        ]}]}));
        let reads = Reads::new(&["loop".into()], &rules);
        assert!(reads.layers.iter().all(Vec::is_empty), "{:?}", reads.layers);
        assert!(reads.notes[0].contains("loop"), "{:?}", reads.notes);
    }

    #[test]
    fn counters_keep_their_rate_back_to_their_start_and_histograms_stay_cumulative() {
        let meta: BTreeMap<String, String> = [
            ("node_cpu_seconds_total", "counter"),
            ("req_duration_seconds", "histogram"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let series = [
            // Old: 1e6 s since boot, moving 0.5/s.
            observed(
                &[("__name__", "node_cpu_seconds_total"), ("mode", "user")],
                &[(0.0, 1e6), (2.0, 1e6 + 1.0)],
            ),
            // Younger than the history: 1000 at 0.1/s, 10,000 s old.
            observed(
                &[("__name__", "node_cpu_seconds_total"), ("mode", "system")],
                &[(0.0, 999.8), (2.0, 1000.0)],
            ),
            // A histogram some 2 h old: buckets 2000 ≤ 6000 ≤ 8000 (= count),
            // 3.5 a second in all: 24,000 / 3.5 ≈ 6,857 s to count them.
            observed(
                &[("__name__", "req_duration_seconds_bucket"), ("le", "0.1")],
                &[(0.0, 1999.0), (2.0, 2000.0)],
            ),
            observed(
                &[("__name__", "req_duration_seconds_bucket"), ("le", "1")],
                &[(0.0, 5998.0), (2.0, 6000.0)],
            ),
            observed(
                &[("__name__", "req_duration_seconds_bucket"), ("le", "+Inf")],
                &[(0.0, 7998.0), (2.0, 8000.0)],
            ),
            observed(
                &[("__name__", "req_duration_seconds_count")],
                &[(0.0, 7998.0), (2.0, 8000.0)],
            ),
        ];
        let mut text = Vec::new();
        let written = write_openmetrics(&mut text, &series, &meta, SPAN).unwrap();
        assert_eq!(
            written,
            Written {
                series: 6,
                samples: 6 * 1_440
            }
        );
        let text = String::from_utf8(text).unwrap();
        assert!(text.ends_with("# EOF\n"));
        let parsed = parse(&text);
        let rate = |values: &[(i64, f64)], from: usize, to: usize| {
            (values[to].1 - values[from].1) / ((values[to].0 - values[from].0) as f64 / 1000.0)
        };
        let user = &parsed["node_cpu_seconds_total{mode=\"user\"}"];
        assert_eq!(user.len(), 1_440);
        assert_eq!(user.last().unwrap(), &(SPAN.end_ms, 1e6 + 1.0));
        assert_eq!(user[0].0, SPAN.end_ms - 1_439 * 30_000);
        // 0.5/s over the whole span, never decreasing.
        assert!(
            (rate(user, 0, 1_439) - 0.5).abs() < 0.001,
            "{}",
            rate(user, 0, 1_439)
        );
        assert!(user.windows(2).all(|w| w[1].1 >= w[0].1));
        // Zero until some 10,000 s ago, then about 0.1/s up to where it is.
        let system = &parsed["node_cpu_seconds_total{mode=\"system\"}"];
        let started = system.iter().position(|(_, v)| *v > 0.0).unwrap();
        let age = (SPAN.end_ms - system[started].0) as f64 / 1000.0;
        assert!((9_930.0..=10_000.0).contains(&age), "{age}");
        assert!(system[..started].iter().all(|(_, v)| *v == 0.0));
        assert!((rate(system, started, 1_439) - 0.1).abs() < 0.01);
        assert_eq!(system.last().unwrap().1, 1000.0);
        // The histogram: buckets cumulative at every point, _count the
        // +Inf bucket, integers stay integers.
        let b = |le: &str| &parsed[&format!("req_duration_seconds_bucket{{le=\"{le}\"}}")];
        let count = &parsed["req_duration_seconds_count"];
        assert_eq!(count.len(), 1_440);
        for (k, (_, n)) in count.iter().enumerate() {
            assert!(b("0.1")[k].1 <= b("1")[k].1 && b("1")[k].1 <= b("+Inf")[k].1);
            assert_eq!(b("+Inf")[k].1, *n);
            assert_eq!(n.fract(), 0.0);
        }
        assert_eq!(b("0.1")[0].1, 0.0, "younger than the history");
        assert_eq!(count.last().unwrap().1, 8000.0);
        // Each counter of the group climbs by its share: 8000 in 6,857 s.
        let started = count.iter().position(|(_, v)| *v > 0.0).unwrap();
        let age = (SPAN.end_ms - count[started].0) as f64 / 1000.0;
        assert!((6_790.0..=6_860.0).contains(&age), "{age}");
        assert!((rate(count, started, 1_439) - 8000.0 / 6857.0).abs() < 0.05);
    }

    #[test]
    fn gauges_stay_wobble_or_follow_the_clock() {
        let series = [
            observed(
                &[("__name__", "up"), ("job", "x")],
                &[(0.0, 1.0), (1.0, 1.0)],
            ),
            observed(
                &[("__name__", "node_memory_MemAvailable_bytes")],
                &[(0.0, 1000.0), (1.0, 1010.0)],
            ),
            observed(
                &[("__name__", "node_time_seconds")],
                &[(0.0, 5e4), (1.0, 5e4 + 1.0)],
            ),
        ];
        let mut text = Vec::new();
        write_openmetrics(&mut text, &series, &BTreeMap::new(), SPAN).unwrap();
        let parsed = parse(&String::from_utf8(text).unwrap());
        assert!(parsed["up{job=\"x\"}"].iter().all(|(_, v)| *v == 1.0));
        let memory = &parsed["node_memory_MemAvailable_bytes"];
        assert!(memory.iter().all(|(_, v)| (970.0..=1050.0).contains(v)));
        assert!(memory.iter().any(|(_, v)| *v != 1010.0), "it moves");
        assert_eq!(memory.last().unwrap().1, 1010.0);
        let clock = &parsed["node_time_seconds"];
        assert_eq!(clock[0].1, 5e4 + 1.0 - SPAN.seconds());
    }

    #[test]
    fn labels_are_escaped_and_numbers_are_openmetrics() {
        assert_eq!(
            exposition_labels(&labels(&[("__name__", "x"), ("a", "q\"\\\n")])),
            r#"{a="q\"\\\n"}"#
        );
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(1e-7), "0.0000001");
        assert_eq!(number(3.0), "3");
    }
}
