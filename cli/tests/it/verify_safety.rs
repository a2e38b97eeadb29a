//! verify against misbehaving servers: a silent one, one that answers a
//! 3 GB body, one that reflects the request's headers into its answers;
//! and the inputs verify must refuse before any request (credentials over
//! plain http, huge timeouts and rates). Plus verify's honesty without a
//! cluster: exit 3 when nothing can be reached, skips that say why.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A server on 127.0.0.1 that handles each connection with `handle`, on
/// its own thread; it lives as long as the test process (a few sockets).
fn serve(handle: fn(TcpStream, &AtomicU64)) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || handle(stream, &counter));
        }
    });
    (url, sent)
}

/// Reads one request's head (up to the blank line).
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Accepts and never answers.
fn silent(stream: TcpStream, _: &AtomicU64) {
    std::thread::sleep(Duration::from_secs(120));
    drop(stream);
}

/// Answers every request with `status` and a 3 GB body, counting what it
/// manages to send before the client hangs up.
fn huge(stream: TcpStream, sent: &AtomicU64, status: &str) {
    huge_of(stream, sent, status, b"", b"a");
}

/// A 3 GB body: `start`, then `unit` over and over.
fn huge_of(mut stream: TcpStream, sent: &AtomicU64, status: &str, start: &[u8], unit: &[u8]) {
    read_head(&mut stream);
    let total: u64 = 3 * 1024 * 1024 * 1024;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {total}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(start).is_err() {
        return;
    }
    let chunk = unit.repeat(64 * 1024 / unit.len());
    let mut written = 0u64;
    while written < total {
        match stream.write(&chunk) {
            Ok(n) if n > 0 => {
                written += n as u64;
                // The most any one answer got through (verify retries).
                sent.fetch_max(written, Ordering::Relaxed);
            }
            _ => return,
        }
    }
}

fn huge_error(stream: TcpStream, sent: &AtomicU64) {
    huge(stream, sent, "500 Internal Server Error")
}

fn huge_ok(stream: TcpStream, sent: &AtomicU64) {
    huge(stream, sent, "200 OK")
}

/// Valid JSON that never ends: a target list of ever more targets, which
/// the streaming parser would read for ever without the size cap.
fn endless_targets(stream: TcpStream, sent: &AtomicU64) {
    huge_of(
        stream,
        sent,
        "200 OK",
        br#"{"status":"success","data":{"activeTargets":["#,
        br#"{"labels":{"job":"node-exporter","instance":"n:9100"},"health":"up"},"#,
    )
}

/// Puts the request's head into the body: as a 401 page for one path, as
/// an unparseable 200 for the others (both get quoted by a naive client).
fn reflect(mut stream: TcpStream, _: &AtomicU64) {
    loop {
        let head = read_head(&mut stream);
        if head.is_empty() {
            return;
        }
        let status = if head.contains("/api/v1/targets") || head.contains("/-/ready") {
            "401 Unauthorized"
        } else {
            "200 OK"
        };
        let body = format!("you sent: {head}");
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// verify in a clean environment (no kubeconfig: no cluster), kind profile.
fn telltale(dir: &Path) -> assert_cmd::Command {
    let mut cmd = crate::common::telltale(dir);
    cmd.args(["verify", "--profile", "kind"]);
    cmd
}

#[test]
fn a_silent_server_ends_at_the_timeout_not_later() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = serve(silent);
    let started = Instant::now();
    let out = telltale(dir.path())
        .args(["--checks", "targets,rules,alertmanager"])
        .args(["--prometheus-url", &url, "--alertmanager-url", &url])
        .args(["--timeout", "5s", "-o", "json"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8) && took >= Duration::from_secs(4),
        "--timeout 5s took {took:?}"
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["status"], "fail", "{check}");
        assert!(
            check["summary"].as_str().unwrap().contains("--timeout"),
            "{check}"
        );
    }
}

/// The peak resident size of `pid` (VmHWM) until it exits.
fn run_measuring_peak(mut cmd: Command) -> (std::process::Output, u64) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let peak = Arc::new(AtomicU64::new(0));
    let seen = peak.clone();
    let watcher = std::thread::spawn(move || {
        while let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                seen.fetch_max(kb, Ordering::Relaxed);
            }
            // A zombie has no VmHWM: stop once it has exited.
            if text.contains("State:\tZ") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = watcher.join();
    (out, peak.load(Ordering::Relaxed))
}

fn verify_against(dir: &Path, url: &str, timeout: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_telltale"));
    cmd.env_clear()
        .env("HOME", dir)
        .current_dir(dir)
        .args(["verify", "--profile", "kind", "--checks", "targets,rules"])
        .args(["--prometheus-url", url, "--timeout", timeout, "-o", "json"]);
    cmd
}

