//! `up`, `status`, `down`, `unlock` against the fake API server
//! (testing/src/fake_api.rs) and the fake helm binary (testing/src/bin/fake_helm.rs):
//! these machines have no cluster and no helm. The real path is e2e/ on kind.

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use serde_json::{Value, json};

use crate::common::fake_api::FakeApi;

const NS: &str = "monitoring";

struct Stack {
    api: FakeApi,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Stack {
    /// A fake cluster with one roomy node and a default StorageClass.
    fn new(context: &str) -> Stack {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.kubeconfig(&dir.path().join("kubeconfig"), context);
        api.insert(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}}}),
        );
        api.insert(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path"}));
        Stack {
            api,
            dir,
            kubeconfig,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("telltale").unwrap();
        cmd.current_dir(self.dir.path())
            .env_remove("KUBECONFIG")
            .env_remove("FAKE_HELM_FAIL")
            .env_remove("FAKE_HELM_SLEEP")
            .env("NO_COLOR", "1")
            .env("TELLTALE_HELM", crate::common::fake_helm())
            .env("FAKE_HELM_STATE", self.dir.path().join("helm"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args);
        cmd
    }

    fn up(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "up",
            "--profile",
            "kind",
            "-y",
            "-o",
            "json",
            "--skip-verify",
        ];
        args.extend_from_slice(extra);
        self.cmd(&args).output().unwrap()
    }

    /// `up` as a user runs it: verify included.
    fn up_verifying(&self) -> Output {
        self.cmd(&["up", "--profile", "kind", "-y", "-o", "json"])
            .output()
            .unwrap()
    }

    fn helm_calls(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("helm/calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn helm_commands(&self) -> Vec<String> {
        self.helm_calls()
            .iter()
            .map(|c| {
                let args: Vec<&str> = c["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                match args[0] {
                    // upgrade --install RELEASE …
                    "upgrade" => format!("upgrade {}", args[2]),
                    "status" | "uninstall" => format!("{} {}", args[0], args[1]),
                    _ => args[..2.min(args.len())].join(" "),
                }
            })
            .collect()
    }

    fn lock_held(&self) -> bool {
        self.api
            .get("coordination.k8s.io/v1", "Lease", Some(NS), "telltale-lock")
            .is_some()
    }

    fn journal(&self) -> Option<Value> {
        self.api
            .get("v1", "ConfigMap", Some(NS), "telltale-journal")
            .map(|cm| serde_json::from_str(cm["data"]["journal.json"].as_str().unwrap()).unwrap())
    }
}

fn report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON document ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["phase"].as_str().unwrap().to_string(),
                p["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn kind_plan() -> telltale::render::plan::Plan {
    crate::common::render_profile("kind").plan
}

#[test]
fn up_runs_the_phases_in_order_and_a_second_run_changes_nothing() {
    let stack = Stack::new("kind-telltale");
    let first = stack.up(&[]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let r = report(&first);
    let plan = kind_plan();
    let expected: Vec<String> = plan
        .phases
        .iter()
        .filter(|p| p.name.installable())
        .map(|p| p.name.to_string())
        .collect();
    let got: Vec<(String, String)> = outcomes(&r);
    assert_eq!(
        got.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(got.iter().all(|(_, o)| o == "applied"), "{got:?}");

    // helm: CRDs shown (for telltale to apply) before the first chart, charts
    // in plan order, values on stdin exactly as the bundle has them.
    let commands = stack.helm_commands();
    let upgrades: Vec<&String> = commands
        .iter()
        .filter(|c| c.starts_with("upgrade"))
        .collect();
    assert_eq!(
        upgrades,
        [
            "upgrade kube-prometheus-stack",
            "upgrade loki",
            "upgrade alloy"
        ],
        "{commands:?}"
    );
    let show = commands
        .iter()
        .position(|c| c == "show crds")
        .expect("show crds");
    let first_upgrade = commands
        .iter()
        .position(|c| c.starts_with("upgrade"))
        .unwrap();
    assert!(show < first_upgrade);
    let bundle = crate::common::render_profile("kind");
    for call in stack.helm_calls() {
        let args: Vec<&str> = call["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        if args[0] == "upgrade" {
            let release = args[2];
            assert_eq!(
                call["stdin"],
                bundle.files[&format!("helm/{release}/values.yaml")]
            );
            for flag in [
                "--values",
                "-",
                "--skip-crds",
                "--wait",
                "--atomic",
                "--version",
                "--kube-context",
            ] {
                assert!(
                    args.contains(&flag),
                    "{release}: {flag} missing in {args:?}"
                );
            }
        }
    }

    // The API saw the CRDs applied (server-side, field manager telltale)
    // before any custom resource, and every manifest labelled managed-by.
    let requests = stack.api.requests();
    let crd = requests
        .iter()
        .position(|r| r.method == "PATCH" && r.path.contains("customresourcedefinitions"))
        .expect("CRDs applied");
    let rule = requests
        .iter()
        .position(|r| r.method == "PATCH" && r.path.contains("prometheusrules"))
        .expect("rules applied");
    assert!(crd < rule);
    for r in requests.iter().filter(|r| r.method == "PATCH") {
        assert!(r.query.contains("fieldManager=telltale"), "{r}");
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{r}"
        );
    }
    let rules = stack.api.list("monitoring.coreos.com/v1", "PrometheusRule");
    assert!(!rules.is_empty());
    for object in &rules {
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "telltale"
        );
    }
    assert!(
        stack
            .api
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "prometheusrules.monitoring.coreos.com"
            )
            .is_some()
    );

    // The journal: every phase applied with the plan's digest.
    let journal = stack.journal().expect("journal written");
    for phase in plan.phases.iter().filter(|p| p.name.installable()) {
        let record = &journal["phases"][phase.name.name()];
        assert_eq!(record["outcome"], "applied", "{}", phase.name);
        assert_eq!(record["digest"], phase.digest.as_str());
    }
    assert_eq!(journal["phases"]["metrics"]["releases"][0]["revision"], 1);
    // The Grafana admin password was generated.
    let admin = stack
        .api
        .get("v1", "Secret", Some(NS), "telltale-grafana-admin")
        .unwrap();
    let password = admin["data"]["admin-password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(password.len() >= 40, "base64 of 32 characters");
    // The lock is gone.
    assert!(!stack.lock_held());

    // Second run: nothing changes, and it says so per phase.
    stack.api.clear_requests();
    let calls_before = stack.helm_calls().len();
    let second = stack.up(&[]);
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let got = outcomes(&report(&second));
    assert!(got.iter().all(|(_, o)| o == "unchanged"), "{got:?}");
    let writes: Vec<String> = stack
        .api
        .writes()
        .iter()
        .filter(|w| !w.path.contains("/leases"))
        .map(|w| w.to_string())
        .collect();
    assert!(writes.is_empty(), "a no-op run wrote: {writes:?}");
    let new_calls: Vec<String> = stack.helm_commands()[calls_before..].to_vec();
    assert!(
        new_calls.iter().all(|c| !c.starts_with("upgrade")),
        "{new_calls:?}"
    );
    // The generated password was kept.
    let admin = stack
        .api
        .get("v1", "Secret", Some(NS), "telltale-grafana-admin")
        .unwrap();
    assert_eq!(admin["data"]["admin-password"], password.as_str());
}

#[test]
fn preflight_failure_changes_nothing_and_names_the_missing_permission() {
    let stack = Stack::new("kind-telltale");
    stack.api.deny("create", "", "secrets", NS);
    let out = stack.up(&[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let r = report(&out);
    let rbac = r["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "rbac")
        .unwrap();
    assert_eq!(rbac["status"], "fail");
    assert!(
        rbac["detail"]
            .as_str()
            .unwrap()
            .contains("create secrets in monitoring"),
        "{rbac}"
    );
    assert!(stderr(&out).contains("create secrets in monitoring"));
    assert!(stack.api.writes().is_empty(), "{:?}", stack.api.writes());
    assert!(stack.helm_commands().iter().all(|c| c == "version --short"));
}

#[test]
fn an_unsupported_server_and_missing_helm_fail_preflight() {
    let api = FakeApi::with_version("v1.24.17");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(&dir.path().join("kubeconfig"), "kind-old");
    let out = Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(dir.path())
        .env("TELLTALE_HELM", dir.path().join("no-such-helm"))
        .args([
            "up",
            "--profile",
            "kind",
            "-y",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert_eq!(code(&out), 3);
    let r = report(&out);
    let status = |id: &str| {
        r["preflight"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("server-version"), "fail");
    assert_eq!(status("helm"), "fail");
    assert!(api.writes().is_empty());
}

#[test]
fn an_unreachable_server_fails_fast_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::local::free_port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}\"}}\n\
users:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: kind-gone\n  context: {{cluster: c, user: u}}\ncurrent-context: kind-gone\n"
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(dir.path())
        .args(["up", "--profile", "kind", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("-y")
        .output()
        .unwrap();
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains(&format!("https://127.0.0.1:{port}")),
        "{}",
        stderr(&out)
    );
    // The contract in the issue ("within 15 seconds"), not a benchmark.
    assert!(started.elapsed().as_secs() < 15, "{:?}", started.elapsed());
}

/// A failure at each phase: the journal says exactly what was applied before
/// it, and the next run resumes at that phase.
#[test]
fn a_failure_in_any_phase_is_journaled_and_the_next_run_resumes_there() {
    let plan = kind_plan();
    // (phase, how to make it fail, objects the journal must list before the failure)
    type Inject = Box<dyn Fn(&Stack, &mut Vec<(&str, &str)>)>;
    let cases: Vec<(&str, Inject)> = vec![
        (
            "namespace",
            Box::new(|s: &Stack, _: &mut Vec<(&str, &str)>| {
                // The namespace exists already, so only the phase's own apply fails.
                s.api.insert(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
                );
                s.api.fail(
                    "PATCH",
                    "/api/v1/namespaces/monitoring",
                    500,
                    "etcdserver: request timed out",
                    1,
                );
            }),
        ),
        (
            "crds",
            Box::new(|s: &Stack, _: &mut Vec<(&str, &str)>| {
                s.api.fail(
                    "PATCH",
                    "customresourcedefinitions/prometheusrules",
                    500,
                    "etcdserver: request timed out",
                    1,
                );
            }),
        ),
        (
            "secrets",
            Box::new(|s: &Stack, _: &mut Vec<(&str, &str)>| {
                s.api.fail(
                    "PATCH",
                    "secrets/telltale-alertmanager-receivers",
                    500,
                    "etcdserver: request timed out",
                    1,
                );
            }),
        ),
        (
            "metrics",
            Box::new(|_: &Stack, env: &mut Vec<(&str, &str)>| {
                env.push(("FAKE_HELM_FAIL", "upgrade:kube-prometheus-stack"));
            }),
        ),
        (
            "logs",
            Box::new(|_: &Stack, env: &mut Vec<(&str, &str)>| {
                env.push(("FAKE_HELM_FAIL", "upgrade:alloy"));
            }),
        ),
        (
            "alerting",
            Box::new(|s: &Stack, _: &mut Vec<(&str, &str)>| {
                s.api.fail(
                    "PATCH",
                    "prometheusrules/telltale-operational",
                    422,
                    "admission webhook denied the request",
                    1,
                );
            }),
        ),
        (
            "dashboards",
            Box::new(|s: &Stack, _: &mut Vec<(&str, &str)>| {
                s.api.fail(
                    "PATCH",
                    "configmaps/telltale-dashboard-telltale-infrastructure",
                    500,
                    "etcdserver: request timed out",
                    1,
                );
            }),
        ),
    ];
    for (phase, inject) in cases {
        let stack = Stack::new("kind-telltale");
        let mut env = Vec::new();
        inject(&stack, &mut env);
        let mut cmd = stack.cmd(&[
            "up",
            "--profile",
            "kind",
            "-y",
            "-o",
            "json",
            "--skip-verify",
        ]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(code(&out), 1, "{phase}: {}", stderr(&out));
        let r = report(&out);
        let got = outcomes(&r);
        let at = got.iter().position(|(p, _)| p == phase).unwrap();
        assert_eq!(got[at].1, "failed", "{phase}: {got:?}");
        assert!(
            got[..at].iter().all(|(_, o)| o == "applied"),
            "{phase}: {got:?}"
        );
        assert!(
            got[at + 1..].iter().all(|(_, o)| o == "not-run"),
            "{phase}: {got:?}"
        );

        // The journal: earlier phases applied; this one failed, listing
        // exactly the objects and releases its steps applied before the failure.
        let journal = stack.journal().expect("journal written");
        let record = &journal["phases"][phase];
        assert_eq!(record["outcome"], "failed", "{phase}: {journal}");
        assert!(record["error"].as_str().unwrap().len() > 10);
        let plan_phase = plan.phases.iter().find(|p| p.name.name() == phase).unwrap();
        let recorded: Vec<String> = record["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .chain(
                record["releases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["name"].as_str().unwrap().to_string()),
            )
            .collect();
        let failing_step = plan_phase
            .steps
            .iter()
            .position(|s| record["error"].as_str().unwrap().starts_with(&s.describe()))
            .unwrap_or_else(|| panic!("{phase}: the error names its step: {record}"));
        let before: Vec<String> = plan_phase.steps[..failing_step]
            .iter()
            .filter_map(|s| match s {
                telltale::render::plan::Step::Apply { name, .. } => Some(name.clone()),
                telltale::render::plan::Step::Secret { name, .. } => Some(name.clone()),
                telltale::render::plan::Step::Helm { release, .. } => Some(release.clone()),
                _ => None,
            })
            .collect();
        if phase == "crds" {
            // CRDs are applied one by one from the chart; the first failed.
            assert!(recorded.len() < 5, "{recorded:?}");
        } else {
            assert_eq!(recorded, before, "{phase}: journal objects");
        }
        for later in &got[at + 1..] {
            assert!(
                journal["phases"].get(&later.0).is_none(),
                "{phase}: {} journaled",
                later.0
            );
        }
        // No lock left behind.
        assert!(!stack.lock_held());

        // The next run resumes at the failed phase.
        let again = stack.up(&[]);
        assert_eq!(code(&again), 0, "{phase}: {}", stderr(&again));
        let r = report(&again);
        assert_eq!(r["resumed_from"], phase, "{phase}");
        assert!(stderr(&again).contains(&format!("resuming: phase {phase}")));
        let got = outcomes(&r);
        assert!(
            got[..at].iter().all(|(_, o)| o == "unchanged"),
            "{phase}: {got:?}"
        );
        assert_eq!(got[at].1, "applied", "{phase}: {got:?}");
    }
}

#[test]
fn sigint_mid_phase_settles_the_step_journals_it_releases_the_lock_and_exits_130() {
    let stack = Stack::new("kind-telltale");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_telltale"))
        .current_dir(stack.dir.path())
        .env_remove("KUBECONFIG")
        .env("TELLTALE_HELM", crate::common::fake_helm())
        .env("FAKE_HELM_STATE", stack.dir.path().join("helm"))
        .env("FAKE_HELM_SLEEP", "upgrade:loki:3")
        .args([
            "up",
            "--skip-verify",
            "--profile",
            "kind",
            "-y",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(&stack.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let marker = stack.dir.path().join("helm/running-loki");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "loki's upgrade never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    let r = report(&out);
    let got = outcomes(&r);
    assert!(
        got.contains(&("logs".into(), "interrupted".into())),
        "{got:?}"
    );

    // loki's upgrade was let finish and is recorded; alloy never started.
    let journal = stack.journal().unwrap();
    let logs = &journal["phases"]["logs"];
    assert_eq!(logs["outcome"], "interrupted");
    assert_eq!(logs["releases"].as_array().unwrap().len(), 1);
    assert_eq!(logs["releases"][0]["name"], "loki");
    assert!(!stack.helm_commands().contains(&"upgrade alloy".to_string()));
    assert!(!stack.lock_held());

    let again = stack.up(&[]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert_eq!(report(&again)["resumed_from"], "logs");
}

fn hold_lock(stack: &Stack) {
    stack
        .api
        .insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    stack.api.insert(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "telltale-lock", "namespace": NS, "annotations": {
            "telltale.dev/owner": "alice", "telltale.dev/host": "build-7", "telltale.dev/pid": "4242",
            "telltale.dev/command": "up", "telltale.dev/started": "2026-11-21T06:00:00Z"}},
        "spec": {"holderIdentity": "alice@build-7:4242"}
    }));
}

#[test]
fn a_held_lock_exits_4_naming_the_holder_and_unlock_breaks_it() {
    let stack = Stack::new("kind-telltale");
    hold_lock(&stack);
    let out = stack.up(&[]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("alice on build-7 (pid 4242"),
        "{}",
        stderr(&out)
    );
    assert!(stack.journal().is_none());
    assert!(
        stack
            .helm_commands()
            .iter()
            .all(|c| !c.starts_with("upgrade"))
    );

    // down is locked out the same way.
    let out = stack.cmd(&["down", "-y"]).output().unwrap();
    assert!(matches!(code(&out), 0 | 4), "{}", stderr(&out));

    // A Lease without a duration (an older telltale's) never expires: unlock
    // refuses it as live unless --force; without --yes and no terminal it
    // still asks.
    let out = stack.cmd(&["unlock", "-y"]).output().unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the lock is live"),
        "{}",
        stderr(&out)
    );
    assert!(stack.lock_held());
    let out = stack.cmd(&["unlock", "--force"]).output().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("alice on build-7"));
    assert!(stack.lock_held());
    let out = stack.cmd(&["unlock", "-y", "--force"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice on build-7"));
    assert!(!stack.lock_held());
    assert_eq!(code(&stack.up(&[])), 0);
}

/// `up` as a child process, to signal or kill it mid-phase; returns once
/// the fake helm's `marker` release is running.
fn spawn_up(stack: &Stack, env: &[(&str, &str)], marker: &str) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_telltale"));
    cmd.current_dir(stack.dir.path())
        .env_remove("KUBECONFIG")
        .env("TELLTALE_HELM", crate::common::fake_helm())
        .env("FAKE_HELM_STATE", stack.dir.path().join("helm"))
        .args([
            "up",
            "--skip-verify",
            "--profile",
            "kind",
            "-y",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(&stack.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let marker = stack.dir.path().join(format!("helm/running-{marker}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{marker:?} never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

fn lease(stack: &Stack) -> Value {
    stack
        .api
        .get("coordination.k8s.io/v1", "Lease", Some(NS), "telltale-lock")
        .unwrap()
}

#[test]
fn the_lease_is_renewed_while_up_runs_and_taken_over_once_a_killed_holder_lets_it_expire() {
    let stack = Stack::new("kind-telltale");
    let mut child = spawn_up(
        &stack,
        &[
            ("TELLTALE_LEASE_SECONDS", "3"),
            ("FAKE_HELM_SLEEP", "upgrade:loki:4"),
        ],
        "loki",
    );
    let first = lease(&stack);
    assert_eq!(first["spec"]["leaseDurationSeconds"], 3);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let renewed = lease(&stack);
    assert_ne!(
        renewed["spec"]["renewTime"], first["spec"]["renewTime"],
        "the Lease was not renewed: {renewed}"
    );
    // SIGKILL: nothing runs any more to release or renew the lock.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(stack.lock_held());
    // Still live right after the kill: a second run is refused.
    let out = stack.up(&[]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("renewed"), "{}", stderr(&out));
    // Once expired, the next run takes it over and says so.
    std::thread::sleep(std::time::Duration::from_secs(4));
    // Let the orphaned fake helm finish first (it sleeps 4s in its own group).
    let out = stack.up(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("took over an expired lock")
            && stderr(&out).contains("stopped renewing"),
        "{}",
        stderr(&out)
    );
    assert!(!stack.lock_held());
}

#[test]
fn unlock_breaks_an_expired_lock_without_force_and_honours_the_pin() {
    let stack = Stack::new("kind-telltale");
    hold_lock(&stack);
    stack.api.edit(
        "coordination.k8s.io/v1",
        "Lease",
        Some(NS),
        "telltale-lock",
        json!({"spec": {"leaseDurationSeconds": 60, "renewTime": "2026-11-21T06:00:00.000000Z"}}),
    );
    // A config pinned to another server: refused before any request.
    std::fs::write(
        stack.dir.path().join("telltale.yaml"),
        "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: lab}\n\
spec:\n  profile: kind\n  cluster: {context: kind-telltale, server: \"https://10.9.9.9:6443\"}\n",
    )
    .unwrap();
    stack.api.clear_requests();
    let out = stack.cmd(&["unlock", "-y"]).output().unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pins API server https://10.9.9.9:6443"),
        "{}",
        stderr(&out)
    );
    assert!(stack.api.requests().is_empty());
    std::fs::remove_file(stack.dir.path().join("telltale.yaml")).unwrap();
    let out = stack.cmd(&["unlock", "-y"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
    assert!(!stack.lock_held());
}

#[test]
fn unlock_on_a_production_looking_context_needs_its_name_confirmed() {
    let stack = Stack::new("eks-prod01");
    hold_lock(&stack);
    stack.api.clear_requests();
    let out = stack.cmd(&["unlock", "-y", "--force"]).output().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--confirm-context eks-prod01"),
        "{}",
        stderr(&out)
    );
    assert!(stack.api.requests().is_empty());
    assert!(stack.lock_held());
    let out = stack
        .cmd(&["unlock", "-y", "--force", "--confirm-context", "eks-prod01"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stack.lock_held());
}

#[test]
fn a_second_sigint_kills_helm_and_still_journals_the_phase_and_releases_the_lock() {
    let stack = Stack::new("kind-telltale");
    let child = spawn_up(&stack, &[("FAKE_HELM_SLEEP", "upgrade:loki:6")], "loki");
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let kill = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the second interrupt did not stop the step: {:?}",
        started.elapsed()
    );
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("second interrupt"),
        "{}",
        stderr(&out)
    );
    let journal = stack.journal().unwrap();
    assert_eq!(journal["phases"]["logs"]["outcome"], "interrupted");
    assert_eq!(journal["phases"]["logs"]["releases"], json!([]));
    assert!(!stack.lock_held());
    // The fake helm was killed with its group: it never finishes loki.
    std::thread::sleep(std::time::Duration::from_secs(7));
    let calls = std::fs::read_to_string(stack.dir.path().join("helm/calls.jsonl")).unwrap();
    let state = std::fs::read_dir(stack.dir.path().join("helm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    let releases =
        std::fs::read_to_string(stack.dir.path().join("helm/state.json")).unwrap_or_default();
    assert!(
        !releases.contains("\"loki\""),
        "helm finished loki after telltale stopped: {state:?} {calls}"
    );
    let again = stack.up(&[]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert_eq!(report(&again)["resumed_from"], "logs");
}

#[test]
fn a_panic_mid_phase_journals_it_as_failed_kills_nothing_else_and_releases_the_lock() {
    let stack = Stack::new("kind-telltale");
    let out = stack
        .cmd(&[
            "up",
            "--profile",
            "kind",
            "-y",
            "-o",
            "json",
            "--skip-verify",
        ])
        .env("TELLTALE_FAULT_PANIC_IN_PHASE", "logs")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("telltale crashed during phase logs"), "{err}");
    let journal = stack.journal().unwrap();
    assert_eq!(journal["phases"]["logs"]["outcome"], "failed");
    assert!(
        journal["phases"]["logs"]["error"]
            .as_str()
            .unwrap()
            .contains("crashed")
    );
    assert_eq!(journal["phases"]["metrics"]["outcome"], "applied");
    assert!(!stack.lock_held());
    let again = stack.up(&[]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert_eq!(report(&again)["resumed_from"], "logs");
}

#[test]
fn a_context_of_the_pinned_name_on_another_server_or_ca_is_refused_before_any_request() {
    let stack = Stack::new("kind-telltale");
    let url = stack.api.url.clone();
    let ca_der = b"fake CA certificate bytes";
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        b64.encode(ca_der)
    );
    let text = std::fs::read_to_string(&stack.kubeconfig).unwrap().replace(
        &format!("server: \"{url}\""),
        &format!(
            "server: \"{url}\"\n    certificate-authority-data: {}",
            b64.encode(&pem)
        ),
    );
    std::fs::write(&stack.kubeconfig, text).unwrap();
    let digest: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(ca_der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let config = |server: &str, ca: &str| {
        std::fs::write(
            stack.dir.path().join("telltale.yaml"),
            format!(
                "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {{name: lab}}\n\
spec:\n  profile: kind\n  cluster: {{context: kind-telltale, server: \"{server}\", caSha256: \"{ca}\"}}\n"
            ),
        )
        .unwrap();
    };
    config("https://10.1.2.3:6443", &digest);
    for args in [
        &["up", "-y"][..],
        &["down", "-y"][..],
        &["status"][..],
        &["verify"][..],
    ] {
        let out = stack.cmd(args).output().unwrap();
        assert_eq!(code(&out), 3, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("pins API server"), "{}", stderr(&out));
    }
    config(&url, &"ab".repeat(32));
    let out = stack.cmd(&["up", "-y"]).output().unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("has CA sha256 {digest}")),
        "{}",
        stderr(&out)
    );
    assert!(
        stack.api.requests().is_empty(),
        "{:?}",
        stack.api.requests()
    );
    // The matching pin (colon form, upper case) lets status through.
    let colons = digest
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    config(&format!("{url}/"), &colons);
    let out = stack.cmd(&["status"]).output().unwrap();
    assert!(!stderr(&out).contains("pins"), "{}", stderr(&out));
    // A malformed pin is refused as input.
    config(&url, "abc");
    let out = stack.cmd(&["status"]).output().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("caSha256"), "{}", stderr(&out));
}

#[test]
fn a_malformed_kubeconfig_never_echoes_its_content() {
    let stack = Stack::new("kind-telltale");
    let canary = format!("canary-{}-token", "kubeconfig");
    for text in [
        format!("apiVersion: v1\nusers:\n- name: u\n  user:\n    token: {canary}\n   bad: [\n"),
        format!("apiVersion: v1\nusers: {canary}\n"),
        format!("apiVersion: v1\nclusters:\n- name: c\n  cluster: {{server: {canary}}}\n  : x\n"),
        format!("{canary}: [unclosed\n"),
    ] {
        std::fs::write(&stack.kubeconfig, &text).unwrap();
        for args in [
            &["status"][..],
            &["up", "--profile", "kind", "-y"][..],
            &["unlock", "-y"][..],
        ] {
            let out = stack.cmd(args).output().unwrap();
            let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
            assert_eq!(code(&out), 3, "{args:?}: {all}");
            assert!(
                !all.contains(&canary),
                "{args:?} echoed the kubeconfig: {all}"
            );
            assert!(all.contains("kubeconfig"), "{all}");
        }
    }
}

#[test]
fn a_context_other_than_the_pinned_one_is_refused_before_any_request() {
    let stack = Stack::new("kind-other");
    std::fs::write(
        stack.dir.path().join("telltale.yaml"),
        "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: lab}\n\
spec:\n  profile: kind\n  cluster: {context: kind-lab, name: lab}\n",
    )
    .unwrap();
    let out = stack.cmd(&["up", "-y"]).output().unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pins context `kind-lab`"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("`kind-other`"));
    assert!(
        stack.api.requests().is_empty(),
        "{:?}",
        stack.api.requests()
    );
}

#[test]
fn a_production_looking_context_needs_its_name_confirmed() {
    let stack = Stack::new("prod-eu-1");
    let out = stack.up(&[]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--confirm-context prod-eu-1"),
        "{}",
        stderr(&out)
    );
    assert!(stack.api.requests().is_empty());
    let out = stack.up(&["--confirm-context", "prod-eu-2"]);
    assert_eq!(code(&out), 2);
    assert!(stack.api.requests().is_empty());
    let out = stack.up(&["--confirm-context", "prod-eu-1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn canary_secrets_never_appear_in_output_journal_or_helm_arguments() {
    const SLACK: &str = "https://hooks.slack.com/services/T0/B0/canary-slack-3f9a1c";
    const PAGERDUTY: &str = "canary-pagerduty-8d2e77";
    const POSTGRES: &str = "canary-postgres-51b0aa";
    // The postgres-exporter DSN and sachet's Twilio token (plugin secrets).
    const DSN: &str = "postgresql://exporter:canary-dsn-7c41e2@db:5432/app";
    const TWILIO: &str = "canary-twilio-0e93b5";
    let stack = Stack::new("kind-telltale");
    // Production runs HA: room for it.
    stack.api.insert(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"},
        "status": {"allocatable": {"cpu": "64", "memory": "256Gi"}}}),
    );
    stack
        .api
        .insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    stack.api.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "grafana-postgres", "namespace": NS},
        "data": {"password": b64(POSTGRES)}}));
    // Production leaves SMS and the PostgreSQL datasource out until the
    // site's values are set: set them, so every secret kind is exercised.
    let config = stack.dir.path().join("telltale.yaml");
    std::fs::write(
        &config,
        "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: kind-telltale}\nspec:\n  profile: production\n  alerting:\n    receivers:\n      sms: {to: ['+441000'], twilio: {accountSid: AC1, from: '+442000'}}\n  grafana:\n    datasources:\n      postgres: {host: 'db.ml.svc:5432', database: results, user: reader, password: {secretRef: {name: grafana-postgres, key: password}}}\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["up", "-f", config.as_str(), "-y", "-v", "--skip-verify"];
        args.extend_from_slice(extra);
        let mut cmd = stack.cmd(&args);
        cmd.env("SLACK_WEBHOOK_URL", SLACK)
            .env("PAGERDUTY_ROUTING_KEY", PAGERDUTY)
            .env("SECURITY_PAGERDUTY_ROUTING_KEY", PAGERDUTY)
            .env("POSTGRES_EXPORTER_DSN", DSN)
            .env("TWILIO_AUTH_TOKEN", TWILIO);
        cmd.output().unwrap()
    };
    // A failing write whose server message echoes the value must not leak it either.
    stack.api.fail(
        "PATCH",
        "secrets/telltale-alertmanager-receivers",
        500,
        &format!("etcd rejected data containing {SLACK}"),
        1,
    );
    let failed = run(&["-o", "json"]);
    assert_eq!(code(&failed), 1, "{}", stderr(&failed));
    let ok = run(&[]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let again = run(&["-o", "json"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));

    // The values arrived where they belong…
    let receivers = stack
        .api
        .get("v1", "Secret", Some(NS), "telltale-alertmanager-receivers")
        .unwrap();
    assert_eq!(receivers["data"]["slack-webhook-url"], b64(SLACK).as_str());
    assert_eq!(
        receivers["data"]["pagerduty-routing-key"],
        b64(PAGERDUTY).as_str()
    );
    let pg = stack
        .api
        .get("v1", "Secret", Some(NS), "telltale-grafana-postgres")
        .unwrap();
    assert_eq!(pg["data"]["password"], b64(POSTGRES).as_str());
    let exporter = stack
        .api
        .get("v1", "Secret", Some(NS), "telltale-postgres-exporter")
        .unwrap();
    assert_eq!(exporter["data"]["dsn"], b64(DSN).as_str());
    let sachet = stack
        .api
        .get("v1", "Secret", Some(NS), "telltale-sachet")
        .unwrap();
    assert_eq!(sachet["data"]["twilio-auth-token"], b64(TWILIO).as_str());

    // …and nowhere else.
    let mut haystack = String::new();
    for out in [&failed, &ok, &again] {
        haystack.push_str(&String::from_utf8_lossy(&out.stdout));
        haystack.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    haystack.push_str(&stack.journal().unwrap().to_string());
    haystack.push_str(&std::fs::read_to_string(stack.dir.path().join("helm/calls.jsonl")).unwrap());
    for cm in stack.api.list("v1", "ConfigMap") {
        haystack.push_str(&cm.to_string());
    }
    for canary in [SLACK, PAGERDUTY, POSTGRES, DSN, TWILIO] {
        assert!(!haystack.contains(canary), "{canary} leaked");
        assert!(
            !haystack.contains(&b64(canary)),
            "{canary} leaked base64-encoded"
        );
    }
    assert!(
        haystack.contains("telltale-alertmanager-receivers"),
        "the outputs were captured"
    );
}

fn b64(text: &str) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn dry_run_writes_nothing_and_lists_what_would_change() {
    let stack = Stack::new("kind-telltale");
    let out = stack.up(&["--dry-run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = report(&out);
    assert!(outcomes(&r).iter().all(|(_, o)| o == "dry-run"), "{r}");
    let changes: Vec<String> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("would create PrometheusRule/telltale-nodes")),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("would upgrade --install loki")),
        "{changes:?}"
    );
    assert!(stack.api.writes().is_empty(), "{:?}", stack.api.writes());
    assert!(
        stack
            .api
            .requests()
            .iter()
            .any(|r| r.query.contains("dryRun=All"))
    );
    for call in stack.helm_calls() {
        let args = call["args"].to_string();
        if args.contains("\"upgrade\"") {
            assert!(args.contains("--dry-run=server"), "{args}");
        }
    }
    assert!(
        !std::fs::read_to_string(stack.dir.path().join("helm/state.json"))
            .unwrap_or_default()
            .contains("loki")
    );
}

#[test]
fn status_reports_phases_releases_and_drift() {
    let stack = Stack::new("kind-telltale");
    assert_eq!(code(&stack.up(&[])), 0);
    let status = |stack: &Stack| {
        stack
            .cmd(&["status", "--profile", "kind", "-o", "json"])
            .output()
            .unwrap()
    };
    let out = status(&stack);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["installed"], true);
    assert_eq!(r["up_to_date"], true);
    assert_eq!(r["drift"], json!([]));
    assert_eq!(r["releases"].as_array().unwrap().len(), 3);
    assert!(
        r["phases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["outcome"] == "applied" && p["digest_matches"] == true)
    );

    // Someone edits a rule file and deletes a dashboard behind telltale's back.
    stack.api.edit(
        "v1",
        "ConfigMap",
        Some(NS),
        "telltale-datasource-loki",
        json!({"data": {"loki.yaml": "hacked"}}),
    );
    stack.api.remove(
        "v1",
        "ConfigMap",
        Some(NS),
        "telltale-dashboard-telltale-logs-overview",
    );
    let out = status(&stack);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let drift = report(&out)["drift"].clone();
    let text = drift.to_string();
    assert!(
        text.contains("ConfigMap/telltale-datasource-loki in monitoring")
            && text.contains("data.loki.yaml changed"),
        "{text}"
    );
    assert!(
        text.contains("telltale-dashboard-telltale-logs-overview") && text.contains("missing"),
        "{text}"
    );

    // up notices the missing object and re-applies that phase only.
    let out = stack.up(&[]);
    let got = outcomes(&report(&out));
    assert!(
        got.contains(&("dashboards".into(), "repaired".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("metrics".into(), "unchanged".into())),
        "{got:?}"
    );
}

#[test]
fn up_repairs_an_edited_configmap_that_status_reports_as_drift() {
    let stack = Stack::new("kind-telltale");
    assert_eq!(code(&stack.up(&[])), 0);
    let name = "telltale-datasource-loki";
    let original = stack.api.get("v1", "ConfigMap", Some(NS), name).unwrap()["data"].clone();
    stack.api.edit(
        "v1",
        "ConfigMap",
        Some(NS),
        name,
        json!({"data": {"loki.yaml": "hacked"}}),
    );
    let out = stack
        .cmd(&["status", "--profile", "kind", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(report(&out)["drift"].to_string().contains(name));

    let out = stack.up(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = report(&out);
    let repaired: Vec<&Value> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["outcome"] == "repaired")
        .collect();
    assert_eq!(repaired.len(), 1, "{r}");
    let detail = repaired[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("repaired drift: ")
            && detail.contains(&format!("ConfigMap/{name} in {NS}"))
            && detail.contains("data.loki.yaml changed"),
        "{detail}"
    );
    // Every other phase is unchanged, and the object is as the bundle has it.
    assert!(
        outcomes(&r)
            .iter()
            .all(|(_, o)| o == "unchanged" || o == "repaired"),
        "{r}"
    );
    let live = stack.api.get("v1", "ConfigMap", Some(NS), name).unwrap();
    assert_eq!(live["data"], original);
    let out = stack
        .cmd(&["status", "--profile", "kind", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Text output names it too.
    stack.api.edit(
        "v1",
        "ConfigMap",
        Some(NS),
        name,
        json!({"data": {"loki.yaml": "hacked again"}}),
    );
    let out = stack
        .cmd(&["up", "--profile", "kind", "-y", "--skip-verify"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("repaired drift"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Rewrites the journal as a hostile editor of the ConfigMap would.
fn tamper_journal(stack: &Stack, edit: impl FnOnce(&mut Value)) {
    let mut journal = stack.journal().unwrap();
    edit(&mut journal);
    stack.api.edit(
        "v1",
        "ConfigMap",
        Some(NS),
        "telltale-journal",
        json!({"data": {"journal.json": journal.to_string()}}),
    );
}

#[test]
fn down_deletes_nothing_an_edited_journal_points_at_outside_what_telltale_owns() {
    let stack = Stack::new("kind-telltale");
    assert_eq!(code(&stack.up(&[])), 0);
    stack
        .api
        .insert(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system",
            "labels": {"app.kubernetes.io/managed-by": "telltale"}},
        "spec": {"selector": {"matchLabels": {"k8s-app": "kube-dns"}},
            "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                "spec": {"containers": [{"name": "coredns", "image": "coredns"}]}}}}));
    // Same namespace, not telltale's: no marks at all.
    stack
        .api
        .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "team-settings", "namespace": NS}, "data": {"a": "b"}}));
    // Same namespace, telltale's label but another install id (copied by hand).
    stack
        .api
        .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "lookalike", "namespace": NS, "labels": {
            "app.kubernetes.io/managed-by": "telltale",
            "telltale.dev/install-id": "00000000000000000000000000000000"}}, "data": {"a": "b"}}));
    tamper_journal(&stack, |j| {
        let objects = j["phases"]["dashboards"]["objects"].as_array_mut().unwrap();
        for (kind, api, ns, name) in [
            ("Deployment", "apps/v1", "kube-system", "coredns"),
            ("ConfigMap", "v1", NS, "team-settings"),
            ("ConfigMap", "v1", NS, "lookalike"),
        ] {
            objects.push(json!({"apiVersion": api, "kind": kind, "namespace": ns, "name": name}));
        }
        j["phases"]["crds"]["objects"]
            .as_array_mut()
            .unwrap()
            .push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "name": "cluster-admin"}));
        // A release telltale never installs (the team's own database).
        j["phases"]["logs"]["releases"].as_array_mut().unwrap().push(
            json!({"name": "team-postgres", "chart": "postgresql", "version": "16.0.0", "revision": 1}),
        );
    });
    stack.api.insert(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "cluster-admin", "labels": {"app.kubernetes.io/managed-by": "telltale"}}, "rules": []}));
    stack.api.clear_requests();
    let out = stack.cmd(&["down", "-y", "-o", "json"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let deletes: Vec<String> = stack
        .api
        .writes()
        .iter()
        .filter(|w| w.method == "DELETE")
        .map(|w| w.path.clone())
        .collect();
    for name in ["coredns", "team-settings", "lookalike", "cluster-admin"] {
        assert!(
            !deletes.iter().any(|p| p.ends_with(&format!("/{name}"))),
            "{name} was deleted: {deletes:?}"
        );
    }
    assert!(
        stack
            .api
            .get("apps/v1", "Deployment", Some("kube-system"), "coredns")
            .is_some()
    );
    assert!(
        stack
            .api
            .get("v1", "ConfigMap", Some(NS), "team-settings")
            .is_some()
    );
    assert!(
        stack
            .api
            .get("v1", "ConfigMap", Some(NS), "lookalike")
            .is_some()
    );
    assert!(
        stack
            .api
            .get(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                None,
                "cluster-admin"
            )
            .is_some()
    );
    // What telltale did apply is gone, and each refusal is reported.
    assert!(
        stack
            .api
            .get("v1", "ConfigMap", Some(NS), "telltale-datasource-loki")
            .is_none()
    );
    let skipped = report(&out)["skipped"].to_string();
    let err = stderr(&out);
    for (name, why) in [
        ("Deployment/coredns in kube-system", "outside the namespace"),
        (
            "ConfigMap/team-settings in monitoring",
            "no app.kubernetes.io/managed-by",
        ),
        ("ConfigMap/lookalike in monitoring", "another install"),
        ("ClusterRole/cluster-admin", "cluster-scoped"),
        ("helm release team-postgres", "telltale installs no release"),
    ] {
        assert!(
            skipped.contains(name) && skipped.contains(why),
            "{name}: {skipped}"
        );
        assert!(err.contains(&format!("skipped {name}")), "{err}");
    }
    let uninstalled: Vec<String> = stack
        .helm_commands()
        .into_iter()
        .filter(|c| c.contains("uninstall"))
        .collect();
    assert!(
        !uninstalled.iter().any(|c| c.contains("team-postgres")),
        "{uninstalled:?}"
    );
    assert!(
        uninstalled.iter().any(|c| c.contains("loki")),
        "{uninstalled:?}"
    );
}

#[test]
fn a_corrupt_journal_exits_3_with_the_recovery_commands_and_changes_nothing() {
    let stack = Stack::new("kind-telltale");
    assert_eq!(code(&stack.up(&[])), 0);
    stack.api.edit(
        "v1",
        "ConfigMap",
        Some(NS),
        "telltale-journal",
        json!({"data": {"journal.json": "{not json"}}),
    );
    stack.api.clear_requests();
    for args in [&["down", "-y"][..], &["status"][..]] {
        let out = stack.cmd(args).output().unwrap();
        assert_eq!(code(&out), 3, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("the journal is unreadable"), "{err}");
        assert!(
            err.contains("kubectl -n monitoring delete configmap telltale-journal")
                && err.contains("telltale up"),
            "{err}"
        );
    }
    let out = stack.up(&[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stack.api.writes().iter().all(|w| w.path.contains("leases")),
        "only the lock was written: {:?}",
        stack.api.writes()
    );
    assert!(!stack.lock_held());
    // A tampered install id is corrupt too, not a licence.
    stack.api.edit(
        "v1",
        "ConfigMap",
        Some(NS),
        "telltale-journal",
        json!({"data": {"journal.json": r#"{"installId": "../x", "profile": "kind", "bundle_digest": "", "phases": {}}"#}}),
    );
    let out = stack.cmd(&["down", "-y"]).output().unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("installId"), "{}", stderr(&out));
}

#[test]
fn down_removes_in_reverse_order_and_keeps_crds_and_data_unless_asked() {
    let stack = Stack::new("kind-telltale");
    assert_eq!(code(&stack.up(&[])), 0);
    let out = stack.cmd(&["down", "-y", "-o", "json"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = report(&out);
    let phases: Vec<String> = outcomes(&r).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        phases,
        [
            "autoscaling",
            "dashboards",
            "alerting",
            "exporters",
            "logs",
            "metrics",
            "secrets",
            "crds",
            "namespace"
        ]
    );
    let uninstalls: Vec<String> = stack
        .helm_commands()
        .into_iter()
        .filter(|c| c.starts_with("uninstall"))
        .collect();
    assert_eq!(
        uninstalls,
        [
            "uninstall alloy",
            "uninstall loki",
            "uninstall kube-prometheus-stack"
        ]
    );
    assert!(stack.journal().is_none());
    assert!(
        stack
            .api
            .list("monitoring.coreos.com/v1", "PrometheusRule")
            .is_empty()
    );
    assert!(
        stack
            .api
            .get("v1", "Secret", Some(NS), "telltale-grafana-admin")
            .is_none()
    );
    // Kept: CRDs and the namespace (with its volumes).
    assert!(
        stack
            .api
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "prometheusrules.monitoring.coreos.com"
            )
            .is_some()
    );
    assert!(stack.api.get("v1", "Namespace", None, NS).is_some());

    // Reinstall, then remove everything.
    assert_eq!(code(&stack.up(&[])), 0);
    stack.api.insert(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "storage-loki-0", "namespace": NS, "labels": {"app.kubernetes.io/instance": "loki"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}));
    let out = stack
        .cmd(&["down", "-y", "--keep-crds=false", "--keep-data=false"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stack
            .api
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "prometheusrules.monitoring.coreos.com"
            )
            .is_none()
    );
    assert!(
        stack
            .api
            .get("v1", "PersistentVolumeClaim", Some(NS), "storage-loki-0")
            .is_none()
    );
    assert!(stack.api.get("v1", "Namespace", None, NS).is_none());
    // Nothing left to remove.
    let out = stack.cmd(&["down", "-y"]).output().unwrap();
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("nothing to remove"));
}

#[test]
fn waits_hold_the_phase_until_workloads_and_prometheus_are_ready() {
    let stack = Stack::new("kind-telltale");
    stack
        .api
        .insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let gateway = |available: i64| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "loki-gateway", "namespace": NS, "generation": 1,
                         "labels": {"app.kubernetes.io/instance": "loki"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "gw"}},
                     "template": {"metadata": {"labels": {"app": "gw"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": available}})
    };
    stack.api.insert(gateway(0));
    stack.api.register(
        "monitoring.coreos.com",
        "v1",
        "Prometheus",
        "prometheuses",
        true,
    );
    let prometheus = |available: &str| {
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": {"name": "kube-prometheus-stack-prometheus", "namespace": NS},
            "spec": {}, "status": {"conditions": [{"type": "Available", "status": available}]}})
    };
    stack.api.insert(prometheus("False"));

    let out = stack.up(&["--timeout", "2s"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = report(&out);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("Prometheus/kube-prometheus-stack-prometheus is not Available"),
        "{r}"
    );
    assert_eq!(
        outcomes(&r)[3],
        ("metrics".to_string(), "failed".to_string())
    );

    stack.api.insert(prometheus("True"));
    let out = stack.up(&["--timeout", "2s"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = report(&out);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("Deployment/loki-gateway: 0/1 ready"),
        "{r}"
    );
    assert_eq!(outcomes(&r)[4], ("logs".to_string(), "failed".to_string()));

    stack.api.insert(gateway(1));
    let out = stack.up(&["--timeout", "2s"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn helm_4_gets_its_own_wait_and_rollback_flags() {
    let stack = Stack::new("kind-telltale");
    let out = stack
        .cmd(&[
            "up",
            "--profile",
            "kind",
            "-y",
            "-o",
            "json",
            "--skip-verify",
        ])
        .env("FAKE_HELM_VERSION", "v4.0.1")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let upgrades: Vec<String> = stack
        .helm_calls()
        .iter()
        .filter(|c| c["args"][0] == "upgrade")
        .map(|c| c["args"].to_string())
        .collect();
    assert_eq!(upgrades.len(), 3);
    for args in upgrades {
        assert!(
            args.contains("\"--wait=watcher\"") && args.contains("\"--rollback-on-failure\""),
            "{args}"
        );
        assert!(!args.contains("\"--atomic\""), "{args}");
    }
}

/// With a terminal (util-linux `script` provides one): a line per phase with
/// its mark and a summary table; without one: timestamped plain lines.
#[test]
fn progress_is_a_line_per_phase_on_a_terminal_and_timestamped_lines_otherwise() {
    let stack = Stack::new("kind-telltale");
    let plain = stack
        .cmd(&["up", "--profile", "kind", "-y", "--skip-verify"])
        .output()
        .unwrap();
    assert_eq!(code(&plain), 0, "{}", stderr(&plain));
    let lines = stderr(&plain);
    let stamped = lines
        .lines()
        .filter(|l| l.len() > 21 && l.as_bytes()[4] == b'-' && l[..20].ends_with('Z'))
        .count();
    assert!(stamped >= 8, "{lines}");
    assert!(
        lines.contains("metrics: helm kube-prometheus-stack"),
        "{lines}"
    );

    let script = crate::common::require_tool("script");
    let command = format!(
        "{} --kubeconfig {} up --profile kind --yes --skip-verify --from-phase alerting",
        env!("CARGO_BIN_EXE_telltale"),
        stack.kubeconfig.display()
    );
    let tty = std::process::Command::new(script)
        .args(["-qefc", &command, "/dev/null"])
        .current_dir(stack.dir.path())
        .env("TELLTALE_HELM", crate::common::fake_helm())
        .env("FAKE_HELM_STATE", stack.dir.path().join("helm"))
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(screen.contains("✓ alerting"), "{screen}");
    assert!(screen.contains("✓ dashboards"), "{screen}");
    assert!(
        screen.contains("PHASE") && screen.contains("OUTCOME"),
        "{screen}"
    );
    // No timestamped log lines on a terminal.
    assert!(!screen.contains("Z alerting:"), "{screen}");
}

#[test]
fn only_and_from_phase_select_phases_and_run_them_even_when_unchanged() {
    let stack = Stack::new("kind-telltale");
    assert_eq!(code(&stack.up(&[])), 0);
    let upgrades = |s: &Stack| {
        s.helm_commands()
            .iter()
            .filter(|c| c.starts_with("upgrade"))
            .count()
    };
    let before = upgrades(&stack);

    let out = stack.up(&["--only", "alerting"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = outcomes(&report(&out));
    for (phase, outcome) in &got {
        let want = if phase == "alerting" {
            "applied"
        } else {
            "skipped"
        };
        assert_eq!(outcome, want, "{got:?}");
    }
    assert_eq!(upgrades(&stack), before);

    let out = stack.up(&["--from-phase", "logs"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = outcomes(&report(&out));
    let at = got.iter().position(|(p, _)| p == "logs").unwrap();
    assert!(got[..at].iter().all(|(_, o)| o == "skipped"), "{got:?}");
    assert!(got[at..].iter().all(|(_, o)| o == "applied"), "{got:?}");
    // logs holds two releases: both upgraded again, metrics' not.
    assert_eq!(upgrades(&stack), before + 2);
}

/// Without --skip-verify, `up` runs the checks plan.json's verify phase
/// lists once every phase is done. Here the fake API has no pods to
/// port-forward to, so no check can run: each is skipped saying which flag
/// would help, and `up` exits 3 (nothing was verified, which is no
/// success); the install itself is complete and recorded.
#[test]
fn up_runs_verify_after_the_phases() {
    let stack = Stack::new("kind-telltale");
    let out = stack.up_verifying();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["outcome"] == "applied"),
        "{report:#}"
    );
    let checks: Vec<&str> = report["verify"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "targets",
            "rules",
            "alertmanager",
            "notifications",
            "logs",
            "dashboards"
        ]
    );
    let targets = &report["verify"]["checks"][0];
    assert_eq!(targets["status"], "skip");
    assert!(
        targets["summary"]
            .as_str()
            .unwrap()
            .contains("--prometheus-url"),
        "{targets:#}"
    );
    assert!(
        stderr(&out).contains("nothing was verified"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("the install is complete"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn up_with_gitops_commits_the_branch_as_its_last_phase_and_refuses_early_without_a_repo() {
    let stack = Stack::new("kind-telltale");
    let root = stack.dir.path();
    let git = |dir: &std::path::Path, args: &[&str]| {
        crate::common::run_ok(
            std::process::Command::new("git")
                .args(["-c", "user.name=Seed", "-c", "user.email=seed@example.com"])
                .args(args)
                .current_dir(dir),
        )
    };
    git(root, &["init", "-q", "--bare", "-b", "main", "R.git"]);
    // Argo CD is given the repository's remote URL, not the local path.
    git(
        root,
        &[
            "--git-dir",
            "R.git",
            "remote",
            "add",
            "origin",
            "https://github.com/org/infra.git",
        ],
    );
    git(root, &["clone", "-q", "R.git", "seed"]);
    std::fs::write(root.join("seed/README.md"), "infra\n").unwrap();
    git(&root.join("seed"), &["add", "README.md"]);
    git(&root.join("seed"), &["commit", "-q", "-m", "init"]);
    git(&root.join("seed"), &["push", "-q", "origin", "HEAD:main"]);
    std::fs::create_dir(root.join("home")).unwrap();
    std::fs::write(
        root.join("home/.gitconfig"),
        "[user]\n\tname = Telltale Test\n\temail = test@example.com\n",
    )
    .unwrap();
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: lab}\n\
spec:\n  profile: kind\n  cluster: {context: kind-telltale, name: lab}\n";

    // No repository configured: refused before any request to the cluster.
    std::fs::write(root.join("telltale.yaml"), config).unwrap();
    let out = stack
        .cmd(&["up", "-y", "--gitops", "--skip-verify"])
        .env("HOME", root.join("home"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--gitops needs spec.gitops.repo"));
    assert!(stack.api.requests().is_empty());

    // Argo CD cannot decrypt sops files: refused before the install too.
    let repo = root.join("R.git");
    std::fs::write(
        root.join("telltale.yaml"),
        format!(
            "{config}  gitops: {{repo: {}, layout: argocd, secrets: sops, github: {{base: main}}}}\n",
            repo.display()
        ),
    )
    .unwrap();
    let out = stack
        .cmd(&["up", "-y", "--gitops", "--skip-verify"])
        .env("HOME", root.join("home"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Argo CD does not decrypt sops"),
        "{}",
        stderr(&out)
    );
    assert!(stack.api.requests().is_empty());

    std::fs::write(
        root.join("telltale.yaml"),
        format!(
            "{config}  gitops: {{repo: {}, layout: argocd, github: {{base: main}}}}\n",
            repo.display()
        ),
    )
    .unwrap();
    // Argo CD cannot fetch a local path: without its remote URL, refused
    // before the install as well.
    git(root, &["--git-dir", "R.git", "remote", "remove", "origin"]);
    let out = stack
        .cmd(&["up", "-y", "--gitops", "--skip-verify"])
        .env("HOME", root.join("home"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("without an `origin` remote"),
        "{}",
        stderr(&out)
    );
    assert!(stack.api.requests().is_empty());
    git(
        root,
        &[
            "--git-dir",
            "R.git",
            "remote",
            "add",
            "origin",
            "https://github.com/org/infra.git",
        ],
    );

    let main_before = git(root, &["--git-dir", "R.git", "rev-parse", "main"]);
    let out = stack
        .cmd(&["up", "-y", "--gitops", "--skip-verify", "-o", "json"])
        .env("HOME", root.join("home"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["ok"], true, "stdout is up's one JSON report");
    let err = stderr(&out);
    assert!(err.contains("pushing the branch only"), "{err}");
    assert!(err.contains("gitops: commit"), "{err}");
    let files = git(
        root,
        &[
            "--git-dir",
            "R.git",
            "ls-tree",
            "-r",
            "--name-only",
            "telltale/lab",
        ],
    );
    assert!(
        files.contains("clusters/lab/observability/root.yaml"),
        "{files}"
    );
    assert_eq!(
        git(root, &["--git-dir", "R.git", "rev-parse", "main"]),
        main_before
    );

    // What is committed is what was installed: the config changed while
    // kube-prometheus-stack was being upgraded, and the branch holds the state up
    // rendered at its start (one render per invocation, no second read).
    let installed = std::fs::read_to_string(root.join("telltale.yaml")).unwrap();
    let retention = |days: u32| {
        format!(
            "  set: {{kube-prometheus-stack: {{prometheus.prometheusSpec.retention: {days}d}}}}\n"
        )
    };
    std::fs::write(
        root.join("telltale.yaml"),
        format!("{installed}{}", retention(7)),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_telltale"))
        .current_dir(root)
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("HOME", root.join("home"))
        .env("TELLTALE_HELM", crate::common::fake_helm())
        .env("FAKE_HELM_STATE", root.join("helm"))
        .env("FAKE_HELM_SLEEP", "upgrade:kube-prometheus-stack:3")
        .arg("--kubeconfig")
        .arg(&stack.kubeconfig)
        .args(["up", "-y", "--gitops", "--skip-verify", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let marker = root.join("helm/running-kube-prometheus-stack");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "kube-prometheus-stack's upgrade never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::write(
        root.join("telltale.yaml"),
        format!("{installed}{}", retention(9)),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let committed = git(
        root,
        &[
            "--git-dir",
            "R.git",
            "grep",
            "-h",
            "retention: ",
            "telltale/lab",
            "--",
        ],
    );
    assert!(committed.contains("retention: 7d"), "{committed}");
    assert!(!committed.contains("retention: 9d"), "{committed}");
}

/// The first hour, for every profile: `init --yes` then `plan` then
/// `up --dry-run`. Whatever `up` needs from outside (environment variables,
/// files, existing Secrets) was said by `init` and is what `plan` lists; with
/// exactly those given, `up --dry-run` succeeds; without them it stops,
/// naming nothing else.
#[test]
fn a_fresh_config_meets_at_up_only_what_init_and_plan_named() {
    for profile in crate::common::PROFILES {
        let stack = Stack::new("lab-1");
        // Production runs HA: room for it.
        stack.api.insert(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi"}}}),
        );
        let init = stack
            .cmd(&["init", "--yes", "--context", "lab-1", "--profile", profile])
            .output()
            .unwrap();
        assert_eq!(code(&init), 0, "{profile}: {}", stderr(&init));
        let said = format!("{}{}", String::from_utf8_lossy(&init.stdout), stderr(&init));

        let plan = stack.cmd(&["plan", "-o", "json"]).output().unwrap();
        assert_eq!(code(&plan), 0, "{profile}: {}", stderr(&plan));
        let sources: Vec<String> = report(&plan)["phases"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["steps"].as_array().unwrap().clone())
            .filter(|s| s["action"] == "secret")
            .flat_map(|s| s["keys"].as_array().unwrap().clone())
            .map(|k| k["source"].as_str().unwrap().to_string())
            .collect();
        let mut env = Vec::new();
        for source in &sources {
            let (kind, name) = source.split_once(':').unwrap_or((source, ""));
            match kind {
                "generated" | "fixed" => {}
                "env" => env.push(name.to_string()),
                other => panic!("{profile}: a fresh config reads `{other}` sources ({source})"),
            }
            if kind == "env" {
                assert!(
                    said.contains(name),
                    "{profile}: init never named {name}:\n{said}"
                );
            }
        }
        let dry_run = ["up", "-y", "--dry-run", "-o", "json", "--skip-verify"];
        if !env.is_empty() {
            let out = stack.cmd(&dry_run).output().unwrap();
            assert_ne!(code(&out), 0, "{profile}: up ran without {env:?}");
            let err = stderr(&out);
            let error = err.split("error:").nth(1).unwrap_or_default();
            let words = regex_upper_words(error);
            for word in &words {
                assert!(
                    env.contains(word),
                    "{profile}: up asked for {word}, which init and plan never named:\n{}",
                    stderr(&out)
                );
            }
            assert!(!words.is_empty(), "{profile}: {}", stderr(&out));
        }
        let canary = |var: &str| format!("canary-{}-4b1d", var.to_lowercase());
        let mut cmd = stack.cmd(&dry_run);
        for var in &env {
            cmd.env(var, canary(var));
        }
        let out = cmd.output().unwrap();
        assert_eq!(code(&out), 0, "{profile}: {}", stderr(&out));
        let r = report(&out);
        assert!(
            outcomes(&r).iter().all(|(_, o)| o == "dry-run"),
            "{profile}: {r}"
        );
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        for var in &env {
            assert!(
                !all.contains(&canary(var)),
                "{profile}: {var}'s value printed"
            );
        }
        assert!(stack.api.writes().is_empty(), "{profile}: a dry run wrote");
    }
}

/// The environment-variable-shaped words of a message (`SLACK_WEBHOOK_URL`).
fn regex_upper_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| {
            w.len() > 3 && w.contains('_') && w.starts_with(|c: char| c.is_ascii_uppercase())
        })
        .map(str::to_string)
        .collect()
}

/// The sealed-secrets hand-over. In that GitOps mode the Secrets `up`
/// creates carry `sealedsecrets.bitnami.com/managed: "true"`, without which
/// the controller refuses them ("already exists and is not managed by
/// SealedSecret"). Once the controller adopted one (as its
/// pkg/controller/controller.go does: the template's labels and
/// annotations, its ownerReference, its data), `up` leaves it alone and
/// `down` does not delete it.
#[test]
fn in_the_sealed_secrets_mode_secrets_are_adoptable_and_adopted_ones_left_alone() {
    let stack = Stack::new("kind-telltale");
    std::fs::write(
        stack.dir.path().join("telltale.yaml"),
        "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: kind-telltale}\nspec:\n  profile: kind\n  cluster: {context: kind-telltale}\n  gitops: {repo: ../infra, secrets: sealed-secrets, sealedSecrets: {cert: cert.pem}}\n",
    )
    .unwrap();
    let up = || {
        stack
            .cmd(&["up", "-y", "-o", "json", "--skip-verify"])
            .output()
            .unwrap()
    };
    let out = up();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let secret = |name: &str| stack.api.get("v1", "Secret", Some(NS), name).unwrap();
    let admin = secret("telltale-grafana-admin");
    assert_eq!(
        admin["metadata"]["annotations"]["sealedsecrets.bitnami.com/managed"], "true",
        "{admin}"
    );

    // The controller adopts it: the SealedSecret's data and controller
    // reference. (In its patch mode, `sealedsecrets.bitnami.com/patch`, the
    // Secret's own labels stay, telltale's marks among them.)
    let from_git = "ZnJvbS1naXQ="; // base64("from-git")
    let labels = admin["metadata"]["labels"].clone();
    stack.api.insert(
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "telltale-grafana-admin", "namespace": NS, "labels": labels,
            "annotations": {"telltale.dev/content-digest": "hmac-sha256:k:m",
                "sealedsecrets.bitnami.com/patch": "true"},
            "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
                "name": "telltale-grafana-admin", "uid": "5eed", "controller": true}]},
        "data": {"admin-user": "YWRtaW4=", "admin-password": from_git}}),
    );
    let before = stack.api.writes().len();
    let out = up();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Even a phase run on purpose leaves it to the controller, and says so.
    let out = stack
        .cmd(&[
            "up",
            "-y",
            "-o",
            "json",
            "--skip-verify",
            "--only",
            "secrets",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        report(&out).to_string().contains(
            "left Secret/telltale-grafana-admin in monitoring to the sealed-secrets controller (owned by SealedSecret/telltale-grafana-admin)"
        ),
        "{}",
        report(&out)
    );
    let admin = secret("telltale-grafana-admin");
    assert_eq!(admin["data"]["admin-password"], from_git, "up overwrote it");
    let rewritten: Vec<String> = stack.api.writes()[before..]
        .iter()
        .map(|w| format!("{} {}", w.method, w.path))
        .filter(|w| w.contains("telltale-grafana-admin"))
        .collect();
    assert!(rewritten.is_empty(), "{rewritten:?}");

    // Adopted after the last `up`: the journal still names it as telltale's.
    let mut receivers = secret("telltale-alertmanager-receivers");
    receivers["metadata"]["ownerReferences"] = json!([{"apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret", "name": "telltale-alertmanager-receivers", "uid": "5eee",
        "controller": true}]);
    stack.api.insert(receivers);

    let out = stack.cmd(&["down", "-y", "-o", "json"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for name in ["telltale-grafana-admin", "telltale-alertmanager-receivers"] {
        assert!(
            stack.api.get("v1", "Secret", Some(NS), name).is_some(),
            "down deleted {name}, which the sealed-secrets controller owns"
        );
    }
    assert!(
        stack
            .api
            .get(
                "monitoring.coreos.com/v1",
                "PrometheusRule",
                Some(NS),
                "telltale-nodes"
            )
            .is_none(),
        "down still deletes what is telltale's"
    );
}
