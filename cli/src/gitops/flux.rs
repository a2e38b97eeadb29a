//! The Flux layout: one source and one HelmRelease per release (chart
//! version pinned, values from the bundle), and a Flux Kustomization per
//! layer, each depending on the one before, so an empty cluster is built
//! in the order `up` follows: Namespace and CRDs, Secrets, releases, objects.
//!
//! ```text
//! <path>/kustomization.yaml            → the sync-*.yaml below, in order
//! <path>/sync-crds.yaml                Kustomization (kustomize.toolkit.fluxcd.io/v1) → ./<path>/crds (prune: false)
//! <path>/sync-secrets.yaml             → ./<path>/secrets, dependsOn crds (absent in reference mode; sops decryption here)
//! <path>/sync-releases.yaml            → ./<path>/releases, dependsOn secrets (or crds)
//! <path>/sync-manifests.yaml           → ./<path>/manifests, dependsOn releases
//! <path>/crds/…                        the Namespace and the pinned charts' CRDs + kustomization.yaml
//! <path>/secrets/…                     ExternalSecrets, sops Secrets or SealedSecrets + kustomization.yaml
//! <path>/releases/kustomization.yaml
//! <path>/releases/sources/<name>.yaml  HelmRepository or OCIRepository (source.toolkit.fluxcd.io/v1)
//! <path>/releases/<release>.yaml       HelmRelease (helm.toolkit.fluxcd.io/v2)
//! <path>/manifests/…                   the bundle's other objects + kustomization.yaml
//! ```

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::layout::{self, LayoutError, Rendered, Target};
use super::{SecretsMode, dns_label, yaml};
use crate::render::Bundle;
use crate::render::plan::Release;

/// The GitRepository `flux bootstrap` creates and the Kustomizations read from.
pub const FLUX_SOURCE: &str = "flux-system";
const INTERVAL: &str = "10m";

pub fn render(bundle: &Bundle, target: &Target) -> Result<Rendered, LayoutError> {
    let m = layout::manifests(bundle, target)?;
    let mut files = BTreeMap::new();
    let ns = &bundle.plan.namespace;
    let prefix = format!("telltale-{}", dns_label(&target.cluster));

    let mut resources = Vec::new();
    let mut sources: BTreeMap<String, Value> = BTreeMap::new();
    for release in &bundle.plan.releases {
        let (source_file, source) = source(release, ns);
        sources.insert(source_file, source);
    }
    for (file, source) in &sources {
        files.insert(target.join(&format!("releases/{file}")), yaml(source));
        resources.push(file.clone());
    }
    for release in &bundle.plan.releases {
        let values = layout::values(bundle, &release.values)?;
        // `up` installs releases one after the other in this order (phases,
        // then `requires`); Flux gets the same order through dependsOn.
        let depends: Vec<&Release> = bundle
            .plan
            .releases
            .iter()
            .take_while(|r| r.name != release.name)
            .collect();
        let file = format!("{}.yaml", release.name);
        files.insert(
            target.join(&format!("releases/{file}")),
            yaml(&helm_release(release, values, &depends)),
        );
        resources.push(file);
    }
    files.insert(
        target.join("releases/kustomization.yaml"),
        layout::kustomization(&resources),
    );

    let layers = layout::layer_dirs(&m, target, &mut files);

    // The order a new cluster needs, and the only one: the Namespace and
    // the CRDs, then the Secrets (in the Namespace), then the releases
    // (which read the Secrets and create custom resources), then the
    // objects (ServiceMonitors, PrometheusRules…). Each Kustomization waits
    // for its objects to be healthy before the next one starts.
    let name = |layer: &str| format!("{prefix}-{layer}");
    let mut syncs = Vec::new();
    let mut previous: Option<String> = None;
    for layer in [layout::CRDS, layout::SECRETS, "releases", layout::MANIFESTS] {
        if layer != "releases" && !layers.contains(&layer) {
            continue;
        }
        let decryption = (layer == layout::SECRETS && target.secrets == SecretsMode::Sops)
            .then(|| {
                json!({"provider": "sops", "secretRef": {"name": target.sops.as_ref().map(|s| s.decryption_secret.clone()).unwrap_or_default()}})
            });
        let mut k = flux_kustomization(
            &name(layer),
            &target.join(layer),
            previous
                .as_deref()
                .into_iter()
                .collect::<Vec<_>>()
                .as_slice(),
            decryption,
        );
        if layer == layout::CRDS {
            // Removing a CRD deletes every object of its kind, and removing
            // the Namespace everything in it: never as a side effect of a
            // file disappearing from Git.
            k["spec"]["prune"] = json!(false);
        }
        let file = format!("sync-{layer}.yaml");
        files.insert(target.join(&file), yaml(&k));
        syncs.push(file);
        previous = Some(name(layer));
    }
    files.insert(
        target.join("kustomization.yaml"),
        layout::kustomization(&syncs),
    );
    Ok(Rendered {
        files,
        pending: m.pending,
        secrets: m.secrets,
    })
}

