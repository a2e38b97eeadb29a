//! Inhibit rules as plugins declare them (`spec.inhibitions` in plugin.yaml).
//!
//! A rule belongs to the plugin whose alerts are its source: the core names
//! no alert, and a profile without the plugin gets no rule for it. Matchers
//! use Alertmanager's own syntax (`label=~"regex"`), so what a plugin author
//! writes is what lands in alertmanager.yaml.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An inhibit rule: while an alert matching `source` fires, alerts matching
/// `target` with the same values of `equal` are not notified.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Inhibition {
    /// What the rule is for, in words (named in routes-test.yaml and lint).
    pub name: String,
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    /// Labels source and target must share; `cluster` belongs in every rule
    /// (one Alertmanager may serve several clusters).
    pub equal: Vec<String>,
}

impl Inhibition {
    pub fn selects(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
        matchers.iter().all(|m| m.matches(labels))
    }
}

/// One Alertmanager label matcher, `label op "value"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl Matcher {
    pub fn new(label: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher {
            label: label.into(),
            op,
            value: value.into(),
        }
    }

    /// Alertmanager's semantics: a missing label is the empty string, regexes
    /// are anchored.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels
            .get(&self.label)
            .map(String::as_str)
            .unwrap_or_default();
        let re = || anchored(&self.value).is_some_and(|re| re.is_match(v));
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => re(),
            MatchOp::NotRegex => !re(),
        }
    }
}

/// The most compiled matchers kept: far above the distinct regexes of the
/// catalogue's rules, a bound for whatever a plugin directory holds.
const REGEX_CACHE: usize = 1024;

/// `^(?:pattern)$`, compiled once per process: rendering asks every rule's
/// matchers of every alert, and a fleet renders the same rules per cluster
/// (compiling them each time was a tenth of `plan`'s time). None when the
/// pattern is no regex.
fn anchored(pattern: &str) -> Option<regex::Regex> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return hit;
    }
    let compiled = regex::Regex::new(&format!("^(?:{pattern})$")).ok();
    if let Ok(mut c) = cache.lock()
        && c.len() < REGEX_CACHE
    {
        c.insert(pattern.to_string(), compiled.clone());
    }
    compiled
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // serde_json's string escaping is Go's %q for everything a label
        // value holds in practice (quotes, backslashes, control characters).
        let quoted = serde_json::to_string(&self.value).map_err(|_| fmt::Error)?;
        write!(f, "{}{}{}", self.label, self.op.as_str(), quoted)
    }
}

impl From<Matcher> for String {
    fn from(m: Matcher) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for Matcher {
    type Error = String;
    fn try_from(s: String) -> Result<Matcher, String> {
        s.parse()
    }
}

impl FromStr for Matcher {
    type Err = String;

    /// `label=value`, `label!="value"`, `label=~"a|b"`, `label!~…`; the value
    /// may be quoted (JSON/Go escapes) or bare, as amtool accepts.
    fn from_str(s: &str) -> Result<Matcher, String> {
        let expected = "expected a matcher like `alertname=\"NodeDown\"` or `node=~\".+\"`";
        let s = s.trim();
        let at = s
            .find(['=', '!'])
            .ok_or_else(|| format!("`{s}` has no operator: {expected}"))?;
        let label = s[..at].trim();
        let valid_label = !label.is_empty()
            && !label.starts_with(|c: char| c.is_ascii_digit())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_label {
            return Err(format!(
                "`{label}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*): {expected}"
            ));
        }
        let rest = &s[at..];
        let (op, value) = [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ]
        .into_iter()
        .find_map(|(text, op)| rest.strip_prefix(text).map(|v| (op, v.trim())))
        .ok_or_else(|| format!("`{s}`: unknown operator (one of =, !=, =~, !~)"))?;
        let value = if value.starts_with('"') {
            serde_json::from_str::<String>(value)
                .map_err(|e| format!("`{s}`: the quoted value is not a valid string: {e}"))?
        } else {
            value.to_string()
        };
        if matches!(op, MatchOp::Regex | MatchOp::NotRegex) {
            regex::Regex::new(&value).map_err(|e| {
                // The regex crate's message spans lines (pattern, caret,
                // reason); its last line is the reason.
                let e = e.to_string();
                let reason = e
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ");
                format!("`{s}`: invalid regex: {reason}")
            })?;
        }
        Ok(Matcher {
            label: label.into(),
            op,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator_quoted_or_bare_and_renders_alertmanager_syntax() {
        for (text, op, value, rendered) in [
            (
                "alertname=NodeDown",
                MatchOp::Equal,
                "NodeDown",
                r#"alertname="NodeDown""#,
            ),
            (r#"node=~".+""#, MatchOp::Regex, ".+", r#"node=~".+""#),
            (
                r#"a!="x \"y\"""#,
                MatchOp::NotEqual,
                r#"x "y""#,
                r#"a!="x \"y\"""#,
            ),
            ("a !~ b|c", MatchOp::NotRegex, "b|c", r#"a!~"b|c""#),
        ] {
            let m: Matcher = text.parse().unwrap();
            assert_eq!((m.op, m.value.as_str()), (op, value), "{text}");
            assert_eq!(m.to_string(), rendered);
            assert_eq!(rendered.parse::<Matcher>().unwrap(), m, "round trip");
        }
    }

    #[test]
    fn refuses_what_alertmanager_would_refuse() {
        for (text, needle) in [
            ("alertname", "no operator"),
            ("=x", "not a label name"),
            ("9a=x", "not a label name"),
            ("a!x", "unknown operator"),
            (r#"a=~"(""#, "invalid regex"),
            (r#"a="unterminated"#, "quoted value"),
        ] {
            let e = text.parse::<Matcher>().unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn matches_with_alertmanagers_semantics() {
        let l = labels(&[("alertname", "NodeDown"), ("node", "n1")]);
        assert!("node=~n.".parse::<Matcher>().unwrap().matches(&l));
        // Anchored: a substring is no match.
        assert!(!"node=~n".parse::<Matcher>().unwrap().matches(&l));
        // A missing label is the empty string.
        assert!("pod=\"\"".parse::<Matcher>().unwrap().matches(&l));
        assert!(!"pod=~.+".parse::<Matcher>().unwrap().matches(&l));
        assert!("pod!~.+".parse::<Matcher>().unwrap().matches(&l));
    }
}
