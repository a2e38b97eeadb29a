//! Turns a bundle's Alertmanager routing and expected scrape jobs into
//! configuration for daemons on 127.0.0.1. Pure: it computes the documents
//! and the secret files to write, and the caller writes them.
//!
//! Alertmanager keeps the bundle's routes, inhibit rules and time intervals
//! untouched; only the places a notification leaves the process (URLs,
//! smarthosts, secret files) are pointed at the local sink, so what the
//! sink receives is what the bundle's routing would have sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A 32-character routing key: PagerDuty's length, never a real one.
pub const DUMMY_ROUTING_KEY: &str = "telltalelocalstackdummyroutingk0";
const DUMMY_SECRET: &str = "telltale-local-stack-dummy-secret";

/// Where the in-process servers listen.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `http://127.0.0.1:P` of the notification sink.
    pub sink: String,
    /// `127.0.0.1:P` of the SMTP sink.
    pub smtp: String,
}

/// The rewritten Alertmanager configuration and the files it refers to.
#[derive(Debug)]
pub struct Alertmanager {
    pub config: Value,
    /// Absolute path → contents.
    pub secrets: BTreeMap<PathBuf, String>,
    /// Integrations the sink does not stand in for; their notifications
    /// will go where the bundle says (and most likely fail).
    pub warnings: Vec<String>,
}

/// Rewrites a bundle's `alertmanager.yaml` (as JSON) for the local sink.
/// Secret files are named under `secrets_dir`.
pub fn alertmanager(mut config: Value, secrets_dir: &Path, endpoints: &Endpoints) -> Alertmanager {
    let mut out = Secrets {
        dir: secrets_dir.to_path_buf(),
        files: BTreeMap::new(),
    };
    let mut warnings = Vec::new();

    if let Some(global) = config.get_mut("global").and_then(Value::as_object_mut) {
        rewrite_global(global, &mut out, endpoints);
    }
    if let Some(receivers) = config.get_mut("receivers").and_then(Value::as_array_mut) {
        for receiver in receivers {
            let Some(receiver) = receiver.as_object_mut() else {
                continue;
            };
            let name = receiver
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("unnamed")
                .to_string();
            for (key, configs) in receiver.iter_mut() {
                let Some(integration) = key.strip_suffix("_configs") else {
                    continue;
                };
                let Some(configs) = configs.as_array_mut() else {
                    continue;
                };
                for (index, config) in configs.iter_mut().enumerate() {
                    let Some(config) = config.as_object_mut() else {
                        continue;
                    };
                    let prefix = format!("{name}-{integration}-{index}");
                    let known = rewrite_integration(
                        integration,
                        &name,
                        config,
                        &prefix,
                        &mut out,
                        endpoints,
                    );
                    if !known {
                        warnings.push(format!(
                            "receiver {name}: {key} are not stood in for by the local sink; \
                             their notifications go where the bundle says"
                        ));
                    }
                }
            }
        }
    }
    Alertmanager {
        config,
        secrets: out.files,
        warnings,
    }
}

/// Collects the secret files the rewritten configuration points at.
struct Secrets {
    dir: PathBuf,
    files: BTreeMap<PathBuf, String>,
}

impl Secrets {
    /// Records a file and returns its path as a YAML value.
    fn file(&mut self, name: &str, contents: impl Into<String>) -> Value {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.dir.join(name);
        let value = Value::String(path.to_string_lossy().into_owned());
        self.files.insert(path, contents.into());
        value
    }
}

fn rewrite_global(global: &mut Map<String, Value>, out: &mut Secrets, endpoints: &Endpoints) {
    if global.remove("slack_api_url").is_some() || global.contains_key("slack_api_url_file") {
        let url = format!("{}/slack/global", endpoints.sink);
        global.insert(
            "slack_api_url_file".into(),
            out.file("global-slack_api_url", url),
        );
    }
    if global.contains_key("pagerduty_url") {
        global.insert("pagerduty_url".into(), json!(pagerduty_url(endpoints)));
    }
    if global.contains_key("smtp_smarthost") {
        global.insert("smtp_smarthost".into(), json!(endpoints.smtp));
    }
    if global.contains_key("smtp_require_tls") {
        global.insert("smtp_require_tls".into(), json!(false));
    }
    dummy_files(global, "global", out);
    if let Some(http) = global.get_mut("http_config").and_then(Value::as_object_mut) {
        http_config(http, "global-http", out);
    }
}

