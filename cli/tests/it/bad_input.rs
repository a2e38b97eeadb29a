//! Bad input: every fixture exits 2, names file:line:col and the key path,
//! says what was expected (with a did-you-mean where one exists), and writes
//! nothing to --out.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad")
}

struct Case<'a> {
    args: &'a [&'a str],
    /// Every fragment must appear in stderr.
    expect: &'a [&'a str],
}

fn check(case: Case<'_>) {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("bundle");
    let home = tempfile::tempdir().unwrap();
    let assert = Command::cargo_bin("telltale")
        .unwrap()
        .env_clear()
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .current_dir(fixtures())
        .arg("plan")
        .arg("--out")
        .arg(&target)
        .args(case.args)
        .assert();
    let output = assert.get_output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "args {:?}\nstderr:\n{stderr}",
        case.args
    );
    for fragment in case.expect {
        assert!(
            stderr.contains(fragment),
            "args {:?}: `{fragment}` not in stderr:\n{stderr}",
            case.args
        );
    }
    assert!(output.stdout.is_empty(), "stdout must be empty on error");
    assert!(!target.exists(), "--out must not be created on bad input");
    // And nothing else was left next to it (no temporary bundle).
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn a_tab() {
    check(Case {
        args: &["-f", "tab.yaml"],
        expect: &["tab.yaml:6:2:", "not tabs"],
    });
}

#[test]
fn a_duplicate_key() {
    check(Case {
        args: &["-f", "duplicate-key.yaml"],
        expect: &[
            "duplicate-key.yaml:8:3:",
            "spec",
            "duplicate key `namespace`",
        ],
    });
}

#[test]
fn a_misspelt_field_suggests_the_right_one() {
    check(Case {
        args: &["-f", "misspelt-field.yaml"],
        expect: &[
            "misspelt-field.yaml:6:3: spec.profle: unknown field `profle`",
            "did you mean `profile`?",
        ],
    });
}

#[test]
fn a_wrong_type() {
    check(Case {
        args: &["-f", "wrong-type.yaml"],
        expect: &[
            "wrong-type.yaml:9:16: spec.plugins.loki.enabled:",
            "boolean",
        ],
    });
}

#[test]
fn a_grafana_url_that_would_open_a_template_action() {
    // grafanaUrl is written into the notification templates.
    check(Case {
        args: &["-f", "grafana-url-template.yaml"],
        expect: &[
            "grafana-url-template.yaml:8:",
            "spec.alerting.grafanaUrl",
            "URL characters only (found `{`)",
        ],
    });
}

#[test]
fn a_misspelt_default_receiver() {
    check(Case {
        args: &["-f", "default-receiver-typo.yaml"],
        expect: &[
            "default-receiver-typo.yaml:8:",
            "spec.alerting.defaultReceiver",
            "email",
        ],
    });
}

#[test]
fn an_unknown_plugin() {
    check(Case {
        args: &["-f", "unknown-plugin.yaml"],
        expect: &[
            "unknown-plugin.yaml:8:5: spec.plugins.lokki: unknown plugin `lokki`",
            "did you mean `loki`?",
        ],
    });
}

#[test]
fn an_unknown_profile() {
    check(Case {
        args: &["-f", "unknown-profile.yaml"],
        expect: &[
            "unknown-profile.yaml:6:12: spec.profile: unknown profile `homelb`",
            "did you mean `homelab`?",
        ],
    });
}

#[test]
fn an_unknown_profile_on_the_command_line() {
    check(Case {
        args: &["--profile", "prodution"],
        expect: &["unknown profile `prodution`", "did you mean `production`?"],
    });
}

#[test]
fn a_cyclic_extends() {
    check(Case {
        args: &["-f", "cyclic-extends.yaml"],
        expect: &[
            "./cycle-b.yaml:6:12: spec.extends: cyclic `extends`: cycle-a → cycle-b → cycle-a",
        ],
    });
}

#[test]
fn a_literal_secret() {
    let out = tempfile::tempdir().unwrap();
    check(Case {
        args: &["-f", "literal-secret.yaml"],
        expect: &[
            "literal-secret.yaml:11:21: spec.alerting.receivers.slack.webhookUrl:",
            "a literal secret is not allowed",
        ],
    });
    // The literal itself is never echoed back.
    let output = Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(fixtures())
        .args(["plan", "-f", "literal-secret.yaml", "--out"])
        .arg(out.path().join("b"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).contains("CANARY-LITERAL"));
}

