//! `gitops`'s use case: the rendered bundle laid out for Flux, Argo CD or
//! plain, scanned for secrets, committed on the telltale branch, pushed,
//! and one pull request opened or updated. Status lines and warnings go
//! through the [`Reporter`]; the report is returned.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{CommandError, ErrorKind};
use crate::gitops::digest::DigestKey;
use crate::gitops::github::{self, PrAction, PrRequest, RepoName};
use crate::gitops::layout::{self, LayoutError, Target};
use crate::gitops::pr::{self, VerifyReport};
use crate::gitops::repo::{self, Access, Checkout, Committed, GitError};
use crate::gitops::scan::{self, Finding};
use crate::gitops::{Layout, SecretsMode, reconcile, seal};
use crate::model::config::GitOps;
use crate::render;
use crate::report::Reporter;
use crate::secrets::Secret;
use crate::session::Where;

/// What the command line says about the hand-over (flags over the
/// config's spec.gitops over the defaults); all empty for `up --gitops`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub base: Option<String>,
    pub path: Option<String>,
    pub layout: Option<Layout>,
    pub secrets: Option<SecretsMode>,
    pub no_pr: bool,
    pub github_repo: Option<String>,
    pub github_api_url: Option<String>,
    pub verify_report: Option<PathBuf>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub reseal: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub repo: String,
    pub branch: String,
    pub base: String,
    pub path: String,
    pub layout: Layout,
    pub secrets: SecretsMode,
    pub files: usize,
    /// The new commit on the branch; null when nothing changed.
    pub commit: Option<String>,
    pub pushed: bool,
    pub pull_request: Option<PrReport>,
    /// Secret sources whose values could not be checked here (unset, in the cluster).
    pub unchecked_sources: Vec<String>,
    /// Secrets the cluster must hold that the branch does not deliver.
    pub out_of_band: Vec<pr::OutOfBand>,
}

#[derive(Debug, Serialize)]
pub struct PrReport {
    pub number: u64,
    pub url: String,
    pub action: &'static str,
}

/// What one invocation rendered, handed down so that `up --gitops` commits
/// exactly what it installed (no second render, no second read of the
/// config or of a `--set-file`).
pub struct Rendered<'a> {
    pub request: &'a render::Request,
    pub resolved: &'a render::Resolved,
    pub bundle: &'a render::Bundle,
}

/// `up --gitops` needs a repository in the config, and a layout that can
/// decrypt its secrets mode; both said before installing, not after.
pub fn check_configured(
    bundle: &crate::render::Bundle,
    resolved: &render::Resolved,
) -> Result<(), CommandError> {
    let config = resolved.gitops.clone().unwrap_or_default();
    refuse_undecryptable(
        config.layout.unwrap_or_default(),
        config.secrets.unwrap_or_default(),
    )?;
    // Argo CD needs a URL it can fetch: said before installing, not after.
    if config.layout == Some(Layout::Argocd)
        && let Some(repo) = &config.repo
    {
        controller_url(repo)?;
    }
    let configured = bundle
        .plan
        .phases
        .iter()
        .flat_map(|p| &p.steps)
        .any(|s| matches!(s, crate::render::plan::Step::Gitops { repo: Some(_), .. }));
    if configured {
        Ok(())
    } else {
        Err(CommandError::bad_input("--gitops needs spec.gitops.repo in the config")
            .with_hint("add `gitops: {repo: git@github.com:org/infra.git}` under spec, or run `telltale gitops --repo …` after up"))
    }
}

