//! `dashboards`: Grafana is healthy, its Prometheus and Loki datasources
//! pass their health checks, every dashboard of the bundle is there by uid,
//! and every panel's query returns data through Grafana (/api/ds/query),
//! the way a browser would ask. Panels without data are listed.
//!
//! Each dashboard is loaded as a browser loads it (seed 000: "dashboard
//! loads < 3 s with a 12 h range"): its template variables' queries first
//! (grafana_variables.rs), then every panel's queries over the last
//! 12 hours, each panel one /api/ds/query request with the points its width
//! gives and the interval they make, at most six requests at a time (a
//! browser's connections to one host); the time from the first request to
//! the last answer is the dashboard's load time, reported for each (with
//! how far back its data goes, and its slowest panel) and failed above
//! [`LOAD_LIMIT`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Http, encode};
use super::{Context, Finding, settle};
// The dashboard reading is the core's; re-exported for the local stack's fake Grafana.
pub use crate::dashboard::{
    datasource_type, interpolate, interpolate_variables, panels, variables,
};

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
    /// Grafana's settings of the datasource; `timeInterval` (the scrape
    /// interval) is the lowest interval the frontend asks for.
    #[serde(default, rename = "jsonData")]
    pub json_data: Value,
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
    schema: FrameSchema,
    #[serde(default)]
    data: FrameData,
}

#[derive(Default, Deserialize)]
struct FrameSchema {
    #[serde(default)]
    fields: Vec<Field>,
}

#[derive(Default, Deserialize)]
struct Field {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Default, Deserialize)]
struct FrameData {
    #[serde(default)]
    values: Vec<Vec<Value>>,
}

