//! How errors reach the user: the cause chain, no secret in any line of
//! it, and a closed pipe that ends a command quietly.

use std::process::{Command, Output, Stdio};

use crate::common::fake_api::FakeApi;

const CANARY: &str = "CANARY-pw-7f3a9c";

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_telltale"));
    cmd.env_remove("KUBECONFIG").env("NO_COLOR", "1");
    cmd
}

/// `cmd` with stdout (and, with `both`, stderr) on a pipe whose reader is
/// gone before the program starts: the first write fails with EPIPE, as
/// in `telltale … | head -c0` once head has exited, without a race.
fn closed_pipe(cmd: &mut Command, both: bool) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let stderr = if both {
        Stdio::from(writer.try_clone().expect("the pipe's writer"))
    } else {
        Stdio::piped()
    };
    cmd.stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .output()
        .expect("telltale runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_closed_stdout_ends_plan_quietly_with_its_own_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = closed_pipe(
        bin()
            .current_dir(dir.path())
            .args(["plan", "--profile", "kind", "-o", "json"]),
        false,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "nothing is said about the pipe");

    // Text output, stdout and stderr both gone (`telltale plan 2>&1 | true`).
    let out = closed_pipe(
        bin()
            .current_dir(dir.path())
            .args(["plan", "--profile", "kind"]),
        true,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "no panic (101) on a closed stderr"
    );

    // An error still exits with its code when nobody reads the report.
    let out = closed_pipe(
        bin()
            .current_dir(dir.path())
            .args(["plan", "--profile", "no-such-profile", "-o", "json"]),
        true,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_closed_pipe_after_status_exits_as_status_does() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(&dir.path().join("kubeconfig"), "kind-telltale");
    let status = || {
        let mut cmd = bin();
        cmd.current_dir(dir.path())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["status", "--profile", "kind"]);
        cmd
    };
    let read = status().output().unwrap();
    let expected = read.status.code();
    assert!(
        matches!(expected, Some(0 | 1)),
        "status answers on the fake API: {}",
        text(&read.stderr)
    );
    assert!(
        !read.stdout.is_empty(),
        "status prints a report to close the pipe on"
    );
    // `telltale status | true`
    let out = closed_pipe(&mut status(), false);
    assert_eq!(out.status.code(), expected, "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        text(&read.stderr),
        "nothing more is said"
    );
    // `telltale status 2>&1 | true`
    let out = closed_pipe(&mut status(), true);
    assert_eq!(out.status.code(), expected);
}

/// A kubeconfig whose server URL carries a password, pointing at a port
/// nothing listens on: the connection error's message, hint and causes
/// (hyper's, kube's) all quote the URL.
fn secret_bearing_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: c\n  cluster:\n    server: https://admin:{CANARY}@127.0.0.1:1\n\
             users:\n- name: u\n  user:\n    token: t\n\
             contexts:\n- name: kind-telltale\n  context:\n    cluster: c\n    user: u\n\
             current-context: kind-telltale\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_password_in_a_url_never_reaches_an_error_line_or_document() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = secret_bearing_kubeconfig(dir.path());
    for format in ["text", "json"] {
        let out = bin()
            .current_dir(dir.path())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["status", "--profile", "kind", "-o", format])
            .output()
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            !stdout.contains(CANARY) && !stderr.contains(CANARY),
            "the password leaked with -o {format}:\n{stdout}\n{stderr}"
        );
        // The error still names the server, its credentials masked as
        // `gitops::repo::display_repo` masks a repository's, and keeps its
        // chain.
        assert!(stderr.contains("https://***@127.0.0.1:1"), "{stderr}");
        assert!(stderr.contains("Caused by:"), "{stderr}");
        if format == "json" {
            let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
            let causes = doc["error"]["causes"].as_array().expect("causes is a list");
            assert!(!causes.is_empty(), "{doc}");
            assert!(causes.iter().all(|c| c.is_string()), "{doc}");
        }
    }
}

#[test]
fn an_error_prints_its_words_then_its_cause_then_the_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args(["plan", "-f", "missing.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "error: cannot read config missing.yaml",
            "Caused by: No such file or directory (os error 2)",
            "hint: pass an existing file with -f, or run `telltale init` to write one",
        ],
        "{stderr}"
    );
    let out = bin()
        .current_dir(dir.path())
        .args(["plan", "-f", "missing.yaml", "-o", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["error"]["message"], "cannot read config missing.yaml");
    assert_eq!(
        doc["error"]["causes"],
        serde_json::json!(["No such file or directory (os error 2)"])
    );
}
