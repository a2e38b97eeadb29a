//! Issue 21, the hub: the scale-out engines as plugins (`mimir`, `thanos` with
//! `thanos-sidecar`, `loki-scalable`), the spokes' logs pushed to the hub
//! (alloy's `push`), the fleet dashboards and fleet-wide rules (`fleet`) and
//! the `hub` and `spoke` profiles.
//!
//! The charts cannot run here: their values are checked where something real
//! can judge them. The objects kube-prometheus-stack makes of them (the
//! ThanosRuler, the Prometheus' Thanos sidecar and rule selector) are
//! validated against the upstream CRD schemas, the label the HA tracker
//! deduplicates on is read from the bundle's own external labels, every
//! secret is a canary that no file may hold, and bad values stop `plan` with
//! their message. The fleet dashboards run for real: two Prometheus 3 spokes
//! remote-write into a Prometheus 3 hub (the protocol Mimir speaks) that
//! evaluates the bundle's fleet rules, and every dashboard query, with the
//! `cluster` variable set as Grafana sets it, must return that cluster's
//! series and no other.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};
use telltale::render::Bundle;
use telltale::render::plan::Step;

/// Secret values given as file sources; no file of a bundle may hold them.
const CANARY_KEY_ID: &str = "canary-hub-s3-key-id-5e1d0a";
const CANARY_SECRET: &str = "canary-hub-s3-secret-9b7c44";

fn config(profile: &str, plugins: &str) -> String {
    format!(
        "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {{name: hub-1}}\nspec:\n  profile: {profile}\n  plugins:\n{plugins}"
    )
}

/// Canary files and the `{file: …}` sources of an access key pair.
fn canaries(dir: &Path) -> String {
    let (id, secret) = (dir.join("key-id"), dir.join("secret"));
    std::fs::write(&id, CANARY_KEY_ID).unwrap();
    std::fs::write(&secret, CANARY_SECRET).unwrap();
    format!(
        "accessKeyId: {{file: '{}'}}, secretAccessKey: {{file: '{}'}}",
        id.display(),
        secret.display()
    )
}

fn values_of(bundle: &Bundle, release: &str) -> Value {
    let path = format!("helm/{release}/values.yaml");
    serde_saphyr::from_str(&bundle.files[&path]).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Secret name → its keys, as `up` would write them.
fn secret_keys(bundle: &Bundle) -> BTreeMap<String, Vec<String>> {
    bundle
        .plan
        .phases
        .iter()
        .flat_map(|p| &p.steps)
        .filter_map(|s| match s {
            Step::Secret { name, keys, .. } => {
                Some((name.clone(), keys.iter().map(|k| k.key.clone()).collect()))
            }
            _ => None,
        })
        .collect()
}

/// Every `secretKeyRef` under `v` names a key of a Secret the plan writes.
fn refs_are_planned(bundle: &Bundle, v: &Value, found: &mut usize) {
    let planned = secret_keys(bundle);
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("secretKeyRef") {
                    let (name, key) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
                    assert!(
                        planned
                            .get(name)
                            .is_some_and(|k| k.iter().any(|k| k == key)),
                        "{name}/{key} is not a planned Secret key: {planned:?}"
                    );
                    *found += 1;
                }
                stack.extend(m.values());
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
}

fn no_canary(bundle: &Bundle) {
    for (path, text) in &bundle.files {
        for canary in [CANARY_KEY_ID, CANARY_SECRET] {
            assert!(!text.contains(canary), "{path} holds a secret value");
        }
    }
}

/// The errors of `object` against the CRD schema of `api/kind`.
fn crd_errors(api: &str, kind: &str, object: &Value) -> Vec<String> {
    let schemas = crate::schemas::schemas();
    let key = format!("{api}/{kind}");
    let validator = jsonschema::validator_for(&schemas[&key]).unwrap();
    validator
        .iter_errors(object)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// The ThanosRuler kube-prometheus-stack makes of `thanosRuler.thanosRulerSpec`
/// (templates/thanos-ruler/ruler.yaml): the keys used here copied, the
/// `…Config.secret` values turned into the SecretKeySelectors of the Secret
/// the chart renders them into (templates/thanos-ruler/secret.yaml).
fn thanos_ruler(spec: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "replicas",
        "evaluationInterval",
        "ruleSelector",
        "queryEndpoints",
        "remoteWrite",
        "containers",
    ] {
        if !spec[key].is_null() {
            out.insert(key.into(), spec[key].clone());
        }
    }
    for (key, file) in [
        ("alertmanagersConfig", "alertmanager-configs.yaml"),
        ("queryConfig", "query-configs.yaml"),
        ("objectStorageConfig", "object-storage-configs.yaml"),
    ] {
        if !spec[key]["secret"].is_null() {
            out.insert(
                key.into(),
                json!({"key": file, "name": "kube-prometheus-stack-thanos-ruler"}),
            );
        }
    }
    json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ThanosRuler",
        "metadata": {"name": "kube-prometheus-stack-thanos-ruler", "namespace": "monitoring"},
        "spec": out,
    })
}

