//! Alertmanager routing: receivers by tier, the seeds' escalation and
//! inhibition, and the routing test cases that go with them.
//!
//! Receivers are named by tier (critical, warning, info, security, sla) and
//! hold the integrations configured for it; with `alerting.escalation`
//! levels, `critical` is level 1 and `escalation-2`, `escalation-3`… the
//! later levels (render/escalation.rs raises the label they route on);
//! `alerting.defaultReceiver: email` adds `default`, the operations email,
//! for alerts no tier claims. Their texts come from the notification
//! templates (render/notify_template.rs).
//! Secrets appear only as `*_file` paths into the Secret that `up` creates
//! and Alertmanager mounts.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::notify_template as nt;
use crate::model::Alerting;
use crate::model::alerting::{
    BusinessHours, DefaultReceiver, EscalationLevel, Integration, PagerDuty,
};
pub use crate::model::inhibition::{Inhibition, MatchOp, Matcher};

/// The Secret holding receiver credentials; kube-prometheus-stack mounts it
/// (alertmanagerSpec.secrets) under /etc/alertmanager/secrets/<name>/.
pub const RECEIVER_SECRET: &str = "telltale-alertmanager-receivers";
/// The Secret holding alertmanager.yaml (alertmanagerSpec.configSecret).
pub const CONFIG_SECRET: &str = "telltale-alertmanager-config";
pub const TIERS: [&str; 5] = ["critical", "warning", "info", "security", "sla"];

pub fn secret_file(key: &str) -> String {
    format!("/etc/alertmanager/secrets/{RECEIVER_SECRET}/{key}")
}

/// Keys of the receiver Secret and the config path that supplies each.
pub fn receiver_secret_keys(alerting: &Alerting) -> Vec<(String, crate::secrets::SecretSource)> {
    let r = &alerting.receivers;
    let mut keys = Vec::new();
    if let Some(slack) = &r.slack {
        keys.push(("slack-webhook-url".to_string(), slack.webhook_url.clone()));
    }
    if let Some(pd) = &r.pagerduty {
        keys.push(("pagerduty-routing-key".to_string(), pd.routing_key.clone()));
    }
    if let Some(pd) = alerting
        .security
        .as_ref()
        .and_then(|s| s.pagerduty.as_ref())
    {
        keys.push((
            "security-pagerduty-routing-key".to_string(),
            pd.routing_key.clone(),
        ));
    }
    if let Some(password) = r.email.as_ref().and_then(|e| e.password.clone()) {
        keys.push(("smtp-password".to_string(), password));
    }
    if let Some(token) = alerting
        .security
        .as_ref()
        .and_then(|s| s.soc.as_ref())
        .and_then(|w| w.token.clone())
    {
        keys.push((SOC_KEY.to_string(), token));
    }
    keys
}

/// The receiver Secret's key holding the SOC webhook's bearer token.
const SOC_KEY: &str = "soc-webhook-token";

fn slack(alerting: &Alerting, channel: Option<&str>) -> Option<Value> {
    let s = alerting.receivers.slack.as_ref()?;
    Some(json!({
        "api_url_file": secret_file("slack-webhook-url"),
        "channel": channel.unwrap_or(&s.channel),
        "send_resolved": true,
        "title": nt::call(nt::TITLE),
        "text": nt::call(nt::TEXT),
    }))
}

fn pagerduty(alerting: &Alerting, pd: &PagerDuty, key: &str) -> Value {
    let mut v = json!({
        "routing_key_file": secret_file(key),
        "send_resolved": true,
        "severity": "{{ if eq .CommonLabels.severity \"critical\" }}critical{{ else }}warning{{ end }}",
        "description": nt::call(nt::PAGERDUTY_DESCRIPTION),
        "details": nt::pagerduty_details(alerting.grafana_url.is_some()),
        "links": nt::pagerduty_links(alerting.grafana_url.is_some()),
    });
    if let Some(url) = &pd.url {
        v["url"] = json!(url);
    }
    v
}

fn email(alerting: &Alerting, to: Option<&str>) -> Option<Value> {
    let e = alerting.receivers.email.as_ref()?;
    let mut v = json!({
        "to": to.unwrap_or(&e.to),
        "send_resolved": true,
        "headers": {"Subject": nt::call(nt::EMAIL_SUBJECT)},
        "html": nt::call(nt::EMAIL_HTML),
        "text": nt::call(nt::TEXT),
    });
    if e.password.is_some() {
        v["auth_password_file"] = json!(secret_file("smtp-password"));
    }
    Some(v)
}

