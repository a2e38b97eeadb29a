//! `telltale ack ALERT`: acknowledge a firing alert with an Alertmanager
//! silence, which stops its escalation (alerting.escalation): the escalated
//! copies carry the alert's name and labels, so the silence mutes every
//! later level of that alert, and nothing else.

use std::time::{Duration, SystemTime};

use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};

use super::GlobalArgs;
use crate::error::CommandError;
use crate::model::suggest::did_you_mean;
use crate::ui::Printer;
use crate::verify::http::{Auth, Http};

/// Acknowledge a firing alert: an Alertmanager silence that stops its escalation
#[derive(Debug, Args)]
pub struct AckArgs {
    /// The alert name, e.g. NodeDown
    pub alert: String,
    /// Narrow the silence to some of the alert's instances: NAME=VALUE, NAME!=VALUE, NAME=~REGEX, NAME!~REGEX (repeatable)
    #[arg(long = "matcher", value_name = "MATCHER")]
    pub matchers: Vec<String>,
    /// Why (shown with the silence)
    #[arg(long, default_value = "acknowledged with telltale ack")]
    pub comment: String,
    /// Who acknowledges [default: $USER]
    #[arg(long)]
    pub author: Option<String>,
    /// How long the acknowledgement holds (1m to 7d); the alert escalates again if it still fires then
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub duration: Duration,
    /// Alertmanager's URL, e.g. a port-forward: http://127.0.0.1:9093
    #[arg(long, value_name = "URL")]
    pub alertmanager_url: String,
}

const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);
const MAX_MATCHERS: usize = 20;

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("expected a duration such as 30m, 2h or 1d ({e})"))?;
    if d < Duration::from_secs(60) || d > MAX_DURATION {
        return Err("expected a duration from 1m to 7d".into());
    }
    Ok(d)
}

/// A label name as Prometheus and Alertmanager accept it.
fn label_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= 128
}

fn plain_text(what: &str, text: &str, max: usize) -> Result<(), CommandError> {
    if text.chars().any(char::is_control) || text.len() > max {
        return Err(CommandError::bad_input(format!(
            "{what}: expected at most {max} characters and no control characters"
        )));
    }
    Ok(())
}

