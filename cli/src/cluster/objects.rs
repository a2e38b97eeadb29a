//! Objects of any kind: server-side apply (field manager `telltale`), get,
//! delete and drift, with the kind resolved by discovery once per run.

use std::collections::HashMap;
use std::fmt;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use super::Kube;

pub const FIELD_MANAGER: &str = "telltale";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "telltale");
/// The label holding the journal's install id on every object telltale applies.
pub const INSTALL_ID: &str = "telltale.dev/install-id";

/// Whether a live object carries telltale's marks for this install: the
/// managed-by label and the install id. `Err` says which mark is missing.
pub fn owned(live: &Value, install_id: &str) -> Result<(), String> {
    // A controller that took the object over (the sealed-secrets controller
    // adopting a Secret `up` created) owns it now, whatever labels remain.
    if let Some(owner) = controller(live) {
        return Err(format!("it is controlled by {owner}"));
    }
    let labels = &live["metadata"]["labels"];
    if labels[MANAGED_BY.0].as_str() != Some(MANAGED_BY.1) {
        return Err(format!("it has no {}={} label", MANAGED_BY.0, MANAGED_BY.1));
    }
    match labels[INSTALL_ID].as_str() {
        Some(id) if !install_id.is_empty() && id == install_id => Ok(()),
        Some(_) => Err(format!("its {INSTALL_ID} label is another install's")),
        None => Err(format!("it has no {INSTALL_ID} label")),
    }
}

/// The controller a live object belongs to, as `Kind/name` of its
/// ownerReference with `controller: true`.
pub fn controller(live: &Value) -> Option<String> {
    live["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or("?"),
                r["name"].as_str().unwrap_or("?")
            )
        })
}

/// Which object: what the journal records and `down` deletes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn of(object: &Value) -> ObjectRef {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        ObjectRef {
            api_version: text(&object["apiVersion"]),
            kind: text(&object["kind"]),
            namespace: text(&object["metadata"]["namespace"]),
            name: text(&object["metadata"]["name"]),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{} in {}", self.kind, self.name, self.namespace)
        }
    }
}

/// What an apply did (or, dry-run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

pub struct Objects {
    kube: Kube,
    /// Written as the [`INSTALL_ID`] label by `apply` (and expected by `drift`).
    install_id: Option<String>,
    kinds: Mutex<HashMap<(String, String), (ApiResource, ApiCapabilities)>>,
}