fn sms(alerting: &Alerting) -> Option<Value> {
    // Alertmanager has no SMS receiver: the webhook goes to an SMS bridge
    // (a plugin's, or the site's `bridgeUrl`), which holds the provider's
    // token itself. Without a bridge there is nothing to post to (resolving
    // warned).
    let url = alerting.receivers.sms.as_ref()?.bridge_url.as_ref()?;
    Some(json!({"url": url, "send_resolved": false, "max_alerts": 10}))
}

fn receiver(
    name: &str,
    slack: Option<Value>,
    pagerduty: Option<Value>,
    email: Option<Value>,
    webhook: Option<Value>,
) -> Value {
    let mut r = json!({"name": name});
    if let Some(s) = slack {
        r["slack_configs"] = json!([s]);
    }
    if let Some(p) = pagerduty {
        r["pagerduty_configs"] = json!([p]);
    }
    if let Some(e) = email {
        r["email_configs"] = json!([e]);
    }
    if let Some(w) = webhook {
        r["webhook_configs"] = json!([w]);
    }
    r
}

/// The integrations each tier holds, by name, for plan output and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TierIntegrations {
    pub receiver: String,
    pub integrations: Vec<String>,
}

/// The label the escalation rules put on a critical alert still firing,
/// unacknowledged, after a level's delay: `"2"`, `"3"`… (level 1, the
/// alert itself, has none).
pub const ESCALATION_LABEL: &str = "escalation";

/// The receiver of escalation level `index` (0-based): level 1 is the
/// `critical` tier, later levels `escalation-2`, `escalation-3`…
pub fn level_receiver(index: usize) -> String {
    if index == 0 {
        "critical".into()
    } else {
        format!("escalation-{}", index + 1)
    }
}

/// The escalation levels in effect (none under `policy: pagerduty` or
/// without `alerting.escalation`).
pub fn levels(alerting: &Alerting) -> &[EscalationLevel] {
    alerting
        .escalation
        .as_ref()
        .map(|e| e.levels())
        .unwrap_or_default()
}

/// Every receiver telltale renders besides the plugins' webhooks: the
/// tiers, then the escalation levels after the first.
pub fn receiver_names(alerting: &Alerting) -> Vec<String> {
    let mut names: Vec<String> = TIERS.iter().map(|t| t.to_string()).collect();
    names.extend((1..levels(alerting).len()).map(level_receiver));
    if root_receiver(alerting) == DEFAULT_RECEIVER {
        names.push(DEFAULT_RECEIVER.into());
    }
    names
}

/// The receiver `alerting.defaultReceiver: email` adds: the operations
/// address, for the alerts no tier route claims.
pub const DEFAULT_RECEIVER: &str = "default";

/// The receiver of the route tree's root (and its catch-all route):
/// `default` (the operations email) when `defaultReceiver: email` and the
/// email integration is configured, else `warning`.
pub fn root_receiver(alerting: &Alerting) -> &'static str {
    match (alerting.default_receiver, &alerting.receivers.email) {
        (DefaultReceiver::Email, Some(_)) => DEFAULT_RECEIVER,
        _ => "warning",
    }
}

/// One level's receiver: the integrations it names that are configured,
/// with its own Slack channel and mail addresses (its SMS numbers are the
/// bridge's receiver of the same name, see render/bridge.rs).
fn level(alerting: &Alerting, index: usize, level: &EscalationLevel) -> Value {
    let has = |i: Integration| level.notify.contains(&i);
    receiver(
        &level_receiver(index),
        has(Integration::Slack)
            .then(|| slack(alerting, level.slack_channel.as_deref()))
            .flatten(),
        has(Integration::Pagerduty)
            .then(|| {
                alerting
                    .receivers
                    .pagerduty
                    .as_ref()
                    .map(|p| pagerduty(alerting, p, "pagerduty-routing-key"))
            })
            .flatten(),
        has(Integration::Email)
            .then(|| email(alerting, level.email_to.as_deref()))
            .flatten(),
        has(Integration::Sms).then(|| sms(alerting)).flatten(),
    )
}

