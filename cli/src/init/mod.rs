//! `telltale init`'s answers and the config file they make.
//!
//! Pure: the wizard (ui/) and the flags (commands/init.rs) both fill one
//! [`Answers`], and [`render_config`] is the only thing that turns it into
//! text, so the same answers typed or given as flags give the same bytes.
//! Parsing of the flag spellings (`slack=env:VAR`, `30d`, `20Gi`) lives here
//! too, so the wizard validates typed text with the same rules.

mod render;

use std::collections::BTreeMap;
use std::fmt;

pub use render::render_config;

use crate::cluster::production_word;
use crate::model::plugin::Setting;
use crate::model::receiver_layer::ReceiversLayer;
use crate::model::suggest::did_you_mean;
use crate::secrets::SecretSource;

/// Everything `init` asks, answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answers {
    /// The kubeconfig context `up` will insist on.
    pub context: String,
    /// metadata.name and spec.cluster.name.
    pub cluster_name: String,
    pub namespace: String,
    pub profile: String,
    /// For the comment above `profile:`.
    pub profile_description: String,
    /// Plugins switched on (`true`) or off (`false`) against the profile.
    pub plugins: BTreeMap<String, bool>,
    pub receivers: ReceiverAnswers,
    pub slo: Option<SloAnswer>,
    /// Prometheus retention, only when it differs from the profile's.
    pub retention: Option<String>,
    /// Prometheus volume size, only when it differs from the profile's.
    pub storage: Option<String>,
    /// Where each setting is written: the enabled plugins declaring it in
    /// plugin.yaml `spec.settings`, with their key paths (plugin, path).
    pub settings_at: BTreeMap<Setting, Vec<(String, String)>>,
    /// The plugin that carries the `sms` integration's webhook to a
    /// provider (plugin.yaml `spec.bridge`), for the receivers' comment.
    pub sms_bridge: Option<String>,
    pub gitops: Option<GitOpsAnswer>,
}

/// The receivers as the config states them over the profile's: only what
/// differs from the profile is written (`enabled: false` for one the profile
/// declares and the user dropped), so the profile stays the one place its
/// defaults live.
pub type ReceiverAnswers = ReceiversLayer;

/// An availability SLO on a job's HTTP requests (5xx are the errors).
#[derive(Debug, Clone, PartialEq)]
pub struct SloAnswer {
    pub job: String,
    pub objective: f64,
    pub window: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GitOpsAnswer {
    pub repo: String,
    pub path: String,
    pub layout: Layout,
}

/// The config's own layout type: what init writes is what gitops reads.
pub use crate::model::config::Layout;

/// The integrations Alertmanager can notify, in the order they are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReceiverKind {
    Slack,
    Pagerduty,
    Email,
    Sms,
}

impl ReceiverKind {
    pub const ALL: [ReceiverKind; 4] = [
        ReceiverKind::Slack,
        ReceiverKind::Pagerduty,
        ReceiverKind::Email,
        ReceiverKind::Sms,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Slack => "slack",
            ReceiverKind::Pagerduty => "pagerduty",
            ReceiverKind::Email => "email",
            ReceiverKind::Sms => "sms",
        }
    }

    /// What the receiver is, for the picker; `sms_bridge` is the plugin
    /// that texts the SMS webhook (plugin.yaml `spec.bridge`), if any.
    pub fn describe(self, sms_bridge: Option<&str>) -> String {
        match self {
            ReceiverKind::Slack => "Slack channel (incoming webhook)".into(),
            ReceiverKind::Pagerduty => "PagerDuty (Events API v2 routing key)".into(),
            ReceiverKind::Email => "email (SMTP)".into(),
            ReceiverKind::Sms => match sms_bridge {
                Some(plugin) => format!("SMS (Twilio, through the {plugin} webhook bridge)"),
                None => "SMS (Twilio; no enabled plugin bridges its webhook)".into(),
            },
        }
    }

    /// What the secret is, for prompts.
    pub fn secret_name(self) -> &'static str {
        match self {
            ReceiverKind::Slack => "Slack webhook URL",
            ReceiverKind::Pagerduty => "PagerDuty routing key",
            ReceiverKind::Email => "SMTP password",
            ReceiverKind::Sms => "Twilio auth token",
        }
    }

    /// The conventional environment variable, the default source.
    pub fn default_env(self) -> &'static str {
        match self {
            ReceiverKind::Slack => "SLACK_WEBHOOK_URL",
            ReceiverKind::Pagerduty => "PAGERDUTY_ROUTING_KEY",
            ReceiverKind::Email => "SMTP_PASSWORD",
            ReceiverKind::Sms => "TWILIO_AUTH_TOKEN",
        }
    }

    /// The key in an existing Secret, and the file name under /run/secrets.
    pub fn default_key(self) -> &'static str {
        match self {
            ReceiverKind::Slack => "slack-webhook-url",
            ReceiverKind::Pagerduty => "pagerduty-routing-key",
            ReceiverKind::Email => "smtp-password",
            ReceiverKind::Sms => "twilio-auth-token",
        }
    }

    pub fn default_source(self) -> SecretSource {
        SecretSource::Env(self.default_env().to_string())
    }

    pub fn parse(text: &str) -> Result<ReceiverKind, InitError> {
        ReceiverKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                let names = ReceiverKind::ALL.map(ReceiverKind::as_str);
                InitError::new(format!("unknown receiver `{text}`")).with_hint(
                    match did_you_mean(text, names) {
                        Some(guess) => format!("did you mean `{guess}`?"),
                        None => format!("known receivers: {}", names.join(", ")),
                    },
                )
            })
    }
}

