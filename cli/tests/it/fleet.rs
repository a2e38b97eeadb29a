//! Beyond one cluster, first slice: every series and log line a bundle
//! produces knows its cluster, and the `remote-write` plugin sends this
//! cluster's series to a central store.
//!
//! The label facts are read from what every profile renders. Remote write
//! is proven with real Prometheus 3: spokes configured from their bundles
//! (the operator's translation in [`operator`]) write into a hub started
//! with `--web.enable-remote-write-receiver` behind a web config with basic
//! auth, standing in for Mimir (the same protocol). The hub ends up holding
//! the good spoke's `up` labelled with its cluster and nothing of a spoke
//! with a wrong password, and a spoke whose URL is broken shows it in its
//! own `prometheus_remote_storage_*` counters.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};
use telltale::render::Bundle;
use telltale::render::plan::Step;

/// The hub's user and password (a canary: it must never appear in a bundle)
/// and its bcrypt hash for the hub's web config (cost 4, the minimum, so the
/// hub checks it fast), made with `crypt.crypt(PASSWORD, mksalt(METHOD_BLOWFISH))`.
const USER: &str = "spoke";
const PASSWORD: &str = "canary-remote-write-7f3a9c";
const PASSWORD_BCRYPT: &str = "$2b$04$bMtJST5Jb7eGOG2StAcD7eugg6kjYxDNbpimqhpdfrK/1kgvu1xq6";

fn config(cluster: &str, profile: &str, remote_write: Option<&str>) -> String {
    let plugins = remote_write
        .map(|v| format!("  plugins:\n    remote-write:\n      values: {v}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {{name: {cluster}}}\nspec:\n  profile: {profile}\n{plugins}"
    )
}

fn values_of(bundle: &Bundle, release: &str) -> Value {
    let path = format!("helm/{release}/values.yaml");
    serde_saphyr::from_str(&bundle.files[&path]).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `prometheus.prometheusSpec` of kube-prometheus-stack's values: what the
/// chart copies into the Prometheus object's spec for the keys used here.
fn prometheus_spec(bundle: &Bundle) -> Value {
    values_of(bundle, "kube-prometheus-stack")["prometheus"]["prometheusSpec"].clone()
}

fn secret_steps(bundle: &Bundle) -> Vec<(String, Vec<(String, String)>)> {
    bundle
        .plan
        .phases
        .iter()
        .flat_map(|p| &p.steps)
        .filter_map(|s| match s {
            Step::Secret { name, keys, .. } => Some((
                name.clone(),
                keys.iter()
                    .map(|k| (k.key.clone(), k.source.to_string()))
                    .collect(),
            )),
            _ => None,
        })
        .collect()
}

/// Every route of alertmanager.yaml, the root first.
fn routes(route: &Value) -> Vec<&Value> {
    let mut out = vec![route];
    for child in route["routes"].as_array().into_iter().flatten() {
        out.extend(routes(child));
    }
    out
}

#[test]
fn every_series_and_log_line_knows_its_cluster() {
    for profile in PROFILES {
        let bundle = render_with(profile, Some(&config("eu-1", profile, None)), &[]);
        let cluster = bundle.plan.cluster.name.clone().unwrap();
        assert_eq!(cluster, "eu-1", "{profile}: the config names the cluster");
        let spec = prometheus_spec(&bundle);

        // Stored series: the default scrape class labels every target.
        let classes = spec["scrapeClasses"].as_array().unwrap();
        let defaults: Vec<&Value> = classes.iter().filter(|c| c["default"] == true).collect();
        assert_eq!(defaults.len(), 1, "{profile}: one default scrape class");
        assert!(
            defaults[0]["relabelings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["targetLabel"] == "cluster"
                    && r["replacement"] == cluster.as_str()
                    && r.get("sourceLabels").is_none()
                    && r.get("action").is_none_or(|a| a == "replace")),
            "{profile}: the default scrape class sets cluster={cluster}: {classes:?}"
        );
        // What leaves Prometheus: alerts, remote write, aggregated records.
        assert_eq!(
            spec["externalLabels"]["cluster"], cluster,
            "{profile}: externalLabels.cluster"
        );
        // HA pairs: each replica its own label, the operator's.
        assert_eq!(
            spec["replicaExternalLabelName"], "prometheus_replica",
            "{profile}"
        );
        assert_ne!(
            spec["prometheusExternalLabelName"], "",
            "{profile}: the operator's `prometheus` label is kept"
        );

        // Alerts: grouped per cluster everywhere in the tree, and no alert of
        // one cluster ever inhibits another cluster's.
        let am: Value = serde_saphyr::from_str(&bundle.files["alertmanager/alertmanager.yaml"])
            .expect("alertmanager.yaml parses");
        for route in routes(&am["route"]) {
            if let Some(by) = route["group_by"].as_array() {
                assert!(
                    by.contains(&json!("cluster")) || by == &vec![json!("...")],
                    "{profile}: a route groups without cluster: {route}"
                );
            }
        }
        assert!(
            am["route"]["group_by"]
                .as_array()
                .unwrap()
                .contains(&json!("cluster")),
            "{profile}: the root route groups by cluster"
        );
        for rule in am["inhibit_rules"].as_array().into_iter().flatten() {
            assert!(
                rule["equal"]
                    .as_array()
                    .is_some_and(|e| e.contains(&json!("cluster"))),
                "{profile}: an inhibition across clusters: {rule}"
            );
        }

        // Log lines: the shipper the bundle installs labels every stream.
        let releases: Vec<&str> = bundle
            .plan
            .releases
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        let mut shippers = 0;
        if releases.contains(&"alloy") {
            shippers += 1;
            let content = values_of(&bundle, "alloy")["alloy"]["configMap"]["content"]
                .as_str()
                .unwrap()
                .to_string();
            let write = content
                .split("loki.write ")
                .nth(1)
                .expect("alloy writes to loki");
            let labels = write
                .split("external_labels = {")
                .nth(1)
                .and_then(|rest| rest.split('}').next())
                .expect("loki.write has external_labels");
            assert!(
                labels
                    .lines()
                    .any(|l| l.trim() == format!("cluster = \"{cluster}\",")),
                "{profile}: alloy's external_labels: {labels}"
            );
        }
        if releases.contains(&"promtail") {
            shippers += 1;
            let clients = values_of(&bundle, "promtail")["config"]["clients"].clone();
            for client in clients.as_array().unwrap() {
                assert_eq!(client["external_labels"]["cluster"], cluster, "{profile}");
            }
        }
        assert!(shippers > 0, "{profile}: no log shipper: {releases:?}");

        // Dashboards: a cluster variable to pick one cluster in a shared Grafana.
        for (path, text) in files_with_prefix(&bundle, "grafana/dashboards/") {
            let d: Value = serde_json::from_str(text).unwrap();
            assert!(
                d["templating"]["list"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|v| v["name"] == "cluster")),
                "{profile}: {path} has no cluster variable"
            );
        }
    }
}

#[test]
fn remote_write_is_left_out_until_its_url_is_set() {
    let bundle = render_with(
        "kind",
        Some(&config("eu-1", "kind", Some("{tenant: eu-1}"))),
        &[],
    );
    assert!(
        bundle.plan.warnings.iter().any(|w| w.starts_with(
            "plugin remote-write is left out: it needs `url` (the store's remote-write endpoint"
        )),
        "{:?}",
        bundle.plan.warnings
    );
    assert!(prometheus_spec(&bundle).get("remoteWrite").is_none());
    assert!(
        !secret_steps(&bundle)
            .iter()
            .any(|(n, _)| n == "telltale-remote-write")
    );
}

#[test]
fn remote_write_references_the_secret_up_writes_and_sizes_its_queue_for_the_profile() {
    let values = "{url: 'https://mimir.example.com/api/v1/push', tenant: eu-1, \
                  username: {env: RW_USER}, password: {file: /run/secrets/rw}}";
    let kind = render_with("kind", Some(&config("eu-1", "kind", Some(values))), &[]);
    let spec = prometheus_spec(&kind);
    let rw = spec["remoteWrite"].as_array().expect("remoteWrite is set");
    assert_eq!(rw.len(), 1, "{rw:?}");
    let rw = &rw[0];
    assert_eq!(rw["url"], "https://mimir.example.com/api/v1/push");
    assert_eq!(rw["headers"], json!({"X-Scope-OrgID": "eu-1"}));
    assert!(rw.get("authorization").is_none(), "{rw}");
    // The SecretKeySelectors name exactly the Secret and keys `up` writes,
    // filled from the sources the config gave.
    let secrets = secret_steps(&kind);
    let (_, keys) = secrets
        .iter()
        .find(|(n, _)| n == "telltale-remote-write")
        .expect("a Secret telltale-remote-write is planned");
    for (field, source) in [
        ("username", "env:RW_USER"),
        ("password", "file:/run/secrets/rw"),
    ] {
        let selector = &rw["basicAuth"][field];
        assert_eq!(selector["name"], "telltale-remote-write", "{rw}");
        let key = selector["key"].as_str().unwrap();
        assert!(
            keys.iter().any(|(k, s)| k == key && s == source),
            "{field}: {key} from {source} in {keys:?}"
        );
    }
    // Prometheus in the values is still a server unless asked otherwise.
    assert_eq!(
        values_of(&kind, "kube-prometheus-stack")["prometheus"]["agentMode"],
        false
    );

    // A bearer token instead: `authorization`, no basic auth.
    let bearer = render_with(
        "production",
        Some(&config(
            "eu-1",
            "production",
            Some(
                "{url: 'https://mimir.example.com/api/v1/push', bearerToken: {secretRef: {name: mimir, key: token}}}",
            ),
        )),
        &[],
    );
    let rw_prod = prometheus_spec(&bearer)["remoteWrite"][0].clone();
    assert!(rw_prod.get("basicAuth").is_none(), "{rw_prod}");
    assert!(
        rw_prod.get("headers").is_none(),
        "no tenant, no header: {rw_prod}"
    );
    assert_eq!(rw_prod["authorization"]["type"], "Bearer");
    assert_eq!(
        rw_prod["authorization"]["credentials"],
        json!({"name": "telltale-remote-write", "key": "bearerToken"})
    );
    assert!(
        secret_steps(&bearer)
            .iter()
            .any(|(n, keys)| n == "telltale-remote-write"
                && keys
                    == &vec![(
                        "bearerToken".to_string(),
                        "secretRef:mimir/token".to_string()
                    )])
    );

    // Sized for the profile: the in-memory bound (shards × capacity) of a
    // kind cluster is a fraction of a production one's.
    let bound = |q: &Value| q["maxShards"].as_u64().unwrap() * q["capacity"].as_u64().unwrap();
    let (small, large) = (&rw["queueConfig"], &rw_prod["queueConfig"]);
    assert!(bound(small) * 10 <= bound(large), "{small} vs {large}");
    for q in [small, large] {
        assert_eq!(
            q["retryOnRateLimit"], true,
            "429s are retried, not dropped: {q}"
        );
    }

    // Agent mode: kube-prometheus-stack renders a PrometheusAgent.
    let agent = render_with(
        "kind",
        Some(&config(
            "eu-1",
            "kind",
            Some("{url: 'http://mimir:8080/api/v1/push', agent: true}"),
        )),
        &[],
    );
    assert_eq!(
        values_of(&agent, "kube-prometheus-stack")["prometheus"]["agentMode"],
        true
    );
}

#[test]
fn remote_write_refuses_what_the_operator_or_the_store_would() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{url: 'https://m/api/v1/push', bearerToken: {env: T}, username: {env: U}, password: {env: P}}",
            "set either `bearerToken` or `username` and `password`, not both",
        ),
        (
            "{url: 'https://m/api/v1/push', password: {env: P}}",
            "basic auth needs both `username` and `password`",
        ),
        (
            "{url: 'ftp://m/api/v1/push'}",
            "`url` must be an http:// or https:// URL",
        ),
        (
            "{url: 'https://spoke:canary-in-url@m/api/v1/push'}",
            "a URL with a password",
        ),
        (
            "{url: 'https://m/api/v1/push', password: canary-literal-password, username: {env: U}}",
            "a literal secret is not allowed here",
        ),
    ];
    for (values, message) in cases {
        let file = dir.path().join("telltale.yaml");
        std::fs::write(&file, config("eu-1", "kind", Some(values))).unwrap();
        let out = telltale(dir.path())
            .args(["plan", "-f", "telltale.yaml", "--out", "out"])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{values}: {text}");
        assert!(text.contains(message), "{values}: {text}");
        assert!(!text.contains("canary"), "a credential echoed: {text}");
        assert!(
            !dir.path().join("out").exists(),
            "nothing written: {values}"
        );
    }
}

