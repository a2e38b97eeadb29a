//! Fleet orchestration (a use case beside `install`, `verify`, `gitops`):
//! which clusters a run acts on, and running `up`, `status` or `verify` once
//! per cluster; `plan` renders and writes every cluster's bundle, `gitops`
//! hands the fleet to Git in one pull request.
//!
//! Each cluster runs as its own `telltale` process (the same arguments plus
//! the hidden `--fleet-member NAME --context CONTEXT`), at most `--parallel`
//! at a time. A process per cluster is what keeps one cluster from stopping
//! or hiding another: a panic, a hang up to its own timeout, a lock or an
//! interrupt stay inside it, and each keeps the single-cluster behaviour
//! (journal, lock, interrupts, pinned context) unchanged. Each child prints
//! one JSON report; this module collects them into one fleet report and
//! table, and the exit code is the worst of the clusters'.

pub mod gitops;
pub mod plan;
pub mod verify;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::error::{CommandError, ErrorKind};
use crate::model::Source;
use crate::model::fleet::FleetCluster;
use crate::render::Request;
use crate::report::Reporter;

/// The most clusters acted on at once (`--parallel`).
pub const MAX_PARALLEL: usize = 64;
/// A child's report is one JSON document; more than this is not one.
const MAX_REPORT_BYTES: u64 = 16 * 1024 * 1024;

/// A Fleet config and the clusters this run selected, in file order.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub source: Source,
    pub doc: crate::model::fleet::Fleet,
    pub selected: Vec<usize>,
}

impl Fleet {
    /// Every cluster, or those `--cluster` names (an unknown name is bad
    /// input, with a did-you-mean).
    pub fn new(
        source: Source,
        doc: crate::model::fleet::Fleet,
        names: &[String],
    ) -> Result<Fleet, CommandError> {
        let selected = if names.is_empty() {
            (0..doc.spec.clusters.len()).collect()
        } else {
            let mut picked = BTreeSet::new();
            for name in names {
                let (index, _) = doc
                    .member(name)
                    .map_err(|m| CommandError::bad_input(format!("--cluster: {m}")))?;
                picked.insert(index);
            }
            picked.into_iter().collect()
        };
        Ok(Fleet {
            source,
            doc,
            selected,
        })
    }

    pub fn name(&self) -> &str {
        &self.doc.metadata.name
    }

    pub fn members(&self) -> impl Iterator<Item = &FleetCluster> {
        self.selected.iter().map(|i| &self.doc.spec.clusters[*i])
    }

    /// The render request of one cluster: the fleet file with the global
    /// flags, resolved for that cluster.
    pub fn request(&self, inputs: &Inputs<'_>, cluster: &FleetCluster) -> Request {
        Request {
            config: Some(self.source.clone()),
            member: Some(cluster.name.clone()),
            ..inputs.overrides.clone()
        }
    }
}

/// What the command line gives every cluster of a fleet run: the plugin
/// directories of the catalogue (loaded when first needed, as a single
/// cluster's run does), the flags each cluster's render request takes
/// (`--profile`, `-n`, `--set…`; no config, no member), and where the
/// kubeconfig is.
pub struct Inputs<'a> {
    pub plugin_dirs: &'a [std::path::PathBuf],
    pub overrides: Request,
    pub at: crate::session::Where,
}

impl Inputs<'_> {
    pub fn catalog(&self) -> Result<crate::catalog::Catalog, CommandError> {
        Ok(crate::catalog::Catalog::load(self.plugin_dirs)?)
    }
}

/// Every selected cluster renders before any of them is touched: bad input
/// in one cluster's settings stops the whole run (exit 2), not that
/// cluster halfway through the fleet.
pub fn check_renders(fleet: &Fleet, inputs: &Inputs<'_>) -> Result<(), CommandError> {
    plan::render_all(fleet, &inputs.catalog()?, inputs).map(|_| ())
}

