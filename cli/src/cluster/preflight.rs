//! Preflight: read-only checks before the first write. Every check reports
//! pass, fail or skip with the evidence; `up` stops if any fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, PostParams};
use serde::Serialize;
use serde_json::Value;

use super::Kube;
use super::quantity::Resources;
use crate::render::Bundle;
use crate::render::objects::Object;
use crate::render::plan::{Plan, PreflightCheck, Step};

/// The oldest Kubernetes minor telltale installs on (the oldest the pinned
/// charts support and upstream still patches).
pub const MIN_MINOR: u64 = 28;
const API_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: PreflightCheck,
    pub status: Status,
    pub detail: String,
}

impl Check {
    fn new(id: PreflightCheck, status: Status, detail: impl Into<String>) -> Check {
        Check {
            id,
            status,
            detail: detail.into(),
        }
    }
}

/// What preflight needs to know that it cannot ask the cluster.
pub struct Inputs<'a> {
    /// The bundle `up` installs: its plan, objects and release values.
    pub bundle: &'a Bundle,
    pub pinned_context: Option<&'a str>,
    /// The detected helm version, or why there is none.
    pub helm: Result<semver::Version, String>,
    /// Secret sources that cannot be resolved (names only, never values).
    pub secret_problems: Vec<String>,
}

pub async fn run(kube: &Kube, inputs: &Inputs<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match inputs.pinned_context {
        Some(pinned) if pinned != kube.target.context => Check::new(
            PreflightCheck::Context,
            Status::Fail,
            format!(
                "the config pins context `{pinned}`, but this run would act on `{}`",
                kube.target.context
            ),
        ),
        Some(pinned) => Check::new(
            PreflightCheck::Context,
            Status::Pass,
            format!("`{pinned}` (pinned)"),
        ),
        None => Check::new(
            PreflightCheck::Context,
            Status::Pass,
            format!("`{}` (not pinned in the config)", kube.target.context),
        ),
    });

    let version = tokio::time::timeout(API_TIMEOUT, kube.client.apiserver_version()).await;
    let server = &kube.target.server;
    let reachable = match version {
        Ok(Ok(info)) => {
            checks.push(Check::new(
                PreflightCheck::Api,
                Status::Pass,
                format!("{server} answers"),
            ));
            checks.push(server_version(&info.major, &info.minor, &info.git_version));
            true
        }
        Ok(Err(e)) => {
            checks.push(Check::new(
                PreflightCheck::Api,
                Status::Fail,
                format!("cannot reach the API server {server}: {}", root_cause(&e)),
            ));
            false
        }
        Err(_) => {
            checks.push(Check::new(
                PreflightCheck::Api,
                Status::Fail,
                format!(
                    "the API server {server} did not answer within {}s",
                    API_TIMEOUT.as_secs()
                ),
            ));
            false
        }
    };
    if !reachable {
        checks.push(Check::new(
            PreflightCheck::ServerVersion,
            Status::Skip,
            "API unreachable",
        ));
    }

    checks.push(match &inputs.helm {
        Ok(v) if *v < crate::helm::MIN_VERSION => Check::new(
            PreflightCheck::Helm,
            Status::Fail,
            format!("helm {v} is too old; telltale needs >= 3.14 (4.x preferred)"),
        ),
        Ok(v) if v.major >= 4 => {
            Check::new(PreflightCheck::Helm, Status::Pass, format!("helm {v}"))
        }
        Ok(v) => Check::new(
            PreflightCheck::Helm,
            Status::Pass,
            format!("helm {v} (4.x is preferred; 3.x flags are used)"),
        ),
        Err(e) => Check::new(PreflightCheck::Helm, Status::Fail, e.clone()),
    });

    checks.push(if inputs.secret_problems.is_empty() {
        Check::new(
            PreflightCheck::Secrets,
            Status::Pass,
            "every secret source resolves",
        )
    } else {
        Check::new(
            PreflightCheck::Secrets,
            Status::Fail,
            inputs.secret_problems.join("; "),
        )
    });

    if !reachable {
        for id in [
            PreflightCheck::Rbac,
            PreflightCheck::StorageClass,
            PreflightCheck::Capacity,
        ] {
            checks.push(Check::new(id, Status::Skip, "API unreachable"));
        }
        return checks;
    }
    checks.push(rbac(kube, inputs).await);
    checks.push(storage_class(kube, inputs).await);
    checks.push(capacity(kube, inputs).await);
    checks
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    if current.to_string() == error.to_string() {
        error.to_string()
    } else {
        format!("{error}: {current}")
    }
}

fn server_version(major: &str, minor: &str, git: &str) -> Check {
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .ok()
    };
    match (digits(major), digits(minor)) {
        (Some(1), Some(m)) if m >= MIN_MINOR => {
            Check::new(PreflightCheck::ServerVersion, Status::Pass, git)
        }
        _ => Check::new(
            PreflightCheck::ServerVersion,
            Status::Fail,
            format!("Kubernetes {git} is not supported; telltale needs 1.{MIN_MINOR} or newer"),
        ),
    }
}

