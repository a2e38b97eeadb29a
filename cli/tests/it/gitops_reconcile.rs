//! The committed branch, reconciled on an empty cluster the way Flux, Argo
//! CD or `kubectl apply` run it (telltale::gitops::reconcile): for every
//! built-in profile × layout × secrets mode that telltale does not refuse,
//! the stack comes up in order; and the simulation fails on the orders
//! that do not work (today's Flux order before the crds layer, a cycle,
//! a branch without CRDs). Sealed-secrets branches are simulated with their
//! SealedSecrets as kubeseal writes them (tests/fixtures/stand-ins/kubeseal),
//! as `gitops` runs its lint.

use std::collections::BTreeMap;
use std::path::Path;

use telltale::gitops::layout::{self, Rendered, Target};
use telltale::gitops::reconcile::{self, Failure};
use telltale::gitops::{Layout, SecretsMode, pr};
use telltale::render::Bundle;

const PATH: &str = "clusters/c1/observability";

/// The prometheus-operator CRDs as `helm show crds` prints them (the
/// upstream files in tests/fixtures/crds).
pub fn operator_crds() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crds/prometheus-operator");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| format!("---\n{}", std::fs::read_to_string(p).unwrap()))
        .collect()
}

/// The same CRDs reduced to what the simulation reads (group, kind, name):
/// the matrix below renders 60 branches, and 4.5 MB of schema each would
/// make it slow without testing more; the schemas are validated elsewhere.
fn operator_crds_reduced() -> &'static str {
    static CRDS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CRDS.get_or_init(|| {
        let full = operator_crds();
        layout::split_documents(&full)
            .into_iter()
            .map(|doc| {
                let crd: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
                let reduced = serde_json::json!({
                    "apiVersion": crd["apiVersion"], "kind": crd["kind"],
                    "metadata": {"name": crd["metadata"]["name"]},
                    "spec": {"group": crd["spec"]["group"], "names": crd["spec"]["names"],
                             "scope": crd["spec"]["scope"]},
                });
                format!("---\n{}", telltale::gitops::yaml(&reduced))
            })
            .collect()
    })
}

fn target(bundle: &Bundle, layout: Layout, secrets: SecretsMode) -> Target {
    target_with(bundle, layout, secrets, operator_crds_reduced())
}

fn target_with(bundle: &Bundle, layout: Layout, secrets: SecretsMode, crds: &str) -> Target {
    crate::common::gitops_target(bundle, layout, secrets, crds)
}

/// Every profile, and production with every receiver (more Secrets).
fn bundles() -> Vec<(String, Bundle)> {
    let mut out: Vec<(String, Bundle)> = crate::common::PROFILES
        .iter()
        .map(|p| (p.to_string(), crate::common::render_profile(p)))
        .collect();
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/configs/production-receivers.yaml"),
    )
    .unwrap();
    out.push((
        "production+receivers".into(),
        crate::common::render_with("production", Some(&config), &[]),
    ));
    out
}

/// The modes telltale writes for a layout (sops only where Flux decrypts it).
fn modes(layout: Layout) -> Vec<SecretsMode> {
    let mut m = vec![
        SecretsMode::Reference,
        SecretsMode::ExternalSecrets,
        SecretsMode::SealedSecrets,
    ];
    if layout == Layout::Flux {
        m.push(SecretsMode::Sops);
    }
    m
}

fn simulate(
    rendered: &Rendered,
    files: &BTreeMap<String, String>,
    target: &Target,
) -> Result<reconcile::Outcome, Failure> {
    let oob = pr::out_of_band(target, &rendered.secrets);
    reconcile::simulate(
        files,
        &rendered.pending,
        target,
        &rendered.secrets,
        reconcile::initial_state(target, &oob),
    )
}

fn position(outcome: &reconcile::Outcome, added: &str) -> usize {
    outcome
        .steps
        .iter()
        .position(|s| s.added.iter().any(|a| a == added))
        .unwrap_or_else(|| panic!("no step adds {added}: {:#?}", outcome.steps))
}