/// `--parallel N`: how many clusters run at once.
pub fn parse_parallel(text: &str) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("expected a number from 1 to {MAX_PARALLEL}"))?;
    if !(1..=MAX_PARALLEL).contains(&n) {
        return Err(format!("expected a number from 1 to {MAX_PARALLEL}"));
    }
    Ok(n)
}

/// One cluster's run.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRun {
    pub cluster: String,
    pub context: String,
    pub ok: bool,
    pub exit_code: i32,
    pub duration_ms: u128,
    /// One line: what happened.
    pub summary: String,
    /// The cluster's own report (`telltale CMD -o json`), or its error
    /// document; null when it printed none.
    pub report: Value,
}

/// The fleet's report: one document with a report per cluster.
#[derive(Debug, Serialize)]
pub struct FleetReport<'a> {
    pub ok: bool,
    pub fleet: &'a str,
    pub command: &'a str,
    pub exit_code: i32,
    pub clusters: &'a [MemberRun],
    /// verify with a hub: what the central stores hold of every spoke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<&'a crate::verify::hub::HubReport>,
}

/// The worst of the clusters' exit codes: 0 < 1 (a check failed) < 2 (bad
/// input) < 3 (environment) < 4 (lock held) < 130 (interrupted); anything
/// else (a crash) counts as 1.
pub fn worst(codes: impl IntoIterator<Item = i32>) -> i32 {
    let rank = |c: i32| match c {
        0 => 0,
        2 => 2,
        3 => 3,
        4 => 4,
        130 => 5,
        _ => 1,
    };
    codes
        .into_iter()
        .max_by_key(|c| rank(*c))
        .map(|c| if rank(c) == 1 { 1 } else { c })
        .unwrap_or(0)
}

/// Runs `telltale <this command line> --fleet-member NAME --context CTX`
/// for every selected cluster, `parallel` at a time, and returns their
/// runs in the fleet's order. Each child's stderr is passed on, each line
/// prefixed with its cluster. Interrupts are passed on to every running
/// child (each then stops as a single `up` does); clusters not started yet
/// are not started.
pub fn fan_out(
    fleet: &Fleet,
    parallel: usize,
    reporter: &dyn Reporter,
    extra: &dyn Fn(&FleetCluster) -> Vec<OsString>,
    summarise: &dyn Fn(&Value) -> String,
) -> Result<Vec<MemberRun>, CommandError> {
    let exe = std::env::current_exe().map_err(|e| {
        CommandError::environment(format!("cannot find the telltale executable: {e}"))
    })?;
    let base: Vec<OsString> = std::env::args_os().skip(1).collect();
    let width = fleet.members().map(|c| c.name.len()).max().unwrap_or(0);
    let jobs: Vec<(FleetCluster, Vec<OsString>)> = fleet
        .members()
        .map(|c| {
            let mut args = base.clone();
            args.extend(
                ["--fleet-member", &c.name, "--context", &c.context]
                    .into_iter()
                    .map(OsString::from),
            );
            args.extend(extra(c));
            (c.clone(), args)
        })
        .collect();
    let (relay, notice) = (reporter.relay(), reporter.fleet_notice());
    let runtime = crate::session::runtime()?;
    let runs = runtime.block_on(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
        let running: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        forward_interrupts(running.clone(), stopped.clone(), notice);
        let mut tasks = Vec::new();
        for (cluster, args) in jobs {
            let (permits, running, stopped, exe) = (
                permits.clone(),
                running.clone(),
                stopped.clone(),
                exe.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return not_started(&cluster);
                }
                run_member(&exe, &cluster, args, width, relay, &running).await
            }));
        }
        let mut runs = Vec::new();
        for task in tasks {
            runs.push(task.await);
        }
        runs
    });
    Ok(runs
        .into_iter()
        .zip(fleet.members())
        .map(|(run, cluster)| {
            let mut run = run.unwrap_or_else(|e| MemberRun {
                cluster: cluster.name.clone(),
                context: cluster.context.clone(),
                ok: false,
                exit_code: 1,
                duration_ms: 0,
                summary: format!("telltale's own task failed: {e}"),
                report: Value::Null,
            });
            if run.summary.is_empty() {
                run.summary = summarise(&run.report);
            }
            run
        })
        .collect())
}