/// `sources/<name>.yaml` and the source object: an OCIRepository pinned to
/// the chart version for `oci://` charts (Flux's recommended way), else a
/// HelmRepository shared by the releases of that repository.
fn source(release: &Release, namespace: &str) -> (String, Value) {
    if release.repository.starts_with("oci://") {
        let name = release.name.clone();
        let value = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "interval": INTERVAL,
                "url": release.repository,
                "ref": {"tag": release.version},
                "layerSelector": {
                    "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "operation": "copy",
                },
            },
        });
        (format!("sources/{name}-oci.yaml"), value)
    } else {
        let name = repository_name(&release.repository);
        let value = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"interval": "1h", "url": release.repository},
        });
        (format!("sources/{name}.yaml"), value)
    }
}

pub fn repository_name(url: &str) -> String {
    let bare = url
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    dns_label(bare)
}

fn helm_release(release: &Release, values: Value, depends: &[&Release]) -> Value {
    let mut spec = json!({
        "interval": INTERVAL,
        "releaseName": release.name,
        "install": {"remediation": {"retries": 3}},
        "upgrade": {"remediation": {"retries": 3}},
        "values": values,
    });
    if release.repository.starts_with("oci://") {
        spec["chartRef"] =
            json!({"kind": "OCIRepository", "name": release.name, "namespace": release.namespace});
    } else {
        spec["chart"] = json!({"spec": {
            "chart": release.chart,
            "version": release.version,
            "sourceRef": {"kind": "HelmRepository", "name": repository_name(&release.repository),
                          "namespace": release.namespace},
            "interval": INTERVAL,
        }});
    }
    if release.crds {
        // The chart's CRDs are committed in the crds layer, applied before
        // any release (as `up` applies them before helm runs); the chart
        // itself runs with them disabled.
        spec["install"]["crds"] = json!("Skip");
        spec["upgrade"]["crds"] = json!("Skip");
    }
    if !depends.is_empty() {
        spec["dependsOn"] = Value::Array(
            depends
                .iter()
                .map(|d| json!({"name": d.name, "namespace": d.namespace}))
                .collect(),
        );
    }
    json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": release.name, "namespace": release.namespace,
                     "labels": {"app.kubernetes.io/managed-by": "telltale"}},
        "spec": spec,
    })
}

fn flux_kustomization(
    name: &str,
    path: &str,
    depends: &[&str],
    decryption: Option<Value>,
) -> Value {
    let mut spec = json!({
        "interval": INTERVAL,
        "path": format!("./{path}"),
        "prune": true,
        "wait": true,
        "timeout": "10m",
        "sourceRef": {"kind": "GitRepository", "name": FLUX_SOURCE, "namespace": "flux-system"},
    });
    if !depends.is_empty() {
        spec["dependsOn"] = Value::Array(depends.iter().map(|d| json!({"name": d})).collect());
    }
    if let Some(d) = decryption {
        spec["decryption"] = d;
    }
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": spec,
    })
}
