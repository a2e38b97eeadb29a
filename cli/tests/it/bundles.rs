//! Every built-in profile's bundle: deterministic, snapshotted, and accepted
//! by the real promtool and amtool.

use std::process::Command;

use crate::common::*;
use serde_json::Value;
use telltale::lint;
use telltale::model::Source;
use telltale::render::alertmanager;
use telltale::render::alertmanager::InhibitionPairs;
use telltale::render::rules::parse_rule_file;

#[test]
fn rendering_is_deterministic() {
    for profile in PROFILES {
        let a = render_profile(profile);
        let b = render_profile(profile);
        assert_eq!(
            a.files, b.files,
            "{profile}: files differ between two renders"
        );
        assert_eq!(
            a.plan_json, b.plan_json,
            "{profile}: plan.json differs between two renders"
        );
    }
}

#[test]
fn two_plan_runs_write_identical_trees() {
    for profile in PROFILES {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        for out in [&one, &two] {
            assert_cmd::Command::cargo_bin("telltale")
                .unwrap()
                .current_dir(dir.path())
                .args(["plan", "--profile", profile, "--out"])
                .arg(out)
                .assert()
                .success();
        }
        let (a, b) = (read_tree(&one), read_tree(&two));
        assert!(a.contains_key("plan.json"));
        assert_eq!(a, b, "{profile}: two runs wrote different trees");
    }
}

#[test]
fn plan_json_lists_a_sha256_for_every_file() {
    for profile in PROFILES {
        let bundle = render_profile(profile);
        let listed: Vec<&String> = bundle.plan.files.keys().collect();
        let written: Vec<&String> = bundle.files.keys().collect();
        assert_eq!(listed, written, "{profile}");
        for (path, content) in &bundle.files {
            use sha2::Digest;
            let digest: String = sha2::Sha256::digest(content.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(bundle.plan.files[path], digest, "{profile}: {path}");
        }
        let phases: Vec<String> = bundle
            .plan
            .phases
            .iter()
            .map(|p| p.name.to_string())
            .collect();
        assert_eq!(
            phases,
            [
                "preflight",
                "namespace",
                "crds",
                "secrets",
                "metrics",
                "logs",
                "exporters",
                "alerting",
                "dashboards",
                "autoscaling",
                "verify",
                "gitops"
            ]
        );
    }
}

#[test]
fn snapshots_of_every_profile() {
    for profile in PROFILES {
        let bundle = render_profile(profile);
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_suffix(profile);
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| {
            insta::assert_snapshot!("plan", bundle.plan_json);
            insta::assert_snapshot!(
                "alertmanager",
                bundle.files["alertmanager/alertmanager.yaml"]
            );
            let values: String = files_with_prefix(&bundle, "helm/")
                .into_iter()
                .map(|(p, c)| format!("# {p}\n{c}"))
                .collect();
            insta::assert_snapshot!("values", values);
            let listing: String = bundle.files.keys().map(|p| format!("{p}\n")).collect();
            insta::assert_snapshot!("files", listing);
        });
    }
}

/// promtool 3 (on PATH) and promtool 2 (`TELLTALE_TEST_PROMTOOL2`): the
/// bundle claims both majors, so both must accept it.
fn promtools() -> Vec<(String, std::path::PathBuf)> {
    let three = require_tool("promtool");
    let two = std::env::var_os("TELLTALE_TEST_PROMTOOL2")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "TELLTALE_TEST_PROMTOOL2 must name promtool 2.x; run `. \"$(scripts/tools --env)\"` (scripts/tools installs it)"
            )
        });
    let mut out = Vec::new();
    for (want, path) in [("3", three), ("2", two)] {
        let version = run_ok(Command::new(&path).arg("--version"));
        assert!(
            version.contains(&format!("version {want}.")),
            "{} is not promtool {want}.x: {version}",
            path.display()
        );
        out.push((format!("promtool {want}"), path));
    }
    out
}

