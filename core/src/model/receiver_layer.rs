//! Receivers as each document states them: every field optional, so a
//! profile can declare an integration it wants (with the secret sources it
//! knows) and leave the site's own values (numbers, addresses, hosts) to the
//! config. After the layers merge, an integration is rendered only when it
//! is complete; an incomplete one is left out with a warning that names the
//! keys to add, and `enabled: false` turns one off. No placeholder ever
//! stands in for a value the profile cannot know.

use serde::{Deserialize, Serialize};

use super::alerting::{Email, PagerDuty, Receivers, Slack, Sms, Twilio, Webhook};
use crate::secrets::SecretSource;

/// Later layers win field by field.
macro_rules! merge_fields {
    ($into:expr, $over:expr, $($field:ident),+) => {
        $(if $over.$field.is_some() { $into.$field.clone_from(&$over.$field); })+
    };
}

/// One integration as the merged layers leave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution<T> {
    Configured(T),
    /// `enabled: false` in some layer: left out on purpose, no warning.
    Off,
    /// Declared, but these keys (relative to the integration) have no value.
    Incomplete(Vec<&'static str>),
}

impl<T> Resolution<T> {
    pub fn configured(self) -> Option<T> {
        match self {
            Resolution::Configured(t) => Some(t),
            _ => None,
        }
    }
}

/// What a key needs, for the snippet a warning shows (`to: [NUMBER, …]`).
pub fn example(key: &str) -> &'static str {
    match key {
        "to" | "smsTo" => "[\"+NUMBER\", …]",
        "email.to" => "ADDRESS",
        "twilio.accountSid" => "ACCOUNT_SID",
        "twilio.from" | "from" => "SENDER",
        "smarthost" => "HOST:PORT",
        "channel" => "\"#CHANNEL\"",
        "url" => "https://HOST/PATH",
        "webhookUrl" | "routingKey" | "token" | "twilio.authToken" | "password" => "{env: VAR}",
        _ => "VALUE",
    }
}

fn off<T>(enabled: Option<bool>) -> Option<Resolution<T>> {
    (enabled == Some(false)).then_some(Resolution::Off)
}

fn need<'a, T>(
    missing: &mut Vec<&'static str>,
    key: &'static str,
    v: &'a Option<T>,
) -> Option<&'a T> {
    if v.is_none() {
        missing.push(key);
    }
    v.as_ref()
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReceiversLayer {
    pub slack: Option<SlackLayer>,
    pub pagerduty: Option<PagerDutyLayer>,
    pub email: Option<EmailLayer>,
    pub sms: Option<SmsLayer>,
}

impl ReceiversLayer {
    pub fn merge(&mut self, over: &ReceiversLayer) {
        merge_layer(&mut self.slack, &over.slack, SlackLayer::merge);
        merge_layer(&mut self.pagerduty, &over.pagerduty, PagerDutyLayer::merge);
        merge_layer(&mut self.email, &over.email, EmailLayer::merge);
        merge_layer(&mut self.sms, &over.sms, SmsLayer::merge);
    }

