//! helm through std::process, behind a small trait so the installer can be
//! driven by a fault-injecting fake in tests (`fake-helm`, or any
//! `TELLTALE_HELM` binary). The command lines built here are tested against
//! real helm 3 and helm 4 and an OCI registry in tests/it/helm_real.rs.
//!
//! Values always go on stdin (`--values -`): no values file touches disk.
//! helm runs in its own process group so a Ctrl-C at the terminal reaches
//! telltale only; telltale lets the running helm step settle before it stops.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::process::{ProcessError, Program};

/// The oldest helm telltale drives (`--dry-run=server`, OCI charts by digest).
pub const MIN_VERSION: semver::Version = semver::Version::new(3, 14, 0);
/// How long helm may wait for a release; `up --timeout` overrides it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error(
        "helm was not found ({0}); install helm >= 3.14 (https://helm.sh/docs/intro/install/) or set TELLTALE_HELM"
    )]
    NotFound(String),
    #[error("helm {command} failed: {message}")]
    Failed { command: String, message: String },
    #[error("cannot run helm")]
    Io(#[from] std::io::Error),
}

impl HelmError {
    /// The release does not exist. helm exits 1 for every failure; a missing
    /// release is told by its last line, `Error: release: not found` (helm
    /// 3.x and 4.x alike, checked against both in tests/it/helm_real.rs). A
    /// missing helm binary is not a missing release.
    pub fn is_missing_release(&self) -> bool {
        matches!(self, HelmError::Failed { message, .. } if message.ends_with("release: not found"))
    }
}

/// One chart release to install or upgrade.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub release: &'a str,
    pub namespace: &'a str,
    pub chart: &'a str,
    pub repository: &'a str,
    pub version: &'a str,
}

impl Chart<'_> {
    /// `oci://…/chart` is a chart reference on its own; an HTTP repository
    /// is passed with `--repo` so no `helm repo add` state is needed.
    fn reference(&self) -> Vec<String> {
        if self.repository.starts_with("oci://") {
            vec![self.repository.to_string()]
        } else {
            vec![
                self.chart.to_string(),
                "--repo".into(),
                self.repository.to_string(),
            ]
        }
    }
}

/// A deployed release as `helm status -o json` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseStatus {
    pub revision: u64,
    pub status: String,
    pub chart_version: String,
}

pub trait Helm: Sync {
    /// The detected major version (3 or 4) decides the wait/rollback flags.
    fn major(&self) -> u64;
    fn show_crds(
        &self,
        chart: &Chart<'_>,
    ) -> impl Future<Output = Result<String, HelmError>> + Send;
    fn upgrade_install(
        &self,
        chart: &Chart<'_>,
        values: &str,
        dry_run: bool,
    ) -> impl Future<Output = Result<String, HelmError>> + Send;
    fn status(
        &self,
        release: &str,
        namespace: &str,
    ) -> impl Future<Output = Result<Option<ReleaseStatus>, HelmError>> + Send;
    fn uninstall(
        &self,
        release: &str,
        namespace: &str,
    ) -> impl Future<Output = Result<(), HelmError>> + Send;
}

/// The helm binary: `TELLTALE_HELM`, else `helm` on PATH.
#[derive(Debug, Clone)]
pub struct HelmCli {
    pub bin: PathBuf,
    pub version: semver::Version,
    /// `--kube-context` and `--kubeconfig`, so helm acts on the same cluster.
    pub kube_args: Vec<String>,
    pub timeout: Duration,
}

