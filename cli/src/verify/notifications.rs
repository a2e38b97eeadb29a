//! `notifications`: proof that every receiver the routes-test cases expect
//! delivers, from Alertmanager's own counters (/metrics).
//!
//! One synthetic alert per receiver, carrying `telltale_synthetic=<run id>`
//! and `telltale_receiver=<tier>`, which the bundle routes first, at
//! group_wait 0s, to that tier's receiver: the same receiver the real alerts
//! of routes-test.yaml reach. Alertmanager delivers within milliseconds at
//! group_wait 0s, so the counters are polled with a backing-off interval
//! (5 ms, doubling, at most 200 ms) rather than a fixed sleep.
//!
//! With `--enable-feature=receiver-name-in-metrics` (Alertmanager >= 0.27)
//! the counters carry `receiver_name`: all alerts are posted together and
//! every receiver is proven on its own counters. Without it they are per
//! integration only, so receivers are proven one after another (the
//! fallback, said in the evidence).
//!
//! A proof is ambiguous, and no pass, when something else could have been
//! counted: more notifications than the synthetic alert explains, or another
//! alert that became active on the same receiver (without receiver labels:
//! on one sharing an integration) around the window.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Context, Finding};
use crate::render::alertmanager::{SYNTHETIC_LABEL, SYNTHETIC_RECEIVER_LABEL};

/// The first look at the counters after posting, doubled at every look.
const FIRST_LOOK: Duration = Duration::from_millis(5);
/// The longest wait between two looks.
const MAX_LOOK: Duration = Duration::from_millis(200);
/// How long before the window another alert may have started and still
/// notify inside it: the bundle's longest group_wait (the root route's).
const GROUP_WAIT: Duration = Duration::from_secs(30);
/// How long the synthetic alerts stay silenced after the run: past the
/// synthetic routes' group_interval (1m), when their resolved notification
/// would go out, so it never does.
const QUIET_RESOLVE: Duration = Duration::from_secs(120);

/// The integration label Alertmanager's counters use for an integration of
/// plan.json (the SMS bridge and the SOC are webhooks).
fn metric_integration(name: &str) -> &str {
    match name {
        "sms-bridge" | "soc-webhook" => "webhook",
        other => other,
    }
}

/// A counter's key: `receiver_name` (when Alertmanager labels it) and
/// `integration`.
type Key = (Option<String>, String);

fn label(labels: &str, name: &str) -> Option<String> {
    labels
        .split(',')
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"').to_string())
}

/// Sums of a counter by receiver and integration.
fn counters_by(metrics: &str, name: &str) -> BTreeMap<Key, f64> {
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
        if let (Some(integration), Ok(value)) =
            (label(labels, "integration"), value.trim().parse::<f64>())
        {
            *out.entry((label(labels, "receiver_name"), integration))
                .or_insert(0.0) += value;
        }
    }
    out
}

/// Sums of a counter by its `integration` label.
pub fn counters(metrics: &str, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for ((_, integration), value) in counters_by(metrics, name) {
        *out.entry(integration).or_insert(0.0) += value;
    }
    out
}

#[derive(Clone)]
struct Counts {
    total: BTreeMap<Key, f64>,
    failed: BTreeMap<Key, f64>,
    requests: BTreeMap<Key, f64>,
    /// Failed attempts: a 5xx is retried until group_interval runs out, so
    /// `notifications_failed_total` rises only then; this rises at once.
    failed_requests: BTreeMap<Key, f64>,
}

impl Counts {
    fn parse(text: &str) -> Counts {
        Counts {
            total: counters_by(text, "alertmanager_notifications_total"),
            failed: counters_by(text, "alertmanager_notifications_failed_total"),
            requests: counters_by(text, "alertmanager_notification_requests_total"),
            failed_requests: counters_by(text, "alertmanager_notification_requests_failed_total"),
        }
    }

    /// Alertmanager labels its counters with the receiver.
    fn per_receiver(&self) -> bool {
        self.total.keys().any(|(r, _)| r.is_some())
    }
}

async fn counts(ctx: &Context<'_>, url: &str) -> Result<Counts, String> {
    let text = ctx
        .http
        .get_text(&format!("{url}/metrics"))
        .await
        .map_err(|e| format!("cannot read Alertmanager's metrics: {e}"))?;
    Ok(Counts::parse(&text))
}

