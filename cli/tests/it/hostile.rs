//! Hostile and careless input, through the real binary: each case asserts
//! the exit code, that no output carries the canary (a secret planted in the
//! environment, in files and in the arguments), that the run ends in bounded
//! time, and that nothing outside the output directory changed (the whole
//! temporary tree is snapshotted before and after; the output directory
//! itself is only allowed to appear on success).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Assembled at run time so no secret-looking literal sits in the source.
fn canary() -> String {
    format!("{}-{}-{}", "CANARY", "c4n4ry", "0x5ec7e7")
}

/// A valid config to start from; `spec:` extras go after it.
fn config(extra: &str) -> String {
    format!(
        "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata:\n  name: t\nspec:\n  profile: kind\n{extra}"
    )
}

fn plugin_yaml(name: &str) -> String {
    format!(
        "apiVersion: telltale.dev/v1alpha1\nkind: Plugin\nmetadata:\n  name: {name}\n  version: 0.1.0\n  description: test plugin\nspec:\n  phase: exporters\n"
    )
}

#[derive(Default)]
struct Case {
    name: &'static str,
    args: Vec<String>,
    /// Files written into the work directory before the run.
    files: Vec<(String, Vec<u8>)>,
    /// Extra setup (links, FIFOs) in the work directory.
    setup: Option<fn(&Path)>,
    code: i32,
    /// Fragments that must appear in stderr.
    expect: Vec<String>,
    /// The output directory (relative to the work dir); `out` by default.
    out: Option<&'static str>,
    /// Keep PATH (promtool and amtool) for the run.
    with_tools: bool,
}

impl Case {
    fn new(name: &'static str, code: i32) -> Case {
        Case {
            name,
            code,
            ..Case::default()
        }
    }
    fn args(mut self, args: &[&str]) -> Case {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }
    fn arg(mut self, arg: String) -> Case {
        self.args.push(arg);
        self
    }
    fn file(mut self, rel: &str, content: impl Into<Vec<u8>>) -> Case {
        self.files.push((rel.to_string(), content.into()));
        self
    }
    fn config(self, extra: &str) -> Case {
        self.file("telltale.yaml", config(extra))
    }
    fn setup(mut self, f: fn(&Path)) -> Case {
        self.setup = Some(f);
        self
    }
    fn expect(mut self, fragment: &str) -> Case {
        self.expect.push(fragment.to_string());
        self
    }
    fn with_tools(mut self) -> Case {
        self.with_tools = true;
        self
    }
    fn out(mut self, out: &'static str) -> Case {
        self.out = Some(out);
        self
    }
}

/// Files only (links are recorded as their target, FIFOs by kind), so a
/// snapshot never blocks and never follows a link out of the tree.
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, skip: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            if path == skip {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                out.insert(
                    rel,
                    format!("link → {}", std::fs::read_link(&path).unwrap().display()),
                );
            } else if kind.is_dir() {
                out.insert(rel.clone(), "dir".into());
                walk(root, &path, skip, out);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                let digest =
                    sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes));
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                out.insert(rel, hex);
            } else {
                out.insert(rel, "special".into());
            }
        }
    }
    walk(root, root, skip, &mut out);
    out
}