/// The integrations a level names that `alerting.receivers` does not
/// configure (the level notifies the others; `plan` warns).
pub fn unconfigured_levels(alerting: &Alerting) -> Vec<String> {
    let r = &alerting.receivers;
    let mut out = Vec::new();
    for (i, l) in levels(alerting).iter().enumerate() {
        // A later level texting the first level's numbers reaches the same
        // person again, not the next on-call.
        if i > 0 && l.notify.contains(&Integration::Sms) && l.sms_to.is_none() && r.sms.is_some() {
            out.push(format!(
                "alerting.escalation.levels.{i} texts the same numbers as level 1: set `smsTo: [\"+NUMBER\", …]` on it to reach the next on-call"
            ));
        }
        for integration in &l.notify {
            let configured = match integration {
                Integration::Slack => r.slack.is_some(),
                Integration::Sms => r.sms.is_some(),
                Integration::Pagerduty => r.pagerduty.is_some(),
                Integration::Email => r.email.is_some(),
            };
            // An integration declared but incomplete has its own warning.
            if !configured && !alerting.left_out.iter().any(|l| l == integration.as_str()) {
                out.push(format!(
                    "alerting.escalation.levels.{i} notifies {} but alerting.receivers.{} is not configured: level {} ({}) goes without it",
                    integration.as_str(),
                    integration.as_str(),
                    i + 1,
                    level_receiver(i)
                ));
            }
        }
    }
    out
}

pub fn receivers(alerting: &Alerting) -> Vec<Value> {
    let r = &alerting.receivers;
    let pd_main = r
        .pagerduty
        .as_ref()
        .map(|p| pagerduty(alerting, p, "pagerduty-routing-key"));
    let chain = levels(alerting);
    // With escalation levels the critical tier is level 1 (PagerDuty comes
    // at its level); without, every integration at once (PagerDuty's own
    // escalation policy escalates).
    let critical = match chain.first() {
        Some(first) => level(alerting, 0, first),
        None => receiver(
            "critical",
            slack(alerting, None),
            pd_main.clone(),
            email(alerting, None),
            sms(alerting),
        ),
    };
    // Warning is Slack only (seed 000); without Slack it falls back to email.
    let warning_slack = slack(alerting, None);
    let warning_email = if warning_slack.is_none() {
        email(alerting, None)
    } else {
        None
    };
    let warning = receiver("warning", warning_slack, None, warning_email, None);
    // Info has no integration: Grafana shows info alerts as annotations.
    let info = json!({"name": "info"});
    let security = match &alerting.security {
        Some(sec) => {
            let pd = match &sec.pagerduty {
                Some(p) => Some(pagerduty(alerting, p, "security-pagerduty-routing-key")),
                None => pd_main.clone(),
            };
            let sl = sec
                .slack_channel
                .as_deref()
                .and_then(|c| slack(alerting, Some(c)));
            let em = sec
                .email
                .as_deref()
                .and_then(|to| email(alerting, Some(to)));
            let soc = sec.soc.as_ref().map(|w| {
                let mut v = json!({"url": w.url, "send_resolved": true, "max_alerts": 10});
                if w.token.is_some() {
                    v["http_config"] =
                        json!({"authorization": {"credentials_file": secret_file(SOC_KEY)}});
                }
                v
            });
            receiver("security", sl, pd, em, soc)
        }
        // No security team configured: security alerts page like critical ones.
        None => receiver(
            "security",
            slack(alerting, None),
            pd_main.clone(),
            email(alerting, None),
            None,
        ),
    };
    let sla = match alerting.sla.as_ref().and_then(|s| s.email.as_deref()) {
        Some(to) => receiver("sla", None, None, email(alerting, Some(to)), None),
        None => receiver(
            "sla",
            slack(alerting, None),
            None,
            email(alerting, None),
            None,
        ),
    };
    let mut all = vec![critical, warning, info, security, sla];
    if root_receiver(alerting) == DEFAULT_RECEIVER {
        all.push(receiver(
            DEFAULT_RECEIVER,
            None,
            None,
            email(alerting, None),
            None,
        ));
    }
    all.extend(
        chain
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, l)| level(alerting, i, l)),
    );
    all
}

/// A plugin's webhook that receives every alert besides the tiers (enrichment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub receiver: String,
    pub url: String,
}

fn webhook_receiver(w: &Webhook) -> Value {
    json!({"name": w.receiver, "webhook_configs": [{"url": w.url, "send_resolved": true}]})
}