fn delta(after: &BTreeMap<Key, f64>, before: &BTreeMap<Key, f64>, key: &Key) -> f64 {
    after.get(key).unwrap_or(&0.0) - before.get(key).unwrap_or(&0.0)
}

/// A receiver to prove and what proves it.
struct Target {
    receiver: String,
    cases: Vec<String>,
    integrations: Vec<String>,
}

impl Target {
    /// Counter key → the notifications the synthetic alert makes there.
    fn expected(&self, per_receiver: bool) -> BTreeMap<Key, f64> {
        let receiver = per_receiver.then(|| self.receiver.clone());
        let mut out = BTreeMap::new();
        for i in &self.integrations {
            *out.entry((receiver.clone(), metric_integration(i).to_string()))
                .or_insert(0.0) += 1.0;
        }
        out
    }
}

enum Look {
    Delivered,
    Failed(String),
    Pending,
}

fn look(t: &Target, per_receiver: bool, before: &Counts, after: &Counts) -> Look {
    let expected = t.expected(per_receiver);
    let failed: Vec<&str> = expected
        .keys()
        .filter(|k| {
            delta(&after.failed, &before.failed, k) > 0.0
                || delta(&after.failed_requests, &before.failed_requests, k) > 0.0
        })
        .map(|(_, i)| i.as_str())
        .collect();
    if !failed.is_empty() {
        return Look::Failed(format!(
            "{}: delivery failed on {} (Alertmanager counted failed notification attempts)",
            t.receiver,
            failed.join(", ")
        ));
    }
    // A request that succeeded is the delivery; `notifications_total` rises
    // before the request is made. Older Alertmanagers count no requests.
    let delivered = expected.iter().all(|(k, n)| {
        let ok = if after.requests.is_empty() {
            delta(&after.total, &before.total, k) - delta(&after.failed, &before.failed, k)
        } else {
            delta(&after.requests, &before.requests, k)
                - delta(&after.failed_requests, &before.failed_requests, k)
        };
        ok >= *n
    });
    if delivered {
        Look::Delivered
    } else {
        Look::Pending
    }
}

/// Polls until every target delivered or failed, or the deadline passed.
/// Returns each target's outcome (time to delivery) and the last counts.
async fn poll(
    ctx: &Context<'_>,
    url: &str,
    targets: &[&Target],
    per_receiver: bool,
    before: &Counts,
) -> (Vec<Result<Duration, String>>, Option<Counts>) {
    let started = Instant::now();
    let mut outcomes: Vec<Option<Result<Duration, String>>> =
        targets.iter().map(|_| None).collect();
    let mut wait = FIRST_LOOK;
    let mut last = None;
    loop {
        let left = ctx.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(wait.min(left)).await;
        wait = (wait * 2).min(MAX_LOOK);
        let after = match counts(ctx, url).await {
            Ok(c) => c,
            Err(e) => {
                for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                    *o = Some(Err(e.clone()));
                }
                break;
            }
        };
        for (t, o) in targets.iter().zip(outcomes.iter_mut()) {
            if o.is_some() {
                continue;
            }
            match look(t, per_receiver, before, &after) {
                Look::Delivered => *o = Some(Ok(started.elapsed())),
                Look::Failed(e) => *o = Some(Err(e)),
                Look::Pending => {}
            }
        }
        let done = outcomes.iter().all(Option::is_some);
        if !done && Instant::now() >= ctx.deadline {
            for (t, o) in targets.iter().zip(outcomes.iter_mut()) {
                if o.is_none() {
                    *o = Some(Err(format!(
                        "{}: no notification on {} within {}s",
                        t.receiver,
                        t.integrations.join(", "),
                        ctx.timeout.as_secs()
                    )));
                }
            }
        }
        last = Some(after);
        if outcomes.iter().all(Option::is_some) {
            break;
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err("not proven".to_string())))
        .collect();
    (outcomes, last)
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

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct ActiveAlert {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    receivers: Vec<Named>,
    #[serde(rename = "startsAt", default)]
    starts_at: String,
}

