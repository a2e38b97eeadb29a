//! The Fleet document: one `telltale.yaml` that names several clusters.
//!
//! ```yaml
//! apiVersion: telltale.dev/v1alpha1
//! kind: Fleet
//! metadata: {name: shop}
//! spec:
//!   defaults: {profile: production, plugins: {…}, alerting: {…}}   # every cluster starts here
//!   gitops: {repo: git@github.com:org/infra.git}                    # one branch, one pull request
//!   clusters:
//!     - {name: eu-1, context: prod-eu-1}
//!     - {name: us-1, context: prod-us-1, plugins: {…}}               # over the defaults
//! ```
//!
//! Each cluster resolves as a Config would, with one more layer: profile
//! chain < `spec.defaults` < the cluster's entry < `--set`. The cluster's
//! layer keeps its place in the file (`spec.clusters.1…`), so every error
//! points at the line that caused it. Pure: parsing and checks only.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::alerting::AlertingLayer;
use super::config::{
    CaSha256, Cluster, GitOps, Grafana, Layer, Metadata, PluginSettings, ServerUrl, Slo,
};
use super::document::{Kind, parse_document};
use super::node::Located;
use super::validate;
use super::yaml::{LocatedError, Source};

/// The most clusters one fleet may name: far above any fleet one file
/// should describe, and a bound on what one run starts.
pub const MAX_CLUSTERS: usize = 500;

/// The placeholder `spec.gitops.path` must hold in a fleet.
pub const CLUSTER_PLACEHOLDER: &str = "{cluster}";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fleet {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: FleetSpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetSpec {
    /// What every cluster starts from, over its profile.
    pub defaults: Option<Defaults>,
    /// One repository, one branch, one pull request for the whole fleet;
    /// `path` holds `{cluster}` [default: clusters/{cluster}/observability].
    pub gitops: Option<GitOps>,
    /// The cluster holding the central stores the others send to; `verify`
    /// then proves from it that every other cluster arrives.
    pub hub: Option<Hub>,
    pub clusters: Vec<FleetCluster>,
}

/// The fleet's hub: one of its clusters, whose central Prometheus (or
/// Mimir), Loki and Alertmanager every other cluster (a spoke) sends to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hub {
    /// The hub's name in `spec.clusters`: its bundle's rules are the
    /// fleet-wide ones and its Alertmanager the central one.
    pub cluster: String,
    /// Where verify reaches the central stores (a Mimir query frontend, a
    /// Loki gateway…); each one unset is the hub cluster's own endpoint.
    pub endpoints: Option<Endpoints>,
}

/// The stack settings of a Config, without the cluster pin.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Defaults {
    pub profile: Option<String>,
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

/// One cluster: its name and pin, where verify reaches it, and its own
/// settings over the defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetCluster {
    /// The cluster's name: its `cluster` label, its bundle's directory.
    pub name: String,
    /// The kubeconfig context `up`, `status` and `verify` act on for it.
    pub context: String,
    pub server: Option<ServerUrl>,
    pub ca_sha256: Option<CaSha256>,
    /// Where `verify` reaches this cluster's stack without a port-forward.
    pub endpoints: Option<Endpoints>,
    pub profile: Option<String>,
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

/// Base URLs verify uses for one cluster instead of port-forwarding (an
/// ingress, a load balancer, a tunnel).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpoints {
    pub prometheus: Option<String>,
    pub alertmanager: Option<String>,
    pub grafana: Option<String>,
    pub loki: Option<String>,
}