fn not_started(cluster: &FleetCluster) -> MemberRun {
    MemberRun {
        cluster: cluster.name.clone(),
        context: cluster.context.clone(),
        ok: false,
        exit_code: 130,
        duration_ms: 0,
        summary: "not started: interrupted".into(),
        report: Value::Null,
    }
}

/// Every SIGINT/SIGTERM this process gets goes to each running child once
/// (they run in their own process groups, so a terminal's Ctrl-C reaches
/// only this process and is not counted twice), and no new cluster starts.
fn forward_interrupts(
    running: Arc<Mutex<BTreeSet<u32>>>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
    notice: fn(&str),
) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        loop {
            let name = tokio::select! {
                _ = int.recv() => "-INT",
                _ = term.recv() => "-TERM",
            };
            if !stopped.swap(true, std::sync::atomic::Ordering::SeqCst) {
                notice(
                    "interrupted: passing it on to every running cluster; no other cluster starts",
                );
            }
            let pids: Vec<u32> = running
                .lock()
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default();
            for pid in pids {
                // kill(1): the crate forbids `unsafe`, so no libc::kill.
                let _ = tokio::process::Command::new("kill")
                    .args([name, "--", &pid.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await;
            }
        }
    });
}

async fn run_member(
    exe: &std::path::Path,
    cluster: &FleetCluster,
    args: Vec<OsString>,
    width: usize,
    relay: Option<fn(&str)>,
    running: &Mutex<BTreeSet<u32>>,
) -> MemberRun {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let failed = |summary: String| MemberRun {
        cluster: cluster.name.clone(),
        context: cluster.context.clone(),
        ok: false,
        exit_code: 3,
        duration_ms: started.elapsed().as_millis(),
        summary,
        report: Value::Null,
    };
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot start telltale for this cluster: {e}")),
    };
    let pid = child.id();
    if let (Some(pid), Ok(mut r)) = (pid, running.lock()) {
        r.insert(pid);
    }
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return failed("no pipes to the cluster's telltale".into());
    };
    let prefix = format!("{:width$} | ", cluster.name);
    // The child's last lines, for a run that ends without a report.
    let tail: Arc<Mutex<Vec<String>>> = Arc::default();
    let tail_w = tail.clone();
    let relay = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(relay) = relay {
                relay(&format!("{prefix}{line}"));
            }
            if let Ok(mut t) = tail_w.lock() {
                t.push(line);
                let excess = t.len().saturating_sub(5);
                t.drain(..excess);
            }
        }
    });
    let mut out = Vec::new();
    let read = stdout
        .take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut out)
        .await;
    let status = child.wait().await;
    let _ = relay.await;
    if let (Some(pid), Ok(mut r)) = (pid, running.lock()) {
        r.remove(&pid);
    }
    let exit_code = match &status {
        Ok(s) => s
            .code()
            .unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(s).unwrap_or(0)),
        Err(_) => 1,
    };
    // A child killed by SIGINT/SIGTERM was interrupted.
    let exit_code = if exit_code == 128 + 2 || exit_code == 128 + 15 {
        130
    } else {
        exit_code
    };
    let report: Value = match read {
        Ok(_) if out.len() as u64 <= MAX_REPORT_BYTES => {
            serde_json::from_slice(&out).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    };
    let summary = if report.is_null() {
        let last = tail.lock().map(|t| t.join(" / ")).unwrap_or_default();
        format!(
            "exited {exit_code} without a report{}",
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            }
        )
    } else if let Some(message) = report.pointer("/error/message").and_then(Value::as_str) {
        message.lines().next().unwrap_or_default().to_string()
    } else {
        String::new()
    };
    MemberRun {
        cluster: cluster.name.clone(),
        context: cluster.context.clone(),
        ok: exit_code == 0,
        exit_code,
        duration_ms: started.elapsed().as_millis(),
        summary,
        report,
    }
}