/// A permission the plan needs: verb on group/resource in a namespace ("" =
/// cluster scope).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub verb: &'static str,
    pub group: String,
    pub resource: String,
    pub namespace: String,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resource = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        if self.namespace.is_empty() {
            write!(f, "{} {resource} (cluster-wide)", self.verb)
        } else {
            write!(f, "{} {resource} in {}", self.verb, self.namespace)
        }
    }
}

/// The plural resource name of a kind, as the API serves it.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s') || lower.ends_with("ch") {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// Every permission `up` needs for this plan; an object's API group is the
/// rendered object's (`objects`, by file).
pub fn permissions(plan: &Plan, objects: &BTreeMap<String, Object>) -> Vec<Permission> {
    let mut out = BTreeSet::new();
    let ns = plan.namespace.clone();
    let mut add = |verbs: &[&'static str], group: &str, resource: &str, namespace: &str| {
        for verb in verbs {
            out.insert(Permission {
                verb,
                group: group.into(),
                resource: resource.into(),
                namespace: namespace.into(),
            });
        }
    };
    const APPLY: [&str; 3] = ["get", "create", "patch"];
    // The journal and the lock.
    add(&APPLY, "", "configmaps", &ns);
    add(
        &["get", "create", "delete"],
        "coordination.k8s.io",
        "leases",
        &ns,
    );
    for phase in &plan.phases {
        for step in &phase.steps {
            match step {
                Step::Apply {
                    file,
                    kind,
                    namespace,
                    ..
                } => {
                    let group = objects.get(file).map(Object::group).unwrap_or("");
                    add(&APPLY, group, &plural(kind), namespace);
                }
                Step::Crds { .. } => {
                    add(
                        &APPLY,
                        "apiextensions.k8s.io",
                        "customresourcedefinitions",
                        "",
                    );
                }
                Step::Secret { namespace, .. } => add(&APPLY, "", "secrets", namespace),
                Step::Helm { namespace, .. } => {
                    // helm keeps releases in Secrets; the charts create
                    // workloads, services and cluster RBAC.
                    add(
                        &["list", "create", "update", "delete"],
                        "",
                        "secrets",
                        namespace,
                    );
                    for (group, resource) in [
                        ("apps", "deployments"),
                        ("apps", "statefulsets"),
                        ("apps", "daemonsets"),
                        ("", "services"),
                        ("", "serviceaccounts"),
                        ("", "configmaps"),
                    ] {
                        add(&["create", "list"], group, resource, namespace);
                    }
                    for resource in ["clusterroles", "clusterrolebindings"] {
                        add(&["create"], "rbac.authorization.k8s.io", resource, "");
                    }
                }
                _ => {}
            }
        }
    }
    out.into_iter().collect()
}

async fn rbac(kube: &Kube, inputs: &Inputs<'_>) -> Check {
    let needed = permissions(&inputs.bundle.plan, &inputs.bundle.objects);
    let mut tasks = tokio::task::JoinSet::new();
    for permission in needed.clone() {
        let api: Api<SelfSubjectAccessReview> = Api::all(kube.client.clone());
        tasks.spawn(async move {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(permission.verb.into()),
                        group: Some(permission.group.clone()),
                        resource: Some(permission.resource.clone()),
                        namespace: (!permission.namespace.is_empty())
                            .then(|| permission.namespace.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = api.create(&PostParams::default(), &review).await;
            (permission, answer)
        });
    }
    let mut missing = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((permission, answer)) = joined else {
            continue;
        };
        match answer {
            Ok(review) if review.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => missing.push(permission),
            Err(e) => errors.push(format!("{permission}: {}", crate::error::chain(&e))),
        }
    }
    missing.sort();
    if !errors.is_empty() {
        errors.sort();
        return Check::new(
            PreflightCheck::Rbac,
            Status::Fail,
            format!("cannot check permissions: {}", errors.join("; ")),
        );
    }
    if missing.is_empty() {
        Check::new(
            PreflightCheck::Rbac,
            Status::Pass,
            format!("{} permissions granted", needed.len()),
        )
    } else {
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        Check::new(
            PreflightCheck::Rbac,
            Status::Fail,
            format!("missing permission: {}", list.join(", ")),
        )
    }
}

/// The helm values of every release.
fn values<'a>(inputs: &Inputs<'a>) -> impl Iterator<Item = &'a Value> {
    inputs.bundle.values.values()
}

/// Whether values ask for persistent volumes (a PVC template, a
/// storageSpec, or persistence enabled).
pub fn requests_volumes(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, v)| {
            let asks = match key.as_str() {
                "volumeClaimTemplate" | "volumeClaimTemplates" | "storageSpec" => !v.is_null(),
                "persistence" => v["enabled"] == Value::Bool(true),
                _ => false,
            };
            asks || requests_volumes(v)
        }),
        Value::Array(items) => items.iter().any(requests_volumes),
        _ => false,
    }
}

