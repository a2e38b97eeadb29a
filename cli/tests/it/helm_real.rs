//! telltale's helm layer (src/helm.rs) against **real helm 3 and real helm 4**
//! (`$TELLTALE_TEST_HELM3`, `$TELLTALE_TEST_HELM4`; `scripts/tools` installs
//! both) and a real OCI registry (`$TELLTALE_TEST_REGISTRY`, docker
//! distribution 2.8) on 127.0.0.1 over TLS with a throw-away CA, the way
//! `oci://ghcr.io/…` charts are served.
//!
//! The chart is the project's own (tests/fixtures/charts/telltale-probe: a
//! CRD in crds/, a Deployment, values); each test packages and pushes it
//! with the helm under test, then drives telltale's `HelmCli` with that
//! helm. A wrapper script records every argument vector, so the tests check
//! the exact command lines telltale builds as well as helm's answers.
//!
//! What runs for real here: the version probe, `show crds`, the full
//! `upgrade --install` flag set (through `helm template`, which takes the same
//! flags and renders with the values on stdin), and the release JSON telltale
//! reads from `status -o json` (from a client-side dry-run install); against the fake API server
//! (testing/src/fake_api.rs) through real helm: `status` and `uninstall` of
//! a missing release. `upgrade --install` against a server (with
//! `--dry-run=server` or for real) is e2e-only: helm validates manifests
//! against the server's OpenAPI document, which the fake does not serve,
//! `--wait` needs controllers, and helm 4's watcher needs watch (README,
//! "Testing without a cluster").

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use telltale::helm::{Chart, DEFAULT_TIMEOUT, Helm, HelmCli, upgrade_args};

const CHART_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/charts/telltale-probe"
);
const CHART_VERSION: &str = "0.1.0";

/// A tool the suite installs with `scripts/tools`, named by an env var.
fn tool_from_env(var: &str) -> PathBuf {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(path) if path.is_file() => path,
        other => panic!(
            "this test needs {var} (found {other:?}); run `scripts/tools` and \
             `. \"$(scripts/tools --env)\"` first (scripts/test does)"
        ),
    }
}

