//! `telltale init`: the wizard driven through a pseudo-terminal, the flag
//! form, the refusals, and every written file through `telltale plan`.
//!
//! The PTY tests run the real binary on a real pseudo-terminal (expectrl),
//! wait for each prompt's text and answer it, so dialoguer runs as it does
//! for a user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::{Eof, Expect, Session};

const KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
current-context: lab
clusters:
- name: lab-cluster
  cluster: {server: 'https://127.0.0.1:6443'}
- name: kind-telltale
  cluster: {server: 'https://127.0.0.1:6444'}
contexts:
- name: kind-telltale
  context: {cluster: kind-telltale, user: u}
- name: lab
  context: {cluster: lab-cluster, user: u}
users:
- name: u
  user: {token: not-a-secret}
";

const DOWN: &str = "\x1b[B";
const ENTER: &str = "\r";

/// A directory with a two-context kubeconfig (current: `lab`) and a HOME.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self::with_kubeconfig(KUBECONFIG)
    }

    fn with_kubeconfig(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), text).unwrap();
        Workspace { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name))
            .unwrap_or_else(|e| panic!("{name} was not written: {e}"))
    }

    /// The binary with a clean environment: only HOME, KUBECONFIG, PATH and TERM.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("telltale"));
        cmd.env_clear()
            .env("HOME", self.path())
            .env("KUBECONFIG", self.file("kubeconfig"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TERM", "xterm-256color")
            .env("LC_ALL", "C.UTF-8")
            .current_dir(self.path())
            .args(args);
        cmd
    }

    /// Runs without a terminal (stdin /dev/null, pipes for output).
    fn run(&self, args: &[&str]) -> Outcome {
        let output = self
            .command(args)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("telltale runs");
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into(),
            stderr: String::from_utf8_lossy(&output.stderr).into(),
        }
    }

    /// `telltale plan -f FILE` must accept what init wrote.
    fn plan_accepts(&self, name: &str) {
        let out = self.run(&["plan", "-f", name, "--out", "bundle"]);
        assert_eq!(
            out.code,
            Some(0),
            "plan refused {name}:\n{}\n{}",
            self.read(name),
            out.stderr
        );
        assert!(self.file("bundle/plan.json").is_file());
    }

    fn pty(&self, args: &[&str]) -> Pty {
        Pty::spawn(self.command(args), 200, 50)
    }

    /// The wizard on the smallest common terminal.
    fn small_pty(&self, args: &[&str]) -> Pty {
        Pty::spawn(self.command(args), COLS, ROWS)
    }
}

const COLS: u16 = 80;
const ROWS: u16 = 24;

impl Pty {
    fn spawn(command: Command, cols: u16, rows: u16) -> Pty {
        let mut session = Session::spawn(command).expect("spawn on a pty");
        session
            .get_process_mut()
            .set_window_size(cols, rows)
            .expect("pty size");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        Pty {
            session,
            transcript: Vec::new(),
            ended: false,
        }
    }
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A wizard run: wait for a prompt, answer it; keeps everything the
/// terminal showed so secrets can be looked for in it.
struct Pty {
    session: OsSession,
    transcript: Vec<u8>,
    /// The terminal closed: the wizard exited.
    ended: bool,
}

impl Pty {
    fn answer(&mut self, prompt: &str, keys: &str) {
        match self.session.expect(prompt) {
            Ok(found) => self.transcript.extend_from_slice(found.as_bytes()),
            Err(e) => panic!(
                "prompt `{prompt}` never came ({e}); the terminal showed:\n{}",
                String::from_utf8_lossy(&self.transcript)
            ),
        }
        self.session.send(keys).expect("keys sent");
    }

    /// Reads what the terminal is shown until it has been quiet a moment:
    /// the wizard is then waiting for a key.
    fn settle(&mut self) {
        let mut buf = [0u8; 8192];
        let mut quiet = Duration::ZERO;
        let step = Duration::from_millis(50);
        while quiet < Duration::from_millis(400) {
            match self.session.try_read(&mut buf) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(n) => {
                    self.transcript.extend_from_slice(&buf[..n]);
                    quiet = Duration::ZERO;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(step);
                    quiet += step;
                }
                // EIO: the terminal closed, the wizard has exited.
                Err(_) => {
                    self.ended = true;
                    break;
                }
            }
        }
    }