pub fn config(
    alerting: &Alerting,
    webhooks: &[Webhook],
    declared: &[Inhibition],
    fired: &[Labels],
) -> Value {
    let hours = alerting.business_hours.clone().unwrap_or_default();
    let mut global = json!({"resolve_timeout": "5m"});
    if let Some(e) = &alerting.receivers.email {
        global["smtp_from"] = json!(e.from);
        global["smtp_smarthost"] = json!(e.smarthost);
        global["smtp_require_tls"] = json!(e.require_tls);
        if let Some(user) = &e.username {
            global["smtp_auth_username"] = json!(user);
        }
    }
    json!({
        "global": global,
        "templates": [nt::glob()],
        "route": {
            "receiver": root_receiver(alerting),
            // The seed's ['alertname', 'cluster', 'service'], plus the
            // namespace: a Service is namespaced, and two namespaces' `api`
            // services must not share one notification.
            "group_by": ["alertname", "cluster", "namespace", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": routes(alerting, webhooks),
        },
        "inhibit_rules": inhibitions_for(declared, fired).iter().map(InhibitionPairs::to_json).collect::<Vec<_>>(),
        "receivers": receivers(alerting)
            .into_iter()
            .chain(webhooks.iter().map(webhook_receiver))
            .collect::<Vec<_>>(),
        "time_intervals": [business_hours(&hours)],
    })
}

/// The tier routes after verify's synthetic ones and the plugins' webhooks
/// (which see every real alert and let it continue to its tier).
fn routes(alerting: &Alerting, webhooks: &[Webhook]) -> Vec<Value> {
    let mut routes = synthetic_routes(&receiver_names(alerting));
    routes.extend(
        webhooks
            .iter()
            .map(|w| json!({"receiver": w.receiver, "continue": true})),
    );
    // Escalated copies of critical alerts (rules/escalation.rs) go to their
    // level only, before the category routes: the SLA receiver heard of
    // the alert at level 1. Same timing as the critical tier.
    routes.extend((1..levels(alerting).len()).map(|i| {
        json!({
            "receiver": level_receiver(i),
            "matchers": [format!("{ESCALATION_LABEL}=\"{}\"", i + 1)],
            "group_wait": "10s",
            "repeat_interval": "15m",
        })
    }));
    let tiers = json!([
                // Seed 002: security alerts go to the security team.
                {"receiver": "security", "matchers": ["category=\"security\""]},
                // Seed 002: SLA breaches notify management, then follow severity.
                {"receiver": "sla", "matchers": ["category=\"sla\""], "continue": true},
                // Seed 002: capacity planning (trends, forecasts, queue
                // build-up) only during business hours; a critical or
                // paging alert is never held, whatever its category.
                {"receiver": "warning", "matchers": ["category=\"capacity\"", "severity!~\"critical|page\""], "active_time_intervals": ["business-hours"]},
                // Seed 000: critical re-notifies every 15 minutes until resolved
                // or acknowledged (silenced); the later levels of the chain
                // are the escalation routes above, or PagerDuty's policy.
                {"receiver": "critical", "matchers": ["severity=\"critical\""], "group_wait": "10s", "repeat_interval": "15m"},
                // `severity=page` (the ML serving SLO pages) pages like critical.
                {"receiver": "critical", "matchers": ["severity=\"page\""], "group_wait": "10s", "repeat_interval": "15m"},
                {"receiver": "warning", "matchers": ["severity=\"warning\""]},
                {"receiver": "info", "matchers": ["severity=\"info\""]},
                // Alerts without a known severity: the default receiver.
                // A route of its own, not only the root's receiver: the
                // root's is used only when no route matched, and the
                // plugins' webhook routes above match everything.
                {"receiver": root_receiver(alerting)},
    ]);
    routes.extend(tiers.as_array().cloned().unwrap_or_default());
    routes
}

/// The label `telltale verify` puts on the alerts it posts to prove delivery.
pub const SYNTHETIC_LABEL: &str = "telltale_synthetic";
/// The tier receiver a synthetic alert is meant for.
pub const SYNTHETIC_RECEIVER_LABEL: &str = "telltale_receiver";

/// Routes for verify's synthetic alerts, first in the tree: each goes
/// straight to the tier receiver it names, at once (group_wait 0s), in a
/// group of its own, outside business-hours muting, so a delivery test takes
/// seconds. Real alerts never carry the label.
fn synthetic_routes(receivers: &[String]) -> Vec<Value> {
    receivers
        .iter()
        .map(|tier| {
            json!({
                "receiver": tier,
                "matchers": [
                    format!("{SYNTHETIC_LABEL}=~\".+\""),
                    format!("{SYNTHETIC_RECEIVER_LABEL}=\"{tier}\""),
                ],
                "group_by": ["..."],
                "group_wait": "0s",
                "group_interval": "1m",
                "repeat_interval": "24h",
            })
        })
        .collect()
}

fn business_hours(h: &BusinessHours) -> Value {
    json!({
        "name": "business-hours",
        "time_intervals": [{
            "weekdays": h.weekdays,
            "times": [{"start_time": h.start, "end_time": h.end}],
            "location": h.timezone,
        }],
    })
}

/// The receivers of alertmanager.yaml that text, each with the numbers it
/// texts: `critical`, or each escalation level whose `notify` has `sms`
/// (the level's `smsTo`, or the SMS receiver's numbers). What a bridge of
/// the `sms` integration serves (templates see it as `alerting.sms`).
pub fn sms_receivers(alerting: &Alerting) -> Vec<(String, Vec<String>)> {
    let Some(sms) = &alerting.receivers.sms else {
        return Vec::new();
    };
    let levels = levels(alerting);
    let mut out = Vec::new();
    if levels.is_empty() {
        out.push(("critical".to_string(), sms.to.clone()));
    }
    for (i, level) in levels.iter().enumerate() {
        if level.notify.contains(&Integration::Sms) {
            let to = level.sms_to.as_ref().unwrap_or(&sms.to);
            out.push((level_receiver(i), to.clone()));
        }
    }
    out
}

/// The routing contract, stated apart from the tree that implements it
/// (amtool checks the two agree on every real label set): security alerts
/// to `security`; SLA breaches to `sla` and then their severity's tier;
/// capacity planning below critical to `warning` (business hours); an
/// escalated copy (`escalation="N"`) to its level's receiver only;
/// `severity=page` to `critical`; every other alert to the tier of its
/// severity, and one without a known severity to `root` (the default
/// receiver, [`root_receiver`]).
pub fn expected_receivers(labels: &Labels, root: &str) -> Vec<String> {
    let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or_default();
    // An escalated critical alert: its level's receiver only.
    if let Some(level) = labels.get(ESCALATION_LABEL).filter(|l| !l.is_empty()) {
        return vec![format!("escalation-{level}")];
    }
    let tier = match get("severity") {
        s @ ("critical" | "warning" | "info") => s,
        "page" => "critical",
        _ => root,
    };
    match get("category") {
        "security" => vec!["security".into()],
        "sla" => vec!["sla".into(), tier.into()],
        "capacity" if tier != "critical" => vec!["warning".into()],
        _ => vec![tier.into()],
    }
}

/// An alert's labels, alertname included.
pub type Labels = BTreeMap<String, String>;

/// Labels Prometheus adds to every alert it sends (its external labels;
/// kube-prometheus-stack's values set `cluster`). Rule tests never show them.
pub const EXTERNAL_LABELS: [&str; 1] = ["cluster"];

pub fn with_external(labels: &Labels, cluster: &str) -> Labels {
    let mut l = labels.clone();
    // An empty external label is no label (no cluster name configured).
    if cluster.is_empty() {
        return l;
    }
    for name in EXTERNAL_LABELS {
        l.entry(name.to_string())
            .or_insert_with(|| cluster.to_string());
    }
    l
}

/// Every alert the bundle's promtool tests expect to fire, with its full
/// label set: promtool compares `exp_labels` with the alert's labels
/// exactly, so a passing test proves these are the labels the rule's
/// expression and static labels produce. Files that do not parse are
/// skipped here (promtool reports them).
pub fn fired_alerts<'a>(tests: impl IntoIterator<Item = &'a String>) -> Vec<Labels> {
    let mut out: Vec<Labels> = Vec::new();
    for text in tests {
        let Ok(doc) = serde_saphyr::from_str::<Value>(text) else {
            continue;
        };
        for test in doc["tests"].as_array().into_iter().flatten() {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let Some(alertname) = case["alertname"].as_str() else {
                    continue;
                };
                for alert in case["exp_alerts"].as_array().into_iter().flatten() {
                    let mut labels = Labels::new();
                    labels.insert("alertname".into(), alertname.into());
                    for (k, v) in alert["exp_labels"].as_object().into_iter().flatten() {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        labels.insert(k.clone(), v);
                    }
                    if !out.contains(&labels) {
                        out.push(labels);
                    }
                }
            }
        }
    }
    out
}