/// Both promtools check every profile's rules and run every profile's rule
/// tests. A test file that another profile already ran, byte for byte and
/// over byte-identical rule files, is not run again: promtool's answer is a
/// function of those files (most plugins' tests are in every profile).
#[test]
fn promtool_2_and_3_check_and_test_every_profile() {
    let promtools = promtools();
    let mut seen = std::collections::BTreeSet::new();
    let mut ran = 0;
    for profile in PROFILES {
        let bundle = render_profile(profile);
        let dir = tempfile::tempdir().unwrap();
        write(&bundle, dir.path());
        let rules: Vec<&str> = bundle
            .files
            .keys()
            .filter(|p| p.starts_with("prometheus/rules/"))
            .map(String::as_str)
            .collect();
        assert!(!rules.is_empty(), "{profile}: no rule files");
        let all_tests: Vec<&str> = bundle
            .files
            .keys()
            .filter_map(|p| p.strip_prefix("prometheus/tests/"))
            .collect();
        assert!(!all_tests.is_empty(), "{profile}: no rule tests");
        // A test's inputs: its own text and the rule files it loads.
        let tests: Vec<&str> = all_tests
            .iter()
            .copied()
            .filter(|test| {
                let text = &bundle.files[&format!("prometheus/tests/{test}")];
                let test_file: Value = serde_saphyr::from_str(text).unwrap();
                let loaded: Vec<&str> = test_file["rule_files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let r = r.as_str().unwrap().trim_start_matches("../");
                        bundle.files[&format!("prometheus/{r}")].as_str()
                    })
                    .collect();
                assert!(!loaded.is_empty(), "{profile}: {test} loads no rule file");
                seen.insert((text.clone(), loaded.concat()))
            })
            .collect();
        for (name, promtool) in &promtools {
            run_ok(
                Command::new(promtool)
                    .current_dir(dir.path())
                    .args(["check", "rules"])
                    .args(&rules),
            );
            if tests.is_empty() {
                continue;
            }
            let out = run_ok(
                Command::new(promtool)
                    .current_dir(dir.path().join("prometheus/tests"))
                    .args(["test", "rules"])
                    .args(&tests),
            );
            assert!(!out.contains("FAILED"), "{profile} ({name}): {out}");
            eprintln!(
                "{profile}: {name} checked {} rule files, ran {} of its {} test files (the others ran in an earlier profile)",
                rules.len(),
                tests.len(),
                all_tests.len()
            );
        }
        ran += tests.len();
    }
    assert!(ran >= 20, "only {ran} distinct rule tests ran");
}

/// The integer-formatted `le`/`quantile` matchers of one bundle file: every
/// string of a JSON file (dashboards), the text of any other.
fn integer_bounds_in(path: &str, text: &str) -> Vec<String> {
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let check = telltale::render::rules::integer_bound_matchers;
    if path.ends_with(".json") {
        let json: Value = serde_json::from_str(text).unwrap();
        let mut all = Vec::new();
        strings(&json, &mut all);
        all.into_iter().flat_map(check).collect()
    } else {
        check(text)
    }
}

/// Every PromQL-bearing string of every bundle (rules, dashboards, KEDA and
/// adapter manifests, helm values): no integer-formatted `le`/`quantile`.
#[test]
fn no_bundle_selects_an_integer_formatted_le_or_quantile() {
    let mut scanned = 0;
    for profile in PROFILES {
        let bundle = render_profile(profile);
        for (path, text) in &bundle.files {
            let found = integer_bounds_in(path, text);
            assert!(found.is_empty(), "{profile}: {path}: {found:?}");
            scanned += 1;
        }
    }
    assert!(scanned > 100, "only {scanned} files scanned");
    // The scan can fail: a dashboard panel with the matcher the production
    // SLO used before Prometheus 3.
    let panel = serde_json::json!({"panels": [{"targets": [{"expr": "sum(rate(h_bucket{job=\"api\",le=\"5\"}[5m]))"}]}]});
    assert_eq!(integer_bounds_in("d.json", &panel.to_string()).len(), 1);
    assert_eq!(
        integer_bounds_in("keda.yaml", "query: 'h_bucket{le=\"5\"}'").len(),
        1
    );
}