/// The datasource types whose panels verify queries; others (PostgreSQL) are
/// counted and named, not queried.
const QUERIED: [&str; 2] = ["prometheus", "loki"];
/// Panel requests in flight at once: a browser opens at most six HTTP/1.1
/// connections to one host (HTTP/2 would allow more: this is the slower case).
const BROWSER_CONNECTIONS: usize = 6;
/// Empty panels probed at once (after the load is timed).
const PARALLEL: usize = 8;
/// The range a dashboard is loaded over (seed 000), and its load limit.
const LOAD_RANGE: Duration = Duration::from_secs(12 * 3600);
pub const LOAD_LIMIT: Duration = Duration::from_secs(3);
/// A browser window's width in pixels: a panel `w` columns wide of 24 draws
/// `w / 24` of it, one point a pixel (Grafana's maxDataPoints).
const VIEWPORT_PX: u64 = 1920;
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

    // "Nothing here exports this metric" is only known once every expected
    // job has been scraped (twice, so that rate() panels can have data):
    // before that, every metric is missing.
    if let Some(ds) = datasources.iter().find(|d| d.kind == "prometheus")
        && let Err(waiting) = scraped_twice(ctx, http, url, ds).await
    {
        return Finding::fail(waiting, evidence);
    }

    // The jobs the bundle has Prometheus scrape: a panel that selects
    // another job (the site's own service, an SLO's) cannot be fed here.
    let jobs: Vec<String> = ctx
        .bundle
        .plan
        .expectations
        .targets
        .iter()
        .filter(|t| t.requires.is_none())
        .map(|t| t.job.clone())
        .collect();
    let mut silent = Vec::new();
    let mut unexported: Vec<String> = Vec::new();
    let mut not_proven = 0;
    let mut cut = false;
    // Each dashboard's load time, and those over the limit.
    let mut loads: Vec<(String, Duration, Option<Duration>)> = Vec::new();
    let mut slow: Vec<String> = Vec::new();
    for uid in &ctx.bundle.plan.expectations.dashboards {
        let api = format!("{url}/api/dashboards/uid/{}", encode(uid));
        let dashboard = match http.get_json::<DashboardEnvelope>(&api).await {
            Ok(d) => d.dashboard,
            Err(e) => {
                problems.push(format!("dashboard {uid} is missing: {e}"));
                continue;
            }
        };
        let report = query_panels(http, url, &dashboard, &datasources, &jobs).await;
        let seconds = report.load.as_secs_f64();
        loads.push((uid.clone(), report.load, report.covered));
        if report.load > LOAD_LIMIT {
            slow.push(format!("{uid} ({seconds:.2} s)"));
        }
        for failed in &report.variable_errors {
            problems.push(format!("dashboard {uid}: variable {failed}"));
        }
        let slowest = report
            .slowest
            .as_ref()
            .map(|(title, d)| format!("; slowest panel {title}: {:.2} s", d.as_secs_f64()))
            .unwrap_or_default();
        evidence.push(format!(
            "{uid}: loads in {seconds:.2} s over 12 h ({} variable quer{}, then {} panel request(s), {} queries, {} at a time; \
             {}{slowest}); \
             {} panel(s) with data, {} empty by their conditions, {} without, \
             {} not proven (nothing here exports their metrics), {} not queried{}",
            report.variables,
            if report.variables == 1 { "y" } else { "ies" },
            report.requests,
            report.queries,
            BROWSER_CONNECTIONS,
            covered(report.covered),
            report.with_data,
            report.empty_by_condition.len(),
            report.without.len(),
            report.unexported.len(),
            report.skipped.len(),
            if report.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", report.skipped.join(", "))
            }
        ));
        for title in report.empty_by_condition {
            evidence.push(format!(
                "  empty by its condition: {uid} / {title}: its selectors match series, its filters select nothing now"
            ));
        }
        for (title, metrics) in report.unexported {
            evidence.push(format!(
                "  skipped: {uid} / {title}: no series of {} anywhere: nothing here exports it",
                metrics.join(", ")
            ));
            for metric in metrics {
                if !unexported.contains(&metric) {
                    unexported.push(metric);
                }
            }
            not_proven += 1;
        }
        for (title, why) in report.without {
            cut |= why.contains(super::http::CUT_BY_DEADLINE);
            evidence.push(format!("  no data: {uid} / {title}: {why}"));
            silent.push(format!("{uid}/{title}"));
        }
    }

    if !slow.is_empty() {
        problems.push(format!(
            "{} dashboard(s) load slower than {} s over 12 h: {}",
            slow.len(),
            LOAD_LIMIT.as_secs(),
            slow.join(", ")
        ));
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
        let rest = if not_proven == 0 {
            String::new()
        } else {
            let mut listed: Vec<&str> =
                unexported.iter().take(LISTED).map(String::as_str).collect();
            if unexported.len() > LISTED {
                listed.push("…");
            }
            format!(
                "; skipped {not_proven} panel(s) whose metrics nothing here exports ({})",
                listed.join(", ")
            )
        };
        let slowest = loads
            .iter()
            .max_by_key(|(_, d, _)| *d)
            .map(|(uid, d, data)| {
                format!(
                    "; each loads in under {} s over 12 h (slowest {uid}: {:.2} s, {})",
                    LOAD_LIMIT.as_secs(),
                    d.as_secs_f64(),
                    covered(*data)
                )
            })
            .unwrap_or_default();
        Finding::pass(
            format!(
                "Grafana healthy; {} dashboard(s) present and every panel with exported metrics has data or is empty by its condition{slowest}{rest}",
                ctx.bundle.plan.expectations.dashboards.len()
            ),
            evidence,
        )
    } else {
        // A panel whose query (or probe) the deadline cut says nothing
        // about the panel: the summary says so, and `settle` then reports
        // the attempt before this one.
        if cut {
            problems.push(super::http::CUT_BY_DEADLINE.to_string());
        }
        Finding::fail(problems.join("; "), evidence)
    }
}

#[derive(Default)]
struct PanelsReport {
    with_data: usize,
    /// Empty now, though every selector finds series: their conditions
    /// (`> 0`, an error-line filter) select nothing yet.
    empty_by_condition: Vec<String>,
    /// Not proven here: a metric they need has no series at all, so nothing
    /// here exports it (a system outside the bundle, or a stand-in).
    unexported: Vec<(String, Vec<String>)>,
    without: Vec<(String, String)>,
    skipped: Vec<String>,
    /// From the first variable (or panel) request to the last answer.
    load: Duration,
    /// Template-variable queries run before the panels, and those that
    /// failed (`name: why`).
    variables: usize,
    variable_errors: Vec<String>,
    /// How far back the data the panels got goes (from now).
    covered: Option<Duration>,
    /// The panel whose request took longest, and how long.
    slowest: Option<(String, Duration)>,
    /// Panel requests (one a panel) and the queries in them.
    requests: usize,
    queries: usize,
}

