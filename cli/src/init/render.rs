//! Answers → `telltale.yaml` text: block style, fixed key order, a comment
//! per choice, so a team reviews a diff and two runs give the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Answers, ReceiverAnswers, SloAnswer};
use crate::model::plugin::Setting;
use crate::secrets::SecretSource;

pub fn render_config(a: &Answers) -> String {
    let mut y = String::new();
    let w = &mut y;
    line(
        w,
        0,
        "# telltale.yaml, written by `telltale init`. Review it and commit it.",
    );
    line(
        w,
        0,
        "# Secrets are sources (env, file, secretRef, prompt): no secret value is in this file.",
    );
    line(
        w,
        0,
        "# `telltale plan` renders the bundle from it; `telltale up` installs it.",
    );
    line(w, 0, "apiVersion: telltale.dev/v1alpha1");
    line(w, 0, "kind: Config");
    line(w, 0, "metadata:");
    kv(w, 1, "name", &a.cluster_name);
    line(w, 0, "spec:");
    if !a.profile_description.is_empty() {
        comment(w, 1, &a.profile_description);
    }
    kv(w, 1, "profile", &a.profile);
    comment(w, 1, "up, status and down act on this context only");
    line(w, 1, "cluster:");
    kv(w, 2, "context", &a.context);
    kv(w, 2, "name", &a.cluster_name);
    kv(w, 1, "namespace", &a.namespace);
    if !a.plugins.is_empty() {
        comment(
            w,
            1,
            "plugins added to (true) or dropped from (false) the profile's",
        );
        line(w, 1, "plugins:");
        for (name, enabled) in &a.plugins {
            line(w, 2, &format!("{}:", scalar(name)));
            line(w, 3, &format!("enabled: {enabled}"));
        }
    }
    // Each answer under every enabled plugin that keeps it (plugin.yaml
    // `spec.settings`), at that plugin's own key path.
    let mut set: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (setting, answer) in [
        (Setting::Retention, &a.retention),
        (Setting::Storage, &a.storage),
    ] {
        let Some(value) = answer else { continue };
        for (plugin, path) in a.settings_at.get(&setting).into_iter().flatten() {
            set.entry(plugin).or_default().push((path, value));
        }
    }
    if !set.is_empty() {
        comment(
            w,
            1,
            "Prometheus retention and volume size, over the profile's",
        );
        line(w, 1, "set:");
        for (plugin, values) in set {
            line(w, 2, &format!("{}:", scalar(plugin)));
            for (path, value) in values {
                kv(w, 3, path, value);
            }
        }
    }
    if a.receivers != ReceiverAnswers::default() {
        receivers(w, &a.receivers, a.sms_bridge.as_deref());
    }
    if let Some(slo) = &a.slo {
        slos(w, slo);
    }
    if let Some(g) = &a.gitops {
        comment(w, 1, "where `telltale gitops` commits the rendered state");
        line(w, 1, "gitops:");
        kv(w, 2, "repo", &g.repo);
        kv(w, 2, "path", &g.path);
        kv(w, 2, "layout", g.layout.as_str());
    }
    y
}

fn receivers(w: &mut String, r: &ReceiverAnswers, sms_bridge: Option<&str>) {
    comment(
        w,
        1,
        "Alertmanager notifies these (over the profile's); tiers route to them by severity",
    );
    line(w, 1, "alerting:");
    line(w, 2, "receivers:");
    let dropped = |w: &mut String, name: &str, enabled: Option<bool>| {
        let off = enabled == Some(false);
        if off {
            line(w, 3, &format!("{name}: {{enabled: false}}"));
        } else {
            line(w, 3, &format!("{name}:"));
        }
        off
    };
    if let Some(s) = &r.slack
        && !dropped(w, "slack", s.enabled)
    {
        opt(w, 4, "channel", &s.channel);
        opt_source(w, 4, "webhookUrl", &s.webhook_url);
    }
    if let Some(p) = &r.pagerduty
        && !dropped(w, "pagerduty", p.enabled)
    {
        opt_source(w, 4, "routingKey", &p.routing_key);
    }
    if let Some(e) = &r.email
        && !dropped(w, "email", e.enabled)
    {
        opt(w, 4, "to", &e.to);
        opt(w, 4, "from", &e.from);
        opt(w, 4, "smarthost", &e.smarthost);
        opt(w, 4, "username", &e.username);
        opt_source(w, 4, "password", &e.password);
    }
    if let Some(s) = &r.sms {
        if s.enabled != Some(false) {
            let how = match sms_bridge {
                Some(plugin) => {
                    format!("Alertmanager has no SMS receiver: the {plugin} plugin bridges to Twilio")
                }
                None => "Alertmanager has no SMS receiver and no enabled plugin bridges it (plugin.yaml spec.bridge): enable one or set bridgeUrl".into(),
            };
            comment(w, 3, &how);
        }
        if !dropped(w, "sms", s.enabled) {
            if let Some(to) = &s.to {
                let to: Vec<String> = to.iter().map(|t| scalar(t)).collect();
                line(w, 4, &format!("to: [{}]", to.join(", ")));
            }
            if let Some(t) = &s.twilio {
                line(w, 4, "twilio:");
                opt(w, 5, "accountSid", &t.account_sid);
                opt(w, 5, "from", &t.from);
                opt_source(w, 5, "authToken", &t.auth_token);
            }
        }
    }
}

