//! Port-forwarding to a Service of the stack, as `kubectl port-forward svc/X`
//! does: pick a running pod behind the Service, resolve the target port, and
//! bridge every local connection on 127.0.0.1 to it through the API server.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use tokio::net::TcpListener;

use super::Kube;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(
        "no Service for {what} in namespace {namespace} (looked for a name ending in {suffix})"
    )]
    NoService {
        what: String,
        namespace: String,
        suffix: String,
    },
    #[error("Service {0} has no running pod behind it")]
    NoPod(String),
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("cannot listen on 127.0.0.1: {0}")]
    Io(#[from] std::io::Error),
}

/// Finds the stack's Service whose name ends with `suffix` (e.g.
/// `-prometheus` for kube-prometheus-stack's `<release>-prometheus`),
/// skipping operator and headless services.
pub async fn find_service(
    kube: &Kube,
    namespace: &str,
    what: &str,
    suffix: &str,
) -> Result<Service, ForwardError> {
    let api: Api<Service> = Api::namespaced(kube.client.clone(), namespace);
    let services = api.list(&ListParams::default()).await?;
    services
        .items
        .into_iter()
        .filter(|s| {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            (name == suffix.trim_start_matches('-') || name.ends_with(suffix))
                && !name.contains("operated")
                && s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) != Some("None")
        })
        .min_by_key(|s| s.metadata.name.as_ref().map(|n| n.len()))
        .ok_or_else(|| ForwardError::NoService {
            what: what.into(),
            namespace: namespace.into(),
            suffix: suffix.into(),
        })
}

/// Starts forwarding and returns the local base URL (`http://127.0.0.1:P`).
/// The forwarder runs until the process ends.
pub async fn forward(
    kube: &Kube,
    namespace: &str,
    service: &Service,
) -> Result<String, ForwardError> {
    let name = service.metadata.name.clone().unwrap_or_default();
    let spec = service.spec.clone().unwrap_or_default();
    let selector = spec
        .selector
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let port = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| ForwardError::NoPod(name.clone()))?;
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), namespace);
    let pod = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .ok_or_else(|| ForwardError::NoPod(name.clone()))?;
    let target = match port.target_port {
        Some(IntOrString::Int(p)) => p as u16,
        Some(IntOrString::String(named)) => pod
            .spec
            .as_ref()
            .into_iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(named.as_str()))
            .map(|p| p.container_port as u16)
            .unwrap_or(port.port as u16),
        None => port.port as u16,
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let pods = pods.clone();
            let pod_name = pod_name.clone();
            tokio::spawn(async move {
                let Ok(mut forwarder) = pods.portforward(&pod_name, &[target]).await else {
                    return;
                };
                let Some(mut upstream) = forwarder.take_stream(target) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                drop(upstream);
                let _ = forwarder.join().await;
            });
        }
    });
    Ok(format!("http://{local}"))
}
