//! Helm values: layering, `--set` parsing and secret extraction.
//!
//! Precedence is plugin defaults < profile chain < config file < `--set`.
//! Maps merge key by key, anything else replaces, and `null` deletes a key
//! (helm's semantics). Secret paths declared by a plugin are taken out of the
//! values here, so no secret source or value can reach a values file.

use serde_json::{Map, Value};

use crate::model::node::{Located, Node};
use crate::model::validate::{self, Invalid};
use crate::model::yaml::{LocatedError, Source, parse};
use crate::secrets::{LITERAL_SECRET, SecretSource};

/// Deep-merges `over` into `base`.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    base.remove(&key);
                    continue;
                }
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Splits `a.b\.c.d` into `["a", "b.c", "d"]`.
pub fn split_path(path: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                if let Some(last) = parts.last_mut() {
                    last.push('.');
                }
            }
            '.' => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

/// `{a: {b: value}}` for the path `a.b`.
pub fn nest(path: &[String], value: Value) -> Value {
    path.iter().rev().fold(value, |acc, key| {
        let mut map = Map::new();
        map.insert(key.clone(), acc);
        Value::Object(map)
    })
}

/// One `--set plugin.key.path=value`.
#[derive(Debug, Clone, PartialEq)]
pub struct SetArg {
    pub plugin: String,
    pub path: Vec<String>,
    pub value: Value,
    /// Where it came from, to report errors (`--set #2`).
    pub source: Source,
}

/// Bounds on one `--set`: a longer argument or a deeper path is refused
/// before it is parsed (a 20,000-segment path would otherwise nest values
/// deeper than any code that walks them can go).
pub const MAX_SET_LEN: usize = 64 * 1024;
pub const MAX_SET_KEY_LEN: usize = 1024;
pub const MAX_SET_DEPTH: usize = 32;

pub fn parse_set(index: usize, raw: &str) -> Result<SetArg, LocatedError> {
    let name = format!("--set #{}", index + 1);
    let expected = "expected plugin.key.path=value, e.g. kube-prometheus-stack.prometheus.prometheusSpec.retention=15d";
    // Errors show the key, never the value: a refused value may be a secret.
    let Some((key, value)) = raw.split_once('=') else {
        return Err(LocatedError::new(
            &Source::new(name, "<not shown>"),
            1,
            1,
            format!("the argument has no `=`; {expected}"),
        ));
    };
    let source = Source::new(name, format!("{key}=<value>"));
    if raw.len() > MAX_SET_LEN || key.len() > MAX_SET_KEY_LEN {
        return Err(LocatedError::new(
            &Source::new(source.name.clone(), ""),
            1,
            1,
            format!(
                "the argument is too long (at most {MAX_SET_KEY_LEN} bytes of key and {MAX_SET_LEN} in all)"
            ),
        ));
    }
    let parts = split_path(key);
    if parts.len() > MAX_SET_DEPTH + 1 {
        return Err(LocatedError::new(
            &Source::new(source.name.clone(), ""),
            1,
            1,
            format!(
                "the key path has {} segments; at most {MAX_SET_DEPTH} below the plugin",
                parts.len()
            ),
        ));
    }
    if let Some(i) = parts.iter().position(String::is_empty) {
        let column = parts.iter().take(i).map(|p| p.len() + 1).sum::<usize>() + 1;
        return Err(LocatedError::new(
            &source,
            1,
            column as u64,
            format!("empty segment in `{key}`; {expected}"),
        )
        .at_path(key));
    }
    if parts.len() < 2 {
        return Err(LocatedError::new(
            &source,
            1,
            1,
            format!("`{key}` names no key inside the plugin; {expected}"),
        )
        .at_path(key));
    }
    let value = if value.trim().is_empty() {
        Value::String(String::new())
    } else {
        let value_source = Source::new(source.name.clone(), value);
        parse::<Node>(&value_source, "a YAML value")
            .map_err(|e| {
                LocatedError::new(
                    &source,
                    1,
                    (key.len() + 2) as u64,
                    format!("the value is not valid YAML ({})", strip_quoted(&e.message)),
                )
                .at_path(key)
            })?
            .to_json()
    };
    Ok(SetArg {
        plugin: parts[0].clone(),
        path: parts[1..].to_vec(),
        value,
        source,
    })
}

