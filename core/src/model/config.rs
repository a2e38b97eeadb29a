//! Config (`telltale.yaml`) and Profile documents.
//!
//! Both carry the same stack settings; a profile adds `extends`, a config
//! adds the profile to use, the pinned cluster and GitOps. Precedence is
//! plugin defaults < profile chain < config file < `--set`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alerting::AlertingLayer;
use super::node::{Located, Node};
use crate::secrets::SecretSource;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ConfigSpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigSpec {
    /// A built-in profile name or a path to a Profile file.
    pub profile: Option<String>,
    pub cluster: Option<Cluster>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginSettings>,
    #[serde(default)]
    pub set: BTreeMap<String, BTreeMap<String, Located>>,
    pub alerting: Option<AlertingLayer>,
    #[serde(default)]
    pub slos: Vec<Slo>,
    /// PromQL label matchers for the service the SLOs measure, put in for
    /// `{{selector}}` in their queries (e.g. `job="api"`).
    pub slo_selector: Option<String>,
    pub grafana: Option<Grafana>,
    pub gitops: Option<GitOps>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ProfileSpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileSpec {
    pub extends: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginSettings>,
    #[serde(default)]
    pub set: BTreeMap<String, BTreeMap<String, Located>>,
    pub alerting: Option<AlertingLayer>,
    #[serde(default)]
    pub slos: Vec<Slo>,
    pub slo_selector: Option<String>,
    pub grafana: Option<Grafana>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    /// The only kubeconfig context `up`, `down`, `status` and `unlock` will
    /// act on.
    pub context: Option<String>,
    pub name: Option<String>,
    /// The API server URL that context must point at (`https://host:port`),
    /// so a context of the right name in another kubeconfig is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerUrl>,
    /// SHA-256 of the cluster's CA certificate (DER): 64 hex digits, colons
    /// allowed, as `openssl x509 -noout -fingerprint -sha256` prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_sha256: Option<CaSha256>,
}

/// An API server URL: http(s), a host, no credentials, no query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerUrl(String);

impl ServerUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServerUrl {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let expected =
            "expected the API server URL as the kubeconfig has it, e.g. https://10.0.0.1:6443";
        let uri: http::Uri = text
            .parse()
            .map_err(|_| format!("spec.cluster.server is not a URL; {expected}"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) {
            return Err(format!(
                "spec.cluster.server must start with https://; {expected}"
            ));
        }
        let Some(authority) = uri.authority() else {
            return Err(format!("spec.cluster.server has no host; {expected}"));
        };
        if authority.as_str().contains('@') {
            // Never echo it: userinfo is a credential.
            return Err("spec.cluster.server must not hold credentials (user:password@)".into());
        }
        if uri.query().is_some() {
            return Err(format!(
                "spec.cluster.server must not have a query; {expected}"
            ));
        }
        Ok(ServerUrl(text))
    }
}

impl From<ServerUrl> for String {
    fn from(s: ServerUrl) -> String {
        s.0
    }
}

/// A CA certificate's SHA-256, kept as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaSha256(String);

impl CaSha256 {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CaSha256 {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let hex: String = text
            .trim()
            .trim_start_matches("sha256:")
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "spec.cluster.caSha256 must be 64 hex digits (colons allowed), got {} characters; \
                 get it with `openssl x509 -noout -fingerprint -sha256 -in ca.crt`",
                text.len()
            ));
        }
        Ok(CaSha256(hex))
    }
}

impl From<CaSha256> for String {
    fn from(s: CaSha256) -> String {
        s.0
    }
}

#[cfg(test)]
mod pin_tests {
    use super::*;

