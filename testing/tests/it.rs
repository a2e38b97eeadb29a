//! Smoke tests of this package's binaries. The target is named `it`, like
//! telltale's integration tests, on purpose: `cargo test --workspace
//! --all-features --test it AREA::` selects both, and cargo builds a
//! package's binaries when one of its integration tests is selected, so
//! the fakes telltale's tests run are always rebuilt with them
//! (see `telltale_testing::bins`).

use std::process::{Command, Stdio};

fn run(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output()
        .expect("the binary starts");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn fake_helm_answers_version_and_records_the_call() {
    let state = tempfile::tempdir().unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_fake-helm"))
        .args(["version", "--short"])
        .env("FAKE_HELM_STATE", state.path()));
    assert_eq!(out.trim(), "v3.16.2+gfake", "helm's --short form");
    let calls = std::fs::read_to_string(state.path().join("calls.jsonl")).unwrap();
    assert!(calls.contains("\"version\""), "{calls}");
}

#[test]
fn the_local_stack_answers_help() {
    let out = run(Command::new(env!("CARGO_BIN_EXE_telltale-local-stack")).arg("--help"));
    assert!(out.contains("--bundle"), "{out}");
}

/// What telltale's tests rely on: the locator finds the very binaries cargo
/// just built for this package.
#[test]
fn the_locator_finds_the_binaries_cargo_built() {
    for (name, built) in [
        ("fake-helm", env!("CARGO_BIN_EXE_fake-helm")),
        (
            "telltale-local-stack",
            env!("CARGO_BIN_EXE_telltale-local-stack"),
        ),
    ] {
        assert_eq!(
            telltale_testing::bins::path(name).canonicalize().unwrap(),
            std::path::Path::new(built).canonicalize().unwrap()
        );
    }
}