/// One panel's request, as the browser sends it.
struct PanelQuery {
    title: String,
    body: Value,
    ds: Datasource,
    /// The queries with their template variables filled in (Grafana's
    /// macros left for its backend), for the probes of an empty panel.
    exprs: Vec<String>,
}

/// What the browser sends for each panel of `dashboard`: its queries with
/// the template variables at their current values, the points its width
/// gives (or its own maxDataPoints), the interval those points make over
/// the range (never below the panel's min interval or the datasource's
/// scrape interval), instant or range as each query says.
fn panel_queries(
    dashboard: &Value,
    datasources: &[Datasource],
    report: &mut PanelsReport,
) -> Vec<PanelQuery> {
    let vars = variables(dashboard);
    let mut out = Vec::new();
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
        let width = panel["gridPos"]["w"].as_u64().unwrap_or(24).clamp(1, 24);
        let max_data_points = panel["maxDataPoints"]
            .as_u64()
            .unwrap_or(VIEWPORT_PX * width / 24);
        let min_interval = panel["interval"].as_str().unwrap_or_default();
        let low_limit = super::grafana_time::parse_interval(min_interval).or_else(|| {
            ds.json_data["timeInterval"]
                .as_str()
                .and_then(super::grafana_time::parse_interval)
        });
        let interval =
            super::grafana_time::frontend_interval(LOAD_RANGE, max_data_points, low_limit);
        let body: Vec<Value> = targets
            .iter()
            .filter(|t| t["hide"] != json!(true))
            .filter_map(|t| {
                let expr = interpolate_variables(t["expr"].as_str()?, &vars);
                let instant = t["instant"] == json!(true) && t["range"] != json!(true);
                Some(json!({
                    "refId": t["refId"].as_str().unwrap_or("A"),
                    "datasource": {"uid": ds.uid, "type": ds.kind},
                    "expr": expr,
                    "range": !instant,
                    "instant": instant,
                    "interval": t["interval"].as_str().filter(|i| !i.is_empty()).unwrap_or(min_interval),
                    "intervalFactor": t["intervalFactor"].as_u64().unwrap_or(1),
                    "intervalMs": interval.as_millis() as u64,
                    "maxDataPoints": max_data_points,
                    "format": t["format"].as_str().unwrap_or("time_series"),
                }))
            })
            .collect();
        if body.is_empty() {
            continue;
        }
        let exprs: Vec<String> = body
            .iter()
            .filter_map(|q| q["expr"].as_str().map(|e| interpolate(e, &vars)))
            .collect();
        out.push(PanelQuery {
            title,
            body: json!({"queries": body, "from": "now-12h", "to": "now"}),
            ds: ds.clone(),
            exprs,
        });
    }
    out
}

