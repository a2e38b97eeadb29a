//! Kubernetes objects: parsed from (templated) multi-document YAML or built
//! in code, labelled as managed by telltale, and named for the bundle.

use serde_json::{Value, json};

use crate::model::node::Node;
use crate::model::{LocatedError, Source};

pub const MANAGED_BY: &str = "telltale";

/// Kinds that are not namespaced; everything else gets the target namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "APIService",
    "PersistentVolume",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ClusterIssuer",
    "ClusterSecretStore",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub value: Value,
    /// Who contributed it: a plugin name or `core`.
    pub owner: String,
}

impl Object {
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }
    /// The API group (`""` for the core group of `v1`).
    pub fn group(&self) -> &str {
        self.api_version()
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
    pub fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
    }
    /// `<kind>_<namespace>_<name>.yaml`; cluster-scoped objects have an empty namespace.
    pub fn file_name(&self) -> String {
        format!("{}_{}_{}.yaml", self.kind(), self.namespace(), self.name())
    }
}

/// A new object of `kind` owned by telltale.
pub fn build(
    api_version: &str,
    kind: &str,
    name: &str,
    namespace: &str,
    owner: &str,
    rest: Value,
) -> Object {
    let mut value = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
    });
    if let Value::Object(extra) = rest {
        for (k, v) in extra {
            if k == "metadata" {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta {
                        value["metadata"][mk] = mv;
                    }
                }
            } else {
                value[k] = v;
            }
        }
    }
    finish(
        Object {
            value,
            owner: owner.to_string(),
        },
        namespace,
    )
}

/// Parses a multi-document manifest file into objects.
pub fn parse(source: &Source, namespace: &str, owner: &str) -> Result<Vec<Object>, LocatedError> {
    let docs: Vec<Node> = serde_saphyr::from_multiple(&source.text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        LocatedError::new(source, line, column, e.without_snippet().to_string())
    })?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if doc == Node::Null {
            continue;
        }
        let value = doc.to_json();
        for field in ["apiVersion", "kind"] {
            if !value[field].is_string() {
                return Err(LocatedError::new(
                    source,
                    1,
                    1,
                    format!("document {} has no `{field}`", i + 1),
                ));
            }
        }
        if !value["metadata"]["name"].is_string() {
            return Err(LocatedError::new(
                source,
                1,
                1,
                format!("document {} has no metadata.name", i + 1),
            ));
        }
        out.push(finish(
            Object {
                value,
                owner: owner.to_string(),
            },
            namespace,
        ));
    }
    Ok(out)
}

fn finish(mut object: Object, namespace: &str) -> Object {
    let cluster_scoped = CLUSTER_SCOPED.contains(&object.kind());
    let meta = &mut object.value["metadata"];
    if cluster_scoped {
        if let Value::Object(m) = meta {
            m.remove("namespace");
        }
    } else if !meta["namespace"].is_string() {
        meta["namespace"] = json!(namespace);
    }
    meta["labels"]["app.kubernetes.io/managed-by"] = json!(MANAGED_BY);
    meta["labels"]["telltale.dev/component"] = json!(object.owner);
    object
}
