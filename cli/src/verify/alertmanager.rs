//! `alertmanager` and `notifications`: Alertmanager's API (/-/ready,
//! /api/v2/status, /api/v2/alerts) and its own delivery counters (/metrics).
//!
//! Delivery is proven per integration from the deltas of
//! `alertmanager_notifications_total` and `alertmanager_notifications_failed_total`
//! around each synthetic alert. The alerts carry `telltale_synthetic=<run id>`
//! and `telltale_receiver=<tier>`, which the bundle routes first, at
//! group_wait 0s, to that tier's receiver: the same receiver the real alerts
//! of routes-test.yaml reach.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Context, Finding, settle};
use crate::render::alertmanager::{SYNTHETIC_LABEL, SYNTHETIC_RECEIVER_LABEL};

#[derive(Deserialize)]
struct AmStatus {
    cluster: Cluster,
    config: Config,
}

#[derive(Deserialize)]
struct Cluster {
    status: String,
}

#[derive(Deserialize)]
struct Config {
    original: String,
}

/// Ready, config loaded, every tier receiver present, cluster settled.
pub async fn status(ctx: &Context<'_>, url: &str) -> Finding {
    let expected = &ctx.bundle.plan.expectations.receivers;
    settle(ctx.deadline, || async {
        if let Err(e) = ctx.http.get_text(&format!("{url}/-/ready")).await {
            return Finding::fail(format!("Alertmanager is not ready: {e}"), vec![]);
        }
        let status: AmStatus = match ctx.http.get_json(&format!("{url}/api/v2/status")).await {
            Ok(s) => s,
            Err(e) => return Finding::fail(format!("no status: {e}"), vec![]),
        };
        let config: Value = match serde_saphyr::from_str(&status.config.original) {
            Ok(c) => c,
            Err(e) => {
                return Finding::fail(format!("the loaded config does not parse: {e}"), vec![]);
            }
        };
        let loaded: BTreeSet<&str> = config["receivers"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["name"].as_str()).collect())
            .unwrap_or_default();
        let missing: Vec<&str> = expected
            .iter()
            .map(String::as_str)
            .filter(|r| !loaded.contains(r))
            .collect();
        let evidence = vec![
            format!("cluster: {}", status.cluster.status),
            format!(
                "receivers loaded: {}",
                loaded.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        ];
        if !missing.is_empty() {
            return Finding::fail(
                format!(
                    "receivers missing from the loaded config: {}",
                    missing.join(", ")
                ),
                evidence,
            );
        }
        if !matches!(status.cluster.status.as_str(), "ready" | "disabled") {
            return Finding::fail(
                format!("the cluster is {} (not settled)", status.cluster.status),
                evidence,
            );
        }
        Finding::pass(
            format!(
                "ready; {} tier receivers loaded; cluster {}",
                expected.len(),
                status.cluster.status
            ),
            evidence,
        )
    })
    .await
}

/// The integration label Alertmanager's counters use for an integration of
/// plan.json (the SMS bridge is a webhook).
fn metric_integration(name: &str) -> &str {
    match name {
        "sms-bridge" => "webhook",
        other => other,
    }
}

/// Sums of a counter by its `integration` label.
pub fn counters(metrics: &str, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some(labels) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, value)) = labels.split_once('}') else {
            continue;
        };
        let integration = labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("integration="))
            .map(|v| v.trim_matches('"').to_string());
        if let (Some(integration), Ok(value)) = (integration, value.trim().parse::<f64>()) {
            *out.entry(integration).or_insert(0.0) += value;
        }
    }
    out
}

struct Counts {
    total: BTreeMap<String, f64>,
    failed: BTreeMap<String, f64>,
    /// Failed attempts: a 5xx is retried until group_interval runs out, so
    /// `notifications_failed_total` rises only then; this rises at once.
    failed_requests: BTreeMap<String, f64>,
}

async fn counts(ctx: &Context<'_>, url: &str) -> Result<Counts, String> {
    let text = ctx
        .http
        .get_text(&format!("{url}/metrics"))
        .await
        .map_err(|e| format!("cannot read Alertmanager's metrics: {e}"))?;
    Ok(Counts {
        total: counters(&text, "alertmanager_notifications_total"),
        failed: counters(&text, "alertmanager_notifications_failed_total"),
        failed_requests: counters(&text, "alertmanager_notification_requests_failed_total"),
    })
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>, key: &str) -> f64 {
    after.get(key).unwrap_or(&0.0) - before.get(key).unwrap_or(&0.0)
}

fn synthetic(
    ctx: &Context<'_>,
    receiver: &str,
    cases: &[String],
    ends: Option<SystemTime>,
) -> Value {
    let mut alert = json!({
        "labels": {
            "alertname": "TelltaleSyntheticNotification",
            SYNTHETIC_LABEL: ctx.run_id,
            SYNTHETIC_RECEIVER_LABEL: receiver,
        },
        "annotations": {
            "summary": format!("telltale verify: synthetic alert for the {receiver} receiver"),
            "description": format!("Proves delivery for: {}. Resolved by the same run.", cases.join(", ")),
        },
    });
    if let Some(ends) = ends {
        alert["endsAt"] = json!(humantime::format_rfc3339_seconds(ends).to_string());
    }
    alert
}

