//! The escalation chain as Prometheus rules (`alerting.escalation`,
//! `policy: levels`).
//!
//! Alertmanager cannot delay a notification by 15 minutes, nor know whether
//! anyone answered. Prometheus can measure how long an alert has fired: for
//! every alert of the bundle that routes to the critical tier, and every
//! level after the first, one rule with the SAME alert name reads the
//! alert's own `ALERTS` series and fires after the level's delay, with the
//! label `escalation: "<level>"`:
//!
//! ```yaml
//! - alert: NodeDown
//!   expr: max without (alertstate) (ALERTS{alertname="NodeDown", alertstate="firing", escalation=""}) * 2
//!   for: 15m
//!   labels: {escalation: "2"}
//! ```
//!
//! `escalation=""` matches series without the label (PromQL: an empty
//! matcher selects absent labels), so the copies never escalate each other;
//! `max without (alertstate)` keeps every label of the alert except the
//! state, which Prometheus would otherwise send as a label. Alertmanager
//! routes `escalation="N"` to that level's receiver. The copies carry the
//! alert's name and labels, so one Alertmanager silence of the alert (an
//! acknowledgement: `telltale ack`, `amtool silence add`) mutes every later
//! level of that alert, and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::alertmanager::{ESCALATION_LABEL, Labels, expected_receivers, level_receiver};
use super::rules::{Rule, RuleGroup};
use crate::model::alerting::EscalationLevel;
use crate::model::validate::prom_duration_ms;

/// The rule group (and file stem) of the escalation rules.
pub const GROUP: &str = "telltale-escalation";

pub struct Escalated {
    pub group: RuleGroup,
    /// `prometheus/tests/telltale-escalation_test.yaml`.
    pub test: Value,
    /// The escalated alerts as the test fires them (routing cases).
    pub fired: Vec<Labels>,
}

/// The stage: the rules derived from the bundle's critical alerts, with
/// their test (after the alerts are fired: the copies are not inhibition
/// sources), and the escalated copies as that test fires them.
pub fn add(b: &mut super::builder::Builder<'_>) -> Result<(), super::RenderError> {
    b.warnings
        .extend(super::alertmanager::unconfigured_levels(&b.r.alerting));
    let Some(e) = render(
        super::alertmanager::levels(&b.r.alerting),
        &critical_alerts(&b.rules),
        &b.fired,
    ) else {
        return Ok(());
    };
    b.rule_group(&e.group, "escalation", "escalation")?;
    let test_path = format!("prometheus/tests/{GROUP}_test.yaml");
    let test = super::to_yaml(&test_path, &e.test)?;
    b.files.add("rule test", test_path, "escalation", test)?;
    b.escalated = e.fired;
    Ok(())
}

/// Alerts that reach the critical tier, by their static labels (the
/// routing contract: SLA breaches too, after the SLA receiver; security
/// alerts have their own receiver and capacity is a warning, so neither
/// escalates). Sorted by name, once each.
pub fn critical_alerts(rules: &[Rule]) -> Vec<&Rule> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<&Rule> = rules
        .iter()
        .filter(|r| {
            let Some(name) = &r.alert else { return false };
            let mut labels: Labels = r.labels.clone();
            labels.insert("alertname".into(), name.clone());
            // The root receiver is never `critical`: which one does not matter.
            expected_receivers(&labels, "warning")
                .iter()
                .any(|r| r == "critical")
                && seen.insert(name.clone())
        })
        .collect();
    out.sort_by(|a, b| a.alert.cmp(&b.alert));
    out
}

/// A summary made of text, `{{ $labels.x }}` and `{{ if $labels.x }}…{{ else
/// }}…{{ end }}` is expanded here for the test, as Prometheus expands it for
/// the rule (the copy carries the alert's labels); any other template
/// (`$value`, which is always the level on ALERTS, functions, pipelines) is
/// replaced by a fixed text.
fn simple_summary(summary: &str, labels: &Labels) -> Option<String> {
    static ACTION: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\{\{(.*?)\}\}").ok());
    static LABEL: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^\s*(if\s+)?\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*$").ok()
    });
    let (action, label) = (ACTION.as_ref()?, LABEL.as_ref()?);
    let mut out = String::new();
    // Per open `if`: whether its branch being read is emitted.
    let mut open: Vec<(bool, bool)> = Vec::new();
    let emitting = |open: &[(bool, bool)]| open.iter().all(|(outer, on)| *outer && *on);
    let mut rest = 0;
    for m in action.captures_iter(summary) {
        let whole = m.get(0)?;
        if emitting(&open) {
            out.push_str(&summary[rest..whole.start()]);
        }
        rest = whole.end();
        let inner = &m[1];
        match inner.trim() {
            "else" => {
                let (_, on) = open.last_mut()?;
                *on = !*on;
            }
            "end" => {
                open.pop()?;
            }
            _ => {
                let c = label.captures(inner)?;
                let value = labels.get(&c[2]).filter(|v| !v.is_empty());
                if c.get(1).is_some() {
                    let outer = emitting(&open);
                    open.push((outer, value.is_some()));
                } else if emitting(&open) {
                    out.push_str(value?);
                }
            }
        }
    }
    if !open.is_empty() {
        return None;
    }
    out.push_str(&summary[rest..]);
    Some(out)
}

