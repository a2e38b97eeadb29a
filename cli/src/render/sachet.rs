//! The sachet plugin is the bridge of the `sms` integration: Alertmanager
//! has no SMS receiver, so the critical tier posts a webhook to sachet,
//! which texts through Twilio (DESIGN: "SMS goes through a webhook bridge").
//!
//! One source of truth: sachet's receivers, numbers and Twilio account come
//! from `alerting.receivers.sms` in the config, not from plugin values. The
//! Twilio auth token reaches the cluster only through the Secret that `up`
//! creates (key [`TOKEN_KEY`]); the ConfigMap holds a placeholder that the
//! pod's init container replaces from that Secret at start.

use serde_json::{Value, json};

use super::objects::{self, Object};
use super::plan::SecretKey;
use crate::model::Alerting;

pub const PLUGIN: &str = "sachet";
/// The Secret `up` creates with the Twilio auth token.
pub const SECRET: &str = "telltale-sachet";
pub const TOKEN_KEY: &str = "twilio-auth-token";
/// The ConfigMap the sachet Deployment mounts as its config template.
pub const CONFIG_MAP: &str = "telltale-sachet-config";
/// What the init container replaces with the token.
pub const TOKEN_PLACEHOLDER: &str = "${TWILIO_AUTH_TOKEN}";

/// The Secret key that carries the Twilio token, when SMS is configured.
pub fn secret_keys(alerting: &Alerting) -> Vec<SecretKey> {
    alerting
        .receivers
        .sms
        .iter()
        .map(|sms| SecretKey {
            key: TOKEN_KEY.into(),
            source: sms.twilio.auth_token.to_string(),
        })
        .collect()
}

/// sachet's config: one receiver per Alertmanager receiver that holds the
/// sms integration (Alertmanager posts the receiver name, sachet looks it
/// up): `critical`, or each escalation level that texts.
pub fn config(alerting: &Alerting) -> Value {
    let Some(sms) = &alerting.receivers.sms else {
        return json!({"providers": {}, "receivers": []});
    };
    let entry = |name: String, to: &[String]| json!({"name": name, "provider": "twilio", "to": to, "from": sms.twilio.from});
    let levels = super::alertmanager::levels(alerting);
    let mut receivers = Vec::new();
    if levels.is_empty() {
        receivers.push(entry("critical".into(), &sms.to));
    }
    // Each escalation level that texts is a receiver of its own, with the
    // level's numbers (the next on-call's) or the SMS receiver's.
    for (i, level) in levels.iter().enumerate() {
        if level
            .notify
            .contains(&crate::model::alerting::Integration::Sms)
        {
            let to = level.sms_to.as_deref().unwrap_or(&sms.to);
            receivers.push(entry(super::alertmanager::level_receiver(i), to));
        }
    }
    json!({
        "providers": {"twilio": {
            "account_sid": sms.twilio.account_sid,
            "auth_token": TOKEN_PLACEHOLDER,
        }},
        "receivers": receivers,
    })
}

pub fn config_map(namespace: &str, yaml: String) -> Object {
    objects::build(
        "v1",
        "ConfigMap",
        CONFIG_MAP,
        namespace,
        PLUGIN,
        json!({"data": {"config.yaml.tmpl": yaml}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alerting::{Sms, Twilio};
    use crate::secrets::SecretSource;

    #[test]
    fn the_token_is_a_placeholder_and_its_source_a_secret_key() {
        let mut alerting = Alerting::default();
        alerting.receivers.sms = Some(Sms {
            to: vec!["+15550100".into()],
            twilio: Twilio {
                account_sid: "AC1".into(),
                from: "+15550199".into(),
                auth_token: SecretSource::Env("TWILIO_AUTH_TOKEN".into()),
            },
            bridge_url: None,
        });
        let c = config(&alerting);
        assert_eq!(c["providers"]["twilio"]["auth_token"], TOKEN_PLACEHOLDER);
        assert_eq!(c["receivers"][0]["name"], "critical");
        let keys = secret_keys(&alerting);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key, TOKEN_KEY);
        assert!(keys[0].source.contains("TWILIO_AUTH_TOKEN"));
    }
}
