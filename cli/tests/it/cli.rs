//! The command-line contract: JSON shapes, exit codes, help and README.

use assert_cmd::Command;
use serde_json::Value;

use crate::common::telltale;

fn json_of(cmd: &mut Command) -> Value {
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is exactly one JSON document")
}

#[test]
fn profiles_list_json_has_every_profile() {
    let dir = tempfile::tempdir().unwrap();
    let v = json_of(telltale(dir.path()).args(["profiles", "list", "-o", "json"]));
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "data-platform",
            "homelab",
            "hub",
            "kind",
            "ml-slo",
            "production",
            "spoke"
        ]
    );
    for p in v.as_array().unwrap() {
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["description", "extends", "name", "plugins"]);
        assert!(!p["description"].as_str().unwrap().is_empty());
        assert!(
            p["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "kube-prometheus-stack")
        );
    }
    let prod = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "data-platform")
        .unwrap();
    assert_eq!(prod["extends"], "production");
}

#[test]
fn plugins_list_json_has_the_core_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let v = json_of(telltale(dir.path()).args(["plugins", "list", "-o", "json"]));
    for core in ["kube-prometheus-stack", "loki", "alloy", "promtail"] {
        let p = v
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == core)
            .unwrap_or_else(|| panic!("{core} listed"));
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["description", "name", "phase", "version"]);
    }
}

#[test]
fn plan_json_on_stdout_is_the_written_plan() {
    let dir = tempfile::tempdir().unwrap();
    let output = telltale(dir.path())
        .args(["plan", "--profile", "homelab", "-o", "json", "--out", "b"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("b/plan.json")).unwrap())
            .unwrap();
    assert_eq!(printed, written);
    assert_eq!(printed["profile"], "homelab");
    assert!(
        printed["expectations"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["job"] == "node-exporter")
    );
}

