//! `autoscaling`: the external metrics API (KEDA or Prometheus Adapter)
//! serves the metrics plan.json expects, and every expected
//! HorizontalPodAutoscaler reports a current value for its metrics.

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricStatus};
use kube::api::Api;
use serde::Deserialize;

use super::{Context, Finding};
use crate::cluster::Kube;

const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1";

#[derive(Deserialize)]
struct ResourceList {
    #[serde(default)]
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct Resource {
    name: String,
}

#[derive(Deserialize)]
struct ValueList {
    #[serde(default)]
    items: Vec<serde_json::Value>,
}

pub async fn autoscaling(ctx: &Context<'_>) -> Finding {
    let Some(kube) = &ctx.kube else {
        return Finding::skip(
            "could not run: no cluster reachable (the external metrics API and HPAs are served by the API server)",
        );
    };
    let ex = &ctx.bundle.plan.expectations;
    let mut evidence = Vec::new();
    let mut problems = Vec::new();

    // The HPAs first: KEDA serves a metric only for the label selector its
    // HPA asks with, so a metric's query borrows the selector from them.
    let mut hpas = Vec::new();
    for want in &ex.hpas {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(kube.client.clone(), &want.namespace);
        hpas.push((want, api.get_opt(&want.name).await));
    }

    if !ex.external_metrics.is_empty() {
        match get::<ResourceList>(kube, EXTERNAL).await {
            Ok(list) => {
                let listed: Vec<String> = list
                    .resources
                    .iter()
                    .map(|r| r.name.to_lowercase())
                    .collect();
                for metric in &ex.external_metrics {
                    let (namespace, name) = metric
                        .split_once('/')
                        .unwrap_or((ctx.bundle.plan.namespace.as_str(), metric.as_str()));
                    if listed.iter().any(|l| *l == name.to_lowercase()) {
                        evidence.push(format!("external metric {name}: listed"));
                        continue;
                    }
                    // KEDA lists one generic resource and serves metrics by
                    // name on request: ask for the value, as the HPA would.
                    let (namespace, selector) = hpa_selector(&hpas, name)
                        .unwrap_or((namespace.to_string(), String::new()));
                    let mut path = format!("{EXTERNAL}/namespaces/{namespace}/{name}");
                    if !selector.is_empty() {
                        path.push_str(&format!(
                            "?labelSelector={}",
                            super::http::encode(&selector)
                        ));
                    }
                    match get::<ValueList>(kube, &path).await {
                        Ok(values) if !values.items.is_empty() => evidence.push(format!(
                            "external metric {name}: {} value(s) in {namespace}",
                            values.items.len()
                        )),
                        Ok(_) => problems.push(format!("external metric {name} has no value")),
                        Err(e) => problems.push(format!(
                            "external metric {name} is not served: {}",
                            crate::error::chain(&e)
                        )),
                    }
                }
            }
            Err(e) => problems.push(format!(
                "the external metrics API ({EXTERNAL}) is not served (is KEDA or Prometheus Adapter running?): {}",
                crate::error::chain(&e)
            )),
        }
    }

    for want in &ex.hpas {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(kube.client.clone(), &want.namespace);
        let name = format!("{}/{}", want.namespace, want.name);
        match api.get_opt(&want.name).await {
            Ok(Some(hpa)) => match current_values(&hpa) {
                Ok(values) => evidence.push(format!(
                    "HPA {name}: {} (replicas {})",
                    values.join(", "),
                    hpa.status
                        .as_ref()
                        .and_then(|s| s.current_replicas)
                        .unwrap_or(0)
                )),
                Err(why) => problems.push(format!("HPA {name} reports no current value: {why}")),
            },
            Ok(None) => problems.push(format!("HPA {name} does not exist")),
            Err(e) => problems.push(format!("HPA {name}: {}", crate::error::chain(&e))),
        }
    }

    if problems.is_empty() {
        Finding::pass(
            format!(
                "{} external metric(s) served; {} HPA(s) report current values",
                ex.external_metrics.len(),
                ex.hpas.len()
            ),
            evidence,
        )
    } else {
        Finding::fail(problems.join("; "), evidence)
    }
}

/// The namespace and label selector (`k=v,…`) an expected HPA queries an
/// external metric with.
fn hpa_selector(
    hpas: &[(
        &crate::model::plugin::HpaExpectation,
        Result<Option<HorizontalPodAutoscaler>, kube::Error>,
    )],
    metric: &str,
) -> Option<(String, String)> {
    hpas.iter().find_map(|(want, hpa)| {
        let hpa = hpa.as_ref().ok()?.as_ref()?;
        let external = hpa
            .spec
            .as_ref()?
            .metrics
            .iter()
            .flatten()
            .filter_map(|m| m.external.as_ref())
            .find(|e| e.metric.name == metric)?;
        let labels = external
            .metric
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .map(|l| {
                l.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        Some((want.namespace.clone(), labels))
    })
}

async fn get<T: serde::de::DeserializeOwned>(kube: &Kube, path: &str) -> Result<T, kube::Error> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    kube.client.request::<T>(request).await
}

/// Each metric's current value as text, or why there is none (the
/// ScalingActive condition's reason and message, as `kubectl describe` shows).
pub fn current_values(hpa: &HorizontalPodAutoscaler) -> Result<Vec<String>, String> {
    let status = hpa.status.as_ref().ok_or("no status yet")?;
    let values: Vec<String> = status
        .current_metrics
        .iter()
        .flatten()
        .filter_map(describe)
        .collect();
    if values.is_empty() {
        let why = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "ScalingActive" && c.status != "True")
            .map(|c| {
                format!(
                    "ScalingActive {}: {} {}",
                    c.status,
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.as_deref().unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "no current metrics".into());
        return Err(why.trim().to_string());
    }
    Ok(values)
}

fn describe(metric: &MetricStatus) -> Option<String> {
    let quantity = |v: &k8s_openapi::api::autoscaling::v2::MetricValueStatus| {
        v.value
            .as_ref()
            .or(v.average_value.as_ref())
            .map(|q| q.0.clone())
            .or_else(|| v.average_utilization.map(|u| format!("{u}%")))
    };
    if let Some(e) = &metric.external {
        return quantity(&e.current).map(|v| format!("{} = {v}", e.metric.name));
    }
    if let Some(p) = &metric.pods {
        return quantity(&p.current).map(|v| format!("{} = {v}", p.metric.name));
    }
    if let Some(o) = &metric.object {
        return quantity(&o.current).map(|v| format!("{} = {v}", o.metric.name));
    }
    if let Some(r) = &metric.resource {
        return quantity(&r.current).map(|v| format!("{} = {v}", r.name));
    }
    if let Some(c) = &metric.container_resource {
        return quantity(&c.current).map(|v| format!("{} = {v}", c.name));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(status: serde_json::Value) -> HorizontalPodAutoscaler {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "model", "namespace": "ml"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "model"}, "maxReplicas": 5},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_external_metric_value_is_reported() {
        let h = hpa(
            serde_json::json!({"currentReplicas": 2, "desiredReplicas": 2, "currentMetrics": [
            {"type": "External", "external": {"metric": {"name": "model_p95_latency_seconds"},
             "current": {"value": "350m"}}}]}),
        );
        assert_eq!(
            current_values(&h).unwrap(),
            ["model_p95_latency_seconds = 350m"]
        );
    }

    #[test]
    fn a_keda_metric_is_queried_with_the_selector_of_its_hpa() {
        let keda: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "keda-hpa-model-server", "namespace": "monitoring"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "model-server"}, "maxReplicas": 5,
                     "metrics": [{"type": "External", "external": {
                         "metric": {"name": "s0-prometheus",
                                    "selector": {"matchLabels": {"scaledobject.keda.sh/name": "model-server"}}},
                         "target": {"type": "AverageValue", "averageValue": "10"}}}]}}))
        .unwrap();
        let want = crate::model::plugin::HpaExpectation {
            namespace: "monitoring".into(),
            name: "keda-hpa-model-server".into(),
        };
        let hpas = vec![(&want, Ok(Some(keda)))];
        assert_eq!(
            hpa_selector(&hpas, "s0-prometheus"),
            Some((
                "monitoring".to_string(),
                "scaledobject.keda.sh/name=model-server".to_string()
            ))
        );
        assert_eq!(hpa_selector(&hpas, "s1-prometheus"), None);
    }

    #[test]
    fn no_value_names_the_scaling_active_condition() {
        let h = hpa(
            serde_json::json!({"currentReplicas": 1, "desiredReplicas": 1, "conditions": [
            {"type": "ScalingActive", "status": "False", "reason": "FailedGetExternalMetric",
             "message": "unable to get external metric"}]}),
        );
        let why = current_values(&h).unwrap_err();
        assert!(why.contains("FailedGetExternalMetric"), "{why}");
    }
}
