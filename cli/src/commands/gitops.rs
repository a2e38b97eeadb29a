//! `telltale gitops`: render, lay out for Flux/Argo CD/plain, scan for
//! secrets, commit on the telltale branch, push it, open or update one PR.

use std::path::PathBuf;

use clap::Args;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::gitops::pr::OutOfBand;
use crate::gitops::publish::{self, Options, PrReport, Rendered, Report, summary};
use crate::gitops::{Layout, SecretsMode};
use crate::render;
use crate::ui::Printer;
use crate::ui::reporter::Terminal;

/// Commit the rendered state on a branch (never the base branch) and open,
/// or update, exactly one pull request. Every file and the pull request
/// text are scanned for the config's secret values and known secret shapes
/// before anything is committed. A run with nothing new commits nothing.
#[derive(Debug, Clone, Default, Args)]
pub struct GitopsArgs {
    /// The repository: a local path or a URL (ssh uses the SSH agent, https
    /// GITHUB_TOKEN) [default: the config's spec.gitops.repo]
    #[arg(long, value_name = "PATH|URL")]
    pub repo: Option<String>,
    /// The branch to commit on [default: telltale/<cluster>]
    #[arg(long, value_name = "B")]
    pub branch: Option<String>,
    /// The branch the pull request targets; it is never written [default: main]
    #[arg(long, value_name = "B")]
    pub base: Option<String>,
    /// Directory in the repository [default: clusters/<cluster>/observability]
    #[arg(long, value_name = "P")]
    pub path: Option<String>,
    /// Repository layout [default: the config's, else flux]
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// How Secrets reach the cluster; no mode commits a value in plaintext
    /// [default: the config's, else reference]
    #[arg(long, value_enum)]
    pub secrets: Option<SecretsMode>,
    /// Stop after the push: no pull request
    #[arg(long)]
    pub no_pr: bool,
    /// The GitHub repository, owner/name [default: the config's, or from a github.com URL]
    #[arg(long, value_name = "O/R")]
    pub github_repo: Option<String>,
    /// The GitHub API (GitHub Enterprise: https://HOST/api/v3) [default: https://api.github.com]
    #[arg(long, value_name = "URL")]
    pub github_api_url: Option<String>,
    /// Summarise this verify report (`telltale verify -o json > FILE`) in the pull request
    #[arg(long, value_name = "FILE")]
    pub verify_report: Option<PathBuf>,
    /// Commit author name [default: git config user.name]
    #[arg(long, value_name = "NAME")]
    pub author_name: Option<String>,
    /// Commit author email [default: git config user.email]
    #[arg(long, value_name = "EMAIL")]
    pub author_email: Option<String>,
    /// sops/sealed-secrets: encrypt again even when the committed content digest matches
    #[arg(long)]
    pub reseal: bool,
}

impl From<&GitopsArgs> for Options {
    fn from(a: &GitopsArgs) -> Options {
        Options {
            repo: a.repo.clone(),
            branch: a.branch.clone(),
            base: a.base.clone(),
            path: a.path.clone(),
            layout: a.layout,
            secrets: a.secrets,
            no_pr: a.no_pr,
            github_repo: a.github_repo.clone(),
            github_api_url: a.github_api_url.clone(),
            verify_report: a.verify_report.clone(),
            author_name: a.author_name.clone(),
            author_email: a.author_email.clone(),
            reseal: a.reseal,
        }
    }
}

pub fn run(args: GitopsArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    if let Some(fleet) = global.fleet()? {
        let report = crate::fleet::gitops::run(
            &fleet,
            &Options::from(&args),
            &global.fleet_inputs(),
            &Terminal::new(printer),
        )?;
        print_fleet_report(printer, &report);
        return Ok(());
    }
    let catalog = global.catalog()?;
    let request = global.request()?;
    let resolved = render::resolve(&catalog, &request)?;
    let bundle = render::render_resolved(&catalog, &resolved)?;
    for warning in &bundle.plan.warnings {
        printer.warn(warning);
    }
    let rendered = Rendered {
        request: &request,
        resolved: &resolved,
        bundle: &bundle,
    };
    let reporter = Terminal::new(printer);
    let at = super::access::at(global);
    let report = publish::publish(&rendered, &Options::from(&args), &at, &reporter, false)?;
    print_report(printer, &report);
    Ok(())
}

fn print_report(printer: &Printer, r: &Report) {
    if printer.is_json() {
        printer.json(r);
        return;
    }
    printer.out(&summary(r));
    print_out_of_band(printer, "the cluster", &r.out_of_band);
    print_pull_request(printer, r.pull_request.as_ref(), &r.branch, &r.base);
}

/// A fleet's hand-over: a row per cluster, the commit, the Secrets each
/// cluster must hold out of band, the pull request.
fn print_fleet_report(printer: &Printer, r: &crate::fleet::gitops::Report) {
    if printer.is_json() {
        printer.json(r);
        return;
    }
    let rows = r
        .clusters
        .iter()
        .map(|c| {
            vec![
                c.cluster.clone(),
                c.path.clone(),
                c.profile.clone(),
                c.files.to_string(),
                c.digest[..12].to_string(),
            ]
        })
        .collect();
    printer.out(&crate::ui::table::render(
        &["cluster", "path", "profile", "files", "digest"],
        rows,
    ));
    let commit = match &r.commit {
        Some(c) => format!("commit {} pushed to {}", &c[..12], r.branch),
        None => format!("no change on {}", r.branch),
    };
    printer.out(&format!(
        "fleet {} · {} · {} files ({} layout, secrets {}) in {}",
        r.fleet, commit, r.files, r.layout, r.secrets, r.repo
    ));
    for c in &r.clusters {
        print_out_of_band(printer, &c.cluster, &c.out_of_band);
    }
    print_pull_request(printer, r.pull_request.as_ref(), &r.branch, &r.base);
}

/// The Secrets `who` must hold out of band (never in Git), if any.
fn print_out_of_band(printer: &Printer, who: &str, secrets: &[OutOfBand]) {
    if secrets.is_empty() {
        return;
    }
    printer.out(&format!(
        "{who} must hold these Secrets out of band (never in Git):"
    ));
    for s in secrets {
        printer.out(&format!(
            "  {}/{} (keys: {}): {}",
            s.namespace,
            s.name,
            s.keys.join(", "),
            s.create
        ));
    }
}

/// The pull request opened or updated, or how to open one.
fn print_pull_request(printer: &Printer, pr: Option<&PrReport>, branch: &str, base: &str) {
    match pr {
        Some(pr) => printer.out(&format!(
            "pull request #{} {}: {}",
            pr.number, pr.action, pr.url
        )),
        None => printer.status(&format!(
            "no pull request; open one from {branch} to {base} when ready"
        )),
    }
}