    #[test]
    fn pin_fields_are_validated() {
        assert!(ServerUrl::try_from("https://10.0.0.1:6443".to_string()).is_ok());
        assert!(ServerUrl::try_from("10.0.0.1:6443".to_string()).is_err());
        assert!(ServerUrl::try_from("ftp://x".to_string()).is_err());
        let e =
            ServerUrl::try_from("https://admin:s3cr3t@api.example.com".to_string()).unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        let colons = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
        assert_eq!(
            CaSha256::try_from(colons).unwrap().as_str(),
            "ab".repeat(32)
        );
        assert!(CaSha256::try_from("abc".to_string()).is_err());
        assert!(CaSha256::try_from("zz".repeat(32)).is_err());
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginSettings {
    pub enabled: Option<bool>,
    pub values: Option<Located>,
}

/// A service level objective as an error ratio over a window.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Slo {
    pub name: String,
    /// Target in percent, e.g. 99.9.
    pub objective: f64,
    #[serde(default = "default_window")]
    pub window: String,
    pub description: Option<String>,
    /// PromQL for bad events; `{{window}}` is replaced by each burn-rate
    /// window and `{{selector}}` by the service selector.
    pub errors: String,
    /// PromQL for all events per second, same placeholder.
    pub total: String,
    /// What the SLO dashboard draws for it besides the SLI and budget: the
    /// indicator itself (a response time, an error rate) against its line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panel: Option<SloPanel>,
}

/// A timeseries of the SLO's indicator with its threshold drawn as a line.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SloPanel {
    pub title: String,
    /// PromQL; `{{selector}}` is replaced by the service selector.
    pub query: String,
    /// A Grafana unit (`s`, `percentunit`…).
    #[serde(default)]
    pub unit: Option<String>,
    /// Where the dashed red line goes (5 for "p95 < 5 s", 0.01 for "< 1%").
    pub threshold: f64,
}

fn default_window() -> String {
    "30d".into()
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Grafana {
    #[serde(default)]
    pub datasources: GrafanaDatasources,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrafanaDatasources {
    pub postgres: Option<PostgresDatasource>,
}

/// A datasource the config can add to Grafana: a key of
/// `grafana.datasources`, and a name a dashboard panel may require
/// (`x-telltale-requires`) or a plugin may be shown through
/// (plugin.yaml `spec.datasources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Datasource {
    Postgres,
}

impl Datasource {
    pub const ALL: [Datasource; 1] = [Datasource::Postgres];

    /// Every datasource's name.
    pub fn names() -> Vec<&'static str> {
        Datasource::ALL.into_iter().map(Datasource::name).collect()
    }

    /// The key under `grafana.datasources`.
    pub const fn name(self) -> &'static str {
        match self {
            Datasource::Postgres => "postgres",
        }
    }
}

impl GrafanaDatasources {
    /// Whether the config sets this datasource.
    pub fn configured(&self, datasource: Datasource) -> bool {
        match datasource {
            Datasource::Postgres => self.postgres.is_some(),
        }
    }
}

/// Seed 000's drift panels read fine-tune results from PostgreSQL.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresDatasource {
    pub host: String,
    pub database: String,
    pub user: String,
    pub password: SecretSource,
    #[serde(default = "default_sslmode")]
    pub sslmode: String,
}

fn default_sslmode() -> String {
    "require".into()
}

/// Where and how `telltale gitops` hands the rendered state to Git.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitOps {
    /// A local path or a URL (ssh or https).
    pub repo: Option<String>,
    /// Directory in the repository [default: clusters/<cluster>/observability].
    pub path: Option<String>,
    pub layout: Option<Layout>,
    /// The branch the pull request comes from [default: telltale/<cluster>].
    pub branch: Option<String>,
    pub secrets: Option<SecretsMode>,
    pub external_secrets: Option<ExternalSecrets>,
    pub sops: Option<Sops>,
    pub sealed_secrets: Option<SealedSecrets>,
    pub github: Option<GitHub>,
}

/// How the repository is laid out for the controller that will own it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// HelmRepository/OCIRepository + HelmRelease per release, Flux Kustomizations
    #[default]
    Flux,
    /// An Argo CD Application per release plus one for the manifests (app of apps)
    Argocd,
    /// The bundle as `plan` writes it
    Plain,
}