async fn query_panels(
    http: &Http,
    url: &str,
    dashboard: &Value,
    datasources: &[Datasource],
    jobs: &[String],
) -> PanelsReport {
    let mut report = PanelsReport::default();
    let queries = panel_queries(dashboard, datasources, &mut report);
    report.requests = queries.len();
    report.queries = queries
        .iter()
        .map(|q| q.body["queries"].as_array().map_or(0, Vec::len))
        .sum();
    let api = format!("{url}/api/ds/query");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (start, end) = (
        (now - LOAD_RANGE).as_secs() as i64,
        now.as_secs_f64().ceil() as i64,
    );
    let variables = super::grafana_variables::requests(dashboard, datasources, start, end);
    report.variables = variables.requests.len();
    report
        .skipped
        .extend(variables.skipped.iter().map(|v| format!("variable {v}")));
    // The load, timed: the template variables first, level by level (a
    // variable that reads another waits for it), then every panel at once,
    // as many requests in flight as a browser keeps; each answer is kept
    // for the verdict below.
    let started = Instant::now();
    for level in super::grafana_variables::by_level(variables.requests) {
        let failed: Vec<String> = futures::stream::iter(level.into_iter().map(|v| async move {
            let target = format!("{url}{}", v.path);
            match http.get_for_json::<Value>(&target).await {
                Ok((200, body)) if body["status"] == "success" => None,
                Ok((status, body)) => Some(format!(
                    "{}: {status} {}",
                    v.name,
                    super::http::cap(body["error"].as_str().unwrap_or_default(), 200)
                )),
                Err(e) => Some(format!("{}: {e}", v.name)),
            }
        }))
        .buffer_unordered(BROWSER_CONNECTIONS)
        .filter_map(|f| async move { f })
        .collect()
        .await;
        report.variable_errors.extend(failed);
    }
    let answers: Vec<(PanelQuery, Result<QueryResponse, String>, Duration)> =
        futures::stream::iter(queries.into_iter().map(|q| {
            let api = api.clone();
            async move {
                let asked = Instant::now();
                let answer = http
                    .post_for_json::<QueryResponse>(&api, &q.body)
                    .await
                    .map(|(_, r)| r)
                    .map_err(|e| e.to_string());
                (q, answer, asked.elapsed())
            }
        }))
        .buffer_unordered(BROWSER_CONNECTIONS)
        .collect()
        .await;
    report.load = started.elapsed();
    report.slowest = answers
        .iter()
        .max_by_key(|(_, _, took)| *took)
        .map(|(q, _, took)| (q.title.clone(), *took));
    let earliest = answers
        .iter()
        .filter_map(|(_, a, _)| a.as_ref().ok())
        .flat_map(|r| r.results.values())
        .filter_map(earliest_point)
        .min();
    report.covered =
        earliest.map(|ms| Duration::from_millis((now.as_millis() as i64 - ms).max(0) as u64));

    // Then why the empty ones are empty (not timed: no browser asks that).
    let mut verdicts = futures::stream::iter(answers.into_iter().map(|(q, answer, _)| {
        let api = api.clone();
        async move {
            let verdict = match answer {
                Ok(response) => {
                    let errors: Vec<String> = response
                        .results
                        .values()
                        .filter_map(|r| r.error.clone())
                        .collect();
                    if !errors.is_empty() {
                        Err(errors.join("; "))
                    } else if has_data(response.results.values())
                        || recheck(http, &api, &q.body).await
                    {
                        Ok(None)
                    } else {
                        Ok(Some(explain_empty(http, &api, &q.ds, &q.exprs, jobs).await))
                    }
                }
                Err(e) => Err(e),
            };
            (q.title, verdict)
        }
    }))
    .buffered(PARALLEL);
    while let Some((title, answer)) = verdicts.next().await {
        match answer {
            Ok(None) => report.with_data += 1,
            Ok(Some(Empty::ByCondition)) => report.empty_by_condition.push(title),
            Ok(Some(Empty::Unexported(metrics))) => report.unexported.push((title, metrics)),
            Ok(Some(Empty::Unmatched(why))) => report.without.push((title, why)),
            Err(why) => report.without.push((title, why)),
        }
    }
    report
}

/// A step fine enough to see the last seconds: Grafana aligns a range to
/// its step, so on a stack minutes old a coarse step can end before the
/// first samples. The probes ask with it.
const FINE_MS: u64 = 1_000;
const FINE_POINTS: u64 = 3_600;

/// An empty panel asked again as instant queries at this moment (Grafana
/// evaluates an instant query at the end of the range, unaligned): whether
/// it has data after all, on a stack younger than the panel's step.
async fn recheck(http: &Http, api: &str, body: &Value) -> bool {
    let mut body = body.clone();
    body["from"] = json!("now-1h");
    for q in body["queries"].as_array_mut().into_iter().flatten() {
        q["intervalMs"] = json!(FINE_MS);
        q["maxDataPoints"] = json!(FINE_POINTS);
        q["interval"] = json!("");
        q["instant"] = json!(true);
        q["range"] = json!(false);
    }
    match http.post_for_json::<QueryResponse>(api, &body).await {
        Ok((_, r)) => has_data(r.results.values()),
        Err(_) => false,
    }
}