/// The routes no alert of the bundle exercises through routes-test.yaml:
/// `severity=page` (the ML serving SLO's paging severity) in every
/// profile, and where the chain is configured the escalation levels, ahead
/// of the category routes.
#[test]
fn amtool_routes_severity_page_and_each_escalation_level() {
    require_tool("amtool");
    for profile in PROFILES {
        let dir = tempfile::tempdir().unwrap();
        let bundle = render_profile(profile);
        write(&bundle, dir.path());
        // The tier and level receivers amtool resolves (plugins' webhooks,
        // which see every alert, left aside).
        let ours: Vec<String> = bundle
            .plan
            .alerting
            .receivers
            .iter()
            .map(|t| t.receiver.clone())
            .collect();
        let route = |dir: &std::path::Path, labels: &[&str], want: &str| {
            let out = run_ok(
                Command::new("amtool")
                    .args(["config", "routes", "test", "--config.file"])
                    .arg(dir.join("alertmanager/alertmanager.yaml"))
                    .args(labels),
            );
            let resolved: Vec<&str> = out
                .lines()
                .next()
                .unwrap_or_default()
                .split(',')
                .filter(|r| ours.iter().any(|o| o == r))
                .collect();
            assert_eq!(resolved, [want], "{profile} {labels:?}: {out}");
        };
        route(
            dir.path(),
            &["alertname=ModelLatencyPage", "severity=page"],
            "critical",
        );
        let chain = bundle
            .files
            .contains_key("prometheus/rules/telltale-escalation.yaml");
        // production and the profiles that extend it carry the chain.
        assert_eq!(
            chain,
            ["production", "data-platform", "ml-slo"].contains(&profile),
            "{profile}"
        );
        if chain {
            let base = [
                "alertname=NodeDown",
                "severity=critical",
                "category=availability",
            ];
            route(dir.path(), &base, "critical");
            route(
                dir.path(),
                &[&base[..], &["escalation=2"]].concat(),
                "escalation-2",
            );
            route(
                dir.path(),
                &[&base[..], &["escalation=3"]].concat(),
                "escalation-3",
            );
            // An SLA breach told management at level 1; its levels go to the on-call only.
            route(
                dir.path(),
                &[
                    "alertname=ServiceAvailabilityBelowSLA",
                    "severity=critical",
                    "category=sla",
                    "escalation=2",
                ],
                "escalation-2",
            );
        } else {
            // No chain configured: no escalation receivers in the bundle.
            assert!(
                !bundle.files["alertmanager/alertmanager.yaml"].contains("escalation-2"),
                "{profile}"
            );
        }
    }
}

