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
        if let Some(bad) = integer_bound_matchers(&rule.expr).into_iter().next() {
            return Err(locate(source, &format!("{path}.expr"), bad));
        }
    }
    Ok(group)
}

/// `le`/`quantile` matchers that select an integer-formatted bound
/// (`le="5"`, `quantile=~"1|0.5"`). Prometheus 3 normalises these labels on
/// ingestion to a float form (`le="5.0"`), Prometheus 2 keeps what the
/// exporter wrote, so such a matcher selects nothing on one of them. A
/// matcher that accepts both forms (`le=~"5(\\.0)?"`) or only the float form
/// passes. Each problem names the matcher and the fix.
pub fn integer_bound_matchers(promql: &str) -> Vec<String> {
    // Constant patterns (the unit test below proves they compile and match).
    static MATCHER: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(?:^|[{,\s])(le|quantile)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)""#).ok()
    });
    static NUMBER: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\d+(?:\.\d+)?").ok());
    let (Some(matcher), Some(number)) = (MATCHER.as_ref(), NUMBER.as_ref()) else {
        return vec!["internal: the le/quantile matcher patterns do not compile".into()];
    };
    let mut problems = Vec::new();
    for m in matcher.captures_iter(promql) {
        let (label, op, raw) = (&m[1], &m[2], &m[3]);
        // PromQL string escapes: `\\.` in the query is the regex `\.`.
        let value = raw.replace("\\\\", "\\");
        let integer_only = |v: &str| v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty();
        let bad = match op {
            "=" | "!=" => integer_only(&value),
            _ => match regex::Regex::new(&format!("^(?:{value})$")) {
                // An integer the regex accepts without its `.0` form.
                Ok(re) => number.find_iter(&value).any(|n| {
                    let n = n.as_str();
                    integer_only(n) && re.is_match(n) && !re.is_match(&format!("{n}.0"))
                }),
                Err(_) => false,
            },
        };
        if bad {
            problems.push(format!(
                "`{label}{op}\"{raw}\"` selects an integer-formatted {label}: Prometheus 3 stores it as a float (`{label}=\"5.0\"`, not `\"5\"`); match both forms, e.g. `{label}=~\"5(\\\\.0)?\"`"
            ));
        }
    }
    problems
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
    fn integer_formatted_bounds_are_refused_and_both_forms_pass() {
        for bad in [
            r#"sum(rate(h_bucket{le="5"}[5m]))"#,
            r#"h_bucket{job="a", le = "10"}"#,
            r#"s{quantile="1"}"#,
            r#"h_bucket{le=~"1|2.5"}"#,
            r#"h_bucket{le!="5"}"#,
        ] {
            assert_eq!(integer_bound_matchers(bad).len(), 1, "{bad}");
        }
        for good in [
            r#"h_bucket{le=~"5(\\.0)?"}"#,
            r#"h_bucket{le="5.0"}"#,
            r#"h_bucket{le="0.25"}"#,
            r#"h_bucket{le="+Inf"}"#,
            r#"s{quantile="0.99"}"#,
            r#"histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m])))"#,
            r#"x{title="5"}"#,
        ] {
            assert!(integer_bound_matchers(good).is_empty(), "{good}");
        }
        let src = Source::new(
            "r.yaml",
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(rate(h_bucket{le=\"5\"}[5m]))\n",
        );
        let e = parse_rule_file(&src, "g").unwrap_err();
        assert_eq!(e.key_path.as_deref(), Some("groups.0.rules.0.expr"));
        assert!(e.message.contains("Prometheus 3"), "{}", e.message);
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