/// Does a Kubernetes label selector (matchLabels, matchExpressions In/NotIn)
/// select `labels`?
fn selects(selector: &Value, labels: &Value) -> bool {
    let labels_ok = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels[k] == *v);
    let expressions_ok = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let value = &labels[e["key"].as_str().unwrap()];
            let listed = e["values"].as_array().unwrap().contains(value);
            match e["operator"].as_str().unwrap() {
                "In" => listed,
                "NotIn" => !listed,
                other => panic!("operator {other} not modelled"),
            }
        });
    labels_ok && expressions_ok
}

/// (name, labels) of every PrometheusRule the bundle applies.
fn prometheus_rules(bundle: &Bundle) -> Vec<(String, Value)> {
    bundle
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("manifests/") && p.contains("/PrometheusRule_"))
        .map(|(p, text)| {
            let v: Value = serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{p}: {e}"));
            (
                v["metadata"]["name"].as_str().unwrap().to_string(),
                v["metadata"]["labels"].clone(),
            )
        })
        .collect()
}

/// The fleet rules go to the ruler and only there; everything else stays with
/// the hub's Prometheus.
fn fleet_rules_reach_only_the_ruler(bundle: &Bundle, kps: &Value) {
    let ruler = &kps["thanosRuler"]["thanosRulerSpec"]["ruleSelector"];
    let prometheus = &kps["prometheus"]["prometheusSpec"]["ruleSelector"];
    let rules = prometheus_rules(bundle);
    assert!(
        rules.iter().any(|(n, _)| n == "telltale-fleet"),
        "{rules:?}"
    );
    for (name, labels) in &rules {
        let fleet = name == "telltale-fleet";
        assert_eq!(selects(ruler, labels), fleet, "ruler and {name}: {labels}");
        assert_eq!(
            selects(prometheus, labels),
            !fleet,
            "prometheus and {name}: {labels}"
        );
    }
}

#[test]
fn the_hub_and_spoke_profiles_plan_and_leave_each_store_out_until_its_bucket_is_set() {
    let hub = render_profile("hub");
    let enabled: Vec<&str> = hub.plan.plugins.iter().map(|p| p.name.as_str()).collect();
    assert!(enabled.contains(&"fleet"), "{enabled:?}");
    for (store, key) in [
        ("mimir", "objectStorage.endpoint"),
        ("loki-scalable", "endpoint"),
    ] {
        assert!(!enabled.contains(&store), "{store} in {enabled:?}");
        assert!(
            hub.plan
                .warnings
                .iter()
                .any(|w| w.contains(&format!("plugin {store} is left out")) && w.contains(key)),
            "{:?}",
            hub.plan.warnings
        );
    }
    // Without a store the hub's own Prometheus evaluates the fleet rules.
    let kps = values_of(&hub, "kube-prometheus-stack");
    assert!(
        kps["thanosRuler"]["enabled"] != true,
        "{}",
        kps["thanosRuler"]
    );
    assert!(
        hub.files
            .contains_key("grafana/dashboards/telltale-fleet.json")
    );
    assert!(
        hub.files
            .contains_key("prometheus/rules/telltale-fleet.yaml")
    );
    let loki = values_of(&hub, "loki");
    assert_eq!(loki["deploymentMode"], "Monolithic");

    let spoke = render_profile("spoke");
    assert!(
        spoke
            .plan
            .warnings
            .iter()
            .any(|w| w.contains("plugin remote-write is left out")),
        "{:?}",
        spoke.plan.warnings
    );
    let spec = &values_of(&spoke, "kube-prometheus-stack")["prometheus"]["prometheusSpec"];
    assert_eq!(spec["retention"], "7d");
    assert_eq!(spec["replicas"], 2, "production's HA pair");
}

