//! The Plugin manifest (`plugins/<name>/plugin.yaml`).

use serde::{Deserialize, Serialize};

use super::phase::Phase;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Plugin {
    pub api_version: String,
    pub kind: String,
    pub metadata: PluginMetadata,
    pub spec: PluginSpec,
}

impl Plugin {
    /// The bridge this plugin is for `integration`, if it is one.
    pub fn bridge_for(&self, integration: super::alerting::Integration) -> Option<&Bridge> {
        self.spec
            .bridge
            .as_ref()
            .filter(|b| b.integration == integration)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginMetadata {
    pub name: String,
    pub version: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginSpec {
    pub phase: Phase,
    pub chart: Option<Chart>,
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub conflicts: Vec<String>,
    pub deprecated: Option<String>,
    #[serde(default)]
    pub secrets: Vec<SecretValue>,
    /// Values only the site knows (an endpoint, an issuer URL): no default
    /// stands in for them; until a layer sets them the plugin is left out
    /// with a warning naming them.
    #[serde(default)]
    pub required: Vec<SecretValue>,
    #[serde(default)]
    pub expectations: Expectations,
    /// An Alertmanager webhook every alert is also sent to (Robusta-style
    /// enrichment): its own receiver, matched first with `continue: true`.
    pub alert_webhook: Option<AlertWebhook>,
    /// Inhibit rules whose source alerts this plugin ships (seeds 000 and
    /// 002: "suppress component alerts when the service is down").
    #[serde(default)]
    pub inhibitions: Vec<super::inhibition::Inhibition>,
    /// The metrics this plugin's components expose (metric provenance: a
    /// rule or panel of the bundle reading a name no component declares is
    /// reported by `plan`).
    #[serde(default)]
    pub publishes: Vec<Publishes>,
    /// The Alertmanager integration this plugin carries to its provider
    /// (see [`Bridge`]).
    pub bridge: Option<Bridge>,
    /// The Grafana datasources (`grafana.datasources.<name>`) this plugin's
    /// data is shown through: while the plugin is enabled and one of them
    /// is not configured, `plan` names the dashboards whose panels that
    /// leaves out.
    #[serde(default)]
    pub datasources: Vec<super::config::Datasource>,
    /// Where this plugin's values keep what `telltale init` asks about
    /// (see [`Settings`]), so the wizard names no plugin.
    #[serde(default)]
    pub settings: Settings,
}

/// The values `telltale init` asks about, each as a dotted key path into
/// this plugin's chart values (`prometheus.prometheusSpec.retention`): init
/// writes an answer to `spec.set.<plugin>.<path>` of every enabled plugin
/// declaring the setting, and offers the profile's value there as the
/// default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Settings {
    /// How long the metrics store keeps samples (`15d`).
    pub retention: Option<String>,
    /// The size of the metrics store's volume (`50Gi`).
    pub storage: Option<String>,
}

impl Settings {
    /// The key path of `setting`.
    pub fn path(&self, setting: Setting) -> Option<&str> {
        match setting {
            Setting::Retention => self.retention.as_deref(),
            Setting::Storage => self.storage.as_deref(),
        }
    }
}

/// One of the [`Settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Setting {
    Retention,
    Storage,
}

/// A plugin that carries an Alertmanager integration to its provider
/// (Alertmanager has no SMS receiver: the `sms` integration posts a webhook
/// to a bridge that texts). The integration's settings stay in
/// `alerting.receivers.<integration>`: the plugin's `alerting/` templates
/// see them (`alerting.<integration>`), the secret sources named here go to
/// the plugin's Secret, and `plan` warns while the plugin is enabled but
/// the integration is not configured.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bridge {
    pub integration: super::alerting::Integration,
    #[serde(default)]
    pub secrets: Vec<BridgeSecret>,
    /// What the warning says is lost while the integration is not
    /// configured (`no SMS will be sent`).
    pub unconfigured: String,
    /// Where Alertmanager posts the integration's webhook unless
    /// `alerting.receivers.<integration>.bridgeUrl` says otherwise: the
    /// plugin's own service, `{namespace}` standing for the stack's
    /// namespace (`http://sachet.{namespace}.svc:9876/alert`).
    #[serde(default)]
    pub url: Option<String>,
}

/// One secret source of the bridged integration (its path below
/// `alerting.receivers.<integration>`, e.g. `twilio.authToken`) and the
/// key of the plugin's Secret it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSecret {
    pub path: String,
    pub key: String,
}

