//! Alertmanager routing: receivers by tier, the seeds' escalation and
//! inhibition, and the routing test cases that go with them.
//!
//! Receivers are named by tier (critical, warning, info, security, sla) and
//! hold the integrations configured for it. Secrets appear only as `*_file`
//! paths into the Secret that `up` creates and Alertmanager mounts.

use serde::Serialize;
use serde_json::{Value, json};

use crate::model::Alerting;
use crate::model::alerting::{BusinessHours, PagerDuty};

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
    keys
}

fn slack(alerting: &Alerting, channel: Option<&str>) -> Option<Value> {
    let s = alerting.receivers.slack.as_ref()?;
    Some(json!({
        "api_url_file": secret_file("slack-webhook-url"),
        "channel": channel.unwrap_or(&s.channel),
        "send_resolved": true,
        "title": "[{{ .Status | toUpper }}{{ if eq .Status \"firing\" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }}",
        "text": "{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\nSLA: {{ .Annotations.sla }}\nRunbook: {{ .Annotations.runbook_url }}\n{{ end }}",
    }))
}

fn pagerduty(pd: &PagerDuty, key: &str) -> Value {
    let mut v = json!({
        "routing_key_file": secret_file(key),
        "send_resolved": true,
        "severity": "{{ if eq .CommonLabels.severity \"critical\" }}critical{{ else }}warning{{ end }}",
        "description": "{{ .CommonLabels.alertname }}: {{ .CommonAnnotations.summary }}",
        "details": {
            "runbook": "{{ .CommonAnnotations.runbook_url }}",
            "sla": "{{ .CommonAnnotations.sla }}",
            "firing": "{{ .Alerts.Firing | len }}",
        },
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
        "headers": {"Subject": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})"},
    });
    if e.password.is_some() {
        v["auth_password_file"] = json!(secret_file("smtp-password"));
    }
    Some(v)
}

fn sms(alerting: &Alerting, namespace: &str) -> Option<Value> {
    let s = alerting.receivers.sms.as_ref()?;
    let url = s
        .bridge_url
        .clone()
        .unwrap_or_else(|| format!("http://sachet.{namespace}.svc:9876/alert"));
    // Alertmanager has no SMS receiver: the webhook goes to an SMS bridge
    // (sachet → Twilio), which holds the Twilio token itself.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierIntegrations {
    pub receiver: String,
    pub integrations: Vec<String>,
}

pub fn receivers(alerting: &Alerting, namespace: &str) -> Vec<Value> {
    let r = &alerting.receivers;
    let pd_main = r
        .pagerduty
        .as_ref()
        .map(|p| pagerduty(p, "pagerduty-routing-key"));
    let critical = receiver(
        "critical",
        slack(alerting, None),
        pd_main.clone(),
        email(alerting, None),
        sms(alerting, namespace),
    );
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
                Some(p) => Some(pagerduty(p, "security-pagerduty-routing-key")),
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
            receiver("security", sl, pd, em, None)
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
    vec![critical, warning, info, security, sla]
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

pub fn config(alerting: &Alerting, namespace: &str, webhooks: &[Webhook]) -> Value {
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
        "route": {
            "receiver": "warning",
            "group_by": ["alertname", "cluster", "namespace"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": routes(webhooks),
        },
        "inhibit_rules": inhibit_rules(),
        "receivers": receivers(alerting, namespace)
            .into_iter()
            .chain(webhooks.iter().map(webhook_receiver))
            .collect::<Vec<_>>(),
        "time_intervals": [business_hours(&hours)],
    })
}

/// The tier routes after verify's synthetic ones and the plugins' webhooks
/// (which see every real alert and let it continue to its tier).
fn routes(webhooks: &[Webhook]) -> Vec<Value> {
    let mut routes = synthetic_routes();
    routes.extend(
        webhooks
            .iter()
            .map(|w| json!({"receiver": w.receiver, "continue": true})),
    );
    let tiers = json!([
                // Seed 002: security alerts go to the security team.
                {"receiver": "security", "matchers": ["category=\"security\""]},
                // Seed 002: SLA breaches notify management, then follow severity.
                {"receiver": "sla", "matchers": ["category=\"sla\""], "continue": true},
                // Seed 002: capacity alerts only during business hours.
                {"receiver": "warning", "matchers": ["category=\"capacity\""], "active_time_intervals": ["business-hours"]},
                // Seed 000: critical re-notifies every 15 minutes until resolved;
                // acknowledgement-based escalation is the paging service's job.
                {"receiver": "critical", "matchers": ["severity=\"critical\""], "group_wait": "10s", "repeat_interval": "15m"},
                {"receiver": "warning", "matchers": ["severity=\"warning\""]},
                {"receiver": "info", "matchers": ["severity=\"info\""]},
    ]);
    routes.extend(tiers.as_array().cloned().unwrap_or_default());
    routes
}