#[test]
fn a_three_gigabyte_body_is_not_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    // What verify weighs when the answers are empty: the bound is on growth.
    let (quiet, _) = serve(silent);
    let (_, baseline_kb) = run_measuring_peak(verify_against(dir.path(), &quiet, "2s"));
    // An error body is read 4 KiB deep; a success body up to 16 MiB, twice
    // at once (targets and rules run concurrently).
    // …and the summary says why it stopped reading.
    let bounds = [
        (
            huge_error as fn(TcpStream, &AtomicU64),
            16 * 1024,
            "HTTP 500",
        ),
        (huge_ok, 64 * 1024, "unexpected response"),
        // The streamed targets answer stops at the cap too.
        (endless_targets, 64 * 1024, "larger than 16 MiB; refused"),
    ];
    // The three bodies side by side: each verify's peak is its own process's.
    std::thread::scope(|scope| {
        for (handler, growth_kb, why) in bounds {
            let dir = dir.path();
            scope.spawn(move || {
                let (url, sent) = serve(handler);
                let started = Instant::now();
                let (out, peak_kb) = run_measuring_peak(verify_against(dir, &url, "20s"));
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(1), "{stderr}");
                let report: Value = serde_json::from_slice(&out.stdout).unwrap();
                let summary = report["checks"][0]["summary"].as_str().unwrap().to_string();
                // The quoted part of the body is short whatever the body.
                assert!(
                    summary.len() < 1000,
                    "{} bytes: {summary:.300}",
                    summary.len()
                );
                assert!(summary.contains(why), "{summary:.300}");
                let sent = sent.load(Ordering::Relaxed);
                assert!(
                    sent < 64 * 1024 * 1024,
                    "one answer got {} MB through before verify hung up",
                    sent / 1024 / 1024
                );
                assert!(
                    peak_kb < baseline_kb + growth_kb,
                    "verify's peak RSS was {} MB ({} MB without the body)",
                    peak_kb / 1024,
                    baseline_kb / 1024
                );
                assert!(started.elapsed() < Duration::from_secs(25));
            });
        }
    });
}

/// Every output verify wrote, to scan for canaries.
fn outputs(out: &std::process::Output, junit: &Path) -> String {
    format!(
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(junit).unwrap_or_default()
    )
}

#[test]
fn reflected_credentials_never_reach_any_output() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = serve(reflect);
    // Assembled at run time, so no secret-shaped literal sits in the source.
    let token = format!("canary-token-{}", "7f3a9c");
    let password = format!("canary-pass-{}", "51d0e2");
    let pair = format!("watcher:{password}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&pair);
    let runs: [(&str, &str, &str); 2] = [
        ("--bearer-token-env", "VERIFY_TOKEN", &token),
        ("--basic-auth-env", "VERIFY_BASIC", &pair),
    ];
    for (flag, var, value) in runs {
        for format in ["json", "text"] {
            let junit = dir.path().join(format!("{var}-{format}.xml"));
            let out = telltale(dir.path())
                .env(var, value)
                .args([flag, var])
                .args(["--checks", "targets,rules,alertmanager,dashboards,logs"])
                .args(["--prometheus-url", &url, "--alertmanager-url", &url])
                .args(["--grafana-url", &url, "--loki-url", &url])
                .args(["--timeout", "3s", "-o", format, "-v"])
                .arg("--junit")
                .arg(&junit)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1));
            let all = outputs(&out, &junit);
            // The server did reflect what it got: the quote is there, blanked.
            assert!(all.contains("you sent"), "{all}");
            assert!(all.contains("[redacted]"), "{all}");
            for canary in [&token, &password, &encoded] {
                assert!(
                    !all.contains(canary.as_str()),
                    "{flag}: a credential reached the {format} output:\n{all}"
                );
            }
        }
    }
}