fn opt(w: &mut String, depth: usize, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        kv(w, depth, key, v);
    }
}

fn opt_source(w: &mut String, depth: usize, key: &str, s: &Option<SecretSource>) {
    if let Some(s) = s {
        source(w, depth, key, s);
    }
}

fn slos(w: &mut String, slo: &SloAnswer) {
    let selector = format!("job=\"{}\"", slo.job);
    comment(
        w,
        1,
        &format!(
            "availability of job {}: 5xx responses are the errors",
            slo.job
        ),
    );
    line(w, 1, "slos:");
    line(
        w,
        2,
        &format!("- name: {}", scalar(&format!("{}-availability", slo.job))),
    );
    line(w, 3, &format!("objective: {}", slo.objective));
    kv(w, 3, "window", &slo.window);
    // Single quotes keep PromQL's double quotes readable; a job name holds no `'`.
    line(
        w,
        3,
        &format!(
            "errors: 'sum(rate(http_requests_total{{{selector},code=~\"5..\"}}[{{{{window}}}}]))'"
        ),
    );
    line(
        w,
        3,
        &format!("total: 'sum(rate(http_requests_total{{{selector}}}[{{{{window}}}}]))'"),
    );
}

fn source(w: &mut String, depth: usize, key: &str, s: &SecretSource) {
    let flow = match s {
        SecretSource::Env(var) => format!("{{env: {}}}", scalar(var)),
        SecretSource::File(path) => format!("{{file: {}}}", scalar(path)),
        SecretSource::SecretRef { name, key } => {
            format!(
                "{{secretRef: {{name: {}, key: {}}}}}",
                scalar(name),
                scalar(key)
            )
        }
        SecretSource::Prompt => {
            "{prompt: true}   # asked for when `up` runs; stored only in the cluster Secret"
                .to_string()
        }
    };
    line(w, depth, &format!("{key}: {flow}"));
}

fn line(w: &mut String, depth: usize, text: &str) {
    let _ = writeln!(w, "{:width$}{text}", "", width = depth * 2);
}

fn comment(w: &mut String, depth: usize, text: &str) {
    line(w, depth, &format!("# {}", text.replace('\n', " ")));
}

fn kv(w: &mut String, depth: usize, key: &str, value: &str) {
    line(w, depth, &format!("{key}: {}", scalar(value)));
}

