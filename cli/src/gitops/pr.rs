//! The pull request's title and body: profile, phases, chart versions,
//! the Secrets the cluster must hold (names only) and, when given, the
//! verify report's summary. Pure, and scanned like the files before use.

use std::fmt::Write;

use serde::Deserialize;

use super::SecretsMode;
use super::layout::{KeyValue, NeededSecret, Target};
use crate::render::plan::Plan;

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
                KeyValue::Source(src) if src.starts_with("fixed:") => format!("{k} (fixed)"),
                KeyValue::Source(src)
                    if src.starts_with("file:")
                        || src.starts_with("secretRef:")
                        || src.starts_with("env:") =>
                {
                    format!("{k} ← {src}")
                }
                KeyValue::Source(src) => format!("{k} ({src})"),
                KeyValue::Known(_) => format!("{k} (rendered)"),
            })
            .collect();
        let _ = writeln!(b, "- `{}/{}`: {}", s.namespace, s.name, keys.join(", "));
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
