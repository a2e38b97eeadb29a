//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod local;
pub mod postgres;
pub mod stack;

/// The fake Kubernetes API server (testing/src/fake_api.rs).
pub use telltale_testing::fake_api;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use telltale::catalog::Catalog;
use telltale::model::Source;
use telltale::render::{Bundle, Request, render};

pub const PROFILES: [&str; 5] = ["kind", "homelab", "production", "data-platform", "ml-slo"];

/// The fault-injecting fake helm (testing/src/bin/fake_helm.rs), built and
/// up to date, or a panic that says how to build it.
pub fn fake_helm() -> PathBuf {
    telltale_testing::bins::path("fake-helm")
}

/// The local stack (testing/src/bin/local_stack.rs), as [`fake_helm`].
pub fn local_stack_bin() -> PathBuf {
    telltale_testing::bins::path("telltale-local-stack")
}

pub fn catalog() -> Catalog {
    Catalog::load(&[]).expect("the built-in catalogue loads")
}

pub fn render_profile(profile: &str) -> Bundle {
    render_with(profile, None, &[])
}

pub fn render_with(profile: &str, config: Option<&str>, sets: &[&str]) -> Bundle {
    let request = Request {
        config: config.map(|text| Source::new("test-config.yaml", text)),
        profile: Some(profile.to_string()),
        namespace: None,
        sets: sets.iter().map(|s| s.to_string()).collect(),
        ..Request::default()
    };
    render(&catalog(), &request).unwrap_or_else(|e| panic!("profile {profile} renders: {e}"))
}

/// Writes the bundle as `plan --out` would.
pub fn write(bundle: &Bundle, dir: &Path) {
    telltale::commands::plan::write_bundle(bundle, dir).expect("bundle written");
}

/// The tool, or a failure that says how to install it: a missing validator
/// must never turn into a silent pass.
pub fn require_tool(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "`{tool}` is required by this test and was not found on PATH; {}",
            telltale::tools::ToolError::install_hint(tool)
        )
    })
}

/// Runs a command, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let output = cmd.env("LC_ALL", "C").output().expect("command spawns");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Every file under `dir`, relative path → bytes.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

pub fn files_with_prefix<'a>(bundle: &'a Bundle, prefix: &str) -> Vec<(&'a String, &'a String)> {
    bundle
        .files
        .iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .collect()
}

/// The bundle's alertmanager/routes-test.yaml as JSON.
pub fn routes_test(bundle: &Bundle) -> serde_json::Value {
    serde_saphyr::from_str(&bundle.files["alertmanager/routes-test.yaml"])
        .expect("routes-test.yaml parses")
}

/// The real binary in `dir` with a clean environment (HOME is `dir`, no
/// colours), so nothing from the developer's machine leaks into a test.
pub fn telltale(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("telltale").unwrap();
    cmd.env_clear()
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .current_dir(dir);
    cmd
}

/// A GitOps target for cluster `c1` at `clusters/c1/observability` with every
/// secrets mode configured (a test age key, a sealed-secrets certificate
/// path, an External Secrets store), each CRD-carrying release of `bundle`
/// given `crds` as its chart's CRDs.
pub fn gitops_target(
    bundle: &Bundle,
    layout: telltale::gitops::Layout,
    secrets: telltale::gitops::SecretsMode,
    crds: &str,
) -> telltale::gitops::layout::Target {
    telltale::gitops::layout::Target {
        cluster: "c1".into(),
        path: "clusters/c1/observability".into(),
        layout,
        secrets,
        external_secrets: Some(telltale::model::config::ExternalSecrets {
            store: "vault-backend".into(),
            store_kind: Default::default(),
            key_prefix: None,
            refresh_interval: "1h".into(),
        }),
        sops: Some(telltale::model::config::Sops {
            age: vec!["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".into()],
            decryption_secret: "sops-age".into(),
        }),
        sealed_secrets: Some(telltale::model::config::SealedSecrets {
            cert: "pub-cert.pem".into(),
        }),
        repo_url: "https://github.com/org/infra.git".into(),
        revision: "main".into(),
        branch: "telltale/c1".into(),
        chart_crds: bundle
            .plan
            .releases
            .iter()
            .filter(|r| r.crds)
            .map(|r| (r.name.clone(), crds.to_string()))
            .collect(),
    }
}

/// The directory of the kubeseal **stand-in** (tests/fixtures/stand-ins/kubeseal,
/// a shell script): the real kubeseal is in no registry these machines
/// reach. It writes exactly kubeseal's `--format yaml` output shape (read
/// from sealed-secrets v0.36's cmd/kubeseal and pkg/apis), with opaque
/// values in place of ciphertext. Put it first on PATH, or call
/// [`kubeseal_stand_in`] by path.
pub fn stand_ins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stand-ins")
}

/// The kubeseal stand-in's path (see [`stand_ins`]).
pub fn kubeseal_stand_in() -> PathBuf {
    stand_ins().join("kubeseal")
}

/// A file kubeseal's `--cert` accepts as the stand-in checks it (a PEM
/// certificate block; the stand-in encrypts nothing, so no real key).
pub fn sealed_secrets_cert(dir: &Path) -> PathBuf {
    let cert = dir.join("pub-cert.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    cert
}

/// The SealedSecret files a sealed-secrets branch commits (path → content),
/// made by `telltale::gitops::seal` through the kubeseal stand-in (see
/// [`seal_pending`]).
pub fn seal_with_stand_in(
    rendered: &telltale::gitops::layout::Rendered,
    target: &telltale::gitops::layout::Target,
) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut target = target.clone();
    target.sealed_secrets = Some(telltale::model::config::SealedSecrets {
        cert: sealed_secrets_cert(dir.path()).display().to_string(),
    });
    seal_pending(rendered, &target, &kubeseal_stand_in())
}

/// The encrypted files of a sops or sealed-secrets branch (path → content),
/// made by `telltale::gitops::seal` with `program` as its sops or kubeseal:
/// the Secrets of `rendered.pending`, each key given a test value (what is
/// checked is the objects, not the sources, some of which only a cluster
/// can resolve).
pub fn seal_pending(
    rendered: &telltale::gitops::layout::Rendered,
    target: &telltale::gitops::layout::Target,
    program: &Path,
) -> BTreeMap<String, String> {
    use telltale::gitops::layout::{KeyValue, Pending};
    let pending: Vec<Pending> = rendered
        .pending
        .iter()
        .map(|p| {
            let mut p = p.clone();
            for (key, value) in &mut p.secret.keys {
                if let KeyValue::Source(_) = value {
                    *value = KeyValue::Known(format!("test value of {key}"));
                }
            }
            p
        })
        .collect();
    let program = program.display().to_string();
    telltale::gitops::seal::seal(
        &pending,
        target,
        &|_| None,
        false,
        &telltale::gitops::digest::DigestKey::from_text("test digest key"),
        &|_, _, _| None,
        &|_| None,
        &|_| program.clone(),
    )
    .unwrap_or_else(|e| panic!("{program} encrypts every pending Secret: {e}"))
    .files
}