/// Series one component exposes, exactly as Prometheus stores them
/// (histograms as `_bucket`, `_sum`, `_count`), and where that list is
/// documented so a reviewer can check it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Publishes {
    /// Who exposes the series, e.g. `node-exporter`, `postgres_exporter`.
    pub component: String,
    /// Where the names are documented (a URL, or the file that defines them).
    pub source: String,
    pub metrics: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertWebhook {
    /// The receiver's name (not one of the tiers).
    pub receiver: String,
    /// The webhook URL; a template with `namespace`, `cluster` and `profile`.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Chart {
    pub name: String,
    pub repository: String,
    pub version: String,
    pub release: Option<String>,
    /// The chart ships CRDs that telltale applies itself, server-side, in the
    /// crds phase (helm installs with --skip-crds and never upgrades them).
    #[serde(default)]
    pub crds: bool,
}

impl Chart {
    pub fn release_name<'a>(&'a self, plugin: &'a str) -> &'a str {
        self.release.as_deref().unwrap_or(plugin)
    }

    /// The reference helm installs: `oci://…/chart` as is, or `chart` with `--repo`.
    pub fn is_oci(&self) -> bool {
        self.repository.starts_with("oci://")
    }
}

/// A values path whose value must be a secret source.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretValue {
    pub path: String,
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expectations {
    #[serde(default)]
    pub targets: Vec<TargetExpectation>,
    #[serde(default)]
    pub log_namespaces: Vec<String>,
    /// Metric names the external metrics API must list (KEDA or Prometheus Adapter).
    #[serde(default)]
    pub external_metrics: Vec<String>,
    /// HorizontalPodAutoscalers that must report a current value.
    #[serde(default)]
    pub hpas: Vec<HpaExpectation>,
    /// The load verify generates, and the series that must move under it.
    pub load: Option<LoadExpectation>,
    /// What an autoscaler scales out on: the bundle sizes verify's load from
    /// it so the load crosses the thresholds (see [`ScaleOutExpectation`]).
    pub scale_out: Option<ScaleOutExpectation>,
    /// Remote-write queues Prometheus must be sending through (verify's
    /// `remote-write` check); templates with the plugin's `values`.
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteExpectation>,
}

/// A remote-write queue of the cluster's Prometheus: its `name` (the
/// `remote_name` label of Prometheus' `prometheus_remote_storage_*` series)
/// and the `url` it must write to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteExpectation {
    pub name: String,
    pub url: String,
}

/// An autoscaler's scale-out point, declared by the plugin that ships it.
/// Every field is a template with `namespace` and the plugin's `values`, so
/// the numbers are the ones its objects are rendered with. The renderer sets
/// the bundle's load to twice the throughput `minReplicas` replicas absorb,
/// for the rate window plus a polling interval plus 30 s, against this HPA.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleOutExpectation {
    /// `namespace/name` of the HPA (KEDA's is `keda-hpa-<ScaledObject>`).
    pub hpa: String,
    /// The replicas it starts from.
    pub min_replicas: String,
    /// Requests per second one replica absorbs (the throughput trigger's
    /// per-replica target).
    pub requests_per_replica: String,
    /// The rate window of the autoscaler's query (e.g. `2m`).
    pub window: String,
    /// How often the autoscaler reads the metric (e.g. `15s`).
    pub interval: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HpaExpectation {
    pub namespace: String,
    pub name: String,
}

/// `verify`'s load check: requests at `rate` per second for `duration`
/// against `url` (a k6 Job in the cluster, or the builtin generator), then
/// every query in `moves` must return a higher value than before the load.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadExpectation {
    pub url: String,
    #[serde(default = "LoadExpectation::default_rate")]
    pub rate: u32,
    #[serde(default = "LoadExpectation::default_duration")]
    pub duration: String,
    #[serde(default)]
    pub moves: Vec<String>,
    /// `namespace/name` of an HPA that must scale out under the load.
    pub hpa: Option<String>,
    /// In plan.json: how rate and duration were derived from the
    /// autoscaler's thresholds (none when the plugin's values are used as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived: Option<String>,
}

impl LoadExpectation {
    fn default_rate() -> u32 {
        20
    }
    fn default_duration() -> String {
        "30s".into()
    }
}

/// A Prometheus job that must have `min` targets up. Something must make
/// Prometheus scrape it: a ServiceMonitor, PodMonitor, Probe or ScrapeConfig
/// among the bundle's objects whose job this is, or the plugin's own chart
/// (`scrapedBy: chart`, for charts that create their monitors). A job that
/// lives outside the bundle (a Pushgateway, Vault, Trino the cluster already
/// runs) says so with `requires: <system>`: verify checks it only when
/// Prometheus discovered it, and reports it skipped otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetExpectation {
    pub job: String,
    pub min: u32,
    /// The system outside the bundle this job belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
    /// In a plugin: `chart` when the plugin's chart creates the monitor. In
    /// plan.json: what scrapes the job (`ServiceMonitor/name`, `chart name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scraped_by: Option<String>,
}
