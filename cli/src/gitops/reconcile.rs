//! A reconciliation of the committed branch on an empty cluster, simulated
//! the way the controllers run it: Flux Kustomizations in `dependsOn`
//! order (each waits for its objects), HelmReleases after their
//! `dependsOn`, Argo CD Applications wave by wave, the plain layout's layers
//! in the order of its kustomization.yaml. What exists grows step by step
//! (namespaces, CRDs, Secrets, releases), and a step may only use what
//! exists: its namespace, its kind's CRD, the Secrets it names, the
//! sources and releases it depends on. A missing one, or steps that can
//! never start (a cycle, a dependency on something absent), is an error.
//!
//! Pure: the branch's files in, the steps (or the first failure) out.
//! `telltale gitops` runs it on what it is about to commit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::layout::{self, NeededSecret, Pending, Target};
use super::{Layout, SecretsMode};
use crate::render::plan::Plan;

/// API groups the API server serves without a CRD.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "apiextensions.k8s.io",
    "admissionregistration.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "certificates.k8s.io",
    "node.k8s.io",
];

/// Kinds that are not namespaced.
const CLUSTER_KINDS: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterSecretStore",
    "PriorityClass",
    "StorageClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// What exists in the cluster.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub namespaces: BTreeSet<String>,
    /// `group/Kind`.
    pub kinds: BTreeSet<String>,
    /// `namespace/name`.
    pub secrets: BTreeSet<String>,
    /// HelmReleases installed, `namespace/name`.
    pub releases: BTreeSet<String>,
    /// Flux sources, `Kind/namespace/name`.
    pub sources: BTreeSet<String>,
    /// API groups whose CRDs a release installed from its templates.
    pub groups: BTreeSet<String>,
}

/// Charts that install CRDs from their templates (not from `crds/`, so
/// telltale does not commit them; see their plugin.yaml): once the release
/// is installed, the groups are served.
const CHART_GROUPS: &[(&str, &[&str])] = &[
    ("keda", &["keda.sh", "eventing.keda.sh"]),
    ("cert-manager", &["cert-manager.io", "acme.cert-manager.io"]),
];

/// One step that completed, and what it added.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub step: String,
    pub added: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// A step used something that did not exist when it ran.
    Missing {
        step: String,
        object: String,
        needs: String,
    },
    /// Steps that can never start.
    Deadlock { waiting: Vec<String> },
    /// The branch does not describe a reconciliation (a file is missing).
    Malformed { message: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Missing {
                step,
                object,
                needs,
            } => write!(
                f,
                "on an empty cluster, step {step} fails: {object} needs {needs}, which does not exist yet"
            ),
            Failure::Deadlock { waiting } => write!(
                f,
                "on an empty cluster, these steps never start (a dependency cycle or a dependency on nothing): {}",
                waiting.join(", ")
            ),
            Failure::Malformed { message } => {
                write!(f, "the branch cannot be reconciled: {message}")
            }
        }
    }
}

/// The simulation's result: the steps in the order they completed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub steps: Vec<Done>,
    pub state: State,
}