/// Other alerts that may notify in the window: active, neither silenced nor
/// inhibited, not this run's, and started after `since` (an alert that
/// cannot be dated counts). Each as its alertname and receivers.
async fn others(
    ctx: &Context<'_>,
    url: &str,
    since: SystemTime,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let alerts: Vec<ActiveAlert> = ctx
        .http
        .get_json(&format!(
            "{url}/api/v2/alerts?active=true&silenced=false&inhibited=false"
        ))
        .await
        .map_err(|e| format!("cannot list Alertmanager's alerts: {e}"))?;
    Ok(alerts
        .into_iter()
        .filter(|a| a.labels.get(SYNTHETIC_LABEL) != Some(&ctx.run_id))
        .filter(|a| {
            humantime::parse_rfc3339_weak(a.starts_at.trim_end_matches('Z'))
                .map(|t| t >= since)
                .unwrap_or(true)
        })
        .map(|a| {
            (
                a.labels.get("alertname").cloned().unwrap_or_default(),
                a.receivers.into_iter().map(|r| r.name).collect(),
            )
        })
        .collect())
}

/// A target, its outcome (time to delivery), the counts before its alert
/// was posted and at the last look.
type Proof<'a> = (&'a Target, Result<Duration, String>, Counts, Option<Counts>);