/// Every expected job of plan.json (but those of systems outside the
/// bundle) has an `up` series with at least two samples.
async fn scraped_twice(
    ctx: &Context<'_>,
    http: &Http,
    url: &str,
    ds: &Datasource,
) -> Result<(), String> {
    let expected: Vec<&str> = ctx
        .bundle
        .plan
        .expectations
        .targets
        .iter()
        .filter(|t| t.requires.is_none())
        .map(|t| t.job.as_str())
        .collect();
    if expected.is_empty() {
        return Ok(());
    }
    let body = json!({
        "queries": [{
            "refId": "A",
            "datasource": {"uid": ds.uid, "type": ds.kind},
            "expr": "count by (job) (count_over_time(up[10m]) >= 2)",
            // At `to` itself: a range query's steps are aligned down to
            // the step, and could end before a fresh stack's second scrape.
            "range": false,
            "instant": true,
            "intervalMs": 15000,
            "maxDataPoints": 4,
        }],
        "from": "now-1m",
        "to": "now",
    });
    let response = http
        .post_for_json::<QueryResponse>(&format!("{url}/api/ds/query"), &body)
        .await
        .map_err(|e| format!("cannot ask Prometheus through Grafana which jobs were scraped: {e}"))?
        .1;
    let scraped: Vec<&str> = response
        .results
        .values()
        .flat_map(|r| &r.frames)
        .filter(|f| f.data.values.iter().skip(1).any(|v| !v.is_empty()))
        .flat_map(|f| &f.schema.fields)
        .filter_map(|f| f.labels.as_ref()?.get("job").map(String::as_str))
        .collect();
    let waiting: Vec<&str> = expected
        .into_iter()
        .filter(|job| !scraped.contains(job))
        .collect();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "waiting for Prometheus to scrape job(s) {} twice: until then a panel's missing metric proves nothing",
            waiting.join(", ")
        ))
    }
}

/// The time (epoch ms) of the earliest non-null value in the answer.
fn earliest_point(response: &DataResponse) -> Option<i64> {
    response
        .frames
        .iter()
        .filter_map(|f| {
            let times = f.data.values.first()?;
            times
                .iter()
                .enumerate()
                .find(|(i, _)| {
                    f.data
                        .values
                        .iter()
                        .skip(1)
                        .any(|v| v.get(*i).is_some_and(|x| !x.is_null()))
                })
                .and_then(|(_, t)| t.as_i64())
        })
        .min()
}

/// "data over the last 11.9 h", "… 4 min": how far back a dashboard's
/// data goes, so a load time over 12 h says over how much data it was
/// measured.
fn covered(span: Option<Duration>) -> String {
    match span {
        None => "no data".into(),
        Some(d) if d >= Duration::from_secs(3600) => {
            format!("data over the last {:.1} h", d.as_secs_f64() / 3600.0)
        }
        Some(d) if d >= Duration::from_secs(60) => {
            format!("data over the last {} min", d.as_secs() / 60)
        }
        Some(d) => format!("data over the last {} s", d.as_secs()),
    }
}

fn has_data<'a>(results: impl IntoIterator<Item = &'a DataResponse>) -> bool {
    results.into_iter().any(|r| {
        r.frames
            .iter()
            .any(|f| f.data.values.iter().skip(1).any(|v| !v.is_empty()))
    })
}

/// Why a panel's queries returned nothing.
#[derive(Debug, PartialEq)]
enum Empty {
    /// Every metric it reads has series and every one of its selectors
    /// matches some: what is empty is its condition (no restarts, no error
    /// lines), which is a healthy answer.
    ByCondition,
    /// These metrics have no series at all: nothing here exports them.
    Unexported(Vec<String>),
    /// Its data is missing though its metrics exist (or its stream
    /// selectors have no lines): broken. Says which selectors.
    Unmatched(String),
}