/// CPU and memory requested anywhere in values (`resources.requests`).
pub fn requested(value: &Value, total: &mut Resources) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "resources" {
                    let r = &v["requests"];
                    total.add(
                        quantity_text(&r["cpu"]).as_deref(),
                        quantity_text(&r["memory"]).as_deref(),
                    );
                } else {
                    requested(v, total);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| requested(v, total)),
        _ => {}
    }
}

fn quantity_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn storage_class(kube: &Kube, inputs: &Inputs<'_>) -> Check {
    if !values(inputs).any(requests_volumes) {
        return Check::new(
            PreflightCheck::StorageClass,
            Status::Skip,
            "no persistent volumes requested",
        );
    }
    let api: Api<StorageClass> = Api::all(kube.client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            let default = list.items.iter().find(|sc| {
                sc.metadata.annotations.as_ref().is_some_and(|a| {
                    a.get("storageclass.kubernetes.io/is-default-class")
                        .is_some_and(|v| v == "true")
                })
            });
            match default {
                Some(sc) => Check::new(
                    PreflightCheck::StorageClass,
                    Status::Pass,
                    format!(
                        "default StorageClass {}",
                        sc.metadata.name.as_deref().unwrap_or("?")
                    ),
                ),
                None => Check::new(
                    PreflightCheck::StorageClass,
                    Status::Fail,
                    "persistent volumes are requested but the cluster has no default StorageClass \
                     (annotate one with storageclass.kubernetes.io/is-default-class=true)",
                ),
            }
        }
        Err(e) => Check::new(
            PreflightCheck::StorageClass,
            Status::Fail,
            format!("cannot list StorageClasses: {}", crate::error::chain(&e)),
        ),
    }
}

async fn capacity(kube: &Kube, inputs: &Inputs<'_>) -> Check {
    let mut planned = Resources::default();
    for v in values(inputs) {
        requested(v, &mut planned);
    }
    let nodes: Api<Node> = Api::all(kube.client.clone());
    let nodes = match nodes.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            return Check::new(
                PreflightCheck::Capacity,
                Status::Fail,
                format!("cannot list nodes: {}", crate::error::chain(&e)),
            );
        }
    };
    let mut allocatable = Resources::default();
    for node in &nodes {
        let a = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let get = |k: &str| a.and_then(|a| a.get(k)).map(|q| q.0.clone());
        allocatable.add(get("cpu").as_deref(), get("memory").as_deref());
    }
    // What already runs; without permission to list pods, only the plan counts.
    let mut used = Resources::default();
    let pods: Api<Pod> = Api::all(kube.client.clone());
    let counted = match pods.list(&ListParams::default()).await {
        Ok(list) => {
            for pod in list.items {
                // The stack's own pods are what the plan replaces.
                if pod.metadata.namespace.as_deref() == Some(inputs.bundle.plan.namespace.as_str())
                {
                    continue;
                }
                let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                    continue;
                }
                for c in pod.spec.map(|s| s.containers).unwrap_or_default() {
                    let req = c.resources.and_then(|r| r.requests).unwrap_or_default();
                    used.add(
                        req.get("cpu").map(|q| q.0.as_str()),
                        req.get("memory").map(|q| q.0.as_str()),
                    );
                }
            }
            true
        }
        Err(_) => false,
    };
    let free = Resources {
        cpu: allocatable.cpu - used.cpu,
        memory: allocatable.memory - used.memory,
    };
    let detail = format!(
        "{} node(s): {} allocatable, {} requested by running pods{}, {} by the plan",
        nodes.len(),
        allocatable.describe(),
        used.describe(),
        if counted { "" } else { " (pods not listable)" },
        planned.describe()
    );
    if planned.cpu <= free.cpu && planned.memory <= free.memory {
        Check::new(PreflightCheck::Capacity, Status::Pass, detail)
    } else {
        Check::new(
            PreflightCheck::Capacity,
            Status::Fail,
            format!("not enough room: {detail}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plurals() {
        assert_eq!(plural("ConfigMap"), "configmaps");
        assert_eq!(plural("PrometheusRule"), "prometheusrules");
        assert_eq!(plural("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural("Ingress"), "ingresses");
    }

    #[test]
    fn volumes_and_requests_are_found_in_values() {
        let v = json!({"prometheus": {"prometheusSpec": {"storageSpec": {"volumeClaimTemplate": {}},
            "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}}}},
            "grafana": {"persistence": {"enabled": false}, "resources": {"requests": {"cpu": 0.5}}}});
        assert!(requests_volumes(&v));
        assert!(!requests_volumes(
            &json!({"persistence": {"enabled": false}})
        ));
        let mut total = Resources::default();
        requested(&v, &mut total);
        assert_eq!(total.cpu, 1.0);
        assert_eq!(total.memory, 2.0 * 1024.0 * 1024.0 * 1024.0);
    }
}
