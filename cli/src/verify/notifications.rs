//! `notifications`: proof that every receiver the routes-test cases expect
//! delivers, from Alertmanager's own counters (/metrics).
//!
//! One synthetic alert per receiver, carrying `telltale_synthetic=<run id>`
//! and `telltale_receiver=<tier>`, which the bundle routes first, at
//! group_wait 0s, to that tier's receiver: the same receiver the real alerts
//! of routes-test.yaml reach. Alertmanager delivers within milliseconds at
//! group_wait 0s, so the counters are polled every 5 ms for the first 50 ms,
//! then with a backing-off interval (doubling, at most 200 ms), rather than
//! after a fixed sleep.
//!
//! With `--enable-feature=receiver-name-in-metrics` (Alertmanager >= 0.27)
//! the counters carry `receiver_name`: all alerts are posted together and
//! every receiver is proven on its own counters. Without it they are per
//! integration only, so receivers are proven one after another (the
//! fallback, said in the evidence).
//!
//! A proof is ambiguous, and no pass, when something else could have been
//! counted: more notifications than the synthetic alert explains (counted
//! once more after Alertmanager's alerts were listed, so one that went out
//! meanwhile shows), or another alert that became active on the same
//! receiver (without receiver labels: on one sharing an integration) around
//! the window. An ambiguous receiver is tried again once its counters have
//! been still for a second and no such alert started within the longest
//! group_wait (a quiet window), with a synthetic alert of a new group, at
//! most three attempts in all and never past --timeout. The evidence of a
//! proof says what was counted where, and why nothing else could have been.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Context, Finding};
use crate::render::alertmanager::{SYNTHETIC_LABEL, SYNTHETIC_RECEIVER_LABEL};

