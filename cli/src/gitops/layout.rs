//! What every layout shares: the target (where in the repository, for which
//! cluster), the bundle's manifests with their Secrets replaced according
//! to the secrets mode, and the Secrets the cluster must hold.
//!
//! Pure: the bundle in, repository-relative files out. Secret *values*
//! never pass through here; Secrets that must be encrypted are returned as
//! [`Pending`] and filled in by `seal` once the repository is checked out.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Layout, SecretsMode, yaml};
use crate::model::Phase;
use crate::model::config::{ExternalSecrets, SealedSecrets, Sops};
use crate::render::Bundle;
use crate::render::plan::{SecretKey, Step};
use crate::secrets::KeySource;

/// Where and how the rendered state goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub cluster: String,
    /// Repository-relative directory, no leading or trailing slash.
    pub path: String,
    pub layout: Layout,
    pub secrets: SecretsMode,
    pub external_secrets: Option<ExternalSecrets>,
    pub sops: Option<Sops>,
    pub sealed_secrets: Option<SealedSecrets>,
    /// The repository as the in-cluster controller fetches it (Argo CD's repoURL).
    pub repo_url: String,
    /// The branch the controller follows once the pull request is merged
    /// (the pull request's base).
    pub revision: String,
    /// The branch telltale commits on.
    pub branch: String,
    /// `helm show crds` of every release whose CRDs telltale manages
    /// (release name → multi-document YAML): the branch commits them in its
    /// crds layer, because the charts run with their CRDs disabled.
    pub chart_crds: BTreeMap<String, String>,
}

impl Target {
    /// `path/rel`, repository-relative.
    pub fn join(&self, rel: &str) -> String {
        if self.path.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.path)
        }
    }
}

/// One value of a Secret the cluster needs.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// Where `up` reads it.
    Source(KeySource),
    /// Content rendered into the bundle that is not secret but lives in a
    /// Secret (alertmanager.yaml, whose credentials are `*_file` paths).
    Known(String),
}

/// A Secret the stack reads, named exactly as `up` creates it.
#[derive(Debug, Clone, PartialEq)]
pub struct NeededSecret {
    pub name: String,
    pub namespace: String,
    pub keys: Vec<(String, KeyValue)>,
}

/// A Secret to encrypt (sops) or seal (kubeseal) into `path` (repository-relative).
#[derive(Debug, Clone)]
pub struct Pending {
    pub path: String,
    pub secret: NeededSecret,
}

/// A layout's output: repository-relative path → content.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub files: BTreeMap<String, String>,
    pub pending: Vec<Pending>,
    /// Every Secret the stack reads, for the pull request and the summary.
    pub secrets: Vec<NeededSecret>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path} in the bundle is not valid YAML: {message}")]
    Manifest { path: String, message: String },
    #[error("secrets mode {mode} needs `spec.gitops.{key}` in the config")]
    MissingSettings {
        mode: SecretsMode,
        key: &'static str,
    },
    #[error("{path}: {message}")]
    Values { path: String, message: String },
    #[error(
        "the CRDs of release {release} ({chart}@{version}) are needed for the crds layer: {message}"
    )]
    Crds {
        release: String,
        chart: String,
        version: String,
        message: String,
    },
}

/// The layers every layout commits, in the order they reach a cluster:
/// `crds/` (the Namespace and the CRDs), `secrets/` (the Secrets, in the
/// form the secrets mode commits), then the releases (each layout's own),
/// then `manifests/` (the objects that need the CRDs and the releases).
pub const CRDS: &str = "crds";
pub const SECRETS: &str = "secrets";
pub const MANIFESTS: &str = "manifests";

pub fn render(bundle: &Bundle, target: &Target) -> Result<Rendered, LayoutError> {
    let mut rendered = match target.layout {
        Layout::Flux => super::flux::render(bundle, target)?,
        Layout::Argocd => super::argocd::render(bundle, target)?,
        Layout::Plain => super::plain::render(bundle, target)?,
    };
    if target.secrets == SecretsMode::Sops
        && let Some(sops) = &target.sops
    {
        rendered
            .files
            .insert(target.join(".sops.yaml"), sops_config(sops));
    }
    Ok(rendered)
}

/// `.sops.yaml` beside the layout: one creation rule for the Secret files
/// telltale encrypts, with the same recipients and encrypted fields as the
/// encryption itself, so `sops updatekeys` and `sops edit` work on them.
/// The regex matches the path whether sops sees it relative or absolute.
pub fn sops_config(sops: &Sops) -> String {
    yaml(&json!({
        "creation_rules": [{
            "path_regex": "(^|/)secrets/Secret_[^/]+\\.yaml$",
            "encrypted_regex": "^(data|stringData)$",
            "age": sops.age.join(","),
        }],
    }))
}