/// `NAME=VALUE` and the other three operators, as Alertmanager's API takes
/// them (the operator is found at the first `=`, `!=`, `=~` or `!~`).
fn matcher(text: &str) -> Result<Value, CommandError> {
    let refuse = |why: String| {
        CommandError::bad_input(format!("--matcher `{}`: {why}", cut(text)))
            .with_hint("write NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX, e.g. --matcher node=worker-1")
    };
    let Some(at) = text.find(['=', '!']) else {
        return Err(refuse("no operator".into()));
    };
    let (name, rest) = text.split_at(at);
    let (op, value) = ["=~", "!~", "!=", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
        .ok_or_else(|| refuse("no operator".into()))?;
    let name = name.trim();
    if !label_name(name) {
        return Err(refuse(
            "the name must be a label name ([a-zA-Z_][a-zA-Z0-9_]*)".into(),
        ));
    }
    if name == "alertname" {
        return Err(refuse("the alert name is the ALERT argument".into()));
    }
    if name == crate::render::alertmanager::ESCALATION_LABEL {
        return Err(refuse(
            "an acknowledgement covers every escalation level of the alert; match its other labels"
                .into(),
        ));
    }
    if value.chars().any(char::is_control) || value.len() > 1024 {
        return Err(refuse(
            "the value must be at most 1024 characters, without control characters".into(),
        ));
    }
    let is_regex = op.ends_with('~');
    if is_regex && let Err(e) = regex::Regex::new(&format!("^(?:{value})$")) {
        return Err(refuse(format!("not a regular expression ({e})")));
    }
    Ok(json!({
        "name": name,
        "value": value,
        "isRegex": is_regex,
        "isEqual": !op.starts_with('!'),
    }))
}

/// The start of a hostile argument, for messages.
fn cut(text: &str) -> String {
    let t: String = text.chars().filter(|c| !c.is_control()).take(60).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

#[derive(Deserialize)]
struct Active {
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// Does `labels` satisfy Alertmanager matcher `m` (as built above)?
fn matches(m: &Value, labels: &std::collections::BTreeMap<String, String>) -> bool {
    let name = m["name"].as_str().unwrap_or_default();
    let value = m["value"].as_str().unwrap_or_default();
    let have = labels.get(name).map(String::as_str).unwrap_or_default();
    let hit = if m["isRegex"] == true {
        regex::Regex::new(&format!("^(?:{value})$")).is_ok_and(|re| re.is_match(have))
    } else {
        have == value
    };
    hit == (m["isEqual"] == true)
}

pub fn run(args: AckArgs, _global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    let alert = args.alert.trim();
    if alert.is_empty()
        || !alert
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_:".contains(c))
        || alert.len() > 200
    {
        return Err(CommandError::bad_input(format!(
            "ALERT `{}`: expected an alert name such as NodeDown (letters, digits, `_`, `:`)",
            cut(alert)
        )));
    }
    if args.matchers.len() > MAX_MATCHERS {
        return Err(CommandError::bad_input(format!(
            "at most {MAX_MATCHERS} --matcher, got {}",
            args.matchers.len()
        )));
    }
    let mut matchers =
        vec![json!({"name": "alertname", "value": alert, "isRegex": false, "isEqual": true})];
    for m in &args.matchers {
        matchers.push(matcher(m)?);
    }
    plain_text("--comment", &args.comment, 1024)?;
    let author = args
        .author
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "telltale".into());
    plain_text("--author", &author, 256)?;
    crate::verify::urls::check_url("--alertmanager-url", &args.alertmanager_url, false, false)?;
    let url = args.alertmanager_url.trim_end_matches('/').to_string();

    let http = Http::new(Auth::None).map_err(|e| CommandError::environment(e.to_string()))?;
    let runtime = crate::session::runtime()?;
    let now = SystemTime::now();
    let ends = now + args.duration;
    let (silence_id, acknowledged) = runtime.block_on(async {
        // Only what fires can be acknowledged: a typo would silence nothing
        // and stop no escalation.
        let active: Vec<Active> = http
            .get_json(&format!(
                "{url}/api/v2/alerts?active=true&silenced=false&inhibited=false"
            ))
            .await
            .map_err(|e| {
                CommandError::environment("Alertmanager did not list its alerts").with_source(&e)
            })?;
        let firing: Vec<&Active> = active
            .iter()
            .filter(|a| matchers.iter().all(|m| matches(m, &a.labels)))
            .collect();
        if firing.is_empty() {
            let names: std::collections::BTreeSet<&str> = active
                .iter()
                .filter_map(|a| a.labels.get("alertname").map(String::as_str))
                .collect();
            let hint = did_you_mean(alert, names.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    if names.is_empty() {
                        "Alertmanager has no unsilenced active alert".to_string()
                    } else {
                        format!(
                            "active: {}",
                            names.iter().copied().collect::<Vec<_>>().join(", ")
                        )
                    }
                });
            return Err(CommandError::bad_input(format!(
                "no active, unacknowledged alert `{alert}` matches{}: nothing to acknowledge",
                if args.matchers.is_empty() {
                    String::new()
                } else {
                    format!(
                        " {}",
                        args.matchers
                            .iter()
                            .map(|m| cut(m))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ))
            .with_hint(hint));
        }
        let levels: std::collections::BTreeSet<String> = firing
            .iter()
            .map(|a| {
                a.labels
                    .get(crate::render::alertmanager::ESCALATION_LABEL)
                    .cloned()
                    .unwrap_or_else(|| "1".into())
            })
            .collect();
        let silence = json!({
            "matchers": matchers,
            "startsAt": humantime::format_rfc3339_seconds(now).to_string(),
            "endsAt": humantime::format_rfc3339_seconds(ends).to_string(),
            "createdBy": author,
            "comment": args.comment,
        });
        let (status, created): (u16, Value) = http
            .post_for_json(&format!("{url}/api/v2/silences"), &silence)
            .await
            .map_err(|e| {
                CommandError::environment("Alertmanager refused the silence").with_source(&e)
            })?;
        let created: Created = serde_json::from_value(created.clone()).map_err(|_| {
            CommandError::environment(format!(
                "Alertmanager answered {status} without a silence id: {}",
                cut(&created.to_string())
            ))
        })?;
        Ok::<_, CommandError>((created.silence_id, (firing.len(), levels)))
    })?;
    let ends_at = humantime::format_rfc3339_seconds(ends).to_string();
    if printer.is_json() {
        printer.json(&json!({
            "ok": true,
            "silenceId": silence_id,
            "alert": alert,
            "matchers": matchers,
            "author": author,
            "endsAt": ends_at,
            "alerts": acknowledged.0,
            "levels": acknowledged.1,
        }));
    } else {
        printer.out(&format!(
            "acknowledged {alert} ({} alert(s) at level {}): silence {silence_id} until {ends_at}\n\
             later escalation levels of these alerts are muted; undo with `amtool silence expire {silence_id}`",
            acknowledged.0,
            acknowledged.1.iter().cloned().collect::<Vec<_>>().join(", "),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_take_four_operators_and_refuse_the_rest() {
        let m = matcher("node=worker-1").unwrap();
        assert_eq!(
            (
                m["name"].as_str(),
                m["isEqual"].as_bool(),
                m["isRegex"].as_bool()
            ),
            (Some("node"), Some(true), Some(false))
        );
        let m = matcher("pod!~web-.*").unwrap();
        assert_eq!(
            (
                m["value"].as_str(),
                m["isEqual"].as_bool(),
                m["isRegex"].as_bool()
            ),
            (Some("web-.*"), Some(false), Some(true))
        );
        assert_eq!(matcher("a!=b").unwrap()["isEqual"], false);
        assert_eq!(matcher("a=~b|c").unwrap()["isRegex"], true);
        for bad in [
            "node",
            "1node=x",
            "alertname=X",
            "escalation=2",
            "pod=~(",
            "a=b\u{7}",
        ] {
            assert!(matcher(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("30s").is_err());
        assert!(parse_duration("8d").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