/// What the cluster holds before the branch is applied: the controller of
/// the layout, the controllers the secrets mode relies on, and the Secrets
/// the pull request lists as out of band.
pub fn initial_state(target: &Target, out_of_band: &[super::pr::OutOfBand]) -> State {
    let mut s = State::default();
    match target.layout {
        Layout::Flux => {
            s.namespaces.insert("flux-system".into());
            for kind in [
                "kustomize.toolkit.fluxcd.io/Kustomization",
                "helm.toolkit.fluxcd.io/HelmRelease",
                "source.toolkit.fluxcd.io/GitRepository",
                "source.toolkit.fluxcd.io/HelmRepository",
                "source.toolkit.fluxcd.io/OCIRepository",
                "source.toolkit.fluxcd.io/HelmChart",
            ] {
                s.kinds.insert(kind.into());
            }
            s.sources.insert(format!(
                "GitRepository/flux-system/{}",
                super::flux::FLUX_SOURCE
            ));
        }
        Layout::Argocd => {
            s.namespaces.insert(super::argocd::ARGOCD_NAMESPACE.into());
            s.kinds.insert("argoproj.io/Application".into());
            s.kinds.insert("argoproj.io/AppProject".into());
        }
        Layout::Plain => {}
    }
    match target.secrets {
        SecretsMode::SealedSecrets => {
            s.kinds.insert("bitnami.com/SealedSecret".into());
        }
        SecretsMode::ExternalSecrets => {
            s.kinds.insert("external-secrets.io/ExternalSecret".into());
            s.kinds.insert("external-secrets.io/SecretStore".into());
            s.kinds
                .insert("external-secrets.io/ClusterSecretStore".into());
        }
        SecretsMode::Sops => {
            if let Some(sops) = &target.sops {
                s.secrets
                    .insert(format!("flux-system/{}", sops.decryption_secret));
            }
        }
        SecretsMode::Reference => {}
    }
    for secret in out_of_band {
        // Out-of-band Secrets are created by hand in their namespace
        // (`kubectl create namespace` first, which the branch then adopts).
        s.secrets
            .insert(format!("{}/{}", secret.namespace, secret.name));
    }
    s
}

/// A unit the controllers reconcile as one: a Flux Kustomization, an Argo
/// CD Application, a plain layer.
#[derive(Debug, Clone)]
struct Unit {
    name: String,
    /// Units that must be ready first.
    after: Vec<String>,
    objects: Vec<(String, Value)>,
    /// Flux: the Kustomization decrypts sops files.
    decrypts: bool,
    /// Argo CD: CreateNamespace=true.
    creates_namespace: Option<String>,
}

/// Simulates the branch: `files` are the repository-relative files to be
/// committed; `pending` Secrets not yet in `files` (not encrypted yet)
/// count as the object their mode commits. `managed` names the Secrets
/// telltale manages (a value or a reference naming one of them is a need).
pub fn simulate(
    files: &BTreeMap<String, String>,
    pending: &[Pending],
    target: &Target,
    managed: &[NeededSecret],
    initial: State,
) -> Result<Outcome, Failure> {
    let mut files = files.clone();
    for p in pending {
        files
            .entry(p.path.clone())
            .or_insert_with(|| super::yaml(&placeholder(p, target.secrets)));
    }
    let managed: BTreeSet<String> = managed
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    let units = match target.layout {
        Layout::Flux => flux_units(&files, target)?,
        Layout::Argocd => argocd_units(&files, target)?,
        Layout::Plain => plain_units(&files, target)?,
    };
    run(units, initial, &managed)
}

/// The object a pending Secret becomes once encrypted, for the simulation.
fn placeholder(p: &Pending, mode: SecretsMode) -> Value {
    let (name, ns) = (&p.secret.name, &p.secret.namespace);
    match mode {
        SecretsMode::SealedSecrets => serde_json::json!({
            "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"metadata": {"name": name, "namespace": ns}}},
        }),
        _ => serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "sops": {"age": []},
        }),
    }
}

fn parse(path: &str, text: &str) -> Result<Value, Failure> {
    serde_saphyr::from_str(text).map_err(|e| Failure::Malformed {
        message: format!("{path}: {e}"),
    })
}

/// The objects `kustomize build DIR` yields, in the kustomization's order
/// (resources that are files or directories with their own kustomization).
fn kustomize(files: &BTreeMap<String, String>, dir: &str) -> Result<Vec<(String, Value)>, Failure> {
    let key = format!("{dir}/kustomization.yaml");
    let text = files.get(&key).ok_or_else(|| Failure::Malformed {
        message: format!("{key} is missing"),
    })?;
    let k = parse(&key, text)?;
    let mut out = Vec::new();
    for r in k["resources"].as_array().into_iter().flatten() {
        let rel = r.as_str().unwrap_or_default();
        let path = format!("{dir}/{rel}");
        match files.get(&path) {
            Some(text) => out.push((path.clone(), parse(&path, text)?)),
            None if files.contains_key(&format!("{path}/kustomization.yaml")) => {
                out.extend(kustomize(files, &path)?)
            }
            None => {
                return Err(Failure::Malformed {
                    message: format!("{key} lists {rel}, which is not in the branch"),
                });
            }
        }
    }
    Ok(out)
}