    /// The screen as an 80×24 terminal shows it now: every byte so far
    /// through a terminal emulator, so wrapped lines, scrolling and lines
    /// left behind count as a user would see them.
    fn screen(&self) -> Vec<String> {
        screen_of(&self.transcript)
    }

    /// Reads to the end and returns the exit code.
    fn finish(self) -> (i32, String) {
        match self.finish_status() {
            (WaitStatus::Exited(_, code), text) => (code, text),
            (other, text) => panic!("init did not exit normally: {other:?}\n{text}"),
        }
    }

    fn finish_status(mut self) -> (WaitStatus, String) {
        if let Ok(rest) = self.session.expect(Eof) {
            self.transcript.extend_from_slice(rest.as_bytes());
        }
        let text = String::from_utf8_lossy(&self.transcript).into_owned();
        let status = self
            .session
            .get_process()
            .wait()
            .expect("init is waited for");
        (status, text)
    }
}

fn screen_of(bytes: &[u8]) -> Vec<String> {
    let size = |n: u16| std::num::NonZeroU16::new(n).unwrap();
    let mut parser = vt100::Parser::new(size(ROWS), size(COLS), 0);
    parser.process(bytes);
    parser.screen().rows(0, COLS).collect()
}

/// Enter at every prompt of a fresh directory (profile homelab on context lab).
fn enter_everywhere(ws: &Workspace) -> String {
    let mut pty = ws.pty(&["init"]);
    for prompt in [
        "Kube context",
        "Cluster name",
        "Profile",
        "Plugins",
        "Notification receivers",
        "Add an availability SLO",
        "Prometheus retention",
        "Prometheus volume size",
        "GitOps repository",
        "Write telltale.yaml?",
    ] {
        pty.answer(prompt, ENTER);
    }
    let (code, text) = pty.finish();
    assert_eq!(code, 0, "init failed:\n{text}");
    text
}

#[test]
fn enter_at_every_prompt_writes_a_config_plan_accepts() {
    let ws = Workspace::new();
    let shown = enter_everywhere(&ws);
    // The current context is offered first, the other one too.
    assert!(
        shown.contains("lab (cluster lab-cluster, current)"),
        "{shown}"
    );
    assert!(shown.contains("kind-telltale"), "{shown}");
    let text = ws.read("telltale.yaml");
    assert!(text.contains("context: lab\n"), "{text}");
    assert!(text.contains("profile: homelab\n"), "{text}");
    assert!(
        shown.contains("telltale plan"),
        "next commands shown:\n{shown}"
    );
    ws.plan_accepts("telltale.yaml");
}

