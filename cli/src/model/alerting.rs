//! Alerting settings: receivers by integration, tier routing knobs.

use serde::{Deserialize, Serialize};

use crate::secrets::SecretSource;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Alerting {
    /// Where the bundle's runbooks/ are published; alerts link to `<base>/<NAME>.md`.
    pub runbook_base_url: Option<String>,
    #[serde(default)]
    pub receivers: Receivers,
    /// Security alerts (`category=security`) go here, seed 002.
    pub security: Option<SecurityTier>,
    /// SLA breaches (`category=sla`) go here, seed 002: management by email.
    pub sla: Option<SlaTier>,
    /// Capacity alerts are only sent inside these hours, seed 002.
    pub business_hours: Option<BusinessHours>,
    /// Who a critical alert reaches, and when, while nobody acknowledges it.
    pub escalation: Option<Escalation>,
}

/// The escalation of critical alerts (seed 000: first on-call at once, the
/// next after 15 minutes, a PagerDuty incident after 30).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Escalation {
    pub policy: EscalationPolicy,
    /// The levels, first one `after: 0s`; only with `policy: levels`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<EscalationLevel>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EscalationPolicy {
    /// telltale's levels: Prometheus rules raise an `escalation` label on
    /// critical alerts still firing after each delay, Alertmanager routes
    /// it; an Alertmanager silence acknowledges.
    Levels,
    /// Every critical integration at once, PagerDuty included; PagerDuty's
    /// own escalation policy escalates (and its acknowledgement stops it).
    Pagerduty,
}

/// One level: after how long unacknowledged, which integrations.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EscalationLevel {
    /// A Prometheus duration since the alert started firing (`0s` for the first level).
    pub after: String,
    /// The configured integrations (alerting.receivers) this level notifies.
    pub notify: Vec<Integration>,
    /// Slack channel of this level (default: the Slack receiver's).
    pub slack_channel: Option<String>,
    /// Numbers this level texts (default: the SMS receiver's).
    pub sms_to: Option<Vec<String>>,
    /// Addresses this level mails (default: the email receiver's).
    pub email_to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Integration {
    Slack,
    Sms,
    Pagerduty,
    Email,
}

impl Integration {
    pub fn as_str(self) -> &'static str {
        match self {
            Integration::Slack => "slack",
            Integration::Sms => "sms",
            Integration::Pagerduty => "pagerduty",
            Integration::Email => "email",
        }
    }
}

impl Escalation {
    /// The levels in effect: none under `policy: pagerduty`.
    pub fn levels(&self) -> &[EscalationLevel] {
        match self.policy {
            EscalationPolicy::Levels => &self.levels,
            EscalationPolicy::Pagerduty => &[],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Receivers {
    pub slack: Option<Slack>,
    pub pagerduty: Option<PagerDuty>,
    pub email: Option<Email>,
    pub sms: Option<Sms>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Slack {
    pub channel: String,
    pub webhook_url: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PagerDuty {
    pub routing_key: SecretSource,
    /// Events API endpoint; only set to reach a proxy or a test sink.
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Email {
    pub to: String,
    pub from: String,
    pub smarthost: String,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    #[serde(default = "default_true")]
    pub require_tls: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sms {
    pub to: Vec<String>,
    pub twilio: Twilio,
    /// The webhook bridge Alertmanager posts to (Alertmanager has no SMS
    /// receiver). Default: the sachet plugin's service in the namespace.
    pub bridge_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Twilio {
    pub account_sid: String,
    pub from: String,
    pub auth_token: SecretSource,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityTier {
    pub email: Option<String>,
    pub slack_channel: Option<String>,
    /// A separate PagerDuty service for the security team; default: the main one.
    pub pagerduty: Option<PagerDuty>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlaTier {
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BusinessHours {
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default = "default_weekdays")]
    pub weekdays: Vec<String>,
    #[serde(default = "default_start")]
    pub start: String,
    #[serde(default = "default_end")]
    pub end: String,
}

impl Default for BusinessHours {
    fn default() -> Self {
        Self {
            timezone: default_timezone(),
            weekdays: default_weekdays(),
            start: default_start(),
            end: default_end(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_weekdays() -> Vec<String> {
    vec!["monday:friday".into()]
}
fn default_start() -> String {
    "09:00".into()
}
fn default_end() -> String {
    "17:00".into()
}

impl Alerting {
    /// Later layers win field by field; receivers are replaced per integration.
    pub fn merge(&mut self, over: &Alerting) {
        if over.runbook_base_url.is_some() {
            self.runbook_base_url.clone_from(&over.runbook_base_url);
        }
        let r = &over.receivers;
        if r.slack.is_some() {
            self.receivers.slack.clone_from(&r.slack);
        }
        if r.pagerduty.is_some() {
            self.receivers.pagerduty.clone_from(&r.pagerduty);
        }
        if r.email.is_some() {
            self.receivers.email.clone_from(&r.email);
        }
        if r.sms.is_some() {
            self.receivers.sms.clone_from(&r.sms);
        }
        if over.security.is_some() {
            self.security.clone_from(&over.security);
        }
        if over.sla.is_some() {
            self.sla.clone_from(&over.sla);
        }
        if over.business_hours.is_some() {
            self.business_hours.clone_from(&over.business_hours);
        }
        // A chain is one decision: a later layer replaces it whole.
        if over.escalation.is_some() {
            self.escalation.clone_from(&over.escalation);
        }
    }
}