/// How an inhibit rule works on the bundle's alerts.
pub trait InhibitionPairs {
    fn pairs(&self, fired: &[Labels]) -> Vec<(Labels, Labels)>;
    fn to_json(&self) -> Value;
}

impl InhibitionPairs for Inhibition {
    /// One (source, target) pair per pair of alert names the rule joins,
    /// the target taking the source's values of the `equal` labels (the
    /// same node, service, volume…): the two fire together.
    fn pairs(&self, fired: &[Labels]) -> Vec<(Labels, Labels)> {
        let sources: Vec<&Labels> = fired
            .iter()
            .filter(|l| Inhibition::selects(&self.source, l))
            .collect();
        let targets: Vec<&Labels> = fired
            .iter()
            .filter(|l| Inhibition::selects(&self.target, l))
            .collect();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let same = |s: &Labels, t: &Labels| {
            self.equal
                .iter()
                .filter(|e| !EXTERNAL_LABELS.contains(&e.as_str()))
                .all(|e| s.get(e) == t.get(e))
        };
        for s in &sources {
            // Targets about the same object as the source first (the same
            // certificate in the same test), then any other.
            let mut ordered: Vec<&&Labels> = targets.iter().filter(|t| same(s, t)).collect();
            ordered.extend(targets.iter().filter(|t| !same(s, t)));
            for t in ordered {
                if *s == *t || !seen.insert((s.get("alertname"), t.get("alertname"))) {
                    continue;
                }
                let mut target = (*t).clone();
                for e in &self.equal {
                    if let Some(v) = s.get(e) {
                        target.insert(e.clone(), v.clone());
                    }
                }
                out.push(((*s).clone(), target));
            }
        }
        out
    }

