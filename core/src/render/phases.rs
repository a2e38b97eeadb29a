//! The last stage: every object into `manifests/<NN>-<phase>/` with its
//! apply step, the phases in their fixed order with their steps and
//! digests, the digest of every file, and plan.json.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::builder::Builder;
use super::objects::Object;
use super::plan::{Plan, PlanAlerting, PlanPhase, PlanPlugin, PreflightCheck, Step};
use super::{
    Bundle, RenderError, alertmanager, expectations, pretty_json, sealed, sha256, to_yaml,
};
use crate::model::{LocatedError, Phase};

pub fn finish(mut b: Builder<'_>) -> Result<Bundle, RenderError> {
    let (mut apply_steps, objects) = apply_steps(&mut b)?;
    expectations::finish(&mut b);
    let r = b.r;
    let mut phases = Vec::new();
    for phase in Phase::ALL {
        let mut steps = fixed_steps(&b, phase);
        // Objects before the release of the same phase would fail on missing
        // CRDs for the metrics phase, so releases go first.
        for rel in b.releases.iter().filter(|rel| rel.phase == phase) {
            steps.push(Step::Helm {
                release: rel.name.clone(),
                namespace: rel.namespace.clone(),
                chart: rel.chart.clone(),
                repository: rel.repository.clone(),
                version: rel.version.clone(),
                values: rel.values.clone(),
            });
        }
        steps.extend(apply_steps.remove(&phase).unwrap_or_default());
        let digest = phase_digest(&steps, &b.files.files);
        phases.push(PlanPhase {
            name: phase,
            index: phase.index(),
            digest,
            steps,
        });
    }
    let file_digests: BTreeMap<String, String> = b
        .files
        .files
        .iter()
        .map(|(p, c)| (p.clone(), sha256(c.as_bytes())))
        .collect();
    let digest = sha256(
        file_digests
            .iter()
            .map(|(p, d)| format!("{p}\0{d}\n"))
            .collect::<String>()
            .as_bytes(),
    );
    let plan = Plan {
        api_version: crate::model::API_VERSION.into(),
        kind: "Plan".into(),
        profile: r.profile.clone(),
        profile_chain: r.profile_chain.clone(),
        config: r.config_name.clone(),
        cluster: r.cluster.clone(),
        namespace: r.namespace.clone(),
        plugins: r
            .plugins
            .iter()
            .map(|p| PlanPlugin {
                name: p.name().to_string(),
                version: p.entry.plugin.metadata.version.clone(),
                phase: p.entry.plugin.spec.phase,
                builtin: p.entry.builtin,
            })
            .collect(),
        releases: b.releases,
        phases,
        alerting: PlanAlerting {
            receivers: alertmanager::tier_integrations(&r.alerting),
        },
        expectations: b.expectations,
        warnings: b.warnings,
        digest,
        files: file_digests,
    };
    let plan_json = pretty_json(&plan);
    Ok(Bundle {
        files: b.files.files,
        plan,
        plan_json,
        inhibitions: b.inhibitions,
        routes: b.routes,
        objects,
        values: b.values,
    })
}

type ApplySteps = BTreeMap<Phase, Vec<Step>>;

/// Each object checked, written to its file, with its apply step; and the
/// objects by file.
fn apply_steps(b: &mut Builder<'_>) -> Result<(ApplySteps, BTreeMap<String, Object>), RenderError> {
    let mut steps: ApplySteps = BTreeMap::new();
    let mut by_file = BTreeMap::new();
    for (phase, object) in &b.objects {
        check_object(object)?;
        let path = format!("manifests/{}/{}", phase.dir_name(), object.file_name());
        b.files.add(
            "object",
            path.clone(),
            &object.owner,
            to_yaml(&path, &object.value)?,
        )?;
        steps.entry(*phase).or_default().push(Step::Apply {
            file: path.clone(),
            kind: object.kind().to_string(),
            name: object.name().to_string(),
            namespace: object.namespace().to_string(),
        });
        by_file.insert(path, object.clone());
    }
    Ok((steps, by_file))
}

/// The steps a phase has besides releases and objects.
fn fixed_steps(b: &Builder<'_>, phase: Phase) -> Vec<Step> {
    match phase {
        Phase::Preflight => PreflightCheck::ALL
            .into_iter()
            .map(|id| Step::Check {
                id,
                description: id.description().into(),
            })
            .collect(),
        Phase::Crds => b
            .releases
            .iter()
            .filter(|rel| rel.crds)
            .map(|rel| Step::Crds {
                release: rel.name.clone(),
                chart: rel.chart.clone(),
                repository: rel.repository.clone(),
                version: rel.version.clone(),
            })
            .collect(),
        Phase::Secrets => b
            .secret_steps
            .iter()
            .cloned()
            .map(|s| sealed::adoptable(s, b.r.gitops.as_ref()))
            .collect(),
        Phase::Verify => vec![Step::Verify {
            checks: expectations::verify_checks(&b.expectations),
        }],
        Phase::Gitops => {
            b.r.gitops
                .iter()
                .map(|g| Step::Gitops {
                    repo: g.repo.clone(),
                    path: g.path.clone(),
                    layout: g.layout.map(|l| l.to_string()),
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Object names become file names and API paths: a Kubernetes name, kind
/// and namespace, checked before any file is built from them.
fn check_object(object: &Object) -> Result<(), RenderError> {
    use crate::model::validate;
    let name = object.name();
    let problem =
        if object.kind().is_empty() || !object.kind().chars().all(|c| c.is_ascii_alphanumeric()) {
            Some(("kind", "a Kubernetes kind (letters and digits)".to_string()))
        } else if let Err(i) = validate::dns_subdomain(name) {
            Some(("metadata.name", i.expected))
        } else if !object.namespace().is_empty()
            && let Err(i) = validate::dns_label(object.namespace())
        {
            Some(("metadata.namespace", i.expected))
        } else {
            None
        };
    match problem {
        None => Ok(()),
        Some((path, expected)) => Err(RenderError::Invalid(
            LocatedError::new(
                &crate::model::Source::new(format!("object of {}", object.owner), ""),
                1,
                1,
                format!(
                    "{} `{}`: expected {expected}",
                    object.kind().chars().take(64).collect::<String>(),
                    name.chars().take(64).collect::<String>()
                ),
            )
            .at_path(path),
        )),
    }
}

fn phase_digest(steps: &[Step], files: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(steps).unwrap_or_default());
    for step in steps {
        let used = match step {
            Step::Apply { file, .. } => Some(file),
            Step::Helm { values, .. } => Some(values),
            _ => None,
        };
        if let Some(content) = used.and_then(|f| files.get(f)) {
            hasher.update(content.as_bytes());
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