fn annotations(
    rule: &Rule,
    name: &str,
    level: usize,
    after: &str,
    fired: &Labels,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let what = format!("unacknowledged for {after}, escalated to level {level}");
    let (template, expanded) = match rule
        .annotations
        .get("summary")
        .and_then(|s| simple_summary(s, fired).map(|e| (s.clone(), e)))
    {
        Some((s, e)) => (format!("{s} ({what})"), format!("{e} ({what})")),
        None => {
            let s = format!("{name} is still firing ({what})");
            (s.clone(), s)
        }
    };
    // The rule's value is its level (see `render`).
    let description = |value: &str| {
        format!(
            "{name} has fired for {after} and nobody acknowledged it (`telltale ack {name}` silences it): escalation level {value} ({}). The first notification has the details.",
            level_receiver(level - 1)
        )
    };
    let mut rule_annotations = BTreeMap::from([
        ("summary".to_string(), template),
        ("description".to_string(), description("{{ $value }}")),
    ]);
    let mut test_annotations = BTreeMap::from([
        ("summary".to_string(), expanded),
        ("description".to_string(), description(&level.to_string())),
    ]);
    // The runbook and SLA of the alert itself, when they are plain text.
    for key in ["runbook_url", "sla"] {
        if let Some(v) = rule.annotations.get(key).filter(|v| !v.contains("{{")) {
            rule_annotations.insert(key.into(), v.clone());
            test_annotations.insert(key.into(), v.clone());
        }
    }
    (rule_annotations, test_annotations)
}

/// The escalation rules of `alerts` (see [`critical_alerts`]) for the
/// levels after the first, and a promtool test per alert: each level
/// silent one interval before its delay, firing at it, the earlier levels
/// still firing. `fired` are the bundle's alerts as their tests fire them
/// (one label set per alert is used). None without a second level or
/// without critical alerts.
pub fn render(levels: &[EscalationLevel], alerts: &[&Rule], fired: &[Labels]) -> Option<Escalated> {
    if levels.len() < 2 || alerts.is_empty() {
        return None;
    }
    let clock = Clock::of(levels);
    let mut rules = Vec::new();
    let mut tests = Vec::new();
    let mut escalated = Vec::new();
    for rule in alerts {
        let Some(name) = rule.alert.as_deref() else {
            continue;
        };
        let labels = labels_of(rule, name, fired);
        // (level number, its delay in steps, expected alert) per level.
        let mut expected: Vec<(usize, u64, Value)> = Vec::new();
        for (i, level) in levels.iter().enumerate().skip(1) {
            let number = i + 1;
            let (copy, test_annotations) = level_rule(rule, name, number, level, &labels);
            rules.push(copy);
            let mut exp_labels = labels.clone();
            exp_labels.remove("alertname");
            exp_labels.insert(ESCALATION_LABEL.into(), number.to_string());
            let mut fired_labels = labels.clone();
            fired_labels.insert(ESCALATION_LABEL.into(), number.to_string());
            escalated.push(fired_labels);
            expected.push((
                number,
                clock.delays[i] / clock.step,
                json!({"exp_labels": exp_labels, "exp_annotations": test_annotations}),
            ));
        }
        tests.push(alert_test(name, &labels, &expected, &clock));
    }
    // The copies' own ALERTS series carry `escalation`: a test where only
    // an escalated copy fires proves nothing escalates twice.
    if let Some(first) = escalated.first() {
        let name = first.get("alertname").cloned().unwrap_or_default();
        let mut copy = first.clone();
        copy.insert("alertstate".into(), "firing".into());
        let (unit, last) = (clock.unit, clock.last);
        tests.push(json!({
            "interval": format!("1{unit}"),
            "input_series": [{"series": alerts_series(&copy), "values": format!("1x{}", last + 2)}],
            "alert_rule_test": [{"eval_time": format!("{}{unit}", last + 1), "alertname": name, "exp_alerts": []}],
        }));
    }
    let group = RuleGroup {
        name: GROUP.into(),
        interval: None,
        rules,
    };
    let test = json!({
        "rule_files": [format!("../rules/{GROUP}.yaml")],
        "evaluation_interval": format!("1{}", clock.unit),
        "tests": tests,
    });
    Some(Escalated {
        group,
        test,
        fired: escalated,
    })
}

