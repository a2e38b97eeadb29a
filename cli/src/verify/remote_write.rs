//! `remote-write`: the cluster's Prometheus really sends what it collects
//! to the central store. Read from Prometheus' own queue series through its
//! query API (it scrapes itself: kube-prometheus-stack's
//! `kube-prometheus-stack-prometheus` job), for each queue plan.json expects
//! (the remote-write plugin's `expectations.remoteWrite`): the queue exists
//! and writes to the bundle's URL, every Prometheus behind it has sent a
//! sample within [`MAX_LAG`] of the newest it holds, and the store refused
//! no sample in the last five minutes.
//!
//! The two ways it breaks look different in Prometheus' counters, and the
//! evidence says which: a URL nothing answers is retried forever (a
//! connection error is recoverable), so the queue has sent nothing and
//! `samples_retried_total` rises; a store that refuses the writes (401 for a
//! wrong credential, 400 for a bad sample) is not retried, and
//! `samples_failed_total` rises.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Context, Finding, settle};

/// How far a queue may lag behind the newest sample Prometheus holds, in
/// seconds: kube-prometheus' PrometheusRemoteWriteBehind threshold.
pub const MAX_LAG: f64 = 120.0;

#[derive(Deserialize)]
struct Envelope {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// An instant vector: each series' labels and value.
async fn vector(
    ctx: &Context<'_>,
    url: &str,
    expr: &str,
) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
    let api = format!("{url}/api/v1/query?query={}", super::http::encode(expr));
    let answer: Envelope = ctx
        .http
        .get_json(&api)
        .await
        .map_err(|e| format!("Prometheus did not answer `{expr}`: {e}"))?;
    Ok(answer
        .data
        .result
        .into_iter()
        .filter_map(|s| Some((s.metric, s.value.1.parse::<f64>().ok()?)))
        .collect())
}

/// Values by the Prometheus that reported them (its scrape `instance`).
fn by_instance(samples: &[(BTreeMap<String, String>, f64)]) -> BTreeMap<String, f64> {
    samples
        .iter()
        .map(|(labels, v)| (labels.get("instance").cloned().unwrap_or_default(), *v))
        .collect()
}

/// A label value as a PromQL string literal's content.
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One queue as one Prometheus reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueState {
    pub instance: String,
    /// The `url` label: where the queue really writes.
    pub url: String,
    /// The newest sample Prometheus holds, and the newest the queue sent
    /// (0: nothing yet), in seconds since the epoch.
    pub newest: f64,
    pub sent: f64,
    /// Samples refused and retried in the last 5 minutes.
    pub failed: f64,
    pub retried: f64,
}

/// What is wrong with one queue of one Prometheus, if anything.
pub fn problem(queue: &str, want_url: &str, s: &QueueState) -> Option<String> {
    let at = format!("queue {queue} on {}", s.instance);
    if s.url != want_url {
        return Some(format!(
            "{at} writes to {}, the bundle says {want_url} (Prometheus has not loaded this bundle's configuration)",
            s.url
        ));
    }
    if s.failed > 0.0 {
        return Some(format!(
            "{at}: {} refused {} samples in the last 5 minutes (not retried: a 4xx such as 401 for a wrong credential, see Prometheus' log)",
            s.url, s.failed
        ));
    }
    if s.sent <= 0.0 {
        return Some(format!(
            "{at} has sent nothing to {} ({} samples retried in the last 5 minutes: is it reachable?)",
            s.url, s.retried
        ));
    }
    let lag = s.newest - s.sent;
    if lag > MAX_LAG {
        return Some(format!(
            "{at} is {lag:.0}s behind (more than {MAX_LAG:.0}s; {} samples retried in the last 5 minutes)",
            s.retried
        ));
    }
    None
}

