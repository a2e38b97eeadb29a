//! The short-lived pod whose one log line `verify`'s logs check looks for in
//! Loki: proof that the shipper picks up new pods and Loki answers for them.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use super::Kube;

/// busybox is small, multi-arch and has `echo`; pinned like every image.
pub const IMAGE: &str = "busybox:1.37.0";

pub fn pod_name(run_id: &str) -> String {
    format!("telltale-log-marker-{run_id}")
}

/// The marker pod: prints `marker` once and exits. Its security context
/// satisfies the `restricted` Pod Security Standard, so it runs in a
/// namespace that enforces it.
pub fn pod(namespace: &str, run_id: &str, marker: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(run_id),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "telltale-log-marker",
                "app.kubernetes.io/managed-by": "telltale",
                "telltale.dev/run": run_id,
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "marker",
                "image": IMAGE,
                "command": ["sh", "-c", format!("echo {marker}; sleep 5")],
                "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}, "limits": {"memory": "16Mi"}},
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))
    .expect("the marker pod is a valid Pod")
}

/// A marker pod this run created: the only kind [`remove`] deletes, so a
/// pod of the same name that telltale did not create is never touched.
#[derive(Debug)]
pub struct MarkerPod {
    pub name: String,
}

/// Creates the marker pod.
pub async fn start(
    kube: &Kube,
    namespace: &str,
    run_id: &str,
    marker: &str,
) -> Result<MarkerPod, kube::Error> {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), namespace);
    let created = api
        .create(&PostParams::default(), &pod(namespace, run_id, marker))
        .await?;
    Ok(MarkerPod {
        name: created.metadata.name.unwrap_or_else(|| pod_name(run_id)),
    })
}

/// Deletes the marker pod this run created; a pod already gone is fine.
pub async fn remove(kube: &Kube, namespace: &str, pod: &MarkerPod) {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), namespace);
    let _ = api.delete(&pod.name, &DeleteParams::background()).await;
}

/// Every namespace with at least one running pod.
pub async fn namespaces_with_running_pods(kube: &Kube) -> Result<BTreeSet<String>, kube::Error> {
    let api: Api<Pod> = Api::all(kube.client.clone());
    let pods = api
        .list(&ListParams::default().fields("status.phase=Running"))
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter_map(|p| p.metadata.namespace)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_pod_is_restricted_and_prints_the_marker() {
        let pod = pod("monitoring", "abc123", "telltale-marker-abc123");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let c = &spec.containers[0];
        assert!(
            c.command
                .as_ref()
                .unwrap()
                .join(" ")
                .contains("echo telltale-marker-abc123")
        );
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(spec.security_context.unwrap().run_as_non_root, Some(true));
    }
}