#[test]
fn amtool_checks_the_config_and_every_route_case() {
    require_tool("amtool");
    for profile in PROFILES {
        let dir = tempfile::tempdir().unwrap();
        let bundle = render_profile(profile);
        write(&bundle, dir.path());
        let config = dir.path().join("alertmanager/alertmanager.yaml");
        run_ok(Command::new("amtool").arg("check-config").arg(&config));
        let cases: Value = crate::common::routes_test(&bundle);
        let cases = cases["cases"].as_array().unwrap();
        assert!(cases.len() >= 6);
        for case in cases {
            let receivers: Vec<&str> = case["receivers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            let labels: Vec<String> = case["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect();
            let out = run_ok(
                Command::new("amtool")
                    .args(["config", "routes", "test", "--config.file"])
                    .arg(&config)
                    .arg(format!("--verify.receivers={}", receivers.join(",")))
                    .args(&labels),
            );
            assert!(
                out.contains(&receivers.join(",")),
                "{profile} {}: {out}",
                case["name"]
            );
        }
    }
}

#[test]
fn every_alert_has_labels_annotations_a_runbook_and_both_test_cases() {
    for profile in PROFILES {
        let bundle = render_profile(profile);
        let groups: Vec<_> = files_with_prefix(&bundle, "prometheus/rules/")
            .into_iter()
            .map(|(path, text)| {
                let stem = path
                    .trim_start_matches("prometheus/rules/")
                    .trim_end_matches(".yaml");
                parse_rule_file(&Source::new(path.clone(), text.clone()), stem).unwrap()
            })
            .collect();
        let tests: Vec<Source> = files_with_prefix(&bundle, "prometheus/tests/")
            .into_iter()
            .map(|(p, t)| Source::new(p.clone(), t.clone()))
            .collect();
        let exists = |name: &str| bundle.files.contains_key(&format!("runbooks/{name}"));
        let problems = lint::check_groups(&groups, &tests, &exists).unwrap();
        assert!(problems.is_empty(), "{profile}:\n{}", problems.join("\n"));
        let alerts = groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter(|r| r.alert.is_some())
            .count();
        assert!(alerts > 10, "{profile}: only {alerts} alerts");
    }
}

#[test]
fn the_coverage_check_catches_an_alert_without_a_silent_case() {
    // Guard against a lint that cannot fail.
    let rules = Source::new(
        "r.yaml",
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    labels: {severity: critical, priority: P0}\n    annotations: {summary: s, description: 'v {{ $value }}', sla: x, runbook_url: https://x/A.md}\n",
    );
    let group = parse_rule_file(&rules, "g").unwrap();
    let tests = Source::new(
        "t.yaml",
        "tests:\n- alert_rule_test:\n  - alertname: A\n    eval_time: 1m\n    exp_alerts: [{exp_labels: {severity: critical}}]\n",
    );
    let problems = lint::check_groups(&[group], &[tests], &|_| true).unwrap();
    assert_eq!(problems, ["A: no promtool case where it stays silent"]);
}

#[test]
fn production_routes_by_tier() {
    let bundle = render_with(
        "production",
        Some(include_str!(
            "../fixtures/configs/production-receivers.yaml"
        )),
        &[],
    );
    let tiers: Vec<(String, Vec<String>)> = bundle
        .plan
        .alerting
        .receivers
        .iter()
        .map(|t| (t.receiver.clone(), t.integrations.clone()))
        .collect();
    let get = |name: &str| {
        tiers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i.clone())
            .unwrap()
    };
    // The escalation chain: level 1 at once, PagerDuty at level 3.
    assert_eq!(get("critical"), ["slack", "email", "sms-bridge"]);
    assert_eq!(get("escalation-2"), ["slack", "sms-bridge"]);
    assert_eq!(get("escalation-3"), ["pagerduty"]);
    assert_eq!(get("warning"), ["slack"]);
    assert!(get("info").is_empty(), "info is annotation-only");
    assert_eq!(get("sla"), ["email"]);
    let am = &bundle.files["alertmanager/alertmanager.yaml"];
    assert!(am.contains(
        "api_url_file: /etc/alertmanager/secrets/telltale-alertmanager-receivers/slack-webhook-url"
    ));
    assert!(am.contains("routing_key_file: /etc/alertmanager/secrets/telltale-alertmanager-receivers/pagerduty-routing-key"));
    // Secrets only as files: no source (env var name) and no value in the config.
    assert!(!am.contains("SLACK_WEBHOOK_URL"));
    assert!(
        !am.contains("api_url:") && !am.contains("routing_key:") && !am.contains("service_key:")
    );
}

#[test]
fn set_wins_over_config_which_wins_over_profile() {
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: kind\n  set:\n    kube-prometheus-stack:\n      prometheus.prometheusSpec.retention: 2d\n      prometheus.prometheusSpec.retentionSize: 3GB\n";
    let bundle = render_with(
        "kind",
        Some(config),
        &["kube-prometheus-stack.prometheus.prometheusSpec.retention=5d"],
    );
    let values = &bundle.files["helm/kube-prometheus-stack/values.yaml"];
    assert!(values.contains("retention: 5d"), "--set wins");
    assert!(
        values.contains("retentionSize: 3GB"),
        "config wins over profile"
    );
    assert!(
        values.contains("serviceMonitorSelectorNilUsesHelmValues: false"),
        "plugin defaults remain"
    );
    let plain = render_profile("kind");
    assert!(
        plain.files["helm/kube-prometheus-stack/values.yaml"].contains("retention: 6h"),
        "profile wins over plugin defaults"
    );
}

#[test]
fn grafana_admin_password_is_never_a_literal() {
    for profile in PROFILES {
        let bundle = render_profile(profile);
        let values = &bundle.files["helm/kube-prometheus-stack/values.yaml"];
        assert!(
            values.contains("existingSecret: telltale-grafana-admin"),
            "{profile}"
        );
        assert!(!values.contains("adminPassword"), "{profile}");
    }
}

#[test]
fn promtail_is_legacy_and_warns() {
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: kind\n  plugins:\n    alloy: {enabled: false}\n    promtail: {enabled: true}\n";
    let bundle = render_with("kind", Some(config), &[]);
    assert!(
        bundle
            .plan
            .warnings
            .iter()
            .any(|w| w.contains("promtail") && w.contains("end-of-life")),
        "{:?}",
        bundle.plan.warnings
    );
}

#[test]
fn production_profile_pages_through_slack_sms_and_pagerduty_and_carries_the_seed_slos() {
    // Bare, production leaves out what only the site knows, warning once
    // per integration, and no placeholder reaches the bundle.
    let bare = render_profile("production");
    for left_out in [
        "alerting.receivers.email is left out",
        "alerting.receivers.sms is left out",
        "alerting.security.soc is left out",
        "alerting.sla.email is not set",
    ] {
        let n = bare
            .plan
            .warnings
            .iter()
            .filter(|w| w.contains(left_out))
            .count();
        assert_eq!(n, 1, "{left_out}: {:#?}", bare.plan.warnings);
    }
    assert_eq!(bare.plan.warnings.len(), 5, "{:#?}", bare.plan.warnings);
    let placeholder = regex::Regex::new(r"ACxx|\+1555|example\.(com|org)|xxxx").unwrap();
    for (path, text) in &bare.files {
        assert!(!placeholder.is_match(text), "{path} holds a placeholder");
    }
    // With the site's values the whole seed routing is there.
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: production\n  alerting:\n    receivers:\n      email: {to: ops@corp.test, from: am@corp.test, smarthost: 'smtp.corp.test:587'}\n      sms: {to: ['+441000'], twilio: {accountSid: AC1, from: '+442000'}}\n    security: {soc: {url: 'https://soc.corp.test/hook'}}\n    sla: {email: execs@corp.test}\n";
    let bundle = render_with("production", Some(config), &[]);
    assert_eq!(
        bundle.plan.warnings.len(),
        2,
        "only the PostgreSQL panels and level 2's numbers remain: {:#?}",
        bundle.plan.warnings
    );
    let tier = |name: &str| {
        bundle
            .plan
            .alerting
            .receivers
            .iter()
            .find(|t| t.receiver == name)
            .unwrap_or_else(|| panic!("no receiver {name}"))
            .integrations
            .clone()
    };
    // Seed 000's chain: Slack + SMS at once, the next on-call after 15m,
    // PagerDuty after 30m.
    for (receiver, integration) in [
        ("critical", "slack"),
        ("critical", "sms-bridge"),
        ("escalation-2", "slack"),
        ("escalation-2", "sms-bridge"),
        ("escalation-3", "pagerduty"),
        ("critical", "email"),
        ("sla", "email"),
        ("security", "pagerduty"),
        ("security", "soc-webhook"),
    ] {
        assert!(
            tier(receiver).iter().any(|i| i == integration),
            "{receiver}: {:?}",
            tier(receiver)
        );
    }
    assert!(!tier("critical").iter().any(|i| i == "pagerduty"));
    // The security team pages on its own PagerDuty service.
    assert!(
        bundle.files["alertmanager/alertmanager.yaml"].contains("security-pagerduty-routing-key")
    );
    let rules = &bundle.files["prometheus/rules/telltale-escalation.yaml"];
    assert!(
        rules.contains("for: 15m") && rules.contains("for: 30m"),
        "{rules}"
    );
    for slo in ["availability", "latency", "errors"] {
        assert!(
            bundle
                .files
                .contains_key(&format!("prometheus/rules/telltale-slo-{slo}.yaml"))
        );
        assert!(bundle.files.contains_key(&format!(
            "prometheus/tests/telltale-slo-{slo}-alerts_test.yaml"
        )));
    }
    assert!(
        bundle.files["prometheus/rules/telltale-slo-availability.yaml"].contains("job=\"api\"")
    );
    assert!(
        bundle
            .plan
            .expectations
            .dashboards
            .contains(&"telltale-slo".to_string())
    );
    // A config points the SLOs at its own service.
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: production\n  sloSelector: 'job=\"checkout\"'\n";
    let custom = render_with("production", Some(config), &[]);
    assert!(custom.files["prometheus/rules/telltale-slo-errors.yaml"].contains("job=\"checkout\""));
}

/// The label sets every profile's alerts fire with (its promtool tests).
fn fired(bundle: &telltale::render::Bundle) -> Vec<alertmanager::Labels> {
    alertmanager::fired_alerts(
        files_with_prefix(bundle, "prometheus/tests/")
            .into_iter()
            .map(|(_, t)| t),
    )
}

#[test]
fn every_inhibition_works_on_the_labels_the_alerts_really_carry() {
    for profile in PROFILES {
        let bundle = render_profile(profile);
        let fired = fired(&bundle);
        let rules = alertmanager::inhibitions_for(&bundle.inhibitions, &fired);
        let problems = alertmanager::inhibition_problems(&rules, &fired);
        assert!(problems.is_empty(), "{profile}:\n{}", problems.join("\n"));
        let am = &bundle.files["alertmanager/alertmanager.yaml"];
        let rendered = am.matches("source_matchers").count();
        assert_eq!(rendered, rules.len(), "{profile}: {am}");
        // Every pair in routes-test.yaml is made of real label sets: the
        // source as it fires, the target as it fires for the same object.
        let spec = crate::common::routes_test(&bundle);
        for pair in spec["inhibitions"].as_array().unwrap() {
            let source: alertmanager::Labels =
                serde_json::from_value(pair["source"].clone()).unwrap();
            let mut source = source;
            source.remove("cluster");
            assert!(fired.contains(&source), "{profile}: {source:?} never fires");
        }
    }
    // Production has every seed pair.
    let production = render_profile("production");
    let names: Vec<String> =
        alertmanager::inhibitions_for(&production.inhibitions, &fired(&production))
            .into_iter()
            .map(|r| r.name)
            .collect();
    assert_eq!(names.len(), 5, "{names:?}");
}

#[test]
fn the_inhibition_lint_fails_when_an_alert_loses_the_label_a_pair_needs() {
    // v0.1's bug: pod alerts without `node`, HTTP alerts without the label
    // the service rule compares. Strip them from the real label sets.
    let production = render_profile("production");
    let declared = production.inhibitions.clone();
    let mut fired = fired(&production);
    for labels in &mut fired {
        if labels["alertname"] == "PodCrashLooping" {
            labels.remove("node");
        }
        if labels["alertname"] == "ServiceTargetsDown" {
            labels.remove("service");
        }
    }
    let problems = alertmanager::inhibition_problems(&declared, &fired);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("ServiceTargetsDown") && p.contains("`service`")),
        "{problems:#?}"
    );
    // PodCrashLooping without a node is no longer selected by the target
    // matchers (node=~".+"): the pair NodeDown → PodCrashLooping disappears.
    let node_rule = &declared[0];
    assert!(
        !node_rule
            .pairs(&fired)
            .iter()
            .any(|(_, t)| t["alertname"] == "PodCrashLooping")
    );
    // A rule whose matchers select nothing is reported too.
    let mut typo = declared[2].clone();
    typo.source[0].value = "PersistentVolumeFul".into();
    let problems = alertmanager::inhibition_problems(&[typo], &fired);
    assert!(
        problems.iter().any(|p| p.contains("select no alert")),
        "{problems:#?}"
    );
}