/// Asks the same datasource, through Grafana, what the panel's selectors
/// find over the same hour: each selector as written, and each metric name
/// alone. One request per empty panel.
async fn explain_empty(
    http: &Http,
    api: &str,
    ds: &Datasource,
    exprs: &[String],
    jobs: &[String],
) -> Empty {
    let probes = match ds.kind.as_str() {
        "prometheus" => prometheus_probes(exprs),
        "loki" => loki_probes(exprs),
        _ => Ok(Probes::default()),
    };
    let probes = match probes {
        Ok(p) => p,
        Err(e) => return Empty::Unmatched(format!("empty result; {e}")),
    };
    if probes.selectors.is_empty() {
        return Empty::Unmatched("empty result".into());
    }
    let mut queries = Vec::new();
    for (i, (_, probe)) in probes.selectors.iter().enumerate() {
        queries.push((format!("s{i}"), probe.clone()));
    }
    for (i, (_, probe)) in probes.metrics.iter().enumerate() {
        queries.push((format!("m{i}"), probe.clone()));
    }
    let body = json!({
        "queries": queries.iter().map(|(ref_id, expr)| json!({
            "refId": ref_id,
            "datasource": {"uid": ds.uid, "type": ds.kind},
            "expr": expr,
            "range": true,
            "instant": false,
            "intervalMs": FINE_MS,
            "maxDataPoints": FINE_POINTS,
        })).collect::<Vec<_>>(),
        "from": "now-1h",
        "to": "now",
    });
    let response = match http.post_for_json::<QueryResponse>(api, &body).await {
        Ok((_, r)) => r,
        Err(e) => {
            return Empty::Unmatched(format!("empty result; probing its selectors failed: {e}"));
        }
    };
    let found = |ref_id: &str| {
        response
            .results
            .get(ref_id)
            .is_some_and(|r| has_data(std::iter::once(r)))
    };
    let unexported: Vec<String> = probes
        .metrics
        .iter()
        .enumerate()
        .filter(|(i, _)| !found(&format!("m{i}")))
        .map(|(_, (name, _))| name.clone())
        .collect();
    if !unexported.is_empty() {
        return Empty::Unexported(unexported);
    }
    // Every selector must find series: one that finds none while its
    // metric exists is a wrong label (or no such event yet), not a filter.
    let unmatched: Vec<&str> = probes
        .selectors
        .iter()
        .enumerate()
        .filter(|(i, _)| !found(&format!("s{i}")))
        .map(|(_, (s, _))| s.as_str())
        .collect();
    if unmatched.is_empty() {
        return Empty::ByCondition;
    }
    // Selectors that name a job the bundle does not scrape (the site's own
    // service, e.g. an SLO's `job="api"`) cannot match here: not proven,
    // said so, rather than failed.
    let outside: Vec<String> = unmatched
        .iter()
        .filter_map(|s| selected_job(s).filter(|job| !jobs.iter().any(|j| j == job)))
        .map(|job| format!("job {job} (not scraped by the bundle)"))
        .collect();
    if outside.len() == unmatched.len() {
        let mut outside = outside;
        outside.dedup();
        return Empty::Unexported(outside);
    }
    let selectors = unmatched;
    Empty::Unmatched(format!(
        "empty result; {} match nothing in the last hour",
        super::http::cap(&selectors.join(", "), 300)
    ))
}

/// The job a probe selector (`{__name__="up",job="api"}`) pins by equality.
fn selected_job(selector: &str) -> Option<String> {
    let at = selector.find("job=\"")? + "job=\"".len();
    // Not `job=~`, and not another label ending in `job`.
    let before = selector[..at - "job=\"".len()].chars().last();
    if !matches!(before, Some('{') | Some(',')) {
        return None;
    }
    let rest = &selector[at..];
    Some(rest[..rest.find('"')?].to_string())
}

/// What to ask about an empty panel: `(selector, probe query)` and
/// `(metric name, probe query)`.
#[derive(Debug, Default)]
struct Probes {
    selectors: Vec<(String, String)>,
    metrics: Vec<(String, String)>,
}