#[test]
fn mimir_on_the_hub_dedups_on_the_fleets_labels_and_its_ruler_matches_the_crd() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = format!(
        "    mimir:\n      values:\n        objectStorage: {{endpoint: 'garage.lan:3900', {}}}\n        haTracker: {{etcd: {{endpoints: ['etcd.etcd.svc:2379']}}}}\n",
        canaries(dir.path())
    );
    let bundle = render_with("hub", Some(&config("hub", &plugins)), &[]);
    no_canary(&bundle);
    let mimir = values_of(&bundle, "mimir");
    let kps = values_of(&bundle, "kube-prometheus-stack");
    let spec = &kps["prometheus"]["prometheusSpec"];
    let structured = &mimir["mimir"]["structuredConfig"];

    // The HA tracker deduplicates on exactly the labels every spoke's
    // Prometheus sends: its external label holding the cluster name and the
    // operator's replica label.
    let limits = &structured["limits"];
    let cluster_label = spec["externalLabels"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, v)| v.as_str() == Some("hub-1"))
        .map(|(k, _)| k.clone())
        .expect("an external label holds the cluster name");
    assert_eq!(limits["ha_cluster_label"], cluster_label.as_str());
    assert_eq!(limits["ha_replica_label"], spec["replicaExternalLabelName"]);
    assert_eq!(limits["accept_ha_samples"], true);
    let tracker = &structured["distributor"]["ha_tracker"];
    assert_eq!(tracker["enable_ha_tracker"], true);
    assert_eq!(tracker["kvstore"]["store"], "etcd", "{tracker}");

    // The bucket, and the keys only as env from the Secret `up` writes.
    let s3 = &structured["common"]["storage"]["s3"];
    assert_eq!(s3["endpoint"], "garage.lan:3900");
    assert!(s3.get("access_key_id").is_none(), "{s3}");
    let mut refs = 0;
    refs_are_planned(&bundle, &mimir, &mut refs);
    assert_eq!(refs, 2, "{}", mimir["global"]);
    assert_eq!(mimir["kafka"]["enabled"], false, "classic architecture");
    assert_eq!(structured["ingest_storage"]["enabled"], false);

    // The fleet ruler as the operator will receive it, and the hub's own
    // Prometheus with its rule selector, are what the CRDs accept.
    let ruler = thanos_ruler(&kps["thanosRuler"]["thanosRulerSpec"]);
    let errors = crd_errors("monitoring.coreos.com/v1", "ThanosRuler", &ruler);
    assert!(errors.is_empty(), "{errors:?}\n{ruler}");
    let prometheus = json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "kube-prometheus-stack-prometheus", "namespace": "monitoring"},
        "spec": {"ruleSelector": spec["ruleSelector"]},
    });
    let errors = crd_errors("monitoring.coreos.com/v1", "Prometheus", &prometheus);
    assert!(errors.is_empty(), "{errors:?}");
    fleet_rules_reach_only_the_ruler(&bundle, &kps);
    let query = &kps["thanosRuler"]["thanosRulerSpec"]["queryConfig"]["secret"][0];
    assert_eq!(query["path_prefix"], "/prometheus", "{query}");
    // The Grafana datasource reads the same API.
    let datasource = bundle
        .files
        .iter()
        .find(|(p, _)| p.ends_with("ConfigMap_monitoring_telltale-datasource-mimir.yaml"))
        .map(|(_, t)| t)
        .expect("the Mimir datasource");
    assert!(
        datasource.contains("mimir-query-frontend.monitoring.svc.cluster.local:8080/prometheus"),
        "{datasource}"
    );
}