#[test]
fn yes_with_the_same_answers_writes_the_same_bytes_as_enter_everywhere() {
    let typed = Workspace::new();
    enter_everywhere(&typed);
    let flags = Workspace::new();
    let out = flags.run(&["init", "--profile", "homelab", "--context", "lab", "--yes"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(flags.read("telltale.yaml"), typed.read("telltale.yaml"));
    assert!(out.stdout.contains("telltale up"), "{}", out.stdout);
    // --yes alone takes the current context and the default profile: the same file.
    let bare = Workspace::new();
    let out = bare.run(&["init", "--yes"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(bare.read("telltale.yaml"), typed.read("telltale.yaml"));
}

#[test]
fn typed_choices_equal_their_flags_byte_for_byte() {
    let catalog = crate::common::catalog();
    // The first plugin of the list gets toggled: whatever it is as the
    // catalogue grows, the flag form says the same.
    let first = catalog.plugins.keys().next().unwrap().clone();
    let production_has_first = telltale::render::resolve(
        &catalog,
        &telltale::render::Request {
            profile: Some("production".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .plugins
    .iter()
    .any(|p| p.name() == first);
    let profiles = catalog.profile_names();
    let kind_at = profiles.iter().position(|p| p == "kind").unwrap();
    let production_at = profiles.iter().position(|p| p == "production").unwrap();
    assert!(
        production_at > kind_at,
        "the keys below assume sorted profiles"
    );

    let typed = Workspace::new();
    let mut pty = typed.pty(&["init"]);
    pty.answer("Kube context", &format!("{DOWN}{ENTER}")); // kind-telltale
    pty.answer("Cluster name", "ci-lab\r");
    // kind-telltale pre-selects the kind profile; move to production.
    pty.answer(
        "Profile",
        &format!("{}{ENTER}", DOWN.repeat(production_at - kind_at)),
    );
    pty.answer("Plugins", &format!(" {ENTER}"));
    // Production's four receivers come ticked: keep them.
    pty.answer("Notification receivers", ENTER);
    // The profile's channel is the default; a new one is written.
    pty.answer("Slack channel", "#ops-primary\r");
    pty.answer("Slack webhook URL: where does it come from?", ENTER); // env
    pty.answer("Slack webhook URL: environment variable", "OPS_SLACK_URL\r");
    // The rest as the profile says: nothing of theirs is written.
    for prompt in [
        "PagerDuty routing key: where does it come from?",
        "PagerDuty routing key: environment variable",
        "Email to (empty",
        "Email from (empty",
        "SMTP server (host:port) (empty",
        "SMTP user name",
        "SMTP password: where does it come from?",
        "SMTP password: environment variable",
        "SMS recipients (comma-separated) (empty",
        "Twilio account SID (empty",
        "Twilio sender number (empty",
        "Twilio auth token: where does it come from?",
        "Twilio auth token: environment variable",
    ] {
        pty.answer(prompt, ENTER);
    }
    pty.answer("Add an availability SLO", "y");
    pty.answer("Prometheus job of the service", "api\r");
    pty.answer("Objective in percent", "99.5\r");
    pty.answer("SLO window", ENTER);
    pty.answer("Prometheus retention", "7d\r");
    pty.answer("Prometheus volume size", "50Gi\r");
    pty.answer("GitOps repository", "git@github.com:org/infra.git\r");
    pty.answer("Path in the repository", ENTER);
    pty.answer("GitOps layout", &format!("{DOWN}{ENTER}")); // argocd
    pty.answer("Write telltale.yaml?", ENTER);
    let (code, shown) = pty.finish();
    assert_eq!(code, 0, "{shown}");
    let typed_text = typed.read("telltale.yaml");
    typed.plan_accepts("telltale.yaml");

    let toggle = if production_has_first {
        "--no-plugin"
    } else {
        "--plugin"
    };
    let flags = Workspace::new();
    let out = flags.run(&[
        "init",
        "--yes",
        "--context",
        "kind-telltale",
        "--cluster-name",
        "ci-lab",
        "--profile",
        "production",
        toggle,
        &first,
        "--receiver",
        "slack=env:OPS_SLACK_URL",
        "--slack-channel",
        "#ops-primary",
        "--slo-job",
        "api",
        "--slo-objective",
        "99.5",
        "--retention",
        "7d",
        "--storage",
        "50Gi",
        "--gitops-repo",
        "git@github.com:org/infra.git",
        "--gitops-layout",
        "argocd",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(flags.read("telltale.yaml"), typed_text);
    for expected in [
        "context: kind-telltale",
        "profile: production",
        "webhookUrl: {env: OPS_SLACK_URL}",
        "channel: \"#ops-primary\"",
        "objective: 99.5",
        "prometheus.prometheusSpec.retention: 7d",
        "layout: argocd",
        "path: clusters/ci-lab/observability",
        &format!("{first}:"),
    ] {
        assert!(
            typed_text.contains(expected),
            "`{expected}` not in:\n{typed_text}"
        );
    }
}

#[test]
fn a_secret_typed_at_up_is_recorded_as_a_prompt_and_never_read_by_init() {
    const CANARY: &str = "canary-routing-key-5f1d";
    let ws = Workspace::new();
    let mut command = ws.command(&["init"]);
    command
        .env("PAGERDUTY_ROUTING_KEY", CANARY)
        .env("SLACK_WEBHOOK_URL", CANARY);
    let mut cmd_pty = Pty::spawn(command, 200, 50);
    for prompt in ["Kube context", "Cluster name", "Profile", "Plugins"] {
        cmd_pty.answer(prompt, ENTER);
    }
    cmd_pty.answer("Notification receivers", &format!("{DOWN} {ENTER}")); // pagerduty
    cmd_pty.answer(
        "PagerDuty routing key: where does it come from?",
        &format!("{}{ENTER}", DOWN.repeat(3)),
    );
    for prompt in [
        "Add an availability SLO",
        "Prometheus retention",
        "Prometheus volume size",
        "GitOps repository",
        "Write telltale.yaml?",
    ] {
        cmd_pty.answer(prompt, ENTER);
    }
    let (code, shown) = cmd_pty.finish();
    assert_eq!(code, 0, "{shown}");
    let text = ws.read("telltale.yaml");
    assert!(text.contains("routingKey: {prompt: true}"), "{text}");
    assert!(
        !shown.contains("Value for"),
        "init must not ask for the value itself:\n{shown}"
    );
    assert!(!text.contains(CANARY) && !shown.contains(CANARY));
    assert!(
        shown.contains("`up` asks for the prompt secrets"),
        "{shown}"
    );
    ws.plan_accepts("telltale.yaml");
}

#[test]
fn a_secret_value_given_as_a_flag_is_refused_without_echoing_it() {
    const CANARY: &str = "https://hooks.slack.com/services/T000/B000/CANARY9c2e";
    let ws = Workspace::new();
    for receiver in [
        format!("slack={CANARY}"),
        "pagerduty=canaryroutingkey9c2e".into(),
    ] {
        let out = ws.run(&["init", "--yes", "--receiver", &receiver]);
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(!all.contains("CANARY") && !all.contains("canary"), "{all}");
        assert!(all.contains("did you mean `--receiver"), "{all}");
        assert!(!ws.file("telltale.yaml").exists());
    }
}

#[test]
fn without_a_terminal_or_yes_it_refuses_naming_the_flags() {
    let ws = Workspace::new();
    let out = ws.run(&["init"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    for fragment in [
        "no terminal",
        "--context NAME (the kubeconfig has: lab, kind-telltale)",
        "--profile NAME (one of:",
        "--yes",
    ] {
        assert!(
            out.stderr.contains(fragment),
            "`{fragment}` not in:\n{}",
            out.stderr
        );
    }
    assert!(out.stdout.is_empty());
    assert!(!ws.file("telltale.yaml").exists());
    // Given the two, it needs no terminal.
    let out = ws.run(&["init", "--context", "lab", "--profile", "kind"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    ws.plan_accepts("telltale.yaml");
}

#[test]
fn answers_without_defaults_are_required_even_with_yes() {
    let ws = Workspace::new();
    let out = ws.run(&["init", "--yes", "--receiver", "email"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    for flag in [
        "--email-to ADDR",
        "--email-from ADDR",
        "--email-smarthost HOST:PORT",
    ] {
        assert!(
            out.stderr.contains(flag),
            "`{flag}` not in:\n{}",
            out.stderr
        );
    }
    let out = ws.run(&[
        "init",
        "--yes",
        "--receiver",
        "email=file:/run/secrets/smtp",
        "--email-to",
        "ops@example.com",
        "--email-from",
        "am@example.com",
        "--email-smarthost",
        "smtp.example.com:587",
        "--email-username",
        "am@example.com",
        "--receiver",
        "sms=secretRef:twilio/token",
        "--sms-to",
        "+15550100,+15550101",
        "--twilio-account-sid",
        "AC0001",
        "--twilio-from",
        "+15550199",
        "--receiver",
        "pagerduty",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let text = ws.read("telltale.yaml");
    assert!(
        text.contains("password: {file: /run/secrets/smtp}"),
        "{text}"
    );
    assert!(
        text.contains("authToken: {secretRef: {name: twilio, key: token}}"),
        "{text}"
    );
    assert!(
        text.contains("routingKey: {env: PAGERDUTY_ROUTING_KEY}"),
        "{text}"
    );
    ws.plan_accepts("telltale.yaml");
}

/// The SMS receiver's comment names the enabled plugin that bridges its
/// webhook (plugin.yaml spec.bridge, read through the catalogue here, not
/// repeated), and says when none does.
#[test]
fn the_sms_comment_names_the_plugin_that_bridges_it() {
    let catalog = crate::common::catalog();
    let bridge = catalog
        .plugins
        .iter()
        .find(|(_, e)| {
            e.plugin
                .bridge_for(telltale::model::alerting::Integration::Sms)
                .is_some()
        })
        .map(|(name, _)| name.clone())
        .expect("a built-in plugin bridges sms");
    // production with an SMS receiver, the bridge switched on or off.
    let written = |plugin_flag: &str| {
        let ws = Workspace::new();
        let out = ws.run(&[
            "init",
            "--yes",
            "--profile",
            "production",
            plugin_flag,
            bridge.as_str(),
            "--receiver",
            "sms=secretRef:twilio/token",
            "--sms-to",
            "+15550100",
            "--twilio-account-sid",
            "AC0001",
            "--twilio-from",
            "+15550199",
        ]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        ws.read("telltale.yaml")
    };
    let text = written("--plugin");
    assert!(
        text.contains(&format!(
            "# Alertmanager has no SMS receiver: the {bridge} plugin bridges to Twilio"
        )),
        "{text}"
    );
    // Without it, the comment says so (and the webhook's URL is the
    // config's to give).
    let text = written("--no-plugin");
    assert!(
        text.contains("# Alertmanager has no SMS receiver and no enabled plugin bridges it")
            && !text.contains("plugin bridges to Twilio"),
        "{text}"
    );
}

#[test]
fn an_existing_file_is_kept_unless_forced_or_confirmed() {
    let ws = Workspace::new();
    std::fs::write(ws.file("telltale.yaml"), "# mine\n").unwrap();
    let out = ws.run(&["init", "--yes"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(ws.read("telltale.yaml"), "# mine\n");

    // At a terminal the overwrite question defaults to no.
    let mut pty = ws.pty(&["init", "--context", "lab", "--profile", "homelab"]);
    for prompt in [
        "Cluster name",
        "Plugins",
        "Notification receivers",
        "Add an availability SLO",
        "Prometheus retention",
        "Prometheus volume size",
        "GitOps repository",
        "exists. Overwrite it?",
    ] {
        pty.answer(prompt, ENTER);
    }
    let (code, shown) = pty.finish();
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("Nothing written"), "{shown}");
    assert_eq!(ws.read("telltale.yaml"), "# mine\n");

    let out = ws.run(&["init", "--yes", "--force", "-f", "telltale.yaml"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("telltale plan -f telltale.yaml"),
        "{}",
        out.stdout
    );
    ws.plan_accepts("telltale.yaml");
}

#[test]
fn bad_flag_values_exit_2_with_a_did_you_mean() {
    let ws = Workspace::new();
    for (args, expect) in [
        (&["--profile", "homelb"][..], "did you mean `homelab`?"),
        (&["--profile", "nosuch"][..], "known profiles:"),
        (&["--receiver", "slak"][..], "did you mean `slack`?"),
        (
            &["--receiver", "slack=bogus"][..],
            "did you mean `--receiver slack=env:SLACK_WEBHOOK_URL`?",
        ),
        (
            &["--receiver", "slack=evn:X"][..],
            "did you mean `slack=env:…`?",
        ),
        (
            &["--plugin", "cert-manger"][..],
            "did you mean `cert-manager`?",
        ),
        (
            &["--context", "kind-telltal"][..],
            "did you mean `kind-telltale`?",
        ),
        (&["--retention", "7"][..], "not a Prometheus duration"),
        (&["--profile", "kind", "--storage", "5Gi"][..], "no volume"),
        (
            &["--slo-job", "api", "--slo-objective", "100"][..],
            "between 0 and 100",
        ),
    ] {
        let mut all = vec!["init", "--yes"];
        all.extend_from_slice(args);
        let out = ws.run(&all);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(expect),
            "{args:?}: `{expect}` not in:\n{}",
            out.stderr
        );
        assert!(!ws.file("telltale.yaml").exists(), "{args:?} wrote a file");
    }
}

#[test]
fn every_profile_by_flags_is_accepted_by_plan() {
    for profile in crate::common::PROFILES {
        let ws = Workspace::new();
        let out = ws.run(&["init", "--yes", "--profile", profile, "--receiver", "slack"]);
        assert_eq!(out.code, Some(0), "{profile}: {}", out.stderr);
        ws.plan_accepts("telltale.yaml");
    }
}

#[test]
fn a_plugin_pick_that_breaks_a_requirement_is_explained_and_asked_again() {
    let loki_at = crate::common::catalog()
        .plugins
        .keys()
        .position(|p| p == "loki")
        .unwrap();
    let toggle_loki = format!("{} {ENTER}", DOWN.repeat(loki_at));
    let ws = Workspace::new();
    let mut pty = ws.pty(&["init", "--context", "lab", "--profile", "homelab"]);
    pty.answer("Cluster name", ENTER);
    pty.answer("Plugins", &toggle_loki); // homelab's alloy requires loki
    pty.answer("requires `loki`", "");
    pty.answer("Plugins", &toggle_loki); // ticked again
    for prompt in [
        "Notification receivers",
        "Add an availability SLO",
        "Prometheus retention",
        "Prometheus volume size",
        "GitOps repository",
        "Write telltale.yaml?",
    ] {
        pty.answer(prompt, ENTER);
    }
    let (code, shown) = pty.finish();
    assert_eq!(code, 0, "{shown}");
    let text = ws.read("telltale.yaml");
    assert!(
        !text.contains("plugins:"),
        "no change to the profile's plugins:\n{text}"
    );
    ws.plan_accepts("telltale.yaml");
}

#[test]
fn the_readme_documents_every_init_flag() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = readme
        .split("## Writing the config: `init`")
        .nth(1)
        .expect("README has the init section");
    let ws = Workspace::new();
    let help = ws.run(&["init", "--help"]).stdout;
    let answers = help
        .split("Answers:")
        .nth(1)
        .expect("init --help has its Answers heading")
        // The flags every command takes have their own heading after it.
        .split("Global Flags:")
        .next()
        .unwrap();
    let flags: Vec<&str> = answers
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches([',', '.', ')']))
        .collect();
    assert!(flags.len() > 15, "{answers}");
    for flag in flags {
        let name = flag.split(['=', '<']).next().unwrap();
        assert!(section.contains(name), "README's init section lacks {name}");
    }
}

#[test]
fn ctrl_c_at_a_prompt_exits_130_and_writes_nothing() {
    let ws = Workspace::new();
    for (answered, interrupted) in [(0, "Kube context"), (1, "Cluster name")] {
        let mut pty = ws.pty(&["init"]);
        if answered == 1 {
            pty.answer("Kube context", ENTER);
        }
        pty.answer(interrupted, "\x03");
        let (code, shown) = pty.finish();
        assert_eq!(code, 130, "{shown}");
        assert_eq!(
            shown.matches("interrupted; nothing was written").count(),
            1,
            "said once:\n{shown}"
        );
        // dialoguer hides the cursor while a list is shown; it must come back.
        assert!(shown.ends_with_cursor_shown(), "{shown:?}");
        assert!(!ws.file("telltale.yaml").exists());
    }
}

trait CursorShown {
    fn ends_with_cursor_shown(&self) -> bool;
}

impl CursorShown for String {
    /// The last cursor command is "show" (`ESC[?25h`), not "hide" (`ESC[?25l`).
    fn ends_with_cursor_shown(&self) -> bool {
        self.rfind("\x1b[?25h") > self.rfind("\x1b[?25l")
    }
}

#[test]
fn without_a_current_context_yes_does_not_guess_one() {
    let ws = Workspace::with_kubeconfig(&KUBECONFIG.replace("current-context: lab\n", ""));
    let out = ws.run(&["init", "--yes"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--context NAME (the kubeconfig has: kind-telltale, lab)"),
        "{}",
        out.stderr
    );
    let out = ws.run(&["init", "--yes", "--context", "kind-telltale"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // A kind-* context picks the kind profile.
    assert!(ws.read("telltale.yaml").contains("profile: kind\n"));
    ws.plan_accepts("telltale.yaml");
}

/// Enter whenever the wizard waits, until it exits: whatever the profile
/// asks, in whatever order. Returns the exit code and what was shown.
fn enter_until_done(mut pty: Pty) -> (i32, String) {
    for _ in 0..80 {
        pty.settle();
        if pty.ended {
            break;
        }
        pty.session.send(ENTER).expect("keys sent");
    }
    pty.finish()
}

/// Each profile's wizard, Enter at every question, writes what `--yes`
/// writes. The profiles run side by side: the wizard waits on the terminal
/// (400 ms of quiet per answer), not on the CPU.
#[test]
fn enter_everywhere_on_every_profile_writes_what_yes_writes() {
    std::thread::scope(|scope| {
        for profile in crate::common::PROFILES {
            scope.spawn(move || {
                let typed = Workspace::new();
                let (code, shown) = enter_until_done(typed.small_pty(&[
                    "init",
                    "--context",
                    "lab",
                    "--profile",
                    profile,
                ]));
                assert_eq!(code, 0, "{profile}:\n{shown}");
                let flags = Workspace::new();
                let out = flags.run(&["init", "--yes", "--context", "lab", "--profile", profile]);
                assert_eq!(out.code, Some(0), "{profile}: {}", out.stderr);
                assert_eq!(
                    typed.read("telltale.yaml"),
                    flags.read("telltale.yaml"),
                    "{profile}"
                );
                // The summary said what the bundle leaves out and what `up` reads,
                // exactly as --yes said it after writing.
                for line in out.stderr.lines().filter(|l| l.starts_with("warning: ")) {
                    let warning = line.trim_start_matches("warning: ");
                    let head: String = warning.chars().take(40).collect();
                    assert!(
                        shown.contains(&head),
                        "{profile}: the wizard did not show `{head}`"
                    );
                }
                if let Some(env) = out
                    .stderr
                    .lines()
                    .find(|l| l.trim_start().starts_with("environment: "))
                {
                    let vars = env.trim().trim_start_matches("environment: ");
                    assert!(shown.contains(vars), "{profile}: the summary lacks {vars}");
                }
                typed.plan_accepts("telltale.yaml");
            });
        }
    });
}

#[test]
fn the_profiles_receivers_are_ticked_and_unticking_one_writes_enabled_false() {
    let ws = Workspace::new();
    let mut pty = ws.small_pty(&["init", "--context", "lab", "--profile", "production"]);
    pty.answer("Cluster name", ENTER);
    pty.answer("Plugins", ENTER);
    pty.answer("Notification receivers", "");
    pty.settle();
    let screen = pty.screen().join("\n");
    for kind in ["slack", "pagerduty", "email", "sms"] {
        let row = pty
            .screen()
            .into_iter()
            .find(|r| r.contains(&format!("{kind} ")) && r.contains("(the profile"))
            .unwrap_or_else(|| panic!("{kind} is not shown as the profile's:\n{screen}"));
        assert!(
            row.trim_start().starts_with("✔"),
            "{kind} is not ticked: {row}"
        );
    }
    // Untick pagerduty (the second item), take the rest as they are.
    pty.session.send(format!("{DOWN} {ENTER}")).unwrap();
    let (code, shown) = enter_until_done(pty);
    assert_eq!(code, 0, "{shown}");
    let text = ws.read("telltale.yaml");
    assert!(
        text.contains("      pagerduty: {enabled: false}\n"),
        "{text}"
    );
    let flags = Workspace::new();
    let out = flags.run(&[
        "init",
        "--yes",
        "--context",
        "lab",
        "--profile",
        "production",
        "--no-receiver",
        "pagerduty",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(flags.read("telltale.yaml"), text);
    // What the profile leaves to the site was offered, and left empty: said.
    assert!(
        shown.contains("Email to (empty: leave email out until it is set)"),
        "{shown}"
    );
    assert!(
        shown.contains("alerting.receivers.email is left out"),
        "{shown}"
    );
    let plan = ws.run(&["plan", "-o", "json", "--out", "bundle"]);
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    // The ops PagerDuty is gone from every tier; the security team's own
    // service (alerting.security) is not the receiver that was unticked.
    for tier in plan["alerting"]["receivers"].as_array().unwrap() {
        let integrations = tier["integrations"].to_string();
        if tier["receiver"] != "security" {
            assert!(!integrations.contains("pagerduty"), "{tier}");
        }
        if tier["receiver"] == "critical" {
            assert!(integrations.contains("slack"), "{tier}");
        }
    }
}

#[test]
fn at_80x24_long_lists_page_and_leave_no_stale_lines() {
    let names: Vec<String> = crate::common::catalog().plugins.keys().cloned().collect();
    let last = names.last().unwrap().clone();
    let ws = Workspace::new();
    let mut pty = ws.small_pty(&["init", "--context", "lab", "--profile", "homelab"]);
    pty.answer("Cluster name", ENTER);
    pty.answer("Plugins", "");
    pty.session
        .send(DOWN.repeat(names.len() - 1))
        .expect("keys sent");
    pty.settle();
    let screen = pty.screen();
    let shown = screen.join("\n");
    // The question and the cursor's item are both in view.
    assert!(
        screen.iter().any(|r| r.contains("Plugins (space toggles")),
        "the question scrolled away:\n{shown}"
    );
    assert!(
        screen.iter().any(|r| r.contains(&format!("{last} "))),
        "the cursor's item `{last}` is not in view:\n{shown}"
    );
    // Tick the last plugin, then Enter everywhere.
    pty.session.send(format!(" {ENTER}")).unwrap();
    let (code, text) = enter_until_done(pty);
    assert_eq!(code, 0, "{text}");
    let screen = screen_of(text.as_bytes());
    // An item row is a mark (cursor ❯, ticked ✔, unticked ⬚) then a name;
    // the answered question's line is "✔ Plugins …", not an item.
    let stale: Vec<&String> = screen
        .iter()
        .filter(|r| {
            let words: Vec<&str> = r
                .split_whitespace()
                .skip_while(|w| ["❯", "✔", "⬚"].contains(w))
                .take(1)
                .collect();
            words.first().is_some_and(|w| names.iter().any(|n| n == w))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "list lines left on screen:\n{}",
        screen.join("\n")
    );
    let flags = Workspace::new();
    let out = flags.run(&[
        "init",
        "--yes",
        "--context",
        "lab",
        "--profile",
        "homelab",
        "--plugin",
        &last,
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(ws.read("telltale.yaml"), flags.read("telltale.yaml"));
}

#[test]
fn enter_on_an_empty_required_answer_says_one_is_needed() {
    let ws = Workspace::new();
    // homelab declares no email: adding it makes its address required.
    let mut pty = ws.small_pty(&[
        "init",
        "--context",
        "lab",
        "--profile",
        "homelab",
        "--receiver",
        "email",
    ]);
    pty.answer("Cluster name", ENTER);
    pty.answer("Plugins", ENTER);
    pty.answer("Email to", ENTER);
    pty.answer("an answer is needed here", "ops@example.com\r");
    pty.answer("Email from", "\x03");
    let (code, shown) = pty.finish();
    assert_eq!(code, 130, "{shown}");
    assert!(!ws.file("telltale.yaml").exists());
}

/// init names no plugin: a plugin's plugin.yaml `spec.settings` says where
/// its values keep the retention, so a second store gets the answer at its
/// own key path beside kube-prometheus-stack's; a path that is no key path
/// is refused where it is written, before anything is touched.
#[test]
fn a_plugin_says_where_its_retention_lives_and_init_writes_the_answer_there() {
    let ws = Workspace::new();
    let plugin = ws.file("plugins/second-store");
    std::fs::create_dir_all(&plugin).unwrap();
    let manifest = "apiVersion: telltale.dev/v1alpha1\nkind: Plugin\nmetadata:\n  name: second-store\n  version: 0.1.0\n  description: A second metrics store.\nspec:\n  phase: metrics\n  chart:\n    name: victoria-metrics-single\n    repository: https://victoriametrics.github.io/helm-charts\n    version: 0.9.0\n  settings:\n    retention: server.retentionPeriod\n";
    std::fs::write(plugin.join("plugin.yaml"), manifest).unwrap();
    std::fs::write(
        plugin.join("values.yaml"),
        "server:\n  retentionPeriod: 30d\n",
    )
    .unwrap();
    let args = [
        "--plugin-dir",
        "plugins",
        "init",
        "--yes",
        "--context",
        "lab",
        "--profile",
        "kind",
        "--plugin",
        "second-store",
        "--retention",
        "7d",
    ];
    let out = ws.run(&args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let text = ws.read("telltale.yaml");
    let config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        config["spec"]["set"]["second-store"]["server.retentionPeriod"], "7d",
        "{text}"
    );
    assert_eq!(
        config["spec"]["set"]["kube-prometheus-stack"]["prometheus.prometheusSpec.retention"], "7d",
        "{text}"
    );
    let plan = ws.run(&[
        "--plugin-dir",
        "plugins",
        "plan",
        "-f",
        "telltale.yaml",
        "--out",
        "bundle",
    ]);
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);

    std::fs::remove_file(ws.file("telltale.yaml")).unwrap();
    std::fs::write(
        plugin.join("plugin.yaml"),
        manifest.replace("server.retentionPeriod", "server..retentionPeriod"),
    )
    .unwrap();
    let out = ws.run(&args);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("plugin.yaml:14:16: spec.settings.retention")
            && out.stderr.contains("is not a key path"),
        "{}",
        out.stderr
    );
    assert!(!ws.file("telltale.yaml").exists());
}
