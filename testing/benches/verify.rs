//! verify benchmark (not a timed test): the telltale binary as a user runs
//! it, against real daemons on 127.0.0.1, each run under `/usr/bin/time -v`
//! for its peak memory.
//!
//! 1. The four core checks (targets, rules, alertmanager, notifications) on
//!    the local stack (kind with Slack, PagerDuty, e-mail and SMS
//!    receivers): `telltale verify --bundle` against the baseline script
//!    (scripts/bench/verify-baseline.sh, curl + jq, one check after
//!    another), alternated in the same run; and the synthetic round trip
//!    (post to proof of delivery) from the notifications evidence.
//! 2. `targets` + `rules` at 500, 2,000 and 8,000 targets (one node-exporter
//!    under that many label sets) and 1,000 rules, telltale and the script.
//! 3. `telltale plan --profile production`: files written, wall, peak RSS.
//!
//! Run it with:
//!
//! ```sh
//! . "$(scripts/tools --env)"
//! cargo build --release -p telltale --bin telltale
//! cargo bench -p telltale-testing --bench verify
//! ```
//!
//! Needs Prometheus, Alertmanager and node-exporter (scripts/tools), curl,
//! jq and GNU time.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const LOCAL_STACK: &str = env!("CARGO_BIN_EXE_telltale-local-stack");
const BASELINE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scripts/bench/verify-baseline.sh"
);
const RECEIVERS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cli/tests/fixtures/configs/kind-receivers.yaml"
);
const RUNS: usize = 10;
const TARGET_COUNTS: [usize; 3] = [500, 2000, 8000];
const GROUPS: usize = 50;
const RULES_PER_GROUP: usize = 20;
/// The synthetic routes' group_wait.
const GROUP_WAIT: Duration = Duration::ZERO;

/// The telltale binary (of the telltale package, so cargo does not set
/// `CARGO_BIN_EXE_telltale` here): built and up to date, or a panic that
/// says how to build it.
fn telltale() -> &'static str {
    static PATH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        telltale_testing::bins::of_package("telltale", "telltale")
            .display()
            .to_string()
    });
    &PATH
}

/// A child stopped with SIGTERM (the local stack then removes its state
/// directory) and reaped.
struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(bin: &str, args: &[String], log: &Path) -> Daemon {
    Daemon(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e} (run `. \"$(scripts/tools --env)\"` first)")),
    )
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(url.trim_start_matches("http://")).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} never answered");
}