#[test]
fn thanos_on_the_hub_and_its_sidecar_on_a_spoke_match_the_crds() {
    let dir = tempfile::tempdir().unwrap();
    let keys = canaries(dir.path());
    let plugins = format!(
        "    mimir: {{enabled: false}}\n    thanos:\n      values:\n        objectStorage: {{endpoint: 'garage.lan:3900', {keys}}}\n        spokes: ['thanos-eu-1.example.com:10901']\n    thanos-sidecar:\n      values:\n        objectStorage: {{endpoint: 'garage.lan:3900', {keys}}}\n        service: {{type: LoadBalancer}}\n"
    );
    let bundle = render_with("hub", Some(&config("hub", &plugins)), &[]);
    no_canary(&bundle);
    let kps = values_of(&bundle, "kube-prometheus-stack");
    let thanos = values_of(&bundle, "thanos");

    // The sidecar: the Prometheus object the chart makes of prometheusSpec
    // (objectStorageConfig becomes the Secret the chart renders, the
    // containers entry patches the operator's thanos-sidecar).
    let spec = &kps["prometheus"]["prometheusSpec"];
    let mut sidecar = spec["thanos"].clone();
    let objstore = sidecar["objectStorageConfig"]["secret"].clone();
    assert_eq!(objstore["type"], "S3");
    assert!(objstore["config"].get("access_key").is_none(), "{objstore}");
    sidecar["objectStorageConfig"] =
        json!({"key": "object-storage-configs.yaml", "name": "kube-prometheus-stack-prometheus"});
    let prometheus = json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "kube-prometheus-stack-prometheus", "namespace": "monitoring"},
        "spec": {"thanos": sidecar, "containers": spec["containers"], "ruleSelector": spec["ruleSelector"]},
    });
    let errors = crd_errors("monitoring.coreos.com/v1", "Prometheus", &prometheus);
    assert!(errors.is_empty(), "{errors:?}\n{prometheus}");
    assert_eq!(spec["containers"][0]["name"], "thanos-sidecar");
    assert_eq!(kps["prometheus"]["thanosService"]["enabled"], true);
    assert_eq!(kps["prometheus"]["thanosService"]["clusterIP"], "");

    // The fleet ruler: validated, uploading to the same bucket, read by Query.
    let ruler_spec = &kps["thanosRuler"]["thanosRulerSpec"];
    let ruler = thanos_ruler(ruler_spec);
    let errors = crd_errors("monitoring.coreos.com/v1", "ThanosRuler", &ruler);
    assert!(errors.is_empty(), "{errors:?}\n{ruler}");
    assert_eq!(ruler_spec["objectStorageConfig"]["secret"], objstore);
    fleet_rules_reach_only_the_ruler(&bundle, &kps);
    let endpoints: Vec<&str> = thanos["additionalEndpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        endpoints.contains(&"thanos-eu-1.example.com:10901"),
        "{endpoints:?}"
    );
    assert!(
        endpoints
            .iter()
            .any(|e| e.contains("thanos-ruler-operated.monitoring.svc")),
        "{endpoints:?}"
    );
    // Query merges an HA pair on the replica label the spokes really carry.
    let replicas = thanos["additionalReplicaLabels"].as_array().unwrap();
    assert!(
        replicas.contains(&spec["replicaExternalLabelName"]),
        "{replicas:?}"
    );
    assert_eq!(thanos["objstoreConfig"]["value"], objstore);

    // Every credential is a reference to a key `up` writes: the sidecar's,
    // the ruler's, the Store Gateway's and the Compactor's.
    let mut refs = 0;
    refs_are_planned(&bundle, &kps, &mut refs);
    refs_are_planned(&bundle, &thanos, &mut refs);
    assert_eq!(refs, 8);
}

