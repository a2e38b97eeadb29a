//! Helm values: layering, `--set` parsing and secret extraction.
//!
//! Precedence is plugin defaults < profile chain < config file < `--set`.
//! Maps merge key by key, anything else replaces, and `null` deletes a key
//! (helm's semantics). Secret paths declared by a plugin are taken out of the
//! values here, so no secret source or value can reach a values file.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::strvals::{self, FileReader, Mode};
use crate::model::suggest::did_you_mean;

use crate::model::node::{Located, Node};
use crate::model::validate::{self, Invalid};
use crate::model::yaml::{LocatedError, Source};
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

/// The keys one `--set`, `--set-string` or `--set-file` flag gives one
/// plugin, checked on their own so an error names the flag.
#[derive(Debug, Clone, PartialEq)]
pub struct SetArg {
    pub plugin: String,
    /// The values this flag sets below the plugin (a mapping).
    pub value: Value,
    /// Where it came from, to report errors (`--set #2`). Its text is empty:
    /// a snippet could show a value, and a value may be a secret.
    pub source: Source,
}

/// Every override flag parsed: each flag's own keys (to check and report),
/// and all of them parsed into one tree in helm's order (`--set`, then
/// `--set-string`, then `--set-file`), so `a[0]=x` and `a[1]=y` in two flags
/// build one list as with helm. The tree's top-level keys are plugins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetArgs {
    pub args: Vec<SetArg>,
    pub merged: Map<String, Value>,
}

/// Bounds on one flag: a longer argument is refused before it is parsed,
/// and a `--set-file` larger than [`MAX_SET_FILE`] is not read.
pub const MAX_SET_LEN: usize = 64 * 1024;
pub const MAX_SET_DEPTH: usize = strvals::MAX_NESTING;
pub const MAX_SET_FILE: u64 = 1024 * 1024;

