//! Content checks shared by `plugins lint` and the test suite: every alert
//! carries the labels and annotations operators rely on, links a runbook
//! that exists, and has a promtool case where it fires and one where it
//! stays silent.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::node::Node;
use crate::model::yaml::parse;
use crate::model::{LocatedError, Source};
use crate::render::rules::RuleGroup;

pub const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];
pub const PRIORITIES: [&str; 3] = ["P0", "P1", "P2"];
pub const ANNOTATIONS: [&str; 4] = ["summary", "description", "sla", "runbook_url"];

/// Problems with one alert's metadata.
pub fn check_alert(
    alert: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    runbook_exists: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    match labels.get("severity") {
        Some(s) if SEVERITIES.contains(&s.as_str()) => {}
        other => problems.push(format!(
            "{alert}: label severity must be one of critical|warning|info, found {other:?}"
        )),
    }
    match labels.get("priority") {
        Some(p) if PRIORITIES.contains(&p.as_str()) => {}
        other => problems.push(format!(
            "{alert}: label priority must be one of P0|P1|P2, found {other:?}"
        )),
    }
    for key in ANNOTATIONS {
        if annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
            problems.push(format!("{alert}: annotation `{key}` is missing"));
        }
    }
    if let Some(d) = annotations.get("description")
        && !d.contains("$value")
    {
        problems.push(format!(
            "{alert}: description must show the value ({{{{ $value }}}})"
        ));
    }
    if let Some(url) = annotations.get("runbook_url") {
        let name = url.rsplit('/').next().unwrap_or_default();
        if !name.ends_with(".md") {
            problems.push(format!(
                "{alert}: runbook_url must end in /<RUNBOOK>.md, found {url}"
            ));
        } else if !runbook_exists(name) {
            problems.push(format!("{alert}: runbook {name} does not exist"));
        }
    }
    problems
}

/// Alert names with a firing case and with a silent case in promtool test files.
#[derive(Debug, Default)]
pub struct Coverage {
    pub firing: BTreeSet<String>,
    pub silent: BTreeSet<String>,
}

pub fn coverage(test_files: &[Source]) -> Result<Coverage, LocatedError> {
    let mut cov = Coverage::default();
    for source in test_files {
        let doc: Value = parse::<Node>(source, "a promtool test file")?.to_json();
        for test in doc["tests"].as_array().into_iter().flatten() {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let Some(name) = case["alertname"].as_str() else {
                    continue;
                };
                let fires = case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
                if fires {
                    cov.firing.insert(name.to_string());
                } else {
                    cov.silent.insert(name.to_string());
                }
            }
        }
    }
    Ok(cov)
}

/// Every problem with the alerts of `groups` given the tests and runbooks.
pub fn check_groups(
    groups: &[RuleGroup],
    tests: &[Source],
    runbook_exists: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, LocatedError> {
    let cov = coverage(tests)?;
    let mut problems = Vec::new();
    for group in groups {
        for rule in &group.rules {
            let Some(alert) = &rule.alert else { continue };
            problems.extend(check_alert(
                alert,
                &rule.labels,
                &rule.annotations,
                runbook_exists,
            ));
            if !cov.firing.contains(alert) {
                problems.push(format!("{alert}: no promtool case where it fires"));
            }
            if !cov.silent.contains(alert) {
                problems.push(format!("{alert}: no promtool case where it stays silent"));
            }
        }
    }
    problems.sort();
    problems.dedup();
    Ok(problems)
}