/// `telltale plan` with `config`: (exit code, stderr).
fn plan(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telltale.yaml");
    std::fs::write(&path, config).unwrap();
    let output = telltale(dir.path())
        .args(["plan", "--no-tool-check", "-f"])
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(
        !dir.path().join("out").exists() || output.status.success(),
        "nothing is written on bad input"
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn hub_values_that_cannot_work_stop_plan_with_what_to_change() {
    let mimir = "    mimir:\n      values:\n        objectStorage: {endpoint: 'garage.lan:3900'}\n        haTracker: {etcd: {endpoints: ['etcd:2379']}}\n";
    let cases = [
        (
            "    mimir:\n      values:\n        objectStorage: {endpoint: 'garage.lan:3900'}\n"
                .to_string(),
            "the HA tracker needs a KV store",
        ),
        (
            "    mimir:\n      values:\n        objectStorage: {endpoint: 'https://garage.lan:3900'}\n        haTracker: {enabled: false}\n".to_string(),
            "`objectStorage.endpoint` is HOST:PORT",
        ),
        (
            format!("{mimir}        tenants: [eu-1, us-1]\n"),
            "the fleet ruler queries one tenant",
        ),
        (
            format!("{mimir}    thanos:\n      values: {{objectStorage: {{endpoint: 'garage.lan:3900'}}}}\n"),
            "thanos",
        ),
        (
            "    loki-scalable:\n      values: {endpoint: 'https://garage.lan:3900', write: {replicas: 2}}\n"
                .to_string(),
            "`replicationFactor` cannot exceed `write.replicas`",
        ),
        (
            "    alloy:\n      values: {push: [{url: 'ftp://loki.hub:3100'}]}\n".to_string(),
            "each of `push` needs a `url`, an http:// or https://",
        ),
        (
            "    alloy:\n      values: {local: false}\n".to_string(),
            "the log lines go nowhere",
        ),
    ];
    for (plugins, message) in cases {
        let (code, stderr) = plan(&config("hub", &plugins));
        assert_eq!(code, Some(2), "{plugins}\n{stderr}");
        assert!(
            stderr.contains(message),
            "{plugins}\nwanted {message:?} in\n{stderr}"
        );
    }
}

#[test]
fn loki_scalable_switches_the_loki_release_to_its_three_targets_on_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = format!(
        "    loki-scalable:\n      values: {{endpoint: 'https://garage.lan:3900', multitenancy: true, tenants: [eu-1, us-1], {}}}\n",
        canaries(dir.path())
    );
    let bundle = render_with("hub", Some(&config("hub", &plugins)), &[]);
    no_canary(&bundle);
    let loki = values_of(&bundle, "loki");
    assert_eq!(loki["deploymentMode"], "SimpleScalable");
    assert_eq!(loki["singleBinary"]["replicas"], 0);
    assert_eq!(loki["loki"]["storage"]["type"], "s3");
    assert_eq!(loki["loki"]["auth_enabled"], true);
    let factor = loki["loki"]["commonConfig"]["replication_factor"]
        .as_u64()
        .unwrap();
    for target in ["write", "read", "backend"] {
        assert!(loki[target]["replicas"].as_u64().unwrap() >= 2, "{target}");
        assert_eq!(loki[target]["extraArgs"][0], "-config.expand-env=true");
    }
    assert!(loki["write"]["replicas"].as_u64().unwrap() >= factor);
    for config in loki["loki"]["schemaConfig"]["configs"].as_array().unwrap() {
        assert_eq!(config["object_store"], "s3", "{config}");
    }
    let mut refs = 0;
    refs_are_planned(&bundle, &loki, &mut refs);
    assert_eq!(refs, 6, "two keys on each of the three targets");
    // The gateway, and so the datasource and every Alloy, stay as they were.
    assert_eq!(loki["gateway"]["enabled"], true);
    // A second datasource asks every tenant at once, as the read path allows.
    assert_eq!(
        loki["loki"]["querier"]["multi_tenant_queries_enabled"],
        true
    );
    let fleet = bundle
        .files
        .iter()
        .find(|(p, _)| p.ends_with("ConfigMap_monitoring_telltale-datasource-loki-fleet.yaml"))
        .map(|(_, t)| t)
        .expect("the multi-tenant Loki datasource");
    assert!(fleet.contains("httpHeaderValue1: \"eu-1|us-1\""), "{fleet}");
    // Without tenants there is none.
    let bundle = render_with(
        "hub",
        Some(&config(
            "hub",
            "    loki-scalable:\n      values: {endpoint: 'https://garage.lan:3900'}\n",
        )),
        &[],
    );
    assert!(!bundle.files.keys().any(|p| p.contains("loki-fleet")));
}

/// The `loki.write` block of an Alloy configuration.
fn loki_write(content: &str) -> &str {
    let start = content.find("loki.write \"default\"").expect("loki.write");
    &content[start..]
}

#[test]
fn a_spokes_alloy_pushes_every_line_to_the_hub_with_its_tenant() {
    let plugins = "    alloy:\n      values: {push: [{url: 'https://logs.hub.example.com/loki/api/v1/push', tenant: eu-1}]}\n";
    let bundle = render_with("spoke", Some(&config("spoke", plugins)), &[]);
    let content = values_of(&bundle, "alloy")["alloy"]["configMap"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let write = loki_write(&content);
    assert_eq!(write.matches("endpoint {").count(), 2, "{write}");
    assert!(
        write.contains(
            "url = \"http://loki-gateway.monitoring.svc.cluster.local/loki/api/v1/push\""
        )
    );
    assert!(write.contains("url = \"https://logs.hub.example.com/loki/api/v1/push\""));
    assert!(write.contains("tenant_id = \"eu-1\""), "{write}");
    assert!(write.contains("cluster = \"hub-1\""), "{write}");
    // Only the hub: the local endpoint is gone, the rest of the pipeline is not.
    let only = "    alloy:\n      values: {local: false, push: [{url: 'https://logs.hub.example.com/loki/api/v1/push'}]}\n";
    let bundle = render_with("spoke", Some(&config("spoke", only)), &[]);
    let content = values_of(&bundle, "alloy")["alloy"]["configMap"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let write = loki_write(&content);
    assert_eq!(write.matches("endpoint {").count(), 1, "{write}");
    assert!(!write.contains("loki-gateway"), "{write}");
    assert!(!write.contains("tenant_id"), "{write}");
    assert!(content.contains("loki.source.file \"pod_logs\""));
    // A content of the config's own is kept as given.
    let own = "    alloy:\n      values: {alloy: {configMap: {content: 'logging { level = \"warn\" }'}}}\n";
    let bundle = render_with("spoke", Some(&config("spoke", own)), &[]);
    assert_eq!(
        values_of(&bundle, "alloy")["alloy"]["configMap"]["content"],
        "logging { level = \"warn\" }"
    );
}

/// Every metric selector of `expr` (`name{…}` or `{…}`) filters on the
/// cluster variable.
fn selectors_without_cluster(expr: &str) -> Vec<String> {
    let selector = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}").unwrap();
    let bare =
        regex::Regex::new(r"\b([a-z_:][a-z0-9_:]*:[a-z0-9_:]+|ALERTS|up)\b[^{(a-z_:]").unwrap();
    let mut out: Vec<String> = selector
        .captures_iter(expr)
        .filter(|c| !c[2].contains("cluster=~\"$cluster\""))
        .filter(|c| c.get(1).is_some() && !matches!(&c[1], "by" | "without" | "on" | "ignoring"))
        .map(|c| c[0].to_string())
        .collect();
    out.extend(
        bare.captures_iter(&format!("{expr} "))
            .map(|c| c[1].to_string()),
    );
    out
}

fn dashboard_queries(bundle: &Bundle) -> Vec<(String, String)> {
    let d: Value =
        serde_json::from_str(&bundle.files["grafana/dashboards/telltale-fleet.json"]).unwrap();
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        p["title"].as_str().unwrap().to_string(),
                        t["expr"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_fleet_dashboard_query_selects_the_cluster_variable() {
    let bundle = render_profile("hub");
    let queries = dashboard_queries(&bundle);
    assert!(queries.len() >= 10, "{queries:?}");
    for (panel, expr) in &queries {
        let missing = selectors_without_cluster(expr);
        assert!(missing.is_empty(), "{panel}: {expr}: {missing:?}");
    }
    // The records the dashboards read keep `cluster` in every aggregation.
    let rules: Value =
        serde_saphyr::from_str(&bundle.files["prometheus/rules/telltale-fleet.yaml"]).unwrap();
    let by = regex::Regex::new(r"\b(by|without)\s*\(([^)]*)\)").unwrap();
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        for c in by.captures_iter(expr) {
            assert_eq!(&c[1], "by", "{expr}");
            assert!(c[2].split(',').any(|l| l.trim() == "cluster"), "{expr}");
        }
    }
}

fn hub_query(hub: &local::Daemon, promql: &str) -> Vec<Value> {
    let body: Value = ureq::get(&format!("{}/api/v1/query", hub.url))
        .query("query", promql)
        .call()
        .unwrap_or_else(|e| panic!("query {promql}: {e}\n{}", hub.log()))
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(body["status"], "success", "{promql}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_for<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A spoke: Prometheus 3 labelled `cluster` (its external label, as the
/// bundle sets it), scraping an exporter of node and kube-state series, itself
/// and a dead target, with one alert always firing, remote-writing to `push`.
fn spoke(dir: &Path, cluster: &str, push: &str, exporter: &local::Exporter) -> local::Daemon {
    std::fs::create_dir_all(dir).unwrap();
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: spoke\n  interval: 1s\n  rules:\n  - alert: SpokeAlwaysFiring\n    expr: vector(1)\n    labels: {severity: warning}\n",
    )
    .unwrap();
    let dead_port = local::dead_port();
    let dead = format!("127.0.0.1:{}", dead_port.port);
    local::prometheus_with(dir, &[], None, |port| {
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "external_labels": {"cluster": cluster}},
            "rule_files": [rules],
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [format!("127.0.0.1:{port}")]}]},
                {"job_name": "node-exporter", "static_configs": [{"targets": [exporter.addr.clone()]}]},
                {"job_name": "dead", "static_configs": [{"targets": [dead]}]},
            ],
            "remote_write": [{"url": push}],
        });
        let path = dir.join("prometheus.yml");
        std::fs::write(&path, config.to_string()).unwrap();
        path
    })
}