#[test]
fn credentials_never_go_over_plain_http_to_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let token = format!("canary-token-{}", "c0ffee");
    // A routable address nobody listens on: verify must stop before trying.
    let started = Instant::now();
    let out = telltale(dir.path())
        .env("VERIFY_TOKEN", &token)
        .args(["--bearer-token-env", "VERIFY_TOKEN"])
        .args(["--prometheus-url", "http://192.0.2.10:9090"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-insecure-credentials"), "{stderr}");
    assert!(stderr.contains("--prometheus-url"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!stderr.contains(&token));

    // With the flag the request goes (and finds nobody there).
    let out = telltale(dir.path())
        .env("VERIFY_TOKEN", &token)
        .args([
            "--bearer-token-env",
            "VERIFY_TOKEN",
            "--allow-insecure-credentials",
        ])
        .args(["--prometheus-url", "http://192.0.2.10:9090"])
        .args(["--checks", "targets", "--timeout", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // Loopback over http is fine without the flag.
    let (url, _) = serve(reflect);
    let out = telltale(dir.path())
        .env("VERIFY_TOKEN", &token)
        .args(["--bearer-token-env", "VERIFY_TOKEN"])
        .args(["--prometheus-url", &url.replace("127.0.0.1", "localhost")])
        .args(["--checks", "targets", "--timeout", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_password_in_a_url_is_refused_without_being_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let password = format!("canary-pass-{}", "9e8d7c");
    let out = telltale(dir.path())
        .args([
            "--grafana-url",
            &format!("https://admin:{password}@grafana.example.org"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--basic-auth-env"), "{stderr}");
    assert!(!stderr.contains(&password), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn absurd_timeouts_and_rates_are_refused_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--timeout", "100000000000000s"][..],
        &["--timeout", "18446744073709551615s"],
        &["--timeout", "0s"],
        &["--load-duration", "1000000000h"],
        &["--load-rate", "4000000000"],
        &["--load-rate", "100000"],
        &["--load-rate", "0"],
    ] {
        let out = telltale(dir.path()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}

#[test]
fn no_cluster_and_no_url_is_exit_3_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = telltale(dir.path()).args(["-o", "json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no cluster reachable"), "{stderr}");
    assert!(stderr.contains("no URL given"), "{stderr}");
    assert_eq!(
        stderr.matches("no cluster reachable").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_check_that_cannot_run_is_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = serve(silent);
    let junit = dir.path().join("verify.xml");
    // No cluster: autoscaling, and load with the k6 engine, cannot run.
    // The ml-slo profile declares both.
    let out = crate::common::telltale(dir.path())
        .args(["verify", "--profile", "ml-slo", "-o", "json"])
        .args(["--checks", "autoscaling,load,targets"])
        .args(["--prometheus-url", &url, "--timeout", "2s"])
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |id: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {report}"))
            .clone()
    };
    for id in ["autoscaling", "load"] {
        let c = status(id);
        assert_eq!(c["status"], "skip", "{c}");
        assert!(
            c["summary"].as_str().unwrap().starts_with("could not run"),
            "{c}"
        );
    }
    // A skip never makes the run green on its own: targets still failed.
    assert_eq!(status("targets")["status"], "fail");
    assert_eq!(out.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(
        xml.matches("<skipped message=\"could not run").count(),
        2,
        "{xml}"
    );

    // Nothing gives Loki's URL and no cluster can be port-forwarded to.
    let out = telltale(dir.path())
        .args(["--checks", "logs,targets", "-o", "json"])
        .args(["--prometheus-url", &url, "--timeout", "1s"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let logs = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "logs")
        .unwrap();
    assert_eq!(logs["id"], "logs", "{report}");
    assert_eq!(logs["status"], "skip", "{report}");
    assert!(
        logs["summary"].as_str().unwrap().contains("--loki-url"),
        "{logs}"
    );
}

#[test]
fn notifications_with_no_integration_prove_nothing_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = serve(silent);
    // The kind profile without a config has no receiver integrations.
    let out = telltale(dir.path())
        .args(["--checks", "notifications", "-o", "json"])
        .args(["--alertmanager-url", &url, "--timeout", "1s"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &report["checks"][0];
    assert_eq!(c["status"], "skip", "{c}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("nothing to deliver"),
        "{c}"
    );
}

#[test]
fn checks_the_profile_does_not_declare_are_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = serve(silent);
    // kind declares no load test and no autoscaling.
    let out = telltale(dir.path())
        .args(["--prometheus-url", &url, "--alertmanager-url", &url])
        .args(["--grafana-url", &url, "--loki-url", &url])
        .args(["--timeout", "1s", "-o", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&"load") && !ids.contains(&"autoscaling"),
        "{ids:?}"
    );
    assert!(ids.contains(&"targets"), "{ids:?}");
    // Asked for by name, it says why it proves nothing.
    let out = telltale(dir.path())
        .args(["--checks", "load", "-o", "json", "--prometheus-url", &url])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["checks"][0]["status"], "skip", "{report}");
    assert!(
        report["checks"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("declares no load test")
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_terminal_sees_what_verify_waits_for_and_json_does_not() {
    let script = crate::common::require_tool("script");
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = serve(silent);
    let line = format!(
        "{} verify --profile kind --checks targets --prometheus-url {url} --timeout 3s",
        env!("CARGO_BIN_EXE_telltale")
    );
    let run = |extra: &str| {
        let out = Command::new(&script)
            .args(["-qec", &format!("{line}{extra}"), "/dev/null"])
            .env_clear()
            .env("HOME", dir.path())
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run("");
    assert!(text.contains("waiting for targets"), "{text}");
    assert!(text.contains("s left"), "{text}");
    let json = run(" -o json");
    assert!(!json.contains("waiting for"), "{json}");
}