#[test]
fn every_profile_layout_and_secrets_mode_builds_the_stack_from_an_empty_cluster() {
    let mut runs = 0;
    for (name, bundle) in bundles() {
        for layout in [Layout::Flux, Layout::Argocd, Layout::Plain] {
            for mode in modes(layout) {
                let t = target(&bundle, layout, mode);
                let mut rendered = layout::render(&bundle, &t).unwrap();
                if mode == SecretsMode::SealedSecrets {
                    // As `gitops` runs its lint: the SealedSecrets as kubeseal
                    // writes them (its stand-in), nothing left pending.
                    let sealed = crate::common::seal_with_stand_in(&rendered, &t);
                    rendered.files.extend(sealed);
                    rendered.pending.clear();
                }
                let outcome = simulate(&rendered, &rendered.files, &t)
                    .unwrap_or_else(|e| panic!("{name} × {layout} × {mode}: {e}"));
                let what = format!("{name} × {layout} × {mode}");
                // The full stack: the namespace, every CRD, every release,
                // every Secret the stack reads.
                let s = &outcome.state;
                assert!(s.namespaces.contains("monitoring"), "{what}");
                for kind in [
                    "Prometheus",
                    "Alertmanager",
                    "ServiceMonitor",
                    "PrometheusRule",
                ] {
                    assert!(
                        s.kinds.contains(&format!("monitoring.coreos.com/{kind}")),
                        "{what}: {kind}"
                    );
                }
                for r in &bundle.plan.releases {
                    assert!(
                        s.releases.contains(&format!("{}/{}", r.namespace, r.name)),
                        "{what}: release {}",
                        r.name
                    );
                }
                for secret in &rendered.secrets {
                    assert!(
                        s.secrets
                            .contains(&format!("{}/{}", secret.namespace, secret.name)),
                        "{what}: Secret {}",
                        secret.name
                    );
                }
                // In order: the namespace and the CRDs before the first
                // release, the releases before the ServiceMonitors.
                let ns = position(&outcome, "namespace monitoring");
                let crd = position(&outcome, "kind monitoring.coreos.com/Prometheus");
                let first = bundle.plan.releases.first().unwrap();
                let release = position(
                    &outcome,
                    &format!("release {}/{}", first.namespace, first.name),
                );
                assert!(
                    ns <= release && crd < release,
                    "{what}: {:#?}",
                    outcome.steps
                );
                if mode != SecretsMode::Reference {
                    let committed = rendered.secrets.iter().find(|s| {
                        mode != SecretsMode::ExternalSecrets
                            || s.keys
                                .iter()
                                .any(|(_, v)| matches!(v, layout::KeyValue::Source(_)))
                    });
                    if let Some(secret) = committed {
                        let at = position(
                            &outcome,
                            &format!("secret {}/{}", secret.namespace, secret.name),
                        );
                        assert!(ns <= at && at < release, "{what}: Secrets before releases");
                    }
                }
                runs += 1;
            }
        }
    }
    // 6 bundles × (flux 4 + argocd 3 + plain 3).
    assert_eq!(runs, 60);
}

fn flux_production() -> (Bundle, Target, Rendered) {
    let (_, bundle) = bundles().pop().unwrap();
    let t = target(&bundle, Layout::Flux, SecretsMode::ExternalSecrets);
    let rendered = layout::render(&bundle, &t).unwrap();
    (bundle, t, rendered)
}

fn edit(files: &mut BTreeMap<String, String>, file: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let key = format!("{PATH}/{file}");
    let mut value: serde_json::Value = serde_saphyr::from_str(&files[&key]).unwrap();
    f(&mut value);
    files.insert(key, telltale::gitops::yaml(&value));
}

#[test]
fn the_order_before_the_crds_layer_fails_on_an_empty_cluster() {
    // Before the crds layer, the Namespace and the Secrets were applied by
    // the manifests Kustomization, after the releases that need them:
    // crds (and secrets) depending on the releases reproduces that order.
    let (_, t, rendered) = flux_production();
    let mut files = rendered.files.clone();
    edit(&mut files, "sync-releases.yaml", |k| {
        k["spec"].as_object_mut().unwrap().remove("dependsOn");
    });
    edit(&mut files, "sync-crds.yaml", |k| {
        k["spec"]["dependsOn"] = serde_json::json!([{"name": "telltale-c1-releases"}]);
    });
    let err = simulate(&rendered, &files, &t).unwrap_err();
    match &err {
        Failure::Missing { step, needs, .. } => {
            assert_eq!(step, "Kustomization/telltale-c1-releases");
            assert_eq!(needs, "namespace monitoring", "{err}");
        }
        other => panic!("expected a missing namespace, got {other}"),
    }
    assert!(err.to_string().contains("does not exist yet"));
}

#[test]
fn a_cycle_is_a_deadlock() {
    let (_, t, rendered) = flux_production();
    let mut files = rendered.files.clone();
    edit(&mut files, "sync-crds.yaml", |k| {
        k["spec"]["dependsOn"] = serde_json::json!([{"name": "telltale-c1-manifests"}]);
    });
    let err = simulate(&rendered, &files, &t).unwrap_err();
    let Failure::Deadlock { waiting } = &err else {
        panic!("expected a deadlock, got {err}")
    };
    assert_eq!(waiting.len(), 4, "{err}");
}

