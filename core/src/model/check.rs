//! Semantic checks of a parsed Config or Profile layer: every value that
//! becomes a file name, an object name, an Alertmanager or Prometheus
//! setting is checked here, located at the key that holds it, before
//! anything renders.
//!
//! Pure. Messages never repeat the value (it may be a pasted secret).

use std::collections::BTreeMap;

use super::config::Layer;
use super::node::{Located, Node};
use super::validate::{self, Invalid};
use super::yaml::{LocatedError, Source};

/// A located error at `path` in `source`, saying what was expected.
pub fn refuse(source: &Source, path: &str, invalid: Invalid) -> LocatedError {
    let e = crate::catalog::locate(source, path, format!("expected {}", invalid.expected));
    match invalid.hint {
        Some(h) => e.with_hint(h),
        None => e,
    }
}

fn at(source: &Source, path: &str, check: validate::Check) -> Result<(), LocatedError> {
    check.map_err(|i| refuse(source, path, i))
}

/// A URL telltale writes into a config (runbook base, PagerDuty endpoint,
/// SMS bridge): http(s), with no credentials in it.
pub fn plain_url(text: &str) -> validate::Check {
    let ok = (text.starts_with("https://") || text.starts_with("http://"))
        && text.len() <= 2048
        && !text.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Invalid {
            expected: "an http:// or https:// URL".into(),
            hint: None,
        });
    }
    Ok(())
}

/// A credential where a plain value is expected: located, redacted.
pub fn refuse_credential(
    source: &Source,
    line: u64,
    column: u64,
    path: &str,
    why: &str,
) -> LocatedError {
    LocatedError::new(
        source,
        line,
        column,
        format!("{why}; a credential is not allowed in a plain value"),
    )
    .at_path(path)
    .with_hint(
        "give secrets through a declared secret value ({env: VAR}, {file: PATH}, {secretRef: …}); `telltale plugins show NAME` lists a plugin's secret paths",
    )
    .redacted()
}

/// A webhook URL a config or plugin.yaml gives (`bridgeUrl`,
/// `spec.bridge.url`): no credential in it (refused without echoing it),
/// and http(s).
pub fn webhook_url(source: &Source, path: &str, key: &str, url: &str) -> Result<(), LocatedError> {
    no_credential(source, path, key, url)?;
    at(source, path, plain_url(url))
}

fn no_credential(source: &Source, path: &str, key: &str, value: &str) -> Result<(), LocatedError> {
    match validate::credential(Some(key), value) {
        None => Ok(()),
        Some(why) => {
            let e = crate::catalog::locate(source, path, "");
            Err(refuse_credential(source, e.line, e.column, path, &why))
        }
    }
}

/// Checks one layer (a profile or the config).
pub fn layer(layer: &Layer) -> Result<(), LocatedError> {
    let src = &layer.source;
    let spec = layer.path.as_str();
    if let Some(ns) = &layer.namespace {
        at(src, &format!("{spec}.namespace"), validate::dns_label(ns))?;
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, slo) in layer.slos.iter().enumerate() {
        let p = format!("{spec}.slos.{i}");
        at(src, &format!("{p}.name"), validate::dns_label(&slo.name))?;
        if let Some(first) = seen.insert(&slo.name, i) {
            return Err(crate::catalog::locate(
                src,
                &format!("{p}.name"),
                format!(
                    "SLO `{}` is defined twice ({spec}.slos.{first} and {spec}.slos.{i})",
                    slo.name
                ),
            )
            .with_hint("give each SLO its own name"));
        }
        if !(slo.objective.is_finite() && slo.objective > 0.0 && slo.objective < 100.0) {
            return Err(refuse(
                src,
                &format!("{p}.objective"),
                Invalid {
                    expected: "a percentage strictly between 0 and 100, e.g. 99.9".into(),
                    hint: None,
                },
            ));
        }
        at(
            src,
            &format!("{p}.window"),
            validate::prom_duration(&slo.window),
        )?;
        if let Some(d) = &slo.description {
            no_credential(src, &format!("{p}.description"), "description", d)?;
        }
    }
    if let Some(a) = &layer.alerting {
        alerting(src, &format!("{spec}.alerting"), a)?;
    }
    if let Some(g) = &layer.grafana
        && let Some(pg) = &g.datasources.postgres
    {
        let p = &format!("{spec}.grafana.datasources.postgres");
        at(src, &format!("{p}.host"), validate::host_port(&pg.host))?;
        no_credential(src, &format!("{p}.user"), "user", &pg.user)?;
        no_credential(src, &format!("{p}.database"), "database", &pg.database)?;
        let modes = ["disable", "require", "verify-ca", "verify-full"];
        if !modes.contains(&pg.sslmode.as_str()) {
            return Err(refuse(
                src,
                &format!("{p}.sslmode"),
                Invalid {
                    expected: format!("one of {}", modes.join(", ")),
                    hint: None,
                },
            ));
        }
    }
    if let Some(sel) = &layer.slo_selector {
        no_credential(src, &format!("{spec}.sloSelector"), "sloSelector", sel)?;
    }
    Ok(())
}

