//! The last gate before a commit: every file (and the pull request text) is
//! searched for the config's secret values — resolved from their env and
//! file sources — and for well-known secret shapes. A hit names the file,
//! the line and what matched (`env:SLACK_WEBHOOK_URL`, "Slack webhook
//! URL"), never the value.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use base64::Engine;
use regex::Regex;

use crate::error::CommandError;
use crate::render::Resolved;
use crate::secrets::{Secret, SecretSource};

/// A value that must never be committed, and the source it came from.
#[derive(Debug, Clone)]
pub struct Canary {
    pub source: String,
    pub value: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    /// The source (`env:VAR`) or the kind of secret the line looks like.
    pub what: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// Values shorter than this would match ordinary text; they are reported
/// as unscanned instead.
pub const MIN_LEN: usize = 6;

/// Every secret source the config names: receivers, plugin values, the
/// Grafana datasource.
pub fn config_sources(r: &Resolved) -> Vec<SecretSource> {
    let mut out: Vec<SecretSource> = crate::render::alertmanager::receiver_secret_keys(&r.alerting)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    if let Some(sms) = &r.alerting.receivers.sms {
        out.push(sms.twilio.auth_token.clone());
    }
    for p in &r.plugins {
        out.extend(p.secrets.iter().map(|(_, s)| s.clone()));
    }
    if let Some(pg) = &r.grafana.datasources.postgres {
        out.push(pg.password.clone());
    }
    out.sort_by_key(|s| s.to_string());
    out.dedup();
    out
}

/// The values of the env and file sources that resolve here. `env` is the
/// process environment, passed in. Returns the canaries and the sources
/// that could not be checked (unset, unreadable, too short, or resolved
/// only in the cluster).
pub fn canaries(
    sources: &[SecretSource],
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Canary>, Vec<String>) {
    let mut found = Vec::new();
    let mut unchecked = Vec::new();
    for source in sources {
        let value = match source {
            SecretSource::Env(var) => env(var).filter(|v| !v.is_empty()),
            SecretSource::File(path) => {
                crate::catalog::read_input_file(std::path::Path::new(path), 1024 * 1024)
                    .ok()
                    .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
            }
            SecretSource::SecretRef { .. } | SecretSource::Prompt => None,
        };
        match value {
            Some(v) if v.len() >= MIN_LEN => found.push(Canary {
                source: source.to_string(),
                value: Secret::new(v),
            }),
            Some(_) => unchecked.push(format!("{source} (shorter than {MIN_LEN} characters)")),
            None => unchecked.push(source.to_string()),
        }
    }
    (found, unchecked)
}

struct Pattern {
    what: &'static str,
    regex: Regex,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    [
        ("Slack webhook URL", r"https://hooks\.slack\.com/(services|workflows|triggers)/[A-Za-z0-9/_-]{8,}"),
        ("Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        // PagerDuty integration/routing keys are 32 characters; only a key
        // written next to its field name is taken for one (dashboards are full of ids).
        (
            "PagerDuty key",
            r#"(?i)\b(routing_key|service_key|routingKey|serviceKey|integration_key|integrationKey)["']?\s*[:=]\s*["']?[A-Za-z0-9+]{32}\b"#,
        ),
        ("GitHub token", r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
        ("GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
        ("AWS access key", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("private key", r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----"),
        ("age secret key", r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b"),
        ("Twilio auth token", r#"(?i)\bauth_?token["']?\s*[:=]\s*["']?[0-9a-f]{32}\b"#),
        ("Grafana service account token", r"\bglsa_[A-Za-z0-9]{32}_[0-9a-f]{8}\b"),
        // A password in a URL's userinfo (a DSN, a repository URL with a
        // token); `$(VAR)` / `${VAR}` placeholders are references, not values.
        (
            "URL with a password",
            r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@$]*:[^/\s@$]{3,}@",
        ),
        ("JSON web token", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"),
    ]
    .into_iter()
    .map(|(what, re)| Pattern {
        what,
        regex: Regex::new(re).expect("built-in pattern compiles"),
    })
    .collect()
});

/// `text` with every canary value replaced, for messages that quote what a
/// tool or a remote said.
pub fn redact(text: &str, canaries: &[Canary]) -> String {
    canaries.iter().fold(text.to_string(), |t, c| {
        t.replace(c.value.expose(), &format!("<{}>", c.source))
    })
}

/// An error with every canary value in its message and causes replaced
/// (git, GitHub and the layouts quote what they were given).
pub fn redact_error(e: CommandError, canaries: &[Canary]) -> CommandError {
    CommandError {
        message: redact(&e.message, canaries),
        causes: e.causes.iter().map(|c| redact(c, canaries)).collect(),
        ..e
    }
}

/// What a hand-over to Git must never let through: the values of the
/// config's secret `sources` ([`canaries`]), plus the digest key and the
/// GitHub token from `env`. Returns the canaries, the sources that could not
/// be read, and the token (for the pull request).
pub fn gate(
    sources: &[SecretSource],
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Canary>, Vec<String>, Option<Secret>) {
    let (mut canaries, unchecked) = canaries(sources, env);
    let token = env("GITHUB_TOKEN")
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    if let Some(k) = env(super::digest::KEY_ENV).filter(|k| !k.is_empty()) {
        // The digest key must never reach Git either.
        canaries.push(Canary {
            source: format!("env:{}", super::digest::KEY_ENV),
            value: Secret::new(k),
        });
    }
    if let Some(t) = &token {
        // The token is a secret too: never committed, never in a message.
        canaries.push(Canary {
            source: "env:GITHUB_TOKEN".into(),
            value: t.clone(),
        });
    }
    (canaries, unchecked, token)
}

/// Every line of every file that holds a canary (as is, or base64 as a
/// Secret's `data` would carry it) or looks like a known secret.
pub fn scan(files: &BTreeMap<String, String>, canaries: &[Canary]) -> Vec<Finding> {
    let needles: Vec<(String, &str)> = canaries
        .iter()
        .flat_map(|c| {
            let plain = c.value.expose().to_string();
            let b64 = base64::engine::general_purpose::STANDARD.encode(plain.as_bytes());
            [(plain, c.source.as_str()), (b64, c.source.as_str())]
        })
        .collect();
    let mut findings = Vec::new();
    for (file, content) in files {
        for (index, line) in content.lines().enumerate() {
            let mut hit = |what: String| {
                findings.push(Finding {
                    file: file.clone(),
                    line: index + 1,
                    what,
                })
            };
            if let Some((_, source)) = needles.iter().find(|(n, _)| line.contains(n.as_str())) {
                hit(format!("the value of {source}"));
                continue;
            }
            if let Some(p) = PATTERNS.iter().find(|p| p.regex.is_match(line)) {
                hit(format!("what looks like a {}", p.what));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(content: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("a/b.yaml".to_string(), content.to_string())])
    }

    #[test]
    fn canaries_are_found_and_named_by_source() {
        let c = vec![Canary {
            source: "env:SLACK_WEBHOOK_URL".into(),
            value: Secret::new("canary-value-1234"),
        }];
        let f = scan(&files("x: 1\ny: prefix-canary-value-1234\n"), &c);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].to_string(),
            "a/b.yaml:2: the value of env:SLACK_WEBHOOK_URL"
        );
        assert!(!format!("{f:?}").contains("canary-value"));
        // As a Secret's data field would hold it.
        let f = scan(&files("data:\n  k: Y2FuYXJ5LXZhbHVlLTEyMzQ=\n"), &c);
        assert_eq!(f[0].line, 2);
    }

    #[test]
    fn redaction_names_the_source() {
        let c = vec![Canary {
            source: "env:GITHUB_TOKEN".into(),
            value: Secret::new("tok-123456"),
        }];
        assert_eq!(
            redact("https://x:tok-123456@host", &c),
            "https://x:<env:GITHUB_TOKEN>@host"
        );
    }

    #[test]
    fn known_shapes_are_found() {
        // Token-shaped but obviously fake, and put together at run time so
        // that no token-like literal sits in the source for scanners to flag.
        let slack_token = format!("token: {}-FAKE-NOT-A-TOKEN", "xoxb");
        let github_token = format!("t: {}_{}", "ghp", "FAKE".repeat(9));
        for line in [
            "url: https://hooks.slack.com/services/TFAKE/BFAKE/FAKEFAKEFAKEFAKE",
            slack_token.as_str(),
            "routing_key: 0123456789abcdef0123456789abcdef",
            github_token.as_str(),
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "dsn: postgres://app:FAKE-pass@db:5432/x",
        ] {
            assert_eq!(scan(&files(line), &[]).len(), 1, "{line}");
        }
    }

    #[test]
    fn secret_file_paths_and_digests_are_not_secrets() {
        let text = "routing_key_file: /etc/alertmanager/secrets/x/pagerduty-routing-key\n\
                    api_url_file: /etc/alertmanager/secrets/x/slack-webhook-url\n\
                    digest: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
        assert!(scan(&files(text), &[]).is_empty());
    }

    #[test]
    fn short_and_unresolved_sources_are_reported_unchecked() {
        let env = |v: &str| (v == "SHORT").then(|| "abc".to_string());
        let (found, unchecked) = canaries(
            &[
                SecretSource::Env("SHORT".into()),
                SecretSource::Env("UNSET".into()),
                SecretSource::Prompt,
            ],
            &env,
        );
        assert!(found.is_empty());
        assert_eq!(unchecked.len(), 3);
    }
}