/// `gitops`'s use case (and `up --gitops`'s last phase): lays the rendered
/// bundle out, scans it, commits on the branch, pushes, and opens or
/// updates the pull request. `at` is where generated secrets are read from
/// (the config's pinned cluster). `pr_if_known`: open a pull request only
/// when the GitHub repository is known (up has no --no-pr); `gitops`
/// itself asks for one or --no-pr.
pub fn publish(
    rendered: &Rendered<'_>,
    args: &Options,
    at: &Where,
    reporter: &dyn Reporter,
    pr_if_known: bool,
) -> Result<Report, CommandError> {
    let env = |var: &str| std::env::var(var).ok();
    let (request, resolved, bundle) = (rendered.request, rendered.resolved, rendered.bundle);
    let config = resolved.gitops.clone().unwrap_or_default();
    let located = |path: &str, message: String| -> CommandError {
        match &request.config {
            Some(source) => crate::catalog::locate(source, path, message).into(),
            None => CommandError::bad_input(message),
        }
    };

    let (mut target, repo_url) = target(args, &config, bundle)?;
    let (base, branch, path) = (
        target.revision.clone(),
        target.branch.clone(),
        target.path.clone(),
    );
    let cluster = target.cluster.clone();
    let github_repo = match github_repo(args, &config, &repo_url) {
        _ if args.no_pr => None,
        Ok(name) => Some(name),
        Err(_) if pr_if_known => {
            reporter.status(
                "gitops: no GitHub repository (spec.gitops.github.repo) is known: pushing the branch only",
            );
            None
        }
        Err(e) => return Err(e),
    };
    let verify = match &args.verify_report {
        Some(file) => Some(read_verify(file)?),
        None => None,
    };

    target.chart_crds = fetch_chart_crds(bundle, reporter)?;
    let rendered = layout::render(bundle, &target).map_err(|e| match e {
        LayoutError::MissingSettings { mode, key } => located(
            "spec.gitops",
            format!("secrets mode {mode} needs spec.gitops.{key}"),
        )
        .with_hint(settings_hint(mode)),
        other => CommandError::bad_input(other.to_string()),
    })?;
    let title = pr::title(&bundle.plan, &target);
    let body = pr::body(&bundle.plan, &target, &rendered.secrets, verify.as_ref());

    // The gate: nothing is fetched or committed while a file holds a secret.
    let (canaries, unchecked, token) = scan::gate(&scan::config_sources(resolved), &env);
    let redact = |e: CommandError| scan::redact_error(e, &canaries);
    let mut scanned = rendered.files.clone();
    scanned.insert("(pull request title)".into(), title.clone());
    scanned.insert("(pull request body)".into(), body.clone());
    refuse_findings(scan::scan(&scanned, &canaries))?;
    for source in &unchecked {
        reporter.detail(&format!("not scanned for: {source} (no value here)"));
    }

    if github_repo.is_some() && token.is_none() {
        return Err(CommandError::environment(
            "GITHUB_TOKEN is not set; it is needed to open the pull request",
        )
        .with_hint(
            "export GITHUB_TOKEN (a token with pull-request write access), or pass --no-pr",
        ));
    }
    // The mode's program is needed before anything is fetched.
    if !rendered.pending.is_empty() {
        seal::require_tool(target.secrets, &|tool| tool.to_string()).map_err(|e| {
            let mut err = CommandError::environment(e.to_string());
            err.hint = e.hint();
            err
        })?;
    }
    let access = Access { token };
    reporter.status(&format!(
        "fetching {base} from {}",
        repo::display_repo(&repo_url)
    ));
    let checkout = Checkout::open(&repo_url, &branch, &base, &access)
        .map_err(git_error)
        .map_err(redact)?;

    let mut files = rendered.files.clone();
    if !rendered.pending.is_empty() {
        let key = DigestKey::load(&env).map_err(CommandError::from)?;
        let cluster = ClusterSecrets::new(at.clone(), bundle);
        let sealed = seal::seal(
            &rendered.pending,
            &target,
            &|p| checkout.read(p),
            args.reseal,
            &key,
            &|ns, name, key| cluster.get(ns, name, key),
            &env,
            &|tool| tool.to_string(),
        )
        .map_err(|e| redact(e.into()))?;
        for what in &sealed.generated {
            reporter.warn(&format!(
                "{what}: a new value was generated ({}); the cluster's is replaced once this branch is applied",
                cluster.why_not()
            ));
        }
        // The encrypted output goes through the same gate.
        refuse_findings(scan::scan(&sealed.files, &canaries))?;
        files.extend(sealed.files);
    }

    // The lint: the branch alone (and the Secrets it names as out of band)
    // must build the stack on an empty cluster, in the controllers' order.
    let out_of_band = pr::out_of_band(&target, &rendered.secrets);
    reconcile::simulate(
        &files,
        &[],
        &target,
        &rendered.secrets,
        reconcile::initial_state(&target, &out_of_band),
    )
    .map_err(|e| {
        CommandError::new(ErrorKind::Failed, format!("{e}; nothing was committed"))
            .with_hint("this is telltale's layout failing its own check: please report it with the profile and the secrets mode")
    })?;

    let author = checkout
        .author(args.author_name.as_deref(), args.author_email.as_deref())
        .map_err(|e| {
            CommandError::bad_input(e.to_string()).with_hint(
                "set git config user.name/user.email, or pass --author-name and --author-email",
            )
        })?;
    let message = format!(
        "telltale: {} observability stack for {}\n\nProfile {}, layout {}, secrets {}, bundle digest {}.\n",
        bundle.plan.profile,
        cluster,
        bundle.plan.profile,
        target.layout,
        target.secrets,
        bundle.plan.digest
    );
    let committed = checkout
        .commit(&path, &files, &message, &author)
        .map_err(git_error)
        .map_err(redact)?;
    let (commit, pushed) = match committed {
        Committed::New(id) => {
            reporter.status(&format!("committed {} on {branch}; pushing", &id[..12]));
            checkout.push(&access).map_err(git_error).map_err(redact)?;
            (Some(id), true)
        }
        Committed::Unchanged => {
            reporter.status(&format!("nothing changed on {branch}: no commit"));
            (None, false)
        }
    };

    // A pull request needs the branch on the remote: nothing to review when
    // the base already holds exactly this state.
    let branch_on_remote = pushed || checkout.branch_exists;
    let pull_request = match (&github_repo, branch_on_remote, &access.token) {
        (Some(gh), true, Some(token)) => {
            let api_url = github_api_url(args, &config);
            let request = PrRequest {
                api_url: &api_url,
                token,
                repo: gh,
                head: &branch,
                base: &base,
                title: &title,
                body: &body,
            };
            Some(open_pull_request(&request, &redact)?)
        }
        (Some(_), false, _) => {
            reporter.status(&format!(
                "{base} already holds this state: no branch, no pull request"
            ));
            None
        }
        // No GitHub repository (--no-pr, or unknown for `up --gitops`); the
        // token's presence was checked before anything was fetched.
        _ => None,
    };

    let report = Report {
        ok: true,
        repo: repo::display_repo(&repo_url),
        branch,
        base,
        path,
        layout: target.layout,
        secrets: target.secrets,
        files: files.len(),
        commit,
        pushed,
        pull_request,
        unchecked_sources: unchecked,
        out_of_band,
    };
    Ok(report)
}