/// Rewrites one `<integration>_configs` entry; false when the sink does not
/// know the integration (its secret files still get dummies so the
/// configuration loads).
fn rewrite_integration(
    integration: &str,
    receiver: &str,
    config: &mut Map<String, Value>,
    prefix: &str,
    out: &mut Secrets,
    endpoints: &Endpoints,
) -> bool {
    // Dummies first, so the specific rewrites below overwrite them.
    dummy_files(config, prefix, out);
    if let Some(http) = config.get_mut("http_config").and_then(Value::as_object_mut) {
        http_config(http, &format!("{prefix}-http"), out);
    }
    match integration {
        "slack" => {
            config.remove("api_url");
            let url = format!("{}/slack/{receiver}", endpoints.sink);
            config.insert(
                "api_url_file".into(),
                out.file(&format!("{prefix}-api_url"), url),
            );
        }
        "pagerduty" => {
            let (inline, file) =
                if config.contains_key("service_key") || config.contains_key("service_key_file") {
                    ("service_key", "service_key_file")
                } else {
                    ("routing_key", "routing_key_file")
                };
            config.remove(inline);
            let key = out.file(
                &format!("{prefix}-{}", file.trim_end_matches("_file")),
                DUMMY_ROUTING_KEY,
            );
            config.insert(file.into(), key);
            // Per receiver, so the sink can tell (and fail) one receiver's.
            config.insert(
                "url".into(),
                json!(format!(
                    "{}/pagerduty/{receiver}/v2/enqueue",
                    endpoints.sink
                )),
            );
        }
        "email" => {
            config.insert("smarthost".into(), json!(endpoints.smtp));
            config.insert("require_tls".into(), json!(false));
            config.remove("tls_config");
        }
        "webhook" => {
            config.remove("url_file");
            config.insert(
                "url".into(),
                json!(format!("{}/webhook/{receiver}", endpoints.sink)),
            );
        }
        _ => return false,
    }
    true
}

fn pagerduty_url(endpoints: &Endpoints) -> String {
    format!("{}/pagerduty/v2/enqueue", endpoints.sink)
}

/// Points every `*_file` field of `map` at a dummy file.
fn dummy_files(map: &mut Map<String, Value>, prefix: &str, out: &mut Secrets) {
    for (key, value) in map.iter_mut() {
        if let Some(field) = key.strip_suffix("_file")
            && value.is_string()
        {
            *value = out.file(&format!("{prefix}-{field}"), DUMMY_SECRET);
        }
    }
}

/// The sink is plain HTTP on loopback: no TLS, no proxy, no token exchange;
/// credentials files become dummies.
fn http_config(http: &mut Map<String, Value>, prefix: &str, out: &mut Secrets) {
    for key in [
        "tls_config",
        "proxy_url",
        "proxy_from_environment",
        "oauth2",
    ] {
        http.remove(key);
    }
    dummy_files(http, prefix, out);
    for (key, value) in http.iter_mut() {
        if let Some(nested) = value.as_object_mut() {
            dummy_files(nested, &format!("{prefix}-{key}"), out);
        }
    }
}

/// The parts of `plan.json` the local stack reads.
#[derive(Debug, Deserialize)]
pub struct Plan {
    pub namespace: String,
    pub expectations: Expectations,
}

#[derive(Debug, Deserialize)]
pub struct Expectations {
    #[serde(default)]
    pub targets: Vec<TargetExpectation>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TargetExpectation {
    pub job: String,
    #[serde(default = "one")]
    pub min: u32,
    /// A system outside the bundle (plan.json's `requires`): the local
    /// stack, like a fresh cluster, does not run it, so it gets no stand-in
    /// and verify reports it skipped.
    #[serde(default)]
    pub requires: Option<String>,
}

fn one() -> u32 {
    1
}

/// What answers the scrapes of an expected job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    NodeExporter,
    Prometheus,
    Alertmanager,
    /// The local stack's own `/metrics`, for jobs it cannot run.
    StandIn,
}

impl Backend {
    /// Chooses by job name: kube-prometheus-stack prefixes every job with
    /// its release name, so `kube-prometheus-stack-grafana` is not Prometheus.
    pub fn for_job(job: &str) -> Self {
        let job = job.to_ascii_lowercase();
        if job.contains("node-exporter") {
            return Self::NodeExporter;
        }
        if job.contains("alertmanager") {
            return Self::Alertmanager;
        }
        let rest = job
            .replace("kube-prometheus-stack", "")
            .replace("kube-prometheus", "");
        if rest.contains("prometheus") && !rest.contains("operator") && !rest.contains("node") {
            return Self::Prometheus;
        }
        Self::StandIn
    }
}