fn alerting(src: &Source, p: &str, a: &super::alerting::AlertingLayer) -> Result<(), LocatedError> {
    if let Some(url) = &a.runbook_base_url {
        let path = format!("{p}.runbookBaseUrl");
        no_credential(src, &path, "runbookBaseUrl", url)?;
        at(src, &path, plain_url(url))?;
    }
    if let Some(url) = &a.grafana_url {
        let path = format!("{p}.grafanaUrl");
        no_credential(src, &path, "grafanaUrl", url)?;
        at(src, &path, plain_url(url))?;
        // It is written into the notification templates: no character
        // that could end a string or open an action there.
        if let Some(c) = url
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&()*+,;=%".contains(*c)))
        {
            return Err(refuse(
                src,
                &path,
                Invalid {
                    expected: format!(
                        "a URL of URL characters only (found `{}`), e.g. https://grafana.example.com",
                        c.escape_default()
                    ),
                    hint: None,
                },
            ));
        }
    }
    let r = &a.receivers;
    let pagerduty_urls = [
        (format!("{p}.receivers.pagerduty.url"), r.pagerduty.as_ref()),
        (
            format!("{p}.security.pagerduty.url"),
            a.security.as_ref().and_then(|s| s.pagerduty.as_ref()),
        ),
    ];
    for (path, pd) in pagerduty_urls {
        if let Some(url) = pd.and_then(|pd| pd.url.as_ref()) {
            no_credential(src, &path, "url", url)?;
            at(src, &path, plain_url(url))?;
        }
    }
    if let Some(url) = a
        .security
        .as_ref()
        .and_then(|s| s.soc.as_ref())
        .and_then(|w| w.url.as_ref())
    {
        let path = format!("{p}.security.soc.url");
        no_credential(src, &path, "url", url)?;
        at(src, &path, plain_url(url))?;
    }
    if let Some(email) = &r.email {
        let e = format!("{p}.receivers.email");
        if let Some(host) = &email.smarthost {
            at(src, &format!("{e}.smarthost"), validate::host_port(host))?;
        }
        for (key, value) in [("to", &email.to), ("from", &email.from)] {
            if let Some(value) = value {
                let path = format!("{e}.{key}");
                no_credential(src, &path, key, value)?;
                at(src, &path, address(value))?;
            }
        }
        if let Some(user) = &email.username {
            no_credential(src, &format!("{e}.username"), "username", user)?;
        }
    }
    if let Some(sms) = &r.sms {
        if let Some(url) = &sms.bridge_url {
            webhook_url(
                src,
                &format!("{p}.receivers.sms.bridgeUrl"),
                "bridgeUrl",
                url,
            )?;
        }
        if let Some(sid) = sms.twilio.as_ref().and_then(|t| t.account_sid.as_ref()) {
            no_credential(
                src,
                &format!("{p}.receivers.sms.twilio.accountSid"),
                "accountSid",
                sid,
            )?;
        }
    }
    if let Some(sec) = &a.security
        && let Some(email) = &sec.email
    {
        at(src, &format!("{p}.security.email"), address(email))?;
    }
    if let Some(sla) = &a.sla
        && let Some(email) = &sla.email
    {
        at(src, &format!("{p}.sla.email"), address(email))?;
    }
    if let Some(e) = &a.escalation {
        escalation(src, &format!("{p}.escalation"), e)?;
    }
    if let Some(bh) = &a.business_hours {
        let b = format!("{p}.businessHours");
        at(
            src,
            &format!("{b}.timezone"),
            validate::timezone(&bh.timezone),
        )?;
        let start =
            validate::time_of_day(&bh.start).map_err(|i| refuse(src, &format!("{b}.start"), i))?;
        let end =
            validate::time_of_day(&bh.end).map_err(|i| refuse(src, &format!("{b}.end"), i))?;
        if start >= end {
            return Err(refuse(
                src,
                &format!("{b}.end"),
                Invalid {
                    expected: "an end later than the start".into(),
                    hint: None,
                },
            ));
        }
        for (i, w) in bh.weekdays.iter().enumerate() {
            at(src, &format!("{b}.weekdays.{i}"), weekdays(w))?;
        }
    }
    Ok(())
}

