//! A fake Loki: Loki cannot run on these machines, so this answers the part
//! of Loki's HTTP API that telltale and Grafana use, with Loki's documented
//! shapes (https://grafana.com/docs/loki/latest/reference/loki-http-api/):
//! `GET /ready`, `POST /loki/api/v1/push` (JSON), `GET /loki/api/v1/query`,
//! `GET /loki/api/v1/query_range`, `GET /loki/api/v1/labels` and
//! `GET /loki/api/v1/label/<name>/values`. It stores lines in memory and
//! evaluates a subset of LogQL: stream selectors with `= != =~ !~`, line
//! filters `|= != |~ !~`, `count_over_time`/`rate`/`bytes_over_time` over a
//! range, wrapped in `sum|count|max|min|avg [by (…)]`. Anything else gets
//! Loki's 400 "parse error" answer, so a query it cannot evaluate is never
//! answered wrongly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone)]
struct Entry {
    labels: Labels,
    ts: i128,
    line: String,
}

#[derive(Default)]
pub struct Store {
    entries: Mutex<Vec<Entry>>,
    /// Namespaces whose lines are dropped on arrival (`--loki-drop-namespace`).
    dropped: BTreeSet<String>,
}

impl Store {
    /// A store that drops every line of `namespaces`.
    pub fn dropping(namespaces: Vec<String>) -> Self {
        Store {
            entries: Mutex::default(),
            dropped: namespaces.into_iter().collect(),
        }
    }