/// A string as a YAML scalar: plain when it cannot be read as anything
/// else, double-quoted (JSON escapes are valid YAML) otherwise.
pub fn scalar(text: &str) -> String {
    let plain = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '@'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf"
        );
    // Durations and sizes (`30d`, `50Gi`) read as strings in YAML 1.2.
    let unit = text.trim_start_matches(|c: char| c.is_ascii_digit());
    let sized = unit.len() < text.len()
        && [
            "ms", "s", "m", "h", "d", "w", "y", "Mi", "Gi", "Ti", "M", "G", "T",
        ]
        .contains(&unit);
    if plain || sized {
        text.to_string()
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::*;
    use super::*;
    use crate::model::document::parse_document;
    use crate::model::receiver_layer::{
        EmailLayer, PagerDutyLayer, SlackLayer, SmsLayer, TwilioLayer,
    };
    use crate::model::{Config, Kind, Source};

    fn answers() -> Answers {
        Answers {
            context: "kind-telltale".into(),
            cluster_name: "lab".into(),
            namespace: "monitoring".into(),
            profile: "homelab".into(),
            profile_description: "Home lab: \"modest\" volumes".into(),
            plugins: BTreeMap::new(),
            receivers: ReceiverAnswers::default(),
            slo: None,
            retention: None,
            storage: None,
            settings_at: BTreeMap::new(),
            sms_bridge: Some("sachet".into()),
            gitops: None,
        }
    }

    fn parse(text: &str) -> Config {
        parse_document(&Source::new("telltale.yaml", text), Kind::Config)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn minimal_answers_round_trip() {
        let text = render_config(&answers());
        let config = parse(&text);
        assert_eq!(config.metadata.name, "lab");
        assert_eq!(config.spec.profile.as_deref(), Some("homelab"));
        let cluster = config.spec.cluster.unwrap();
        assert_eq!(cluster.context.as_deref(), Some("kind-telltale"));
        assert_eq!(config.spec.namespace.as_deref(), Some("monitoring"));
        assert!(config.spec.alerting.is_none() && config.spec.gitops.is_none());
    }

    #[test]
    fn every_answer_round_trips() {
        let mut a = answers();
        a.plugins.insert("cert-manager".into(), true);
        a.plugins.insert("alloy".into(), false);
        a.retention = Some("15d".into());
        a.storage = Some("50Gi".into());
        // Where the built-in plugins keep them (plugin.yaml spec.settings).
        let catalog = crate::catalog::Catalog::load(&[]).unwrap();
        for setting in [Setting::Retention, Setting::Storage] {
            let at: Vec<(String, String)> = catalog
                .plugins
                .values()
                .filter_map(|p| {
                    let path = p.plugin.spec.settings.path(setting)?;
                    Some((p.name().to_string(), path.to_string()))
                })
                .collect();
            assert!(!at.is_empty(), "a built-in plugin keeps {setting:?}");
            a.settings_at.insert(setting, at);
        }
        let env = |v: &str| Some(SecretSource::Env(v.into()));
        a.receivers = ReceiverAnswers {
            slack: Some(SlackLayer {
                channel: Some("#ops: alerts".into()),
                webhook_url: env("SLACK"),
                ..Default::default()
            }),
            pagerduty: Some(PagerDutyLayer {
                routing_key: Some(SecretSource::File("/run/secrets/pd key".into())),
                ..Default::default()
            }),
            email: Some(EmailLayer {
                to: Some("ops@example.com".into()),
                from: Some("am@example.com".into()),
                smarthost: Some("smtp.example.com:587".into()),
                username: Some("am@example.com".into()),
                password: Some(SecretSource::SecretRef {
                    name: "smtp".into(),
                    key: "password".into(),
                }),
                ..Default::default()
            }),
            sms: Some(SmsLayer {
                to: Some(vec!["+15550100".into()]),
                twilio: Some(TwilioLayer {
                    account_sid: Some("AC123".into()),
                    from: Some("+15550199".into()),
                    auth_token: Some(SecretSource::Prompt),
                }),
                ..Default::default()
            }),
        };
        a.slo = Some(SloAnswer {
            job: "api".into(),
            objective: 99.9,
            window: "30d".into(),
        });
        a.gitops = Some(GitOpsAnswer {
            repo: "git@github.com:org/infra.git".into(),
            path: "clusters/lab/observability".into(),
            layout: Layout::Argocd,
        });
        let text = render_config(&a);
        let config = parse(&text);
        assert_eq!(config.spec.plugins["alloy"].enabled, Some(false));
        assert_eq!(config.spec.plugins["cert-manager"].enabled, Some(true));
        let set = &config.spec.set["kube-prometheus-stack"];
        assert_eq!(set.len(), 2);
        let alerting = config.spec.alerting.unwrap();
        assert_eq!(alerting.receivers, a.receivers, "the layer round-trips");
        let (resolved, warnings) = alerting.resolve();
        assert!(warnings.is_empty(), "{warnings:?}");
        let r = resolved.receivers;
        assert_eq!(r.slack.unwrap().channel, "#ops: alerts");
        assert_eq!(
            r.sms.unwrap().twilio.auth_token,
            SecretSource::Prompt,
            "complete integrations"
        );
        assert!(r.pagerduty.is_some() && r.email.is_some());
        assert_eq!(config.spec.slos[0].objective, 99.9);
        assert_eq!(config.spec.slos[0].name, "api-availability");
        assert!(
            config.spec.slos[0]
                .errors
                .contains(r#"job="api",code=~"5..""#)
        );
        let g = config.spec.gitops.unwrap();
        assert_eq!(g.layout, Some(Layout::Argocd));
        assert_eq!(g.repo.as_deref(), Some("git@github.com:org/infra.git"));
        assert_eq!(render_config(&a), text, "deterministic");
    }

    #[test]
    fn a_dropped_profile_receiver_is_written_enabled_false() {
        let mut a = answers();
        a.receivers.pagerduty = Some(PagerDutyLayer {
            enabled: Some(false),
            ..Default::default()
        });
        a.receivers.slack = Some(SlackLayer {
            channel: Some("#lab".into()),
            ..Default::default()
        });
        let text = render_config(&a);
        assert!(
            text.contains("      pagerduty: {enabled: false}\n"),
            "{text}"
        );
        let alerting = parse(&text).spec.alerting.unwrap();
        assert_eq!(alerting.receivers, a.receivers, "{text}");
    }

    #[test]
    fn scalars_that_would_read_as_something_else_are_quoted() {
        assert_eq!(scalar("homelab"), "homelab");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("30d"), "30d");
        assert_eq!(scalar("50Gi"), "50Gi");
        assert_eq!(scalar("1e3"), "\"1e3\"");
        assert_eq!(scalar("99"), "\"99\"");
        assert_eq!(scalar("#alerts"), "\"#alerts\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar(""), "\"\"");
    }
}
