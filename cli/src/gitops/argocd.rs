//! The Argo CD layout: an Application per layer and per Helm release
//! (chart version pinned, values inline) and a root Application over them
//! all (app of apps). Sync waves follow the phases, so an empty cluster is
//! built in the order `up` follows: Namespace and CRDs (wave 2), Secrets
//! (3), the releases (their phase, 4–9), the objects (11).
//!
//! ```text
//! <path>/root.yaml                  Application → <path>/apps (apply this one by hand, once)
//! <path>/apps/crds.yaml             Application → <path>/crds (the Namespace and the CRDs; no prune)
//! <path>/apps/secrets.yaml          Application → <path>/secrets (absent in reference mode)
//! <path>/apps/<release>.yaml        Application (argoproj.io/v1alpha1), Helm source
//! <path>/apps/manifests.yaml        Application → <path>/manifests
//! <path>/{crds,secrets,manifests}/… the layers + kustomization.yaml each
//! ```

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::layout::{self, LayoutError, Rendered, Target};
use super::{dns_label, yaml};
use crate::model::Phase;
use crate::render::Bundle;
use crate::render::plan::Release;

pub const ARGOCD_NAMESPACE: &str = "argocd";
const IN_CLUSTER: &str = "https://kubernetes.default.svc";

pub fn render(bundle: &Bundle, target: &Target) -> Result<Rendered, LayoutError> {
    let m = layout::manifests(bundle, target)?;
    let mut files = BTreeMap::new();
    let prefix = format!("telltale-{}", dns_label(&target.cluster));
    let ns = &bundle.plan.namespace;
    for release in &bundle.plan.releases {
        let values = layout::values(bundle, &release.values)?;
        files.insert(
            target.join(&format!("apps/{}.yaml", release.name)),
            yaml(&helm_application(&prefix, release, values)),
        );
    }
    let layers = layout::layer_dirs(&m, target, &mut files);
    for (layer, wave) in [
        (layout::CRDS, Phase::Crds),
        (layout::SECRETS, Phase::Secrets),
        // After every release: the objects need the CRDs, and some the releases.
        (layout::MANIFESTS, Phase::Gitops),
    ] {
        if !layers.contains(&layer) {
            continue;
        }
        let mut app = application(
            &format!("{prefix}-{layer}"),
            wave.index(),
            json!({"repoURL": target.repo_url, "targetRevision": target.revision,
                   "path": target.join(layer)}),
            ns,
        );
        if layer == layout::CRDS {
            // Removing a CRD deletes every object of its kind, the Namespace
            // everything in it: never because a file left Git.
            app["spec"]["syncPolicy"]["automated"]["prune"] = json!(false);
        }
        files.insert(target.join(&format!("apps/{layer}.yaml")), yaml(&app));
    }
    let root = application(
        &prefix,
        0,
        json!({"repoURL": target.repo_url, "targetRevision": target.revision,
               "path": target.join("apps")}),
        ARGOCD_NAMESPACE,
    );
    files.insert(target.join("root.yaml"), yaml(&root));
    Ok(Rendered {
        files,
        pending: m.pending,
        secrets: m.secrets,
    })
}

fn helm_application(prefix: &str, release: &Release, values: Value) -> Value {
    // Argo CD names an OCI Helm repository without the scheme and the chart.
    let (repo_url, chart) = match release.repository.strip_prefix("oci://") {
        Some(rest) => {
            let base = rest
                .strip_suffix(&format!("/{}", release.chart))
                .unwrap_or(rest);
            (base.to_string(), release.chart.clone())
        }
        None => (release.repository.clone(), release.chart.clone()),
    };
    let mut helm = json!({"releaseName": release.name, "valuesObject": values});
    if release.crds {
        // Committed in the crds layer (wave 2) instead, as `up` applies them.
        helm["skipCrds"] = json!(true);
    }
    application(
        &format!("{prefix}-{}", release.name),
        release.phase.index(),
        json!({"repoURL": repo_url, "chart": chart, "targetRevision": release.version, "helm": helm}),
        &release.namespace,
    )
}

fn application(name: &str, wave: usize, source: Value, namespace: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": ARGOCD_NAMESPACE,
            "annotations": {"argocd.argoproj.io/sync-wave": wave.to_string()},
            "labels": {"app.kubernetes.io/managed-by": "telltale"},
        },
        "spec": {
            "project": "default",
            "source": source,
            "destination": {"server": IN_CLUSTER, "namespace": namespace},
            "syncPolicy": {
                "automated": {"prune": true, "selfHeal": true},
                // CRDs are too large for client-side apply.
                "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
            },
        },
    })
}
