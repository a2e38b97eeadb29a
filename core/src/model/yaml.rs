//! Strict YAML parsing with located errors.
//!
//! Every document telltale reads goes through [`parse`], so every error names
//! the file, line, column and key path, says what was expected and, where a
//! close name exists, suggests it. Pure: takes text, returns values.

use serde::de::DeserializeOwned;

use super::suggest;

/// A text document and the name it is reported under (a path, `<--set>`, or
/// `builtin:plugins/x/plugin.yaml` for embedded content).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// Bad input at a known place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {}{message}", key_path.as_deref().map(|p| format!("{p}: ")).unwrap_or_default())]
pub struct LocatedError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// Dotted path of the offending key (`spec.plugins.loki.enabled`), when known.
    pub key_path: Option<String>,
    pub message: String,
    /// A did-you-mean or the fix, printed after the error.
    pub hint: Option<String>,
    /// The offending source line with a caret under the column.
    pub snippet: Option<String>,
}

impl LocatedError {
    pub fn new(source: &Source, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            file: source.name.clone(),
            line,
            column,
            key_path: None,
            message: message.into(),
            hint: None,
            snippet: snippet(&source.text, line, column),
        }
    }

    pub fn at_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.key_path = (!path.is_empty() && path != ".").then_some(path);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Hides the source text from the column on: the snippet of a literal
    /// secret must not repeat the secret.
    pub fn redacted(mut self) -> Self {
        if let Some(snippet) = &self.snippet {
            let mut lines = snippet.lines();
            let (Some(code), Some(caret)) = (lines.next(), lines.next()) else {
                return self;
            };
            let keep = caret.chars().count().saturating_sub(1);
            let visible: String = code.chars().take(keep).collect();
            self.snippet = Some(format!("{visible}<redacted>\n{caret}"));
        }
        self
    }
}

/// The line at `line` (1-based) with a caret under `column`.
pub fn snippet(text: &str, line: u64, column: u64) -> Option<String> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    let content = text.lines().nth(index)?;
    let caret = " ".repeat(usize::try_from(column.saturating_sub(1)).unwrap_or(0));
    // Tabs are shown as a visible marker so "a tab" errors can be seen.
    Some(format!(
        "{line:>4} | {}\n     | {caret}^",
        content.replace('\t', "→")
    ))
}

/// What the document is expected to be: used for the empty-file message.
pub fn parse<T: DeserializeOwned>(source: &Source, what: &str) -> Result<T, LocatedError> {
    if source.text.trim().is_empty() {
        return Err(LocatedError::new(
            source,
            1,
            1,
            format!("the file is empty; expected {what}"),
        ));
    }
    let mut path = String::new();
    let result = serde_saphyr::with_deserializer_from_str(&source.text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| located(source, &path, &e, what))
}

fn located(source: &Source, path: &str, error: &serde_saphyr::Error, what: &str) -> LocatedError {
    let (line, column) = error
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let raw = error.without_snippet().to_string();
    let message = hide_literals(strip_location_suffix(&raw));
    let message = message.as_str();
    // The scanner reports a tab inside a plain scalar at the scalar's start,
    // which can be a line before the tab: point at the tab itself.
    let (line, column) = if message.contains("tab") {
        first_tab_from(&source.text, line, column).unwrap_or((line, column))
    } else {
        (line, column)
    };
    // serde_path_to_error reports `?` for a key it could not name (a duplicate key).
    let path = path.trim_end_matches(".?").trim_end_matches('?');
    let mut err = LocatedError::new(source, line, column, describe(message, what)).at_path(path);
    // A refused value may be a secret typed in the wrong place: the message
    // names the key and what was expected, the snippet stops at the column.
    // Only errors that point at a key (or at indentation) keep the whole line.
    let at_key = message.starts_with("unknown field")
        || message.starts_with("duplicate mapping key")
        || message.starts_with("missing field")
        || message.contains("tabs disallowed");
    if !at_key
        || message.contains(crate::secrets::LITERAL_SECRET)
        || message.contains(crate::secrets::NOT_AN_ENV_NAME)
    {
        err = err.redacted();
    }
    if let Some(hint) = hint_for(message) {
        err = err.with_hint(hint);
    }
    err
}

