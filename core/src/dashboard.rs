//! What a Grafana dashboard's JSON says, read the way Grafana reads it: its
//! panels (rows folded in), each target's datasource type, and its template
//! variables at their current values, filled into a query as the browser
//! would. Pure: render (which metric a panel reads), verify (the query
//! Grafana is sent) and the local stack's fake Grafana share one reading.

use std::collections::BTreeMap;

use serde_json::Value;

/// Every panel, including those folded into rows.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        for inner in panel["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// The datasource type a panel queries: the target's, else the panel's.
/// `${datasource}`-style references name a datasource variable whose type
/// is given next to it.
pub fn datasource_type(panel: &Value, target: &Value) -> String {
    for ds in [&target["datasource"], &panel["datasource"]] {
        if let Some(kind) = ds["type"].as_str() {
            return kind.to_string();
        }
    }
    "prometheus".into()
}

/// The dashboard's template variables at their current (or "All") values,
/// the way the browser would send them.
pub fn variables(dashboard: &Value) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(name) = v["name"].as_str() else {
            continue;
        };
        let all = v["allValue"].as_str().unwrap_or(".*").to_string();
        let value = match &v["current"]["value"] {
            Value::String(s) if s == "$__all" => all,
            Value::String(s) => s.clone(),
            Value::Array(items) => {
                let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                if items.contains(&"$__all") || items.is_empty() {
                    all
                } else if items.len() == 1 {
                    items[0].to_string()
                } else {
                    format!("({})", items.join("|"))
                }
            }
            _ => match &v["query"] {
                Value::String(s) if v["type"] != "query" && v["type"] != "datasource" => s.clone(),
                _ => all,
            },
        };
        vars.insert(name.to_string(), value);
    }
    vars
}

/// Replaces `$name`, `${name}`, `${name:format}` and `[[name]]` with the
/// variable's value, and Grafana's interval macros with fixed ones (for the
/// probes of an empty panel, which look at the last hour).
pub fn interpolate(expr: &str, vars: &BTreeMap<String, String>) -> String {
    substitute(expr, vars, true)
}

/// What the browser sends: the template variables filled in, Grafana's
/// macros (`$__rate_interval`, `$__range`…) left for its backend.
pub fn interpolate_variables(expr: &str, vars: &BTreeMap<String, String>) -> String {
    substitute(expr, vars, false)
}

fn substitute(expr: &str, vars: &BTreeMap<String, String>, macros: bool) -> String {
    let lookup = |name: &str| -> Option<String> {
        match name {
            _ if name.starts_with("__") && !macros => None,
            "__rate_interval" | "__interval" | "__auto" => Some("1m".into()),
            "__interval_ms" => Some("60000".into()),
            "__range" => Some("1h".into()),
            "__range_s" => Some("3600".into()),
            _ => vars.get(name).cloned(),
        }
    };
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(pos) = rest.find(['$', '[']) {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some(inner) = rest.strip_prefix("${")
            && let Some(end) = inner.find('}')
        {
            let name = inner[..end].split(':').next().unwrap_or_default();
            if let Some(value) = lookup(name) {
                out.push_str(&value);
                rest = &inner[end + 1..];
                continue;
            }
        } else if let Some(inner) = rest.strip_prefix("[[")
            && let Some(end) = inner.find("]]")
            && let Some(value) = lookup(&inner[..end])
        {
            out.push_str(&value);
            rest = &inner[end + 2..];
            continue;
        } else if let Some(inner) = rest.strip_prefix('$') {
            let len = ident(inner);
            if len > 0
                && let Some(value) = lookup(&inner[..len])
            {
                out.push_str(&value);
                rest = &inner[len..];
                continue;
            }
        }
        out.push_str(&rest[..1]);
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn variables_take_current_or_all_values_and_macros_are_fixed() {
        let dashboard = json!({"templating": {"list": [
            {"name": "namespace", "type": "query", "allValue": ".+", "current": {"value": ["$__all"]}},
            {"name": "cluster", "type": "query", "current": {"value": "$__all"}},
            {"name": "node", "type": "custom", "current": {"value": ["a", "b"]}},
            {"name": "batch", "type": "textbox", "query": "finetune.*", "current": {"value": "finetune.*"}},
            {"name": "ds", "type": "datasource", "query": "prometheus", "current": {}},
        ]}});
        let vars = variables(&dashboard);
        assert_eq!(vars["namespace"], ".+");
        assert_eq!(vars["cluster"], ".*");
        assert_eq!(vars["node"], "(a|b)");
        assert_eq!(vars["batch"], "finetune.*");
        assert_eq!(
            interpolate(
                r#"sum(rate(x{namespace=~"$namespace", c=~"${cluster}", n=~"[[node]]", p=~"${batch:regex}"}[$__rate_interval])) $price"#,
                &vars
            ),
            r#"sum(rate(x{namespace=~".+", c=~".*", n=~"(a|b)", p=~"finetune.*"}[1m])) $price"#
        );
    }
}
