//! `logs`: Loki is ready, every namespace with running pods has log lines in
//! the last 10 minutes, and a marker line written now comes back from a LogQL
//! query (seed 003: logs from all namespaces).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use serde::Deserialize;

use super::http::encode;
use super::{Context, Finding, settle};
use crate::cluster::logmarker;

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

#[derive(Deserialize)]
struct Streams {
    result: Vec<Stream>,
}

#[derive(Deserialize)]
struct Stream {
    values: Vec<(String, String)>,
}

/// The window seed 003's "logs from all namespaces" is proven over.
const WINDOW: &str = "10m";

pub async fn logs(ctx: &Context<'_>, url: &str) -> Finding {
    match ctx.http.get_text(&format!("{url}/ready")).await {
        Ok(body) if body.trim() == "ready" => {}
        Ok(body) => {
            return Finding::fail(
                format!("Loki is not ready: {}", super::http::cap(&body, 200)),
                vec![],
            );
        }
        Err(e) => return Finding::fail(format!("Loki did not answer: {e}"), vec![]),
    }
    let namespace = &ctx.bundle.plan.namespace;
    let (expected, source) = expected_namespaces(ctx).await;

    // The marker goes out first so that it travels while the counts settle.
    let started = Instant::now();
    let marker = format!("telltale-marker-{}", ctx.run_id);
    let mut created = None;
    let written = match &ctx.kube {
        Some(kube) => match logmarker::start(kube, namespace, &ctx.run_id, &marker).await {
            Ok(pod) => {
                let how = format!("written by pod {namespace}/{}", pod.name);
                created = Some((kube, pod));
                Ok(how)
            }
            Err(e) => Err(format!(
                "cannot start the marker pod: {}",
                crate::error::chain(&e)
            )),
        },
        None => push(ctx, url, namespace, &marker).await.map(|()| {
            "pushed through Loki's push API (no cluster reachable: the shipper path is not proven)"
                .to_string()
        }),
    };

    let counts = settle(ctx.deadline, || per_namespace(ctx, url, &expected)).await;
    let found = match &written {
        Ok(_) => find_marker(ctx, url, namespace, &marker).await,
        Err(e) => Err(e.clone()),
    };
    if let Some((kube, pod)) = &created {
        logmarker::remove(kube, namespace, pod).await;
    }

    let mut evidence = vec![format!("namespaces from {source}")];
    evidence.extend(counts.evidence);
    let marker_ok = match (&written, &found) {
        (Ok(how), Ok(())) => {
            evidence.push(format!(
                "marker {marker} {how}; found by {{namespace=\"{namespace}\"}} |= \"{marker}\" after {:.1}s",
                started.elapsed().as_secs_f64()
            ));
            true
        }
        (Err(e), _) | (_, Err(e)) => {
            evidence.push(format!("marker {marker}: {e}"));
            false
        }
    };
    match (counts.status == super::Status::Pass, marker_ok) {
        (true, true) => Finding::pass(
            format!(
                "Loki ready; {} namespace(s) have lines in the last {WINDOW}; the marker line came back",
                expected.len()
            ),
            evidence,
        ),
        (false, _) => Finding::fail(counts.summary, evidence),
        (true, false) => Finding::fail("the marker line never came back from Loki", evidence),
    }
}

/// Namespaces with running pods (from the cluster) plus plan.json's.
async fn expected_namespaces(ctx: &Context<'_>) -> (BTreeSet<String>, &'static str) {
    let mut namespaces: BTreeSet<String> = ctx
        .bundle
        .plan
        .expectations
        .log_namespaces
        .iter()
        .cloned()
        .collect();
    match &ctx.kube {
        Some(kube) => match logmarker::namespaces_with_running_pods(kube).await {
            Ok(found) => {
                namespaces.extend(found);
                (
                    namespaces,
                    "the cluster (every namespace with running pods) and plan.json",
                )
            }
            Err(_) => (namespaces, "plan.json (listing pods failed)"),
        },
        None => (namespaces, "plan.json (no cluster reachable)"),
    }
}

async fn per_namespace(ctx: &Context<'_>, url: &str, expected: &BTreeSet<String>) -> Finding {
    let query = format!("sum by (namespace) (count_over_time({{namespace=~\".+\"}}[{WINDOW}]))");
    let api = format!("{url}/loki/api/v1/query?query={}", encode(&query));
    let vector: Envelope<Vector> = match ctx.http.get_json(&api).await {
        Ok(v) => v,
        Err(e) => return Finding::fail(format!("the LogQL query failed: {e}"), vec![]),
    };
    let lines: BTreeMap<String, f64> = vector
        .data
        .result
        .iter()
        .filter_map(|s| {
            let ns = s.metric.get("namespace")?;
            Some((ns.clone(), s.value.1.parse().unwrap_or(0.0)))
        })
        .collect();
    let mut evidence = Vec::new();
    let mut silent = Vec::new();
    for ns in expected {
        match lines.get(ns) {
            Some(n) if *n > 0.0 => evidence.push(format!("{ns}: {n} line(s)")),
            _ => {
                evidence.push(format!("{ns}: no lines in the last {WINDOW}"));
                silent.push(ns.as_str());
            }
        }
    }
    if silent.is_empty() {
        Finding::pass("", evidence)
    } else {
        Finding::fail(
            format!(
                "no log lines in the last {WINDOW} from namespace(s) {}",
                silent.join(", ")
            ),
            evidence,
        )
    }
}

async fn push(ctx: &Context<'_>, url: &str, namespace: &str, marker: &str) -> Result<(), String> {
    let body = serde_json::json!({"streams": [{
        "stream": {"namespace": namespace, "pod": format!("telltale-log-marker-{}", ctx.run_id),
                   "container": "marker", "job": format!("{namespace}/telltale-log-marker")},
        "values": [[unix_nanos().to_string(), marker]],
    }]});
    ctx.http
        .post_json(&format!("{url}/loki/api/v1/push"), &body)
        .await
        .map_err(|e| format!("cannot push the marker: {e}"))
}

async fn find_marker(
    ctx: &Context<'_>,
    url: &str,
    namespace: &str,
    marker: &str,
) -> Result<(), String> {
    let query = format!("{{namespace=\"{namespace}\"}} |= \"{marker}\"");
    let deadline = ctx.deadline;
    loop {
        let now = unix_nanos();
        let start = now - 10 * 60 * 1_000_000_000;
        let api = format!(
            "{url}/loki/api/v1/query_range?query={}&start={start}&end={}&limit=10&direction=backward",
            encode(&query),
            now + 1_000_000_000
        );
        let last = match ctx.http.get_json::<Envelope<Streams>>(&api).await {
            Ok(streams)
                if streams
                    .data
                    .result
                    .iter()
                    .any(|s| s.values.iter().any(|(_, line)| line.contains(marker))) =>
            {
                return Ok(());
            }
            Ok(_) => format!("not found by {query}"),
            Err(e) => format!("the query failed: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(format!("{last} within {}s", ctx.timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