fn inhibit_rules() -> Value {
    json!([
            // A down node silences the alerts of the pods on it.
            {
                "source_matchers": ["alertname=~\"NodeDown|NodeNotReady\""],
                "target_matchers": ["alertname=~\"PodCrashLooping|PodStuckPending|OOMKilled|CPUThrottlingHigh\""],
                "equal": ["node"],
            },
            // Critical silences the warning of the same alert on the same cluster.
            {
                "source_matchers": ["severity=\"critical\""],
                "target_matchers": ["severity=\"warning\""],
                "equal": ["alertname", "cluster"],
            },
            // A down service silences its latency and error alerts.
            {
                "source_matchers": ["alertname=~\"ScrapeTargetDown|ServiceDown\""],
                "target_matchers": ["category=~\"latency|errors\""],
                "equal": ["job"],
            },
    ])
}

/// The label `telltale verify` puts on the alerts it posts to prove delivery.
pub const SYNTHETIC_LABEL: &str = "telltale_synthetic";
/// The tier receiver a synthetic alert is meant for.
pub const SYNTHETIC_RECEIVER_LABEL: &str = "telltale_receiver";

/// Routes for verify's synthetic alerts, first in the tree: each goes
/// straight to the tier receiver it names, at once (group_wait 0s), in a
/// group of its own, outside business-hours muting, so a delivery test takes
/// seconds. Real alerts never carry the label.
fn synthetic_routes() -> Vec<Value> {
    TIERS
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

/// Label sets and the receivers Alertmanager must pick for them; the suite
/// runs each through `amtool config routes test`, verify replays them live.
pub fn routes_test(webhooks: &[Webhook]) -> Value {
    let mut cases = routes_test_cases();
    // Every real alert reaches the plugins' webhooks first.
    for case in cases["cases"].as_array_mut().into_iter().flatten() {
        if let Some(receivers) = case["receivers"].as_array_mut() {
            for (i, w) in webhooks.iter().enumerate() {
                receivers.insert(i, json!(w.receiver));
            }
        }
    }
    cases
}

fn routes_test_cases() -> Value {
    json!({
        "cases": [
            {"name": "critical", "labels": {"alertname": "NodeDown", "severity": "critical"}, "receivers": ["critical"]},
            {"name": "warning", "labels": {"alertname": "HTTP5xxSpike", "severity": "warning"}, "receivers": ["warning"]},
            {"name": "info", "labels": {"alertname": "ComputeScaleUp", "severity": "info"}, "receivers": ["info"]},
            {"name": "security", "labels": {"alertname": "KubeAPIUnauthorizedRequests", "severity": "critical", "category": "security"}, "receivers": ["security"]},
            {"name": "sla breach", "labels": {"alertname": "ServiceAvailabilityBelowSLA", "severity": "critical", "category": "sla"}, "receivers": ["sla", "critical"]},
            {"name": "slo page (seed 004 breach test)", "labels": {"alertname": "AvailabilityBudgetBurnFast", "severity": "critical", "category": "sla", "slo": "availability"}, "receivers": ["sla", "critical"]},
            {"name": "capacity (business hours only)", "labels": {"alertname": "CPUSaturated", "severity": "warning", "category": "capacity"}, "receivers": ["warning"]},
        ],
        "inhibitions": [
            {
                "name": "node down silences its pods' alerts",
                "source": {"alertname": "NodeDown", "severity": "critical", "node": "node-1"},
                "target": {"alertname": "PodCrashLooping", "severity": "critical", "node": "node-1"},
            },
            {
                "name": "critical silences the warning of the same alert",
                "source": {"alertname": "CertificateExpiry", "severity": "critical", "cluster": "c1"},
                "target": {"alertname": "CertificateExpiry", "severity": "warning", "cluster": "c1"},
            },
            {
                "name": "a down service silences its latency and error alerts",
                "source": {"alertname": "ScrapeTargetDown", "severity": "warning", "job": "api"},
                "target": {"alertname": "HTTPLatencyP95High", "severity": "warning", "category": "latency", "job": "api"},
            },
        ],
    })
}

/// Which integrations each tier receiver holds.
pub fn tier_integrations(alerting: &Alerting, namespace: &str) -> Vec<TierIntegrations> {
    receivers(alerting, namespace)
        .iter()
        .map(|r| {
            let mut integrations = Vec::new();
            for (key, name) in [
                ("slack_configs", "slack"),
                ("pagerduty_configs", "pagerduty"),
                ("email_configs", "email"),
                ("webhook_configs", "sms-bridge"),
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