/// The first looks at the counters after posting, this far apart…
const FIRST_LOOK: Duration = Duration::from_millis(5);
/// … for this long; then the interval doubles at every look.
const FAST_SPAN: Duration = Duration::from_millis(50);
/// The longest wait between two looks.
const MAX_LOOK: Duration = Duration::from_millis(200);
/// How long before the window another alert may have started and still
/// notify inside it: the bundle's longest group_wait (the root route's).
const GROUP_WAIT: Duration = Duration::from_secs(30);
/// How many times a receiver is tried: once, and again while its proof is
/// ambiguous. Each attempt is a real notification (a page, on a live
/// cluster), so few.
const ATTEMPTS: u32 = 3;
/// A quiet window: the receiver's counters unmoved this long, and no alert
/// they count became active within [`GROUP_WAIT`].
const QUIET_SPAN: Duration = Duration::from_secs(1);
/// How often a quiet window is looked for.
const QUIET_LOOK: Duration = Duration::from_millis(250);
/// The label that makes a retry's synthetic alert a group of its own.
const ATTEMPT_LABEL: &str = "telltale_attempt";
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
/// Returns each target's outcome (time from `started`, before the alerts
/// were posted, to delivery) and the last counts.
async fn poll(
    ctx: &Context<'_>,
    url: &str,
    targets: &[&Target],
    per_receiver: bool,
    before: &Counts,
    started: Instant,
) -> (Vec<Result<Duration, String>>, Option<Counts>) {
    let mut outcomes: Vec<Option<Result<Duration, String>>> =
        targets.iter().map(|_| None).collect();
    let mut wait = FIRST_LOOK;
    let mut last = None;
    loop {
        let left = ctx.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(wait.min(left)).await;
        // Alertmanager delivers within milliseconds at group_wait 0s: look
        // often while that is likely, then back off.
        if started.elapsed() >= FAST_SPAN {
            wait = (wait * 2).min(MAX_LOOK);
        }
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

/// The synthetic alert for one receiver; a retry carries its attempt
/// number, which makes it a group of its own (group_by `...`) that notifies
/// at once, rather than joining the first attempt's group, which would wait
/// for its group_interval.
fn synthetic(ctx: &Context<'_>, t: &Target, attempt: u32, ends: Option<SystemTime>) -> Value {
    let mut alert = json!({
        "labels": {
            "alertname": "TelltaleSyntheticNotification",
            SYNTHETIC_LABEL: ctx.run_id,
            SYNTHETIC_RECEIVER_LABEL: t.receiver,
        },
        "annotations": {
            "summary": format!("telltale verify: synthetic alert for the {} receiver", t.receiver),
            "description": format!("Proves delivery for: {}. Resolved by the same run.", t.cases.join(", ")),
        },
    });
    for (name, value) in &ctx.synthetic_labels {
        alert["labels"][name.as_str()] = json!(value);
    }
    if attempt > 1 {
        alert["labels"][ATTEMPT_LABEL] = json!(attempt.to_string());
    }
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

/// Another alert Alertmanager holds, active and neither silenced nor
/// inhibited, not this run's.
struct Other {
    name: String,
    receivers: Vec<String>,
    /// It became active after `since` (or cannot be dated), so its first
    /// notification may fall in the window.
    recent: bool,
}

/// The other alerts Alertmanager holds, each marked recent when it started
/// after `since`.
async fn others(ctx: &Context<'_>, url: &str, since: SystemTime) -> Result<Vec<Other>, String> {
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
        .map(|a| Other {
            recent: humantime::parse_rfc3339_weak(a.starts_at.trim_end_matches('Z'))
                .map(|t| t >= since)
                .unwrap_or(true),
            name: a.labels.get("alertname").cloned().unwrap_or_default(),
            receivers: a.receivers.into_iter().map(|r| r.name).collect(),
        })
        .collect())
}

/// Which receivers' notifications the counters proving `t` also count: `t`'s
/// own with per-receiver counters; otherwise any sharing an integration
/// (one whose integrations are unknown might).
fn shares(
    t: &Target,
    per_receiver: bool,
    receiver: &str,
    integrations_of: &dyn Fn(&str) -> Option<Vec<String>>,
) -> bool {
    if per_receiver {
        return receiver == t.receiver;
    }
    integrations_of(receiver).is_none_or(|theirs| {
        theirs.iter().any(|i| {
            t.integrations
                .iter()
                .any(|o| metric_integration(o) == metric_integration(i))
        })
    })
}

/// The other alerts whose notifications `t`'s counters also count: the
/// recent ones (which could notify inside the window), as a list for a
/// message, and how many older ones there are.
fn clashes(
    t: &Target,
    per_receiver: bool,
    others: &[Other],
    integrations_of: &dyn Fn(&str) -> Option<Vec<String>>,
) -> (Vec<String>, usize) {
    // alertname and receivers → how many such alerts.
    let mut recent: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut older = 0;
    for o in others {
        if !o
            .receivers
            .iter()
            .any(|r| shares(t, per_receiver, r, integrations_of))
        {
            continue;
        }
        if o.recent {
            *recent
                .entry((o.name.as_str(), o.receivers.join(", ")))
                .or_default() += 1;
        } else {
            older += 1;
        }
    }
    let listed = recent
        .into_iter()
        .map(|((name, receivers), n)| match n {
            1 => format!("{name} (→ {receivers})"),
            n => format!("{n}× {name} (→ {receivers})"),
        })
        .collect();
    (listed, older)
}

/// Where `t`'s counters are: its receiver's, or the integrations' (shared).
fn counted_on(t: &Target, per_receiver: bool) -> String {
    if per_receiver {
        format!("receiver_name=\"{}\"", t.receiver)
    } else {
        "the integration counters every receiver shares".to_string()
    }
}

/// What the counters of `t` moved by in the window, e.g. `slack +1,
/// pagerduty +1`.
fn counted(t: &Target, per_receiver: bool, before: &Counts, after: &Counts) -> String {
    t.expected(per_receiver)
        .keys()
        .map(|k| format!("{} +{}", k.1, delta(&after.total, &before.total, k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a delivered target's proof is ambiguous, if it is: the counters
/// moved more than the synthetic alert explains, or another alert they
/// also count became active around the window.
fn ambiguity(
    t: &Target,
    per_receiver: bool,
    before: &Counts,
    after: &Counts,
    others: &[Other],
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
    let (recent, _) = clashes(t, per_receiver, others, integrations_of);
    (!recent.is_empty()).then(|| {
        format!(
            "{}: other alerts became active on {} during the proof: {}",
            t.receiver,
            if per_receiver {
                "the same receiver"
            } else {
                "a receiver sharing its integrations"
            },
            recent.join(", ")
        )
    })
}

/// What one attempt found for one receiver.
enum Verdict {
    /// Delivered, and nothing else could have been counted: the evidence.
    Proven(String),
    Failed(String),
    /// Delivered perhaps, but not provably by this run: why.
    Ambiguous(String),
}

/// Everything an attempt needs besides its targets.
struct Attempt<'c, 'a> {
    ctx: &'c Context<'a>,
    url: &'c str,
    per_receiver: bool,
    integrations_of: &'c dyn Fn(&str) -> Option<Vec<String>>,
}

impl Attempt<'_, '_> {
    /// Posts `targets`' synthetic alerts (attempt `n`), polls until each is
    /// delivered or failed, and judges each proof against Alertmanager's
    /// other alerts and the counters seen after them. With per-receiver
    /// counters every alert is posted at once; otherwise one after another,
    /// each proven before the next is posted. Returns the verdicts and the
    /// last counts (the next attempt's starting point).
    async fn run<'t>(
        &self,
        targets: &[&'t Target],
        n: u32,
        before: Counts,
        posted: &mut Vec<(&'t Target, u32)>,
    ) -> (Vec<Verdict>, Counts) {
        if self.per_receiver {
            return self.together(targets, n, before, posted).await;
        }
        let mut verdicts = Vec::new();
        let mut before = before;
        for t in targets {
            let (mut v, after) = self.together(&[t], n, before, posted).await;
            verdicts.append(&mut v);
            before = after;
        }
        (verdicts, before)
    }

    async fn together<'t>(
        &self,
        targets: &[&'t Target],
        n: u32,
        before: Counts,
        posted: &mut Vec<(&'t Target, u32)>,
    ) -> (Vec<Verdict>, Counts) {
        let (ctx, url) = (self.ctx, self.url);
        let since = SystemTime::now() - GROUP_WAIT;
        let started = Instant::now();
        let alerts: Vec<Value> = targets.iter().map(|t| synthetic(ctx, t, n, None)).collect();
        if let Err(e) = ctx
            .http
            .post_json(&format!("{url}/api/v2/alerts"), &Value::Array(alerts))
            .await
        {
            let why = format!("cannot post the synthetic alerts: {e}");
            return (
                targets
                    .iter()
                    .map(|_| Verdict::Failed(why.clone()))
                    .collect(),
                before,
            );
        }
        posted.extend(targets.iter().map(|t| (*t, n)));
        let (outcomes, last) = poll(ctx, url, targets, self.per_receiver, &before, started).await;
        let others = others(ctx, url, since).await;
        // Counted after the alerts were listed: a notification of another
        // alert that went out meanwhile shows as an extra count.
        let after = match counts(ctx, url).await {
            Ok(c) => c,
            Err(_) => last.unwrap_or_else(|| before.clone()),
        };
        let verdicts = targets
            .iter()
            .zip(outcomes)
            .map(|(t, outcome)| match (outcome, &others) {
                (Err(e), _) => Verdict::Failed(e),
                (Ok(_), Err(e)) => Verdict::Ambiguous(format!("{}: {e}", t.receiver)),
                (Ok(took), Ok(others)) => {
                    match ambiguity(
                        t,
                        self.per_receiver,
                        &before,
                        &after,
                        others,
                        self.integrations_of,
                    ) {
                        Some(why) => Verdict::Ambiguous(why),
                        None => Verdict::Proven(self.proof(t, n, took, &before, &after, others)),
                    }
                }
            })
            .collect();
        (verdicts, after)
    }

    /// The evidence of a proof: what was counted where, and why nothing
    /// else could have been.
    fn proof(
        &self,
        t: &Target,
        n: u32,
        took: Duration,
        before: &Counts,
        after: &Counts,
        others: &[Other],
    ) -> String {
        let (_, older) = clashes(t, self.per_receiver, others, self.integrations_of);
        let whose = if self.per_receiver {
            "this receiver"
        } else {
            "a receiver sharing these integrations"
        };
        let older = match older {
            0 => String::new(),
            k => format!(
                "; {k} older alert(s) active there, whose next notification would have shown as an extra count"
            ),
        };
        let alone = if self.per_receiver {
            ""
        } else {
            ", no other synthetic alert in flight"
        };
        let attempt = if n > 1 {
            format!(" on attempt {n}, in a quiet window")
        } else {
            String::new()
        };
        format!(
            "{}: delivered via {} in {} ms{attempt}; counted on {}: {}, exactly the synthetic alert's{alone}; nothing else could have been counted (no other alert on {whose} became active from {}s before the window to its end{older}; cases: {})",
            t.receiver,
            t.integrations.join(", "),
            took.as_millis(),
            counted_on(t, self.per_receiver),
            counted(t, self.per_receiver, before, after),
            GROUP_WAIT.as_secs(),
            t.cases.join(", ")
        )
    }

    /// Waits for a quiet window on `targets`: their counters unmoved for
    /// [`QUIET_SPAN`] and no alert they also count became active in the last
    /// [`GROUP_WAIT`]. Returns the counts at its start, or why there was none
    /// before the deadline.
    async fn quiet(&self, targets: &[&Target]) -> Result<Counts, String> {
        let (ctx, url) = (self.ctx, self.url);
        let mut last: Option<Counts> = None;
        let mut still_since = Instant::now();
        let mut why = String::from("no look yet");
        loop {
            let now = Instant::now();
            if now >= ctx.deadline {
                return Err(format!(
                    "no quiet window within --timeout {} (last: {why})",
                    humantime::format_duration(ctx.timeout)
                ));
            }
            let c = counts(ctx, url).await?;
            let others = others(ctx, url, SystemTime::now() - GROUP_WAIT).await?;
            let moved = last.as_ref().is_none_or(|l| {
                targets.iter().any(|t| {
                    t.expected(self.per_receiver)
                        .keys()
                        .any(|k| delta(&c.total, &l.total, k) != 0.0)
                })
            });
            if moved {
                still_since = now;
                why = "the counters moved".to_string();
            }
            let clash: Vec<String> = targets
                .iter()
                .flat_map(|t| clashes(t, self.per_receiver, &others, self.integrations_of).0)
                .collect();
            if !clash.is_empty() {
                why = format!("other alerts became active: {}", clash.join(", "));
            } else if now.duration_since(still_since) >= QUIET_SPAN {
                return Ok(c);
            }
            last = Some(c);
            let left = ctx.deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(QUIET_LOOK.min(left)).await;
        }
    }
}

/// For every receiver the routes-test cases expect, one synthetic alert and
/// proof that each of its integrations delivered it; an ambiguous proof is
/// tried again in a quiet window, at most [`ATTEMPTS`] times in all. All
/// synthetic alerts are silenced, then resolved, at the end.
pub async fn notifications(ctx: &Context<'_>, url: &str) -> Finding {
    let plan = &ctx.bundle.plan;
    // receiver → the cases that expect it, in first-seen order.
    let receivers = ctx.bundle.routes.receivers();
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

    let first = match counts(ctx, url).await {
        Ok(c) => c,
        Err(e) => return Finding::fail(e, evidence),
    };
    let per_receiver = first.per_receiver();
    evidence.push(if per_receiver {
        format!(
            "per-receiver counters (receiver_name in Alertmanager's metrics): {} synthetic alerts posted together",
            targets.len()
        )
    } else {
        "fallback: Alertmanager's counters carry no receiver_name (it needs Alertmanager >= 0.27 with --enable-feature=receiver-name-in-metrics), so receivers are proven one after another by integration counters".to_string()
    });
    let attempt = Attempt {
        ctx,
        url,
        per_receiver,
        integrations_of: &integrations_of,
    };
    let mut posted: Vec<(&Target, u32)> = Vec::new();
    let all: Vec<&Target> = targets.iter().collect();
    let (mut verdicts, _) = attempt.run(&all, 1, first, &mut posted).await;
    let mut retried = 0;
    for n in 2..=ATTEMPTS {
        let pending: Vec<usize> = (0..all.len())
            .filter(|i| matches!(verdicts[*i], Verdict::Ambiguous(_)))
            .collect();
        if pending.is_empty() {
            break;
        }
        let again: Vec<&Target> = pending.iter().map(|i| all[*i]).collect();
        for i in &pending {
            if let Verdict::Ambiguous(why) = &verdicts[*i] {
                evidence.push(format!(
                    "ambiguous on attempt {}: {why}; waiting for a quiet window to try again",
                    n - 1
                ));
            }
        }
        let before = match attempt.quiet(&again).await {
            Ok(c) => c,
            Err(e) => {
                for i in &pending {
                    if let Verdict::Ambiguous(why) = &mut verdicts[*i] {
                        why.push_str(&format!(" (not retried: {e})"));
                    }
                }
                break;
            }
        };
        retried += pending.len();
        let (new, _) = attempt.run(&again, n, before, &mut posted).await;
        for (i, v) in pending.into_iter().zip(new) {
            verdicts[i] = v;
        }
    }
    let mut failures = Vec::new();
    let mut ambiguous = Vec::new();
    for v in &verdicts {
        match v {
            Verdict::Proven(line) => evidence.push(line.clone()),
            Verdict::Failed(e) => {
                evidence.push(e.clone());
                failures.push(e.clone());
            }
            Verdict::Ambiguous(why) => {
                evidence.push(format!("ambiguous: {why}"));
                ambiguous.push(why.clone());
            }
        }
    }

    if let Err(e) = quiet_resolve(ctx, url, &posted).await {
        evidence.push(e);
    }

    let slo_page: Vec<&str> = all
        .iter()
        .zip(&verdicts)
        .filter(|(t, v)| {
            matches!(v, Verdict::Proven(_)) && t.cases.iter().any(|c| c.starts_with("slo page"))
        })
        .map(|(t, _)| t.receiver.as_str())
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
        let retry_note = match retried {
            0 => String::new(),
            _ => ", after a retry in a quiet window".to_string(),
        };
        Finding::pass(
            format!(
                "{} receiver(s) proven end to end ({} routing cases){retry_note}",
                all.len(),
                ctx.bundle.routes.cases.len()
            ),
            evidence,
        )
    }
}

/// Silences this run's synthetic alerts, then resolves them: the silence
/// outlasts the synthetic routes' group_interval, so their resolved
/// notifications are muted and no later run can count them.
async fn quiet_resolve(
    ctx: &Context<'_>,
    url: &str,
    posted: &[(&Target, u32)],
) -> Result<(), String> {
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
        .map(|(t, n)| synthetic(ctx, t, *n, Some(now)))
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
        let other = |receiver: &str, recent: bool| Other {
            name: "Other".into(),
            receivers: vec![receiver.into()],
            recent,
        };
        let others = vec![other("security", true)];
        let of = |r: &str| (r == "security").then(|| vec!["pagerduty".to_string()]);
        // Per receiver: security's alert cannot be counted as critical's.
        assert!(ambiguity(&t, true, &c, &c, &others, &of).is_none());
        // Per integration: it shares PagerDuty, so it could.
        let why = ambiguity(&t, false, &c, &c, &others, &of).unwrap();
        assert!(why.contains("Other (→ security)"), "{why}");
        let mine = vec![other("critical", true)];
        assert!(ambiguity(&t, true, &c, &c, &mine, &of).is_some());
        // One that started before the window is counted, not a clash: its
        // next notification would show as an extra count.
        let old = vec![other("critical", false)];
        assert!(ambiguity(&t, true, &c, &c, &old, &of).is_none());
        assert_eq!(clashes(&t, true, &old, &of), (vec![], 1));
    }
}