/// What prometheus-operator makes of the Prometheus object's fields the
/// bundle sets, reduced to those fields (pkg/prometheus/promcfg.go at
/// prometheus-operator 6adcebc, 2026-08: `buildExternalLabels`,
/// `GenerateRemoteWriteConfig`, `generateRelabelConfig`). It stands in for
/// the operator, which cannot run here, so the spoke below runs the
/// configuration the operator would generate from the bundle.
mod operator {
    use serde_json::{Map, Value, json};

    /// The Prometheus object kube-prometheus-stack creates for release
    /// `kube-prometheus-stack` (templates/prometheus/prometheus.yaml, named
    /// by `kube-prometheus-stack.prometheus.crname`).
    pub const PROMETHEUS: &str = "kube-prometheus-stack-prometheus";

    /// The pod of replica `ordinal` (the operator's StatefulSet `prometheus-<name>`).
    pub fn pod(ordinal: u32) -> String {
        format!("prometheus-{PROMETHEUS}-{ordinal}")
    }

    /// `buildExternalLabels`: `prometheus: <namespace>/<name>` and the
    /// replica label valued with the pod name (each unless its name is set
    /// to ""), then `externalLabels`, which cannot override those two.
    pub fn external_labels(spec: &Value, namespace: &str, pod: &str) -> Map<String, Value> {
        let mut out = Map::new();
        let name_of = |field: &str, default: &str| {
            spec.get(field)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        let prometheus = name_of("prometheusExternalLabelName", "prometheus");
        if !prometheus.is_empty() {
            out.insert(prometheus, json!(format!("{namespace}/{PROMETHEUS}")));
        }
        let replica = name_of("replicaExternalLabelName", "prometheus_replica");
        if !replica.is_empty() {
            out.insert(replica, json!(pod));
        }
        for (k, v) in spec["externalLabels"].as_object().into_iter().flatten() {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
        out
    }

    /// `generateRelabelConfig`: the default scrape class's relabelings,
    /// which the operator adds to every monitor's relabel_configs.
    pub fn relabel_configs(relabelings: &Value) -> Value {
        let fields = [
            ("sourceLabels", "source_labels"),
            ("separator", "separator"),
            ("targetLabel", "target_label"),
            ("regex", "regex"),
            ("modulus", "modulus"),
            ("replacement", "replacement"),
        ];
        let rules = relabelings.as_array().into_iter().flatten().map(|r| {
            let mut out = Map::new();
            for (from, to) in fields {
                if let Some(v) = r.get(from) {
                    out.insert(to.into(), v.clone());
                }
            }
            if let Some(action) = r["action"].as_str() {
                out.insert("action".into(), json!(action.to_lowercase()));
            }
            Value::Object(out)
        });
        Value::Array(rules.collect())
    }

    /// `GenerateRemoteWriteConfig` for the fields the remote-write plugin
    /// sets. The operator reads the Secret keys the selectors name and
    /// writes their values into the configuration it generates (a Secret of
    /// its own); `secret` stands for that read.
    pub fn remote_write(specs: &Value, secret: &dyn Fn(&Value) -> String) -> Value {
        let queue_fields = [
            ("capacity", "capacity"),
            ("minShards", "min_shards"),
            ("maxShards", "max_shards"),
            ("maxSamplesPerSend", "max_samples_per_send"),
            ("batchSendDeadline", "batch_send_deadline"),
            ("minBackoff", "min_backoff"),
            ("maxBackoff", "max_backoff"),
            ("retryOnRateLimit", "retry_on_http_429"),
            ("sampleAgeLimit", "sample_age_limit"),
        ];
        let queues = specs.as_array().into_iter().flatten().map(|spec| {
            let mut cfg = Map::new();
            cfg.insert("url".into(), spec["url"].clone());
            for (from, to) in [("remoteTimeout", "remote_timeout"), ("headers", "headers"), ("name", "name")] {
                if let Some(v) = spec.get(from) {
                    cfg.insert(to.into(), v.clone());
                }
            }
            if let Some(auth) = spec.get("basicAuth") {
                cfg.insert(
                    "basic_auth".into(),
                    json!({"username": secret(&auth["username"]), "password": secret(&auth["password"])}),
                );
            }
            if let Some(auth) = spec.get("authorization") {
                let mut a = Map::new();
                a.insert("type".into(), json!(auth["type"].as_str().unwrap_or("Bearer").trim()));
                if let Some(c) = auth.get("credentials") {
                    a.insert("credentials".into(), json!(secret(c)));
                }
                cfg.insert("authorization".into(), Value::Object(a));
            }
            if let Some(q) = spec.get("queueConfig") {
                let mut out = Map::new();
                for (from, to) in queue_fields {
                    match q.get(from) {
                        // Zero and false are "unset" to the operator.
                        None | Some(Value::Null) => {}
                        Some(v) if v == &json!(0) || v == &json!(false) => {}
                        Some(v) => {
                            out.insert(to.into(), v.clone());
                        }
                    }
                }
                cfg.insert("queue_config".into(), Value::Object(out));
            }
            Value::Object(cfg)
        });
        Value::Array(queues.collect())
    }

    #[test]
    fn external_labels_are_the_operators_then_the_specs() {
        let spec = json!({"externalLabels": {"cluster": "eu-1", "prometheus": "mine"},
                          "replicaExternalLabelName": "prometheus_replica"});
        let labels = external_labels(&spec, "monitoring", &pod(1));
        assert_eq!(
            Value::Object(labels),
            json!({"cluster": "eu-1", "prometheus": "monitoring/kube-prometheus-stack-prometheus",
                   "prometheus_replica": "prometheus-kube-prometheus-stack-prometheus-1"})
        );
        let cleared = json!({"replicaExternalLabelName": "", "prometheusExternalLabelName": ""});
        assert!(external_labels(&cleared, "m", "p").is_empty());
    }

    #[test]
    fn remote_write_inlines_the_secrets_and_renames_the_queue_fields() {
        let specs = json!([{
            "name": "central", "url": "https://m/api/v1/push", "remoteTimeout": "30s",
            "headers": {"X-Scope-OrgID": "eu-1"},
            "basicAuth": {"username": {"name": "s", "key": "username"}, "password": {"name": "s", "key": "password"}},
            "queueConfig": {"capacity": 2500, "maxShards": 10, "minShards": 0, "batchSendDeadline": "5s", "retryOnRateLimit": true}
        }, {
            "url": "https://t/api/v1/push",
            "authorization": {"type": "Bearer", "credentials": {"name": "s", "key": "bearerToken"}}
        }]);
        let got = remote_write(&specs, &|sel| format!("<{}>", sel["key"].as_str().unwrap()));
        assert_eq!(
            got,
            json!([{
                "url": "https://m/api/v1/push", "remote_timeout": "30s", "headers": {"X-Scope-OrgID": "eu-1"},
                "name": "central",
                "basic_auth": {"username": "<username>", "password": "<password>"},
                "queue_config": {"capacity": 2500, "max_shards": 10, "batch_send_deadline": "5s", "retry_on_http_429": true}
            }, {
                "url": "https://t/api/v1/push",
                "authorization": {"type": "Bearer", "credentials": "<bearerToken>"}
            }])
        );
    }

    #[test]
    fn relabelings_become_relabel_configs() {
        let got = relabel_configs(&json!([{"targetLabel": "cluster", "replacement": "eu-1"},
                                          {"sourceLabels": ["a"], "action": "Replace", "regex": "(.*)"}]));
        assert_eq!(
            got,
            json!([{"target_label": "cluster", "replacement": "eu-1"},
                   {"source_labels": ["a"], "regex": "(.*)", "action": "replace"}])
        );
    }
}

/// The value `up` would store at `selector` (`{name, key}`): the planned
/// Secret's source for that key, read here from its file.
fn secret_value(bundle: &Bundle, selector: &Value) -> String {
    let (name, key) = (
        selector["name"].as_str().unwrap(),
        selector["key"].as_str().unwrap(),
    );
    let steps = secret_steps(bundle);
    let (_, keys) = steps
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no Secret {name} planned"));
    let (_, source) = keys
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("Secret {name} has no key {key}"));
    let path = source
        .strip_prefix("file:")
        .unwrap_or_else(|| panic!("the test gives file sources: {source}"));
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// A spoke: Prometheus 3 running what the operator would generate from
/// `bundle` for replica 0, scraping itself (its own job in the cluster) every
/// second.
fn spoke(bundle: &Bundle, dir: &Path) -> local::Daemon {
    let spec = prometheus_spec(bundle);
    let labels = operator::external_labels(&spec, &bundle.plan.namespace, &operator::pod(0));
    let class = spec["scrapeClasses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["default"] == true)
        .cloned()
        .unwrap();
    let remote_write = operator::remote_write(&spec["remoteWrite"], &|s| secret_value(bundle, s));
    std::fs::create_dir_all(dir).unwrap();
    // A record that aggregates `cluster` away, as the bundle's own records
    // do (`telltale:alert_value` is `max by (node) (…)`): on the way out
    // only the external labels can give it its cluster back.
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        format!("groups:\n- name: spoke\n  interval: 1s\n  rules:\n  - record: {AGGREGATED}\n    expr: sum(up)\n"),
    )
    .unwrap();
    local::prometheus_with(dir, &[], None, |port| {
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "external_labels": labels},
            "rule_files": [rules],
            "scrape_configs": [{
                "job_name": operator::PROMETHEUS,
                "static_configs": [{"targets": [format!("127.0.0.1:{port}")]}],
                "relabel_configs": operator::relabel_configs(&class["relabelings"]),
            }],
            "remote_write": remote_write,
        });
        let path = dir.join("prometheus.yml");
        // JSON is YAML: Prometheus reads it as is.
        std::fs::write(&path, config.to_string()).unwrap();
        path
    })
}