/// The values generated keys already have in the cluster (the Grafana
/// admin password `up` made), read on first use, from the config's pinned
/// cluster only. Unreachable is not an error: the caller warns instead.
pub struct ClusterSecrets<'a> {
    at: Where,
    bundle: &'a render::Bundle,
    read: std::cell::RefCell<BTreeMap<(String, String), ClusterData>>,
}

/// A Secret's data as the cluster holds it, or why it could not be read.
type ClusterData = Result<BTreeMap<String, Secret>, String>;

impl<'a> ClusterSecrets<'a> {
    pub fn new(at: Where, bundle: &'a render::Bundle) -> Self {
        ClusterSecrets {
            at,
            bundle,
            read: Default::default(),
        }
    }

    pub fn get(&self, namespace: &str, name: &str, key: &str) -> Option<Secret> {
        let id = (namespace.to_string(), name.to_string());
        let mut read = self.read.borrow_mut();
        let data = read
            .entry(id)
            .or_insert_with(|| self.fetch(namespace, name));
        data.as_ref().ok()?.get(key).cloned()
    }

    /// Why a generated value could not be read, for the warning.
    pub fn why_not(&self) -> String {
        self.read
            .borrow()
            .values()
            .find_map(|r| r.as_ref().err().cloned())
            .unwrap_or_else(|| "the cluster's Secret has no such key".into())
    }