/// A parser message without anything it quotes from the input.
fn strip_quoted(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' | '`' | '\'' => {
                quoted = !quoted;
                if quoted {
                    out.push('…');
                }
            }
            _ if !quoted => out.push(c),
            _ => {}
        }
    }
    out.chars().take(200).collect()
}

/// Why `new` cannot go at `path` (keys below the plugin), judged by the
/// plugin's default there and by the key's name. `None` when it can.
pub fn typed(default: Option<&Value>, path: &[String], new: &Value) -> Option<(String, Invalid)> {
    typed_at(default, path, new, 0)
}

fn typed_at(
    default: Option<&Value>,
    path: &[String],
    new: &Value,
    depth: usize,
) -> Option<(String, Invalid)> {
    let key = path.last().map(String::as_str).unwrap_or_default();
    let fail = |expected: String| Some((path.join("."), Invalid::expected(expected)));
    if depth > 64 {
        return None;
    }
    if let Value::Object(map) = new {
        if let Some(d) = default
            && !d.is_object()
            && !d.is_null()
        {
            return fail(format!("{} (the default is {})", kind(d), kind(d)));
        }
        for (k, v) in map {
            let mut p = path.to_vec();
            p.push(k.clone());
            if let Some(bad) = typed_at(default.and_then(|d| d.get(k)), &p, v, depth + 1) {
                return Some(bad);
            }
        }
        return None;
    }
    if new.is_null() {
        return None;
    }
    let lower = key.to_ascii_lowercase();
    if lower.ends_with("replicas") || lower == "replicacount" {
        return match new.as_i64() {
            Some(n) if n >= 0 => None,
            _ => fail("a whole number of replicas, 0 or more".into()),
        };
    }
    if lower.ends_with("port") && (new.is_number() || default.is_some_and(Value::is_number)) {
        return match new.as_u64() {
            Some(1..=65535) => None,
            _ => fail("a port number from 1 to 65535".into()),
        };
    }
    match default {
        Some(Value::Bool(_)) if !new.is_boolean() => {
            return fail("true or false (the default is a boolean)".into());
        }
        Some(Value::Number(d)) => {
            if !new.is_number() {
                return fail("a number (the default is a number)".into());
            }
            if (d.is_i64() || d.is_u64()) && !(new.is_i64() || new.is_u64()) {
                return fail("a whole number (the default is one)".into());
            }
            if d.as_f64().is_some_and(|d| d >= 0.0) && new.as_f64().is_some_and(|n| n < 0.0) {
                return fail("a number of 0 or more (the default is not negative)".into());
            }
        }
        Some(d @ (Value::Object(_) | Value::Array(_))) if kind(d) != kind(new) => {
            return fail(format!("{} (the default is {})", kind(d), kind(d)));
        }
        Some(Value::String(d)) => {
            if is_unit_quantity(d) {
                return quantity_or_fail(new, path);
            }
            if is_duration(d) {
                return match new.as_str().map(validate::prom_duration) {
                    Some(Ok(())) => None,
                    Some(Err(i)) => Some((path.join("."), i)),
                    None => fail("a Prometheus duration such as 15d (the default is one)".into()),
                };
            }
        }
        _ => {}
    }
    if new.is_string() && ["storage", "memory", "cpu", "ephemeral-storage"].contains(&key) {
        return quantity_or_fail(new, path);
    }
    if key == "retention"
        && let Some(Err(i)) = new.as_str().map(validate::prom_duration)
    {
        return Some((path.join("."), i));
    }
    None
}

fn quantity_or_fail(new: &Value, path: &[String]) -> Option<(String, Invalid)> {
    if new.is_number() {
        return None;
    }
    match new.as_str().map(validate::quantity) {
        Some(Ok(())) => None,
        Some(Err(i)) => Some((path.join("."), i)),
        None => Some((
            path.join("."),
            Invalid::expected("a Kubernetes quantity such as 100Gi".into()),
        )),
    }
}

fn is_unit_quantity(text: &str) -> bool {
    text.ends_with(|c: char| c.is_ascii_alphabetic())
        && text.starts_with(|c: char| c.is_ascii_digit())
        && validate::quantity(text).is_ok()
        && !text.ends_with('m')
}

fn is_duration(text: &str) -> bool {
    text.ends_with(|c: char| c.is_ascii_alphabetic()) && validate::prom_duration(text).is_ok()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Every string in a JSON value with the key that holds it (bounded depth).
pub fn json_strings<'a>(value: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    fn walk<'a>(value: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>, depth: usize) {
        if depth > 64 {
            return;
        }
        match value {
            Value::String(s) => out.push((key, s)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, key, out, depth + 1)),
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, k, out, depth + 1)),
            _ => {}
        }
    }
    walk(value, key, out, 0);
}

/// Takes the declared secret paths out of a layer's values. Each must be a
/// secret source; a literal is refused at its location.
pub fn take_secrets(
    source: &Source,
    values: &Located,
    secret_paths: &[String],
    key_prefix: &str,
) -> Result<(Value, Vec<(String, SecretSource)>), LocatedError> {
    let mut json = values.value.to_json();
    let mut found = Vec::new();
    for path in secret_paths {
        let Some(node) = values.value.get_path(path) else {
            continue;
        };
        let parsed: Result<SecretSource, _> = serde_json::from_value(node.value.to_json());
        match parsed {
            Ok(secret) => found.push((path.clone(), secret)),
            Err(e) => {
                let message = if matches!(
                    node.value,
                    Node::Str(_) | Node::Int(_) | Node::Float(_) | Node::Bool(_)
                ) {
                    LITERAL_SECRET.to_string()
                } else {
                    format!("expected a secret source: {e}")
                };
                return Err(LocatedError::new(
                    source,
                    node.referenced.line(),
                    node.referenced.column(),
                    message,
                )
                .at_path(format!("{key_prefix}.{path}"))
                .redacted());
            }
        }
        remove_path(&mut json, &split_path(path));
    }
    Ok((json, found))
}

fn remove_path(value: &mut Value, path: &[String]) {
    match path {
        [] => {}
        [last] => {
            if let Value::Object(map) = value {
                map.remove(last);
            }
        }
        [first, rest @ ..] => {
            if let Some(child) = value.get_mut(first.as_str()) {
                remove_path(child, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_follows_helm_semantics() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "list": [1, 2], "gone": true});
        merge(&mut base, json!({"a": {"b": 3}, "list": [9], "gone": null}));
        assert_eq!(base, json!({"a": {"b": 3, "c": 2}, "list": [9]}));
    }

    #[test]
    fn set_parses_typed_scalars_and_escaped_dots() {
        let s = parse_set(
            0,
            "kube-prometheus-stack.prometheus.prometheusSpec.retention=15d",
        )
        .unwrap();
        assert_eq!(s.plugin, "kube-prometheus-stack");
        assert_eq!(s.path, ["prometheus", "prometheusSpec", "retention"]);
        assert_eq!(s.value, json!("15d"));
        assert_eq!(
            parse_set(0, "loki.singleBinary.replicas=3").unwrap().value,
            json!(3)
        );
        let s = parse_set(0, r"loki.podAnnotations.a\.b/c=x").unwrap();
        assert_eq!(s.path, ["podAnnotations", "a.b/c"]);
    }

    #[test]
    fn set_values_are_typed_against_the_defaults() {
        let d = json!({"replicas": 1, "enabled": true, "size": "10Gi", "retention": "15d", "m": {"a": 1}});
        let p = |k: &str| vec![k.to_string()];
        assert!(typed(d.get("replicas"), &p("replicas"), &json!(-3)).is_some());
        assert!(typed(d.get("replicas"), &p("replicas"), &json!(3)).is_none());
        assert!(typed(d.get("enabled"), &p("enabled"), &json!("yes")).is_some());
        let (_, e) = typed(d.get("size"), &p("size"), &json!("100Gb")).unwrap();
        assert!(e.hint.unwrap().contains("100Gi"));
        assert!(typed(d.get("retention"), &p("retention"), &json!("30x")).is_some());
        assert!(typed(d.get("m"), &p("m"), &json!(3)).is_some());
        assert!(typed(None, &p("storage"), &json!("100Gb")).is_some());
        assert!(typed(None, &p("anything"), &json!("100Gb")).is_none());
    }

    #[test]
    fn malformed_set_is_located() {
        let e = parse_set(1, "loki").unwrap_err();
        assert_eq!(e.file, "--set #2");
        assert!(e.message.contains("no `=`"));
        let deep = format!("loki.{}=1", vec!["a"; 20_000].join("."));
        let e = parse_set(0, &deep).unwrap_err();
        assert!(e.message.contains("too long"), "{e}");
        let deep = format!("loki.{}=1", vec!["a"; 400].join("."));
        let e = parse_set(0, &deep).unwrap_err();
        assert!(e.message.contains("at most 32"), "{e}");
        let e = parse_set(0, "loki..x=1").unwrap_err();
        assert_eq!(e.column, 6);
        let e = parse_set(0, "loki=1").unwrap_err();
        assert!(e.message.contains("names no key"));
    }
}