/// Why a delivered target's proof is ambiguous, if it is.
fn ambiguity(
    t: &Target,
    per_receiver: bool,
    before: &Counts,
    after: &Counts,
    others: &[(String, Vec<String>)],
    integrations_of: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Option<String> {
    for (k, n) in t.expected(per_receiver) {
        let counted = delta(&after.total, &before.total, &k);
        if counted > n {
            return Some(format!(
                "{}: {counted} notifications counted on {} where the synthetic alert explains {n}",
                t.receiver, k.1
            ));
        }
    }
    let shares = |receiver: &str| {
        if per_receiver {
            receiver == t.receiver
        } else {
            // Integration counters: any receiver sharing one could be counted;
            // one whose integrations are unknown might.
            integrations_of(receiver).is_none_or(|theirs| {
                theirs.iter().any(|i| {
                    t.integrations
                        .iter()
                        .any(|o| metric_integration(o) == metric_integration(i))
                })
            })
        }
    };
    // alertname and receivers → how many such alerts.
    let mut clashes: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for (name, receivers) in others {
        if receivers.iter().any(|r| shares(r)) {
            *clashes
                .entry((name.as_str(), receivers.join(", ")))
                .or_default() += 1;
        }
    }
    let clashing: Vec<String> = clashes
        .into_iter()
        .map(|((name, receivers), n)| match n {
            1 => format!("{name} (→ {receivers})"),
            n => format!("{n}× {name} (→ {receivers})"),
        })
        .collect();
    (!clashing.is_empty()).then(|| {
        format!(
            "{}: other alerts became active on {} during the proof: {}",
            t.receiver,
            if per_receiver {
                "the same receiver"
            } else {
                "a receiver sharing its integrations"
            },
            clashing.join(", ")
        )
    })
}

/// For every receiver the routes-test cases expect, one synthetic alert and
/// proof that each of its integrations delivered it; all silenced, then
/// resolved, at the end.
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
    let integrations_of = |receiver: &str| {
        plan.alerting
            .receivers
            .iter()
            .find(|t| t.receiver == receiver)
            .map(|t| t.integrations.clone())
    };

    let mut evidence = Vec::new();
    let mut targets = Vec::new();
    for (receiver, cases) in receivers {
        let integrations = integrations_of(&receiver).unwrap_or_default();
        if integrations.is_empty() {
            evidence.push(format!(
                "{receiver}: no integrations configured (nothing to deliver; cases: {})",
                cases.join(", ")
            ));
            continue;
        }
        targets.push(Target {
            receiver,
            cases,
            integrations,
        });
    }
    if targets.is_empty() {
        // Nothing was sent, so nothing was proven: not a pass.
        let mut finding = Finding::skip(
            "no receiver has an integration configured: nothing to deliver (configure alerting.receivers)",
        );
        finding.evidence = evidence;
        return finding;
    }

    let since = SystemTime::now() - GROUP_WAIT;
    let first = match counts(ctx, url).await {
        Ok(c) => c,
        Err(e) => return Finding::fail(e, evidence),
    };
    let per_receiver = first.per_receiver();
    let alerts = |ts: &[&Target]| {
        Value::Array(
            ts.iter()
                .map(|t| synthetic(ctx, &t.receiver, &t.cases, None))
                .collect(),
        )
    };
    let mut proofs: Vec<Proof> = Vec::new();
    let mut posted: Vec<&Target> = Vec::new();
    if per_receiver {
        evidence.push(format!(
            "per-receiver counters (receiver_name in Alertmanager's metrics): {} synthetic alerts posted together",
            targets.len()
        ));
        let all: Vec<&Target> = targets.iter().collect();
        if let Err(e) = ctx
            .http
            .post_json(&format!("{url}/api/v2/alerts"), &alerts(&all))
            .await
        {
            return Finding::fail(format!("cannot post the synthetic alerts: {e}"), evidence);
        }
        posted = all.clone();
        let (outcomes, after) = poll(ctx, url, &all, true, &first).await;
        // Every proof shares the one before/after pair.
        for (t, o) in all.into_iter().zip(outcomes) {
            proofs.push((t, o, first.clone(), after.clone()));
        }
    } else {
        evidence.push(
            "fallback: Alertmanager's counters carry no receiver_name (it needs Alertmanager >= 0.27 with --enable-feature=receiver-name-in-metrics), so receivers are proven one after another by integration counters".to_string(),
        );
        let mut before = first;
        for t in &targets {
            if let Err(e) = ctx
                .http
                .post_json(&format!("{url}/api/v2/alerts"), &alerts(&[t]))
                .await
            {
                proofs.push((
                    t,
                    Err(format!("cannot post a synthetic alert: {e}")),
                    before,
                    None,
                ));
                break;
            }
            posted.push(t);
            let (mut outcomes, after) = poll(ctx, url, &[t], false, &before).await;
            let outcome = outcomes.pop().unwrap_or_else(|| Err("not proven".into()));
            let next = after.clone();
            proofs.push((t, outcome, before, after));
            match next {
                Some(n) => before = n,
                None => break,
            }
        }
    }

    let others = others(ctx, url, since).await;
    let mut failures = Vec::new();
    let mut ambiguous = Vec::new();
    for (t, outcome, before, after) in &proofs {
        match outcome {
            Err(e) => {
                evidence.push(e.clone());
                failures.push(e.clone());
            }
            Ok(took) => {
                let why = match (&others, after) {
                    (Err(e), _) => Some(format!("{}: {e}", t.receiver)),
                    (Ok(o), Some(after)) => {
                        ambiguity(t, per_receiver, before, after, o, &integrations_of)
                    }
                    (Ok(_), None) => None,
                };
                let counted = if per_receiver {
                    format!("receiver_name=\"{}\"", t.receiver)
                } else {
                    "integration counters".to_string()
                };
                match why {
                    Some(why) => {
                        evidence.push(format!("ambiguous: {why}"));
                        ambiguous.push(why);
                    }
                    None => evidence.push(format!(
                        "{}: delivered via {} in {} ms (counted on {counted}: one notification per integration, no other alert active there; cases: {})",
                        t.receiver,
                        t.integrations.join(", "),
                        took.as_millis(),
                        t.cases.join(", ")
                    )),
                }
            }
        }
    }

    if let Err(e) = quiet_resolve(ctx, url, &posted).await {
        evidence.push(e);
    }

    let slo_page: Vec<&str> = proofs
        .iter()
        .filter(|(t, o, ..)| o.is_ok() && t.cases.iter().any(|c| c.starts_with("slo page")))
        .map(|(t, ..)| t.receiver.as_str())
        .collect();
    if !slo_page.is_empty() && failures.is_empty() && ambiguous.is_empty() {
        evidence.push(format!(
            "SLO breach test: a synthetic SLO page reached {}",
            slo_page.join(" and ")
        ));
    }
    if !failures.is_empty() {
        Finding::fail(failures.join("; "), evidence)
    } else if !ambiguous.is_empty() {
        // Delivered, perhaps, but not provably by this run: no pass.
        Finding::fail(format!("ambiguous: {}", ambiguous.join("; ")), evidence)
    } else {
        Finding::pass(
            format!(
                "{} receiver(s) proven end to end ({} routing cases)",
                proofs.len(),
                spec["cases"].as_array().map(Vec::len).unwrap_or(0)
            ),
            evidence,
        )
    }
}