#[test]
fn the_fleet_dashboards_show_each_selected_cluster_and_no_other_on_a_real_hub() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = render_profile("hub");
    // The hub: Prometheus 3 receiving remote write (what Mimir speaks) and
    // evaluating the bundle's fleet rules, as the fleet ruler does.
    let hub_dir = dir.path().join("hub");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let rules = hub_dir.join("telltale-fleet.yaml");
    std::fs::write(
        &rules,
        &bundle.files["prometheus/rules/telltale-fleet.yaml"],
    )
    .unwrap();
    let hub = local::prometheus_with(
        &hub_dir,
        &["--web.enable-remote-write-receiver".into()],
        None,
        |_| {
            let path = hub_dir.join("prometheus.yml");
            std::fs::write(
                &path,
                format!(
                    "global: {{evaluation_interval: 1s}}\nrule_files: ['{}']\n",
                    rules.display()
                ),
            )
            .unwrap();
            path
        },
    );
    let push = format!("{}/api/v1/write", hub.url);
    let exporter = local::exporter(|t, _| {
        format!(
            "node_cpu_seconds_total{{cpu=\"0\",mode=\"idle\"}} {}\n\
             node_cpu_seconds_total{{cpu=\"0\",mode=\"user\"}} {}\n\
             node_memory_MemAvailable_bytes 250\nnode_memory_MemTotal_bytes 1000\n\
             kube_node_info{{node=\"n1\"}} 1\n\
             kube_node_status_condition{{node=\"n1\",condition=\"Ready\",status=\"true\"}} 1\n",
            t * 0.5,
            t * 0.5
        )
    });
    let clusters = ["eu-1", "eu-2"];
    let _spokes: Vec<local::Daemon> = clusters
        .iter()
        .map(|c| spoke(&dir.path().join(c), c, &push, &exporter))
        .collect();

    // Every record of both clusters has arrived (rates need a few samples).
    wait_for(
        "the fleet records of both clusters",
        Duration::from_secs(60),
        || {
            let ok = [
                "cluster:node_cpu_utilisation:ratio_rate5m",
                "cluster_severity:alerts_firing:count",
                "cluster_job:up:sum",
            ]
            .iter()
            .all(|r| hub_query(&hub, r).len() >= 2);
            ok.then_some(())
        },
    );
    // The variable's own query offers both clusters.
    let values: Value = ureq::get(&format!("{}/api/v1/label/cluster/values", hub.url))
        .query("match[]", "up")
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(values["data"], json!(clusters), "{values}");

    let queries = dashboard_queries(&bundle);
    // Grafana's substitution: one value as is, several as (a|b), All as .*.
    for (selection, expected) in [
        ("eu-1", vec!["eu-1"]),
        ("eu-2", vec!["eu-2"]),
        ("(eu-1|eu-2)", vec!["eu-1", "eu-2"]),
    ] {
        for (panel, expr) in &queries {
            let promql = expr
                .replace("$cluster", selection)
                .replace("$namespace", ".*");
            let result = hub_query(&hub, &promql);
            let seen: std::collections::BTreeSet<&str> = result
                .iter()
                .map(|s| s["metric"]["cluster"].as_str().unwrap_or("<none>"))
                .collect();
            assert_eq!(
                seen.iter().copied().collect::<Vec<_>>(),
                expected,
                "{panel}: {promql}: {result:?}"
            );
        }
    }
    // The firing alert of each spoke, counted per cluster.
    let firing = hub_query(&hub, "cluster_severity:alerts_firing:count");
    for s in &firing {
        assert_eq!(s["metric"]["severity"], "warning", "{firing:?}");
        assert_eq!(s["value"][1], "1", "{firing:?}");
    }
}