fn run(case: Case) {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for (rel, content) in &case.files {
        let path = work.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    if let Some(setup) = case.setup {
        setup(&work);
    }
    let out_rel = case.out.unwrap_or("out");
    let out: PathBuf = work.join(out_rel);
    let out_existed = out.exists();
    // On success only the output may change; on failure nothing at all.
    let first = Path::new(out_rel).components().next().map(|c| work.join(c));
    let skip = match (case.code, first) {
        (0, Some(first)) => first,
        _ => PathBuf::from("/nonexistent"),
    };
    let before = snapshot(root.path(), &skip);

    let c = canary();
    let mut cmd = crate::common::telltale(&work);
    cmd.env("TELLTALE_CANARY", &c)
        .env(
            "SLACK_WEBHOOK_URL",
            format!("https://hooks.slack.com/services/T/B/{c}"),
        )
        .timeout(Duration::from_secs(60));
    if case.with_tools {
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    }
    let is_plan = case.args.first().is_none_or(|a| a.starts_with('-'));
    if is_plan {
        cmd.arg("plan").arg("--out").arg(out_rel);
    }
    cmd.args(&case.args);
    let started = Instant::now();
    let output = cmd.output().unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let name = case.name;
    assert_eq!(
        output.status.code(),
        Some(case.code),
        "{name}: exit code\nstderr:\n{stderr}\nstdout:\n{stdout}"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "{name}: took {elapsed:?} (bounded time)"
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains(&c), "{name}: the canary leaked:\n{text}");
        assert!(
            !text.contains("c4n4ry"),
            "{name}: part of the canary leaked:\n{text}"
        );
        assert!(!text.contains("panicked"), "{name}: panic:\n{text}");
    }
    for fragment in &case.expect {
        assert!(
            stderr.contains(fragment.as_str()),
            "{name}: `{fragment}` not in stderr:\n{stderr}"
        );
    }
    let after = snapshot(root.path(), &skip);
    assert_eq!(before, after, "{name}: files outside the output changed");
    if case.code != 0 && !out_existed {
        assert!(!out.exists(), "{name}: the output was created on failure");
    }
    if case.code == 0 && out.exists() {
        // Every file written stayed inside the output, and the canary is in none.
        let written = snapshot(&out, Path::new("/nonexistent"));
        for rel in written.keys() {
            let text = std::fs::read_to_string(out.join(rel)).unwrap_or_default();
            assert!(!text.contains(&c), "{name}: canary in {rel}");
        }
    }
}

fn run_all(cases: Vec<Case>) {
    let n = cases.len();
    for case in cases {
        run(case);
    }
    eprintln!("{n} cases");
}

// ---- The output directory: never destroy what telltale did not write ----

#[test]
fn output_directory() {
    fn own_bundle(work: &Path) {
        let bundle = crate::common::render_profile("kind");
        crate::common::write(&bundle, &work.join("out"));
    }
    fn own_bundle_tampered(work: &Path) {
        own_bundle(work);
        std::fs::write(
            work.join("out/alertmanager/alertmanager.yaml"),
            "edited by hand\n",
        )
        .unwrap();
    }
    fn own_bundle_plus_file(work: &Path) {
        own_bundle(work);
        std::fs::write(work.join("out/notes.txt"), "mine\n").unwrap();
    }
    fn symlinked_out(work: &Path) {
        std::fs::create_dir(work.join("real")).unwrap();
        std::os::unix::fs::symlink(work.join("real"), work.join("out")).unwrap();
    }
    fn link_inside_bundle(work: &Path) {
        own_bundle(work);
        std::os::unix::fs::symlink("/etc/hostname", work.join("out/runbooks/extra.md")).unwrap();
    }
    run_all(vec![
        Case::new("terraform dir with plan.json and main.tf", 2)
            .args(&["--profile", "kind"])
            .file("out/plan.json", "{\"format_version\": \"1.2\"}\n")
            .file("out/main.tf", "resource \"x\" \"y\" {}\n")
            .expect("main.tf, which telltale did not write"),
        Case::new("a bundle with a hand-edited file", 2)
            .args(&["--profile", "kind"])
            .setup(own_bundle_tampered)
            .expect("alertmanager/alertmanager.yaml, which telltale did not write"),
        Case::new("a bundle with an extra file", 2)
            .args(&["--profile", "kind"])
            .setup(own_bundle_plus_file)
            .expect("notes.txt"),
        Case::new("a bundle with a symlink in it", 2)
            .args(&["--profile", "kind"])
            .setup(link_inside_bundle)
            .expect("runbooks/extra.md"),
        Case::new("--out . inside a bundle", 2)
            .args(&["--profile", "homelab"])
            .setup(|w| {
                let bundle = crate::common::render_profile("kind");
                crate::common::write(&bundle, &w.join("tmpb"));
                for entry in std::fs::read_dir(w.join("tmpb")).unwrap() {
                    let e = entry.unwrap();
                    std::fs::rename(e.path(), w.join(e.file_name())).unwrap();
                }
                std::fs::remove_dir(w.join("tmpb")).unwrap();
            })
            .out(".")
            .expect("contains the current directory"),
        Case::new("--out is a regular file", 2)
            .args(&["--profile", "kind"])
            .file("out", "not a dir\n")
            .expect("not a directory"),
        Case::new("--out is a symbolic link", 2)
            .args(&["--profile", "kind"])
            .setup(symlinked_out)
            .expect("a symbolic link"),
        Case::new("own bundle is replaced", 0)
            .args(&["--profile", "homelab"])
            .setup(own_bundle),
        Case::new("empty directory is filled", 0)
            .args(&["--profile", "kind"])
            .setup(|w| std::fs::create_dir(w.join("out")).unwrap()),
        Case::new("new nested directory", 0)
            .args(&["--profile", "kind"])
            .out("a/b/out"),
    ]);
}