/// The fleet report (the command prints it: a table, or one document with
/// `-o json`) and the worst exit code as the command's result.
pub fn outcome<'a>(
    fleet: &'a Fleet,
    command: &'a str,
    runs: &'a [MemberRun],
    hub: Option<&'a crate::verify::hub::HubReport>,
) -> (FleetReport<'a>, Result<(), CommandError>) {
    let exit_code = worst(
        runs.iter()
            .map(|r| r.exit_code)
            .chain(hub.map(|h| h.exit_code)),
    );
    let report = FleetReport {
        ok: exit_code == 0,
        fleet: fleet.name(),
        command,
        exit_code,
        clusters: runs,
        hub,
    };
    if exit_code == 0 {
        return (report, Ok(()));
    }
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.cluster.as_str())
        .collect();
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(format!(
            "did not succeed on {} of {}: {}",
            failed.len(),
            crate::plural::count(runs.len(), "cluster"),
            failed.join(", ")
        ));
    }
    if let Some(h) = hub.filter(|h| !h.ok) {
        parts.push(if h.exit_code == 1 {
            format!("from the hub {}, failed: {}", h.cluster, h.failures())
        } else {
            format!(
                "from the hub {}, nothing could be verified (exit {})",
                h.cluster, h.exit_code
            )
        });
    }
    let kind = match exit_code {
        2 => ErrorKind::BadInput,
        3 => ErrorKind::Environment,
        4 => ErrorKind::Locked,
        130 => ErrorKind::Interrupted,
        _ => ErrorKind::Failed,
    };
    let error = CommandError::new(
        kind,
        format!("fleet {}: `{command}` {}", fleet.name(), parts.join("; ")),
    );
    (report, Err(error))
}

/// One line per cluster for `up`.
pub fn summarise_up(report: &Value) -> String {
    let Some(phases) = report.get("phases").and_then(Value::as_array) else {
        return String::new();
    };
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for p in phases {
        if let Some(o) = p.get("outcome").and_then(Value::as_str) {
            *counts.entry(o).or_default() += 1;
        }
    }
    let mut parts: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
    if let Some(e) = report.get("error").and_then(Value::as_str) {
        parts.push(e.lines().next().unwrap_or_default().to_string());
    }
    if let Some(v) = report.get("verify") {
        parts.push(format!("verify: {}", summarise_verify(v)));
    }
    parts.join(", ")
}

/// One line per cluster for `status`.
pub fn summarise_status(report: &Value) -> String {
    if report.get("installed").and_then(Value::as_bool) == Some(false) {
        return "not installed".into();
    }
    let drift = report
        .get("drift")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let current = match report.get("up_to_date").and_then(Value::as_bool) {
        Some(true) => "up to date",
        Some(false) => "the config renders a different bundle",
        None => "installed",
    };
    if drift == 0 {
        format!("{current}, no drift")
    } else {
        format!("{current}, {drift} drifted")
    }
}

/// One line per cluster for `verify`: the counts and the failed checks.
pub fn summarise_verify(report: &Value) -> String {
    let Some(checks) = report.get("checks").and_then(Value::as_array) else {
        return String::new();
    };
    let status = |c: &Value| {
        c.get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let count = |s: &str| checks.iter().filter(|c| status(c) == s).count();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| status(c) == "fail")
        .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut line = format!(
        "{} pass, {} fail, {} skip",
        count("pass"),
        count("fail"),
        count("skip")
    );
    if !failed.is_empty() {
        line.push_str(&format!(" ({})", failed.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_exit_code_wins() {
        assert_eq!(worst([0, 0]), 0);
        assert_eq!(worst([0, 1, 0]), 1);
        assert_eq!(worst([1, 3, 2]), 3);
        assert_eq!(worst([4, 130, 3]), 130);
        assert_eq!(worst([0, 101]), 1);
        assert_eq!(worst([101, 2]), 2);
        assert_eq!(worst(Vec::<i32>::new()), 0);
    }
}