/// A healthy production cluster without the optional systems its plugins
/// watch: the StatsD exporter runs but no Airflow sends to it, the
/// postgres-exporter runs but no database is behind its DSN, no sachet pod.
/// Real Prometheus 3 evaluates the bundle's own rules (every `for:` at 0s, so
/// anything that could ever fire does) over those series: nothing critical
/// fires, and each absence is reported as the setup alert that says so.
#[test]
fn absent_optional_systems_never_page_on_a_healthy_production_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = render_profile("production");
    let cluster = crate::common::local::exporter(|_, _| {
        [
            r#"kube_node_info{job="kube-state-metrics",node="worker-1"} 1"#,
            r#"kube_node_status_condition{job="kube-state-metrics",node="worker-1",condition="Ready",status="true"} 1"#,
            r#"kube_node_status_condition{job="kube-state-metrics",node="worker-1",condition="Ready",status="false"} 0"#,
            r#"kube_node_status_condition{job="kube-state-metrics",node="worker-1",condition="Ready",status="unknown"} 0"#,
        ]
        .join("\n")
            + "\n"
    });
    // The StatsD exporter with nothing mapped yet: its own metrics only.
    let statsd = crate::common::local::exporter(|_, _| "statsd_exporter_build_info 1\n".into());
    let postgres = crate::common::local::exporter(|_, _| "pg_up 0\n".into());
    let prometheus = crate::common::local::rules_over(
        &bundle,
        dir.path(),
        &[
            ("kube-state-metrics", &cluster),
            ("airflow-statsd", &statsd),
            ("postgres-exporter", &postgres),
        ],
    );
    let setup = [
        "AirflowSchedulerNotReporting",
        "PostgreSQLNeverReached",
        "SMSBridgeMissing",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let mut seen_since: Option<std::time::Instant> = None;
    let alerts = loop {
        let alerts = crate::common::local::prometheus_alerts(&prometheus);
        let firing = |n: &str| {
            alerts
                .iter()
                .any(|a| a["labels"]["alertname"] == n && a["state"] == "firing")
        };
        if setup.iter().all(|n| firing(n)) {
            // A few more evaluations, so a slower rule has its say too.
            let since = *seen_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > std::time::Duration::from_secs(4) {
                break alerts;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 40 s the setup alerts {setup:?} are not all firing: {:#?}\n{}",
            alerts
                .iter()
                .map(|a| format!("{} {}", a["labels"]["alertname"], a["state"]))
                .collect::<Vec<_>>(),
            prometheus.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let critical: Vec<String> = alerts
        .iter()
        .filter(|a| a["labels"]["severity"] == "critical")
        .map(|a| {
            format!(
                "{} {} {}",
                a["labels"]["alertname"], a["state"], a["labels"]
            )
        })
        .collect();
    assert!(
        critical.is_empty(),
        "critical alerts on a healthy cluster whose optional systems are absent:\n{}",
        critical.join("\n")
    );
    for a in &alerts {
        eprintln!(
            "{} {} ({})",
            a["labels"]["alertname"], a["state"], a["labels"]["severity"]
        );
    }
}

/// The typed data a bundle carries is what its files hold: every object
/// `up` applies is the parse of its manifest file, every release's values
/// the parse of its values file, the routing cases the parse of
/// routes-test.yaml; and a bundle read back from a written tree
/// (`verify --bundle`) has the same typed data as the render.
#[test]
fn typed_objects_values_and_routes_are_what_the_files_hold() {
    for profile in PROFILES {
        let bundle = render_profile(profile);
        let applied: std::collections::BTreeSet<&String> = bundle
            .plan
            .phases
            .iter()
            .flat_map(|p| &p.steps)
            .filter_map(|s| match s {
                telltale::render::plan::Step::Apply { file, .. } => Some(file),
                _ => None,
            })
            .collect();
        assert_eq!(
            applied,
            bundle.objects.keys().collect(),
            "{profile}: an object per apply step"
        );
        for (file, object) in &bundle.objects {
            let parsed: Value = serde_saphyr::from_str(&bundle.files[file]).unwrap();
            assert_eq!(object.value, parsed, "{profile}: {file}");
            assert!(!object.api_version().is_empty(), "{profile}: {file}");
        }
        for release in &bundle.plan.releases {
            let parsed: Value = serde_saphyr::from_str(&bundle.files[&release.values]).unwrap();
            assert_eq!(bundle.values[&release.values], parsed, "{profile}");
        }
        let routes: telltale::render::RoutesTest =
            serde_saphyr::from_str(&bundle.files["alertmanager/routes-test.yaml"]).unwrap();
        assert_eq!(routes, bundle.routes, "{profile}");
        assert!(!routes.cases.is_empty(), "{profile}");

        let read = telltale::render::Bundle::from_files(
            bundle.files.clone(),
            serde_json::from_str(&bundle.plan_json).unwrap(),
            bundle.plan_json.clone(),
        )
        .unwrap();
        assert_eq!(read.routes, bundle.routes, "{profile}");
        assert_eq!(read.objects, bundle.objects, "{profile}");
        assert_eq!(read.values, bundle.values, "{profile}");
        assert_eq!(read.plan.phases, bundle.plan.phases, "{profile}");
    }
}