/// One run of a command: its wall time, peak RSS and output.
struct Run {
    wall: Duration,
    rss_kib: u64,
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `program args` under `/usr/bin/time -v`; the wall time is measured
/// around it, the peak RSS is time's "Maximum resident set size".
fn timed(program: &str, args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Run {
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        // No cluster: verify must not go looking for one.
        .env("KUBECONFIG", cwd.join("no-kubeconfig"))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("/usr/bin/time (GNU time) runs");
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rss_kib = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time -v:\n{stderr}"));
    Run {
        wall,
        rss_kib,
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

fn median<T: Ord + Copy>(values: &[T]) -> T {
    let mut v = values.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Median wall (min–max) and median peak RSS of runs.
fn summary(runs: &[Run]) -> String {
    let walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    let rss: Vec<u64> = runs.iter().map(|r| r.rss_kib).collect();
    format!(
        "median {} (min {}, max {}), peak RSS median {} (max {})",
        ms(median(&walls)),
        ms(*walls.iter().min().unwrap()),
        ms(*walls.iter().max().unwrap()),
        mib(median(&rss)),
        mib(*rss.iter().max().unwrap())
    )
}

fn plan(cwd: &Path, args: &[&str], out: &Path) {
    let status = Command::new(telltale())
        .arg("plan")
        .args(args)
        .arg("--out")
        .arg(out)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "telltale plan {args:?} failed");
}

/// telltale verify on `bundle`, until it passes once (the stack settles:
/// first scrapes, first evaluations).
fn settle(cwd: &Path, bundle: &Path, checks: &str, urls: &[&str]) {
    let mut args = vec![
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--checks",
        checks,
        "--timeout",
        "120s",
        "-o",
        "json",
    ];
    args.extend_from_slice(urls);
    let run = timed(telltale(), &args, &[], cwd);
    assert!(
        run.ok,
        "the bench stack did not settle:\n{}\n{}",
        run.stdout, run.stderr
    );
}

fn verify_args<'a>(bundle: &'a Path, checks: &'a str, urls: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--checks",
        checks,
        "-o",
        "json",
    ];
    args.extend_from_slice(urls);
    args
}

/// The local stack on `bundle`: its JSON line of URLs, and the process.
fn local_stack(bundle: &Path) -> (Value, Daemon) {
    let mut child = Command::new(LOCAL_STACK)
        .arg("--bundle")
        .arg(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the local stack starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let urls: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the local stack's JSON line ({e}): {line:?}"));
    (urls, Daemon(child))
}

/// The slowest receiver's time to proof in a notifications finding
/// (`…: delivered via … in N ms…`), and the check's own duration.
fn round_trip(report: &str) -> (Duration, Duration) {
    let report: Value = serde_json::from_str(report).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "notifications")
        .unwrap();
    let slowest = check["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let e = e.as_str()?;
            let (_, rest) = e.split_once(": delivered via ")?;
            let (_, rest) = rest.split_once(" in ")?;
            rest.split_once(" ms")?.0.parse::<u64>().ok()
        })
        .max()
        .unwrap_or_else(|| panic!("no delivery in {check:#}"));
    (
        Duration::from_millis(slowest),
        Duration::from_millis(check["duration_ms"].as_u64().unwrap()),
    )
}

fn core_checks(dir: &Path) {
    let bundle = dir.join("core-bundle");
    plan(dir, &["-f", RECEIVERS], &bundle);
    let (urls, _stack) = local_stack(&bundle);
    let prometheus = urls["prometheus"].as_str().unwrap().to_string();
    let alertmanager = urls["alertmanager"].as_str().unwrap().to_string();
    let flags = [
        "--prometheus-url",
        &prometheus,
        "--alertmanager-url",
        &alertmanager,
    ];
    let checks = "targets,rules,alertmanager,notifications";
    settle(dir, &bundle, checks, &flags);

    let (mut ours, mut theirs, mut trips, mut checks_ms) = (vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        let run = timed(telltale(), &verify_args(&bundle, checks, &flags), &[], dir);
        assert!(run.ok, "telltale verify failed:\n{}", run.stdout);
        let (trip, check) = round_trip(&run.stdout);
        trips.push(trip);
        checks_ms.push(check);
        ours.push(run);
        let run = timed(
            "bash",
            &[
                BASELINE,
                bundle.to_str().unwrap(),
                &prometheus,
                &alertmanager,
            ],
            &[],
            dir,
        );
        assert!(run.ok, "the baseline failed:\n{}", run.stderr);
        theirs.push(run);
    }
    let median_of = |runs: &[Run]| median(&runs.iter().map(|r| r.wall).collect::<Vec<_>>());
    let ratio = median_of(&theirs).as_secs_f64() / median_of(&ours).as_secs_f64();
    println!("four core checks on the local stack, {RUNS} runs each, alternated:");
    println!("  telltale verify --bundle: {}", summary(&ours));
    println!("  baseline (curl + jq):     {}", summary(&theirs));
    println!(
        "  telltale is {ratio:.1}× faster ({})",
        if ratio >= 3.0 {
            "target ≥ 3×: met"
        } else {
            "target ≥ 3×: NOT met"
        }
    );
    let trip = median(&trips);
    println!(
        "synthetic round trip (post → proof, slowest of 4 receivers): median {} (max {}); the notifications check {} with silencing and resolving ({}: ≤ group_wait {} + 50 ms)",
        ms(trip),
        ms(*trips.iter().max().unwrap()),
        ms(median(&checks_ms)),
        if trip <= GROUP_WAIT + Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        },
        ms(GROUP_WAIT),
    );
}

/// A Prometheus with `targets` targets and the rule groups, plus the
/// node-exporter they all scrape; the group names.
fn prometheus_with(dir: &Path, targets: usize) -> (String, Vec<String>, [Daemon; 2]) {
    let (node_port, prom_port) = (port(), port());
    let mut config = format!(
        "global: {{scrape_interval: 30s, scrape_timeout: 20s, evaluation_interval: 15s}}\nrule_files: ['{}/rules/*.yaml']\nscrape_configs:\n- job_name: bench\n  static_configs:\n",
        dir.display()
    );
    for i in 0..targets {
        config.push_str(&format!(
            "  - targets: ['127.0.0.1:{node_port}']\n    labels: {{shard: '{i}'}}\n"
        ));
    }
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let mut groups = Vec::new();
    for g in 0..GROUPS {
        let name = format!("bench-{g:02}");
        let mut text = format!("groups:\n- name: {name}\n  interval: 1s\n  rules:\n");
        for r in 0..RULES_PER_GROUP {
            text.push_str(&format!(
                "  - record: bench:rule_{g}_{r}\n    expr: vector({r})\n"
            ));
        }
        std::fs::write(dir.join(format!("rules/{name}.yaml")), text).unwrap();
        groups.push(name);
    }
    let node = spawn(
        "prometheus-node-exporter",
        &[
            format!("--web.listen-address=127.0.0.1:{node_port}"),
            // Thousands of label sets scrape one exporter: lift its
            // concurrency cap, and keep each scrape cheap.
            "--web.max-requests=0".into(),
            "--collector.disable-defaults".into(),
            "--collector.loadavg".into(),
        ],
        &dir.join("node.log"),
    );
    let prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}/prometheus.yml", dir.display()),
            format!("--storage.tsdb.path={}/prom", dir.display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir.join("prometheus.log"),
    );
    let url = format!("http://127.0.0.1:{prom_port}");
    wait_ready(&url);
    (url, groups, [node, prom])
}