    /// The complete integrations, and each declared one that is not, by
    /// its key under `alerting.receivers`.
    pub fn resolve(&self) -> (Receivers, Vec<(&'static str, Resolution<()>)>) {
        let mut notes = Vec::new();
        let receivers = Receivers {
            slack: take(
                &mut notes,
                "slack",
                self.slack.as_ref().map(SlackLayer::resolve),
            ),
            pagerduty: take(
                &mut notes,
                "pagerduty",
                self.pagerduty.as_ref().map(PagerDutyLayer::resolve),
            ),
            email: take(
                &mut notes,
                "email",
                self.email.as_ref().map(EmailLayer::resolve),
            ),
            sms: take(&mut notes, "sms", self.sms.as_ref().map(SmsLayer::resolve)),
        };
        (receivers, notes)
    }
}

/// The integration if it is complete; otherwise why not goes to `notes`.
pub fn take<T>(
    notes: &mut Vec<(&'static str, Resolution<()>)>,
    name: &'static str,
    r: Option<Resolution<T>>,
) -> Option<T> {
    match r? {
        Resolution::Configured(t) => Some(t),
        Resolution::Off => {
            notes.push((name, Resolution::Off));
            None
        }
        Resolution::Incomplete(m) => {
            notes.push((name, Resolution::Incomplete(m)));
            None
        }
    }
}

/// Merges `over` into `into`, field by field when both are there.
pub fn merge_layer<T: Clone>(into: &mut Option<T>, over: &Option<T>, merge: fn(&mut T, &T)) {
    match (into.as_mut(), over) {
        (Some(i), Some(o)) => merge(i, o),
        (None, Some(o)) => *into = Some(o.clone()),
        _ => {}
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlackLayer {
    pub enabled: Option<bool>,
    pub channel: Option<String>,
    pub webhook_url: Option<SecretSource>,
}

impl SlackLayer {
    fn merge(&mut self, over: &SlackLayer) {
        merge_fields!(self, over, enabled, channel, webhook_url);
    }

    pub fn resolve(&self) -> Resolution<Slack> {
        if let Some(off) = off(self.enabled) {
            return off;
        }
        let mut m = Vec::new();
        let channel = need(&mut m, "channel", &self.channel);
        let url = need(&mut m, "webhookUrl", &self.webhook_url);
        match (channel, url) {
            (Some(c), Some(u)) => Resolution::Configured(Slack {
                channel: c.clone(),
                webhook_url: u.clone(),
            }),
            _ => Resolution::Incomplete(m),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PagerDutyLayer {
    pub enabled: Option<bool>,
    pub routing_key: Option<SecretSource>,
    /// Events API endpoint; only set to reach a proxy or a test sink.
    pub url: Option<String>,
}

impl PagerDutyLayer {
    pub fn merge(&mut self, over: &PagerDutyLayer) {
        merge_fields!(self, over, enabled, routing_key, url);
    }

    pub fn resolve(&self) -> Resolution<PagerDuty> {
        if let Some(off) = off(self.enabled) {
            return off;
        }
        let mut m = Vec::new();
        match need(&mut m, "routingKey", &self.routing_key) {
            Some(key) => Resolution::Configured(PagerDuty {
                routing_key: key.clone(),
                url: self.url.clone(),
            }),
            None => Resolution::Incomplete(m),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailLayer {
    pub enabled: Option<bool>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub smarthost: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub require_tls: Option<bool>,
}

impl EmailLayer {
    fn merge(&mut self, over: &EmailLayer) {
        merge_fields!(
            self,
            over,
            enabled,
            to,
            from,
            smarthost,
            username,
            password,
            require_tls
        );
    }

    pub fn resolve(&self) -> Resolution<Email> {
        if let Some(off) = off(self.enabled) {
            return off;
        }
        let mut m = Vec::new();
        let to = need(&mut m, "to", &self.to);
        let from = need(&mut m, "from", &self.from);
        let host = need(&mut m, "smarthost", &self.smarthost);
        match (to, from, host) {
            (Some(to), Some(from), Some(host)) => Resolution::Configured(Email {
                to: to.clone(),
                from: from.clone(),
                smarthost: host.clone(),
                username: self.username.clone(),
                password: self.password.clone(),
                require_tls: self.require_tls.unwrap_or(true),
            }),
            _ => Resolution::Incomplete(m),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SmsLayer {
    pub enabled: Option<bool>,
    pub to: Option<Vec<String>>,
    pub twilio: Option<TwilioLayer>,
    /// The webhook bridge Alertmanager posts to (Alertmanager has no SMS
    /// receiver). Default: the `url` of the enabled plugin that bridges
    /// `sms` (plugin.yaml `spec.bridge`; sachet's service built in).
    pub bridge_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TwilioLayer {
    pub account_sid: Option<String>,
    pub from: Option<String>,
    pub auth_token: Option<SecretSource>,
}

impl TwilioLayer {
    fn merge(&mut self, over: &TwilioLayer) {
        merge_fields!(self, over, account_sid, from, auth_token);
    }
}

impl SmsLayer {
    fn merge(&mut self, over: &SmsLayer) {
        merge_fields!(self, over, enabled, to, bridge_url);
        merge_layer(&mut self.twilio, &over.twilio, TwilioLayer::merge);
    }

    pub fn resolve(&self) -> Resolution<Sms> {
        if let Some(off) = off(self.enabled) {
            return off;
        }
        let mut m = Vec::new();
        let to = need(&mut m, "to", &self.to).filter(|t| !t.is_empty());
        let t = self.twilio.clone().unwrap_or_default();
        let sid = need(&mut m, "twilio.accountSid", &t.account_sid);
        let from = need(&mut m, "twilio.from", &t.from);
        let token = need(&mut m, "twilio.authToken", &t.auth_token);
        match (to, sid, from, token) {
            (Some(to), Some(sid), Some(from), Some(token)) => Resolution::Configured(Sms {
                to: to.clone(),
                twilio: Twilio {
                    account_sid: sid.clone(),
                    from: from.clone(),
                    auth_token: token.clone(),
                },
                bridge_url: self.bridge_url.clone(),
            }),
            _ => {
                if to.is_none() && !m.contains(&"to") {
                    m.insert(0, "to");
                }
                Resolution::Incomplete(m)
            }
        }
    }
}

/// A generic webhook: a plain URL (checked to hold no credential) and,
/// when the endpoint wants one, a bearer token from a secret source.
/// (Alertmanager 0.33's webhook has no `url_file`, so the token cannot live
/// in the URL.)
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookLayer {
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub token: Option<SecretSource>,
}

impl WebhookLayer {
    pub fn merge(&mut self, over: &WebhookLayer) {
        merge_fields!(self, over, enabled, url, token);
    }

    pub fn resolve(&self) -> Resolution<Webhook> {
        if let Some(off) = off(self.enabled) {
            return off;
        }
        let mut m = Vec::new();
        match need(&mut m, "url", &self.url) {
            Some(url) => Resolution::Configured(Webhook {
                url: url.clone(),
                token: self.token.clone(),
            }),
            None => Resolution::Incomplete(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<SecretSource> {
        Some(SecretSource::Env(v.into()))
    }

    #[test]
    fn a_later_layer_completes_an_integration_field_by_field() {
        let mut profile = ReceiversLayer {
            sms: Some(SmsLayer {
                twilio: Some(TwilioLayer {
                    auth_token: env("TWILIO_AUTH_TOKEN"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (r, notes) = profile.resolve();
        assert!(r.sms.is_none());
        assert_eq!(
            notes,
            vec![(
                "sms",
                Resolution::Incomplete(vec!["to", "twilio.accountSid", "twilio.from"])
            )]
        );
        profile.merge(&ReceiversLayer {
            sms: Some(SmsLayer {
                to: Some(vec!["+441234".into()]),
                twilio: Some(TwilioLayer {
                    account_sid: Some("AC1".into()),
                    from: Some("+442345".into()),
                    auth_token: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let (r, notes) = profile.resolve();
        assert!(notes.is_empty(), "{notes:?}");
        let sms = r.sms.unwrap();
        assert_eq!(
            sms.twilio.auth_token,
            SecretSource::Env("TWILIO_AUTH_TOKEN".into())
        );
        assert_eq!(sms.twilio.account_sid, "AC1");
    }

    #[test]
    fn enabled_false_turns_a_complete_integration_off() {
        let mut layer = ReceiversLayer {
            pagerduty: Some(PagerDutyLayer {
                routing_key: env("PD"),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(layer.resolve().0.pagerduty.is_some());
        layer.merge(&ReceiversLayer {
            pagerduty: Some(PagerDutyLayer {
                enabled: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        });
        let (r, notes) = layer.resolve();
        assert!(r.pagerduty.is_none());
        assert_eq!(notes, vec![("pagerduty", Resolution::Off)]);
    }
}
