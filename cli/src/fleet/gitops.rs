//! `telltale gitops` with a Fleet config: every cluster's rendered state in
//! its own directory (`clusters/<name>/observability` by default), all on
//! one branch, in one commit, for one pull request.
//!
//! Per cluster it is exactly the single-cluster hand-over (the same layout,
//! secrets mode, sealing, reconciliation check and out-of-band list, so a
//! cluster's directory is what `telltale gitops` writes for it alone);
//! the fleet adds the one branch (`telltale/fleet-<name>`), the commit that
//! replaces every cluster's directory at once, and the pull request that
//! lists them. For Argo CD each cluster keeps its own app of apps (its
//! `root.yaml`, Applications named `telltale-<cluster>-…` that deploy to the
//! cluster the Argo CD runs in): the clusters' bundles differ per cluster
//! (values, releases, profiles), which an ApplicationSet's one template
//! cannot express without moving the values out of Git, and the sync waves
//! that order a cluster's layers stay as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::{Fleet, Inputs};
use crate::error::{CommandError, ErrorKind};
use crate::gitops::digest::DigestKey;
use crate::gitops::github::PrRequest;
use crate::gitops::layout::{self, LayoutError, Target};
use crate::gitops::pr::{self, OutOfBand};
use crate::gitops::publish::{self as single, Options, PrReport};
use crate::gitops::repo::{self, Access, Checkout, Committed};
use crate::gitops::scan;
use crate::gitops::{Layout, SecretsMode, reconcile, seal};
use crate::model::fleet::CLUSTER_PLACEHOLDER;
use crate::render;
use crate::report::Reporter;

/// GitHub refuses a pull request body above 65,536 characters.
const MAX_BODY: usize = 60_000;

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub fleet: String,
    pub repo: String,
    pub branch: String,
    pub base: String,
    pub layout: Layout,
    pub secrets: SecretsMode,
    pub clusters: Vec<ClusterReport>,
    pub files: usize,
    pub commit: Option<String>,
    pub pushed: bool,
    pub pull_request: Option<PrReport>,
    pub unchecked_sources: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub cluster: String,
    pub path: String,
    pub profile: String,
    pub digest: String,
    pub files: usize,
    pub out_of_band: Vec<OutOfBand>,
}

/// One cluster's part of the hand-over.
struct Part {
    target: Target,
    bundle: render::Bundle,
    rendered: layout::Rendered,
}