impl HelmCli {
    pub fn binary() -> PathBuf {
        std::env::var_os("TELLTALE_HELM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("helm"))
    }

    /// Runs `helm version --short` and parses `v3.16.2+g1a2b3c`.
    pub async fn detect(kube_args: Vec<String>) -> Result<HelmCli, HelmError> {
        Self::detect_at(Self::binary(), kube_args).await
    }

    /// [`HelmCli::detect`] for a given binary (the real-helm tests run helm 3
    /// and helm 4 side by side). A binary that is missing, does not run or
    /// does not print a version is not a helm telltale can drive.
    pub async fn detect_at(bin: PathBuf, kube_args: Vec<String>) -> Result<HelmCli, HelmError> {
        let probe = Program::new(&bin).args(["version", "--short"]);
        let finished = probe
            .run_async(Some(PROBE_TIMEOUT), |_| ())
            .await
            .map_err(|e| match e {
                ProcessError::NotFound { .. } => HelmError::NotFound(bin.display().to_string()),
                other => HelmError::Failed {
                    command: "version".into(),
                    message: describe(&other),
                },
            })?;
        let text = finished.stdout_text().trim().to_string();
        let version = parse_version(&text).ok_or_else(|| HelmError::Failed {
            command: "version".into(),
            message: format!("unexpected output {text:?}"),
        })?;
        Ok(HelmCli {
            bin,
            version,
            kube_args,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// helm with these arguments and the cluster flags, values on stdin,
    /// in its own process group (tracked, so a second Ctrl-C or a panic
    /// kills it). helm bounds its own waits with `--timeout`.
    async fn run(&self, args: &[String], stdin: Option<&str>) -> Result<String, HelmError> {
        let mut program = Program::new(&self.bin)
            .args(args)
            .args(&self.kube_args)
            .own_process_group();
        if let Some(input) = stdin {
            program = program.stdin(input.as_bytes());
        }
        let command = args.iter().take(2).cloned().collect::<Vec<_>>().join(" ");
        match program
            .run_async(None, crate::install::interrupt::HelmGroup::track)
            .await
        {
            Ok(finished) => Ok(finished.stdout_text()),
            Err(ProcessError::NotFound { .. }) => {
                Err(HelmError::NotFound(self.bin.display().to_string()))
            }
            Err(e) => Err(HelmError::Failed {
                command,
                message: describe(&e),
            }),
        }
    }
}

/// What a failed helm said: the last line of its stderr (helm ends with
/// `Error: …`), or why it did not run.
fn describe(e: &ProcessError) -> String {
    match e {
        ProcessError::Failed { .. } => {
            let last = e.stderr_tail(1);
            if last.is_empty() {
                "no output".into()
            } else {
                last
            }
        }
        ProcessError::Spawn { source, .. } => format!("cannot run helm: {source}"),
        other => other.to_string(),
    }
}

/// `helm version` answers at once; a binary that hangs is not helm.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

pub fn parse_version(text: &str) -> Option<semver::Version> {
    let core = text.trim().trim_start_matches('v');
    let core = core.split(['+', '-']).next()?;
    semver::Version::parse(core).ok()
}

/// The install/upgrade flags for the detected helm: helm 4 renamed
/// `--atomic` to `--rollback-on-failure` and gave `--wait` a strategy.
pub fn upgrade_args(
    major: u64,
    chart: &Chart<'_>,
    dry_run: bool,
    timeout: Duration,
) -> Vec<String> {
    let mut args: Vec<String> = vec!["upgrade".into(), "--install".into(), chart.release.into()];
    args.extend(chart.reference());
    args.extend([
        "--version".into(),
        chart.version.into(),
        "--namespace".into(),
        chart.namespace.into(),
        "--values".into(),
        "-".into(),
        // telltale applies and upgrades CRDs itself (helm never upgrades them).
        "--skip-crds".into(),
        "--timeout".into(),
        format!("{}s", timeout.as_secs().max(1)),
    ]);
    if dry_run {
        args.push("--dry-run=server".into());
    } else if major >= 4 {
        args.extend(["--wait=watcher".into(), "--rollback-on-failure".into()]);
    } else {
        args.extend(["--wait".into(), "--atomic".into()]);
    }
    args
}

#[derive(Deserialize)]
struct StatusJson {
    version: u64,
    info: StatusInfo,
    chart: Option<StatusChart>,
}
#[derive(Deserialize)]
struct StatusInfo {
    status: String,
}
#[derive(Deserialize)]
struct StatusChart {
    metadata: StatusMeta,
}
#[derive(Deserialize)]
struct StatusMeta {
    version: String,
}

/// A release as helm prints it with `-o json` (`status`, and `install`/`upgrade`).
/// helm 4 prints `Pulled:`/`Digest:` lines on stdout before the document when
/// an install pulls an OCI chart, so the JSON starts at the first `{` line.
pub fn parse_status(text: &str) -> Result<ReleaseStatus, HelmError> {
    let json = text
        .lines()
        .position(|l| l.starts_with('{'))
        .map_or(text.to_string(), |i| {
            text.lines().skip(i).collect::<Vec<_>>().join("\n")
        });
    let status: StatusJson = serde_json::from_str(&json).map_err(|e| HelmError::Failed {
        command: "status".into(),
        message: format!("unexpected output: {e}"),
    })?;
    Ok(ReleaseStatus {
        revision: status.version,
        status: status.info.status,
        chart_version: status.chart.map(|c| c.metadata.version).unwrap_or_default(),
    })
}

impl Helm for HelmCli {
    fn major(&self) -> u64 {
        self.version.major
    }

    async fn show_crds(&self, chart: &Chart<'_>) -> Result<String, HelmError> {
        let mut args: Vec<String> = vec!["show".into(), "crds".into()];
        args.extend(chart.reference());
        args.extend(["--version".into(), chart.version.into()]);
        // `show` takes no cluster flags.
        let saved = HelmCli {
            kube_args: Vec::new(),
            ..self.clone()
        };
        saved.run(&args, None).await
    }

    async fn upgrade_install(
        &self,
        chart: &Chart<'_>,
        values: &str,
        dry_run: bool,
    ) -> Result<String, HelmError> {
        self.run(
            &upgrade_args(self.major(), chart, dry_run, self.timeout),
            Some(values),
        )
        .await
    }

    async fn status(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<ReleaseStatus>, HelmError> {
        let args: Vec<String> = ["status", release, "--namespace", namespace, "-o", "json"]
            .map(String::from)
            .into();
        match self.run(&args, None).await {
            Ok(text) => parse_status(&text).map(Some),
            Err(e) if e.is_missing_release() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn uninstall(&self, release: &str, namespace: &str) -> Result<(), HelmError> {
        let args: Vec<String> = ["uninstall", release, "--namespace", namespace, "--wait"]
            .map(String::from)
            .into();
        self.run(&args, None).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("v3.16.2+g13654a5"),
            Some(semver::Version::new(3, 16, 2))
        );
        assert_eq!(parse_version("v4.0.1"), Some(semver::Version::new(4, 0, 1)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn flags_follow_the_helm_major() {
        let chart = Chart {
            release: "loki",
            namespace: "monitoring",
            chart: "loki",
            repository: "https://grafana-community.github.io/helm-charts",
            version: "18.13.1",
        };
        let v3 = upgrade_args(3, &chart, false, DEFAULT_TIMEOUT).join(" ");
        assert!(v3.contains("--wait --atomic"), "{v3}");
        assert!(v3.contains("loki --repo https://grafana-community.github.io/helm-charts"));
        let v4 = upgrade_args(4, &chart, false, DEFAULT_TIMEOUT).join(" ");
        assert!(v4.contains("--wait=watcher --rollback-on-failure"), "{v4}");
        assert!(!v4.contains("--atomic"));
        let dry = upgrade_args(4, &chart, true, DEFAULT_TIMEOUT).join(" ");
        assert!(dry.contains("--dry-run=server") && !dry.contains("--wait"));
        assert!(v3.contains("--values -") && v3.contains("--skip-crds"));
    }
}
