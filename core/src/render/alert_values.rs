//! Every alert's value and runbook, recorded as a series so dashboards can
//! show them. Prometheus keeps an alert's labels in `ALERTS`, but neither
//! its value (`$value`) nor its annotations (`runbook_url`), so the Alert
//! History table could only show "minutes firing" and map alert names to
//! runbooks through a list written beside the rules. Each alert rule gets a
//! recording rule with the same expression: it yields exactly the series the
//! alert is pending or firing for, with the alert's value, and carries the
//! alert's name, severity and runbook as labels. Derived from the bundle's own
//! rules, so a new alert needs no dashboard edit.

use std::collections::BTreeMap;

use super::rules::{Rule, RuleGroup};

/// The group's name (and rule file stem).
pub const GROUP: &str = "telltale-alert-values";
/// The recorded metric: one series per pending or firing alert instance.
pub const METRIC: &str = "telltale:alert_value";

/// The stage: the records of every alert of the bundle so far.
pub fn add(b: &mut super::builder::Builder<'_>) -> Result<(), super::RenderError> {
    match group(&b.rules) {
        Some(group) => b.rule_group(&group, "core", "core"),
        None => Ok(()),
    }
}

/// The runbook's name in a `runbook_url` (`…/runbooks/OOM.md` → `OOM`),
/// the way the dashboards link it (`${runbook_base}/<NAME>.md`).
pub fn runbook_name(url: &str) -> Option<&str> {
    let last = url.trim_end_matches('/').rsplit('/').next()?;
    let name = last.strip_suffix(".md").unwrap_or(last);
    (!name.is_empty()).then_some(name)
}

/// The recording rules for `alerts` (alert rules; anything else is ignored),
/// or None when there is no alert.
pub fn group<'a>(alerts: impl IntoIterator<Item = &'a Rule>) -> Option<RuleGroup> {
    let rules: Vec<Rule> = alerts
        .into_iter()
        .filter_map(|alert| {
            let name = alert.alert.as_ref()?;
            let mut labels = BTreeMap::from([("alertname".to_string(), name.clone())]);
            if let Some(severity) = alert.labels.get("severity") {
                labels.insert("severity".into(), severity.clone());
            }
            if let Some(runbook) = alert
                .annotations
                .get("runbook_url")
                .and_then(|u| runbook_name(u))
            {
                labels.insert("runbook".into(), runbook.to_string());
            }
            Some(Rule {
                alert: None,
                record: Some(METRIC.into()),
                expr: alert.expr.clone(),
                for_: None,
                keep_firing_for: None,
                labels,
                annotations: BTreeMap::new(),
            })
        })
        .collect();
    (!rules.is_empty()).then(|| RuleGroup {
        name: GROUP.into(),
        interval: None,
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, runbook: Option<&str>) -> Rule {
        Rule {
            alert: Some(name.into()),
            record: None,
            expr: "up == 0".into(),
            for_: Some("5m".into()),
            keep_firing_for: None,
            labels: BTreeMap::from([("severity".into(), "warning".into())]),
            annotations: runbook
                .map(|r| BTreeMap::from([("runbook_url".to_string(), r.to_string())]))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn each_alert_records_its_expression_with_name_severity_and_runbook() {
        let record = Rule {
            record: Some("job:up:sum".into()),
            alert: None,
            ..alert("x", None)
        };
        let alerts = [
            alert(
                "ScrapeTargetDown",
                Some("https://x.example/runbooks/SCRAPE_FAILURES.md"),
            ),
            alert("NoRunbook", None),
            record,
        ];
        let g = group(&alerts).unwrap();
        assert_eq!(g.name, GROUP);
        assert_eq!(g.rules.len(), 2, "recording rules are not alerts");
        let r = &g.rules[0];
        assert_eq!(r.record.as_deref(), Some(METRIC));
        assert_eq!(r.expr, "up == 0");
        assert_eq!(r.for_, None);
        assert_eq!(r.labels["alertname"], "ScrapeTargetDown");
        assert_eq!(r.labels["severity"], "warning");
        assert_eq!(r.labels["runbook"], "SCRAPE_FAILURES");
        assert!(!g.rules[1].labels.contains_key("runbook"));
        assert!(group(&[]).is_none());
    }

    #[test]
    fn runbook_names_come_from_the_url() {
        assert_eq!(runbook_name("https://a/b/OOM.md"), Some("OOM"));
        assert_eq!(runbook_name("https://wiki/x/OOM"), Some("OOM"));
        assert_eq!(runbook_name(""), None);
    }
}
