//! `telltale plan` with a Fleet config: one bundle per cluster in
//! `OUT/<cluster>/`, each byte-identical to what the cluster renders alone,
//! and `OUT/fleet.json` listing them.
//!
//! The clusters render on every core at once (the catalogue is loaded
//! once and shared); any error in any cluster writes nothing. promtool and
//! amtool run once per distinct rule set and routing, not once per cluster:
//! clusters of one profile usually share both.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Fleet, Inputs};
use crate::catalog::Catalog;
use crate::error::CommandError;
use crate::render::{self, Bundle};
use crate::report::Reporter;

/// `OUT/fleet.json`: what the directory holds, so a later `plan` knows it
/// may replace it (every file listed with its sha256).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetPlan<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub fleet: &'a str,
    pub clusters: Vec<FleetPlanCluster<'a>>,
    /// Every file under OUT, `<cluster>/<path>` → sha256.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct FleetPlanCluster<'a> {
    pub name: &'a str,
    pub context: &'a str,
    pub profile: &'a str,
    pub namespace: &'a str,
    /// The bundle's digest, as its plan.json has it.
    pub digest: &'a str,
    pub plugins: usize,
    pub files: usize,
    pub warnings: &'a [String],
}

/// What `plan` wrote for a fleet: fleet.json's text, every cluster's
/// bundle (in the fleet's order) and how many files besides fleet.json.
pub struct Planned {
    pub index: String,
    pub bundles: Vec<Bundle>,
    pub written: usize,
}

/// `plan`'s use case for a fleet: renders every selected cluster, runs the
/// tool check once per distinct rule set and routing, writes `out`.
pub fn run(
    fleet: &Fleet,
    out: &Path,
    no_tool_check: bool,
    inputs: &Inputs<'_>,
    reporter: &dyn Reporter,
) -> Result<Planned, CommandError> {
    let catalog = inputs.catalog()?;
    let bundles = render_all(fleet, &catalog, inputs)?;
    for (cluster, bundle) in fleet.members().zip(&bundles) {
        for warning in &bundle.plan.warnings {
            reporter.warn(&format!("{}: {warning}", cluster.name));
        }
    }
    if !no_tool_check {
        // One run per distinct rule set and routing.
        let mut checked = BTreeSet::new();
        for (cluster, bundle) in fleet.members().zip(&bundles) {
            if checked.insert(checked_content(bundle)) {
                crate::planning::tool_check(&catalog, bundle)
                    .map_err(|e| in_cluster(&cluster.name, e))?;
            }
        }
    }
    let (index, files) = layout(fleet, &bundles);
    let written = files.len();
    crate::planning::write_files(
        out,
        files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .chain(std::iter::once(("fleet.json", index.as_str()))),
    )?;
    Ok(Planned {
        index,
        bundles,
        written,
    })
}

/// Every selected cluster's bundle, in the fleet's order, rendered on up
/// to one thread per core; the first error in the fleet's order wins, so
/// the same input always gives the same error.
pub fn render_all(
    fleet: &Fleet,
    catalog: &Catalog,
    inputs: &Inputs<'_>,
) -> Result<Vec<Bundle>, CommandError> {
    Ok(resolve_all(fleet, catalog, inputs)?
        .into_iter()
        .map(|(_, b)| b)
        .collect())
}

/// [`render_all`], with each cluster's resolved settings.
pub fn resolve_all(
    fleet: &Fleet,
    catalog: &Catalog,
    inputs: &Inputs<'_>,
) -> Result<Vec<(render::Resolved, Bundle)>, CommandError> {
    let members: Vec<_> = fleet.members().collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(members.len())
        .max(1);
    let next = AtomicUsize::new(0);
    type Rendered = Result<(render::Resolved, Bundle), render::RenderError>;
    let mut results: Vec<Option<Rendered>> = (0..members.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(cluster) = members.get(i) else {
                            break;
                        };
                        let request = fleet.request(inputs, cluster);
                        let rendered = render::resolve(catalog, &request).and_then(|r| {
                            let bundle = render::render_resolved(catalog, &r)?;
                            Ok((r, bundle))
                        });
                        done.push((i, rendered));
                    }
                    done
                })
            })
            .collect();
        for handle in handles {
            // A panic in a render thread is a bug; let it surface as one.
            for (i, result) in handle.join().expect("a render thread panicked") {
                results[i] = Some(result);
            }
        }
    });
    let mut bundles = Vec::with_capacity(members.len());
    for (cluster, result) in members.iter().zip(results) {
        match result.expect("every cluster was rendered") {
            Ok(bundle) => bundles.push(bundle),
            Err(e) => return Err(in_cluster(&cluster.name, e.into())),
        }
    }
    Ok(bundles)
}

/// An error of one cluster's render, saying which cluster (a located
/// error already points into its entry; `--set` and catalogue errors do
/// not).
pub fn in_cluster(name: &str, mut e: CommandError) -> CommandError {
    e.message = format!("cluster {name}: {}", e.message);
    e
}

/// What promtool and amtool read: the rule files and the routing.
fn checked_content(bundle: &Bundle) -> String {
    let mut hasher = Sha256::new();
    for (path, content) in bundle
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("prometheus/rules/") || p.starts_with("alertmanager/"))
    {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(content.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The files under OUT (`<cluster>/<path>`, each cluster's plan.json
/// included) and fleet.json listing them.
fn layout(fleet: &Fleet, bundles: &[Bundle]) -> (String, BTreeMap<String, String>) {
    let mut files = BTreeMap::new();
    for (cluster, bundle) in fleet.members().zip(bundles) {
        for (path, content) in &bundle.files {
            files.insert(format!("{}/{path}", cluster.name), content.clone());
        }
        files.insert(
            format!("{}/plan.json", cluster.name),
            bundle.plan_json.clone(),
        );
    }
    let digests = files.iter().map(|(p, c)| (p.clone(), sha256(c))).collect();
    let index = FleetPlan {
        api_version: crate::model::API_VERSION,
        kind: "FleetPlan",
        fleet: fleet.name(),
        clusters: fleet
            .members()
            .zip(bundles)
            .map(|(c, b)| FleetPlanCluster {
                name: &c.name,
                context: &c.context,
                profile: &b.plan.profile,
                namespace: &b.plan.namespace,
                digest: &b.plan.digest,
                plugins: b.plan.plugins.len(),
                files: b.files.len() + 1,
                warnings: &b.plan.warnings,
            })
            .collect(),
        files: digests,
    };
    let mut text = serde_json::to_string_pretty(&index).unwrap_or_default();
    text.push('\n');
    (text, files)
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bundle of one cluster inside a fleet's output directory, when `dir`
/// is one (`verify --bundle OUT` for a fleet reads `OUT/<cluster>`).
pub fn member_dir(dir: &Path, cluster: &str) -> Option<std::path::PathBuf> {
    dir.join("fleet.json").is_file().then(|| dir.join(cluster))
}