/// The line and column (1-based) of the first tab at or after `line`:`column`.
fn first_tab_from(text: &str, line: u64, column: u64) -> Option<(u64, u64)> {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            let start = l
                .char_indices()
                .nth(column.saturating_sub(1) as usize)
                .map_or(l.len(), |(b, _)| b);
            offset += start;
            break;
        }
        offset += l.len();
    }
    let at = offset + text.get(offset..)?.find('\t')?;
    let before = &text[..at];
    let tab_line = before.matches('\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some((tab_line, text[line_start..at].chars().count() as u64 + 1))
}

/// serde quotes the refused value (`invalid type: string "…"`); the value
/// may be a secret, and the snippet already shows where it is.
fn hide_literals(message: &str) -> String {
    static QUOTED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(string|value|variant|field) "(?:[^"\\]|\\.)*""#)
            .expect("static regex")
    });
    let mut out = QUOTED.replace_all(message, "$1").to_string();
    if out.len() > 300 {
        let mut cut = 300;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn strip_location_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// Rewords parser messages that do not say what was expected.
fn describe(message: &str, what: &str) -> String {
    if message.starts_with("unexpected end of input") {
        return format!("unexpected end of input; expected {what}");
    }
    if message.contains("tabs disallowed") {
        return format!("{message}: YAML indentation must use spaces, not tabs");
    }
    if message.starts_with("duplicate mapping key") {
        let key = message
            .trim_start_matches("duplicate mapping key: ")
            .split(',')
            .next()
            .unwrap_or_default();
        return format!("duplicate key `{key}`: each key may appear once in a mapping");
    }
    if message.starts_with("invalid floating point") || message.starts_with("invalid integer") {
        return format!("expected a number ({message})");
    }
    if message.starts_with("invalid type") || message.starts_with("invalid ") {
        return message.to_string();
    }
    message.to_string()
}

/// A did-you-mean for "unknown field `x`, expected one of a, b" and the same
/// for unknown variants.
fn hint_for(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected").map(|(_, e)| e)?;
    let candidates: Vec<String> = expected
        .trim()
        .trim_start_matches("one of")
        .split([',', ' '])
        .map(|c| c.trim().trim_matches('`').to_string())
        .filter(|c| !c.is_empty() && c != "or")
        .collect();
    suggest::did_you_mean(unknown, candidates.iter().map(String::as_str))
        .map(|s| format!("did you mean `{s}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        spec: Spec,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Spec {
        profile: String,
        #[serde(default)]
        replicas: u32,
    }

    fn err(text: &str) -> LocatedError {
        parse::<Doc>(&Source::new("t.yaml", text), "a Config").unwrap_err()
    }

    #[test]
    fn misspelt_field_names_line_path_and_suggestion() {
        let e = err("spec:\n  profle: homelab\n");
        assert_eq!((e.line, e.column), (2, 3));
        assert_eq!(e.key_path.as_deref(), Some("spec.profle"));
        assert_eq!(e.hint.as_deref(), Some("did you mean `profile`?"));
        assert!(
            e.to_string()
                .starts_with("t.yaml:2:3: spec.profle: unknown field `profle`")
        );
    }

    #[test]
    fn duplicate_key_is_named() {
        let e = err("spec:\n  profile: a\n  profile: b\n");
        assert_eq!(e.line, 3);
        assert!(
            e.message.contains("duplicate key `profile`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_tab_after_a_plain_scalar_is_pointed_at_where_it_is() {
        let e = err("spec:\n  profile: kind\n\tnamespace: x\n");
        assert_eq!((e.line, e.column), (3, 1), "{}", e.message);
        assert!(e.message.contains("tab"), "{}", e.message);
    }

    #[test]
    fn tab_is_explained() {
        let e = err("spec:\n\tprofile: a\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not tabs"), "{}", e.message);
        assert!(e.snippet.unwrap().contains('→'));
    }

    #[test]
    fn wrong_type_names_path() {
        let e = err("spec:\n  profile: a\n  replicas: many\n");
        assert_eq!(e.key_path.as_deref(), Some("spec.replicas"));
        assert_eq!((e.line, e.column), (3, 13));
    }

    #[test]
    fn empty_file_says_what_was_expected() {
        let e = err("  \n");
        assert!(e.message.contains("empty; expected a Config"));
    }
}