    fn fetch(&self, namespace: &str, name: &str) -> ClusterData {
        use k8s_openapi::api::core::v1::Secret as KubeSecret;
        let chosen = crate::session::choose(&self.at, Some(self.bundle))
            .map_err(|e| format!("no cluster: {}", e.message))?;
        let runtime = crate::session::runtime().map_err(|e| e.message)?;
        let server = chosen.server().to_string();
        runtime.block_on(async {
            let kube = chosen
                .connect()
                .await
                .map_err(|e| format!("cluster unreachable: {}", e.message))?;
            let api: kube::Api<KubeSecret> = kube::Api::namespaced(kube.client.clone(), namespace);
            // In plain words (connection refused, forbidden…), as every
            // other cluster error says it.
            let secret = api
                .get_opt(name)
                .await
                .map_err(|e| {
                    crate::session::cluster_error(
                        &format!("reading Secret {namespace}/{name}"),
                        &server,
                        e,
                    )
                    .message
                })?
                .ok_or_else(|| format!("{namespace}/{name} is not in the cluster"))?;
            Ok(secret
                .data
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, Secret::new(v))))
                .collect())
        })
    }
}

pub fn summary(r: &Report) -> String {
    let commit = match &r.commit {
        Some(c) => format!("commit {} pushed to {}", &c[..12], r.branch),
        None => format!("no change on {}", r.branch),
    };
    format!(
        "{} · {} files under {}/ ({} layout, secrets {}) in {}",
        commit, r.files, r.path, r.layout, r.secrets, r.repo
    )
}

/// Where the state goes: flags over the config over the defaults, checked
/// before anything is fetched. Also returns the repository as given
/// (where telltale fetches and pushes), which for Argo CD may differ from
/// the URL the controller fetches.
pub fn target(
    args: &Options,
    config: &GitOps,
    bundle: &render::Bundle,
) -> Result<(Target, String), CommandError> {
    let cluster = bundle
        .plan
        .cluster
        .name
        .clone()
        .unwrap_or_else(|| bundle.plan.profile.clone());
    let repo_url = args.repo.clone().or(config.repo.clone()).ok_or_else(|| {
        CommandError::bad_input("no repository: pass --repo PATH|URL or set spec.gitops.repo")
            .with_hint("e.g. --repo git@github.com:org/infra.git, or a local clone's path")
    })?;
    // A local path that is not there is said first, before the CRDs are
    // fetched or anything is rendered.
    if crate::gitops::repo::is_local_path(&repo_url) && !std::path::Path::new(&repo_url).exists() {
        return Err(git_error(GitError::NoLocalRepo {
            path: crate::gitops::repo::display_repo(&repo_url),
        }));
    }
    let base = args
        .base
        .clone()
        .or(config.github.as_ref().and_then(|g| g.base.clone()))
        .unwrap_or_else(|| "main".into());
    let branch = args
        .branch
        .clone()
        .or(config.branch.clone())
        .unwrap_or_else(|| format!("telltale/{}", crate::gitops::dns_label(&cluster)));
    if branch == base {
        return Err(CommandError::bad_input(format!(
            "the branch `{branch}` is the base branch; telltale never writes the base branch"
        ))
        .with_hint("pass another --branch (default telltale/<cluster>)"));
    }
    for (what, name) in [("--branch", &branch), ("--base", &base)] {
        if !repo::is_valid_branch(name) {
            return Err(CommandError::bad_input(format!(
                "{what} `{name}` is not a valid branch name"
            )));
        }
    }
    let path = normalise_path(
        &args
            .path
            .clone()
            .or(config.path.clone())
            .unwrap_or_else(|| format!("clusters/{cluster}/observability")),
    )?;
    let layout = args.layout.or(config.layout).unwrap_or_default();
    let secrets = args.secrets.or(config.secrets).unwrap_or_default();
    refuse_undecryptable(layout, secrets)?;
    let controller_url = match layout {
        Layout::Argocd => controller_url(&repo_url)?,
        _ => repo_url.clone(),
    };
    Ok((
        Target {
            cluster,
            path,
            layout,
            secrets,
            external_secrets: config.external_secrets.clone(),
            sops: config.sops.clone(),
            sealed_secrets: config.sealed_secrets.clone(),
            repo_url: controller_url,
            revision: base,
            branch,
            chart_crds: BTreeMap::new(),
        },
        repo_url,
    ))
}