// ---- Paths built from input stay inside the bundle ----

#[test]
fn path_confinement() {
    let slo = |name: &str| {
        format!(
            "  slos:\n    - name: \"{name}\"\n      objective: 99.9\n      errors: sum(rate(e[{{{{window}}}}]))\n      total: sum(rate(t[{{{{window}}}}]))\n"
        )
    };
    run_all(vec![
        Case::new("namespace ../etc on the command line", 2)
            .args(&["--profile", "kind", "-n", "../etc"])
            .expect("DNS-1123 label"),
        Case::new("namespace with ../ in the config", 2)
            .config("  namespace: ../../escape\n")
            .expect("telltale.yaml:7:14: spec.namespace"),
        Case::new("namespace too long", 2)
            .arg("--profile".into())
            .arg("kind".into())
            .arg("-n".into())
            .arg("a".repeat(64)),
        Case::new("namespace with upper case suggests the fix", 2)
            .config("  namespace: My_Stack\n")
            .expect("did you mean `my-stack`?"),
        Case::new("SLO name with ../", 2)
            .config(&slo("../../evil"))
            .expect("spec.slos.0.name"),
        Case::new("SLO name with a slash", 2).config(&slo("a/b")),
        Case::new("cluster name with ../", 2)
            .config("  cluster:\n    name: ../x\n")
            .expect("spec.cluster.name"),
        Case::new("plugin manifest name with ../", 2)
            .args(&["--plugin-dir", "plug"])
            .file("plug/evil/plugin.yaml", plugin_yaml("../evil"))
            .config("  plugins:\n    evil: {}\n")
            .expect("metadata.name"),
        Case::new("plugin object named ../../escape", 2)
            .args(&["--plugin-dir", "plug"])
            .file("plug/evil/plugin.yaml", plugin_yaml("evil"))
            .file(
                "plug/evil/manifests/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ../../escape\ndata: {}\n",
            )
            .config("  plugins:\n    evil: {}\n")
            .expect("DNS-1123 subdomain"),
        Case::new("plugin rule file name with a space", 2)
            .args(&["--plugin-dir", "plug"])
            .file("plug/evil/plugin.yaml", plugin_yaml("evil"))
            .file("plug/evil/rules/bad name.yaml", "groups: []\n")
            .config("  plugins:\n    evil: {}\n"),
        Case::new("plugin dashboard uid with upper case", 2)
            .args(&["--plugin-dir", "plug"])
            .file("plug/evil/plugin.yaml", plugin_yaml("evil"))
            .file("plug/evil/dashboards/Bad_Uid.json", "{}\n")
            .config("  plugins:\n    evil: {}\n")
            .expect("becomes an object name"),
    ]);
}

// ---- Values checked before anything is written ----