pub fn run(
    fleet: &Fleet,
    args: &Options,
    inputs: &Inputs<'_>,
    reporter: &dyn Reporter,
) -> Result<Report, CommandError> {
    let env = |var: &str| std::env::var(var).ok();
    if let Some(path) = &args.path
        && !path.contains(CLUSTER_PLACEHOLDER)
    {
        return Err(CommandError::bad_input(format!(
            "--path `{path}` for a fleet must hold `{CLUSTER_PLACEHOLDER}`, or every cluster would be written to the same directory"
        ))
        .with_hint("e.g. --path clusters/{cluster}/observability (the default)"));
    }
    let verify = match &args.verify_report {
        Some(file) => Some(read_fleet_verify(file)?),
        None => None,
    };
    let catalog = inputs.catalog()?;
    let resolved = super::plan::resolve_all(fleet, &catalog, inputs)?;

    let mut parts = Vec::new();
    let mut repo_url = String::new();
    for (cluster, (r, bundle)) in fleet.members().zip(&resolved) {
        for warning in &bundle.plan.warnings {
            reporter.warn(&format!("{}: {warning}", cluster.name));
        }
        let config = r.gitops.clone().unwrap_or_default();
        let member_args = Options {
            path: args
                .path
                .as_ref()
                .map(|p| p.replace(CLUSTER_PLACEHOLDER, &cluster.name)),
            // One branch for the fleet, spec.gitops or not.
            branch: args.branch.clone().or_else(|| Some(fleet.doc.branch())),
            ..args.clone()
        };
        let (target, url) = single::target(&member_args, &config, bundle)
            .map_err(|e| crate::fleet::plan::in_cluster(&cluster.name, e))?;
        repo_url = url;
        parts.push((target, bundle.clone()));
    }
    let gitops = fleet.doc.spec.gitops.clone().unwrap_or_default();
    let (base, branch) = (parts[0].0.revision.clone(), parts[0].0.branch.clone());
    let (layout_kind, secrets_mode) = (parts[0].0.layout, parts[0].0.secrets);
    let github_repo = if args.no_pr {
        None
    } else {
        Some(single::github_repo(args, &gitops, &repo_url)?)
    };

    // The CRDs once per chart version, whichever clusters share it.
    let mut releases: BTreeMap<(String, String, String), &render::plan::Release> = BTreeMap::new();
    for (_, bundle) in &parts {
        for r in bundle.plan.releases.iter().filter(|r| r.crds) {
            releases
                .entry((r.chart.clone(), r.repository.clone(), r.version.clone()))
                .or_insert(r);
        }
    }
    let wanted: Vec<&render::plan::Release> = releases.values().copied().collect();
    let fetched = single::fetch_release_crds(&wanted, reporter)?;
    let by_chart: BTreeMap<(String, String, String), String> = releases
        .iter()
        .filter_map(|(key, r)| Some((key.clone(), fetched.get(&r.name)?.clone())))
        .collect();

    let mut done: Vec<Part> = Vec::new();
    for (mut target, bundle) in parts {
        target.chart_crds = bundle
            .plan
            .releases
            .iter()
            .filter(|r| r.crds)
            .filter_map(|r| {
                let key = (r.chart.clone(), r.repository.clone(), r.version.clone());
                Some((r.name.clone(), by_chart.get(&key)?.clone()))
            })
            .collect();
        let rendered = layout::render(&bundle, &target).map_err(|e| match e {
            LayoutError::MissingSettings { mode, key } => crate::catalog::locate(
                &fleet.source,
                "spec.gitops",
                format!("secrets mode {mode} needs spec.gitops.{key}"),
            )
            .with_hint(single::settings_hint(mode))
            .into(),
            other => crate::fleet::plan::in_cluster(
                &target.cluster,
                CommandError::bad_input(other.to_string()),
            ),
        })?;
        done.push(Part {
            target,
            bundle,
            rendered,
        });
    }

    let title = format!(
        "telltale: observability stack for fleet {} ({})",
        fleet.name(),
        crate::plural::count(done.len(), "cluster")
    );
    let body = body(fleet, &done, verify.as_ref());

    // The gate, over every cluster's files and sources.
    let sources: Vec<_> = resolved
        .iter()
        .flat_map(|(r, _)| scan::config_sources(r))
        .collect();
    let (canaries, unchecked, token) = scan::gate(&sources, &env);
    let unchecked: Vec<String> = unchecked
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let redact = |e: CommandError| scan::redact_error(e, &canaries);
    let mut scanned: BTreeMap<String, String> =
        done.iter().flat_map(|p| p.rendered.files.clone()).collect();
    scanned.insert("(pull request title)".into(), title.clone());
    scanned.insert("(pull request body)".into(), body.clone());
    single::refuse_findings(scan::scan(&scanned, &canaries))?;
    if github_repo.is_some() && token.is_none() {
        return Err(CommandError::environment(
            "GITHUB_TOKEN is not set; it is needed to open the pull request",
        )
        .with_hint(
            "export GITHUB_TOKEN (a token with pull-request write access), or pass --no-pr",
        ));
    }

    let access = Access { token };
    reporter.status(&format!(
        "fetching {base} from {}",
        repo::display_repo(&repo_url)
    ));
    let checkout = Checkout::open(&repo_url, &branch, &base, &access)
        .map_err(single::git_error)
        .map_err(redact)?;

    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut clusters = Vec::new();
    for part in &done {
        let mut part_files = part.rendered.files.clone();
        if !part.rendered.pending.is_empty() {
            let key = DigestKey::load(&env).map_err(CommandError::from)?;
            // Generated values are read from this cluster, through its context.
            let member = crate::session::Where {
                context: part.bundle.plan.cluster.context.clone(),
                ..inputs.at.clone()
            };
            let cluster_secrets = single::ClusterSecrets::new(member, &part.bundle);
            let sealed = seal::seal(
                &part.rendered.pending,
                &part.target,
                &|p| checkout.read(p),
                args.reseal,
                &key,
                &|ns, name, key| cluster_secrets.get(ns, name, key),
                &env,
                &|tool| tool.to_string(),
            )
            .map_err(|e| {
                let err = CommandError::from(e);
                redact(crate::fleet::plan::in_cluster(&part.target.cluster, err))
            })?;
            for what in &sealed.generated {
                reporter.warn(&format!(
                    "{}: {what}: a new value was generated ({}); the cluster's is replaced once this branch is applied",
                    part.target.cluster,
                    cluster_secrets.why_not()
                ));
            }
            single::refuse_findings(scan::scan(&sealed.files, &canaries))?;
            part_files.extend(sealed.files);
        }
        let out_of_band = pr::out_of_band(&part.target, &part.rendered.secrets);
        reconcile::simulate(
            &part_files,
            &[],
            &part.target,
            &part.rendered.secrets,
            reconcile::initial_state(&part.target, &out_of_band),
        )
        .map_err(|e| {
            CommandError::new(
                ErrorKind::Failed,
                format!(
                    "cluster {}: {e}; nothing was committed",
                    part.target.cluster
                ),
            )
            .with_hint("this is telltale's layout failing its own check: please report it with the profile and the secrets mode")
        })?;
        clusters.push(ClusterReport {
            cluster: part.target.cluster.clone(),
            path: part.target.path.clone(),
            profile: part.bundle.plan.profile.clone(),
            digest: part.bundle.plan.digest.clone(),
            files: part_files.len(),
            out_of_band,
        });
        files.extend(part_files);
    }

    let author = checkout
        .author(args.author_name.as_deref(), args.author_email.as_deref())
        .map_err(|e| {
            CommandError::bad_input(e.to_string()).with_hint(
                "set git config user.name/user.email, or pass --author-name and --author-email",
            )
        })?;
    let mut message = format!(
        "telltale: observability stack for fleet {} ({})\n\nLayout {layout_kind}, secrets {secrets_mode}.\n\n",
        fleet.name(),
        crate::plural::count(done.len(), "cluster"),
    );
    for part in &done {
        let _ = writeln!(
            message,
            "{}: profile {}, {}, bundle digest {}",
            part.target.cluster,
            part.bundle.plan.profile,
            part.target.path,
            part.bundle.plan.digest
        );
    }
    let dirs: Vec<&str> = done.iter().map(|p| p.target.path.as_str()).collect();
    let committed = checkout
        .commit_dirs(&dirs, &files, &message, &author)
        .map_err(single::git_error)
        .map_err(redact)?;
    let (commit, pushed) = match committed {
        Committed::New(id) => {
            reporter.status(&format!(
                "committed {} on {branch}; pushing",
                &id.to_string()[..12]
            ));
            checkout
                .push(&access)
                .map_err(single::git_error)
                .map_err(redact)?;
            (Some(id.to_string()), true)
        }
        Committed::Unchanged => {
            reporter.status(&format!("nothing changed on {branch}: no commit"));
            (None, false)
        }
    };

    let branch_on_remote = pushed || checkout.branch_exists;
    let pull_request = match (&github_repo, branch_on_remote, &access.token) {
        (Some(gh), true, Some(token)) => {
            let api_url = single::github_api_url(args, &gitops);
            let request = PrRequest {
                api_url: &api_url,
                token,
                repo: gh,
                head: &branch,
                base: &base,
                title: &title,
                body: &body,
            };
            Some(single::open_pull_request(&request, &redact)?)
        }
        (Some(_), false, _) => {
            reporter.status(&format!(
                "{base} already holds this state: no branch, no pull request"
            ));
            None
        }
        _ => None,
    };

    let report = Report {
        ok: true,
        fleet: fleet.name().to_string(),
        repo: repo::display_repo(&repo_url),
        branch,
        base,
        layout: layout_kind,
        secrets: secrets_mode,
        files: files.len(),
        clusters,
        commit,
        pushed,
        pull_request,
        unchecked_sources: unchecked,
    };
    Ok(report)
}