/// Addresses (`127.0.0.1:P`) of the scrape backends.
#[derive(Debug, Clone)]
pub struct ScrapeAddresses {
    pub prometheus: String,
    pub alertmanager: String,
    pub node_exporter: String,
    pub standin: String,
}

/// `STATE/prometheus.yml`: the bundle's rule files, the local Alertmanager,
/// and one scrape job per expected job with at least `min` targets; none
/// for a job of a system that lives outside the bundle.
pub fn prometheus(
    rules_dir: &Path,
    targets: &[TargetExpectation],
    addresses: &ScrapeAddresses,
    interval: Duration,
) -> Value {
    let interval_text = prometheus_duration(interval);
    let timeout = prometheus_duration(interval.min(Duration::from_secs(10)));
    let scrape_configs: Vec<Value> = targets
        .iter()
        .filter(|target| target.requires.is_none())
        .map(|target| {
            let backend = Backend::for_job(&target.job);
            let address = match backend {
                Backend::NodeExporter => &addresses.node_exporter,
                Backend::Prometheus => &addresses.prometheus,
                Backend::Alertmanager => &addresses.alertmanager,
                Backend::StandIn => &addresses.standin,
            };
            // One target per replica: the same address with a distinct
            // label set is a distinct target to Prometheus.
            let static_configs: Vec<Value> = (0..target.min.max(1))
                .map(|replica| {
                    let mut labels = json!({"replica": replica.to_string()});
                    if backend == Backend::StandIn {
                        labels["telltale_standin"] = json!("true");
                    }
                    json!({"targets": [address], "labels": labels})
                })
                .collect();
            json!({
                "job_name": target.job,
                "metrics_path": "/metrics",
                "static_configs": static_configs,
            })
        })
        .collect();
    json!({
        "global": {
            "scrape_interval": interval_text,
            "scrape_timeout": timeout,
            "evaluation_interval": interval_text,
        },
        "rule_files": [rules_dir.join("*.yaml").to_string_lossy()],
        "alerting": {
            "alertmanagers": [{
                "api_version": "v2",
                "static_configs": [{"targets": [addresses.alertmanager]}],
            }],
        },
        "scrape_configs": scrape_configs,
    })
}

/// The bundle's Prometheus scrape interval: kube-prometheus-stack's
/// `prometheus.prometheusSpec.scrapeInterval`, else the operator's 30s.
pub fn bundle_scrape_interval(bundle: &Path) -> Duration {
    std::fs::read_to_string(bundle.join("helm/kube-prometheus-stack/values.yaml"))
        .ok()
        .and_then(|t| serde_saphyr::from_str::<Value>(&t).ok())
        .and_then(|v| {
            let text = v["prometheus"]["prometheusSpec"]["scrapeInterval"].as_str()?;
            telltale::verify::grafana_time::parse_interval(text)
        })
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(30))
}

