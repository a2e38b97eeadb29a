//! The Flux layout: one source and one HelmRelease per release (chart
//! version pinned, values from the bundle), the manifests in their own
//! directory, and two Flux Kustomizations tying them together so the
//! manifests (PrometheusRules, ServiceMonitors…) wait for the CRDs the
//! releases bring.
//!
//! ```text
//! <path>/kustomization.yaml            → sync-releases.yaml, sync-manifests.yaml
//! <path>/sync-releases.yaml            Kustomization (kustomize.toolkit.fluxcd.io/v1) → ./<path>/releases
//! <path>/sync-manifests.yaml           Kustomization → ./<path>/manifests, dependsOn releases
//! <path>/releases/kustomization.yaml
//! <path>/releases/sources/<name>.yaml  HelmRepository or OCIRepository (source.toolkit.fluxcd.io/v1)
//! <path>/releases/<release>.yaml       HelmRelease (helm.toolkit.fluxcd.io/v2)
//! <path>/manifests/…                   the bundle's manifests + kustomization.yaml
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

    layout::manifests_dir(&m, target, &mut files);

    let releases_name = format!("{prefix}-releases");
    let releases = flux_kustomization(&releases_name, &target.join("releases"), &[], None);
    let decryption = (target.secrets == SecretsMode::Sops).then(|| {
        json!({"provider": "sops", "secretRef": {"name": target.sops.as_ref().map(|s| s.decryption_secret.clone()).unwrap_or_default()}})
    });
    let manifests = flux_kustomization(
        &format!("{prefix}-manifests"),
        &target.join("manifests"),
        &[releases_name.as_str()],
        decryption,
    );
    files.insert(target.join("sync-releases.yaml"), yaml(&releases));
    files.insert(target.join("sync-manifests.yaml"), yaml(&manifests));
    files.insert(
        target.join("kustomization.yaml"),
        layout::kustomization(&["sync-releases.yaml".into(), "sync-manifests.yaml".into()]),
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
        // `up` applies these CRDs itself; under Flux the controller owns them.
        spec["install"]["crds"] = json!("CreateReplace");
        spec["upgrade"]["crds"] = json!("CreateReplace");
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