/// The bundle's manifests split into the layers, target-relative path
/// (`crds/…`, `secrets/…`, `manifests/NN-phase/…`) → content, with Secret
/// objects replaced per the secrets mode; plus the Secrets needed.
pub struct Manifests {
    pub files: BTreeMap<String, String>,
    pub pending: Vec<Pending>,
    pub secrets: Vec<NeededSecret>,
}

pub fn manifests(bundle: &Bundle, target: &Target) -> Result<Manifests, LayoutError> {
    let mut files = BTreeMap::new();
    let mut pending = Vec::new();
    let mut secrets = Vec::new();
    let namespace_dir = format!("manifests/{}/", Phase::Namespace.dir_name());
    for (path, content) in bundle.files.range("manifests/".to_string()..) {
        if !path.starts_with("manifests/") {
            break;
        }
        let object: Value = serde_saphyr::from_str(content).map_err(|e| LayoutError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let file = path.rsplit('/').next().unwrap_or(path);
        if let Some(rest) = path.strip_prefix(&namespace_dir) {
            // The Namespace comes first, with the CRDs: everything else lives in it.
            files.insert(format!("{CRDS}/{rest}"), content.clone());
            continue;
        }
        if object["kind"] != "Secret" {
            files.insert(path.clone(), content.clone());
            continue;
        }
        let secret = NeededSecret {
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            namespace: object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(&bundle.plan.namespace)
                .to_string(),
            keys: object["stringData"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                KeyValue::Known(v.as_str().unwrap_or_default().to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        secrets.push(secret.clone());
        if let Some(file) = sealed_path(target.secrets, file) {
            pending.push(Pending {
                path: target.join(&format!("{SECRETS}/{file}")),
                secret,
            });
        }
    }
    for release in bundle.plan.releases.iter().filter(|r| r.crds) {
        for (name, crd) in chart_crds(target, release)? {
            files.insert(
                format!(
                    "{CRDS}/{}/CustomResourceDefinition_{name}.yaml",
                    release.name
                ),
                yaml(&crd),
            );
        }
    }
    for step in bundle.plan.phases.iter().flat_map(|p| &p.steps) {
        let Step::Secret {
            name,
            namespace,
            keys,
            ..
        } = step
        else {
            continue;
        };
        let secret = NeededSecret {
            name: name.clone(),
            namespace: namespace.clone(),
            keys: keys
                .iter()
                .map(|SecretKey { key, source }| (key.clone(), KeyValue::Source(source.clone())))
                .collect(),
        };
        match target.secrets {
            SecretsMode::Reference => {}
            SecretsMode::ExternalSecrets => {
                let settings =
                    target
                        .external_secrets
                        .as_ref()
                        .ok_or(LayoutError::MissingSettings {
                            mode: target.secrets,
                            key: "externalSecrets",
                        })?;
                files.insert(
                    format!("{SECRETS}/ExternalSecret_{namespace}_{name}.yaml"),
                    yaml(&external_secret(&secret, settings, &target.cluster)),
                );
            }
            SecretsMode::Sops | SecretsMode::SealedSecrets => {
                let own = format!("Secret_{namespace}_{name}.yaml");
                if let Some(file) = sealed_path(target.secrets, &own) {
                    pending.push(Pending {
                        path: target.join(&format!("{SECRETS}/{file}")),
                        secret: secret.clone(),
                    });
                }
            }
        }
        secrets.push(secret);
    }
    match target.secrets {
        SecretsMode::Sops if target.sops.is_none() => {
            return Err(LayoutError::MissingSettings {
                mode: target.secrets,
                key: "sops.age",
            });
        }
        SecretsMode::SealedSecrets if target.sealed_secrets.is_none() => {
            return Err(LayoutError::MissingSettings {
                mode: target.secrets,
                key: "sealedSecrets.cert",
            });
        }
        _ => {}
    }
    Ok(Manifests {
        files,
        pending,
        secrets,
    })
}

/// The CRDs of a release's pinned chart (`helm show crds`, as `up` applies
/// them), by name. Anything that is not a CRD is refused: the crds layer
/// holds nothing else.
fn chart_crds(
    target: &Target,
    release: &crate::render::plan::Release,
) -> Result<BTreeMap<String, Value>, LayoutError> {
    let failed = |message: String| LayoutError::Crds {
        release: release.name.clone(),
        chart: release.chart.clone(),
        version: release.version.clone(),
        message,
    };
    let text = target
        .chart_crds
        .get(&release.name)
        .ok_or_else(|| failed("they were not fetched".into()))?;
    let mut out = BTreeMap::new();
    for doc in split_documents(text) {
        let crd: Value =
            serde_saphyr::from_str(doc).map_err(|e| failed(format!("not valid YAML: {e}")))?;
        if crd.is_null() {
            continue;
        }
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        if crd["kind"] != "CustomResourceDefinition" || name.is_empty() {
            return Err(failed(format!(
                "a document of kind {} (name `{name}`) is not a named CustomResourceDefinition",
                crd["kind"]
            )));
        }
        out.insert(name.to_string(), crd);
    }
    if out.is_empty() {
        return Err(failed("the chart shows no CRDs".into()));
    }
    Ok(out)
}

/// The documents of a multi-document YAML stream (`---` lines).
pub fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    // A document of comments only (helm's `# Source:` lines) holds nothing.
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// Where an encrypted Secret goes, in the modes that commit one.
fn sealed_path(mode: SecretsMode, file: &str) -> Option<String> {
    match mode {
        SecretsMode::Sops => Some(file.to_string()),
        SecretsMode::SealedSecrets => Some(format!("Sealed{file}")),
        SecretsMode::Reference | SecretsMode::ExternalSecrets => None,
    }
}

/// An ExternalSecret that produces the Secret `up` would create: same name,
/// same keys. Each key is a property of one remote key per Secret; fixed
/// non-secret values are templated in.
pub fn external_secret(secret: &NeededSecret, settings: &ExternalSecrets, cluster: &str) -> Value {
    let prefix = settings
        .key_prefix
        .clone()
        .unwrap_or_else(|| format!("telltale/{cluster}/"));
    let mut data = Vec::new();
    let mut fixed = serde_json::Map::new();
    for (key, value) in &secret.keys {
        match value {
            KeyValue::Source(KeySource::Fixed(value)) => {
                fixed.insert(key.clone(), json!(value));
            }
            _ => data.push(json!({
                "secretKey": key,
                "remoteRef": {"key": format!("{prefix}{}", secret.name), "property": key},
            })),
        }
    }
    let mut target = json!({"name": secret.name, "creationPolicy": "Owner"});
    if !fixed.is_empty() {
        target["template"] = json!({"engineVersion": "v2", "mergePolicy": "Merge", "data": fixed});
    }
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": secret.name, "namespace": secret.namespace,
                     "labels": {"app.kubernetes.io/managed-by": "telltale"}},
        "spec": {
            "refreshInterval": settings.refresh_interval,
            "secretStoreRef": {"name": settings.store, "kind": settings.store_kind.as_str()},
            "target": target,
            "data": data,
        },
    })
}

/// A kustomize `kustomization.yaml` listing `resources` in order.
pub fn kustomization(resources: &[String]) -> String {
    yaml(&json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }))
}

