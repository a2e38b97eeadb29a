//! The pull request's title and body: profile, phases, chart versions,
//! the Secrets the cluster must hold (names only) and, when given, the
//! verify report's summary. Pure, and scanned like the files before use.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::SecretsMode;
use super::layout::{KeyValue, NeededSecret, Target};
use crate::render::plan::Plan;
use crate::secrets::KeySource;

/// What `telltale verify -o json` writes, as far as the body needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub checks: Vec<VerifyCheck>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VerifyCheck {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub summary: String,
}

pub fn title(plan: &Plan, target: &Target) -> String {
    format!(
        "telltale: observability stack for {} (profile {})",
        target.cluster, plan.profile
    )
}

pub fn body(
    plan: &Plan,
    target: &Target,
    secrets: &[NeededSecret],
    verify: Option<&VerifyReport>,
) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "## Observability for `{}`\n", target.cluster);
    let _ = writeln!(
        b,
        "Profile **{}** ({}) · namespace `{}` · layout `{}` in `{}` · secrets `{}` · bundle digest `{}`\n",
        plan.profile,
        plan.profile_chain.join(" → "),
        plan.namespace,
        target.layout,
        target.path,
        target.secrets,
        &plan.digest[..plan.digest.len().min(12)],
    );
    let _ = writeln!(b, "### Phases\n\n| # | phase | steps |\n|---|---|---|");
    for phase in &plan.phases {
        let steps: Vec<String> = phase.steps.iter().map(|s| s.describe()).collect();
        let shown = if steps.len() > 4 {
            format!("{}; … ({} steps)", steps[..4].join("; "), steps.len())
        } else if steps.is_empty() {
            "—".to_string()
        } else {
            steps.join("; ")
        };
        let _ = writeln!(
            b,
            "| {:02} | {} | {} |",
            phase.index,
            phase.name,
            shown.replace('|', "\\|")
        );
    }
    let _ = writeln!(
        b,
        "\n### Helm releases\n\n| release | chart | version | repository |\n|---|---|---|---|"
    );
    for r in &plan.releases {
        let _ = writeln!(
            b,
            "| {} | {} | {} | {} |",
            r.name, r.chart, r.version, r.repository
        );
    }
    let _ = writeln!(b, "\n### Secrets\n\n{}\n", secrets_note(target.secrets));
    for s in secrets {
        let keys: Vec<String> = s
            .keys
            .iter()
            .map(|(k, v)| match v {
                KeyValue::Source(KeySource::Fixed(_)) => format!("{k} (fixed)"),
                KeyValue::Source(
                    src @ (KeySource::File(_) | KeySource::SecretRef { .. } | KeySource::Env(_)),
                ) => format!("{k} ← {src}"),
                KeyValue::Source(src) => format!("{k} ({src})"),
                KeyValue::Known(_) => format!("{k} (rendered)"),
            })
            .collect();
        let _ = writeln!(b, "- `{}/{}`: {}", s.namespace, s.name, keys.join(", "));
    }
    let needed = out_of_band(target, secrets);
    if !needed.is_empty() {
        let _ = writeln!(
            b,
            "\n### Out of band\n\nThe cluster must hold these before the branch reconciles (values never go into Git):\n"
        );
        for s in &needed {
            let _ = writeln!(
                b,
                "- `{}/{}` (keys: {}): {}",
                s.namespace,
                s.name,
                s.keys.join(", "),
                s.create
            );
        }
    }
    let _ = writeln!(b, "\n### Verify\n");
    match verify {
        Some(report) => {
            let count = |status: &str| report.checks.iter().filter(|c| c.status == status).count();
            let _ = writeln!(
                b,
                "{} — {} passed, {} failed, {} skipped\n\n| check | status | summary |\n|---|---|---|",
                if report.ok {
                    "✅ verify passed"
                } else {
                    "❌ verify failed"
                },
                count("pass"),
                count("fail"),
                count("skip"),
            );
            for c in &report.checks {
                let _ = writeln!(
                    b,
                    "| {} | {} | {} |",
                    c.id,
                    c.status,
                    c.summary.replace('|', "\\|").replace('\n', " ")
                );
            }
        }
        None => {
            let _ = writeln!(
                b,
                "No verify report was given. Run `telltale verify -o json > verify.json` and pass `--verify-report verify.json`."
            );
        }
    }
    let _ = writeln!(
        b,
        "\n<sub>Written by `telltale gitops`; re-running it updates this pull request.</sub>"
    );
    b
}