#[test]
fn plan_text_prints_the_phase_table() {
    let dir = tempfile::tempdir().unwrap();
    let output = telltale(dir.path())
        .args(["plan", "--profile", "kind"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for phase in ["preflight", "crds", "metrics", "logs", "alerting", "verify"] {
        assert!(stdout.contains(phase), "{stdout}");
    }
    assert!(
        dir.path().join("telltale-out/plan.json").is_file(),
        "default --out is ./telltale-out"
    );
}

#[test]
fn plan_without_profile_explains_how_to_pick_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = telltale(dir.path()).args(["plan"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no profile selected") && stderr.contains("--profile"),
        "{stderr}"
    );
}

#[test]
fn runbook_prints_and_suggests() {
    let dir = tempfile::tempdir().unwrap();
    let output = telltale(dir.path())
        .args(["runbook", "NodeDown"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("# RUNBOOK: NODE_DOWN"), "{text}");
    for section in [
        "## Detection",
        "## Diagnosis",
        "## Resolution",
        "## Escalation",
    ] {
        assert!(text.contains(section));
    }
    let output = telltale(dir.path())
        .args(["runbook", "NodeDwn"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("did you mean `NodeDown`?"));
}

#[test]
fn plugins_new_then_lint_passes() {
    crate::common::require_tool("promtool");
    crate::common::require_tool("amtool");
    let dir = tempfile::tempdir().unwrap();
    telltale(dir.path())
        .args(["plugins", "new", "demo"])
        .assert()
        .success();
    let output = telltale(dir.path())
        .env("PATH", std::env::var_os("PATH").unwrap())
        .args(["plugins", "lint", "demo"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // And a broken one fails: remove the silent case.
    let test = dir.path().join("demo/tests/demo_test.yaml");
    let text = std::fs::read_to_string(&test).unwrap().replace("        exp_alerts: []\n", "        exp_alerts: [{exp_labels: {severity: critical, priority: P0, category: availability, job: demo, instance: 'a:9100'}}]\n");
    std::fs::write(&test, text).unwrap();
    let output = telltale(dir.path())
        .env("PATH", std::env::var_os("PATH").unwrap())
        .args(["plugins", "lint", "demo"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("no promtool case where it stays silent")
    );
}

#[test]
fn every_builtin_plugin_lints_clean() {
    crate::common::require_tool("promtool");
    crate::common::require_tool("amtool");
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let dir = tempfile::tempdir().unwrap();
    let mut linted = 0;
    for entry in std::fs::read_dir(&plugins).unwrap() {
        let path = entry.unwrap().path();
        let output = telltale(dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap())
            .args(["plugins", "lint"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}:\n{stdout}{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("render in profile kind"), "{stdout}");
        linted += 1;
    }
    assert!(linted >= 22, "only {linted} plugin directories linted");
}

#[test]
fn readme_documents_every_command_and_help_agrees() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let help = telltale(dir.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 5, "{help}");
    for command in commands {
        assert!(
            readme.contains(&format!("telltale {command}")),
            "README does not document `telltale {command}`"
        );
    }
    for flag in [
        "--context",
        "--kubeconfig",
        "--namespace",
        "--config",
        "--profile",
        "--set",
        "--plugin-dir",
        "--cluster",
        "--output",
        "--yes",
        "--no-color",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
        assert!(readme.contains(flag), "README lacks {flag}");
    }
}

/// The completions a user gets in a real bash: the script `telltale
/// completions bash` prints is sourced, and bash's completion function asks
/// the binary for profile, plugin and alert names and kubeconfig contexts.
#[test]
fn bash_completes_profiles_plugins_alerts_and_contexts_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("telltale");
    let output = telltale(dir.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let script = dir.path().join("telltale.bash");
    std::fs::write(&script, &output.stdout).unwrap();
    std::fs::write(
        dir.path().join("kubeconfig"),
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: kind-telltale, context: {cluster: c, user: u}}, {name: prod-eu-1, context: {cluster: c, user: u}}]\n\
         current-context: kind-telltale\n",
    )
    .unwrap();
    let complete = |line: &str| -> Vec<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "source {script}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9; \
             _clap_complete_telltale telltale '{cur}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script = script.display(),
            words = quoted.join(" "),
            cword = words.len() - 1,
            cur = words.last().unwrap(),
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "-c", &program])
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", bin.parent().unwrap().display()),
            )
            .env("HOME", dir.path())
            .env("KUBECONFIG", dir.path().join("kubeconfig"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(complete("telltale plan --profile pro"), ["production"]);
    assert!(complete("telltale runbook NodeD").contains(&"NodeDown".to_string()));
    assert!(
        complete("telltale plugins show kube-pro").contains(&"kube-prometheus-stack".to_string())
    );
    assert_eq!(complete("telltale status --context prod"), ["prod-eu-1"]);
    assert!(complete("telltale verify --checks tar").contains(&"targets".to_string()));
}

#[test]
fn version_names_the_commit_and_what_it_supports() {
    let dir = tempfile::tempdir().unwrap();
    let out = telltale(dir.path())
        .args(["version", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    // Built from this checkout, so the commit is git's, not "unknown".
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert_eq!(report["commit"], head.as_str());
    assert_eq!(report["kubernetes"], ">= 1.28");
    let charts = report["charts"].as_array().unwrap();
    let kps = charts
        .iter()
        .find(|c| c["plugin"] == "kube-prometheus-stack")
        .unwrap();
    assert!(kps["version"].as_str().unwrap().contains('.'), "{kps}");
    let short = telltale(dir.path()).arg("--version").output().unwrap();
    let short = String::from_utf8_lossy(&short.stdout);
    assert!(short.contains(&format!("(commit {head})")), "{short}");
}

#[test]
fn command_help_keeps_global_flags_apart_and_shows_examples() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["plan", "up", "verify", "gitops", "down"] {
        let out = telltale(dir.path())
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        let (own, rest) = help
            .split_once("Global Flags:")
            .unwrap_or_else(|| panic!("`{command} --help` has no Global Flags section:\n{help}"));
        assert!(!own.contains("--kubeconfig"), "{command}: {own}");
        assert!(
            rest.contains("--kubeconfig") && rest.contains("--set"),
            "{command}: {rest}"
        );
        let examples = rest
            .split_once("Examples:")
            .unwrap_or_else(|| panic!("`{command} --help` has no examples:\n{help}"))
            .1;
        assert!(
            examples
                .lines()
                .filter(|l| l.trim_start().starts_with(&format!("telltale {command}")))
                .count()
                >= 2,
            "{command}: {examples}"
        );
    }
}

#[test]
fn with_json_output_an_error_is_one_json_document_and_the_exit_code_stays() {
    let dir = tempfile::tempdir().unwrap();
    let output = telltale(dir.path())
        .args(["plan", "--profile", "kind", "-o", "json", "--out", "b"])
        .args([
            "--set",
            "kube-prometheus-stack.prometheus.prometheusSpec.retension=30d",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let v: Value =
        serde_json::from_slice(&output.stdout).expect("stdout is exactly one JSON document");
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], 2);
    assert_eq!(v["error"]["kind"], "bad_input");
    assert_eq!(v["error"]["location"], "--set #1:1:1");
    assert_eq!(
        v["error"]["path"],
        "kube-prometheus-stack.prometheus.prometheusSpec.retension"
    );
    assert_eq!(v["error"]["hint"], "did you mean `retention`?");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown key")
    );
    // The text report is still on stderr, and nothing was rendered.
    assert!(String::from_utf8_lossy(&output.stderr).contains("error: --set #1"));
    assert!(!dir.path().join("b").exists());

    // An error without a location, and a value that looks like a secret is
    // not repeated in the document.
    let output = telltale(dir.path())
        .args(["plan", "--profile", "kind", "-o", "json"])
        .args(["--set", "xoxb-CANARY-5ec7e7"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("CANARY"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"]["message"].as_str().unwrap().contains("no `=`"));

    // Without -o json, stdout stays empty on error.
    let output = telltale(dir.path())
        .args(["plan", "--set", "loki"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
}

/// clap's own usage errors (a misspelt flag) are the same JSON document
/// under `-o json`, with clap's tip as the hint; help stays help.
#[test]
fn with_json_output_a_usage_error_is_a_json_document_too() {
    let dir = tempfile::tempdir().unwrap();
    let output = telltale(dir.path())
        .args(["plan", "-o", "json", "--profle", "kind"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let v: Value =
        serde_json::from_slice(&output.stdout).expect("stdout is exactly one JSON document");
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], 2);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("--profle"), "{message}");
    assert!(
        v["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("--profile"),
        "{v:#}"
    );
    // clap's text is still on stderr; without -o json stdout stays empty.
    assert!(String::from_utf8_lossy(&output.stderr).contains("--profle"));
    let output = telltale(dir.path())
        .args(["plan", "--profle", "kind"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let help = telltale(dir.path())
        .args(["plan", "--help", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage"));
}

/// Errors a new user meets first say what is wrong in plain words and the
/// next command to try: a refused connection names the server and
/// `kubectl cluster-info`; a missing local repository says it is missing
/// (not "unsupported URL protocol").
#[test]
fn first_hour_errors_say_what_is_wrong_and_what_to_try() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::local::free_port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let out = telltale(dir.path())
        .args(["status", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.ends_with(&format!(
            "failed: connection refused: nothing listens at https://127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: ") && stderr.contains("kubectl cluster-info"),
        "{stderr}"
    );

    let out = telltale(dir.path())
        .args([
            "gitops",
            "--repo",
            "../no-such-infra",
            "--no-pr",
            "--profile",
            "kind",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the repository ../no-such-infra does not exist: --repo is a local path"),
        "{stderr}"
    );
    assert!(stderr.contains("git init --bare"), "{stderr}");
    assert!(!stderr.contains("unsupported URL protocol"), "{stderr}");
}

/// `-o yaml` is the `-o json` document, written as YAML, for results and
/// for errors alike.
#[test]
fn yaml_output_is_the_json_document_as_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let both = |args: &[&str]| {
        let run = |format: &str| {
            let out = telltale(dir.path())
                .args(args)
                .args(["-o", format])
                .output()
                .unwrap();
            (out.status.code(), String::from_utf8(out.stdout).unwrap())
        };
        let (json_code, json) = run("json");
        let (yaml_code, yaml) = run("yaml");
        assert_eq!(json_code, yaml_code, "{args:?}");
        let json: Value = serde_json::from_str(&json).unwrap();
        let yaml: Value = serde_saphyr::from_str(&yaml)
            .unwrap_or_else(|e| panic!("{args:?}: -o yaml is YAML ({e}):\n{yaml}"));
        assert_eq!(json, yaml, "{args:?}");
        json_code
    };
    assert_eq!(both(&["profiles", "list"]), Some(0));
    assert_eq!(
        both(&["plan", "--profile", "kind", "--out", "out"]),
        Some(0)
    );
    assert_eq!(both(&["runbook", "NodeDwn"]), Some(2));
    assert_eq!(both(&["plan", "--no-such-flag"]), Some(2));
}

/// Every file under `root`, relative to it, with its text: what the layer
/// lints below read.
fn files_under(root: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut stack = vec![root.to_path_buf()];
    let mut out = Vec::new();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        out.push((relative, std::fs::read_to_string(&path).unwrap()));
    }
    out
}

/// Only the terminal layer (`cli/src/ui/`) writes to the terminal: the
/// core crate, the workflows and the commands hand it text or reports. (The
/// test programs with their own output are the telltale-testing package's.)
#[test]
fn only_the_terminal_layer_writes_to_the_terminal() {
    let writes = regex::Regex::new(
        r"\b(e?println!|e?print!|dbg!)\(|io::stdout\(\)|io::stderr\(\)|Term::std(out|err)\(\)",
    )
    .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut files = 0;
    for crate_dir in ["cli", "core"] {
        for (relative, text) in files_under(&root.join(crate_dir).join("src")) {
            if crate_dir == "cli" && relative.starts_with("ui") {
                continue;
            }
            files += 1;
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                // Asking whether a stream is a terminal writes nothing.
                let code = code.replace("is_terminal(&std::io::stderr())", "");
                let code = code.replace("is_terminal(&std::io::stdout())", "");
                if writes.is_match(&code) {
                    found.push(format!(
                        "{crate_dir}/src/{}:{}: {}",
                        relative.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(files > 100, "the sources were read ({files} files)");
    assert!(
        found.is_empty(),
        "terminal output outside src/ui/:\n{}",
        found.join("\n")
    );
}

/// Issue 16's layers: a command parses flags, calls one use case and
/// prints. So nothing under `src/commands/` talks to the cluster (`kube::`,
/// `k8s_openapi`, `crate::cluster`: that is `session`, `install`, `verify`,
/// `gitops`) or calls another command's module (`super::up::…`,
/// `crate::commands::verify::…`); `commands/mod.rs` (the dispatcher and
/// `GlobalArgs`), `access` (the `--confirm-context` flag and the production
/// prompt) and `complete` (clap's completers) are shared by the commands.
#[test]
fn commands_call_use_cases_not_the_cluster_or_each_other() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands");
    let mod_rs = std::fs::read_to_string(root.join("mod.rs")).unwrap();
    let commands: Vec<&str> = mod_rs
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .collect();
    assert!(commands.contains(&"up") && commands.contains(&"verify"));
    let shared = ["access", "complete"];
    let cluster = regex::Regex::new(r"\bkube::|\bk8s_openapi\b|\bcrate::cluster\b").unwrap();
    let calls =
        regex::Regex::new(r"\b(super::super|super|crate::commands)::([a-z_][a-z0-9_]*)::").unwrap();
    let mut found = std::collections::BTreeSet::new();
    let mut files = 0;
    for (relative, text) in files_under(&root) {
        files += 1;
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        // The command this file belongs to, and whether `super` is the
        // commands module (a top-level file, or a command's mod.rs).
        let own = parts[0].clone();
        let super_is_commands = parts.len() == 1 || parts[1] == "mod";
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            if let Some(m) = cluster.find(code) {
                found.insert(format!("{}: {}", relative.display(), m.as_str()));
            }
            if own == "mod" {
                continue;
            }
            for c in calls.captures_iter(code) {
                let names_commands = match &c[1] {
                    "super" => super_is_commands,
                    "super::super" => !super_is_commands,
                    _ => true,
                };
                let name = &c[2];
                if names_commands
                    && name != own
                    && commands.contains(&name)
                    && !shared.contains(&name)
                {
                    found.insert(format!("{}: calls {name}", relative.display()));
                }
            }
        }
    }
    assert!(files > 20, "the sources were read ({files} files)");
    assert!(
        found.is_empty(),
        "src/commands/ reaches past its use cases:\n{}",
        found.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The other half of the layers: below the commands, nothing reaches up.
/// A use case (install, verify, gitops, fleet, session, planning…) or the
/// core reports through `report::Reporter` and returns its report; it never
/// names `crate::ui` (the printer, prompts, tables) or `crate::commands`
/// (flags, `GlobalArgs`). Only `ui/`, `commands/` and `main.rs` may.
#[test]
fn use_cases_do_not_reach_up_into_the_terminal_or_the_commands() {
    let up = regex::Regex::new(r"\b(crate|telltale)::(ui|commands)\b").unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut files = 0;
    for (relative, text) in files_under(&src) {
        if ["ui", "commands", "main.rs"]
            .iter()
            .any(|top| relative.starts_with(top))
        {
            continue;
        }
        files += 1;
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if up.is_match(code) {
                found.push(format!(
                    "src/{}:{}: {}",
                    relative.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(files > 50, "the sources were read ({files} files)");
    assert!(
        found.is_empty(),
        "below the commands, code reaches up into ui/ or commands/:\n{}",
        found.join("\n")
    );
}

/// The pure core is its own crate so the compiler keeps it pure: its normal
/// dependency graph (what `cargo tree -p telltale-core -e normal` prints)
/// holds no async runtime, cluster client, HTTP stack, git or terminal crate.
#[test]
fn the_core_crate_depends_on_no_io_crate() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "telltale-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--offline", "--locked", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains("serde") && crates.contains("minijinja"),
        "the tree was read: {crates:?}"
    );
    let forbidden = [
        "tokio",
        "kube",
        "kube-client",
        "k8s-openapi",
        "reqwest",
        "hyper",
        "rustls",
        "git2",
        "indicatif",
        "dialoguer",
        "console",
        "clap",
        "futures",
        "mio",
        "axum",
    ];
    let found: Vec<&str> = forbidden
        .iter()
        .copied()
        .filter(|c| crates.contains(c))
        .collect();
    assert!(
        found.is_empty(),
        "telltale-core depends on {found:?}:\n{tree}"
    );
}

/// Every test .config/nextest.toml orders by name exists: a renamed test
/// would otherwise lose its place at the front without a word.
#[test]
fn the_tests_nextest_starts_first_exist() {
    let config = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.config/nextest.toml"),
    )
    .unwrap();
    let listed = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let tests: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .collect();
    assert!(tests.len() > 300, "{} tests listed", tests.len());
    let named: Vec<&str> = config
        .split("test(=")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .collect();
    assert!(named.len() >= 15, "{named:?}");
    for name in named {
        assert!(
            tests.contains(&name),
            ".config/nextest.toml names `{name}`, which is not a test"
        );
    }
    for module in config
        .split("test(/^")
        .skip(1)
        .filter_map(|rest| rest.split("::/)").next())
    {
        assert!(
            tests.iter().any(|t| t.starts_with(&format!("{module}::"))),
            ".config/nextest.toml names module `{module}`, which has no tests"
        );
    }
}