    /// Appends one line, as a log shipper's push would.
    pub fn push(&self, labels: Labels, ts: i128, line: String) {
        if labels
            .get("namespace")
            .is_some_and(|ns| self.dropped.contains(ns))
        {
            return;
        }
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Entry { labels, ts, line });
    }

    fn snapshot(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/ready", get(|| async { "ready\n" }))
        .route("/loki/api/v1/push", post(push))
        .route("/loki/api/v1/query", get(query))
        .route("/loki/api/v1/query_range", get(query_range))
        .route("/loki/api/v1/labels", get(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .with_state(store)
}

#[derive(Deserialize)]
struct PushBody {
    streams: Vec<PushStream>,
}

#[derive(Deserialize)]
struct PushStream {
    stream: Labels,
    values: Vec<Vec<Value>>,
}

async fn push(State(store): State<Arc<Store>>, body: Bytes) -> Response {
    let parsed: PushBody = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("error parsing push request: {e}")),
    };
    for stream in parsed.streams {
        for value in stream.values {
            let (Some(ts), Some(line)) = (
                value.first().and_then(Value::as_str),
                value.get(1).and_then(Value::as_str),
            ) else {
                return bad_request("each value must be [\"<unix ns>\", \"<line>\"]".into());
            };
            let Ok(ts) = ts.parse::<i128>() else {
                return bad_request(format!("invalid timestamp {ts}"));
            };
            store.push(stream.stream.clone(), ts, line.to_string());
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct QueryParams {
    query: String,
    time: Option<String>,
    limit: Option<usize>,
    direction: Option<String>,
}

#[derive(Deserialize)]
struct RangeParams {
    query: String,
    start: Option<String>,
    end: Option<String>,
    step: Option<String>,
    limit: Option<usize>,
    direction: Option<String>,
}

async fn query(State(store): State<Arc<Store>>, Query(p): Query<QueryParams>) -> Response {
    let parsed = match parse(&p.query) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let time = p
        .time
        .as_deref()
        .and_then(parse_time)
        .unwrap_or_else(now_nanos);
    let entries = store.snapshot();
    match parsed {
        Parsed::Log(log) => {
            let result = streams(
                &entries,
                &log,
                time - 3_600_000_000_000,
                time,
                p.limit,
                p.direction.as_deref(),
            );
            success("streams", result)
        }
        Parsed::Metric(metric) => {
            let samples = metric.evaluate(&entries, time);
            let result: Vec<Value> = samples
                .into_iter()
                .map(|(labels, v)| json!({"metric": labels, "value": [seconds(time), number(v)]}))
                .collect();
            success("vector", Value::Array(result))
        }
    }
}

async fn query_range(State(store): State<Arc<Store>>, Query(p): Query<RangeParams>) -> Response {
    let parsed = match parse(&p.query) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let end = p
        .end
        .as_deref()
        .and_then(parse_time)
        .unwrap_or_else(now_nanos);
    let start = p
        .start
        .as_deref()
        .and_then(parse_time)
        .unwrap_or(end - 3_600_000_000_000);
    let entries = store.snapshot();
    match parsed {
        Parsed::Log(log) => success(
            "streams",
            streams(&entries, &log, start, end, p.limit, p.direction.as_deref()),
        ),
        Parsed::Metric(metric) => {
            let step = p
                .step
                .as_deref()
                .and_then(parse_step)
                .unwrap_or_else(|| ((end - start) / 250).max(1_000_000_000));
            let mut series: BTreeMap<Labels, Vec<Value>> = BTreeMap::new();
            let mut t = start;
            while t <= end {
                for (labels, v) in metric.evaluate(&entries, t) {
                    series
                        .entry(labels)
                        .or_default()
                        .push(json!([seconds(t), number(v)]));
                }
                t += step;
            }
            let result: Vec<Value> = series
                .into_iter()
                .map(|(labels, values)| json!({"metric": labels, "values": values}))
                .collect();
            success("matrix", Value::Array(result))
        }
    }
}

async fn labels(State(store): State<Arc<Store>>) -> Response {
    let names: BTreeSet<String> = store
        .snapshot()
        .into_iter()
        .flat_map(|e| e.labels.into_keys())
        .collect();
    Json(json!({"status": "success", "data": names})).into_response()
}

async fn label_values(State(store): State<Arc<Store>>, Path(name): Path<String>) -> Response {
    let values: BTreeSet<String> = store
        .snapshot()
        .into_iter()
        .filter_map(|mut e| e.labels.remove(&name))
        .collect();
    Json(json!({"status": "success", "data": values})).into_response()
}

use axum::Json;

fn success(result_type: &str, result: Value) -> Response {
    Json(json!({"status": "success", "data": {"resultType": result_type, "result": result, "stats": {}}}))
        .into_response()
}

/// Loki answers bad queries with 400 and a plain-text message.
fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

fn seconds(ns: i128) -> f64 {
    ns as f64 / 1e9
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Loki accepts nanosecond integers, float seconds and RFC 3339.
fn parse_time(text: &str) -> Option<i128> {
    if let Ok(n) = text.parse::<i128>() {
        // A nanosecond timestamp has 19 digits today; seconds have 10.
        return Some(if n > 100_000_000_000_000 {
            n
        } else {
            n * 1_000_000_000
        });
    }
    if let Ok(f) = text.parse::<f64>() {
        return Some((f * 1e9) as i128);
    }
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
}

fn parse_step(text: &str) -> Option<i128> {
    if let Ok(f) = text.parse::<f64>() {
        return Some((f * 1e9) as i128);
    }
    humantime::parse_duration(text)
        .ok()
        .map(|d| d.as_nanos() as i128)
}

fn streams(
    entries: &[Entry],
    log: &LogQuery,
    start: i128,
    end: i128,
    limit: Option<usize>,
    direction: Option<&str>,
) -> Value {
    let mut matched: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.ts >= start && e.ts <= end && log.matches(e))
        .collect();
    let forward = direction == Some("forward");
    matched.sort_by_key(|e| e.ts);
    if !forward {
        matched.reverse();
    }
    matched.truncate(limit.unwrap_or(100));
    let mut by_stream: BTreeMap<&Labels, Vec<Value>> = BTreeMap::new();
    for e in matched {
        by_stream
            .entry(&e.labels)
            .or_default()
            .push(json!([e.ts.to_string(), e.line]));
    }
    Value::Array(
        by_stream
            .into_iter()
            .map(|(labels, values)| json!({"stream": labels, "values": values}))
            .collect(),
    )
}

// ---- LogQL (subset) ----

#[derive(Debug)]
enum Matcher {
    Eq(String, String),
    Ne(String, String),
    Re(String, Regex),
    NotRe(String, Regex),
}

#[derive(Debug)]
enum Filter {
    Contains(String),
    NotContains(String),
    Re(Regex),
    NotRe(Regex),
}

#[derive(Debug)]
pub struct LogQuery {
    matchers: Vec<Matcher>,
    filters: Vec<Filter>,
}

impl LogQuery {
    fn matches(&self, e: &Entry) -> bool {
        let label = |name: &str| e.labels.get(name).map(String::as_str).unwrap_or("");
        self.matchers.iter().all(|m| match m {
            Matcher::Eq(n, v) => label(n) == v,
            Matcher::Ne(n, v) => label(n) != v,
            Matcher::Re(n, r) => r.is_match(label(n)),
            Matcher::NotRe(n, r) => !r.is_match(label(n)),
        }) && self.filters.iter().all(|f| match f {
            Filter::Contains(s) => e.line.contains(s.as_str()),
            Filter::NotContains(s) => !e.line.contains(s.as_str()),
            Filter::Re(r) => r.is_match(&e.line),
            Filter::NotRe(r) => !r.is_match(&e.line),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum RangeFn {
    Count,
    Rate,
    Bytes,
}

#[derive(Debug, Clone, Copy)]
enum Agg {
    Sum,
    Count,
    Max,
    Min,
    Avg,
}

#[derive(Debug)]
pub struct MetricQuery {
    /// `topk(k, …)` (true) or `bottomk(k, …)` (false) around the rest.
    top: Option<(bool, usize)>,
    agg: Option<(Agg, Vec<String>)>,
    func: RangeFn,
    log: LogQuery,
    range: i128,
}

impl MetricQuery {
    fn evaluate(&self, entries: &[Entry], at: i128) -> Vec<(Labels, f64)> {
        let mut samples = self.aggregate(entries, at);
        if let Some((top, k)) = self.top {
            samples.sort_by(|a, b| {
                let order = a.1.total_cmp(&b.1);
                if top { order.reverse() } else { order }
            });
            samples.truncate(k);
        }
        samples
    }

    fn aggregate(&self, entries: &[Entry], at: i128) -> Vec<(Labels, f64)> {
        let mut per_stream: BTreeMap<&Labels, f64> = BTreeMap::new();
        for e in entries
            .iter()
            .filter(|e| e.ts > at - self.range && e.ts <= at && self.log.matches(e))
        {
            *per_stream.entry(&e.labels).or_default() += match self.func {
                RangeFn::Bytes => e.line.len() as f64,
                _ => 1.0,
            };
        }
        let seconds = self.range as f64 / 1e9;
        let inner = per_stream.into_iter().map(|(labels, v)| {
            let v = match self.func {
                RangeFn::Rate => v / seconds,
                _ => v,
            };
            (labels.clone(), v)
        });
        let Some((agg, by)) = &self.agg else {
            return inner.collect();
        };
        let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
        for (labels, v) in inner {
            let key: Labels = labels.into_iter().filter(|(k, _)| by.contains(k)).collect();
            groups.entry(key).or_default().push(v);
        }
        groups
            .into_iter()
            .map(|(labels, vs)| {
                let v = match agg {
                    Agg::Sum => vs.iter().sum(),
                    Agg::Count => vs.len() as f64,
                    Agg::Max => vs.iter().cloned().fold(f64::MIN, f64::max),
                    Agg::Min => vs.iter().cloned().fold(f64::MAX, f64::min),
                    Agg::Avg => vs.iter().sum::<f64>() / vs.len() as f64,
                };
                (labels, v)
            })
            .collect()
    }
}

#[derive(Debug)]
pub enum Parsed {
    Log(LogQuery),
    Metric(MetricQuery),
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{token}`")))
        }
    }
    fn ident(&mut self) -> Result<String, String> {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error("expected an identifier"));
        }
        self.pos += len;
        Ok(rest[..len].to_string())
    }
    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        if let Some(body) = rest.strip_prefix('`') {
            let end = body
                .find('`')
                .ok_or_else(|| self.error("unterminated string"))?;
            self.pos += end + 2;
            return Ok(body[..end].to_string());
        }
        let Some(body) = rest.strip_prefix('"') else {
            return Err(self.error("expected a string"));
        };
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 2;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, other)) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.error("unterminated string"))
    }
    fn error(&self, what: &str) -> String {
        format!(
            "parse error at line 1, col {}: {what} (telltale's fake Loki evaluates a subset of LogQL)",
            self.pos + 1
        )
    }
}

pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut lx = Lexer { text, pos: 0 };
    let parsed = if lx.text.trim_start().starts_with('{') {
        Parsed::Log(log_query(&mut lx)?)
    } else {
        Parsed::Metric(metric_query(&mut lx)?)
    };
    lx.skip_ws();
    if lx.pos != text.len() {
        return Err(lx.error("unexpected trailing input"));
    }
    Ok(parsed)
}

fn regex(pattern: &str, lx: &Lexer<'_>) -> Result<Regex, String> {
    // Loki anchors label matchers like Prometheus; line filters are not.
    Regex::new(pattern).map_err(|e| lx.error(&format!("invalid regex: {e}")))
}

fn log_query(lx: &mut Lexer<'_>) -> Result<LogQuery, String> {
    lx.expect("{")?;
    let mut matchers = Vec::new();
    loop {
        let name = lx.ident()?;
        let m = if lx.eat("=~") {
            Matcher::Re(name, regex(&format!("^(?:{})$", lx.string()?), lx)?)
        } else if lx.eat("!~") {
            Matcher::NotRe(name, regex(&format!("^(?:{})$", lx.string()?), lx)?)
        } else if lx.eat("!=") {
            Matcher::Ne(name, lx.string()?)
        } else if lx.eat("=") {
            Matcher::Eq(name, lx.string()?)
        } else {
            return Err(lx.error("expected a matcher operator"));
        };
        matchers.push(m);
        if lx.eat("}") {
            break;
        }
        lx.expect(",")?;
    }
    let mut filters = Vec::new();
    loop {
        let f = if lx.eat("|=") {
            Filter::Contains(lx.string()?)
        } else if lx.eat("!=") {
            Filter::NotContains(lx.string()?)
        } else if lx.eat("|~") {
            Filter::Re(regex(&lx.string()?, lx)?)
        } else if lx.eat("!~") {
            Filter::NotRe(regex(&lx.string()?, lx)?)
        } else {
            break;
        };
        filters.push(f);
    }
    Ok(LogQuery { matchers, filters })
}

fn by_clause(lx: &mut Lexer<'_>) -> Result<Option<Vec<String>>, String> {
    if !lx.eat("by") {
        return Ok(None);
    }
    lx.expect("(")?;
    let mut labels = Vec::new();
    if !lx.eat(")") {
        loop {
            labels.push(lx.ident()?);
            if lx.eat(")") {
                break;
            }
            lx.expect(",")?;
        }
    }
    Ok(Some(labels))
}

fn metric_query(lx: &mut Lexer<'_>) -> Result<MetricQuery, String> {
    let name = lx.ident()?;
    if name == "topk" || name == "bottomk" {
        lx.expect("(")?;
        lx.skip_ws();
        let rest = &lx.text[lx.pos..];
        let len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let k: usize = rest[..len]
            .parse()
            .map_err(|_| lx.error("expected the number of series"))?;
        lx.pos += len;
        lx.expect(",")?;
        let mut inner = metric_query(lx)?;
        lx.expect(")")?;
        inner.top = Some((name == "topk", k));
        return Ok(inner);
    }
    let agg = match name.as_str() {
        "sum" => Some(Agg::Sum),
        "count" => Some(Agg::Count),
        "max" => Some(Agg::Max),
        "min" => Some(Agg::Min),
        "avg" => Some(Agg::Avg),
        _ => None,
    };
    if let Some(agg) = agg {
        let before = by_clause(lx)?;
        lx.expect("(")?;
        let mut inner = range_query(lx, None)?;
        lx.expect(")")?;
        let after = by_clause(lx)?;
        inner.agg = Some((agg, before.or(after).unwrap_or_default()));
        return Ok(inner);
    }
    range_query(lx, Some(name))
}

fn range_query(lx: &mut Lexer<'_>, name: Option<String>) -> Result<MetricQuery, String> {
    let name = match name {
        Some(n) => n,
        None => lx.ident()?,
    };
    let func = match name.as_str() {
        "count_over_time" => RangeFn::Count,
        "rate" => RangeFn::Rate,
        "bytes_over_time" => RangeFn::Bytes,
        other => return Err(lx.error(&format!("unsupported function `{other}`"))),
    };
    lx.expect("(")?;
    let log = log_query(lx)?;
    lx.expect("[")?;
    lx.skip_ws();
    let rest = &lx.text[lx.pos..];
    let end = rest.find(']').ok_or_else(|| lx.error("expected `]`"))?;
    let range = humantime::parse_duration(rest[..end].trim())
        .map_err(|e| lx.error(&format!("invalid range: {e}")))?;
    lx.pos += end + 1;
    lx.expect(")")?;
    Ok(MetricQuery {
        top: None,
        agg: None,
        func,
        log,
        range: Duration::as_nanos(&range) as i128,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ns: &str, pod: &str, ts: i128, line: &str) -> Entry {
        Entry {
            labels: [("namespace", ns), ("pod", pod)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ts,
            line: line.into(),
        }
    }

    #[test]
    fn selectors_filters_and_counts_by_namespace() {
        let s = 1_000_000_000;
        let entries = vec![
            entry(
                "monitoring",
                "prometheus-0",
                100 * s,
                "level=info msg=ready",
            ),
            entry(
                "monitoring",
                "alertmanager-0",
                101 * s,
                "level=error msg=boom",
            ),
            entry("kube-system", "coredns-1", 102 * s, "ok"),
        ];
        let Parsed::Metric(q) =
            parse(r#"sum by (namespace) (count_over_time({namespace=~".+"}[10m]))"#).unwrap()
        else {
            panic!("a metric query")
        };
        let out = q.evaluate(&entries, 103 * s);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0["namespace"], "kube-system");
        assert_eq!(out[1].1, 2.0);

        let Parsed::Log(l) = parse(r#"{namespace="monitoring"} |= "error" != "ok""#).unwrap()
        else {
            panic!("a log query")
        };
        let hits: Vec<_> = entries.iter().filter(|e| l.matches(e)).collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].labels["pod"], "alertmanager-0");

        let Parsed::Metric(q) =
            parse(r#"sum by (namespace) (count_over_time({namespace=~"monitoring"} |~ "(?i)ERROR" [1m]))"#)
                .unwrap()
        else {
            panic!("a metric query")
        };
        assert_eq!(q.evaluate(&entries, 103 * s)[0].1, 1.0);

        let Parsed::Metric(q) =
            parse(r#"topk(1, sum by (namespace, pod) (count_over_time({namespace=~".+"}[1h])))"#)
                .unwrap()
        else {
            panic!("a metric query")
        };
        let top = q.evaluate(&entries, 103 * s);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].1, 1.0);
    }

    #[test]
    fn unsupported_logql_is_a_parse_error_not_a_wrong_answer() {
        for q in [
            r#"{namespace="a"} | json"#,
            r#"quantile_over_time(0.9, {a="b"} | unwrap x [1m])"#,
            r#"{namespace="a""#,
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.starts_with("parse error"), "{q}: {e}");
        }
    }
}
