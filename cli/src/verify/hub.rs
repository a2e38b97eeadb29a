//! The fleet verify seen from the hub: what every spoke sends arrives in the
//! central stores, labelled with its cluster.
//!
//! - `series`: the central Prometheus (or Mimir, anything with Prometheus'
//!   query API) holds each spoke's `up` series with its `cluster` label, and
//!   its newest sample is at most [`MAX_LAG`] old; a spoke with none is
//!   missing, one with only older samples is stale.
//! - `logs`: a marker line per spoke comes back from the central Loki by
//!   `{cluster="…"} |= "…"`. Where the spoke's cluster answers (through its
//!   context and pin), a pod there writes the marker and the spoke's own
//!   collector carries it, which proves that path; otherwise the marker is
//!   pushed to the central Loki from here, labelled as the spoke's lines
//!   are, and the evidence says the path is not proven. The lines each
//!   spoke sent in the last 10 minutes are evidence too.
//! - `rules`: the hub's bundle's rule groups (the fleet-wide rules) are
//!   loaded on the central Prometheus and evaluate without error.
//! - `alerts`: a synthetic alert per spoke, carrying its `cluster`, reaches
//!   every receiver of the central Alertmanager: the single-cluster
//!   `notifications` proof, once per spoke.
//!
//! A failure names the spokes it concerns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::http::encode;
use super::{COULD_NOT_RUN, Context, Finding, Status, settle};
use crate::cluster::logmarker;

/// How old a spoke's newest `up` sample in the central store may be, in
/// seconds: the remote-write check's lag bound.
pub const MAX_LAG: f64 = super::remote_write::MAX_LAG;

/// The checks made from the hub (`--hub-checks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HubCheck {
    Series,
    Logs,
    Rules,
    Alerts,
}