/// The secret source name for the default secretRef.
pub const DEFAULT_SECRET_NAME: &str = "telltale-receivers";

/// A bad answer: what is wrong and how to fix it. Never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError {
    pub message: String,
    pub hint: Option<String>,
}

impl InitError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `--receiver KIND[=SOURCE]`.
pub fn parse_receiver_flag(text: &str) -> Result<(ReceiverKind, Option<SecretSource>), InitError> {
    let (kind, source) = match text.split_once('=') {
        Some((kind, source)) => (kind, Some(source)),
        None => (text, None),
    };
    let kind = ReceiverKind::parse(kind.trim())?;
    let source = source
        .map(|s| parse_source(s).map_err(|e| in_flag(e, kind)))
        .transpose()?;
    Ok((kind, source))
}

fn in_flag(e: InitError, kind: ReceiverKind) -> InitError {
    InitError {
        message: format!("--receiver {}=…: {}", kind.as_str(), e.message),
        hint: Some(match e.hint {
            Some(h) => h.replace("KIND", kind.as_str()),
            None => format!(
                "did you mean `--receiver {}=env:{}`? The value itself belongs in that variable, never on the command line",
                kind.as_str(),
                kind.default_env()
            ),
        }),
    }
}

const SOURCE_KINDS: [&str; 4] = ["env", "file", "secretRef", "prompt"];

/// A secret source as `env:VAR`, `file:PATH`, `secretRef:NAME/KEY` or
/// `prompt`. The text may be a pasted secret, so errors never repeat it.
pub fn parse_source(text: &str) -> Result<SecretSource, InitError> {
    let expected = "expected env:VAR, file:PATH, secretRef:NAME/KEY or prompt";
    if text == "prompt" {
        return Ok(SecretSource::Prompt);
    }
    let Some((kind, rest)) = text.split_once(':') else {
        return Err(InitError::new(format!("not a secret source ({expected})")));
    };
    match kind {
        "env" => env_name(rest).map(SecretSource::Env),
        "file" if !rest.is_empty() => Ok(SecretSource::File(rest.to_string())),
        "file" => Err(InitError::new("file: needs a path")),
        "secretRef" => {
            let (name, key) = rest.split_once('/').unwrap_or((rest, ""));
            if k8s_name(name) && !key.is_empty() && secret_key(key) {
                Ok(SecretSource::SecretRef {
                    name: name.into(),
                    key: key.into(),
                })
            } else {
                Err(InitError::new(
                    "secretRef: needs NAME/KEY, a Secret name and one of its keys",
                ))
            }
        }
        other => {
            // Only the part before the colon is echoed: it is a source kind, not a secret.
            let mut e = InitError::new(format!("unknown secret source `{other}:` ({expected})"));
            if other.len() <= 16
                && let Some(guess) =
                    did_you_mean(other, SOURCE_KINDS).or_else(|| same_letters(other))
            {
                e = e.with_hint(format!("did you mean `KIND={guess}:…`?"));
            }
            Err(e)
        }
    }
}

/// A source kind with its letters swapped (`evn`), which short names defeat jaro-winkler on.
fn same_letters(text: &str) -> Option<&'static str> {
    let sorted = |s: &str| {
        let mut c: Vec<char> = s.to_ascii_lowercase().chars().collect();
        c.sort_unstable();
        c
    };
    SOURCE_KINDS.into_iter().find(|k| sorted(k) == sorted(text))
}

/// An environment variable name, upper or lower case.
pub fn env_name(text: &str) -> Result<String, InitError> {
    let ok = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(text.to_string())
    } else {
        Err(InitError::new(
            "not an environment variable name (letters, digits and _, not starting with a digit)",
        ))
    }
}

/// A Kubernetes object name (DNS subdomain).
pub fn k8s_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn secret_key(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// A Prometheus duration such as `15d` or `12h` (units ms, s, m, h, d, w, y).
pub fn duration(text: &str) -> Result<String, InitError> {
    let mut rest = text;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            break;
        }
        let after = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| after.starts_with(u));
        let Some(unit) = unit else { break };
        rest = &after[unit.len()..];
        parts += 1;
    }
    if parts > 0 && rest.is_empty() {
        Ok(text.to_string())
    } else {
        Err(InitError::new(format!(
            "`{text}` is not a Prometheus duration (e.g. 15d, 12h, 2w)"
        )))
    }
}