fn secrets_note(mode: SecretsMode) -> &'static str {
    match mode {
        SecretsMode::Reference => {
            "No Secret is committed. The cluster must hold these Secrets (`telltale up` creates them):"
        }
        SecretsMode::ExternalSecrets => {
            "Each Secret below comes from an ExternalSecret of the same name; the store must hold every key listed. \
             The Alertmanager config Secret holds no credentials and is left to `telltale up`."
        }
        SecretsMode::Sops => {
            "Each Secret below is committed encrypted with sops for the configured age recipients:"
        }
        SecretsMode::SealedSecrets => "Each Secret below is committed as a SealedSecret:",
    }
}

/// A Secret the cluster must hold that the branch does not deliver: names
/// and keys only, and how to create it in the chosen mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutOfBand {
    pub name: String,
    pub namespace: String,
    pub keys: Vec<String>,
    pub create: String,
}

/// What the branch leaves to the operator, per secrets mode: every Secret
/// (reference); those no ExternalSecret produces (external-secrets); the key
/// that decrypts (sops: Flux's age key; sealed-secrets: the controller's
/// key pair, which must be restored on a new cluster).
pub fn out_of_band(target: &Target, secrets: &[NeededSecret]) -> Vec<OutOfBand> {
    let keys = |s: &NeededSecret| s.keys.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    let create_generic = |s: &NeededSecret| {
        let literals: Vec<String> = s
            .keys
            .iter()
            .map(|(k, _)| format!("--from-literal={k}=…"))
            .collect();
        format!(
            "`telltale up` creates it, or `kubectl -n {} create secret generic {} {}`",
            s.namespace,
            s.name,
            literals.join(" ")
        )
    };
    match target.secrets {
        SecretsMode::Reference => secrets
            .iter()
            .map(|s| OutOfBand {
                name: s.name.clone(),
                namespace: s.namespace.clone(),
                keys: keys(s),
                create: create_generic(s),
            })
            .collect(),
        // Rendered content (the Alertmanager config) has no ExternalSecret.
        SecretsMode::ExternalSecrets => secrets
            .iter()
            .filter(|s| s.keys.iter().all(|(_, v)| matches!(v, KeyValue::Known(_))))
            .map(|s| OutOfBand {
                name: s.name.clone(),
                namespace: s.namespace.clone(),
                keys: keys(s),
                create: "`telltale up` creates it from the rendered bundle (it holds no credentials)".into(),
            })
            .collect(),
        SecretsMode::Sops => {
            let name = target
                .sops
                .as_ref()
                .map(|s| s.decryption_secret.clone())
                .unwrap_or_default();
            vec![OutOfBand {
                create: format!(
                    "the age private key of one of the recipients: `kubectl -n flux-system create secret generic {name} --from-file=age.agekey=KEY_FILE`"
                ),
                name,
                namespace: "flux-system".into(),
                keys: vec!["age.agekey".into()],
            }]
        }
        SecretsMode::SealedSecrets => vec![OutOfBand {
            name: "sealed-secrets-key…".into(),
            namespace: "kube-system".into(),
            keys: vec!["tls.crt".into(), "tls.key".into()],
            create: "the controller's key pair behind spec.gitops.sealedSecrets.cert, labelled `sealedsecrets.bitnami.com/sealed-secrets-key=active`: back it up (`kubectl -n kube-system get secret -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`) and restore it before the controller starts on a new cluster".into(),
        }],
    }
}
