//! Helm values: layering, `--set` parsing and secret extraction.
//!
//! Precedence is plugin defaults < profile chain < config file < `--set`.
//! Maps merge key by key, anything else replaces, and `null` deletes a key
//! (helm's semantics). Secret paths declared by a plugin are taken out of the
//! values here, so no secret source or value can reach a values file.

use serde_json::{Map, Value};

use crate::model::node::{Located, Node};
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

pub fn parse_set(index: usize, raw: &str) -> Result<SetArg, LocatedError> {
    let source = Source::new(format!("--set #{}", index + 1), raw);
    let expected = "expected plugin.key.path=value, e.g. kube-prometheus-stack.prometheus.prometheusSpec.retention=15d";
    let Some((key, value)) = raw.split_once('=') else {
        return Err(
            LocatedError::new(&source, 1, 1, format!("`{raw}` has no `=`; {expected}"))
                .at_path(raw),
        );
    };
    let parts = split_path(key);
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
                    (key.len() + 1 + e.column as usize) as u64,
                    e.message,
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
    fn malformed_set_is_located() {
        let e = parse_set(1, "loki").unwrap_err();
        assert_eq!(e.file, "--set #2");
        assert!(e.message.contains("no `=`"));
        let e = parse_set(0, "loki..x=1").unwrap_err();
        assert_eq!(e.column, 6);
        let e = parse_set(0, "loki=1").unwrap_err();
        assert!(e.message.contains("names no key"));
    }
}