#[test]
fn a_branch_without_the_crds_misses_them() {
    // Before the crds layer nothing in the branch installed the
    // prometheus-operator CRDs (the chart runs with crds.enabled: false).
    let (_, t, rendered) = flux_production();
    let mut files = rendered.files.clone();
    edit(&mut files, "crds/kustomization.yaml", |k| {
        let kept: Vec<serde_json::Value> = k["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r.as_str().unwrap().contains("CustomResourceDefinition"))
            .cloned()
            .collect();
        k["resources"] = serde_json::json!(kept);
    });
    let err = simulate(&rendered, &files, &t).unwrap_err();
    let Failure::Missing { step, needs, .. } = &err else {
        panic!("expected a missing CRD, got {err}")
    };
    assert_eq!(step, "Kustomization/telltale-c1-releases");
    assert!(
        needs.starts_with("the CRD of monitoring.coreos.com/"),
        "{err}"
    );
}

#[test]
fn argo_waves_out_of_order_miss_the_crds_and_sops_without_decryption_is_caught() {
    let (_, bundle) = bundles().pop().unwrap();
    let t = target(&bundle, Layout::Argocd, SecretsMode::SealedSecrets);
    let rendered = layout::render(&bundle, &t).unwrap();
    let mut files = rendered.files.clone();
    edit(&mut files, "apps/crds.yaml", |a| {
        a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] = serde_json::json!("12");
    });
    let err = simulate(&rendered, &files, &t).unwrap_err();
    assert!(
        matches!(&err, Failure::Missing { needs, .. } if needs.contains("the CRD of monitoring.coreos.com/")),
        "{err}"
    );

    let t = target(&bundle, Layout::Flux, SecretsMode::Sops);
    let rendered = layout::render(&bundle, &t).unwrap();
    let mut files = rendered.files.clone();
    edit(&mut files, "sync-secrets.yaml", |k| {
        k["spec"].as_object_mut().unwrap().remove("decryption");
    });
    let err = simulate(&rendered, &files, &t).unwrap_err();
    assert!(
        matches!(&err, Failure::Missing { needs, .. } if needs == "sops decryption"),
        "{err}"
    );
}

#[test]
fn the_crds_layer_holds_the_charts_crds_and_is_never_pruned() {
    let (_, bundle) = bundles().pop().unwrap();
    let full = operator_crds();
    let t = target_with(&bundle, Layout::Flux, SecretsMode::ExternalSecrets, &full);
    let rendered = layout::render(&bundle, &t).unwrap();
    simulate(&rendered, &rendered.files, &t).expect("the real CRDs reconcile too");
    let f = &rendered.files;
    let crds: Vec<&String> = f
        .keys()
        .filter(|k| k.contains("/crds/kube-prometheus-stack/CustomResourceDefinition_"))
        .collect();
    assert_eq!(crds.len(), 10, "every CRD of the chart: {crds:?}");
    let k: serde_json::Value =
        serde_saphyr::from_str(&f[&format!("{PATH}/sync-crds.yaml")]).unwrap();
    assert_eq!(k["spec"]["prune"], false);
    assert_eq!(k["spec"]["wait"], true);
    let top: serde_json::Value =
        serde_saphyr::from_str(&f[&format!("{PATH}/kustomization.yaml")]).unwrap();
    assert_eq!(
        top["resources"],
        serde_json::json!([
            "sync-crds.yaml",
            "sync-secrets.yaml",
            "sync-releases.yaml",
            "sync-manifests.yaml"
        ])
    );
    // The chart does not install them a second time.
    let kps = bundle.plan.releases.iter().find(|r| r.crds).unwrap();
    let hr: serde_json::Value =
        serde_saphyr::from_str(&f[&format!("{PATH}/releases/{}.yaml", kps.name)]).unwrap();
    assert_eq!(hr["spec"]["install"]["crds"], "Skip");
    // A release whose CRDs were not fetched is refused, not committed without them.
    let mut missing = t.clone();
    missing.chart_crds.clear();
    let err = layout::render(&bundle, &missing).unwrap_err();
    assert!(
        err.to_string()
            .contains("CRDs of release kube-prometheus-stack"),
        "{err}"
    );
}

#[test]
fn a_secret_nobody_creates_is_missing() {
    // Reference mode relies on the Secrets made out of band; without them
    // the first release that reads one cannot start.
    let (_, bundle) = bundles().pop().unwrap();
    let t = target(&bundle, Layout::Flux, SecretsMode::Reference);
    let rendered = layout::render(&bundle, &t).unwrap();
    let err = reconcile::simulate(
        &rendered.files,
        &rendered.pending,
        &t,
        &rendered.secrets,
        reconcile::initial_state(&t, &[]),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Failure::Missing { needs, .. } if needs.starts_with("Secret monitoring/")),
        "{err}"
    );
}