    fn to_json(&self) -> Value {
        json!({
            "source_matchers": self.source.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "target_matchers": self.target.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "equal": self.equal,
        })
    }
}

/// The declared inhibitions whose source and target both select an alert
/// of this bundle (a rule whose target plugin is not enabled is left out).
pub fn inhibitions_for(declared: &[Inhibition], fired: &[Labels]) -> Vec<Inhibition> {
    declared
        .iter()
        .filter(|rule| !rule.pairs(fired).is_empty())
        .cloned()
        .collect()
}

/// Why an inhibit rule cannot work on the alerts of the bundle: an alert its
/// matchers select lacks one of its `equal` labels (so it never matches, or
/// matches everything lacking it too), or its source and target never fire
/// together. `fired` are [`fired_alerts`]; external labels count as carried.
pub fn inhibition_problems(rules: &[Inhibition], fired: &[Labels]) -> Vec<String> {
    let fired: Vec<Labels> = fired.iter().map(|l| with_external(l, "c")).collect();
    let mut problems = Vec::new();
    for rule in rules {
        for (side, matchers) in [("source", &rule.source), ("target", &rule.target)] {
            let selected: Vec<&Labels> = fired
                .iter()
                .filter(|l| Inhibition::selects(matchers, l))
                .collect();
            if selected.is_empty() {
                problems.push(format!(
                    "inhibition `{}`: its {side} matchers select no alert of the bundle",
                    rule.name
                ));
            }
            for labels in selected {
                for e in &rule.equal {
                    if labels.get(e).is_none_or(|v| v.is_empty()) {
                        problems.push(format!(
                            "inhibition `{}`: {side} alert {} ({}) does not carry the equal label `{e}`",
                            rule.name,
                            labels.get("alertname").map(String::as_str).unwrap_or("?"),
                            labels.iter().filter(|(k, _)| *k != "alertname").map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
                        ));
                    }
                }
            }
        }
        if rule.pairs(&fired).is_empty() {
            problems.push(format!(
                "inhibition `{}`: no source alert and target alert of the bundle fire together",
                rule.name
            ));
        }
    }
    problems
}

/// Which integrations each tier receiver holds.
pub fn tier_integrations(alerting: &Alerting) -> Vec<TierIntegrations> {
    receivers(alerting)
        .iter()
        .map(|r| {
            let mut integrations = Vec::new();
            // The security tier's webhook is the SOC's; every other the SMS bridge.
            let webhook = if r["name"] == "security" {
                "soc-webhook"
            } else {
                "sms-bridge"
            };
            for (key, name) in [
                ("slack_configs", "slack"),
                ("pagerduty_configs", "pagerduty"),
                ("email_configs", "email"),
                ("webhook_configs", webhook),
            ] {
                if r.get(key).is_some() {
                    integrations.push(name.to_string());
                }
            }
            TierIntegrations {
                receiver: r["name"].as_str().unwrap_or_default().to_string(),
                integrations,
            }
        })
        .collect()
}