impl Defaults {
    pub fn layer(&self, source: &Source) -> Layer {
        Layer {
            source: source.clone(),
            path: "spec.defaults".into(),
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

impl FleetCluster {
    pub fn layer(&self, source: &Source, index: usize) -> Layer {
        Layer {
            source: source.clone(),
            path: format!("spec.clusters.{index}"),
            namespace: self.namespace.clone(),
            plugins: self.plugins.clone(),
            set: self.set.clone(),
            alerting: self.alerting.clone(),
            slos: self.slos.clone(),
            slo_selector: self.slo_selector.clone(),
            grafana: self.grafana.clone(),
        }
    }

    pub fn pin(&self) -> Cluster {
        Cluster {
            context: Some(self.context.clone()),
            name: Some(self.name.clone()),
            server: self.server.clone(),
            ca_sha256: self.ca_sha256.clone(),
        }
    }
}

impl Fleet {
    /// The cluster named `name`, with its index, or a did-you-mean.
    pub fn member(&self, name: &str) -> Result<(usize, &FleetCluster), String> {
        self.spec
            .clusters
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.spec.clusters.iter().map(|c| c.name.as_str()).collect();
                let mut message = format!(
                    "fleet `{}` has no cluster `{name}` (it has: {})",
                    self.metadata.name,
                    names.join(", ")
                );
                if let Some(guess) = super::suggest::did_you_mean(name, names.iter().copied()) {
                    message.push_str(&format!("; did you mean `{guess}`?"));
                }
                message
            })
    }

    /// The profile a cluster renders with (its own, else the defaults'),
    /// and the key path that named it.
    pub fn profile_of(&self, index: usize) -> Option<(String, String)> {
        let cluster = &self.spec.clusters[index];
        match (
            &cluster.profile,
            self.spec.defaults.as_ref().and_then(|d| d.profile.as_ref()),
        ) {
            (Some(p), _) => Some((p.clone(), format!("spec.clusters.{index}.profile"))),
            (None, Some(p)) => Some((p.clone(), "spec.defaults.profile".into())),
            (None, None) => None,
        }
    }

    /// The layers the fleet adds over the profile chain for one cluster.
    pub fn layers(&self, source: &Source, index: usize) -> Vec<Layer> {
        let mut layers = Vec::with_capacity(2);
        if let Some(d) = &self.spec.defaults {
            layers.push(d.layer(source));
        }
        layers.push(self.spec.clusters[index].layer(source, index));
        layers
    }

    /// The GitOps settings of one cluster: the fleet's, with `{cluster}`
    /// in the path put in, and the fleet's branch.
    pub fn gitops_of(&self, index: usize) -> Option<GitOps> {
        let g = self.spec.gitops.as_ref()?;
        let name = &self.spec.clusters[index].name;
        Some(GitOps {
            path: Some(
                g.path
                    .as_deref()
                    .unwrap_or("clusters/{cluster}/observability")
                    .replace(CLUSTER_PLACEHOLDER, name),
            ),
            branch: Some(self.branch()),
            ..g.clone()
        })
    }

    /// The one branch the fleet's pull request comes from.
    pub fn branch(&self) -> String {
        self.spec
            .gitops
            .as_ref()
            .and_then(|g| g.branch.clone())
            .unwrap_or_else(|| format!("telltale/fleet-{}", self.metadata.name))
    }
}

/// Endpoints are plain http(s) URLs with no credential in them (verify
/// takes credentials from --basic-auth-env or --bearer-token-env).
fn check_endpoints(source: &Source, at: &str, e: &Endpoints) -> Result<(), LocatedError> {
    for (key, url) in [
        ("prometheus", &e.prometheus),
        ("alertmanager", &e.alertmanager),
        ("grafana", &e.grafana),
        ("loki", &e.loki),
    ] {
        if let Some(url) = url {
            let path = format!("{at}.{key}");
            if let Some(why) = validate::credential(Some(key), url) {
                let e = crate::catalog::locate(source, &path, "");
                return Err(super::check::refuse_credential(
                    source, e.line, e.column, &path, &why,
                ));
            }
            super::check::plain_url(url).map_err(|inv| super::check::refuse(source, &path, inv))?;
            if url.contains('@') {
                return Err(crate::catalog::locate(
                    source,
                    &path,
                    "expected a URL without user:password@ (verify takes credentials from --basic-auth-env)",
                )
                .redacted());
            }
        }
    }
    Ok(())
}

/// Whether `source` declares `kind: Fleet` (the header only; a document
/// that does not parse is not one, and its own errors come later).
pub fn is_fleet(source: &Source) -> bool {
    #[derive(Deserialize)]
    struct Header {
        kind: Option<String>,
    }
    serde_saphyr::from_str::<Header>(&source.text)
        .ok()
        .and_then(|h| h.kind)
        .is_some_and(|k| k == Kind::Fleet.name())
}

/// Parses and checks a Fleet: every cluster named once, with a usable name
/// and its own context, and a GitOps path that keeps the clusters apart.
/// Errors are located in the file; nothing else is read.
pub fn parse(source: &Source) -> Result<Fleet, LocatedError> {
    let fleet: Fleet = parse_document(source, Kind::Fleet)?;
    let refuse = |path: &str, message: String| crate::catalog::locate(source, path, message);
    validate::dns_subdomain(&fleet.metadata.name)
        .map_err(|i| super::check::refuse(source, "metadata.name", i))?;
    if fleet.spec.clusters.is_empty() {
        return Err(
            refuse("spec.clusters", "a Fleet names at least one cluster".into())
                .with_hint("add `clusters: [{name: eu-1, context: prod-eu-1}]` under spec"),
        );
    }
    if fleet.spec.clusters.len() > MAX_CLUSTERS {
        return Err(refuse(
            "spec.clusters",
            format!(
                "{} clusters: a Fleet names at most {MAX_CLUSTERS}",
                fleet.spec.clusters.len()
            ),
        )
        .with_hint("split the fleet into several files"));
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut contexts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in fleet.spec.clusters.iter().enumerate() {
        let at = format!("spec.clusters.{i}");
        // A DNS label: the cluster's directory in the bundle and the
        // repository, its `cluster` label and part of object names.
        validate::dns_label(&c.name)
            .map_err(|inv| super::check::refuse(source, &format!("{at}.name"), inv))?;
        if let Some(first) = names.insert(&c.name, i) {
            return Err(refuse(
                &format!("{at}.name"),
                format!(
                    "cluster `{}` is named twice (spec.clusters.{first} and spec.clusters.{i})",
                    c.name
                ),
            )
            .with_hint("give each cluster its own name: it names its bundle directory and its `cluster` label"));
        }
        if c.context.trim().is_empty() {
            return Err(refuse(
                &format!("{at}.context"),
                "expected the kubeconfig context of this cluster".into(),
            ));
        }
        if let Some(first) = contexts.insert(&c.context, i) {
            return Err(refuse(
                &format!("{at}.context"),
                format!(
                    "context `{}` is given to two clusters (spec.clusters.{first} and spec.clusters.{i}): both would install into the same cluster",
                    c.context
                ),
            )
            .with_hint("each cluster of a fleet has its own context"));
        }
        if let Some(e) = &c.endpoints {
            check_endpoints(source, &format!("{at}.endpoints"), e)?;
        }
    }
    if let Some(hub) = &fleet.spec.hub {
        fleet.member(&hub.cluster).map_err(|m| {
            let mut e = refuse("spec.hub.cluster", m);
            e.hint = Some("the hub is one of spec.clusters, by its name".into());
            e
        })?;
        if let Some(e) = &hub.endpoints {
            check_endpoints(source, "spec.hub.endpoints", e)?;
        }
    }
    if let Some(path) = fleet.spec.gitops.as_ref().and_then(|g| g.path.as_ref())
        && !path.contains(CLUSTER_PLACEHOLDER)
    {
        return Err(refuse(
            "spec.gitops.path",
            format!("a fleet's path must hold `{CLUSTER_PLACEHOLDER}`, or every cluster would be written to the same directory"),
        )
        .with_hint("e.g. clusters/{cluster}/observability (the default)"));
    }
    if let Some(branch) = fleet.spec.gitops.as_ref().and_then(|g| g.branch.as_ref())
        && branch.contains(CLUSTER_PLACEHOLDER)
    {
        return Err(refuse(
            "spec.gitops.branch",
            "a fleet commits every cluster on one branch, for one pull request: the branch cannot depend on the cluster".into(),
        ));
    }
    Ok(fleet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> LocatedError {
        parse(&Source::new("fleet.yaml", text)).unwrap_err()
    }

    const HEAD: &str =
        "apiVersion: telltale.dev/v1alpha1\nkind: Fleet\nmetadata: {name: shop}\nspec:\n";

    #[test]
    fn a_fleet_parses_and_layers_in_place() {
        let text = format!(
            "{HEAD}  defaults: {{profile: kind}}\n  clusters:\n    - {{name: a, context: ctx-a}}\n    - {{name: b, context: ctx-b, profile: homelab}}\n"
        );
        let source = Source::new("fleet.yaml", text);
        assert!(is_fleet(&source));
        let f = parse(&source).unwrap();
        assert_eq!(f.profile_of(0).unwrap().0, "kind");
        assert_eq!(
            f.profile_of(1).unwrap(),
            ("homelab".into(), "spec.clusters.1.profile".into())
        );
        let layers = f.layers(&source, 1);
        assert_eq!(layers[0].path, "spec.defaults");
        assert_eq!(layers[1].path, "spec.clusters.1");
        assert_eq!(f.branch(), "telltale/fleet-shop");
    }

    #[test]
    fn the_hub_is_a_cluster_of_the_fleet_with_plain_endpoints() {
        let two = "  clusters:\n    - {name: hub, context: x}\n    - {name: eu-1, context: y}\n";
        let f = parse(&Source::new(
            "fleet.yaml",
            format!(
                "{HEAD}  hub: {{cluster: hub, endpoints: {{loki: 'http://loki:3100'}}}}\n{two}"
            ),
        ))
        .unwrap();
        assert_eq!(f.spec.hub.unwrap().cluster, "hub");
        let e = err(&format!("{HEAD}  hub: {{cluster: eu1}}\n{two}"));
        assert_eq!(e.key_path.as_deref(), Some("spec.hub.cluster"), "{e}");
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("did you mean `eu-1`?"), "{e}");
        let e = err(&format!(
            "{HEAD}  hub: {{cluster: hub, endpoints: {{loki: 'http://u:p@loki:3100'}}}}\n{two}"
        ));
        assert_eq!(
            e.key_path.as_deref(),
            Some("spec.hub.endpoints.loki"),
            "{e}"
        );
        assert!(!e.to_string().contains("u:p@"), "{e}");
        let e = err(&format!(
            "{HEAD}  hub: {{cluster: hub, endpoint: {{}}}}\n{two}"
        ));
        assert_eq!(e.hint.as_deref(), Some("did you mean `endpoints`?"), "{e}");
    }

    #[test]
    fn duplicates_and_bad_names_are_located() {
        let e = err(&format!(
            "{HEAD}  clusters:\n    - {{name: a, context: x}}\n    - {{name: a, context: y}}\n"
        ));
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("named twice"), "{e}");
        let e = err(&format!(
            "{HEAD}  clusters:\n    - {{name: a, context: x}}\n    - {{name: b, context: x}}\n"
        ));
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("two clusters"), "{e}");
        let e = err(&format!(
            "{HEAD}  clusters:\n    - {{name: Eu_1, context: x}}\n"
        ));
        assert_eq!(e.key_path.as_deref(), Some("spec.clusters.0.name"), "{e}");
        let e = err(&format!(
            "{HEAD}  clusters:\n    - {{name: a, contxt: x}}\n"
        ));
        assert_eq!(e.hint.as_deref(), Some("did you mean `context`?"), "{e}");
        let e = err(&format!("{HEAD}  clusters: []\n"));
        assert!(e.message.contains("at least one"), "{e}");
        let e = err(&format!(
            "{HEAD}  gitops: {{path: clusters/all}}\n  clusters:\n    - {{name: a, context: x}}\n"
        ));
        assert!(e.message.contains("{cluster}"), "{e}");
    }
}