impl Objects {
    pub fn new(kube: &Kube) -> Objects {
        Objects {
            kube: kube.clone(),
            install_id: None,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Objects that `apply` marks with this install id (none when empty: a
    /// journal from before install ids).
    pub fn for_install(kube: &Kube, install_id: &str) -> Objects {
        Objects {
            install_id: (!install_id.is_empty()).then(|| install_id.to_string()),
            ..Objects::new(kube)
        }
    }

    /// The object with telltale's marks, as `apply` sends it.
    fn marked(&self, object: &Value) -> Value {
        let mut object = object.clone();
        object["metadata"]["labels"][MANAGED_BY.0] = Value::String(MANAGED_BY.1.into());
        if let Some(id) = &self.install_id {
            object["metadata"]["labels"][INSTALL_ID] = Value::String(id.clone());
        }
        object
    }

    async fn api(&self, r: &ObjectRef) -> Result<Api<DynamicObject>, kube::Error> {
        let key = (r.api_version.clone(), r.kind.clone());
        let mut kinds = self.kinds.lock().await;
        let (resource, caps) = match kinds.get(&key) {
            Some(found) => found.clone(),
            None => {
                let (group, version) = match r.api_version.split_once('/') {
                    Some((g, v)) => (g, v),
                    None => ("", r.api_version.as_str()),
                };
                let gvk = GroupVersionKind::gvk(group, version, &r.kind);
                // Only successes are cached: a kind appears once its CRD is applied.
                let found = kube::discovery::pinned_kind(&self.kube.client, &gvk).await?;
                kinds.insert(key, found.clone());
                found
            }
        };
        let client = self.kube.client.clone();
        Ok(match caps.scope {
            Scope::Cluster => Api::all_with(client, &resource),
            Scope::Namespaced if r.namespace.is_empty() => Api::all_with(client, &resource),
            Scope::Namespaced => Api::namespaced_with(client, &r.namespace, &resource),
        })
    }

    pub async fn get(&self, r: &ObjectRef) -> Result<Option<Value>, kube::Error> {
        let api = match self.api(r).await {
            Ok(api) => api,
            // The kind itself is gone (its CRD was deleted): so is the object.
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(api
            .get_opt(&r.name)
            .await?
            .map(|o| serde_json::to_value(o).unwrap_or(Value::Null)))
    }

    /// Server-side apply with force: telltale owns the fields it sets. The
    /// object is labelled managed-by telltale and with the install id.
    pub async fn apply(&self, object: &Value, dry_run: bool) -> Result<Change, kube::Error> {
        let object = self.marked(object);
        let r = ObjectRef::of(&object);
        let api = self.api(&r).await?;
        let before = api.get_opt(&r.name).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        let after = api.patch(&r.name, &params, &Patch::Apply(&object)).await?;
        Ok(match before {
            None => Change::Created,
            Some(before) if dry_run => {
                let live = serde_json::to_value(before).unwrap_or(Value::Null);
                let result = serde_json::to_value(after).unwrap_or(Value::Null);
                if normalized(&live) == normalized(&result) {
                    Change::Unchanged
                } else {
                    Change::Updated
                }
            }
            Some(before) if before.metadata.resource_version == after.metadata.resource_version => {
                Change::Unchanged
            }
            Some(_) => Change::Updated,
        })
    }

    /// Whether the live object differs from what applying `object` would
    /// make of it (the `kubectl diff` question), or is gone.
    pub async fn drift(&self, object: &Value) -> Result<Option<String>, kube::Error> {
        let r = ObjectRef::of(object);
        let Some(live) = self.get(&r).await? else {
            return Ok(Some("missing".into()));
        };
        let object = self.marked(object);
        let api = self.api(&r).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = true;
        let wanted = api.patch(&r.name, &params, &Patch::Apply(&object)).await?;
        let wanted = serde_json::to_value(wanted).unwrap_or(Value::Null);
        Ok(first_difference(
            &normalized(&wanted),
            &normalized(&live),
            "",
        ))
    }

    /// Deletes the object; false when it was already gone.
    pub async fn delete(&self, r: &ObjectRef) -> Result<bool, kube::Error> {
        let api = match self.api(r).await {
            Ok(api) => api,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
            Err(e) => return Err(e),
        };
        match api.delete(&r.name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Objects of a kind matching a label selector, in one namespace.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        selector: &str,
    ) -> Result<Vec<Value>, kube::Error> {
        let r = ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: String::new(),
        };
        let api = match self.api(&r).await {
            Ok(api) => api,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let list = api
            .list(&kube::api::ListParams::default().labels(selector))
            .await?;
        Ok(list
            .items
            .into_iter()
            .map(|o| {
                let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
                v["apiVersion"] = Value::String(api_version.into());
                v["kind"] = Value::String(kind.into());
                v
            })
            .collect())
    }
}

/// The object without what the server maintains, for comparisons.
pub fn normalized(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            meta.remove(key);
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    object
}

/// The first path where `wanted` and `live` differ, for a drift report.
fn first_difference(wanted: &Value, live: &Value, path: &str) -> Option<String> {
    match (wanted, live) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                )
            })
        }
        (a, b) if a == b => None,
        _ => Some(format!("{} changed", path.trim_start_matches('.'))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_the_path() {
        let a = json!({"data": {"x": "1", "y": "2"}, "metadata": {"name": "n"}});
        let b = json!({"data": {"x": "1", "y": "3"}, "metadata": {"name": "n"}});
        assert_eq!(first_difference(&a, &b, ""), Some("data.y changed".into()));
        assert_eq!(first_difference(&a, &a, ""), None);
    }

    #[test]
    fn ownership_needs_both_marks_and_this_install_id() {
        let id = "0123456789abcdef0123456789abcdef";
        let ours = json!({"metadata": {"labels": {MANAGED_BY.0: "telltale", INSTALL_ID: id}}});
        assert_eq!(owned(&ours, id), Ok(()));
        let other = json!({"metadata": {"labels": {MANAGED_BY.0: "telltale", INSTALL_ID: "x"}}});
        assert!(owned(&other, id).unwrap_err().contains("another install"));
        let unmarked = json!({"metadata": {"labels": {INSTALL_ID: id}}});
        assert!(owned(&unmarked, id).unwrap_err().contains("managed-by"));
        let no_id = json!({"metadata": {"labels": {MANAGED_BY.0: "telltale"}}});
        assert!(owned(&no_id, id).is_err());
        // A journal without an install id owns nothing.
        assert!(owned(&ours, "").is_err());
        // Adopted by a controller: its object now, marks or not.
        let mut adopted = ours.clone();
        adopted["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "name": "s", "uid": "u", "controller": true}
        ]);
        assert_eq!(
            owned(&adopted, id),
            Err("it is controlled by SealedSecret/s".into())
        );
        adopted["metadata"]["ownerReferences"][0]["controller"] = json!(false);
        assert_eq!(
            owned(&adopted, id),
            Ok(()),
            "a plain owner is not a controller"
        );
    }

    #[test]
    fn server_fields_are_not_drift() {
        let a = json!({"metadata": {"name": "n", "resourceVersion": "1", "managedFields": []}, "status": {}});
        let b = json!({"metadata": {"name": "n", "resourceVersion": "9"}});
        assert_eq!(normalized(&a), normalized(&b));
    }
}