#[test]
fn the_readmes_hub_fleet_plans_a_hub_with_its_stores_and_two_spokes() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = &readme[readme
        .find("### The hub: Mimir or Thanos")
        .expect("the hub section")..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let fleet = &section[start..start + section[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.yaml");
    std::fs::write(&path, fleet).unwrap();
    let out = dir.path().join("out");
    let output = telltale(dir.path())
        .args(["plan", "--no-tool-check", "-f"])
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    let loki: Value = serde_saphyr::from_str(&read("hub/helm/loki/values.yaml")).unwrap();
    assert_eq!(loki["deploymentMode"], "SimpleScalable");
    assert!(out.join("hub/helm/mimir/values.yaml").is_file());
    assert!(
        out.join("hub/grafana/dashboards/telltale-fleet.json")
            .is_file()
    );
    for spoke in ["eu-1", "us-1"] {
        let kps: Value = serde_saphyr::from_str(&read(&format!(
            "{spoke}/helm/kube-prometheus-stack/values.yaml"
        )))
        .unwrap();
        assert_eq!(
            kps["prometheus"]["prometheusSpec"]["remoteWrite"][0]["url"],
            "https://mimir.hub.example.com/api/v1/push"
        );
        let alloy = read(&format!("{spoke}/helm/alloy/values.yaml"));
        assert!(alloy.contains("https://logs.hub.example.com/loki/api/v1/push"));
    }
    let hub: Value =
        serde_saphyr::from_str(&read("hub/helm/kube-prometheus-stack/values.yaml")).unwrap();
    assert_eq!(
        hub["prometheus"]["prometheusSpec"]["remoteWrite"][0]["url"],
        "http://mimir-distributor.monitoring.svc:8080/api/v1/push"
    );
    assert_eq!(hub["thanosRuler"]["enabled"], true);
}

/// The tenants the hub verify asks a multi-tenant store for are read from
/// what each spoke's bundle really sends under (its remote write's
/// X-Scope-OrgID, its Alloy's tenant_id), and the header reaches the store.
#[test]
fn the_hub_verify_asks_for_the_tenants_the_spokes_bundles_send_under() {
    use telltale::verify::hub::{TENANT_HEADER, tenants_of};
    let plugins = "    remote-write: {values: {url: 'https://mimir.hub.example.com/api/v1/push', tenant: eu-1}}\n    alloy:\n      values: {push: [{url: 'https://logs.hub.example.com/loki/api/v1/push', tenant: eu-1-logs}]}\n";
    let bundle = render_with("spoke", Some(&config("spoke", plugins)), &[]);
    let tenants: Vec<String> = tenants_of(&bundle).into_iter().collect();
    assert_eq!(tenants, ["eu-1", "eu-1-logs"]);
    let plain = "    remote-write: {values: {url: 'https://mimir.hub.example.com/api/v1/push'}}\n";
    let bundle = render_with("spoke", Some(&config("spoke", plain)), &[]);
    assert!(tenants_of(&bundle).is_empty(), "no tenant, no header");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let store = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/query"))
            .and(header(TENANT_HEADER, "eu-1|eu-2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .mount(&store)
            .await;
        let http = telltale::verify::http::Http::new(Default::default())
            .unwrap()
            .with_header(TENANT_HEADER, "eu-1")
            .with_header(TENANT_HEADER, "eu-1|eu-2");
        let answer: Value = http
            .get_json(&format!("{}/api/v1/query", store.uri()))
            .await
            .expect("the store saw the tenants, once");
        assert_eq!(answer["ok"], true);
        let bare = telltale::verify::http::Http::new(Default::default()).unwrap();
        assert!(
            bare.get_json::<Value>(&format!("{}/api/v1/query", store.uri()))
                .await
                .is_err(),
            "without the header the store does not answer"
        );
    });
}