/// At most this many levels: each is a rule per critical alert.
pub const MAX_ESCALATION_LEVELS: usize = 5;

/// The chain: levels under `policy: levels` only, the first at `0s`, each
/// later one strictly later, every level notifying something.
fn escalation(src: &Source, p: &str, e: &super::alerting::Escalation) -> Result<(), LocatedError> {
    use super::alerting::EscalationPolicy;
    if e.policy == EscalationPolicy::Pagerduty {
        if !e.levels.is_empty() {
            return Err(refuse(
                src,
                &format!("{p}.levels"),
                Invalid {
                    expected: "no levels with `policy: pagerduty` (PagerDuty's escalation policy escalates)".into(),
                    hint: Some("use `policy: levels` for telltale's chain, or remove `levels`".into()),
                },
            ));
        }
        return Ok(());
    }
    if e.levels.is_empty() || e.levels.len() > MAX_ESCALATION_LEVELS {
        return Err(refuse(
            src,
            &format!("{p}.levels"),
            Invalid {
                expected: format!(
                    "1 to {MAX_ESCALATION_LEVELS} levels, e.g. [{{after: 0s, notify: [slack, sms]}}, {{after: 15m, notify: [pagerduty]}}]"
                ),
                hint: None,
            },
        ));
    }
    let mut previous: Option<u64> = None;
    for (i, level) in e.levels.iter().enumerate() {
        let l = format!("{p}.levels.{i}");
        let Some(ms) = validate::prom_duration_ms(&level.after) else {
            return Err(refuse(
                src,
                &format!("{l}.after"),
                Invalid {
                    expected: "a Prometheus duration such as 0s, 15m or 1h30m".into(),
                    hint: None,
                },
            ));
        };
        if ms % 1000 != 0 {
            return Err(refuse(
                src,
                &format!("{l}.after"),
                Invalid {
                    expected: "whole seconds (Prometheus evaluates `for` per evaluation interval)"
                        .into(),
                    hint: None,
                },
            ));
        }
        match previous {
            None if ms != 0 => {
                return Err(refuse(
                    src,
                    &format!("{l}.after"),
                    Invalid {
                        expected: "`0s` for the first level (it is notified when the alert fires)"
                            .into(),
                        hint: Some(
                            "a delay before the first notification belongs in the alert's `for`"
                                .into(),
                        ),
                    },
                ));
            }
            Some(before) if ms <= before => {
                return Err(refuse(
                    src,
                    &format!("{l}.after"),
                    Invalid {
                        expected: format!(
                            "a delay longer than level {}'s `{}`",
                            i,
                            e.levels[i - 1].after
                        ),
                        hint: None,
                    },
                ));
            }
            _ => {}
        }
        previous = Some(ms);
        if level.notify.is_empty() {
            return Err(refuse(
                src,
                &format!("{l}.notify"),
                Invalid {
                    expected: "at least one of slack, sms, pagerduty, email".into(),
                    hint: None,
                },
            ));
        }
        if let Some(c) = &level.slack_channel {
            no_credential(src, &format!("{l}.slackChannel"), "slackChannel", c)?;
        }
        if let Some(to) = &level.email_to {
            at(src, &format!("{l}.emailTo"), address(to))?;
        }
        if let Some(numbers) = &level.sms_to {
            if numbers.is_empty() {
                return Err(refuse(
                    src,
                    &format!("{l}.smsTo"),
                    Invalid {
                        expected: "at least one phone number".into(),
                        hint: None,
                    },
                ));
            }
            for (j, n) in numbers.iter().enumerate() {
                no_credential(src, &format!("{l}.smsTo.{j}"), "smsTo", n)?;
            }
        }
    }
    Ok(())
}