/// The spoke's record without a cluster label of its own.
const AGGREGATED: &str = "spoke:up:sum";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn query(hub: &local::Daemon, promql: &str) -> Vec<Value> {
    let body: Value = ureq::get(&format!("{}/api/v1/query", hub.url))
        .query("query", promql)
        .header("Authorization", &basic(USER, PASSWORD))
        .call()
        .unwrap_or_else(|e| panic!("query {promql}: {e}\n{}", hub.log()))
        .body_mut()
        .read_json()
        .unwrap();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// An instant query to a Prometheus without credentials.
fn query_plain(url: &str, promql: &str) -> Vec<Value> {
    let body: Value = ureq::get(&format!("{url}/api/v1/query"))
        .query("query", promql)
        .call()
        .unwrap_or_else(|e| panic!("query {promql}: {e}"))
        .body_mut()
        .read_json()
        .unwrap();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A sample of the spoke's own /metrics: `name` for the queue `remote`.
fn queue_metric(spoke: &local::Daemon, name: &str, remote: &str) -> Option<f64> {
    let text = ureq::get(&format!("{}/metrics", spoke.url))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    let queue = format!("remote_name=\"{remote}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&queue))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
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

#[test]
fn a_spoke_remote_writes_into_the_hub_labelled_with_its_cluster() {
    let dir = tempfile::tempdir().unwrap();
    // The hub, standing in for Mimir: the same remote-write protocol, and
    // the real Prometheus web config checking basic auth on every request.
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!("basic_auth_users:\n  {USER}: '{PASSWORD_BCRYPT}'\n"),
    )
    .unwrap();
    let hub_dir = dir.path().join("hub");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let hub = local::prometheus_with(
        &hub_dir,
        &[
            "--web.enable-remote-write-receiver".into(),
            format!("--web.config.file={}", web.display()),
        ],
        Some(&basic(USER, PASSWORD)),
        |_| {
            let path = hub_dir.join("prometheus.yml");
            // Scrapes nothing: every series it holds came from a spoke.
            std::fs::write(&path, "global: {scrape_interval: 1s}\n").unwrap();
            path
        },
    );
    let push = format!("{}/api/v1/write", hub.url);

    // The secret sources `up` would read: files.
    let (user_file, password_file, wrong_file) = (
        dir.path().join("user"),
        dir.path().join("password"),
        dir.path().join("wrong"),
    );
    std::fs::write(&user_file, USER).unwrap();
    std::fs::write(&password_file, PASSWORD).unwrap();
    std::fs::write(&wrong_file, "not-the-password").unwrap();
    let auth = |password: &Path| {
        format!(
            "username: {{file: '{}'}}, password: {{file: '{}'}}",
            user_file.display(),
            password.display()
        )
    };
    let render = |cluster: &str, values: String| {
        render_with("kind", Some(&config(cluster, "kind", Some(&values))), &[])
    };
    let good = render(
        "eu-1",
        format!("{{url: '{push}', tenant: eu-1, {}}}", auth(&password_file)),
    );
    let wrong = render("eu-2", format!("{{url: '{push}', {}}}", auth(&wrong_file)));
    let nowhere = format!("http://127.0.0.1:{}/api/v1/write", local::free_port());
    let broken = render(
        "eu-3",
        format!("{{url: '{nowhere}', {}}}", auth(&password_file)),
    );
    for bundle in [&good, &wrong, &broken] {
        for (path, text) in &bundle.files {
            assert!(!text.contains(PASSWORD), "{path} holds the password");
        }
    }

    let spoke_good = spoke(&good, &dir.path().join("eu-1"));
    let spoke_wrong = spoke(&wrong, &dir.path().join("eu-2"));
    let spoke_broken = spoke(&broken, &dir.path().join("eu-3"));

    // The real Prometheus took the bundle's queue as it stands: tenant header included.
    let config: Value = ureq::get(&format!("{}/api/v1/status/config", spoke_good.url))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let loaded = config["data"]["yaml"].as_str().unwrap();
    assert!(loaded.contains("X-Scope-OrgID: eu-1"), "{loaded}");
    assert!(
        !loaded.contains(PASSWORD),
        "Prometheus shows the password: {loaded}"
    );

    // The hub holds the spoke's `up`, labelled with its cluster and replica.
    let cluster = good.plan.cluster.name.clone().unwrap();
    let up = wait_for("the spoke's up in the hub", Duration::from_secs(45), || {
        let r = query(&hub, &format!("up{{cluster=\"{cluster}\"}}"));
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(up.len(), 1, "{up:?}");
    let labels = &up[0]["metric"];
    assert_eq!(labels["job"], operator::PROMETHEUS, "{labels}");
    assert_eq!(labels["prometheus_replica"], operator::pod(0), "{labels}");
    assert_eq!(
        labels["prometheus"],
        format!("{}/{}", good.plan.namespace, operator::PROMETHEUS),
        "{labels}"
    );
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    // The record that aggregated `cluster` away gets it back from the
    // bundle's external labels, and nothing else but the operator's two.
    let record = wait_for(
        "the spoke's record in the hub",
        Duration::from_secs(30),
        || {
            let r = query(&hub, AGGREGATED);
            (!r.is_empty()).then_some(r)
        },
    );
    let mut external = operator::external_labels(
        &prometheus_spec(&good),
        &good.plan.namespace,
        &operator::pod(0),
    );
    external.insert("__name__".into(), json!(AGGREGATED));
    assert_eq!(record[0]["metric"], Value::Object(external), "{record:?}");
    assert_eq!(record[0]["metric"]["cluster"], cluster.as_str());
    // Every series the hub holds knows its cluster.
    let unlabelled = query(&hub, "count({__name__=~\".+\", cluster=\"\"})");
    assert!(
        unlabelled.is_empty(),
        "series without cluster: {unlabelled:?}"
    );
    assert!(
        queue_metric(
            &spoke_good,
            "prometheus_remote_storage_samples_total",
            "central"
        )
        .is_some_and(|n| n > 0.0)
    );

    // A wrong password: the hub refuses it (401, not retried), the spoke
    // counts the failed samples, and nothing of that cluster arrives.
    let failed = wait_for("failed samples on eu-2", Duration::from_secs(45), || {
        queue_metric(
            &spoke_wrong,
            "prometheus_remote_storage_samples_failed_total",
            "central",
        )
        .filter(|n| *n > 0.0)
    });
    assert!(failed > 0.0);
    assert!(query(&hub, "up{cluster=\"eu-2\"}").is_empty());
    assert!(spoke_wrong.log().contains("401"), "{}", spoke_wrong.log());

    // A URL nothing answers: every send is retried (a connection error is
    // recoverable) and the queue has sent nothing, while samples come in.
    wait_for("retries on eu-3", Duration::from_secs(45), || {
        queue_metric(
            &spoke_broken,
            "prometheus_remote_storage_samples_retried_total",
            "central",
        )
        .filter(|n| *n > 0.0)
    });
    assert_eq!(
        queue_metric(
            &spoke_broken,
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            "central"
        ),
        Some(0.0)
    );
    assert!(
        queue_metric(
            &spoke_broken,
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "central"
        )
        .or_else(|| queue_metric_any(
            &spoke_broken,
            "prometheus_remote_storage_highest_timestamp_in_seconds"
        ))
        .is_some_and(|t| t > 0.0)
    );
    assert!(query(&hub, "up{cluster=\"eu-3\"}").is_empty());

    // The fleet verify: one Fleet config naming the three spokes (each with
    // its remote-write settings and, as its endpoint, its Prometheus), one
    // `telltale verify` over all of them. verify's remote-write check reads
    // the same counters through each spoke's query API (each scrapes
    // itself, as in the cluster) and names the queue, the URL and what the
    // counters say; the broken spokes fail by name, the good one passes.
    let member = |name: &str, values: String, spoke: &local::Daemon| {
        format!(
            "    - name: {name}\n      context: spoke-{name}\n      endpoints: {{prometheus: '{}'}}\n      plugins:\n        remote-write:\n          values: {values}\n",
            spoke.url
        )
    };
    let fleet = format!(
        "apiVersion: telltale.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: spokes}}\nspec:\n  defaults: {{profile: kind}}\n  clusters:\n{}{}{}",
        member(
            "eu-1",
            format!("{{url: '{push}', tenant: eu-1, {}}}", auth(&password_file)),
            &spoke_good
        ),
        member(
            "eu-2",
            format!("{{url: '{push}', {}}}", auth(&wrong_file)),
            &spoke_wrong
        ),
        member(
            "eu-3",
            format!("{{url: '{nowhere}', {}}}", auth(&password_file)),
            &spoke_broken
        ),
    );
    std::fs::write(dir.path().join("fleet.yaml"), &fleet).unwrap();
    assert!(
        good.plan
            .phases
            .iter()
            .flat_map(|p| &p.steps)
            .any(|s| matches!(
            s, Step::Verify { checks } if checks.iter().any(|c| c.name() == "remote-write"))),
        "plan.json's verify step lists remote-write"
    );
    let planned = telltale(dir.path())
        .args([
            "plan",
            "-f",
            "fleet.yaml",
            "--out",
            "fleet-out",
            "--no-tool-check",
        ])
        .output()
        .unwrap();
    assert!(
        planned.status.success(),
        "{}",
        String::from_utf8_lossy(&planned.stderr)
    );
    let verified = telltale(dir.path())
        .args(["verify", "-f", "fleet.yaml", "--bundle", "fleet-out"])
        .args(["--checks", "remote-write", "--timeout", "15s", "-o", "json"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&verified.stdout).to_string(),
        String::from_utf8_lossy(&verified.stderr).to_string(),
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(PASSWORD),
            "the password in the output: {text}"
        );
    }
    assert_eq!(verified.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("did not succeed on 2 of 3 clusters: eu-2, eu-3"),
        "{stderr}"
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["command"], "verify");
    let run_of = |name: &str| {
        doc["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cluster"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no report for {name}: {doc}"))
    };
    let (good_run, wrong_run, broken_run) = (run_of("eu-1"), run_of("eu-2"), run_of("eu-3"));
    assert_eq!(good_run["exit_code"], 0, "{good_run}");
    assert_eq!(good_run["summary"], "1 pass, 0 fail, 0 skip", "{good_run}");
    for bad in [&wrong_run, &broken_run] {
        assert_eq!(bad["exit_code"], 1, "{bad}");
        assert_eq!(
            bad["summary"], "0 pass, 1 fail, 0 skip (remote-write)",
            "{bad}"
        );
    }
    let check = |run: &Value| run["report"]["checks"][0].clone();
    let (good_check, wrong_check, broken_check) =
        (check(&good_run), check(&wrong_run), check(&broken_run));
    assert_eq!(good_check["status"], "pass", "{good_check}");
    assert_eq!(good_check["summary"], "1 remote-write queue sending");
    let evidence = good_check["evidence"].to_string();
    assert!(evidence.contains(&format!("→ {push}")), "{evidence}");
    assert_eq!(wrong_check["status"], "fail", "{wrong_check}");
    let summary = wrong_check["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("{push} refused")), "{summary}");
    assert_eq!(broken_check["status"], "fail", "{broken_check}");
    let summary = broken_check["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("has sent nothing to {nowhere}")),
        "{summary}"
    );
    for check in [&good_check, &wrong_check, &broken_check] {
        assert!(!check.to_string().contains(PASSWORD), "{check}");
    }
}

/// A sample of a series without labels (Prometheus' storage-wide gauges).
fn queue_metric_any(spoke: &local::Daemon, name: &str) -> Option<f64> {
    let text = ureq::get(&format!("{}/metrics", spoke.url))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

// ---------------------------------------------------------------------------
// The fleet config: one file, several clusters.

/// A fleet of three: two on `kind` from the defaults (one overriding the
/// retention and the tenant), one on `homelab`.
const FLEET: &str = r#"apiVersion: telltale.dev/v1alpha1
kind: Fleet
metadata: {name: shop}
spec:
  defaults:
    profile: kind
    plugins:
      remote-write: {values: {url: "https://mimir.example.com/api/v1/push", tenant: shop}}
    set: {kube-prometheus-stack: {prometheus.prometheusSpec.retention: 10d}}
  clusters:
    - {name: eu-1, context: kind-eu-1}
    - name: us-1
      context: kind-us-1
      plugins:
        remote-write: {values: {tenant: us-1}}
      set: {kube-prometheus-stack: {prometheus.prometheusSpec.retention: 2d}}
    - {name: ap-1, context: kind-ap-1, profile: homelab}
"#;

fn plan_fleet(dir: &Path, fleet: &str, out: &str, extra: &[&str]) -> std::process::Output {
    std::fs::write(dir.join("fleet.yaml"), fleet).unwrap();
    telltale(dir)
        .args(["plan", "-f", "fleet.yaml", "--out", out, "--no-tool-check"])
        .args(extra)
        .output()
        .unwrap()
}

fn read_bundle_dir(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    read_tree(dir)
}

#[test]
fn a_fleet_plan_writes_one_bundle_per_cluster_each_as_it_renders_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = plan_fleet(dir.path(), FLEET, "out", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = dir.path().join("out");
    let tree = read_tree(&root);
    let index: Value = serde_json::from_slice(&tree["fleet.json"]).unwrap();
    assert_eq!(index["kind"], "FleetPlan");
    let names: Vec<&str> = index["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eu-1", "us-1", "ap-1"]);
    // fleet.json lists every other file with its digest, nothing more.
    let listed: Vec<&String> = index["files"].as_object().unwrap().keys().collect();
    let written: Vec<&String> = tree.keys().filter(|p| *p != "fleet.json").collect();
    assert_eq!(listed, written);
    for (path, digest) in index["files"].as_object().unwrap() {
        use sha2::Digest;
        let got: String = sha2::Sha256::digest(&tree[path])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, &got, "{path}");
    }

    // Each cluster's directory is byte for byte the bundle a Config with the
    // same settings renders (eu-1 and ap-1 take the defaults as they are).
    let single = |name: &str, profile: &str| {
        format!(
            "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {{name: {name}}}\nspec:\n  profile: {profile}\n  cluster: {{context: kind-{name}, name: {name}}}\n  plugins:\n    remote-write: {{values: {{url: \"https://mimir.example.com/api/v1/push\", tenant: shop}}}}\n  set: {{kube-prometheus-stack: {{prometheus.prometheusSpec.retention: 10d}}}}\n"
        )
    };
    for (name, profile) in [("eu-1", "kind"), ("ap-1", "homelab")] {
        std::fs::write(
            dir.path().join(format!("{name}.yaml")),
            single(name, profile),
        )
        .unwrap();
        let alone = telltale(dir.path())
            .args(["plan", "-f", &format!("{name}.yaml"), "--out"])
            .arg(format!("alone-{name}"))
            .arg("--no-tool-check")
            .output()
            .unwrap();
        assert!(
            alone.status.success(),
            "{}",
            String::from_utf8_lossy(&alone.stderr)
        );
        assert_eq!(
            read_bundle_dir(&dir.path().join(format!("alone-{name}"))),
            read_bundle_dir(&root.join(name)),
            "{name}: the fleet's bundle differs from the cluster rendered alone"
        );
    }
    // And `--cluster NAME` renders that one cluster into the same bytes.
    let one = plan_fleet(dir.path(), FLEET, "one", &["--cluster", "us-1"]);
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let one_tree = read_tree(&dir.path().join("one"));
    assert!(
        one_tree
            .keys()
            .all(|p| p == "fleet.json" || p.starts_with("us-1/"))
    );
    assert_eq!(
        read_tree(&dir.path().join("one/us-1")),
        read_tree(&root.join("us-1"))
    );

    // The layers: profile < defaults < cluster < --set.
    let bundle_of = |tree: &std::collections::BTreeMap<String, Vec<u8>>, cluster: &str| {
        let values: Value = serde_saphyr::from_str(
            std::str::from_utf8(
                &tree[&format!("{cluster}/helm/kube-prometheus-stack/values.yaml")],
            )
            .unwrap(),
        )
        .unwrap();
        let spec = values["prometheus"]["prometheusSpec"].clone();
        (
            spec["retention"].as_str().unwrap().to_string(),
            spec["remoteWrite"][0]["headers"]["X-Scope-OrgID"].clone(),
            spec["externalLabels"]["cluster"].clone(),
        )
    };
    assert_eq!(
        bundle_of(&tree, "eu-1"),
        ("10d".into(), json!("shop"), json!("eu-1"))
    );
    assert_eq!(
        bundle_of(&tree, "us-1"),
        ("2d".into(), json!("us-1"), json!("us-1"))
    );
    assert_eq!(
        bundle_of(&tree, "ap-1"),
        ("10d".into(), json!("shop"), json!("ap-1"))
    );
    let set = plan_fleet(
        dir.path(),
        FLEET,
        "set",
        &[
            "--set",
            "kube-prometheus-stack.prometheus.prometheusSpec.retention=1d",
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let set_tree = read_tree(&dir.path().join("set"));
    for cluster in ["eu-1", "us-1", "ap-1"] {
        assert_eq!(bundle_of(&set_tree, cluster).0, "1d", "{cluster}");
    }

    // Deterministic: again, the same bytes; -o json prints fleet.json.
    let again = plan_fleet(dir.path(), FLEET, "out", &["-o", "json"]);
    assert!(again.status.success());
    assert_eq!(read_tree(&root), tree);
    assert_eq!(
        serde_json::from_slice::<Value>(&again.stdout).unwrap(),
        index
    );
    // A file telltale did not write inside a cluster's directory: refused,
    // nothing replaced.
    std::fs::write(root.join("eu-1/notes.txt"), "mine").unwrap();
    let refused = plan_fleet(dir.path(), FLEET, "out", &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("eu-1/notes.txt"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("eu-1/notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_bad_fleet_is_refused_where_it_is_wrong_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // (edit, the location and what the message says)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "- {name: ap-1, context: kind-ap-1, profile: homelab}",
            "- {name: us-1, context: kind-ap-1, profile: homelab}",
            "fleet.yaml:17:14",
            "cluster `us-1` is named twice (spec.clusters.1 and spec.clusters.2)",
        ),
        (
            "- {name: ap-1, context: kind-ap-1, profile: homelab}",
            "- {name: ap-1, context: kind-eu-1, profile: homelab}",
            "fleet.yaml:17:29",
            "context `kind-eu-1` is given to two clusters",
        ),
        (
            "- {name: eu-1, context: kind-eu-1}",
            "- {name: eu-1, contxt: kind-eu-1}",
            "fleet.yaml:11:20",
            "unknown field `contxt`",
        ),
        (
            "remote-write: {values: {tenant: us-1}}",
            "remote-wrte: {values: {tenant: us-1}}",
            "fleet.yaml:15:9",
            "spec.clusters.1.plugins.remote-wrte: unknown plugin `remote-wrte`",
        ),
        (
            "profile: homelab}",
            "profile: homelb}",
            "fleet.yaml:17:49",
            "spec.clusters.2.profile: unknown profile `homelb`",
        ),
        (
            "retention: 2d}",
            "retention: two-days}",
            "fleet.yaml:16:74",
            "spec.clusters.1.set.kube-prometheus-stack.prometheus.prometheusSpec.retention: expected a Prometheus duration",
        ),
        (
            "- {name: eu-1, context: kind-eu-1}",
            "- {name: EU_1, context: kind-eu-1}",
            "fleet.yaml:11:14",
            "spec.clusters.0.name: expected a DNS-1123 label",
        ),
    ];
    for (from, to, at, says) in cases {
        assert!(FLEET.contains(from), "{from}");
        let out = plan_fleet(dir.path(), &FLEET.replacen(from, to, 1), "out", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        assert!(err.contains(at), "{to}: expected {at}: {err}");
        assert!(err.contains(says), "{to}: expected {says}: {err}");
        assert!(
            !dir.path().join("out").exists(),
            "{to}: something was written"
        );
    }
    // The hints: a did-you-mean on keys, plugins, profiles and --cluster.
    let out = plan_fleet(
        dir.path(),
        &FLEET.replacen("context: kind-eu-1}", "contxt: kind-eu-1}", 1),
        "out",
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `context`?"));
    let out = plan_fleet(dir.path(), FLEET, "out", &["--cluster", "us-2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("fleet `shop` has no cluster `us-2`") && err.contains("did you mean `us-1`?"),
        "{err}"
    );
    // A path that would put every cluster in one directory.
    let out = plan_fleet(
        dir.path(),
        &FLEET.replacen(
            "  clusters:\n",
            "  gitops: {repo: ../infra, path: clusters/all}\n  clusters:\n",
            1,
        ),
        "out",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("spec.gitops.path") && err.contains("{cluster}"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists());
    // Commands that act on one cluster ask which one.
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let out = telltale(dir.path())
        .args(["down", "-f", "fleet.yaml", "-y"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("this is a Fleet of 3 clusters") && err.contains("--cluster"),
        "{err}"
    );
    // --cluster on a Config is a mistake, said as one.
    std::fs::write(dir.path().join("one.yaml"), config("eu-1", "kind", None)).unwrap();
    let out = telltale(dir.path())
        .args(["plan", "-f", "one.yaml", "--cluster", "eu-1", "--out", "x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a Config, not a Fleet"), "{err}");
}

/// `up` and `status` of a fleet against two fake API servers (one per
/// cluster, testing/src/fake_api.rs) and fake-helm keeping each
/// cluster's releases apart: each cluster is acted on through its own
/// context, one failing never stops or hides the other, and the exit code is
/// the worst.
mod installs {
    use std::path::{Path, PathBuf};

    use serde_json::{Value, json};

    use crate::common::fake_api::{FAKE_TOKEN, FAKE_USER, FakeApi};

    fn cluster() -> FakeApi {
        let api = FakeApi::start();
        api.insert(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}}}),
        );
        api.insert(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path"}));
        api
    }

    /// One kubeconfig with a context per fake cluster (the first current).
    fn kubeconfig(path: &Path, clusters: &[(&str, &FakeApi)]) -> PathBuf {
        let q = |s: &str| serde_json::to_string(s).unwrap();
        let mut text = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for (ctx, api) in clusters {
            text += &format!("- name: {ctx}\n  cluster:\n    server: {}\n", q(&api.url));
        }
        text += &format!(
            "users:\n- name: {}\n  user:\n    token: {}\ncontexts:\n",
            q(FAKE_USER),
            q(FAKE_TOKEN)
        );
        for (ctx, _) in clusters {
            text += &format!(
                "- name: {ctx}\n  context:\n    cluster: {ctx}\n    user: {}\n",
                q(FAKE_USER)
            );
        }
        text += &format!("current-context: {}\npreferences: {{}}\n", clusters[0].0);
        std::fs::write(path, text).unwrap();
        path.to_path_buf()
    }

    const FLEET: &str = "apiVersion: telltale.dev/v1alpha1\nkind: Fleet\nmetadata: {name: pair}\nspec:\n  defaults: {profile: kind}\n  clusters:\n    - {name: a, context: ctx-a}\n    - {name: b, context: ctx-b}\n";

    fn run(dir: &Path, kubeconfig: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
        let out = crate::common::telltale(dir)
            .env("TELLTALE_HELM", crate::common::fake_helm())
            .env("FAKE_HELM_STATE", dir.join("helm"))
            .env("FAKE_HELM_PER_CONTEXT", "1")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["-f", "fleet.yaml"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), doc, stderr)
    }

    fn member<'a>(doc: &'a Value, name: &str) -> &'a Value {
        doc["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cluster"] == name)
            .unwrap_or_else(|| panic!("no report for {name}: {doc}"))
    }

    #[test]
    fn a_fleet_is_installed_and_read_per_cluster_through_its_own_context() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (cluster(), cluster());
        let kc = kubeconfig(
            &dir.path().join("kubeconfig"),
            &[("ctx-a", &a), ("ctx-b", &b)],
        );
        std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();

        // A dry run: each cluster dry-runs on its own API server, nothing is written.
        let (code, doc, err) = run(
            dir.path(),
            &kc,
            &["up", "--dry-run", "--skip-verify", "-y", "-o", "json"],
        );
        assert_eq!(code, Some(0), "{err}\n{doc}");
        assert_eq!(doc["ok"], true);
        assert_eq!(doc["command"], "up");
        for (name, api) in [("a", &a), ("b", &b)] {
            let m = member(&doc, name);
            assert_eq!(m["exit_code"], 0, "{m}");
            assert_eq!(m["context"], format!("ctx-{name}"));
            assert_eq!(m["report"]["context"], format!("ctx-{name}"), "{m}");
            assert_eq!(m["report"]["server"], api.url, "{m}");
            assert!(
                m["report"]["phases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|p| p["outcome"] == "dry-run"),
                "{m}"
            );
            assert!(api.writes().is_empty(), "{name}: a dry run wrote");
            assert!(
                api.requests()
                    .iter()
                    .any(|r| r.query.contains("dryRun=All")),
                "{name}"
            );
        }
        // The children's lines come through, each with its cluster.
        assert!(err.lines().any(|l| l.starts_with("a | ")), "{err}");
        assert!(err.lines().any(|l| l.starts_with("b | ")), "{err}");

        // Installed, one at a time; then status: both current, no drift.
        let (code, doc, err) = run(
            dir.path(),
            &kc,
            &["up", "--skip-verify", "-y", "--parallel", "1", "-o", "json"],
        );
        assert_eq!(code, Some(0), "{err}\n{doc}");
        for api in [&a, &b] {
            assert!(
                api.get("v1", "ConfigMap", Some("monitoring"), "telltale-journal")
                    .is_some()
            );
        }
        let (code, doc, err) = run(dir.path(), &kc, &["status", "-o", "json"]);
        assert_eq!(code, Some(0), "{err}\n{doc}");
        for name in ["a", "b"] {
            let m = member(&doc, name);
            assert_eq!(m["report"]["installed"], true, "{m}");
            assert_eq!(m["report"]["drift"], json!([]), "{m}");
            assert_eq!(m["summary"], "up to date, no drift", "{m}");
        }

        // b drifts: status fails on b (exit 1) and still shows a.
        b.remove(
            "v1",
            "ConfigMap",
            Some("monitoring"),
            "telltale-dashboard-telltale-logs-overview",
        );
        let (code, doc, err) = run(dir.path(), &kc, &["status", "-o", "json"]);
        assert_eq!(code, Some(1), "{err}\n{doc}");
        assert_eq!(doc["ok"], false);
        assert_eq!(member(&doc, "a")["exit_code"], 0);
        assert_eq!(member(&doc, "b")["exit_code"], 1);
        assert_eq!(member(&doc, "b")["summary"], "up to date, 1 drifted");
        // The same as a table, naming the cluster that failed.
        let (code, _, _) = run(dir.path(), &kc, &["status"]);
        assert_eq!(code, Some(1));
        let out = crate::common::telltale(dir.path())
            .env("TELLTALE_HELM", crate::common::fake_helm())
            .env("FAKE_HELM_STATE", dir.path().join("helm"))
            .env("FAKE_HELM_PER_CONTEXT", "1")
            .arg("--kubeconfig")
            .arg(&kc)
            .args(["-f", "fleet.yaml", "status", "-q"])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.contains("CLUSTER") && table.contains("ctx-a") && table.contains("ctx-b"),
            "{table}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("did not succeed on 1 of 2 clusters: b"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // a's API server goes away: a fails (environment, exit 3), b is
        // still installed and reported; the worst code wins.
        drop(a);
        let (code, doc, err) = run(
            dir.path(),
            &kc,
            &["up", "--skip-verify", "-y", "-o", "json"],
        );
        assert_eq!(code, Some(3), "{err}\n{doc}");
        assert_eq!(member(&doc, "a")["exit_code"], 3, "{doc}");
        let b_run = member(&doc, "b");
        assert_eq!(b_run["exit_code"], 0, "{b_run}");
        assert!(
            b_run["report"]["phases"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["phase"] == "dashboards" && p["outcome"] == "repaired"),
            "{b_run}"
        );
        assert!(
            member(&doc, "a")["summary"].as_str().unwrap().len() > 10,
            "{doc}"
        );

        // --cluster picks (b alone: repaired, so no drift now, whatever a is);
        // a flag that names one cluster is refused for a fleet.
        let (code, doc, err) = run(dir.path(), &kc, &["status", "--cluster", "b", "-o", "json"]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(doc["clusters"].as_array().unwrap().len(), 1);
        assert_eq!(member(&doc, "b")["summary"], "up to date, no drift");
        let (code, _, err) = run(dir.path(), &kc, &["up", "--context", "ctx-b", "-y"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("--context names one cluster"), "{err}");
    }
}

// ---------------------------------------------------------------------------
// The fleet verify from the hub: a local stack (real Prometheus 3 with its
// remote-write receiver, standing in for Mimir; real Alertmanager; the fake
// Loki) is the hub, three real Prometheus 3 spokes remote-write into it.

mod hub {
    use std::path::Path;
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::{config, query_plain, spoke, wait_for};
    use crate::common::fake_api::FakeApi;
    use crate::common::stack::LocalStack;
    use crate::common::{local, render_with, telltale};

    /// The hub's alerting: every integration, delivered to the stack's sink.
    const HUB_ALERTING: &str = "      alerting:\n        receivers:\n          slack: {channel: \"#ops-alerts\", webhookUrl: {env: SLACK_WEBHOOK_URL}}\n          pagerduty: {routingKey: {env: PAGERDUTY_ROUTING_KEY}}\n          sms: {to: [\"+15550100\"], twilio: {accountSid: ACxxxx, from: \"+15550199\", authToken: {env: TWILIO_AUTH_TOKEN}}}\n";

    /// The fleet: the hub (its Prometheus as its own endpoint, its
    /// Alertmanager and Loki as the fleet's central endpoints) and a spoke
    /// per `(name, push URL, its Prometheus)`.
    fn fleet(hub: Option<&LocalStack>, spokes: &[(&str, &str, Option<&str>)]) -> String {
        let (hub_endpoints, own) = match hub {
            Some(h) => (
                format!(
                    "    endpoints: {{alertmanager: '{}', loki: '{}'}}\n",
                    h.url("alertmanager"),
                    h.url("loki")
                ),
                format!(
                    "      endpoints: {{prometheus: '{}'}}\n",
                    h.url("prometheus")
                ),
            ),
            None => (String::new(), String::new()),
        };
        let mut text = format!(
            "apiVersion: telltale.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: hubbed}}\nspec:\n  defaults: {{profile: kind}}\n  hub:\n    cluster: hub\n{hub_endpoints}  clusters:\n    - name: hub\n      context: ctx-hub\n{own}{HUB_ALERTING}"
        );
        for (name, push, prometheus) in spokes {
            text += &format!(
                "    - name: {name}\n      context: ctx-{name}\n      plugins: {{remote-write: {{values: {{url: '{push}'}}}}}}\n"
            );
            if let Some(p) = prometheus {
                text += &format!("      endpoints: {{prometheus: '{p}'}}\n");
            }
        }
        text
    }

    fn plan(dir: &Path, fleet: &str, out: &str) -> std::process::Output {
        std::fs::write(dir.join("fleet.yaml"), fleet).unwrap();
        telltale(dir)
            .args(["plan", "-f", "fleet.yaml", "--out", out, "--no-tool-check"])
            .output()
            .unwrap()
    }

    fn verify(dir: &Path, extra: &[&str]) -> (i32, Value, String) {
        let out = telltale(dir)
            .args(["verify", "-f", "fleet.yaml", "--bundle", "fleet-out"])
            .args(["--checks", "remote-write", "--timeout", "20s", "-o", "json"])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let doc = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("one JSON document ({e}): {stderr}"));
        (out.status.code().unwrap_or(-1), doc, stderr)
    }

    fn hub_check<'a>(doc: &'a Value, id: &str) -> &'a Value {
        doc["hub"]["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("no hub report: {doc:#}"))
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no hub check {id}: {doc:#}"))
    }

    #[test]
    fn the_fleet_verify_proves_from_the_hub_what_each_spoke_sends_and_names_the_one_that_does_not()
    {
        let dir = tempfile::tempdir().unwrap();
        let dead = format!("http://127.0.0.1:{}/api/v1/write", local::free_port());
        // The hub's bundle is the fleet's own: planned once to start the hub.
        let first = plan(
            dir.path(),
            &fleet(None, &[("eu-1", &dead, None)]),
            "hub-plan",
        );
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let hub = LocalStack::start(
            &dir.path().join("hub-plan").join("hub"),
            &["--remote-write-receiver".as_ref()],
        );
        let push = format!("{}/api/v1/write", hub.url("prometheus"));

        // eu-1 and eu-2 write to the hub; eu-3's URL is broken.
        let spokes: Vec<(&str, String, local::Daemon)> =
            [("eu-1", &push), ("eu-2", &push), ("eu-3", &dead)]
                .into_iter()
                .map(|(name, url)| {
                    let values = format!("{{url: '{url}'}}");
                    let bundle =
                        render_with("kind", Some(&config(name, "kind", Some(&values))), &[]);
                    let daemon = spoke(&bundle, &dir.path().join(name));
                    (name, url.clone(), daemon)
                })
                .collect();
        for name in ["eu-1", "eu-2"] {
            wait_for(
                &format!("{name}'s up in the hub"),
                Duration::from_secs(45),
                || {
                    let r =
                        query_plain(hub.url("prometheus"), &format!("up{{cluster=\"{name}\"}}"));
                    (!r.is_empty()).then_some(())
                },
            );
        }
        let members: Vec<(&str, &str, Option<&str>)> = spokes
            .iter()
            .map(|(n, u, d)| (*n, u.as_str(), Some(d.url.as_str())))
            .collect();
        let planned = plan(dir.path(), &fleet(Some(&hub), &members), "fleet-out");
        assert!(
            planned.status.success(),
            "{}",
            String::from_utf8_lossy(&planned.stderr)
        );

        // eu-1's cluster answers (a fake API server, named as one): its
        // marker is written by a pod there, and what its collector would do
        // with the pod's line, push it to the hub labelled with its
        // cluster, a "kubelet" thread does here.
        let api = FakeApi::start();
        api.insert(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}}),
        );
        let kubeconfig = api.kubeconfig(&dir.path().join("kubeconfig"), "ctx-eu-1");
        let loki = hub.url("loki").to_string();
        let kubelet = || {
            let until = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < until {
                let pods = api.list("v1", "Pod");
                if let Some(pod) = pods.iter().find(|p| {
                    p["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("telltale-log-marker-"))
                }) {
                    let script = pod["spec"]["containers"][0]["command"][2].as_str().unwrap();
                    let line = script
                        .trim_start_matches("echo ")
                        .split(';')
                        .next()
                        .unwrap();
                    let ts = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos()
                        .to_string();
                    ureq::post(&format!("{loki}/loki/api/v1/push"))
                        .send_json(json!({"streams": [{"stream": {"cluster": "eu-1", "namespace": pod["metadata"]["namespace"], "pod": pod["metadata"]["name"]}, "values": [[ts, line]]}]}))
                        .unwrap();
                    return pod["metadata"]["name"].as_str().unwrap().to_string();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("the hub's verify never created eu-1's marker pod");
        };
        let (pod, (code, doc, stderr)) = std::thread::scope(|s| {
            let kubelet = s.spawn(kubelet);
            let verified = verify(dir.path(), &["--kubeconfig", kubeconfig.to_str().unwrap()]);
            (kubelet.join().unwrap(), verified)
        });
        assert_eq!(code, 1, "{doc:#}\n{stderr}");
        let logs = hub_check(&doc, "logs")["evidence"].to_string();
        assert!(
            logs.contains(&format!("written by pod monitoring/{pod} in eu-1")),
            "{logs}"
        );
        for name in ["eu-2", "eu-3"] {
            assert!(
                logs.contains(&format!("{name}: marker telltale-fleet-marker-"))
                    && logs.contains("pushed to the central Loki from here"),
                "{logs}"
            );
        }
        assert!(
            !api.list("v1", "Pod")
                .iter()
                .any(|p| p["metadata"]["name"] == pod.as_str()),
            "the marker pod is removed"
        );
        // The hub's report names eu-3, and only eu-3, for its series.
        assert_eq!(doc["hub"]["cluster"], "hub", "{doc:#}");
        assert_eq!(doc["hub"]["exit_code"], 1, "{doc:#}");
        assert_eq!(
            doc["hub"]["spokes"],
            serde_json::json!(["eu-1", "eu-2", "eu-3"])
        );
        let series = hub_check(&doc, "series");
        assert_eq!(series["status"], "fail", "{series:#}");
        assert_eq!(series["spokes"], serde_json::json!(["eu-3"]), "{series:#}");
        let summary = series["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("eu-3: no `up` series with cluster=\"eu-3\""),
            "{summary}"
        );
        let evidence = series["evidence"].to_string();
        for name in ["eu-1", "eu-2"] {
            assert!(
                evidence.contains(&format!("labelled cluster=\\\"{name}\\\"")),
                "{evidence}"
            );
        }
        // Logs, fleet-wide rules and the synthetic alerts hold for every spoke.
        for id in ["logs", "rules", "alerts"] {
            let c = hub_check(&doc, id);
            assert_eq!(c["status"], "pass", "{c:#}");
            assert_eq!(c["spokes"], serde_json::json!([]), "{c:#}");
        }
        let alerts = hub_check(&doc, "alerts")["evidence"].to_string();
        for name in ["eu-1", "eu-2", "eu-3"] {
            assert!(alerts.contains(&format!("{name}: ")), "{alerts}");
            assert!(
                hub_check(&doc, "logs")["evidence"]
                    .to_string()
                    .contains(&format!(
                        "{name}: marker found by {{cluster=\\\"{name}\\\"}}"
                    )),
                "{doc:#}"
            );
        }
        // The central Alertmanager delivered each spoke's alert with its cluster.
        let received: Vec<Value> = ureq::get(&format!("{}/received", hub.url("sink")))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        for name in ["eu-1", "eu-2", "eu-3"] {
            assert!(
                received.iter().any(|n| {
                    let n = n.to_string();
                    n.contains("telltale_synthetic") && n.contains(&format!("-{name}"))
                }),
                "no synthetic notification of {name}: {received:#?}"
            );
        }
        // The members' own reports: eu-3's remote-write fails there too.
        let member = |name: &str| {
            doc["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["cluster"] == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(member("eu-3")["exit_code"], 1, "{doc:#}");
        assert_eq!(member("eu-1")["exit_code"], 0, "{doc:#}");
        assert!(
            stderr.contains(
                "did not succeed on 1 of 4 clusters: eu-3; from the hub hub, failed: series: eu-3"
            ),
            "{stderr}"
        );

        // The table has the hub's row.
        let out = telltale(dir.path())
            .args(["verify", "-f", "fleet.yaml", "--bundle", "fleet-out", "-q"])
            .args([
                "--checks",
                "remote-write",
                "--timeout",
                "10s",
                "--hub-checks",
                "series",
            ])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{table}");
        assert!(
            table.contains("hub (hub)") && table.contains("(series: eu-3)"),
            "{table}"
        );

        // Without eu-3, the fleet verifies: exit 0, every hub check passes.
        let (code, doc, stderr) = verify(dir.path(), &["--cluster", "eu-1", "--cluster", "eu-2"]);
        assert_eq!(code, 0, "{doc:#}\n{stderr}");
        assert_eq!(doc["hub"]["spokes"], serde_json::json!(["eu-1", "eu-2"]));
        for id in ["series", "logs", "rules", "alerts"] {
            assert_eq!(hub_check(&doc, id)["status"], "pass", "{doc:#}");
        }
    }

    #[test]
    fn a_hub_that_is_not_a_cluster_of_the_fleet_is_refused_where_it_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = fleet(
            None,
            &[("eu-1", "https://mimir.example.com/api/v1/push", None)],
        )
        .replace("cluster: hub\n", "cluster: hubb\n");
        let out = plan(dir.path(), &text, "out");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("fleet.yaml:7:"), "{stderr}");
        assert!(stderr.contains("spec.hub.cluster"), "{stderr}");
        assert!(stderr.contains("did you mean `hub`?"), "{stderr}");
        assert!(!dir.path().join("out").exists());
    }
}