/// Parses the flags in helm's order. `read` gives a `--set-file` path's
/// contents (relative paths are the caller's business: the working directory).
pub fn parse_sets(
    flags: &[(Mode, &[String])],
    read: &mut FileReader<'_>,
) -> Result<SetArgs, LocatedError> {
    let mut out = SetArgs::default();
    // Each file is read once even though each flag is parsed twice.
    let mut cache: BTreeMap<String, Result<String, String>> = BTreeMap::new();
    let mut cached = |path: &str| {
        cache
            .entry(path.to_string())
            .or_insert_with(|| read(path))
            .clone()
    };
    for (mode, texts) in flags {
        for (index, raw) in texts.iter().enumerate() {
            let source = Source::new(format!("{} #{}", mode.flag(), index + 1), "");
            let refuse = |message: String, path: Option<String>| {
                let e = LocatedError::new(&source, 1, 1, message);
                match path {
                    Some(p) => e.at_path(p),
                    None => e,
                }
            };
            if raw.len() > MAX_SET_LEN {
                return Err(refuse(
                    format!("the argument is too long (at most {MAX_SET_LEN} bytes)"),
                    None,
                ));
            }
            // An argument without `=` may be a secret pasted in the wrong
            // place: it is not quoted back, not even as a key.
            if !raw.contains('=') {
                return Err(refuse(
                    format!("the argument has no `=`; {SET_EXPECTED}"),
                    None,
                ));
            }
            let mut own = Map::new();
            strvals::parse_into(raw, &mut own, *mode, &mut cached)
                .and_then(|()| strvals::parse_into(raw, &mut out.merged, *mode, &mut cached))
                .map_err(|e| refuse(format!("{}; {}", e.message, SET_EXPECTED), e.key_path))?;
            if own.is_empty() {
                return Err(refuse(format!("nothing to set; {SET_EXPECTED}"), None));
            }
            for (plugin, value) in own {
                if !value.is_object() {
                    return Err(refuse(
                        format!("`{plugin}` names no key inside the plugin; {SET_EXPECTED}"),
                        Some(plugin),
                    ));
                }
                out.args.push(SetArg {
                    plugin,
                    value,
                    source: source.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// One `--set` flag on its own, no files (tests, and checking one argument).
pub fn parse_set(raw: &str) -> Result<SetArgs, LocatedError> {
    parse_sets(&[(Mode::Typed, &[raw.to_string()])], &mut |_| {
        Err("no files here".into())
    })
}

const SET_EXPECTED: &str = "expected plugin.key.path=value[,plugin.key=value…] as with helm, e.g. kube-prometheus-stack.prometheus.prometheusSpec.retention=15d";

/// Reads a `--set-file` path (relative to the working directory), bounded.
pub fn read_set_file(path: &str) -> Result<String, String> {
    let p = std::path::Path::new(path);
    let meta = std::fs::metadata(p).map_err(|e| format!("cannot read file {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a file"));
    }
    if meta.len() > MAX_SET_FILE {
        return Err(format!(
            "{path} is {} bytes; a --set-file value is at most {MAX_SET_FILE} bytes",
            meta.len()
        ));
    }
    std::fs::read_to_string(p).map_err(|e| format!("cannot read file {path}: {e}"))
}

/// Near enough to be a slip of the keyboard, not a different key the chart
/// has and telltale's defaults do not mention (`podLabels` is no typo of
/// `podAnnotations`): one edit for short keys, two from 8 characters.
fn is_typo(key: &str, known: &str) -> bool {
    let edits = strsim::damerau_levenshtein(&key.to_lowercase(), &known.to_lowercase());
    let allowed = if key.chars().count() >= 8 { 2 } else { 1 };
    key.chars().count() >= 4 && edits <= allowed
}

/// The first key of `new` that the known values do not have but nearly do
/// (`retension` next to `retention`): its path, the keys known there and
/// the closest one. A key that is simply new passes, since the chart has
/// keys telltale's defaults do not mention.
pub fn misspelt_key(
    known: &Value,
    new: &Value,
    path: &mut Vec<String>,
) -> Option<(String, Vec<String>, String)> {
    let (Value::Object(known), Value::Object(new)) = (known, new) else {
        return None;
    };
    if path.len() > 64 {
        return None;
    }
    for (key, value) in new {
        match known.get(key) {
            Some(k) => {
                path.push(key.clone());
                let found = misspelt_key(k, value, path);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None => {
                let names: Vec<String> = known.keys().cloned().collect();
                if let Some(close) = did_you_mean(key, names.iter().map(String::as_str))
                    && is_typo(key, close)
                {
                    let close = close.to_string();
                    path.push(key.clone());
                    let at = path.join(".");
                    path.pop();
                    return Some((at, names, close));
                }
            }
        }
    }
    None
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
    fn set_splits_by_plugin_and_keeps_helm_typing() {
        let s = parse_set(
            r"kube-stack.prometheus.prometheusSpec.retention=15d,loki.singleBinary.replicas=3,loki.podAnnotations.a\.b/c=x",
        )
        .unwrap();
        assert_eq!(s.args.len(), 2);
        assert_eq!(s.args[0].plugin, "kube-stack");
        assert_eq!(
            s.args[0].value,
            json!({"prometheus": {"prometheusSpec": {"retention": "15d"}}})
        );
        assert_eq!(
            s.args[1].value,
            json!({"singleBinary": {"replicas": 3}, "podAnnotations": {"a.b/c": "x"}})
        );
        assert_eq!(s.args[1].source.name, "--set #1");
    }

    #[test]
    fn set_flags_build_one_tree_in_helms_order() {
        let sets = [r"loki.l[0]=1".to_string(), "loki.l[1]=true".to_string()];
        let strings = ["loki.s=true".to_string()];
        let files = ["loki.f=a.txt".to_string()];
        let s = parse_sets(
            &[
                (Mode::Typed, &sets),
                (Mode::String, &strings),
                (Mode::File, &files),
            ],
            &mut |p| Ok(format!("<{p}>")),
        )
        .unwrap();
        assert_eq!(
            s.merged["loki"],
            json!({"l": [1, true], "s": "true", "f": "<a.txt>"})
        );
        assert_eq!(s.args.len(), 4);
        assert_eq!(s.args[3].source.name, "--set-file #1");
        let e = parse_sets(&[(Mode::File, &files)], &mut |p| {
            Err(format!("cannot read file {p}: not found"))
        })
        .unwrap_err();
        assert_eq!(e.file, "--set-file #1");
        assert_eq!(e.key_path.as_deref(), Some("loki.f"));
        assert!(e.message.contains("cannot read file a.txt"), "{e}");
    }

    #[test]
    fn set_file_reads_bounded_files() {
        let dir = std::env::temp_dir().join(format!("telltale-setfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.txt");
        std::fs::write(&small, "line 1\nline 2\n").unwrap();
        assert_eq!(
            read_set_file(small.to_str().unwrap()).unwrap(),
            "line 1\nline 2\n"
        );
        let big = dir.join("big.txt");
        std::fs::write(&big, vec![b'x'; MAX_SET_FILE as usize + 1]).unwrap();
        assert!(
            read_set_file(big.to_str().unwrap())
                .unwrap_err()
                .contains("at most")
        );
        assert!(
            read_set_file(dir.join("missing").to_str().unwrap())
                .unwrap_err()
                .contains("cannot read file")
        );
        assert!(
            read_set_file(dir.to_str().unwrap())
                .unwrap_err()
                .contains("not a file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn misspelt_keys_are_found_and_new_keys_pass() {
        let known = json!({"prometheus": {"prometheusSpec": {"retention": "15d", "retentionSize": "10GB"}}, "podAnnotations": {}});
        let typo = json!({"prometheus": {"prometheusSpec": {"retension": "30d"}}});
        let (path, keys, close) = misspelt_key(&known, &typo, &mut Vec::new()).unwrap();
        assert_eq!(path, "prometheus.prometheusSpec.retension");
        assert_eq!(keys, ["retention", "retentionSize"]);
        assert_eq!(close, "retention");
        for fine in [
            json!({"podLabels": {"a": "b"}}),
            json!({"prometheus": {"prometheusSpec": {"retention": "30d", "replicas": 2}}}),
            json!({"prometheus": {"ingress": {"enabled": true}}}),
        ] {
            assert_eq!(misspelt_key(&known, &fine, &mut Vec::new()), None, "{fine}");
        }
        let (path, ..) = misspelt_key(&known, &json!({"promethues": {}}), &mut Vec::new()).unwrap();
        assert_eq!(path, "promethues");
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
        let e = parse_set("loki").unwrap_err();
        assert_eq!(e.file, "--set #1");
        assert!(e.message.contains("no `=`"), "{e}");
        assert!(!e.to_string().contains("loki"), "{e}");
        let deep = format!("loki.{}=1", vec!["a"; 40_000].join("."));
        let e = parse_set(&deep).unwrap_err();
        assert!(e.message.contains("too long"), "{e}");
        let deep = format!("loki.{}=1", vec!["a"; 40].join("."));
        let e = parse_set(&deep).unwrap_err();
        assert!(e.message.contains("more than 30"), "{e}");
        let e = parse_set("loki..x=1").unwrap_err();
        assert!(e.message.contains("has no value"), "{e}");
        let e = parse_set("loki=1").unwrap_err();
        assert!(e.message.contains("names no key"), "{e}");
        let e = parse_set(",loki.a=1").unwrap_err();
        assert!(e.message.contains("cannot end with ,"), "{e}");
        let e = parse_set("=1").unwrap_err();
        assert!(e.message.contains("nothing to set"), "{e}");
        let e = parse_set("loki.a=secret-ish,loki.b").unwrap_err();
        assert!(!e.to_string().contains("secret-ish"), "{e}");
        assert_eq!(e.key_path.as_deref(), Some("loki.b"));
    }
}