/// A storage size such as `50Gi`.
pub fn storage_size(text: &str) -> Result<String, InitError> {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let suffix = &text[digits..];
    if digits > 0 && ["Mi", "Gi", "Ti", "M", "G", "T"].contains(&suffix) {
        Ok(text.to_string())
    } else {
        Err(InitError::new(format!(
            "`{text}` is not a volume size (e.g. 20Gi, 500Mi, 1Ti)"
        )))
    }
}

/// An SLO objective in percent, strictly between 0 and 100.
pub fn objective(text: &str) -> Result<f64, InitError> {
    match text.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 100.0 => Ok(v),
        _ => Err(InitError::new(format!(
            "`{text}` is not an objective in percent between 0 and 100 (e.g. 99.9)"
        ))),
    }
}

/// A Prometheus job name, as it appears in `job="…"`.
pub fn job_name(text: &str) -> Result<String, InitError> {
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(text.to_string())
    } else {
        Err(InitError::new(format!(
            "`{text}` is not a job name (letters, digits, - _ . /)"
        )))
    }
}

/// The default profile for a context: kind clusters get `kind`, contexts
/// whose name says production (`prod-eu-1`, `shop-live`, the same words
/// `up` asks a confirmation for) get `production`, the rest `homelab`.
pub fn default_profile(context: Option<&str>, known: &[String]) -> String {
    let production = |c: &str| {
        c.to_lowercase()
            .split(|ch: char| !ch.is_ascii_alphanumeric())
            .any(production_word)
    };
    let preferred = match context {
        Some(c) if c.starts_with("kind-") => "kind",
        Some(c) if production(c) => "production",
        _ => "homelab",
    };
    if known.iter().any(|k| k == preferred) {
        preferred.to_string()
    } else {
        known
            .first()
            .cloned()
            .unwrap_or_else(|| preferred.to_string())
    }
}

/// The default GitOps path for a cluster.
pub fn default_gitops_path(cluster_name: &str) -> String {
    format!("clusters/{cluster_name}/observability")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_flags_parse() {
        assert_eq!(
            parse_receiver_flag("slack=env:SLACK_URL").unwrap(),
            (
                ReceiverKind::Slack,
                Some(SecretSource::Env("SLACK_URL".into()))
            )
        );
        assert_eq!(
            parse_receiver_flag("pagerduty").unwrap(),
            (ReceiverKind::Pagerduty, None)
        );
        assert_eq!(
            parse_receiver_flag("email=secretRef:smtp/password")
                .unwrap()
                .1,
            Some(SecretSource::SecretRef {
                name: "smtp".into(),
                key: "password".into()
            })
        );
        assert_eq!(
            parse_receiver_flag("sms=prompt").unwrap().1,
            Some(SecretSource::Prompt)
        );
    }

    #[test]
    fn bad_receiver_flags_suggest_and_never_echo_the_value() {
        let e = parse_receiver_flag("slak=env:X").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `slack`?"));
        let canary = "https://hooks.slack.com/services/CANARY-7f3a";
        let e = parse_receiver_flag(&format!("slack={canary}")).unwrap_err();
        let all = format!("{} {:?}", e.message, e.hint);
        assert!(!all.contains("CANARY"), "{all}");
        assert!(!all.contains("hooks.slack.com"), "{all}");
        let e = parse_receiver_flag("slack=bogus").unwrap_err();
        assert!(
            e.hint
                .unwrap()
                .contains("did you mean `--receiver slack=env:SLACK_WEBHOOK_URL`?")
        );
        let e = parse_receiver_flag("slack=evn:X").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `slack=env:…`?"));
    }

    #[test]
    fn durations_sizes_and_objectives() {
        assert!(duration("15d").is_ok());
        assert!(duration("1d12h").is_ok());
        assert!(duration("15").is_err());
        assert!(duration("d").is_err());
        assert!(storage_size("50Gi").is_ok());
        assert!(storage_size("50GB").is_err());
        assert_eq!(objective("99.90").unwrap(), 99.9);
        assert!(objective("100").is_err());
    }

    #[test]
    fn kind_contexts_default_to_the_kind_profile() {
        let known = vec!["homelab".to_string(), "kind".to_string()];
        assert_eq!(default_profile(Some("kind-telltale"), &known), "kind");
        assert_eq!(default_profile(Some("lab"), &known), "homelab");
        assert_eq!(default_profile(None, &known), "homelab");
        let known = vec!["homelab".into(), "kind".into(), "production".into()];
        assert_eq!(default_profile(Some("prod-eu-1"), &known), "production");
        assert_eq!(default_profile(Some("shop-live"), &known), "production");
        assert_eq!(default_profile(Some("products-dev"), &known), "homelab");
    }
}