#[test]
fn invalid_promql_in_a_plugin() {
    check(Case {
        args: &[
            "-f",
            "invalid-promql.yaml",
            "--plugin-dir",
            "plugins-promql",
        ],
        expect: &[
            "plugins-promql/badpromql/rules/badpromql.yaml:5:15: groups.0.rules.0.expr: invalid PromQL",
        ],
    });
}

#[test]
fn two_plugins_with_the_same_name_name_both_paths() {
    check(Case {
        args: &["--profile", "kind", "--plugin-dir", "plugins-dup"],
        expect: &[
            "plugins-dup/loki/plugin.yaml:4:9: metadata.name:",
            "already defined by builtin:plugins/loki/plugin.yaml",
        ],
    });
}

#[test]
fn a_malformed_set() {
    check(Case {
        args: &["--profile", "kind", "--set", "loki"],
        expect: &["--set #1:1:1:", "has no `=`", "plugin.key.path=value"],
    });
    check(Case {
        args: &["--profile", "kind", "--set", "loki..x=1"],
        expect: &["--set #1:1:1: loki..x:", "has no value"],
    });
    check(Case {
        args: &["--profile", "kind", "--set", "lokii.a=1"],
        expect: &["--set #1:1:1: lokii:", "did you mean `loki`?"],
    });
    // A misspelt key next to the one telltale knows, the second of two
    // assignments in one flag.
    check(Case {
        args: &[
            "--profile",
            "kind",
            "--set",
            "loki.singleBinary.replicas=1,kube-prometheus-stack.prometheus.prometheusSpec.retension=30d",
        ],
        expect: &[
            "--set #1:1:1: kube-prometheus-stack.prometheus.prometheusSpec.retension: unknown key",
            "retentionSize",
            "did you mean `retention`?",
        ],
    });
    check(Case {
        args: &[
            "--profile",
            "kind",
            "--set-string",
            "loki.singleBinry.replicas=1",
        ],
        expect: &[
            "--set-string #1:1:1: loki.singleBinry:",
            "did you mean `singleBinary`?",
        ],
    });
    check(Case {
        args: &["--profile", "kind", "--set", "loki.extraArgs[10001]=x"],
        expect: &[
            "--set #1:1:1: loki.extraArgs:",
            "largest supported index, 10000",
        ],
    });
    check(Case {
        args: &[
            "--profile",
            "kind",
            "--set-file",
            "loki.note=no-such-note.txt",
        ],
        expect: &[
            "--set-file #1:1:1: loki.note:",
            "cannot read file no-such-note.txt",
        ],
    });
}

#[test]
fn a_missing_file() {
    check(Case {
        args: &["-f", "no-such-file.yaml"],
        expect: &["cannot read config no-such-file.yaml", "No such file"],
    });
}

#[test]
fn an_empty_file() {
    check(Case {
        args: &["-f", "empty.yaml"],
        expect: &["empty.yaml:1:1: the file is empty; expected a telltale.dev/v1alpha1 Config"],
    });
}

#[test]
fn a_file_that_is_not_yaml() {
    check(Case {
        args: &["-f", "not-yaml.yaml"],
        expect: &["not-yaml.yaml:1:"],
    });
}

#[test]
fn a_profile_where_a_config_is_expected() {
    check(Case {
        args: &["-f", "profile-not-config.yaml"],
        expect: &[
            "profile-not-config.yaml:2:7: kind: this is a `Profile` document; expected a telltale.dev/v1alpha1 Config",
        ],
    });
}

#[test]
fn plugin_values_that_are_not_a_mapping() {
    check(Case {
        args: &["-f", "values-not-mapping.yaml"],
        expect: &[
            "values-not-mapping.yaml:9:15: spec.plugins.kube-prometheus-stack.values: plugin values must be a mapping",
        ],
    });
}

#[test]
fn an_existing_directory_that_is_not_a_bundle_is_not_replaced() {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("keep.txt"), "mine").unwrap();
    let output = Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(fixtures())
        .args(["plan", "--profile", "kind", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("holds keep.txt, which telltale did not write")
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn the_valid_fixture_renders() {
    let out = tempfile::tempdir().unwrap();
    Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(fixtures())
        .args(["plan", "-f", "valid-kind.yaml", "--out"])
        .arg(out.path().join("b"))
        .assert()
        .success();
    assert!(out.path().join("b/plan.json").is_file());
}