impl HubCheck {
    pub const ALL: [HubCheck; 4] = [
        HubCheck::Series,
        HubCheck::Logs,
        HubCheck::Rules,
        HubCheck::Alerts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HubCheck::Series => "series",
            HubCheck::Logs => "logs",
            HubCheck::Rules => "rules",
            HubCheck::Alerts => "alerts",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HubCheckResult {
    pub id: HubCheck,
    pub status: Status,
    pub duration_ms: u128,
    pub summary: String,
    pub evidence: Vec<String>,
    /// The spokes this check failed for (empty when it passed, or when the
    /// failure is the hub's own, as a rule that does not evaluate).
    pub spokes: Vec<String>,
}

/// The hub's part of the fleet report.
#[derive(Debug, Clone, Serialize)]
pub struct HubReport {
    pub cluster: String,
    pub ok: bool,
    /// 0, 1 when a check failed, 3 when none could run.
    pub exit_code: i32,
    pub duration_ms: u128,
    pub spokes: Vec<String>,
    pub checks: Vec<HubCheckResult>,
}

impl HubReport {
    /// One line: the counts, and each failed check with its spokes.
    pub fn summary(&self) -> String {
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        let mut line = format!(
            "{} pass, {} fail, {} skip",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip)
        );
        let failed = self.failures();
        if !failed.is_empty() {
            line.push_str(&format!(" ({failed})"));
        }
        line
    }

    /// `series: eu-3, alerts: eu-2, eu-3`.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| {
                if c.spokes.is_empty() {
                    c.id.name().to_string()
                } else {
                    format!("{}: {}", c.id.name(), c.spokes.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A spoke: its name (its `cluster` label), and its cluster with the
/// stack's namespace when it answered, or why it did not.
pub struct Spoke {
    pub name: String,
    /// The tenants its bundle sends under (see [`tenants_of`]); its marker
    /// is pushed under the first.
    pub tenants: BTreeSet<String>,
    /// None when no check needs the cluster.
    pub cluster: Option<Result<(crate::cluster::Kube, String), String>>,
}

/// A finding and the spokes it failed for.
struct Outcome {
    finding: Finding,
    spokes: Vec<String>,
}

impl From<Finding> for Outcome {
    fn from(finding: Finding) -> Outcome {
        Outcome {
            finding,
            spokes: Vec::new(),
        }
    }
}

/// A hub endpoint, or the skip that says which key would give it.
fn need<'a>(url: &'a Option<String>, what: &str, key: &str) -> Result<&'a str, Finding> {
    url.as_deref()
        .map(|u| u.trim_end_matches('/'))
        .ok_or_else(|| {
            Finding::skip(format!(
                "{COULD_NOT_RUN}: no endpoint for the hub's {what} (set spec.hub.endpoints.{key}, or the hub cluster's endpoints.{key})"
            ))
        })
}

/// A check that has not answered this long after the deadline is stopped.
const GRACE: Duration = Duration::from_secs(1);

/// Runs the selected hub checks concurrently, for `spokes`, against the hub
/// `ctx` (its bundle, the central endpoints, no cluster).
pub async fn run(
    ctx: &Context<'_>,
    cluster: &str,
    spokes: &[Spoke],
    checks: &[HubCheck],
) -> HubReport {
    let started = Instant::now();
    let names: Vec<String> = spokes.iter().map(|s| s.name.clone()).collect();
    let names = &names;
    let mut secrets = ctx.http.secrets();
    secrets.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let secrets = &secrets;
    let results = futures::future::join_all(checks.iter().map(|id| async move {
        let started = Instant::now();
        let outcome =
            tokio::time::timeout_at(ctx.deadline + GRACE, run_check(*id, ctx, spokes, names))
                .await
                .unwrap_or_else(|_| {
                    Finding::fail(
                        format!(
                            "did not finish within --timeout {}",
                            humantime::format_duration(ctx.timeout)
                        ),
                        vec![],
                    )
                    .into()
                });
        let clean = |text: &str| super::http::cap(&super::http::redact(text, secrets), 2000);
        HubCheckResult {
            id: *id,
            status: outcome.finding.status,
            duration_ms: started.elapsed().as_millis(),
            summary: clean(&outcome.finding.summary),
            evidence: outcome.finding.evidence.iter().map(|e| clean(e)).collect(),
            spokes: outcome.spokes,
        }
    }))
    .await;
    let failed = results.iter().any(|c| c.status == Status::Fail);
    let nothing = !results.is_empty()
        && results
            .iter()
            .all(|c| c.status == Status::Skip && c.summary.starts_with(COULD_NOT_RUN));
    let exit_code = if failed {
        1
    } else if nothing {
        3
    } else {
        0
    };
    HubReport {
        cluster: cluster.to_string(),
        ok: exit_code == 0,
        exit_code,
        duration_ms: started.elapsed().as_millis(),
        spokes: names.clone(),
        checks: results,
    }
}

async fn run_check(id: HubCheck, ctx: &Context<'_>, spokes: &[Spoke], names: &[String]) -> Outcome {
    if spokes.is_empty() {
        return Finding::skip("no spoke selected: nothing sends to the hub").into();
    }
    let e = &ctx.endpoints;
    let url = match id {
        HubCheck::Series | HubCheck::Rules => need(&e.prometheus, "Prometheus", "prometheus"),
        HubCheck::Logs => need(&e.loki, "Loki", "loki"),
        HubCheck::Alerts => need(&e.alertmanager, "Alertmanager", "alertmanager"),
    };
    let url = match url {
        Ok(u) => u,
        Err(skip) => return skip.into(),
    };
    match id {
        HubCheck::Series => series(ctx, url, names).await,
        HubCheck::Logs => logs(ctx, url, spokes, names).await,
        HubCheck::Rules => super::prometheus::rules(ctx, url).await.into(),
        HubCheck::Alerts => alerts(ctx, url, names).await,
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct Vector {
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// A matcher for the spokes' `cluster` labels. Cluster names are DNS
/// labels (`[a-z0-9-]`), so none needs escaping in a regular expression.
fn cluster_matcher(spokes: &[String]) -> String {
    format!("cluster=~\"{}\"", spokes.join("|"))
}

/// By `cluster`: each series' value, and the query's evaluation time.
async fn by_cluster(
    ctx: &Context<'_>,
    url: &str,
    expr: &str,
) -> Result<(BTreeMap<String, f64>, f64), String> {
    let api = format!("{url}/api/v1/query?query={}", encode(expr));
    let answer: Envelope<Vector> = ctx
        .http
        .get_json(&api)
        .await
        .map_err(|e| format!("the central Prometheus did not answer `{expr}`: {e}"))?;
    let mut at = 0.0;
    let mut out = BTreeMap::new();
    for s in answer.data.result {
        at = s.value.0;
        if let (Some(cluster), Ok(v)) = (s.metric.get("cluster"), s.value.1.parse::<f64>()) {
            out.insert(cluster.clone(), v);
        }
    }
    Ok((out, at))
}

/// What the central store holds of one spoke: its `up` series, how many
/// are 1, and how old its newest sample is.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrived {
    pub series: f64,
    pub up: f64,
    pub age: f64,
}

/// Why a spoke's series are not in the central store as they should be.
pub fn series_problem(spoke: &str, arrived: Option<&Arrived>) -> Option<String> {
    match arrived {
        None => Some(format!(
            "{spoke}: no `up` series with cluster=\"{spoke}\" in the central store (is its remote write sending, to this store?)"
        )),
        Some(a) if a.age > MAX_LAG => Some(format!(
            "{spoke}: stale, its newest `up` sample is {:.0}s old (more than {MAX_LAG:.0}s)",
            a.age
        )),
        Some(_) => None,
    }
}

async fn series(ctx: &Context<'_>, url: &str, spokes: &[String]) -> Outcome {
    let sel = cluster_matcher(spokes);
    let failing: Mutex<Vec<String>> = Mutex::default();
    let finding = settle(ctx.deadline, || async {
        let count = by_cluster(ctx, url, &format!("count by (cluster) (up{{{sel}}})")).await;
        let up = by_cluster(ctx, url, &format!("sum by (cluster) (up{{{sel}}})")).await;
        let newest = by_cluster(
            ctx,
            url,
            &format!("max by (cluster) (timestamp(up{{{sel}}}))"),
        )
        .await;
        let ((count, _), (up, _), (newest, at)) = match (count, up, newest) {
            (Ok(c), Ok(u), Ok(n)) => (c, u, n),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                if let Ok(mut f) = failing.lock() {
                    *f = spokes.to_vec();
                }
                return Finding::fail(e, vec![]);
            }
        };
        let mut evidence = Vec::new();
        let mut problems = Vec::new();
        let mut failed = Vec::new();
        for spoke in spokes {
            let arrived = count.get(spoke).map(|n| Arrived {
                series: *n,
                up: up.get(spoke).copied().unwrap_or(0.0),
                age: (at - newest.get(spoke).copied().unwrap_or(0.0)).max(0.0),
            });
            if let Some(a) = &arrived {
                evidence.push(format!(
                    "{spoke}: {} `up` series labelled cluster=\"{spoke}\" ({} up), newest sample {:.0}s old",
                    a.series, a.up, a.age
                ));
            }
            if let Some(p) = series_problem(spoke, arrived.as_ref()) {
                if arrived.is_none() {
                    evidence.push(p.clone());
                }
                problems.push(p);
                failed.push(spoke.clone());
            }
        }
        if let Ok(mut f) = failing.lock() {
            *f = failed;
        }
        if problems.is_empty() {
            Finding::pass(
                format!(
                    "every spoke's `up` series arrive in the central store with their cluster label ({})",
                    crate::plural::count(spokes.len(), "spoke")
                ),
                evidence,
            )
        } else {
            Finding::fail(problems.join("; "), evidence)
        }
    })
    .await;
    let spokes = if finding.status == Status::Fail {
        failing.into_inner().unwrap_or_default()
    } else {
        Vec::new()
    };
    Outcome { finding, spokes }
}

#[derive(Deserialize)]
struct Streams {
    result: Vec<Stream>,
}

#[derive(Deserialize)]
struct Stream {
    values: Vec<(String, String)>,
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The marker line of one spoke in this run.
fn marker(ctx: &Context<'_>, spoke: &str) -> String {
    format!("telltale-fleet-marker-{}-{spoke}", ctx.run_id)
}

async fn logs(ctx: &Context<'_>, url: &str, spokes: &[Spoke], names: &[String]) -> Outcome {
    match ctx.http.get_text(&format!("{url}/ready")).await {
        Ok(body) if body.trim() == "ready" => {}
        Ok(body) => {
            return Finding::fail(
                format!(
                    "the central Loki is not ready: {}",
                    super::http::cap(&body, 200)
                ),
                vec![],
            )
            .into();
        }
        Err(e) => {
            return Finding::fail(format!("the central Loki did not answer: {e}"), vec![]).into();
        }
    }
    let started = Instant::now();
    let mut evidence = Vec::new();
    let mut pending: BTreeSet<&String> = BTreeSet::new();
    let mut problems = Vec::new();
    let mut failed = Vec::new();
    // Marker pods to remove at the end: (kube, namespace, run id).
    let mut pods = Vec::new();
    for spoke in spokes {
        let name = &spoke.name;
        let line = marker(ctx, name);
        let written = match &spoke.cluster {
            Some(Ok((kube, namespace))) => {
                let run = format!("{}-{name}", ctx.run_id);
                match logmarker::start(kube, namespace, &run, &line).await {
                    Ok(pod) => {
                        let how = format!(
                            "written by pod {namespace}/{} in {name}, shipped by its own collector",
                            pod.name
                        );
                        pods.push((kube, namespace, pod));
                        Ok(how)
                    }
                    Err(e) => Err(format!(
                        "cannot start the marker pod in {name}: {}",
                        crate::error::chain(&e)
                    )),
                }
            }
            other => {
                let why = match other {
                    Some(Err(why)) => format!("its cluster did not answer: {why}"),
                    _ => "no cluster reached".into(),
                };
                push(ctx, url, spoke, &line).await.map(|()| {
                    format!("pushed to the central Loki from here ({why}: its shipper path is not proven)")
                })
            }
        };
        match written {
            Ok(how) => {
                evidence.push(format!("{name}: marker {line} {how}"));
                pending.insert(name);
            }
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                failed.push(name.clone());
            }
        }
    }
    // Each marker is looked for by its cluster label until all came back.
    let mut last: BTreeMap<&String, String> = BTreeMap::new();
    while !pending.is_empty() {
        for spoke in pending.clone() {
            let query = format!("{{cluster=\"{spoke}\"}} |= \"{}\"", marker(ctx, spoke));
            let now = unix_nanos();
            let api = format!(
                "{url}/loki/api/v1/query_range?query={}&start={}&end={}&limit=10&direction=backward",
                encode(&query),
                now - 10 * 60 * 1_000_000_000,
                now + 1_000_000_000
            );
            match ctx.http.get_json::<Envelope<Streams>>(&api).await {
                Ok(s)
                    if s.data.result.iter().any(|s| {
                        s.values
                            .iter()
                            .any(|(_, line)| line.contains(&marker(ctx, spoke)))
                    }) =>
                {
                    evidence.push(format!(
                        "{spoke}: marker found by {query} after {:.1}s",
                        started.elapsed().as_secs_f64()
                    ));
                    pending.remove(spoke);
                }
                Ok(_) => {
                    last.insert(spoke, format!("not found by {query}"));
                }
                Err(e) => {
                    last.insert(spoke, format!("the query failed: {e}"));
                }
            }
        }
        if pending.is_empty() || Instant::now() >= ctx.deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for spoke in pending {
        problems.push(format!(
            "{spoke}: the marker line {} within {}s",
            last.get(spoke).cloned().unwrap_or_default(),
            ctx.timeout.as_secs()
        ));
        failed.push(spoke.clone());
    }
    for (kube, namespace, pod) in &pods {
        logmarker::remove(kube, namespace, pod).await;
    }
    // What each spoke's own shipper sent in the last 10 minutes.
    let counts = format!(
        "sum by (cluster) (count_over_time({{{}}}[10m]))",
        cluster_matcher(names)
    );
    let api = format!("{url}/loki/api/v1/query?query={}", encode(&counts));
    if let Ok(v) = ctx.http.get_json::<Envelope<Vector>>(&api).await {
        let lines: BTreeMap<String, String> = v
            .data
            .result
            .into_iter()
            .filter_map(|s| Some((s.metric.get("cluster")?.clone(), s.value.1)))
            .collect();
        for spoke in names {
            evidence.push(format!(
                "{spoke}: {} line(s) labelled cluster=\"{spoke}\" in the last 10m, the marker included",
                lines.get(spoke).map_or("0", String::as_str)
            ));
        }
    }
    failed.sort();
    if problems.is_empty() {
        Outcome {
            finding: Finding::pass(
                format!(
                    "a marker line per spoke came back from the central Loki by its cluster label ({})",
                    crate::plural::count(names.len(), "spoke")
                ),
                evidence,
            ),
            spokes: Vec::new(),
        }
    } else {
        Outcome {
            finding: Finding::fail(problems.join("; "), evidence),
            spokes: failed,
        }
    }
}

/// The tenant header a multi-tenant central store (Mimir, Loki, Cortex,
/// Thanos Receive) reads: which tenants a request is for.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";

/// The tenants a spoke's bundle really sends under, read from its releases'
/// values: every `X-Scope-OrgID` header (a remote write's) and every
/// `tenant_id = "…"` of a log shipper's config (Alloy's `loki.write`
/// endpoints). Empty when it sends to single-tenant stores.
pub fn tenants_of(bundle: &crate::render::Bundle) -> BTreeSet<String> {
    fn walk(value: &serde_json::Value, out: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.eq_ignore_ascii_case(TENANT_HEADER), v) {
                        (true, serde_json::Value::String(t)) => {
                            out.insert(t.clone());
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            serde_json::Value::String(text) => {
                for line in text.lines() {
                    let Some(rest) = line.trim().strip_prefix("tenant_id") else {
                        continue;
                    };
                    let Some(quoted) = rest.trim().strip_prefix('=') else {
                        continue;
                    };
                    if let Ok(t) = serde_json::from_str::<String>(quoted.trim()) {
                        out.insert(t);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for values in bundle.values.values() {
        walk(values, &mut out);
    }
    out
}

/// Pushes a spoke's marker through the central Loki's push API, labelled as
/// the spoke's collector labels its lines (and under its tenant, when it
/// has one: a push is for exactly one).
async fn push(ctx: &Context<'_>, url: &str, spoke: &Spoke, line: &str) -> Result<(), String> {
    let http = match spoke.tenants.first() {
        Some(tenant) => ctx.http.clone().with_header(TENANT_HEADER, tenant.clone()),
        None => ctx.http.clone(),
    };
    let spoke = &spoke.name;
    let namespace = &ctx.bundle.plan.namespace;
    let body = serde_json::json!({"streams": [{
        "stream": {"cluster": spoke, "namespace": namespace,
                   "job": format!("{namespace}/telltale-fleet-marker"), "container": "marker"},
        "values": [[unix_nanos().to_string(), line]],
    }]});
    http.post_json(&format!("{url}/loki/api/v1/push"), &body)
        .await
        .map_err(|e| format!("cannot push the marker: {e}"))
}

/// Each spoke's synthetic alerts, with its `cluster`, through the central
/// Alertmanager to every receiver: one `notifications` proof per spoke, one
/// after another (each reads the same counters), each under its own run id
/// so that its alerts are silenced and resolved on their own.
async fn alerts(ctx: &Context<'_>, url: &str, spokes: &[String]) -> Outcome {
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    let mut failed = Vec::new();
    let mut passed = 0;
    let mut skipped = None;
    for spoke in spokes {
        let sub = Context {
            bundle: ctx.bundle,
            http: ctx.http.clone(),
            endpoints: ctx.endpoints.clone(),
            timeout: ctx.timeout,
            deadline: ctx.deadline,
            run_id: format!("{}-{spoke}", ctx.run_id),
            kube: None,
            grafana: ctx.grafana.clone(),
            load: ctx.load.clone(),
            synthetic_labels: [("cluster".to_string(), spoke.clone())].into(),
        };
        let f = super::notifications::notifications(&sub, url).await;
        evidence.push(format!("{spoke}: {}", f.summary));
        evidence.extend(f.evidence.iter().map(|e| format!("{spoke}: {e}")));
        match f.status {
            Status::Pass => passed += 1,
            Status::Fail => {
                problems.push(format!("{spoke}: {}", f.summary));
                failed.push(spoke.clone());
            }
            Status::Skip => skipped = Some(f.summary),
        }
    }
    let finding = if !problems.is_empty() {
        Finding::fail(problems.join("; "), evidence)
    } else if passed == 0 {
        let mut f = Finding::skip(skipped.unwrap_or_default());
        f.evidence = evidence;
        f
    } else {
        Finding::pass(
            format!(
                "a synthetic alert from each spoke, with its cluster label, reached every receiver of the central Alertmanager ({})",
                crate::plural::count(passed, "spoke")
            ),
            evidence,
        )
    };
    Outcome {
        finding,
        spokes: failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spoke_is_missing_stale_or_arrived() {
        assert!(
            series_problem("eu-3", None)
                .unwrap()
                .contains("eu-3: no `up` series with cluster=\"eu-3\"")
        );
        let fresh = Arrived {
            series: 3.0,
            up: 3.0,
            age: 2.0,
        };
        assert_eq!(series_problem("eu-1", Some(&fresh)), None);
        let stale = Arrived {
            age: 200.0,
            ..fresh
        };
        assert!(
            series_problem("eu-2", Some(&stale))
                .unwrap()
                .contains("eu-2: stale, its newest `up` sample is 200s old")
        );
    }

    #[test]
    fn the_matcher_names_every_spoke() {
        assert_eq!(
            cluster_matcher(&["eu-1".into(), "us-2".into()]),
            "cluster=~\"eu-1|us-2\""
        );
    }
}
