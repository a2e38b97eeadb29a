//! The README's first steps, run verbatim: every command of the `sh` blocks
//! under "Set up (fresh machine)" and "60-second tour" runs with bash in one
//! temp directory (so the tour's `D` is the tour's own), with the `telltale`
//! cargo built for this test first on PATH and the suite's tools (promtool,
//! amtool, jq) after it, a temp HOME and no kubeconfig. The output the README
//! shows for the first `plan` is compared with the real one.
//!
//! Commands that cannot run here are in [`NOT_RUN`], each with the reason and
//! what is checked instead; a README command that is neither run nor listed
//! fails the test, so a new command cannot slip by unrun.

use std::path::{Path, PathBuf};
use std::process::Command;

const README: &str = include_str!("../../../README.md");

/// (command prefix, why it is not run here, what the test checks instead).
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo install --locked --path cli",
        "a release build of ~270 crates (10+ minutes on 2 cores); the test runs \
         the binary cargo built for it from the same source. Checked: cli/ is \
         the package that declares the telltale binary",
    ),
    (
        "scripts/test",
        "the whole suite, which this test is part of. Checked: the script exists \
         and is executable",
    ),
    (
        "telltale init",
        "the wizard needs a terminal; cli/tests/it/init.rs drives it on a \
         pseudo-terminal with the keys a user presses",
    ),
];

/// `cargo run --release -- ARGS` is cargo building and starting the default
/// binary; the test checks that default binary is telltale and runs ARGS
/// with it (a release build here would take 10+ minutes).
const CARGO_RUN: &str = "cargo run --release -- ";

/// The fenced blocks of `lang` in the `## heading` section (up to the next `## `).
fn blocks(heading: &str, lang: &str) -> Vec<String> {
    let start = README
        .find(&format!("\n## {heading}"))
        .unwrap_or_else(|| panic!("README has a `## {heading}` section"));
    let section = &README[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in section[..end].lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(tag)) if tag.trim() == lang => current = Some(String::new()),
            (None, Some(_)) => current = Some("\u{0}skip".into()),
            (Some(block), Some(_)) => {
                if !block.starts_with('\u{0}') {
                    out.push(std::mem::take(block));
                }
                current = None;
            }
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The commands of a shell block: comments and blank lines dropped,
/// backslash continuations joined.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head.trim_end());
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    out
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Runs `command` with bash (pipefail) in `dir`; its stdout.
fn run(command: &str, dir: &Path, home: &Path) -> String {
    let telltale = PathBuf::from(env!("CARGO_BIN_EXE_telltale"));
    let bin_dir = telltale.parent().expect("the binary's directory");
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("a PATH");
    let output = Command::new("bash")
        .args(["-o", "pipefail", "-c", command])
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .env("NO_COLOR", "1")
        .env("LC_ALL", "C")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the README's `{command}` failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout + &String::from_utf8_lossy(&output.stderr)
}

/// Checks what stands in for a command the test does not run.
fn check_not_run(prefix: &str) {
    let root = repo_root();
    match prefix {
        "cargo install --locked --path cli" => {
            let manifest = std::fs::read_to_string(root.join("cli/Cargo.toml")).unwrap();
            assert!(
                manifest.contains("[[bin]]\nname = \"telltale\""),
                "cli/ declares the telltale binary"
            );
        }
        "scripts/test" => {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(root.join("scripts/test")).expect("scripts/test exists");
            assert!(
                meta.permissions().mode() & 0o111 != 0,
                "scripts/test is executable"
            );
        }
        _ => {}
    }
}

#[test]
fn the_readme_set_up_and_tour_commands_run_verbatim() {
    for tool in ["promtool", "amtool", "jq"] {
        crate::common::require_tool(tool);
    }
    let manifest = std::fs::read_to_string(repo_root().join("cli/Cargo.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();

    let mut ran = Vec::new();
    let mut first_plan = None;
    for section in ["Set up (fresh machine)", "60-second tour"] {
        let found = blocks(section, "sh");
        assert!(!found.is_empty(), "`{section}` has sh blocks");
        for command in found.iter().flat_map(|b| commands(b)) {
            if let Some((prefix, _)) = NOT_RUN.iter().find(|(p, _)| command.starts_with(p)) {
                check_not_run(prefix);
                continue;
            }
            let line = match command.strip_prefix(CARGO_RUN) {
                Some(args) => {
                    assert!(
                        manifest.contains("default-run = \"telltale\""),
                        "`cargo run` needs default-run = \"telltale\" in cli/Cargo.toml \
                         (three binaries)"
                    );
                    format!("telltale {args}")
                }
                None => command.clone(),
            };
            let output = run(&line, &work, &home);
            if line == "telltale plan --profile homelab" {
                first_plan = Some(output);
            }
            ran.push(command);
        }
    }
    assert!(
        ran.len() >= 8,
        "the set-up and the tour run at least 8 commands: {ran:?}"
    );

    // What the README says the first plan prints is what it prints.
    let shown = blocks("Set up (fresh machine)", "text");
    let shown = shown
        .first()
        .expect("the set-up shows the first plan's output");
    let actual = first_plan.expect("the set-up runs `plan --profile homelab`");
    let digest = regex::Regex::new(r"digest [0-9a-f]{12}").unwrap();
    let normalise = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| digest.replace(l.trim_end(), "digest <digest>").into_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(
        normalise(shown),
        normalise(&actual),
        "README's first plan output (left) vs the real one (right)"
    );
    assert!(work.join("telltale-out/plan.json").is_file());
}

#[test]
fn the_extractor_sees_commands_comments_and_continuations() {
    let block = "# a comment\n\ntelltale plan \\\n  --profile kind   # trailing\ncargo x\n";
    assert_eq!(
        commands(block),
        ["telltale plan --profile kind   # trailing", "cargo x"]
    );
    let setup = blocks("Set up (fresh machine)", "sh").concat();
    assert!(setup.contains("cargo install --locked --path cli"));
    assert!(!setup.contains("PHASE"), "text blocks are not commands");
}