fn targets_and_rules(dir: &Path) {
    let kind = dir.join("kind-bundle");
    plan(dir, &["--profile", "kind"], &kind);
    let mut figures = Vec::new();
    for n in TARGET_COUNTS {
        let work = dir.join(format!("targets-{n}"));
        std::fs::create_dir_all(&work).unwrap();
        let (prometheus, groups, daemons) = prometheus_with(&work, n);
        // The kind bundle, expecting the bench's job and rule groups.
        let bundle = work.join("bundle");
        copy_dir(&kind, &bundle);
        let mut plan: Value =
            serde_json::from_str(&std::fs::read_to_string(bundle.join("plan.json")).unwrap())
                .unwrap();
        plan["expectations"]["targets"] = json!([{"job": "bench", "min": n}]);
        plan["expectations"]["rule_groups"] = json!(groups);
        std::fs::write(bundle.join("plan.json"), plan.to_string()).unwrap();
        let flags = ["--prometheus-url", prometheus.as_str()];
        settle(dir, &bundle, "targets,rules", &flags);
        let (mut ours, mut theirs) = (vec![], vec![]);
        for _ in 0..RUNS {
            let run = timed(
                telltale(),
                &verify_args(&bundle, "targets,rules", &flags),
                &[],
                dir,
            );
            assert!(run.ok, "{}", run.stdout);
            ours.push(run);
            let run = timed(
                "bash",
                &[BASELINE, bundle.to_str().unwrap(), &prometheus, "-"],
                &[("CHECKS", "targets,rules")],
                dir,
            );
            assert!(run.ok, "the baseline failed:\n{}", run.stderr);
            theirs.push(run);
        }
        let answer = Command::new("curl")
            .args(["-fsS", &format!("{prometheus}/api/v1/targets?state=active")])
            .output()
            .map(|o| o.stdout.len())
            .unwrap_or(0);
        println!(
            "targets + rules, {n} targets ({:.1} MB targets answer), {} rules, {RUNS} runs:",
            answer as f64 / 1e6,
            GROUPS * RULES_PER_GROUP
        );
        println!("  telltale: {}", summary(&ours));
        println!("  baseline: {}", summary(&theirs));
        figures.push((
            n,
            median(&ours.iter().map(|r| r.rss_kib).collect::<Vec<_>>()),
        ));
        drop(daemons);
    }
    let (small, large) = (figures[0], figures[figures.len() - 1]);
    let growth = large.1 as f64 / small.1 as f64 - 1.0;
    println!(
        "peak RSS at {} targets is {:+.1} % of the {}-target figure ({})",
        large.0,
        growth * 100.0,
        small.0,
        if growth <= 0.20 {
            "within 20 %: met"
        } else {
            "within 20 %: NOT met"
        }
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        files_under(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// `plan --profile production`, with its promtool and amtool checks (the
/// default: the peak RSS is then the largest of telltale and the tools) and
/// without them (telltale alone).
fn plan_production(dir: &Path) {
    for (what, extra) in [("", None), (" --no-tool-check", Some("--no-tool-check"))] {
        let mut runs = Vec::new();
        let mut files = 0;
        for i in 0..RUNS {
            let out: PathBuf = dir.join(format!("production-{i}"));
            let mut args = vec![
                "plan",
                "--profile",
                "production",
                "--out",
                out.to_str().unwrap(),
            ];
            args.extend(extra);
            let run = timed(telltale(), &args, &[], dir);
            assert!(run.ok, "{}", run.stderr);
            files = files_under(&out);
            std::fs::remove_dir_all(&out).unwrap();
            runs.push(run);
        }
        println!(
            "telltale plan --profile production{what}: {files} files written, {}",
            summary(&runs)
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter argument picks one part.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |part: &str| only.as_deref().is_none_or(|o| part.contains(o));
    let dir = tempfile::tempdir().unwrap();
    if wanted("core") {
        core_checks(dir.path());
    }
    if wanted("targets") {
        targets_and_rules(dir.path());
    }
    if wanted("plan") {
        plan_production(dir.path());
    }
}
