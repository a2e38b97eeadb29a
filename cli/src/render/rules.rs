//! Prometheus rule files: parsed strictly, PromQL checked, re-emitted in a
//! stable form, and wrapped as PrometheusRule objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::locate;
use crate::model::yaml::parse;
use crate::model::{LocatedError, Source};

/// The prefix rule files use for runbook links; replaced by alerting.runbookBaseUrl.
pub const DEFAULT_RUNBOOK_BASE: &str = "https://telltale.dev/runbooks";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Parses one rule file whose single group must be named `expected_group`.
pub fn parse_rule_file(source: &Source, expected_group: &str) -> Result<RuleGroup, LocatedError> {
    let file: RuleFile = parse(source, "a Prometheus rule file (groups: [...])")?;
    if file.groups.len() != 1 {
        return Err(locate(
            source,
            "groups",
            format!(
                "a rule file holds exactly one group (named like the file, `{expected_group}`); found {}",
                file.groups.len()
            ),
        ));
    }
    let Some(group) = file.groups.into_iter().next() else {
        return Err(locate(source, "groups", "no rule group"));
    };
    if group.name != expected_group {
        return Err(locate(
            source,
            "groups.0.name",
            format!(
                "group `{}` must be named like its file, `{expected_group}`",
                group.name
            ),
        ));
    }
    for (i, rule) in group.rules.iter().enumerate() {
        let path = format!("groups.0.rules.{i}");
        match (&rule.alert, &rule.record) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(locate(
                    source,
                    &path,
                    "a rule has exactly one of `alert` and `record`",
                ));
            }
        }
        if let Err(e) = promql_parser::parser::parse(&rule.expr) {
            return Err(locate(
                source,
                &format!("{path}.expr"),
                format!("invalid PromQL: {e}"),
            ));
        }
    }
    Ok(group)
}

/// Replaces the default runbook prefix in rule and test text.
pub fn rebase_runbooks(text: &str, base: Option<&str>) -> String {
    match base {
        Some(base) if base.trim_end_matches('/') != DEFAULT_RUNBOOK_BASE => {
            text.replace(DEFAULT_RUNBOOK_BASE, base.trim_end_matches('/'))
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_promql_is_located_at_the_expr() {
        let src = Source::new(
            "r.yaml",
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(rate(x[5m])\n",
        );
        let e = parse_rule_file(&src, "g").unwrap_err();
        assert_eq!(e.line, 5);
        assert_eq!(e.key_path.as_deref(), Some("groups.0.rules.0.expr"));
        assert!(e.message.starts_with("invalid PromQL"), "{}", e.message);
    }

    #[test]
    fn group_must_match_file() {
        let src = Source::new("r.yaml", "groups:\n- name: other\n  rules: []\n");
        assert!(
            parse_rule_file(&src, "g")
                .unwrap_err()
                .message
                .contains("named like its file")
        );
    }
}