#[test]
fn validation() {
    let hours = |body: &str| format!("  alerting:\n    businessHours:\n{body}");
    let slo = |field: &str| {
        format!(
            "  slos:\n    - name: api\n      errors: sum(rate(e[{{{{window}}}}]))\n      total: sum(rate(t[{{{{window}}}}]))\n{field}"
        )
    };
    let email = |smarthost: &str, to: &str| {
        format!(
            "  alerting:\n    receivers:\n      email:\n        to: {to}\n        from: am@example.com\n        smarthost: {smarthost}\n"
        )
    };
    let chain = |body: &str| format!("  alerting:\n    escalation:\n{body}");
    run_all(vec![
        Case::new("escalation: first level later than 0s", 2)
            .config(&chain("      policy: levels\n      levels: [{after: 5m, notify: [slack]}]\n"))
            .expect("spec.alerting.escalation.levels.0.after")
            .expect("`0s` for the first level"),
        Case::new("escalation: levels out of order", 2)
            .config(&chain("      policy: levels\n      levels: [{after: 0s, notify: [slack]}, {after: 30m, notify: [sms]}, {after: 15m, notify: [pagerduty]}]\n"))
            .expect("spec.alerting.escalation.levels.2.after")
            .expect("longer than level 2's `30m`"),
        Case::new("escalation: not a duration", 2)
            .config(&chain("      policy: levels\n      levels: [{after: 0s, notify: [slack]}, {after: 15 minutes, notify: [sms]}]\n"))
            .expect("spec.alerting.escalation.levels.1.after"),
        Case::new("escalation: unknown integration suggests one", 2)
            .config(&chain("      policy: levels\n      levels: [{after: 0s, notify: [slak]}]\n"))
            .expect("did you mean `slack`?"),
        Case::new("escalation: a level that notifies nothing", 2)
            .config(&chain("      policy: levels\n      levels: [{after: 0s, notify: []}]\n"))
            .expect("spec.alerting.escalation.levels.0.notify"),
        Case::new("escalation: levels with policy pagerduty", 2)
            .config(&chain("      policy: pagerduty\n      levels: [{after: 0s, notify: [slack]}]\n"))
            .expect("spec.alerting.escalation.levels")
            .expect("policy: levels"),
        Case::new("escalation: unknown policy", 2)
            .config(&chain("      policy: pagerdty\n"))
            .expect("did you mean `pagerduty`?"),
        Case::new("business hours start 25:00", 2)
            .config(&hours("      start: \"25:00\"\n"))
            .expect("spec.alerting.businessHours.start")
            .expect("HH:MM"),
        Case::new("business hours end before start", 2)
            .config(&hours("      start: \"18:00\"\n      end: \"09:00\"\n"))
            .expect("later than the start"),
        Case::new("unknown timezone", 2)
            .config(&hours("      timezone: Mars/Olympus_Mons\n"))
            .expect("IANA time zone"),
        Case::new("timezone in the wrong case suggests the fix", 2)
            .config(&hours("      timezone: europe/berlin\n"))
            .expect("did you mean `Europe/Berlin`?"),
        Case::new("weekday range that wraps the week", 2)
            .config(&hours("      weekdays: [\"saturday:sunday\"]\n"))
            .expect("weeks start on Sunday"),
        Case::new("weekday misspelt", 2)
            .config(&hours("      weekdays: [\"monday:fryday\"]\n"))
            .expect("spec.alerting.businessHours.weekdays.0"),
        Case::new("smarthost without a port", 2)
            .config(&email("nohostport", "ops@example.com"))
            .expect("spec.alerting.receivers.email.smarthost")
            .expect("host:port"),
        Case::new("smarthost port out of range", 2).config(&email("smtp.example.com:99999", "ops@example.com")),
        Case::new("email address without @", 2)
            .config(&email("smtp.example.com:587", "ops"))
            .expect("e-mail address"),
        Case::new("SLO objective 100", 2)
            .config(&slo("      objective: 100\n"))
            .expect("strictly between 0 and 100"),
        Case::new("SLO objective 0", 2).config(&slo("      objective: 0\n")),
        Case::new("SLO objective -5", 2)
            .config(&slo("      objective: -5\n"))
            .expect("spec.slos.0.objective"),
        Case::new("SLO window 30x", 2)
            .config(&slo("      objective: 99.9\n      window: 30x\n"))
            .expect("Prometheus duration"),
        Case::new("SLO window 30days suggests 30d", 2)
            .config(&slo("      objective: 99.9\n      window: 30days\n"))
            .expect("did you mean `30d`?"),
        Case::new("duplicate SLO names", 2)
            .config(&format!(
                "{}    - name: api\n      objective: 99\n      errors: e\n      total: t\n",
                slo("      objective: 99.9\n")
            ))
            .expect("defined twice"),
        Case::new("--set replicas=-3", 2)
            .args(&["--profile", "kind", "--set", "loki.singleBinary.replicas=-3"])
            .expect("0 or more"),
        Case::new("--set quantity 100Gb suggests 100Gi", 2)
            .args(&[
                "--profile",
                "kind",
                "--set",
                "kube-prometheus-stack.prometheus.prometheusSpec.resources.requests.memory=100Gb",
            ])
            .expect("did you mean `100Gi`"),
        Case::new("--set retention 30x", 2)
            .args(&[
                "--profile",
                "kind",
                "--set",
                "kube-prometheus-stack.prometheus.prometheusSpec.retention=30x",
            ])
            .expect("Prometheus duration"),
        Case::new("--set a string where the default is a mapping", 2)
            .args(&["--profile", "kind", "--set", "loki.loki=flat"])
            .expect("a mapping"),
        Case::new("runbook base URL that is not http", 2)
            .config("  alerting:\n    runbookBaseUrl: ftp://example.com/runbooks\n")
            .expect("spec.alerting.runbookBaseUrl"),
        Case::new("postgres sslmode unknown", 2)
            .config("  grafana:\n    datasources:\n      postgres:\n        host: db:5432\n        database: d\n        user: u\n        password: {env: PG}\n        sslmode: sometimes\n")
            .expect("sslmode"),
        Case::new("wrong type quotes no value", 2)
            .config(&slo("      objective: \"CANARY-c4n4ry-0x5ec7e7\"\n"))
            .expect("spec.slos[0].objective: expected a number"),
    ]);
}