/// Every vector selector of the panel's PromQL (offset and `@` dropped, as
/// the probe looks at the same hour), and every metric name it selects.
fn prometheus_probes(exprs: &[String]) -> Result<Probes, String> {
    use promql_parser::label::{MatchOp, Matchers};
    let mut out = Probes::default();
    for expr in exprs {
        let parsed = promql_parser::parser::parse(expr)
            .map_err(|e| format!("its query does not parse: {e}"))?;
        for vs in crate::render::metrics::vector_selectors(&parsed) {
            let mut matchers = vs.matchers.matchers.clone();
            if let Some(name) = &vs.name {
                matchers.retain(|m| m.name != "__name__");
                matchers.insert(
                    0,
                    promql_parser::label::Matcher::new(MatchOp::Equal, "__name__", name),
                );
            }
            let selector = format!("{{{}}}", Matchers::new(matchers.clone()));
            let names: Vec<_> = matchers
                .iter()
                .filter(|m| m.name == "__name__")
                .cloned()
                .collect();
            if !out.selectors.iter().any(|(s, _)| *s == selector) {
                out.selectors
                    .push((selector.clone(), format!("group({selector})")));
            }
            if names.is_empty() {
                continue;
            }
            let metric = match (&vs.name, names.as_slice()) {
                (Some(name), _) => name.clone(),
                (None, [one]) => one.value.clone(),
                _ => format!("{{{}}}", Matchers::new(names.clone())),
            };
            if !out.metrics.iter().any(|(m, _)| *m == metric) {
                let probe = format!("group({{{}}})", Matchers::new(names));
                out.metrics.push((metric, probe));
            }
        }
    }
    Ok(out)
}

/// Every stream selector (`{…}` outside quotes) of the panel's LogQL: an
/// empty panel whose streams have lines is empty by its line filter.
fn loki_probes(exprs: &[String]) -> Result<Probes, String> {
    let mut out = Probes::default();
    for expr in exprs {
        for selector in stream_selectors(expr) {
            if !out.selectors.iter().any(|(s, _)| *s == selector) {
                let probe = format!("sum(count_over_time({selector}[1h]))");
                out.selectors.push((selector, probe));
            }
        }
    }
    Ok(out)
}

/// The `{…}` groups of a LogQL query, skipping quoted strings.
fn stream_selectors(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in expr.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q == '"' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '`' => quote = Some(c),
            '{' if start.is_none() => start = Some(i),
            '}' => {
                if let Some(s) = start.take() {
                    out.push(expr[s..=i].to_string());
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_panel_is_probed_by_each_selector_and_each_metric() {
        let probes = prometheus_probes(&[
            r#"1 - avg by (nodename) (rate(node_cpu_seconds_total{mode="idle"}[1m] offset 5m) * on (instance) group_left (nodename) node_uname_info)"#.into(),
            r#"sum(rate({__name__=~"a_total|b_total", code!~"2.."}[1m]))"#.into(),
            "vector(1)".into(),
        ])
        .unwrap();
        let selectors: Vec<&str> = probes.selectors.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            selectors,
            [
                r#"{__name__="node_cpu_seconds_total",mode="idle"}"#,
                r#"{__name__="node_uname_info"}"#,
                r#"{__name__=~"a_total|b_total",code!~"2.."}"#,
            ]
        );
        let metrics: Vec<(&str, &str)> = probes
            .metrics
            .iter()
            .map(|(m, p)| (m.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            metrics,
            [
                (
                    "node_cpu_seconds_total",
                    r#"group({__name__="node_cpu_seconds_total"})"#
                ),
                ("node_uname_info", r#"group({__name__="node_uname_info"})"#),
                ("a_total|b_total", r#"group({__name__=~"a_total|b_total"})"#),
            ]
        );
        // Every probe is PromQL Prometheus accepts.
        for (_, probe) in probes.selectors.iter().chain(&probes.metrics) {
            promql_parser::parser::parse(probe).unwrap_or_else(|e| panic!("{probe}: {e}"));
        }
    }

    #[test]
    fn a_selected_job_is_read_from_an_equality_matcher_only() {
        assert_eq!(
            selected_job(r#"{__name__="up",job="api"}"#).as_deref(),
            Some("api")
        );
        assert_eq!(selected_job(r#"{__name__="up",job=~"api|x"}"#), None);
        assert_eq!(selected_job(r#"{__name__="up",cronjob="x"}"#), None);
    }

    #[test]
    fn stream_selectors_skip_quoted_braces() {
        assert_eq!(
            stream_selectors(
                r#"sum by (namespace) (count_over_time({namespace=~".+", app="x"} |~ "(?i){error}" [1m]))"#
            ),
            [r#"{namespace=~".+", app="x"}"#]
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