/// A path on this machine (or `file://`), not a URL another machine can fetch.
fn is_local(repo: &str) -> bool {
    if let Some(rest) = repo.strip_prefix("file://") {
        return !rest.is_empty();
    }
    if repo.contains("://") {
        return false;
    }
    // scp-like `git@host:org/repo.git`: a colon before any slash.
    match (repo.find(':'), repo.find('/')) {
        (Some(colon), Some(slash)) => colon > slash,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// Argo CD fetches the repository itself, from inside the cluster, where a
/// path on this machine means nothing: for a local repository its
/// `origin` remote is what Argo CD is given.
pub fn controller_url(repo: &str) -> Result<String, CommandError> {
    if !is_local(repo) {
        return Ok(repo.to_string());
    }
    let path = repo.strip_prefix("file://").unwrap_or(repo);
    let origin = repo::origin_of(std::path::Path::new(path));
    match origin {
        Some(url) if !is_local(&url) => Ok(url),
        found => Err(CommandError::bad_input(format!(
            "--layout argocd: Argo CD fetches the repository from the cluster, and {} is a local repository {}",
            repo::display_repo(repo),
            match found {
                Some(url) => format!("whose origin is local too ({})", repo::display_repo(&url)),
                None => "without an `origin` remote".to_string(),
            }
        ))
        .with_hint(format!(
            "pass the repository's URL as --repo, or give the local one its remote: git -C {path} remote add origin git@github.com:org/infra.git"
        ))),
    }
}

/// `helm show crds` of every release whose CRDs telltale manages, exactly
/// as `up`'s crds phase reads them: the branch commits them so that it
/// alone can build a new cluster.
pub fn fetch_chart_crds(
    bundle: &render::Bundle,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<String, String>, CommandError> {
    let releases: Vec<_> = bundle.plan.releases.iter().filter(|r| r.crds).collect();
    fetch_release_crds(&releases, reporter)
}

/// `helm show crds` of each of `releases`, by release name.
pub fn fetch_release_crds(
    releases: &[&crate::render::plan::Release],
    reporter: &dyn Reporter,
) -> Result<BTreeMap<String, String>, CommandError> {
    use crate::helm::{Chart, Helm, HelmCli};
    let mut out = BTreeMap::new();
    if releases.is_empty() {
        return Ok(out);
    }
    let helm_failed = |e: crate::helm::HelmError| {
        CommandError::environment("the CRDs for the crds layer")
            .with_source(&e)
            .with_hint(
            "the branch commits the pinned charts' CRDs (`helm show crds`, as `up` applies them): helm >= 3.14 and the chart registry must be reachable",
        )
    };
    let runtime = crate::session::runtime()?;
    runtime.block_on(async {
        let helm = HelmCli::detect(Vec::new()).await.map_err(helm_failed)?;
        for r in releases {
            reporter.status(&format!("reading the CRDs of {}@{}", r.chart, r.version));
            let chart = Chart {
                release: &r.name,
                namespace: &r.namespace,
                chart: &r.chart,
                repository: &r.repository,
                version: &r.version,
            };
            let text = helm.show_crds(&chart).await.map_err(helm_failed)?;
            out.insert(r.name.clone(), text);
        }
        Ok(out)
    })
}

/// sops files are decrypted by Flux's kustomize-controller only. Argo CD
/// has no native sops support (KSOPS and helm-secrets are plugins telltale
/// does not set up), and the plain layout is applied as it is: either would
/// apply ciphertext, so both are refused before anything is fetched.
pub fn refuse_undecryptable(layout: Layout, secrets: SecretsMode) -> Result<(), CommandError> {
    if secrets != SecretsMode::Sops || layout == Layout::Flux {
        return Ok(());
    }
    let who = match layout {
        Layout::Argocd => "Argo CD does not decrypt sops files (it has no native sops support)",
        _ => "the plain layout is applied as it is, and nothing in it decrypts sops files",
    };
    Err(CommandError::bad_input(format!(
        "secrets mode sops with layout {layout}: {who}, so the encrypted Secrets would reach the cluster as ciphertext"
    ))
    .with_hint(format!(
        "use --secrets sealed-secrets or --secrets external-secrets with layout {layout}, or --layout flux (Flux decrypts sops)"
    )))
}

pub fn refuse_findings(findings: Vec<Finding>) -> Result<(), CommandError> {
    if findings.is_empty() {
        return Ok(());
    }
    let mut err = CommandError::bad_input(format!(
        "refusing to commit: {} would put a secret into Git; nothing was committed",
        findings[0]
    ));
    err.causes = findings
        .iter()
        .skip(1)
        .take(20)
        .map(|f| f.to_string())
        .collect();
    Err(err.with_hint(
        "secrets belong in sources ({env: VAR}, {file: PATH}, {secretRef: …}), never in values or --set",
    ))
}

/// `--github-api-url`, else the config's, else github.com's.
pub fn github_api_url(args: &Options, config: &GitOps) -> String {
    args.github_api_url
        .clone()
        .or(config.github.as_ref().and_then(|g| g.api_url.clone()))
        .unwrap_or_else(|| github::DEFAULT_API_URL.to_string())
}

/// Opens or updates the one pull request (for a cluster or a fleet); a
/// failure says the branch is already pushed.
pub fn open_pull_request(
    request: &PrRequest<'_>,
    redact: &dyn Fn(CommandError) -> CommandError,
) -> Result<PrReport, CommandError> {
    let pr = crate::session::runtime()?
        .block_on(github::open_or_update(request))
        .map_err(|e| {
            redact(CommandError::environment(e.to_string())).with_hint(format!(
                "the branch {} is pushed; fix the cause and run again to open the pull request, or pass --no-pr",
                request.head
            ))
        })?;
    Ok(PrReport {
        number: pr.number,
        url: pr.url,
        action: match pr.action {
            PrAction::Created => "created",
            PrAction::Updated => "updated",
            PrAction::Unchanged => "unchanged",
        },
    })
}

/// A git failure as the command reports it (`From<GitError>`), for
/// `map_err` chains that then redact it.
pub fn git_error(e: GitError) -> CommandError {
    e.into()
}

/// Repository-relative, forward slashes, no `..`, no leading slash.
fn normalise_path(path: &str) -> Result<String, CommandError> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if path.starts_with('/') || parts.contains(&"..") || path.contains('\\') {
        return Err(CommandError::bad_input(format!(
            "the path `{path}` (--path, spec.gitops.path) must be relative to the repository root, without `..`"
        )));
    }
    let joined = parts.join("/");
    if !joined.is_empty()
        && let Err(e) = crate::outdir::safe_relative(&joined)
    {
        return Err(CommandError::bad_input(format!(
            "the path (--path, spec.gitops.path): {e}"
        ))
        .with_hint("use letters, digits, `.`, `_` and `-` in each directory name, e.g. clusters/prod/observability"));
    }
    Ok(joined)
}

pub fn github_repo(
    args: &Options,
    config: &GitOps,
    repo_url: &str,
) -> Result<RepoName, CommandError> {
    let given = args
        .github_repo
        .clone()
        .or(config.github.as_ref().and_then(|g| g.repo.clone()));
    match given {
        Some(text) => RepoName::parse(&text).ok_or_else(|| {
            CommandError::bad_input(format!("--github-repo `{text}` is not owner/name"))
        }),
        None => RepoName::from_remote(repo_url).ok_or_else(|| {
            CommandError::bad_input(format!(
                "cannot tell the GitHub repository of {}",
                repo::display_repo(repo_url)
            ))
            .with_hint("pass --github-repo OWNER/NAME (or set spec.gitops.github.repo), or --no-pr")
        }),
    }
}

fn read_verify(file: &PathBuf) -> Result<VerifyReport, CommandError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CommandError::bad_input(format!(
            "cannot read the verify report {}: {e}",
            file.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        CommandError::bad_input(format!(
            "{} is not a verify report (`telltale verify -o json`): {e}",
            file.display()
        ))
    })
}

pub fn settings_hint(mode: SecretsMode) -> &'static str {
    match mode {
        SecretsMode::ExternalSecrets => {
            "gitops: {secrets: external-secrets, externalSecrets: {store: vault-backend}}"
        }
        SecretsMode::Sops => "gitops: {secrets: sops, sops: {age: [age1…]}}",
        SecretsMode::SealedSecrets => {
            "gitops: {secrets: sealed-secrets, sealedSecrets: {cert: ./pub-cert.pem}}"
        }
        SecretsMode::Reference => "",
    }
}