// ---- Secrets: refused where a plain value belongs, never echoed ----

#[test]
fn secrets() {
    let c = canary();
    let dsn = format!("postgres://app:{c}@db:5432/app");
    run_all(vec![
        Case::new("--set DSN with a password at a plain path", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(format!("loki.loki.storage.dsn2={dsn}"))
            .expect("URL with a password"),
        Case::new("--set grafana.adminPassword", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(format!("kube-prometheus-stack.grafana.adminPassword={c}"))
            .expect("`adminPassword` holds a credential"),
        Case::new("--set typo'd key with a token value", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(format!("kube-prometheus-stack.grafana.adminPasswrd=xoxb-{c}"))
            .expect("Slack token"),
        Case::new("--set credential inside a list", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(format!("loki.extraArgs={{a,{dsn}}}"))
            .expect("URL with a password"),
        Case::new("--set without = that is a secret", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(c.clone())
            .expect("has no `=`"),
        Case::new("--set list value without its closing brace", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(format!("loki.x={{a,{c}"))
            .expect("must end with `}`"),
        Case::new("--set unknown plugin with a secret value", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(format!("nosuch.key={c}")),
        Case::new("secret pasted as an env var name", 2)
            .config(&format!(
                "  alerting:\n    receivers:\n      slack:\n        channel: \"#ops\"\n        webhookUrl: {{env: \"xoxb-{c}\"}}\n"
            ))
            .expect("name of an environment variable"),
        Case::new("literal webhook URL", 2)
            .config(&format!(
                "  alerting:\n    receivers:\n      slack:\n        channel: \"#ops\"\n        webhookUrl: https://hooks.slack.com/services/T/B/{c}\n"
            ))
            .expect("a literal secret is not allowed"),
        Case::new("password in plugin values", 2)
            .config(&format!(
                "  plugins:\n    kube-prometheus-stack:\n      values:\n        grafana:\n          adminPassword: {c}\n"
            ))
            .expect("spec.plugins.kube-prometheus-stack.values.grafana.adminPassword"),
        Case::new("DSN in spec.set", 2)
            .config(&format!("  set:\n    loki:\n      loki.x: \"{dsn}\"\n"))
            .expect("spec.set.loki.loki.x"),
        Case::new("runbook URL with userinfo", 2)
            .config(&format!("  alerting:\n    runbookBaseUrl: https://bot:{c}@wiki.example.com/rb\n"))
            .expect("spec.alerting.runbookBaseUrl"),
        Case::new("PagerDuty URL with userinfo", 2)
            .config(&format!(
                "  alerting:\n    receivers:\n      pagerduty:\n        routingKey: {{env: PD}}\n        url: https://u:{c}@events.example.com/v2\n"
            )),
        Case::new("token in the SLO selector", 2)
            .config(&format!("  sloSelector: 'job=\"ghp_{}\"'\n", "A".repeat(30) + "c4n4ry"))
            .expect("spec.sloSelector"),
        Case::new("empty secret file path", 2).config(
            "  alerting:\n    receivers:\n      slack:\n        channel: \"#ops\"\n        webhookUrl: {file: \"\"}\n",
        ),
    ]);
}

// ---- Plugin files: regular files inside the plugin only ----

#[test]
fn plugin_files() {
    fn fifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
    run_all(vec![
        Case::new("plugin file is a symlink to a host file", 2)
            .args(&["--plugin-dir", "plug"])
            .file("secret.txt", canary())
            .file("plug/evil/plugin.yaml", plugin_yaml("evil"))
            .setup(|w| {
                std::fs::create_dir_all(w.join("plug/evil/runbooks")).unwrap();
                std::os::unix::fs::symlink(w.join("secret.txt"), w.join("plug/evil/runbooks/X.md")).unwrap();
            })
            .config("  plugins:\n    evil: {}\n")
            .expect("a symbolic link"),
        Case::new("--plugin-dir is a FIFO", 2)
            .args(&["--plugin-dir", "fifo"])
            .setup(|w| fifo(&w.join("fifo")))
            .expect("not a directory"),
        Case::new("--plugin-dir is /dev", 2).args(&["--plugin-dir", "/dev", "--profile", "kind"]),
        Case::new("a FIFO inside a plugin", 2)
            .args(&["--plugin-dir", "plug", "--profile", "kind"])
            .file("plug/evil/plugin.yaml", plugin_yaml("evil"))
            .setup(|w| fifo(&w.join("plug/evil/values.yaml")))
            .expect("not a regular file"),
        Case::new("an oversized plugin file", 2)
            .args(&["--plugin-dir", "plug", "--profile", "kind"])
            .file("plug/evil/plugin.yaml", plugin_yaml("evil"))
            .file("plug/evil/runbooks/BIG.md", vec![b'x'; 5 * 1024 * 1024])
            .expect("larger than"),
        Case::new("nested template loops", 2)
            .args(&["--plugin-dir", "plug"])
            .file("plug/evil/plugin.yaml", plugin_yaml("evil"))
            .file(
                "plug/evil/manifests/cm.yaml",
                "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}\n",
            )
            .config("  plugins:\n    evil: {}\n")
            .expect("instructions"),
        Case::new("recursive template macro", 2)
            .args(&["--plugin-dir", "plug"])
            .file("plug/evil/plugin.yaml", plugin_yaml("evil"))
            .file(
                "plug/evil/manifests/cm.yaml",
                "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}\n",
            )
            .config("  plugins:\n    evil: {}\n")
            .expect("template error"),
        Case::new("a rule promtool refuses is caught before writing", 2)
            .with_tools()
            .setup(|_| {
                crate::common::require_tool("promtool");
            })
            .args(&["--plugin-dir", "plug"])
            .file("plug/evil/plugin.yaml", plugin_yaml("evil"))
            .file(
                "plug/evil/rules/evil.yaml",
                "groups:\n  - name: evil\n    rules:\n      - alert: Evil\n        expr: up == 0\n        labels:\n          severity: warning\n          category: availability\n          priority: P2\n        annotations:\n          summary: \"{{ $labels.instance \"\n          description: d\n          runbook_url: https://telltale.dev/runbooks/EVIL.md\n",
            )
            .config("  plugins:\n    evil: {}\n")
            .expect("does not pass `promtool check rules")
            .expect("plug/evil/rules/evil.yaml"),
        Case::new("plugin directory named differently from metadata.name", 2)
            .args(&["--plugin-dir", "plug", "--profile", "kind"])
            .file("plug/evil/plugin.yaml", plugin_yaml("other"))
            .expect("must equal its directory name"),
    ]);
}

// ---- Bounded sizes, depths and durations ----

#[test]
fn bounds() {
    fn fifo(w: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(w.join("fifo.yaml"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let deep_set = format!("loki.{}=1", vec!["a"; 20_000].join("."));
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        laughs.push_str(&format!(
            "l{i}: &l{i} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
            p = if i == 1 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            }
        ));
    }
    run_all(vec![
        Case::new("--set path of 20,000 segments", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(deep_set)
            .expect("nested more than 30"),
        Case::new("--set path of 100 segments", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(format!("loki.{}=1", vec!["a"; 100].join(".")))
            .expect("more than 30"),
        Case::new("--set value of 100 KiB", 2)
            .args(&["--profile", "kind"])
            .arg("--set".into())
            .arg(format!("loki.x={}", "y".repeat(100 * 1024))),
        Case::new("-f /dev/zero", 2)
            .args(&["-f", "/dev/zero"])
            .expect("not a regular file"),
        Case::new("-f a FIFO", 2)
            .args(&["-f", "fifo.yaml"])
            .setup(fifo)
            .expect("not a regular file"),
        Case::new("-f a directory", 2).args(&["-f", "."]),
        Case::new("-f a 2 MiB file", 2)
            .args(&["-f", "big.yaml"])
            .file(
                "big.yaml",
                format!("{}\n{}", config(""), "#".repeat(2 * 1024 * 1024)),
            )
            .expect("larger than"),
        Case::new("--profile /dev/zero", 2).args(&["--profile", "/dev/zero"]),
        Case::new("config nested 10,000 deep", 2).file("telltale.yaml", nested),
        Case::new("config alias bomb", 2).file("telltale.yaml", laughs),
        Case::new("config with 100,000 SLOs", 2).file(
            "telltale.yaml",
            config(&format!(
                "  slos:\n{}",
                "    - {name: a, objective: 99, errors: e, total: t}\n".repeat(100_000)
            )),
        ),
        Case::new("up --timeout of 10^20 hours", 2).args(&[
            "up",
            "--timeout",
            "99999999999999999999h",
        ]),
        Case::new("up --timeout 1000000000h", 2)
            .args(&["up", "--timeout", "1000000000h"])
            .expect("1s to 24h"),
        Case::new("up --timeout 0s", 2).args(&["up", "--timeout", "0s"]),
        Case::new("gitops --path escaping the repository", 2)
            .args(&[
                "gitops",
                "--profile",
                "kind",
                "--path",
                "../../outside",
                "--repo",
                "repo",
            ])
            .setup(|w| {
                crate::common::run_ok(
                    std::process::Command::new("git")
                        .args(["init", "-q", "repo"])
                        .current_dir(w),
                );
            }),
        Case::new("gitops --path into .git", 2)
            .args(&[
                "gitops",
                "--profile",
                "kind",
                "--path",
                ".git/hooks",
                "--repo",
                "repo",
            ])
            .setup(|w| {
                crate::common::run_ok(
                    std::process::Command::new("git")
                        .args(["init", "-q", "repo"])
                        .current_dir(w),
                );
            }),
    ]);
}

// ---- A bundle's plan.json, edited: parsed once, strictly ----

/// A kind bundle in `bundle/` whose plan.json has `from` replaced by `to`
/// (plan.json is not among the digested files, so only its parse stands
/// between an edit and what `verify` and `up` would do).
fn edited_bundle(work: &Path, from: &str, to: &str) {
    let bundle = crate::common::render_profile("kind");
    let dir = work.join("bundle");
    crate::common::write(&bundle, &dir);
    let plan = std::fs::read_to_string(dir.join("plan.json")).unwrap();
    assert!(plan.contains(from), "the plan holds {from}");
    std::fs::write(dir.join("plan.json"), plan.replacen(from, to, 1)).unwrap();
}

#[test]
fn plan_json_edits() {
    run_all(vec![
        // Never a generated password in place of what the plan meant, and
        // the text (maybe a pasted secret) is not repeated.
        Case::new("an unrecognised secret source", 2)
            .args(&["verify", "--bundle", "bundle"])
            .setup(|w| {
                edited_bundle(
                    w,
                    "\"source\": \"generated\"",
                    &format!("\"source\": \"{}\"", canary()),
                )
            })
            .expect("plan.json is not a telltale plan")
            .expect("not a secret source"),
        Case::new("a secretRef without its key", 2)
            .args(&["verify", "--bundle", "bundle"])
            .setup(|w| {
                edited_bundle(
                    w,
                    "\"source\": \"generated\"",
                    "\"source\": \"secretRef:pg\"",
                )
            })
            .expect("secretRef: takes NAME/KEY"),
        Case::new("an unknown verify check", 2)
            .args(&["verify", "--bundle", "bundle"])
            .setup(|w| edited_bundle(w, "\"notifications\"", "\"notificationz\""))
            .expect("unknown variant `notificationz`"),
        Case::new("an unknown preflight check", 2)
            .args(&["verify", "--bundle", "bundle"])
            .setup(|w| edited_bundle(w, "\"id\": \"rbac\"", "\"id\": \"rbca\""))
            .expect("unknown variant `rbca`"),
    ]);
}

/// The classes above, counted: the suite promises at least 60 cases.
#[test]
fn the_suite_has_at_least_sixty_cases() {
    let source = include_str!("hostile.rs");
    let cases = source.matches("Case::new(\"").count() - 1;
    assert!(cases >= 60, "{cases} cases");
}

/// Inputs at the edges of what is accepted render a bundle that the real
/// validators accept too: what `plan` lets through, promtool and amtool
/// (and so Prometheus and Alertmanager) must not refuse.
#[test]
fn accepted_edge_inputs_pass_promtool_and_amtool() {
    use std::process::Command;
    crate::common::require_tool("promtool");
    crate::common::require_tool("amtool");
    let long_ns = format!("n{}", "0".repeat(61));
    let configs = [
        config(
            "  alerting:\n    businessHours:\n      timezone: America/Argentina/Buenos_Aires\n      weekdays: [\"sunday:monday\", saturday]\n      start: \"00:00\"\n      end: \"24:00\"\n    receivers:\n      email:\n        to: a@example.com, b@example.com\n        from: am@example.com\n        smarthost: \"[::1]:25\"\n",
        ),
        config(
            "  slos:\n    - name: a\n      objective: 99.999\n      window: 4w\n      errors: sum(rate(e[{{window}}]))\n      total: sum(rate(t[{{window}}]))\n    - name: b-1\n      objective: 0.001\n      window: 1h30m\n      errors: sum(rate(e[{{window}}]))\n      total: sum(rate(t[{{window}}]))\n",
        ),
        config(&format!(
            "  namespace: {long_ns}\n  alerting:\n    runbookBaseUrl: https://wiki.example.com/run%20books?x=1\n"
        )),
    ];
    for text in configs {
        let bundle = telltale::render::render(
            &crate::common::catalog(),
            &telltale::render::Request {
                config: Some(telltale::model::Source::new("edge.yaml", text.clone())),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("accepted input renders: {e}\n{text}"));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b");
        crate::common::write(&bundle, &out);
        let rules: Vec<String> = bundle
            .files
            .keys()
            .filter(|p| p.starts_with("prometheus/rules/"))
            .cloned()
            .collect();
        crate::common::run_ok(
            Command::new("promtool")
                .current_dir(&out)
                .args(["check", "rules"])
                .args(&rules),
        );
        let tests: Vec<String> = bundle
            .files
            .keys()
            .filter_map(|p| p.strip_prefix("prometheus/tests/").map(str::to_string))
            .collect();
        if !tests.is_empty() {
            let log = crate::common::run_ok(
                Command::new("promtool")
                    .current_dir(out.join("prometheus/tests"))
                    .args(["test", "rules"])
                    .args(&tests),
            );
            assert!(!log.contains("FAILED"), "{log}");
        }
        crate::common::run_ok(
            Command::new("amtool")
                .arg("check-config")
                .arg(out.join("alertmanager/alertmanager.yaml")),
        );
    }
}
