//! Alerting settings: receivers by integration, tier routing knobs.
//!
//! [`AlertingLayer`] is what one document (profile or config) says, every
//! receiver field optional; [`Alerting`] is what the merged layers resolve
//! to: only complete integrations, which is all the renderers see.

use serde::{Deserialize, Serialize};

use super::receiver_layer::{
    PagerDutyLayer, ReceiversLayer, Resolution, WebhookLayer, example, merge_layer, take,
};
use crate::secrets::SecretSource;

/// The alerting settings in effect: the layers merged, incomplete
/// integrations left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alerting {
    /// Where the bundle's runbooks/ are published; alerts link to `<base>/<NAME>.md`.
    pub runbook_base_url: Option<String>,
    pub receivers: Receivers,
    /// Security alerts (`category=security`) go here.
    pub security: Option<SecurityTier>,
    /// SLA breaches (`category=sla`) go here: management by email.
    pub sla: Option<SlaTier>,
    /// Capacity alerts are only sent inside these hours.
    pub business_hours: Option<BusinessHours>,
    /// Who a critical alert reaches, and when, while nobody acknowledges it.
    pub escalation: Option<Escalation>,
    /// Who hears of alerts no tier route claims (no or unknown severity).
    pub default_receiver: DefaultReceiver,
    /// Grafana's external URL: notifications link each alert's dashboard.
    pub grafana_url: Option<String>,
    /// Integrations declared but left out as incomplete (`slack`,
    /// `security.soc`…): a warning already says so.
    pub left_out: Vec<String>,
}

/// `spec.alerting` of one profile or config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertingLayer {
    /// Where the bundle's runbooks/ are published; alerts link to `<base>/<NAME>.md`.
    pub runbook_base_url: Option<String>,
    #[serde(default)]
    pub receivers: ReceiversLayer,
    /// Security alerts (`category=security`) go to the security team.
    pub security: Option<SecurityLayer>,
    /// SLA breaches (`category=sla`) reach the executives by email.
    pub sla: Option<SlaTier>,
    /// Capacity alerts are only sent inside these hours.
    pub business_hours: Option<BusinessHours>,
    /// Who a critical alert reaches, and when, while nobody acknowledges it.
    pub escalation: Option<Escalation>,
    /// Who hears of alerts no tier route claims: `warning` (its Slack) or
    /// `email` (the operations address of alerting.receivers.email).
    pub default_receiver: Option<DefaultReceiver>,
    /// Grafana's external URL (`https://grafana.example.com`): each
    /// notification links the dashboard of its alert.
    pub grafana_url: Option<String>,
}

/// The receiver of the route tree's root: what catches the alerts that no
/// tier route claims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultReceiver {
    /// The `warning` tier (Slack; email without Slack).
    #[default]
    Warning,
    /// A receiver `default` mailing the operations address
    /// (alerting.receivers.email.to), as a team-email default does.
    Email,
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

    /// The paths of the integration's secret sources below
    /// `alerting.receivers.<integration>`, set or not: what a plugin that
    /// bridges it may take into its Secret (plugin.yaml `spec.bridge`).
    pub fn secret_paths(self) -> &'static [&'static str] {
        match self {
            Integration::Slack => &["webhookUrl"],
            Integration::Sms => &["twilio.authToken"],
            Integration::Pagerduty => &["routingKey"],
            Integration::Email => &["password"],
        }
    }
}

impl Receivers {
    /// Whether the integration is configured (complete; an incomplete one
    /// is left out with a warning of its own).
    pub fn configured(&self, integration: Integration) -> bool {
        match integration {
            Integration::Slack => self.slack.is_some(),
            Integration::Sms => self.sms.is_some(),
            Integration::Pagerduty => self.pagerduty.is_some(),
            Integration::Email => self.email.is_some(),
        }
    }

