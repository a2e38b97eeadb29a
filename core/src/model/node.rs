//! A YAML value that remembers where each node came from.
//!
//! Plugin values are free-form (they are helm values), but errors in them
//! must still name file:line:col, so they are kept as located nodes until
//! they are merged into plain JSON for rendering.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

pub type Located = Spanned<Node>;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Located>),
    /// Entries, and where each key was written.
    Map(BTreeMap<String, Located>, BTreeMap<String, Location>),
}

impl Node {
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::from(*i),
            Node::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(|i| i.value.to_json()).collect()),
            Node::Map(map, _) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), v.value.to_json()))
                    .collect(),
            ),
        }
    }

    pub fn as_map(&self) -> Option<&BTreeMap<String, Located>> {
        match self {
            Node::Map(m, _) => Some(m),
            _ => None,
        }
    }

    /// The node at a dotted path (`a.b.c`, list items as `a.0.b` or `a[0].b`),
    /// with its location.
    pub fn get_path(&self, path: &str) -> Option<&Located> {
        let normalized = path.replace('[', ".").replace(']', "");
        let mut parts = normalized.split('.').filter(|p| !p.is_empty());
        let mut current = self.child(parts.next()?)?;
        for part in parts {
            current = current.value.child(part)?;
        }
        Some(current)
    }

    /// Where the key at the end of a dotted path was written; the value's
    /// location for list items.
    pub fn key_location(&self, path: &str) -> Option<Location> {
        let normalized = path.replace('[', ".").replace(']', "");
        let parts: Vec<&str> = normalized.split('.').filter(|p| !p.is_empty()).collect();
        let (last, parents) = parts.split_last()?;
        let parent = if parents.is_empty() {
            self
        } else {
            &self.get_path(&parents.join("."))?.value
        };
        match parent {
            Node::Map(_, keys) => keys.get(*last).copied(),
            Node::Seq(items) => items.get(last.parse::<usize>().ok()?).map(|i| i.referenced),
            _ => None,
        }
    }

    fn child(&self, key: &str) -> Option<&Located> {
        match self {
            Node::Map(m, _) => m.get(key),
            Node::Seq(items) => items.get(key.parse::<usize>().ok()?),
            _ => None,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(..) => "a mapping",
        }
    }
}

/// Wraps a node built in code (defaults, `--set`) with an unknown location.
pub fn unlocated(node: Node) -> Located {
    Spanned::new(node, Location::UNKNOWN, Location::UNKNOWN)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out = BTreeMap::new();
        let mut keys = BTreeMap::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Located>()?;
            keys.insert(key.value.clone(), key.referenced);
            out.insert(key.value, value);
        }
        Ok(Node::Map(out, keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::yaml::{Source, parse};

    #[test]
    fn nodes_keep_their_locations() {
        let src = Source::new("v.yaml", "a:\n  b: 1\n  c: [x, true]\n");
        let node: Node = parse(&src, "values").unwrap();
        let b = node.get_path("a.b").unwrap();
        assert_eq!((b.referenced.line(), b.referenced.column()), (2, 6));
        assert_eq!(
            node.to_json(),
            serde_json::json!({"a": {"b": 1, "c": ["x", true]}})
        );
    }
}