fn flux_units(files: &BTreeMap<String, String>, target: &Target) -> Result<Vec<Unit>, Failure> {
    let mut units = Vec::new();
    for (path, k) in kustomize(files, &target.path_or_root())? {
        if k["kind"] != "Kustomization" || k["apiVersion"] != "kustomize.toolkit.fluxcd.io/v1" {
            continue;
        }
        let dir = k["spec"]["path"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("./")
            .to_string();
        units.push(Unit {
            name: format!(
                "Kustomization/{}",
                k["metadata"]["name"].as_str().unwrap_or(&path)
            ),
            after: k["spec"]["dependsOn"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| format!("Kustomization/{}", d["name"].as_str().unwrap_or_default()))
                .collect(),
            objects: kustomize(files, &dir)?,
            decrypts: k["spec"]["decryption"]["provider"] == "sops",
            creates_namespace: None,
        });
    }
    Ok(units)
}

fn argocd_units(files: &BTreeMap<String, String>, target: &Target) -> Result<Vec<Unit>, Failure> {
    let root_key = target.join("root.yaml");
    let root = parse(
        &root_key,
        files.get(&root_key).ok_or_else(|| Failure::Malformed {
            message: format!("{root_key} is missing"),
        })?,
    )?;
    let apps_dir = root["spec"]["source"]["path"].as_str().unwrap_or_default();
    let mut apps: Vec<(i64, String, Value)> = Vec::new();
    for (path, text) in files.range(format!("{apps_dir}/")..) {
        if !path.starts_with(&format!("{apps_dir}/")) {
            break;
        }
        let app = parse(path, text)?;
        let wave = app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        apps.push((wave, path.clone(), app));
    }
    let mut units = Vec::new();
    for (wave, path, app) in &apps {
        let name = format!(
            "Application/{}",
            app["metadata"]["name"].as_str().unwrap_or(path)
        );
        // The app of apps syncs wave by wave, each wave once the previous
        // one is healthy (with Argo CD's Application health check enabled).
        let after = apps
            .iter()
            .filter(|(w, _, _)| w < wave)
            .map(|(_, p, a)| {
                format!(
                    "Application/{}",
                    a["metadata"]["name"].as_str().unwrap_or(p)
                )
            })
            .collect();
        let source = &app["spec"]["source"];
        let destination = app["spec"]["destination"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let objects = if let Some(dir) = source["path"].as_str() {
            kustomize(files, dir)?
        } else {
            // A Helm source: the release it installs, as a HelmRelease would.
            let helm = &source["helm"];
            vec![(
                path.clone(),
                serde_json::json!({
                    "apiVersion": "telltale.dev/simulated", "kind": "Release",
                    "metadata": {"name": helm["releaseName"], "namespace": destination},
                    "spec": {"values": helm["valuesObject"], "chartName": source["chart"]},
                }),
            )]
        };
        let creates = app["spec"]["syncPolicy"]["syncOptions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o == "CreateNamespace=true");
        units.push(Unit {
            name,
            after,
            objects,
            decrypts: false,
            creates_namespace: creates.then_some(destination),
        });
    }
    Ok(units)
}

fn plain_units(files: &BTreeMap<String, String>, target: &Target) -> Result<Vec<Unit>, Failure> {
    let key = target.join("kustomization.yaml");
    let k = parse(
        &key,
        files.get(&key).ok_or_else(|| Failure::Malformed {
            message: format!("{key} is missing"),
        })?,
    )?;
    let plan_key = target.join("plan.json");
    let plan: Plan = files
        .get(&plan_key)
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| Failure::Malformed {
            message: format!("{plan_key} is missing or not a plan"),
        })?;
    let mut units: Vec<Unit> = Vec::new();
    let mut previous: Option<String> = None;
    for layer in k["resources"].as_array().into_iter().flatten() {
        let layer = layer.as_str().unwrap_or_default();
        if layer == layout::MANIFESTS {
            // The releases are installed (helm, from plan.json and values/)
            // after the Secrets and before the objects, as README says.
            for r in &plan.releases {
                let values = files
                    .get(&target.join(&r.values))
                    .map(|t| parse(&r.values, t))
                    .transpose()?
                    .unwrap_or(Value::Null);
                let name = format!("helm/{}", r.name);
                units.push(Unit {
                    name: name.clone(),
                    after: previous.iter().cloned().collect(),
                    objects: vec![(
                        r.values.clone(),
                        serde_json::json!({
                            "apiVersion": "telltale.dev/simulated", "kind": "Release",
                            "metadata": {"name": r.name, "namespace": r.namespace},
                            "spec": {"values": values, "chartName": r.chart},
                        }),
                    )],
                    decrypts: false,
                    creates_namespace: None,
                });
                previous = Some(name);
            }
        }
        let name = format!("layer/{layer}");
        units.push(Unit {
            name: name.clone(),
            after: previous.iter().cloned().collect(),
            objects: kustomize(files, &target.join(layer))?,
            decrypts: false,
            creates_namespace: None,
        });
        previous = Some(name);
    }
    Ok(units)
}

impl Target {
    fn path_or_root(&self) -> String {
        if self.path.is_empty() {
            ".".into()
        } else {
            self.path.clone()
        }
    }
}

fn group_kind(object: &Value) -> (String, String) {
    let api = object["apiVersion"].as_str().unwrap_or_default();
    let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    (
        group.to_string(),
        object["kind"].as_str().unwrap_or_default().to_string(),
    )
}

fn id(object: &Value) -> String {
    let (_, kind) = group_kind(object);
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!(
            "{kind}/{ns}/{}",
            object["metadata"]["name"].as_str().unwrap_or("?")
        ),
        None => format!(
            "{kind}/{}",
            object["metadata"]["name"].as_str().unwrap_or("?")
        ),
    }
}

/// The managed Secrets an object names: references in pod specs
/// (`secretKeyRef`, `secretRef`, `secretName`), Flux `valuesFrom`, and
/// any value of a release that is exactly a managed Secret's name.
fn named_secrets(
    value: &Value,
    namespace: &str,
    managed: &BTreeSet<String>,
    out: &mut BTreeSet<String>,
) {
    match value {
        Value::String(s) => {
            let key = format!("{namespace}/{s}");
            if managed.contains(&key) {
                out.insert(key);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| named_secrets(v, namespace, managed, out)),
        Value::Object(map) => map
            .values()
            .for_each(|v| named_secrets(v, namespace, managed, out)),
        _ => {}
    }
}

/// The custom kinds a release's values ask the chart to create (its
/// ServiceMonitor, PodMonitor, PrometheusRule switches).
fn values_kinds(value: &Value, out: &mut BTreeSet<String>) {
    if let Value::Object(map) = value {
        for (key, v) in map {
            let kind = match key.as_str() {
                "serviceMonitor" => Some("ServiceMonitor"),
                "podMonitor" => Some("PodMonitor"),
                "prometheusRule" => Some("PrometheusRule"),
                _ => None,
            };
            if let Some(kind) = kind
                && (v["enabled"] == true || v["create"] == true)
            {
                out.insert(format!("monitoring.coreos.com/{kind}"));
            }
            values_kinds(v, out);
        }
    } else if let Value::Array(items) = value {
        items.iter().for_each(|v| values_kinds(v, out));
    }
}

/// What an object provides once applied and healthy.
fn provides(object: &Value, ns: &str, state: &mut State, added: &mut Vec<String>) {
    let (group, kind) = group_kind(object);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut add = |set: &mut BTreeSet<String>, item: String, what: &str| {
        if set.insert(item.clone()) {
            added.push(format!("{what} {item}"));
        }
    };
    match (group.as_str(), kind.as_str()) {
        ("", "Namespace") => add(&mut state.namespaces, name.into(), "namespace"),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let g = object["spec"]["group"].as_str().unwrap_or_default();
            let k = object["spec"]["names"]["kind"].as_str().unwrap_or_default();
            add(&mut state.kinds, format!("{g}/{k}"), "kind");
        }
        ("", "Secret") => add(&mut state.secrets, format!("{ns}/{name}"), "secret"),
        ("bitnami.com", "SealedSecret") => {
            let t = object["spec"]["template"]["metadata"]["name"]
                .as_str()
                .unwrap_or(name);
            add(&mut state.secrets, format!("{ns}/{t}"), "secret");
        }
        ("external-secrets.io", "ExternalSecret") => {
            let t = object["spec"]["target"]["name"].as_str().unwrap_or(name);
            add(&mut state.secrets, format!("{ns}/{t}"), "secret");
        }
        ("helm.toolkit.fluxcd.io", "HelmRelease") | ("telltale.dev", "Release") => {
            add(&mut state.releases, format!("{ns}/{name}"), "release");
            let chart = object["spec"]["chart"]["spec"]["chart"]
                .as_str()
                .or(object["spec"]["chartName"].as_str())
                .or(object["spec"]["chartRef"]["name"].as_str())
                .unwrap_or(name);
            for (c, groups) in CHART_GROUPS {
                if *c == chart {
                    for g in *groups {
                        add(&mut state.groups, g.to_string(), "group");
                    }
                }
            }
        }
        ("source.toolkit.fluxcd.io", k) => {
            add(&mut state.sources, format!("{k}/{ns}/{name}"), "source");
        }
        _ => {}
    }
}

/// What an object needs before it can be applied and become healthy.
fn needs(object: &Value, ns: &str, unit: &Unit, managed: &BTreeSet<String>) -> Vec<(String, Need)> {
    let (group, kind) = group_kind(object);
    let mut out = Vec::new();
    let simulated = group == "telltale.dev";
    if !simulated && !BUILTIN_GROUPS.contains(&group.as_str()) {
        out.push((
            format!("the CRD of {group}/{kind}"),
            Need::Kind(format!("{group}/{kind}")),
        ));
    }
    if !CLUSTER_KINDS.contains(&kind.as_str()) && !ns.is_empty() {
        out.push((format!("namespace {ns}"), Need::Namespace(ns.to_string())));
    }
    let mut secrets = BTreeSet::new();
    // A Secret, or an object that makes one, names itself.
    if !["Secret", "SealedSecret", "ExternalSecret"].contains(&kind.as_str()) {
        named_secrets(&object["spec"], ns, managed, &mut secrets);
    }
    for s in secrets {
        out.push((format!("Secret {s}"), Need::Secret(s)));
    }
    if kind == "Secret" && object.get("sops").is_some() && !unit.decrypts {
        out.push(("sops decryption".into(), Need::Decryption));
    }
    if kind == "HelmRelease" || (simulated && kind == "Release") {
        let spec = &object["spec"];
        for d in spec["dependsOn"].as_array().into_iter().flatten() {
            let dns = d["namespace"].as_str().unwrap_or(ns);
            let r = format!("{dns}/{}", d["name"].as_str().unwrap_or_default());
            out.push((format!("release {r}"), Need::Release(r)));
        }
        let source = if spec["chartRef"].is_object() {
            Some(&spec["chartRef"])
        } else if spec["chart"]["spec"]["sourceRef"].is_object() {
            Some(&spec["chart"]["spec"]["sourceRef"])
        } else {
            None
        };
        if let Some(s) = source {
            let key = format!(
                "{}/{}/{}",
                s["kind"].as_str().unwrap_or_default(),
                s["namespace"].as_str().unwrap_or(ns),
                s["name"].as_str().unwrap_or_default()
            );
            out.push((format!("source {key}"), Need::Source(key)));
        }
        let mut kinds = BTreeSet::new();
        values_kinds(&spec["values"], &mut kinds);
        for k in kinds {
            out.push((
                format!("the CRD of {k} (its values create one)"),
                Need::Kind(k),
            ));
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Need {
    Kind(String),
    Namespace(String),
    Secret(String),
    Release(String),
    Source(String),
    Decryption,
}

impl Need {
    fn met(&self, s: &State) -> bool {
        match self {
            Need::Kind(k) => {
                s.kinds.contains(k)
                    || k.rsplit_once('/')
                        .is_some_and(|(g, _)| s.groups.contains(g))
            }
            Need::Namespace(n) => s.namespaces.contains(n),
            Need::Secret(x) => s.secrets.contains(x),
            Need::Release(r) => s.releases.contains(r),
            Need::Source(x) => s.sources.contains(x),
            Need::Decryption => false,
        }
    }
}

/// A release's chart creates custom resources of its own CRDs (Prometheus,
/// Alertmanager for kube-prometheus-stack): such a release needs the CRDs
/// the branch commits for it under `crds/<release>/`.
fn chart_kinds(units: &[Unit]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, object) in units.iter().flat_map(|u| &u.objects) {
        if object["kind"] != "CustomResourceDefinition" {
            continue;
        }
        let mut parts = path.rsplit('/');
        let (_, release) = (parts.next(), parts.next());
        let g = object["spec"]["group"].as_str().unwrap_or_default();
        let k = object["spec"]["names"]["kind"].as_str().unwrap_or_default();
        if let Some(r) = release {
            out.entry(r.to_string())
                .or_default()
                .insert(format!("{g}/{k}"));
        }
    }
    out
}

fn run(units: Vec<Unit>, mut state: State, managed: &BTreeSet<String>) -> Result<Outcome, Failure> {
    let chart_kinds = chart_kinds(&units);
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut steps = Vec::new();
    let mut waiting: Vec<Unit> = units;
    while !waiting.is_empty() {
        let Some(i) = waiting
            .iter()
            .position(|u| u.after.iter().all(|a| done.contains(a)))
        else {
            return Err(Failure::Deadlock {
                waiting: waiting.iter().map(|u| u.name.clone()).collect(),
            });
        };
        let unit = waiting.remove(i);
        let mut added = Vec::new();
        if let Some(ns) = &unit.creates_namespace {
            provides(
                &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                "",
                &mut state,
                &mut added,
            );
        }
        // Flux and Argo CD apply the Namespaces and CRDs of a unit first
        // and wait for the CRDs to be established.
        let (first, rest): (Vec<_>, Vec<_>) = unit.objects.iter().partition(|(_, o)| {
            o["kind"] == "Namespace" || o["kind"] == "CustomResourceDefinition"
        });
        for (_, object) in &first {
            provides(object, "", &mut state, &mut added);
        }
        // Everything else is applied at once; releases and generated
        // Secrets become ready as their needs are met (within the unit,
        // a HelmRelease waits for its dependsOn).
        let mut pending: Vec<&(String, Value)> = rest;
        loop {
            let before = pending.len();
            let mut still = Vec::new();
            for item in pending {
                let (_, object) = item;
                let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
                let mut n = needs(object, ns, &unit, managed);
                let (_, kind) = group_kind(object);
                if kind == "HelmRelease" || kind == "Release" {
                    let name = object["metadata"]["name"].as_str().unwrap_or_default();
                    for k in chart_kinds.get(name).into_iter().flatten() {
                        n.push((
                            format!("the CRD of {k} (its chart's)"),
                            Need::Kind(k.clone()),
                        ));
                    }
                }
                if n.iter().all(|(_, need)| need.met(&state)) {
                    provides(object, ns, &mut state, &mut added);
                } else {
                    still.push(item);
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if pending.len() == before {
                // Nothing more becomes ready: name the first unmet need.
                let (path, object) = pending[0];
                let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
                let mut n = needs(object, ns, &unit, managed);
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                for k in chart_kinds.get(name).into_iter().flatten() {
                    n.push((
                        format!("the CRD of {k} (its chart's)"),
                        Need::Kind(k.clone()),
                    ));
                }
                let (what, _) = n
                    .into_iter()
                    .find(|(_, need)| !need.met(&state))
                    .unwrap_or_else(|| ("?".into(), Need::Decryption));
                return Err(Failure::Missing {
                    step: unit.name.clone(),
                    object: format!("{} ({path})", id(object)),
                    needs: what,
                });
            }
        }
        done.insert(unit.name.clone());
        steps.push(Done {
            step: unit.name,
            added,
        });
    }
    Ok(Outcome { steps, state })
}