/// Prometheus durations have no spaces: `1s`, `250ms`.
pub fn prometheus_duration(duration: Duration) -> String {
    let millis = duration.as_millis().max(1);
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints {
            sink: "http://127.0.0.1:1000".into(),
            smtp: "127.0.0.1:2000".into(),
        }
    }

    #[test]
    fn receivers_point_at_the_sink_and_routes_are_kept() {
        let bundle = json!({
            "global": {"smtp_smarthost": "smtp.example.com:587", "smtp_require_tls": true, "slack_api_url": "https://hooks.slack.com/x"},
            "route": {"receiver": "critical", "group_wait": "10s"},
            "time_intervals": [{"name": "business-hours"}],
            "receivers": [{
                "name": "critical",
                "slack_configs": [{"api_url_file": "/etc/am/slack", "channel": "#ops"}],
                "pagerduty_configs": [{"routing_key_file": "/etc/am/pd"}],
                "email_configs": [{"to": "ops@example.com", "auth_password_file": "/etc/am/smtp"}],
                "webhook_configs": [{"url": "http://sachet.monitoring.svc:9876/alert"}],
            }, {"name": "info"}],
        });
        let out = alertmanager(bundle.clone(), Path::new("/state/secrets"), &endpoints());
        let c = &out.config;
        assert_eq!(c["route"], bundle["route"]);
        assert_eq!(c["time_intervals"], bundle["time_intervals"]);
        assert_eq!(c["global"]["smtp_smarthost"], "127.0.0.1:2000");
        assert_eq!(c["global"]["smtp_require_tls"], false);
        assert!(c["global"].get("slack_api_url").is_none());
        let r = &c["receivers"][0];
        let slack_file = PathBuf::from(r["slack_configs"][0]["api_url_file"].as_str().unwrap());
        assert_eq!(
            out.secrets[&slack_file],
            "http://127.0.0.1:1000/slack/critical"
        );
        assert_eq!(r["slack_configs"][0]["channel"], "#ops");
        let pd = &r["pagerduty_configs"][0];
        assert_eq!(
            pd["url"],
            "http://127.0.0.1:1000/pagerduty/critical/v2/enqueue"
        );
        let key_file = PathBuf::from(pd["routing_key_file"].as_str().unwrap());
        assert_eq!(out.secrets[&key_file].len(), 32);
        let email = &r["email_configs"][0];
        assert_eq!(email["smarthost"], "127.0.0.1:2000");
        assert_eq!(email["require_tls"], false);
        assert!(
            email["auth_password_file"]
                .as_str()
                .unwrap()
                .starts_with("/state/secrets/")
        );
        assert_eq!(
            r["webhook_configs"][0]["url"],
            "http://127.0.0.1:1000/webhook/critical"
        );
        assert!(out.secrets.keys().all(|p| p.starts_with("/state/secrets")));
        assert!(out.warnings.is_empty());
    }

    #[test]
    fn unknown_integrations_are_reported_and_get_dummy_files() {
        let bundle =
            json!({"receivers": [{"name": "r", "opsgenie_configs": [{"api_key_file": "/x"}]}]});
        let out = alertmanager(bundle, Path::new("/s"), &endpoints());
        assert_eq!(
            out.config["receivers"][0]["opsgenie_configs"][0]["api_key_file"],
            "/s/r-opsgenie-0-api_key"
        );
        assert_eq!(out.warnings.len(), 1);
    }

    #[test]
    fn jobs_map_to_backends() {
        use Backend::*;
        for (job, backend) in [
            ("node-exporter", NodeExporter),
            ("prometheus-node-exporter", NodeExporter),
            ("kube-prometheus-stack-prometheus", Prometheus),
            ("prometheus", Prometheus),
            ("prometheus-k8s", Prometheus),
            ("kube-prometheus-stack-alertmanager", Alertmanager),
            ("kube-prometheus-stack-operator", StandIn),
            ("kube-prometheus-stack-grafana", StandIn),
            ("kube-state-metrics", StandIn),
            ("loki", StandIn),
        ] {
            assert_eq!(Backend::for_job(job), backend, "{job}");
        }
    }

    #[test]
    fn every_job_gets_min_targets_and_stand_ins_say_so() {
        let addresses = ScrapeAddresses {
            prometheus: "127.0.0.1:1".into(),
            alertmanager: "127.0.0.1:2".into(),
            node_exporter: "127.0.0.1:3".into(),
            standin: "127.0.0.1:4".into(),
        };
        let targets = [
            TargetExpectation {
                job: "node-exporter".into(),
                min: 1,
                requires: None,
            },
            TargetExpectation {
                job: "loki".into(),
                min: 3,
                requires: None,
            },
            TargetExpectation {
                job: "pushgateway".into(),
                min: 1,
                requires: Some("pushgateway".into()),
            },
        ];
        let c = prometheus(
            Path::new("/b/prometheus/rules"),
            &targets,
            &addresses,
            Duration::from_millis(1500),
        );
        assert_eq!(c["global"]["scrape_interval"], "1500ms");
        assert_eq!(c["rule_files"][0], "/b/prometheus/rules/*.yaml");
        let node = &c["scrape_configs"][0]["static_configs"];
        assert_eq!(node.as_array().unwrap().len(), 1);
        assert_eq!(node[0]["targets"][0], "127.0.0.1:3");
        assert!(node[0]["labels"].get("telltale_standin").is_none());
        let loki = c["scrape_configs"][1]["static_configs"].as_array().unwrap();
        assert_eq!(loki.len(), 3);
        assert!(
            loki.iter()
                .all(|s| s["labels"]["telltale_standin"] == "true")
        );
        assert_eq!(loki[2]["labels"]["replica"], "2");
        // The system outside the bundle gets no stand-in.
        assert_eq!(c["scrape_configs"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn durations_have_no_spaces() {
        assert_eq!(prometheus_duration(Duration::from_secs(60)), "60s");
        assert_eq!(prometheus_duration(Duration::from_millis(250)), "250ms");
    }
}