async fn states(ctx: &Context<'_>, url: &str, queue: &str) -> Result<Vec<QueueState>, String> {
    let sel = format!("remote_name=\"{}\"", quoted(queue));
    let sent = vector(
        ctx,
        url,
        &format!("prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{{sel}}}"),
    )
    .await?;
    let newest = by_instance(
        &vector(
            ctx,
            url,
            "prometheus_remote_storage_highest_timestamp_in_seconds",
        )
        .await?,
    );
    let failed = by_instance(
        &vector(
            ctx,
            url,
            &format!("increase(prometheus_remote_storage_samples_failed_total{{{sel}}}[5m])"),
        )
        .await?,
    );
    let retried = by_instance(
        &vector(
            ctx,
            url,
            &format!("increase(prometheus_remote_storage_samples_retried_total{{{sel}}}[5m])"),
        )
        .await?,
    );
    Ok(sent
        .iter()
        .map(|(labels, sent)| {
            let instance = labels.get("instance").cloned().unwrap_or_default();
            let of = |m: &BTreeMap<String, f64>| m.get(&instance).copied().unwrap_or(0.0);
            QueueState {
                url: labels.get("url").cloned().unwrap_or_default(),
                newest: of(&newest),
                sent: *sent,
                failed: of(&failed).round(),
                retried: of(&retried).round(),
                instance,
            }
        })
        .collect())
}

/// Every expected queue is sending; the evidence has one line per queue and
/// Prometheus, with the counters that tell a dead URL from a refusing store.
pub async fn remote_write(ctx: &Context<'_>, url: &str) -> Finding {
    let queues = &ctx.bundle.plan.expectations.remote_write;
    settle(ctx.deadline, || async {
        let mut problems = Vec::new();
        let mut evidence = Vec::new();
        for q in queues {
            let states = match states(ctx, url, &q.name).await {
                Ok(s) => s,
                Err(e) => return Finding::fail(e, vec![]),
            };
            if states.is_empty() {
                problems.push(format!(
                    "Prometheus reports no remote-write queue {} (not configured yet, or Prometheus does not scrape itself)",
                    q.name
                ));
                continue;
            }
            for s in &states {
                evidence.push(format!(
                    "queue {} on {} → {}: last sent {}, {} samples refused and {} retried in the last 5 minutes",
                    q.name,
                    s.instance,
                    s.url,
                    if s.sent > 0.0 {
                        format!("{:.0}s behind the newest sample", (s.newest - s.sent).max(0.0))
                    } else {
                        "never".into()
                    },
                    s.failed,
                    s.retried
                ));
                problems.extend(problem(&q.name, &q.url, s));
            }
        }
        if problems.is_empty() {
            Finding::pass(
                format!(
                    "{} sending",
                    crate::plural::count(queues.len(), "remote-write queue")
                ),
                evidence,
            )
        } else {
            Finding::fail(problems.join("; "), evidence)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> QueueState {
        QueueState {
            instance: "10.0.0.1:9090".into(),
            url: "https://m/api/v1/push".into(),
            newest: 1000.0,
            sent: 995.0,
            failed: 0.0,
            retried: 0.0,
        }
    }

    #[test]
    fn a_queue_that_keeps_up_and_is_not_refused_passes() {
        assert_eq!(problem("central", "https://m/api/v1/push", &state()), None);
    }

    #[test]
    fn each_way_of_breaking_is_named() {
        let want = "https://m/api/v1/push";
        let dead = QueueState {
            sent: 0.0,
            retried: 120.0,
            ..state()
        };
        let p = problem("central", want, &dead).unwrap();
        assert!(
            p.contains("has sent nothing") && p.contains("120 samples retried"),
            "{p}"
        );
        let refused = QueueState {
            failed: 40.0,
            ..state()
        };
        let p = problem("central", want, &refused).unwrap();
        assert!(p.contains("refused 40 samples"), "{p}");
        let behind = QueueState {
            sent: 800.0,
            ..state()
        };
        assert!(
            problem("central", want, &behind)
                .unwrap()
                .contains("200s behind")
        );
        let stale = QueueState {
            url: "https://old/api/v1/push".into(),
            ..state()
        };
        assert!(
            problem("central", want, &stale)
                .unwrap()
                .contains("writes to https://old")
        );
    }

    #[test]
    fn a_queue_name_cannot_break_out_of_its_matcher() {
        // A name `x"} or vector(1) \` stays one string literal.
        assert_eq!(quoted("x\"} or vector(1) \\"), "x\\\"} or vector(1) \\\\");
    }
}
