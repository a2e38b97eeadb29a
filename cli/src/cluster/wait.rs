//! Waits: CRDs established, workloads rolled out, Prometheus and
//! Alertmanager resources available. Each polls until true or the deadline.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::objects::{ObjectRef, Objects};

const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {secs}s waiting for {what}: {last}")]
    Timeout {
        secs: u64,
        what: String,
        last: String,
    },
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// Polls `check` (Ok(None) = done, Ok(Some(reason)) = not yet).
async fn until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<(), WaitError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, kube::Error>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await? {
            None => return Ok(()),
            Some(reason) => reason,
        };
        if Instant::now() >= deadline {
            return Err(WaitError::Timeout {
                secs: timeout.as_secs(),
                what: what.into(),
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn condition(object: &Value, kind: &str) -> Option<String> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

pub async fn crd_established(
    objects: &Objects,
    name: &str,
    timeout: Duration,
) -> Result<(), WaitError> {
    let r = ObjectRef {
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        namespace: String::new(),
        name: name.into(),
    };
    until(
        &format!("CRD {name} to be established"),
        timeout,
        || async {
            Ok(match objects.get(&r).await? {
                None => Some("not found".into()),
                Some(crd) if condition(&crd, "Established").as_deref() == Some("True") => None,
                Some(_) => Some("not established yet".into()),
            })
        },
    )
    .await
}

/// Why a Deployment, StatefulSet or DaemonSet is not rolled out yet.
pub fn rollout_pending(object: &Value) -> Option<String> {
    let s = &object["status"];
    let num = |v: &Value| v.as_i64().unwrap_or(0);
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    let kind = object["kind"].as_str().unwrap_or("?");
    let generation = num(&object["metadata"]["generation"]);
    if num(&s["observedGeneration"]) < generation {
        return Some(format!(
            "{kind}/{name}: the controller has not seen the update"
        ));
    }
    let (want, ready, updated) = match kind {
        "DaemonSet" => (
            num(&s["desiredNumberScheduled"]),
            num(&s["numberReady"]),
            num(&s["updatedNumberScheduled"]),
        ),
        "StatefulSet" => (
            object["spec"]["replicas"].as_i64().unwrap_or(1),
            num(&s["readyReplicas"]),
            num(&s["updatedReplicas"]),
        ),
        _ => (
            object["spec"]["replicas"].as_i64().unwrap_or(1),
            num(&s["availableReplicas"]),
            num(&s["updatedReplicas"]),
        ),
    };
    (ready < want || updated < want)
        .then(|| format!("{kind}/{name}: {ready}/{want} ready, {updated}/{want} updated"))
}

/// Every workload of the release rolled out.
pub async fn release_rolled_out(
    objects: &Objects,
    namespace: &str,
    release: &str,
    timeout: Duration,
) -> Result<(), WaitError> {
    let selector = format!("app.kubernetes.io/instance={release}");
    until(
        &format!("release {release} to roll out"),
        timeout,
        || async {
            for (api_version, kind) in [
                ("apps/v1", "Deployment"),
                ("apps/v1", "StatefulSet"),
                ("apps/v1", "DaemonSet"),
            ] {
                for workload in objects
                    .list(api_version, kind, namespace, &selector)
                    .await?
                {
                    if let Some(reason) = rollout_pending(&workload) {
                        return Ok(Some(reason));
                    }
                }
            }
            Ok(None)
        },
    )
    .await
}

/// Every Prometheus and Alertmanager resource of the namespace reports
/// Available=True (prometheus-operator's condition).
pub async fn operator_resources_available(
    objects: &Objects,
    namespace: &str,
    timeout: Duration,
) -> Result<(), WaitError> {
    until(
        "Prometheus and Alertmanager to be available",
        timeout,
        || async {
            for kind in ["Prometheus", "Alertmanager"] {
                for object in objects
                    .list("monitoring.coreos.com/v1", kind, namespace, "")
                    .await?
                {
                    if condition(&object, "Available").as_deref() != Some("True") {
                        let name = object["metadata"]["name"].as_str().unwrap_or("?");
                        return Ok(Some(format!("{kind}/{name} is not Available")));
                    }
                }
            }
            Ok(None)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::rollout_pending;
    use serde_json::json;

    #[test]
    fn rollouts() {
        let done = json!({"kind": "Deployment", "metadata": {"name": "d", "generation": 2},
            "spec": {"replicas": 2}, "status": {"observedGeneration": 2, "availableReplicas": 2, "updatedReplicas": 2}});
        assert_eq!(rollout_pending(&done), None);
        let pending = json!({"kind": "Deployment", "metadata": {"name": "d", "generation": 3},
            "spec": {"replicas": 2}, "status": {"observedGeneration": 3, "availableReplicas": 1, "updatedReplicas": 2}});
        assert!(rollout_pending(&pending).unwrap().contains("1/2 ready"));
        let ds = json!({"kind": "DaemonSet", "metadata": {"name": "n", "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 3}});
        assert_eq!(rollout_pending(&ds), None);
    }
}