/// Silences this run's synthetic alerts, then resolves them: the silence
/// outlasts the synthetic routes' group_interval, so their resolved
/// notifications are muted and no later run can count them.
async fn quiet_resolve(ctx: &Context<'_>, url: &str, posted: &[&Target]) -> Result<(), String> {
    if posted.is_empty() {
        return Ok(());
    }
    let now = SystemTime::now();
    let silence = json!({
        "matchers": [{"name": SYNTHETIC_LABEL, "value": ctx.run_id, "isRegex": false, "isEqual": true}],
        "startsAt": humantime::format_rfc3339_seconds(now).to_string(),
        "endsAt": humantime::format_rfc3339_seconds(now + QUIET_RESOLVE).to_string(),
        "createdBy": "telltale verify",
        "comment": format!("telltale verify run {}: mutes the resolved notifications of its synthetic alerts", ctx.run_id),
    });
    let silenced = ctx
        .http
        .post_json(&format!("{url}/api/v2/silences"), &silence)
        .await
        .map_err(|e| format!("could not silence the synthetic alerts before resolving them: {e}"));
    let resolved: Vec<Value> = posted
        .iter()
        .map(|t| synthetic(ctx, &t.receiver, &t.cases, Some(now)))
        .collect();
    ctx.http
        .post_json(&format!("{url}/api/v2/alerts"), &Value::Array(resolved))
        .await
        .map_err(|e| format!("could not resolve the synthetic alerts: {e}"))?;
    silenced
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
alertmanager_notifications_total{integration=\"slack\"} 3\n\
alertmanager_notifications_total{integration=\"email\",receiver_name=\"sla\"} 1\n\
alertmanager_notifications_total{integration=\"email\",receiver_name=\"x\"} 2\n\
alertmanager_notifications_failed_total{integration=\"slack\"} 1\n";

    #[test]
    fn counters_sum_by_integration() {
        let total = counters(TEXT, "alertmanager_notifications_total");
        assert_eq!(total["slack"], 3.0);
        assert_eq!(total["email"], 3.0);
        assert_eq!(
            counters(TEXT, "alertmanager_notifications_failed_total")["slack"],
            1.0
        );
    }

    #[test]
    fn counters_keep_the_receiver_and_say_when_they_have_one() {
        let c = Counts::parse(TEXT);
        assert!(c.per_receiver());
        assert_eq!(c.total[&(Some("x".into()), "email".into())], 2.0);
        assert!(
            !Counts::parse("alertmanager_notifications_total{integration=\"slack\"} 3\n")
                .per_receiver()
        );
    }

    fn target(receiver: &str, integrations: &[&str]) -> Target {
        Target {
            receiver: receiver.into(),
            cases: vec![],
            integrations: integrations.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_second_notification_on_the_receiver_is_ambiguous() {
        let before = Counts::parse(
            "alertmanager_notifications_total{integration=\"slack\",receiver_name=\"critical\"} 0\n",
        );
        let after = Counts::parse(
            "alertmanager_notifications_total{integration=\"slack\",receiver_name=\"critical\"} 2\n",
        );
        let t = target("critical", &["slack"]);
        let why = ambiguity(&t, true, &before, &after, &[], &|_| None).unwrap();
        assert!(why.contains("2 notifications counted on slack"), "{why}");
        let once = Counts::parse(
            "alertmanager_notifications_total{integration=\"slack\",receiver_name=\"critical\"} 1\n",
        );
        assert!(ambiguity(&t, true, &before, &once, &[], &|_| None).is_none());
    }

    #[test]
    fn other_alerts_clash_on_the_receiver_or_on_a_shared_integration() {
        let c = Counts::parse("");
        let t = target("critical", &["slack", "pagerduty"]);
        let others = vec![("Other".to_string(), vec!["security".to_string()])];
        let of = |r: &str| (r == "security").then(|| vec!["pagerduty".to_string()]);
        // Per receiver: security's alert cannot be counted as critical's.
        assert!(ambiguity(&t, true, &c, &c, &others, &of).is_none());
        // Per integration: it shares PagerDuty, so it could.
        let why = ambiguity(&t, false, &c, &c, &others, &of).unwrap();
        assert!(why.contains("Other (→ security)"), "{why}");
        let mine = vec![("Other".to_string(), vec!["critical".to_string()])];
        assert!(ambiguity(&t, true, &c, &c, &mine, &of).is_some());
    }
}