/// The levels' delays and the step the test advances by: whole minutes
/// when every delay is one, else seconds.
struct Clock {
    delays: Vec<u64>,
    step: u64,
    unit: &'static str,
    /// The last delay, in steps.
    last: u64,
}

impl Clock {
    fn of(levels: &[EscalationLevel]) -> Clock {
        let delays: Vec<u64> = levels
            .iter()
            .map(|l| prom_duration_ms(&l.after).unwrap_or(0))
            .collect();
        let step: u64 = if delays.iter().all(|d| d % 60_000 == 0) {
            60_000
        } else {
            1_000
        };
        let unit = if step == 60_000 { "m" } else { "s" };
        let last = delays.iter().copied().max().unwrap_or(0) / step;
        Clock {
            delays,
            step,
            unit,
            last,
        }
    }
}

/// The alert's labels as its test fires it (else its static labels).
fn labels_of(rule: &Rule, name: &str, fired: &[Labels]) -> Labels {
    let mut labels = fired
        .iter()
        .find(|l| l.get("alertname").map(String::as_str) == Some(name))
        .cloned()
        .unwrap_or_else(|| {
            let mut l = rule.labels.clone();
            l.insert("alertname".into(), name.into());
            l
        });
    labels.remove(ESCALATION_LABEL);
    labels
}