/// The layer directories (`crds/`, `secrets/`, `manifests/`) under
/// `target.path`, each with a kustomization.yaml listing its files (the
/// encrypted ones included) in order. Returns the layers that hold
/// something: `secrets/` is absent in reference mode.
pub fn layer_dirs(
    m: &Manifests,
    target: &Target,
    out: &mut BTreeMap<String, String>,
) -> Vec<&'static str> {
    let mut present = Vec::new();
    for layer in [CRDS, SECRETS, MANIFESTS] {
        let prefix = format!("{layer}/");
        let pending_prefix = target.join(&prefix);
        let mut resources: Vec<String> = m
            .files
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix).map(str::to_string))
            .chain(
                m.pending
                    .iter()
                    .filter_map(|p| p.path.strip_prefix(&pending_prefix).map(str::to_string)),
            )
            .collect();
        if resources.is_empty() {
            continue;
        }
        resources.sort();
        resources.dedup();
        out.insert(
            target.join(&format!("{layer}/kustomization.yaml")),
            kustomization(&resources),
        );
        present.push(layer);
    }
    for (path, content) in &m.files {
        out.insert(target.join(path), content.clone());
    }
    present
}

/// A release's values from the bundle, as an object.
pub fn values(bundle: &Bundle, path: &str) -> Result<Value, LayoutError> {
    let text = bundle.files.get(path).ok_or_else(|| LayoutError::Values {
        path: path.to_string(),
        message: "missing from the bundle".into(),
    })?;
    let value: Value = serde_saphyr::from_str(text).map_err(|e| LayoutError::Values {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    Ok(if value.is_null() { json!({}) } else { value })
}