/// The pull request: a table of the clusters, then each cluster's own
/// section (what `telltale gitops` writes for one cluster, a heading
/// level down), cut to what GitHub accepts.
fn body(
    fleet: &Fleet,
    parts: &[Part],
    verify: Option<&BTreeMap<String, pr::VerifyReport>>,
) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "## Fleet `{}`: {}\n\n| cluster | profile | path | bundle digest | verify |\n|---|---|---|---|---|",
        fleet.name(),
        crate::plural::count(parts.len(), "cluster")
    );
    for p in parts {
        let verified = match verify.and_then(|v| v.get(&p.target.cluster)) {
            Some(r) if r.ok => "✅",
            Some(_) => "❌",
            None => "—",
        };
        let _ = writeln!(
            b,
            "| {} | {} | `{}` | `{}` | {verified} |",
            p.target.cluster,
            p.bundle.plan.profile,
            p.target.path,
            &p.bundle.plan.digest[..12]
        );
    }
    let mut sections = String::new();
    for p in parts {
        let one = pr::body(
            &p.bundle.plan,
            &p.target,
            &p.rendered.secrets,
            verify.and_then(|v| v.get(&p.target.cluster)),
        );
        for line in one.lines() {
            if line.starts_with('#') {
                sections.push('#');
            }
            sections.push_str(line);
            sections.push('\n');
        }
        sections.push('\n');
    }
    if b.len() + sections.len() <= MAX_BODY {
        b.push('\n');
        b.push_str(&sections);
    } else {
        let _ = writeln!(
            b,
            "\nThe per-cluster details ({} characters) exceed what a pull request body holds: `telltale plan` with the Fleet file writes them, and `telltale gitops -o json` lists each cluster's out-of-band Secrets.",
            sections.len()
        );
    }
    b
}

/// A fleet verify report (`telltale verify -o json` with the Fleet config):
/// each cluster's report by name.
fn read_fleet_verify(
    file: &std::path::Path,
) -> Result<BTreeMap<String, pr::VerifyReport>, CommandError> {
    #[derive(serde::Deserialize)]
    struct FleetVerify {
        clusters: Vec<Member>,
    }
    #[derive(serde::Deserialize)]
    struct Member {
        cluster: String,
        report: serde_json::Value,
    }
    let text = std::fs::read_to_string(file).map_err(|e| {
        CommandError::bad_input(format!(
            "cannot read the verify report {}: {e}",
            file.display()
        ))
    })?;
    let doc: FleetVerify = serde_json::from_str(&text).map_err(|e| {
        CommandError::bad_input(format!(
            "{} is not a fleet's verify report (`telltale verify -o json` with the Fleet config): {e}",
            file.display()
        ))
    })?;
    Ok(doc
        .clusters
        .into_iter()
        .filter_map(|m| Some((m.cluster, serde_json::from_value(m.report).ok()?)))
        .collect())
}