impl Layout {
    pub const ALL: [Layout; 3] = [Layout::Flux, Layout::Argocd, Layout::Plain];

    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Flux => "flux",
            Layout::Argocd => "argocd",
            Layout::Plain => "plain",
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How Secrets reach the cluster when Git is the source of truth. No mode
/// ever commits a secret value in plaintext.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum SecretsMode {
    /// Commit no Secret; the manifests reference the Secrets `up` created
    #[default]
    Reference,
    /// ExternalSecret objects against the configured SecretStore
    ExternalSecrets,
    /// Secrets encrypted with sops for age recipients
    Sops,
    /// SealedSecrets sealed with kubeseal and a certificate file
    SealedSecrets,
}

impl std::fmt::Display for SecretsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretsMode::Reference => "reference",
            SecretsMode::ExternalSecrets => "external-secrets",
            SecretsMode::Sops => "sops",
            SecretsMode::SealedSecrets => "sealed-secrets",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalSecrets {
    /// The SecretStore (or ClusterSecretStore) the ExternalSecrets read from.
    pub store: String,
    #[serde(default)]
    pub store_kind: StoreKind,
    /// Remote keys are `<keyPrefix><secret name>`, one property per key
    /// [default: telltale/<cluster>/].
    pub key_prefix: Option<String>,
    #[serde(default = "default_refresh")]
    pub refresh_interval: String,
}

fn default_refresh() -> String {
    "1h".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum StoreKind {
    #[default]
    SecretStore,
    ClusterSecretStore,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::SecretStore => "SecretStore",
            StoreKind::ClusterSecretStore => "ClusterSecretStore",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sops {
    /// age recipients (public keys, `age1…`).
    pub age: Vec<String>,
    /// The Secret holding the age private key that Flux decrypts with.
    #[serde(default = "default_sops_secret")]
    pub decryption_secret: String,
}

fn default_sops_secret() -> String {
    "sops-age".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SealedSecrets {
    /// The controller's public certificate (`kubeseal --fetch-cert`).
    pub cert: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitHub {
    /// owner/name [default: from the repository URL when it is on github.com].
    pub repo: Option<String>,
    /// The branch the pull request targets [default: main].
    pub base: Option<String>,
    /// GitHub Enterprise: https://HOST/api/v3 [default: https://api.github.com].
    pub api_url: Option<String>,
}

/// The stack settings one document contributes, with the file they came from.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The document this layer came from, to locate errors in it.
    pub source: super::yaml::Source,
    /// The dotted key path of this layer's settings in its document
    /// (`spec`; in a Fleet `spec.defaults` or `spec.clusters.N`), where its
    /// errors are located.
    pub path: String,
    pub namespace: Option<String>,
    pub plugins: BTreeMap<String, PluginSettings>,
    pub set: BTreeMap<String, BTreeMap<String, Located>>,
    pub alerting: Option<AlertingLayer>,
    pub slos: Vec<Slo>,
    pub slo_selector: Option<String>,
    pub grafana: Option<Grafana>,
}

impl ProfileSpec {
    pub fn layer(&self, source: &super::yaml::Source) -> Layer {
        Layer {
            source: source.clone(),
            path: "spec".into(),
            namespace: self.namespace.clone(),
            plugins: self.plugins.clone(),
            set: self.set.clone(),
            alerting: self.alerting.clone(),
            slos: self.slos.clone(),
            slo_selector: self.slo_selector.clone(),
            grafana: self.grafana.clone(),
        }
    }
}

impl ConfigSpec {
    pub fn layer(&self, source: &super::yaml::Source) -> Layer {
        Layer {
            source: source.clone(),
            path: "spec".into(),
            namespace: self.namespace.clone(),
            plugins: self.plugins.clone(),
            set: self.set.clone(),
            alerting: self.alerting.clone(),
            slos: self.slos.clone(),
            slo_selector: self.slo_selector.clone(),
            grafana: self.grafana.clone(),
        }
    }
}

impl PluginSettings {
    pub fn values_node(&self) -> Option<&Node> {
        self.values.as_ref().map(|v| &v.value)
    }
}