/// `name@host` (one or more, comma-separated, as Alertmanager takes them).
fn address(text: &str) -> validate::Check {
    let ok = !text.is_empty()
        && text.len() <= 1024
        && text.split(',').all(|a| {
            let a = a.trim();
            a.split_once('@').is_some_and(|(u, h)| {
                !u.is_empty() && !h.is_empty() && !a.contains(char::is_whitespace)
            })
        });
    if ok {
        Ok(())
    } else {
        Err(Invalid {
            expected: "an e-mail address such as oncall@example.com".into(),
            hint: None,
        })
    }
}

/// In Alertmanager's order: a week starts on Sunday, and a range may not
/// wrap (`saturday:sunday` is refused by Alertmanager, so here too).
const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// `monday`, or a range `monday:friday` (Alertmanager's weekday ranges).
fn weekdays(text: &str) -> validate::Check {
    let day = |d: &str| DAYS.iter().position(|x| *x == d);
    let ok = match text.split_once(':') {
        Some((a, b)) => matches!((day(a), day(b)), (Some(a), Some(b)) if a <= b),
        None => day(text).is_some(),
    };
    if ok {
        return Ok(());
    }
    let hint = super::suggest::did_you_mean(text, DAYS.iter().copied())
        .map(|s| format!("did you mean `{s}`?"));
    Err(Invalid {
        expected: "a weekday (sunday … saturday) or a range within one week such as monday:friday (Alertmanager's weeks start on Sunday)".into(),
        hint,
    })
}

/// A string leaf of a free-form value: dotted path, its key, the text and
/// where it was written.
pub struct Leaf<'a> {
    pub path: String,
    pub key: &'a str,
    pub text: &'a str,
    pub node: &'a Located,
}

/// Every string leaf of a free-form value (plugin values in a layer),
/// depth-first; paths in `skip` (declared secrets) are not entered.
pub fn string_leaves<'a>(node: &'a Located, skip: &[String]) -> Vec<Leaf<'a>> {
    fn walk<'a>(
        node: &'a Located,
        path: String,
        key: &'a str,
        skip: &[String],
        out: &mut Vec<Leaf<'a>>,
        depth: usize,
    ) {
        if depth > 128 || skip.contains(&path) {
            return;
        }
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match &node.value {
            Node::Str(text) => out.push(Leaf {
                path,
                key,
                text,
                node,
            }),
            Node::Map(map, _) => {
                for (k, v) in map {
                    walk(v, join(k), k, skip, out, depth + 1);
                }
            }
            Node::Seq(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, join(&i.to_string()), key, skip, out, depth + 1);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(node, String::new(), "", skip, &mut out, 0);
    out
}