/// For every receiver the routes-test cases expect, one synthetic alert and
/// proof that each of its integrations delivered it; all resolved at the end.
pub async fn notifications(ctx: &Context<'_>, url: &str) -> Finding {
    let plan = &ctx.bundle.plan;
    let Some(text) = ctx.bundle.files.get("alertmanager/routes-test.yaml") else {
        return Finding::fail("the bundle has no alertmanager/routes-test.yaml", vec![]);
    };
    let spec: Value = match serde_saphyr::from_str(text) {
        Ok(v) => v,
        Err(e) => return Finding::fail(format!("routes-test.yaml: {e}"), vec![]),
    };
    // receiver → the cases that expect it, in first-seen order.
    let mut receivers: Vec<(String, Vec<String>)> = Vec::new();
    for case in spec["cases"].as_array().into_iter().flatten() {
        let name = case["name"].as_str().unwrap_or("?").to_string();
        for r in case["receivers"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or_default().to_string();
            match receivers.iter_mut().find(|(known, _)| *known == r) {
                Some((_, cases)) => cases.push(name.clone()),
                None => receivers.push((r, vec![name.clone()])),
            }
        }
    }

    let mut evidence = Vec::new();
    let mut failures = Vec::new();
    let mut posted = Vec::new();
    for (receiver, cases) in &receivers {
        let integrations: Vec<String> = plan
            .alerting
            .receivers
            .iter()
            .find(|t| &t.receiver == receiver)
            .map(|t| t.integrations.clone())
            .unwrap_or_default();
        if integrations.is_empty() {
            evidence.push(format!(
                "{receiver}: no integrations configured (nothing to deliver; cases: {})",
                cases.join(", ")
            ));
            continue;
        }
        let before = match counts(ctx, url).await {
            Ok(c) => c,
            Err(e) => return Finding::fail(e, evidence),
        };
        let started = Instant::now();
        if let Err(e) = ctx
            .http
            .post_json(
                &format!("{url}/api/v2/alerts"),
                &json!([synthetic(ctx, receiver, cases, None)]),
            )
            .await
        {
            return Finding::fail(format!("cannot post a synthetic alert: {e}"), evidence);
        }
        posted.push((receiver.clone(), cases.clone()));
        let deadline = ctx.deadline;
        let outcome = loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let after = match counts(ctx, url).await {
                Ok(c) => c,
                Err(e) => break Err(e),
            };
            let failed: Vec<&String> = integrations
                .iter()
                .filter(|i| {
                    let key = metric_integration(i);
                    delta(&after.failed, &before.failed, key) > 0.0
                        || delta(&after.failed_requests, &before.failed_requests, key) > 0.0
                })
                .collect();
            if !failed.is_empty() {
                break Err(format!(
                    "{receiver}: delivery failed on {} (Alertmanager counted failed notification attempts)",
                    failed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let delivered = integrations.iter().all(|i| {
                let key = metric_integration(i);
                delta(&after.total, &before.total, key) - delta(&after.failed, &before.failed, key)
                    >= 1.0
            });
            if delivered {
                break Ok(());
            }
            if Instant::now() >= deadline {
                let missing: Vec<&String> = integrations
                    .iter()
                    .filter(|i| delta(&after.total, &before.total, metric_integration(i)) < 1.0)
                    .collect();
                break Err(format!(
                    "{receiver}: no notification on {} within {}s",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    ctx.timeout.as_secs()
                ));
            }
        };
        match outcome {
            Ok(()) => evidence.push(format!(
                "{receiver}: delivered via {} in {:.1}s (cases: {})",
                integrations.join(", "),
                started.elapsed().as_secs_f64(),
                cases.join(", ")
            )),
            Err(e) => {
                evidence.push(e.clone());
                failures.push(e);
            }
        }
    }

    // Resolve what this run posted, whatever happened above.
    let now = SystemTime::now();
    let resolved: Vec<Value> = posted
        .iter()
        .map(|(r, cases)| synthetic(ctx, r, cases, Some(now)))
        .collect();
    if !resolved.is_empty()
        && let Err(e) = ctx
            .http
            .post_json(&format!("{url}/api/v2/alerts"), &Value::Array(resolved))
            .await
    {
        evidence.push(format!("could not resolve the synthetic alerts: {e}"));
    }

    let slo_page = receivers
        .iter()
        .filter(|(_, cases)| cases.iter().any(|c| c.starts_with("slo page")))
        .map(|(r, _)| r.as_str())
        .collect::<Vec<_>>();
    if !slo_page.is_empty() && failures.is_empty() {
        evidence.push(format!(
            "SLO breach test: a synthetic SLO page reached {}",
            slo_page.join(" and ")
        ));
    }
    if failures.is_empty() && posted.is_empty() {
        // Nothing was sent, so nothing was proven: not a pass.
        let mut finding = Finding::skip(
            "no receiver has an integration configured: nothing to deliver (configure alerting.receivers)",
        );
        finding.evidence = evidence;
        finding
    } else if failures.is_empty() {
        Finding::pass(
            format!(
                "{} receiver(s) proven end to end ({} routing cases)",
                posted.len(),
                spec["cases"].as_array().map(Vec::len).unwrap_or(0)
            ),
            evidence,
        )
    } else {
        Finding::fail(failures.join("; "), evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::counters;

    #[test]
    fn counters_sum_by_integration() {
        let text = "# HELP x\n\
alertmanager_notifications_total{integration=\"slack\"} 3\n\
alertmanager_notifications_total{integration=\"email\",receiver_name=\"sla\"} 1\n\
alertmanager_notifications_total{integration=\"email\",receiver_name=\"x\"} 2\n\
alertmanager_notifications_failed_total{integration=\"slack\"} 1\n";
        let total = counters(text, "alertmanager_notifications_total");
        assert_eq!(total["slack"], 3.0);
        assert_eq!(total["email"], 3.0);
        assert_eq!(
            counters(text, "alertmanager_notifications_failed_total")["slack"],
            1.0
        );
    }
}