/// `ALERTS{…}` with these labels, as a test's input series.
fn alerts_series(labels: &Labels) -> String {
    format!(
        "ALERTS{{{}}}",
        labels
            .iter()
            .map(|(k, v)| format!("{k}={}", json!(v)))
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// The copy of `rule` that fires at level `number`, and the annotations
/// its test expects.
fn level_rule(
    rule: &Rule,
    name: &str,
    number: usize,
    level: &EscalationLevel,
    labels: &Labels,
) -> (Rule, BTreeMap<String, String>) {
    let (rule_annotations, test_annotations) =
        annotations(rule, name, number, &level.after, labels);
    // The alert's static labels again (the series carries them; stated so
    // the rule reads as what it is), and the level.
    let mut rule_labels: BTreeMap<String, String> = rule
        .labels
        .iter()
        .filter(|(_, v)| !v.contains("{{"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    rule_labels.insert(ESCALATION_LABEL.to_string(), number.to_string());
    let copy = Rule {
        alert: Some(name.to_string()),
        record: None,
        // ALERTS is 1; times the level, the value says which level.
        expr: format!(
            "max without (alertstate) (ALERTS{{alertname=\"{name}\", alertstate=\"firing\", {ESCALATION_LABEL}=\"\"}}) * {number}"
        ),
        for_: Some(level.after.clone()),
        keep_firing_for: None,
        labels: rule_labels,
        annotations: rule_annotations,
    };
    (copy, test_annotations)
}

/// The test of one alert's levels: one step before each delay the level is
/// still pending, at the delay it fires (with every earlier level).
fn alert_test(
    name: &str,
    labels: &Labels,
    expected: &[(usize, u64, Value)],
    clock: &Clock,
) -> Value {
    let mut series_labels = labels.clone();
    series_labels.insert("alertstate".into(), "firing".into());
    let unit = clock.unit;
    let mut cases = Vec::new();
    for (_, at, _) in expected {
        let firing_at = |t: u64| -> Vec<Value> {
            expected
                .iter()
                .filter(|(_, d, _)| *d <= t)
                .map(|(_, _, v)| v.clone())
                .collect()
        };
        cases.push(json!({
            "eval_time": format!("{}{unit}", at - 1),
            "alertname": name,
            "exp_alerts": firing_at(at - 1),
        }));
        cases.push(json!({
            "eval_time": format!("{at}{unit}"),
            "alertname": name,
            "exp_alerts": firing_at(*at),
        }));
    }
    json!({
        "interval": format!("1{unit}"),
        "input_series": [
            {"series": alerts_series(&series_labels), "values": format!("1x{}", clock.last + 2)},
        ],
        "alert_rule_test": cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alerting::Integration;

    fn alert(name: &str, labels: &[(&str, &str)]) -> Rule {
        Rule {
            alert: Some(name.into()),
            record: None,
            expr: "up == 0".into(),
            for_: None,
            keep_firing_for: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::from([(
                "summary".to_string(),
                "Node {{ $labels.node }} is down".to_string(),
            )]),
        }
    }

    fn level(after: &str) -> EscalationLevel {
        EscalationLevel {
            after: after.into(),
            notify: vec![Integration::Slack],
            slack_channel: None,
            sms_to: None,
            email_to: None,
        }
    }

    #[test]
    fn summaries_with_label_conditions_are_expanded_and_others_are_not() {
        let labels = Labels::from([("node".to_string(), "n1".to_string())]);
        let s = "{{ if $labels.node }}Node {{ $labels.node }} is down{{ else }}No node is reported{{ end }}";
        assert_eq!(
            simple_summary(s, &labels).as_deref(),
            Some("Node n1 is down")
        );
        assert_eq!(
            simple_summary(s, &Labels::new()).as_deref(),
            Some("No node is reported")
        );
        assert_eq!(
            simple_summary("Pod {{ $labels.node }} x", &labels).as_deref(),
            Some("Pod n1 x")
        );
        for other in [
            "{{ $value }} left",
            "{{ $labels.node | toUpper }}",
            "{{ if $labels.node }}open",
            "{{ end }}",
            "{{ $labels.pod }} is down",
        ] {
            assert_eq!(simple_summary(other, &labels), None, "{other}");
        }
    }

    #[test]
    fn only_alerts_that_reach_the_critical_tier_escalate() {
        let rules = [
            alert("A", &[("severity", "critical")]),
            alert("A", &[("severity", "critical")]),
            alert("Sla", &[("severity", "critical"), ("category", "sla")]),
            alert("Sec", &[("severity", "critical"), ("category", "security")]),
            // Critical capacity is never held for business hours: it pages.
            alert("Cap", &[("severity", "critical"), ("category", "capacity")]),
            alert("CapW", &[("severity", "warning"), ("category", "capacity")]),
            alert("W", &[("severity", "warning")]),
            alert("P", &[("severity", "page")]),
        ];
        let names: Vec<_> = critical_alerts(&rules)
            .iter()
            .filter_map(|r| r.alert.as_deref())
            .collect();
        assert_eq!(names, ["A", "Cap", "P", "Sla"]);
    }

    #[test]
    fn each_later_level_is_a_rule_of_the_same_name_with_its_delay() {
        let rules = [alert("NodeDown", &[("severity", "critical")])];
        let fired = vec![Labels::from([
            ("alertname".to_string(), "NodeDown".to_string()),
            ("node".to_string(), "n1".to_string()),
            ("severity".to_string(), "critical".to_string()),
        ])];
        let levels = [level("0s"), level("15m"), level("30m")];
        let e = render(&levels, &critical_alerts(&rules), &fired).unwrap();
        let r = &e.group.rules;
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].alert.as_deref(), Some("NodeDown"));
        assert_eq!(r[0].for_.as_deref(), Some("15m"));
        assert_eq!(r[1].for_.as_deref(), Some("30m"));
        assert_eq!(r[1].labels["escalation"], "3");
        assert!(r[0].expr.contains(r#"escalation="""#), "{}", r[0].expr);
        assert!(r[0].annotations["description"].contains("$value"));
        assert_eq!(e.fired.len(), 2);
        // The test: 14m silent, 15m level 2, 29m level 2, 30m both.
        let cases = e.test["tests"][0]["alert_rule_test"].as_array().unwrap();
        let at: Vec<(String, usize)> = cases
            .iter()
            .map(|c| {
                (
                    c["eval_time"].as_str().unwrap().to_string(),
                    c["exp_alerts"].as_array().unwrap().len(),
                )
            })
            .collect();
        let want = [("14m", 0), ("15m", 1), ("29m", 1), ("30m", 2)];
        assert_eq!(at, want.map(|(t, n)| (t.to_string(), n)).to_vec());
        assert_eq!(
            cases[1]["exp_alerts"][0]["exp_annotations"]["summary"],
            "Node n1 is down (unacknowledged for 15m, escalated to level 2)"
        );
        // One level only, or none: nothing to render.
        assert!(render(&levels[..1], &critical_alerts(&rules), &fired).is_none());
    }
}