/// docker distribution serving HTTPS on a free 127.0.0.1 port, storage in a
/// temp dir; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    ca: PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let bin = tool_from_env("TELLTALE_TEST_REGISTRY");
        let openssl = crate::common::require_tool("openssl");
        let (cert, key) = (dir.join("registry.crt"), dir.join("registry.key"));
        crate::common::run_ok(
            Command::new(openssl)
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let port = crate::common::local::free_port();
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("registry-data").display(),
                cert.display(),
                key.display()
            ),
        )
        .expect("registry config written");
        let log = dir.join("registry.log");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("registry log"))
            .stderr(std::fs::File::create(dir.join("registry.err")).expect("registry log"))
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry {
            child,
            port,
            ca: cert,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry never listened on {port}: {}",
                std::fs::read_to_string(dir.join("registry.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }

    /// The `oci://` repository a plugin would name for the pushed chart.
    fn chart_ref(&self) -> String {
        format!("oci://127.0.0.1:{}/charts/telltale-probe", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Real helm `major` behind a wrapper that gives it a private home, trusts
/// the registry's CA and records each argument vector (one line, arguments
/// separated by U+001F) in `calls`.
struct RealHelm {
    wrapper: PathBuf,
    calls: PathBuf,
}

impl RealHelm {
    fn new(major: u64, dir: &Path, registry: &Registry) -> RealHelm {
        let real = tool_from_env(&format!("TELLTALE_TEST_HELM{major}"));
        let home = dir.join(format!("helm{major}-home"));
        std::fs::create_dir_all(&home).expect("helm home");
        let calls = dir.join(format!("helm{major}-calls"));
        let wrapper = dir.join(format!("helm{major}"));
        let script = format!(
            "#!/bin/sh\n\
             for a in \"$@\"; do printf '%s\\037' \"$a\"; done >> '{calls}'\n\
             echo >> '{calls}'\n\
             export HELM_CONFIG_HOME='{home}/config' HELM_CACHE_HOME='{home}/cache' \
             HELM_DATA_HOME='{home}/data' SSL_CERT_FILE='{ca}'\n\
             exec '{real}' \"$@\"\n",
            calls = calls.display(),
            home = home.display(),
            ca = registry.ca.display(),
            real = real.display(),
        );
        std::fs::write(&wrapper, script).expect("wrapper written");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("wrapper executable");
        RealHelm { wrapper, calls }
    }

    /// `helm package` + `helm push` of the fixture chart, as a chart author would.
    fn push_chart(&self, dir: &Path, registry: &Registry) {
        let out = dir.join("packaged");
        crate::common::run_ok(
            Command::new(&self.wrapper)
                .args(["package", CHART_DIR, "-d"])
                .arg(&out),
        );
        crate::common::run_ok(
            Command::new(&self.wrapper)
                .arg("push")
                .arg(out.join(format!("telltale-probe-{CHART_VERSION}.tgz")))
                .arg(format!("oci://127.0.0.1:{}/charts", registry.port)),
        );
        std::fs::remove_file(&self.calls).expect("the call log restarts");
    }

    fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                l.split('\u{1f}')
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    }

    /// Runs the wrapper with `args`, `stdin` piped; (success, stdout, stderr).
    fn run(&self, args: &[String], stdin: &str) -> (bool, String, String) {
        let mut child = Command::new(&self.wrapper)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("helm starts");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(stdin.as_bytes())
            .expect("values written");
        let output = child.wait_with_output().expect("helm ends");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn chart<'a>(repository: &'a str, namespace: &'a str) -> Chart<'a> {
    Chart {
        release: "probe",
        namespace,
        chart: "telltale-probe",
        repository,
        version: CHART_VERSION,
    }
}

fn documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .unwrap_or_else(|e| panic!("helm's output is not YAML documents ({e}):\n{text}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Version probe, `show crds` from the OCI registry, and every flag of
/// `upgrade --install` accepted by real helm (through `helm template`).
fn offline(major: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(dir.path());
    let helm = RealHelm::new(major, dir.path(), &registry);
    helm.push_chart(dir.path(), &registry);
    let repository = registry.chart_ref();
    let chart = chart(&repository, "monitoring");

    let rt = runtime();
    let cli = rt
        .block_on(HelmCli::detect_at(helm.wrapper.clone(), Vec::new()))
        .unwrap_or_else(|e| panic!("telltale detects helm {major}: {e}"));
    assert_eq!(cli.version.major, major, "detected {}", cli.version);
    assert!(cli.version >= telltale::helm::MIN_VERSION);

    // show crds: exactly the chart's crds/ file, pulled over oci://.
    let text = rt
        .block_on(cli.show_crds(&chart))
        .unwrap_or_else(|e| panic!("helm {major} show crds: {e}"));
    let expected: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(CHART_DIR).join("crds/probes.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(documents(&text), vec![expected], "helm {major} show crds");
    let calls = helm.calls();
    assert_eq!(
        calls.last().expect("show crds was recorded"),
        &["show", "crds", &repository, "--version", CHART_VERSION],
        "the command line telltale builds for show crds"
    );

    // upgrade --install's flags, install and dry-run sets, through template.
    let values = "replicas: 3\nmessage: telltale-values-on-stdin\n";
    for dry_run in [false, true] {
        let mut args = upgrade_args(major, &chart, dry_run, DEFAULT_TIMEOUT);
        assert_eq!(args[..3], ["upgrade", "--install", "probe"]);
        if dry_run {
            // `template` renders client-side; the server dry run is tested
            // against the fake API server below.
            args.retain(|a| a != "--dry-run=server");
        }
        let template: Vec<String> = ["template".to_string(), "probe".to_string()]
            .into_iter()
            .chain(args[3..].iter().cloned())
            .collect();
        let (ok, stdout, stderr) = helm.run(&template, values);
        assert!(
            ok,
            "helm {major} refused telltale's flags {template:?}:\n{stderr}"
        );
        let docs = documents(&stdout);
        assert_eq!(
            docs.len(),
            1,
            "--skip-crds leaves only the Deployment: {stdout}"
        );
        let deployment = &docs[0];
        assert_eq!(deployment["kind"], "Deployment");
        assert_eq!(deployment["metadata"]["name"], "probe-probe");
        assert_eq!(deployment["metadata"]["namespace"], "monitoring");
        assert_eq!(deployment["spec"]["replicas"], 3, "values from stdin");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["env"][0]["value"], "telltale-values-on-stdin");
        assert_eq!(
            container["image"], "registry.invalid/telltale/probe:1.0.0",
            "chart defaults kept where stdin sets nothing"
        );
    }
}

#[test]
fn helm3_pulls_from_oci_shows_crds_and_accepts_every_upgrade_flag() {
    offline(3);
}

#[test]
fn helm4_pulls_from_oci_shows_crds_and_accepts_every_upgrade_flag() {
    offline(4);
}

/// `status` and `uninstall` through real helm against the fake API server:
/// both read helm's release records (Secrets selected by label), and telltale
/// relies on their answers for a release that does not exist (`status` →
/// none, `uninstall` → an error saying "not found", which `down` skips).
fn against_fake_api(major: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(dir.path());
    let helm = RealHelm::new(major, dir.path(), &registry);
    helm.push_chart(dir.path(), &registry);
    let repository = registry.chart_ref();
    let api = crate::common::fake_api::FakeApi::start();
    let kubeconfig = api.kubeconfig(&dir.path().join("kubeconfig"), "fake");
    let kube_args = vec![
        "--kube-context".to_string(),
        "fake".to_string(),
        "--kubeconfig".to_string(),
        kubeconfig.display().to_string(),
    ];

    let rt = runtime();
    let cli = rt
        .block_on(HelmCli::detect_at(helm.wrapper.clone(), kube_args.clone()))
        .unwrap_or_else(|e| panic!("telltale detects helm {major}: {e}"));

    let status = rt.block_on(cli.status("probe", "default"));
    assert!(
        matches!(status, Ok(None)),
        "helm {major} status of a release that does not exist: {status:?}"
    );
    let uninstall = rt.block_on(cli.uninstall("probe", "default"));
    match &uninstall {
        Err(e) => assert!(
            e.to_string().contains("not found"),
            "helm {major} uninstall of a missing release: {e}"
        ),
        Ok(()) => panic!("helm {major} uninstalled a release that does not exist"),
    }
    // Both asked the (fake) cluster, the way telltale passes it.
    let helm_reads: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/namespaces/default/secrets")
        .map(|r| r.query.clone())
        .collect();
    assert!(
        helm_reads.len() >= 2,
        "helm {major} read its release records from the fake API: {helm_reads:?}"
    );

    // `-o json` is the release document `status -o json` prints; a client
    // dry run of an install makes one (helm 3 still asks the cluster for its
    // version and, unless told not to, for the OpenAPI document the fake
    // does not serve). Not a command telltale builds: a source of real JSON.
    let install: Vec<String> = [
        "install".into(),
        "probe".into(),
        repository.clone(),
        "--version".into(),
        CHART_VERSION.into(),
        "--namespace".into(),
        "monitoring".into(),
        "--dry-run=client".into(),
        "--disable-openapi-validation".into(),
        "-o".into(),
        "json".into(),
    ]
    .into_iter()
    .chain(kube_args.iter().cloned())
    .collect();
    let (ok, stdout, stderr) = helm.run(&install, "");
    assert!(
        ok,
        "helm {major} install --dry-run=client -o json:\n{stderr}"
    );
    let release = telltale::helm::parse_status(&stdout)
        .unwrap_or_else(|e| panic!("telltale reads helm {major}'s release JSON: {e}\n{stdout}"));
    assert_eq!(release.revision, 1, "{release:?}");
    assert_eq!(release.chart_version, CHART_VERSION, "{release:?}");
    assert_eq!(release.status, "pending-install", "{release:?}");

    let calls = helm.calls();
    let with_kube = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(kube_args.iter().cloned())
            .collect()
    };
    assert_eq!(
        calls[1..3],
        [
            with_kube(&["status", "probe", "--namespace", "default", "-o", "json"]),
            with_kube(&["uninstall", "probe", "--namespace", "default", "--wait"]),
        ],
        "the command lines telltale builds for status and uninstall"
    );
}

#[test]
fn helm3_status_uninstall_and_release_json_against_the_fake_api() {
    against_fake_api(3);
}

#[test]
fn helm4_status_uninstall_and_release_json_against_the_fake_api() {
    against_fake_api(4);
}

/// For an `oci://` repository telltale passes the repository alone as the
/// chart reference (as the test above pulls `oci://…/charts/telltale-probe`),
/// so its last path segment must be the chart's name and it must carry no
/// tag: helm takes the version from `--version`.
#[test]
fn every_builtin_oci_chart_reference_names_its_chart() {
    let catalog = crate::common::catalog();
    let mut oci = 0;
    for entry in catalog.plugins.values() {
        let Some(chart) = &entry.plugin.spec.chart else {
            continue;
        };
        let Some(path) = chart.repository.strip_prefix("oci://") else {
            continue;
        };
        oci += 1;
        let last = path.rsplit('/').next().unwrap_or_default();
        assert_eq!(
            last,
            chart.name,
            "plugin {}: oci repository {} must end with the chart name",
            entry.name(),
            chart.repository
        );
        assert!(
            !last.contains(':') && !last.contains('@'),
            "plugin {}: {} carries a tag or digest; the version goes in chart.version",
            entry.name(),
            chart.repository
        );
    }
    assert!(
        oci >= 1,
        "the catalogue has oci:// charts (kube-prometheus-stack)"
    );
}