    /// The source at `path` (one of [`Integration::secret_paths`]) when the
    /// integration is configured and the source set.
    pub fn secret_source(&self, integration: Integration, path: &str) -> Option<&SecretSource> {
        match (integration, path) {
            (Integration::Slack, "webhookUrl") => self.slack.as_ref().map(|s| &s.webhook_url),
            (Integration::Sms, "twilio.authToken") => {
                self.sms.as_ref().map(|s| &s.twilio.auth_token)
            }
            (Integration::Pagerduty, "routingKey") => {
                self.pagerduty.as_ref().map(|p| &p.routing_key)
            }
            (Integration::Email, "password") => {
                self.email.as_ref().and_then(|e| e.password.as_ref())
            }
            _ => None,
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

/// The complete integrations (see receiver_layer.rs for how a document
/// states them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receivers {
    pub slack: Option<Slack>,
    pub pagerduty: Option<PagerDuty>,
    pub email: Option<Email>,
    pub sms: Option<Sms>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Slack {
    pub channel: String,
    pub webhook_url: SecretSource,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PagerDuty {
    pub routing_key: SecretSource,
    /// Events API endpoint; only set to reach a proxy or a test sink.
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub to: String,
    pub from: String,
    pub smarthost: String,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub require_tls: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sms {
    pub to: Vec<String>,
    pub twilio: Twilio,
    /// The webhook bridge Alertmanager posts to (Alertmanager has no SMS
    /// receiver). Default: the `spec.bridge.url` of the plugin bridging
    /// `sms` (render/bridge.rs fills it in when resolving).
    pub bridge_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Twilio {
    pub account_sid: String,
    pub from: String,
    pub auth_token: SecretSource,
}

/// Where security alerts go, resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityTier {
    pub email: Option<String>,
    pub slack_channel: Option<String>,
    /// The security team's own PagerDuty service; without it, the main one.
    pub pagerduty: Option<PagerDuty>,
    /// The security operations centre's webhook.
    pub soc: Option<Webhook>,
}

/// `alerting.security` of one document.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityLayer {
    /// Addresses the security team reads (needs alerting.receivers.email).
    pub email: Option<String>,
    /// The security team's channel (needs alerting.receivers.slack).
    pub slack_channel: Option<String>,
    /// The security team's own PagerDuty service; default: the main one.
    pub pagerduty: Option<PagerDutyLayer>,
    /// The security operations centre's webhook (URL, and a token source).
    pub soc: Option<WebhookLayer>,
}

/// A webhook receiver: its URL, and a bearer token if it takes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub url: String,
    pub token: Option<SecretSource>,
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

impl AlertingLayer {
    /// Later layers win field by field; an escalation chain is replaced whole.
    pub fn merge(&mut self, over: &AlertingLayer) {
        if over.runbook_base_url.is_some() {
            self.runbook_base_url.clone_from(&over.runbook_base_url);
        }
        self.receivers.merge(&over.receivers);
        merge_layer(&mut self.security, &over.security, SecurityLayer::merge);
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
        if over.default_receiver.is_some() {
            self.default_receiver = over.default_receiver;
        }
        if over.grafana_url.is_some() {
            self.grafana_url.clone_from(&over.grafana_url);
        }
    }

    /// The settings in effect, and one warning per integration that is
    /// declared but incomplete (it is left out, never rendered half-set)
    /// and per recipient it leaves unreachable.
    pub fn resolve(&self) -> (Alerting, Vec<String>) {
        let (receivers, mut notes) = self.receivers.resolve();
        let security = self.security.as_ref().map(|s| {
            let mut n = Vec::new();
            let tier = SecurityTier {
                email: s.email.clone(),
                slack_channel: s.slack_channel.clone(),
                pagerduty: take(
                    &mut n,
                    "pagerduty",
                    s.pagerduty.as_ref().map(|p| p.resolve()),
                ),
                soc: take(&mut n, "soc", s.soc.as_ref().map(|w| w.resolve())),
            };
            (tier, n)
        });
        let mut left: Vec<String> = notes
            .iter()
            .filter(|(_, r)| matches!(r, Resolution::Incomplete(_)))
            .map(|(name, _)| name.to_string())
            .collect();
        let mut warnings: Vec<String> = notes
            .drain(..)
            .filter_map(|(name, r)| left_out(&format!("alerting.receivers.{name}"), &r))
            .collect();
        let security = security.map(|(tier, n)| {
            left.extend(
                n.iter()
                    .filter(|(_, r)| matches!(r, Resolution::Incomplete(_)))
                    .map(|(name, _)| format!("security.{name}")),
            );
            warnings.extend(
                n.iter()
                    .filter_map(|(name, r)| left_out(&format!("alerting.security.{name}"), r)),
            );
            tier
        });
        let alerting = Alerting {
            runbook_base_url: self.runbook_base_url.clone(),
            receivers,
            security,
            sla: self.sla.clone(),
            business_hours: self.business_hours.clone(),
            escalation: self.escalation.clone(),
            default_receiver: self.default_receiver.unwrap_or_default(),
            grafana_url: self.grafana_url.clone(),
            left_out: left,
        };
        warnings.extend(alerting.unreachable_recipients());
        (alerting, warnings)
    }
}

impl SecurityLayer {
    fn merge(&mut self, over: &SecurityLayer) {
        if over.email.is_some() {
            self.email.clone_from(&over.email);
        }
        if over.slack_channel.is_some() {
            self.slack_channel.clone_from(&over.slack_channel);
        }
        merge_layer(&mut self.pagerduty, &over.pagerduty, PagerDutyLayer::merge);
        merge_layer(&mut self.soc, &over.soc, WebhookLayer::merge);
    }
}

/// The warning for an integration left out because it is incomplete, with
/// the keys to add (none for one turned off on purpose).
fn left_out(path: &str, r: &Resolution<()>) -> Option<String> {
    let Resolution::Incomplete(missing) = r else {
        return None;
    };
    // `twilio.from` and `twilio.accountSid` become `twilio: {accountSid: …, from: …}`.
    let mut snippet: Vec<(String, Vec<String>)> = Vec::new();
    for key in missing {
        let value = match (path.ends_with("email"), *key) {
            (true, "to" | "from") => "ADDRESS",
            _ => example(key),
        };
        let (head, field) = key.split_once('.').unwrap_or(("", key));
        match snippet.iter_mut().find(|(h, _)| h == head) {
            Some((_, fields)) if !head.is_empty() => fields.push(format!("{field}: {value}")),
            _ => snippet.push((head.to_string(), vec![format!("{field}: {value}")])),
        }
    }
    let snippet: Vec<String> = snippet
        .into_iter()
        .map(|(head, fields)| match head.as_str() {
            "" => fields.join(", "),
            _ => format!("{head}: {{{}}}", fields.join(", ")),
        })
        .collect();
    Some(format!(
        "{path} is left out: it needs {}; nothing is sent through it until telltale.yaml sets `spec.{path}: {{{}}}` (or `enabled: false` to drop it)",
        missing
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", "),
        snippet.join(", "),
    ))
}

impl Alerting {
    /// Recipients a document names whose integration is not configured:
    /// they would silently hear nothing.
    fn unreachable_recipients(&self) -> Vec<String> {
        let r = &self.receivers;
        let mut out = Vec::new();
        if let Some(sla) = &self.sla {
            match (&sla.email, &r.email) {
                (None, _) => out.push(
                    "alerting.sla.email is not set: SLA breaches reach operations only, not the executives; set `spec.alerting.sla.email: ADDRESS` (with alerting.receivers.email)".to_string(),
                ),
                (Some(_), None) => out.push(
                    "alerting.sla.email is set but alerting.receivers.email is not configured: the executives get no SLA breach mail".to_string(),
                ),
                _ => {}
            }
        }
        // An email default the site has not completed is already warned
        // about as a left-out integration.
        if self.default_receiver == DefaultReceiver::Email
            && r.email.is_none()
            && !self.left_out.iter().any(|l| l == "email")
        {
            out.push("alerting.defaultReceiver is email but alerting.receivers.email is not configured: alerts no tier route claims go to the warning receiver".into());
        }
        if let Some(sec) = &self.security {
            if sec.email.is_some() && r.email.is_none() {
                out.push("alerting.security.email is set but alerting.receivers.email is not configured: the security team gets no mail".into());
            }
            if sec.slack_channel.is_some() && r.slack.is_none() {
                out.push("alerting.security.slackChannel is set but alerting.receivers.slack is not configured: the security channel hears nothing".into());
            }
        }
        out
    }
}
