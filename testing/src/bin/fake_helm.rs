//! fake-helm: a stand-in for the helm binary, kept **only for fault
//! injection** in the installer tests (cli/tests/it/install.rs): a helm that
//! fails or stalls on cue, in the middle of an `up`, which real helm cannot be
//! made to do. Whether real helm accepts the commands telltale builds is
//! tested with real helm 3 and helm 4 (cli/tests/it/helm_real.rs). Built only
//! in the telltale-testing package (tests find it with
//! `telltale_testing::bins::path`); telltale runs it through `TELLTALE_HELM`.
//!
//! It answers the commands telltale issues (`version --short`,
//! `show crds`, `upgrade --install … --values -`, `status -o json`,
//! `uninstall`), keeps releases and revisions in `$FAKE_HELM_STATE/state.json`,
//! appends every invocation (arguments and stdin) to
//! `$FAKE_HELM_STATE/calls.jsonl`, and misbehaves on cue:
//!
//! - `FAKE_HELM_VERSION=v4.0.1` — what `version --short` prints (default v3.16.2);
//! - `FAKE_HELM_FAIL=upgrade:loki` — that command on that release fails as helm does;
//! - `FAKE_HELM_SLEEP=upgrade:loki:3` — that command first writes
//!   `$FAKE_HELM_STATE/running-loki`, then takes 3 seconds;
//! - `FAKE_HELM_PER_CONTEXT=1` — one cluster per kube context: the state
//!   and the call log go to `$FAKE_HELM_STATE/<--kube-context>/` (a fleet's
//!   clusters, installed at once, each with its own releases).
//!
//! What it does not do: parse flags as helm does, render charts or create
//! objects in the cluster. A test that passes against it proves the
//! installer's sequencing and error handling, not helm compatibility.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut state_dir = PathBuf::from(
        std::env::var("FAKE_HELM_STATE").unwrap_or_else(|_| fail("FAKE_HELM_STATE is not set")),
    );
    if std::env::var_os("FAKE_HELM_PER_CONTEXT").is_some()
        && let Some(context) = flag(&args, "--kube-context")
    {
        state_dir.push(context);
    }
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let mut stdin = String::new();
    if args.iter().any(|a| a == "-") {
        std::io::stdin().read_to_string(&mut stdin).expect("stdin");
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join("calls.jsonl"))
        .expect("call log");
    writeln!(log, "{}", json!({"args": args, "stdin": stdin})).expect("log written");

    let positional: Vec<&str> = positional(&args);
    let command = positional.first().copied().unwrap_or("");
    let release = match command {
        "upgrade" | "status" | "uninstall" => positional.get(1).copied().unwrap_or(""),
        _ => "",
    };
    cue(&state_dir, command, release);

    let state_file = state_dir.join("state.json");
    let mut releases: BTreeMap<String, Value> = std::fs::read_to_string(&state_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let namespace = flag(&args, "--namespace").unwrap_or("default");
    let key = format!("{namespace}/{release}");

    match command {
        "version" => println!(
            "{}",
            std::env::var("FAKE_HELM_VERSION").unwrap_or_else(|_| "v3.16.2+gfake".into())
        ),
        "show" if positional.get(1) == Some(&"crds") => print!("{}", crds()),
        "upgrade" => {
            if !args.iter().any(|a| a == "--install") {
                fail("telltale always passes --install");
            }
            let version = flag(&args, "--version").unwrap_or_else(|| fail("no --version"));
            if args.iter().any(|a| a.starts_with("--dry-run")) {
                println!("NAME: {release}\nSTATUS: pending-install\nDRY RUN: server");
            } else {
                let revision = releases
                    .get(&key)
                    .and_then(|r| r["version"].as_u64())
                    .unwrap_or(0)
                    + 1;
                releases.insert(
                    key,
                    json!({"name": release, "namespace": namespace, "version": revision,
                           "info": {"status": "deployed"}, "chart": {"metadata": {"version": version}}}),
                );
                println!("Release \"{release}\" has been upgraded. REVISION: {revision}");
            }
        }
        "status" => match releases.get(&key) {
            Some(r) => println!("{r}"),
            None => fail("release: not found"),
        },
        "uninstall" => {
            if releases.remove(&key).is_none() {
                fail(&format!(
                    "uninstall: Release not loaded: {release}: release: not found"
                ));
            }
            println!("release \"{release}\" uninstalled");
        }
        other => fail(&format!("fake-helm does not know `{other}`")),
    }
    std::fs::write(
        &state_file,
        serde_json::to_string_pretty(&releases).unwrap(),
    )
    .unwrap();
}

/// Arguments that are not flags or flag values.
fn positional(args: &[String]) -> Vec<&str> {
    const VALUED: [&str; 8] = [
        "--version",
        "--namespace",
        "--values",
        "--repo",
        "--timeout",
        "--kube-context",
        "--kubeconfig",
        "-o",
    ];
    let mut out = Vec::new();
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
        } else if VALUED.contains(&arg.as_str()) {
            skip = true;
        } else if !arg.starts_with('-') {
            out.push(arg.as_str());
        }
    }
    out
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn cue(state_dir: &std::path::Path, command: &str, release: &str) {
    let matches = |spec: &str| {
        let mut parts = spec.split(':');
        parts.next() == Some(command) && parts.next() == Some(release)
    };
    if let Ok(spec) = std::env::var("FAKE_HELM_SLEEP")
        && matches(&spec)
    {
        let secs: u64 = spec.rsplit(':').next().unwrap().parse().unwrap_or(3);
        std::fs::write(state_dir.join(format!("running-{release}")), "").unwrap();
        std::thread::sleep(Duration::from_secs(secs));
    }
    if let Ok(spec) = std::env::var("FAKE_HELM_FAIL")
        && matches(&spec)
    {
        fail(&format!(
            "UPGRADE FAILED: context deadline exceeded (injected failure for {release})"
        ));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("Error: {message}");
    std::process::exit(1);
}

/// The prometheus-operator CRDs kube-prometheus-stack ships, reduced to what
/// an API server needs to serve them.
fn crds() -> String {
    let mut out = String::new();
    for (kind, plural) in [
        ("Alertmanager", "alertmanagers"),
        ("PodMonitor", "podmonitors"),
        ("Prometheus", "prometheuses"),
        ("PrometheusRule", "prometheusrules"),
        ("ServiceMonitor", "servicemonitors"),
    ] {
        out.push_str(
            &CRD.replace("{kind}", kind)
                .replace("{plural}", plural)
                .replace("{singular}", &kind.to_lowercase()),
        );
    }
    out
}

const CRD: &str = r#"---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.monitoring.coreos.com
  annotations:
    operator.prometheus.io/version: 0.86.0
spec:
  group: monitoring.coreos.com
  names:
    kind: {kind}
    listKind: {kind}List
    plural: {plural}
    singular: {singular}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;
