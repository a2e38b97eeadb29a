//! Issue 8: the built-in plugins of every seed system, the authoring loop
//! (new → lint), plugins wired into the profiles, and executable plugins.

use std::path::Path;

use crate::common::*;
use assert_cmd::Command;
use serde_json::Value;

/// Every plugin the issues name (issue 8; remote-write: issue 21).
const ISSUE_PLUGINS: [&str; 17] = [
    "node-textfile",
    "speedtest-exporter",
    "postgres-exporter",
    "kafka-exporter",
    "elasticsearch-exporter",
    "blackbox-exporter",
    "cert-manager",
    "airflow",
    "robusta",
    "sachet",
    "prometheus-adapter",
    "keda",
    "k6",
    "grafana-oidc",
    "loki-s3",
    "data-services",
    "remote-write",
];

fn with_tools(cmd: &mut Command) -> &mut Command {
    cmd.env("PATH", std::env::var_os("PATH").unwrap())
}

#[test]
fn plugins_list_json_names_every_plugin_of_the_issue() {
    let dir = tempfile::tempdir().unwrap();
    let output = telltale(dir.path())
        .args(["plugins", "list", "-o", "json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let v: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ISSUE_PLUGINS {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn each_issue_plugin_lints_clean_from_its_directory() {
    require_tool("promtool");
    require_tool("amtool");
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let dir = tempfile::tempdir().unwrap();
    for name in ISSUE_PLUGINS {
        let output = with_tools(&mut telltale(dir.path()))
            .args(["plugins", "lint"])
            .arg(plugins.join(name))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("render in profile kind"), "{stdout}");
    }
}

#[test]
fn plugins_new_demo_in_an_empty_directory_then_lint_exits_0() {
    require_tool("promtool");
    require_tool("amtool");
    let dir = tempfile::tempdir().unwrap();
    telltale(dir.path())
        .args(["plugins", "new", "demo"])
        .assert()
        .success();
    with_tools(&mut telltale(dir.path()))
        .args(["plugins", "lint", "demo"])
        .assert()
        .code(0);
    // And `--plugin-dir` makes it a plugin a profile can enable.
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: kind\n  plugins: {demo: {enabled: true}}\n";
    std::fs::write(dir.path().join("telltale.yaml"), config).unwrap();
    let output = telltale(dir.path())
        .args(["plan", "--plugin-dir", "demo", "--out", "out", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("out/prometheus/rules/demo.yaml").is_file());
}

#[test]
fn the_authoring_guide_example_lints_clean() {
    require_tool("promtool");
    require_tool("amtool");
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/plugins.md"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("redis-exporter");
    for file in [
        "plugin.yaml",
        "values.yaml",
        "rules/telltale-redis.yaml",
        "tests/telltale-redis_test.yaml",
        "runbooks/REDIS_DOWN.md",
    ] {
        // The first fenced block after the file's heading is its content.
        let heading = guide.find(&format!("### {file}\n")).expect(file);
        let open = heading + guide[heading..].find("```").unwrap();
        let start = open + guide[open..].find('\n').unwrap() + 1;
        let end = start + guide[start..].find("\n```\n").unwrap();
        let path = plugin.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{}\n", &guide[start..end])).unwrap();
    }
    with_tools(&mut telltale(dir.path()))
        .args(["plugins", "lint", "redis-exporter"])
        .assert()
        .code(0);
}

#[test]
fn lint_fails_on_a_runbook_without_its_sections_and_on_a_plugin_that_does_not_render() {
    require_tool("promtool");
    require_tool("amtool");
    let dir = tempfile::tempdir().unwrap();
    telltale(dir.path())
        .args(["plugins", "new", "demo"])
        .assert()
        .success();
    std::fs::write(
        dir.path().join("demo/runbooks/DEMO_DOWN.md"),
        "# RUNBOOK: DEMO_DOWN\n\nRestart it.\n",
    )
    .unwrap();
    let plugin = dir.path().join("demo/plugin.yaml");
    let text = std::fs::read_to_string(&plugin).unwrap().replace(
        "  phase: exporters\n",
        "  phase: exporters\n  requires: [no-such-plugin]\n",
    );
    std::fs::write(&plugin, text).unwrap();
    let output = with_tools(&mut telltale(dir.path()))
        .args(["plugins", "lint", "demo"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("runbooks/DEMO_DOWN.md: no `## Detection` section"),
        "{stdout}"
    );
    assert!(
        stdout.contains("does not render in profile kind"),
        "{stdout}"
    );
}

#[test]
fn every_profile_plans_with_its_plugins_and_names_them() {
    let expected: [(&str, &[&str]); 4] = [
        (
            "homelab",
            &["node-textfile", "speedtest-exporter", "robusta"],
        ),
        (
            "data-platform",
            &[
                "postgres-exporter",
                "kafka-exporter",
                "elasticsearch-exporter",
                "data-services",
                "blackbox-exporter",
            ],
        ),
        (
            "production",
            &["blackbox-exporter", "cert-manager", "sachet"],
        ),
        ("ml-slo", &["keda", "k6"]),
    ];
    for (profile, plugins) in expected {
        let bundle = render_profile(profile);
        let enabled: Vec<&str> = bundle
            .plan
            .plugins
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        for p in plugins {
            assert!(enabled.contains(p), "{profile}: {p} not in {enabled:?}");
        }
    }
}

#[test]
fn sachet_is_the_sms_bridge_of_the_critical_tier_and_never_holds_the_token() {
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: production\n  alerting:\n    receivers:\n      sms: {to: ['+15550100'], twilio: {accountSid: AC1, from: '+15550199', authToken: {env: CANARY_TWILIO_TOKEN}}}\n";
    let bundle = render_with("production", Some(config), &[]);
    let am = &bundle.files["alertmanager/alertmanager.yaml"];
    assert!(
        am.contains("url: http://sachet.monitoring.svc:9876/alert"),
        "{am}"
    );
    let service = &bundle.files["manifests/07-alerting/Service_monitoring_sachet.yaml"];
    assert!(service.contains("port: 9876"), "{service}");
    let config_map =
        &bundle.files["manifests/07-alerting/ConfigMap_monitoring_telltale-sachet-config.yaml"];
    assert!(
        config_map.contains("auth_token: ${TWILIO_AUTH_TOKEN}"),
        "{config_map}"
    );
    assert!(config_map.contains("name: critical"), "{config_map}");
    // The token's source is a secret step; its name, not a value, is all the bundle knows.
    let step = bundle
        .plan
        .phases
        .iter()
        .flat_map(|p| &p.steps)
        .map(|s| serde_json::to_value(s).unwrap())
        .find(|s| s["name"] == "telltale-sachet")
        .expect("a secret step for sachet");
    assert_eq!(step["keys"][0]["key"], "twilio-auth-token");
    assert_eq!(step["keys"][0]["source"], "env:CANARY_TWILIO_TOKEN");
}

#[test]
fn robusta_receives_every_alert_before_its_tier() {
    let bundle = render_profile("homelab");
    let cases = routes_test(&bundle);
    for case in cases["cases"].as_array().unwrap() {
        assert_eq!(case["receivers"][0], "robusta", "{case}");
    }
    let am = &bundle.files["alertmanager/alertmanager.yaml"];
    assert!(am.contains("http://robusta-runner.monitoring.svc.cluster.local/api/alerts"));
    // Without robusta the tiers are first.
    let production = routes_test(&render_profile("production"));
    assert_eq!(production["cases"][0]["receivers"][0], "critical");
}

#[test]
fn keda_and_prometheus_adapter_cannot_serve_external_metrics_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: ml-slo\n  plugins: {prometheus-adapter: {enabled: true}}\n";
    std::fs::write(dir.path().join("telltale.yaml"), config).unwrap();
    let output = telltale(dir.path()).arg("plan").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be enabled together"));
    // Swapping them is the documented way to get the seed's adapter.
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: ml-slo\n  plugins: {prometheus-adapter: {enabled: true}, keda: {enabled: false}}\n";
    let bundle = render_with("ml-slo", Some(config), &[]);
    let ex = &bundle.plan.expectations;
    assert_eq!(
        ex.external_metrics,
        ["model_latency_p95_seconds", "model_requests_per_second"]
    );
    assert_eq!(ex.hpas[0].name, "model-server");
}

#[test]
fn ml_slo_expects_external_metrics_an_hpa_and_a_load_that_moves_the_model_series() {
    let bundle = render_profile("ml-slo");
    let ex = &bundle.plan.expectations;
    assert_eq!(ex.external_metrics, ["s0-prometheus", "s1-prometheus"]);
    assert_eq!(ex.hpas[0].name, "keda-hpa-model-server");
    let load = ex.load.as_ref().expect("k6 declares the load");
    assert!(load.url.starts_with("http://model-server."));
    assert!(load.moves.iter().any(|q| q.contains("http_requests_total")));
    assert!(
        load.moves
            .iter()
            .any(|q| q.contains("histogram_quantile(0.95"))
    );
    let script =
        &bundle.files["manifests/06-exporters/ConfigMap_monitoring_telltale-k6-script.yaml"];
    for var in ["TARGET_URL", "RATE", "DURATION"] {
        assert!(script.contains(&format!("__ENV.{var}")), "{var}");
    }

    // In another namespace, verify looks for the HPA and sends the load there.
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  namespace: obs\n";
    let bundle = render_with("ml-slo", Some(config), &[]);
    let ex = &bundle.plan.expectations;
    assert_eq!(ex.hpas[0].namespace, "obs");
    let load = ex.load.as_ref().unwrap();
    assert_eq!(
        load.url,
        "http://model-server.obs.svc.cluster.local:9898/delay/1"
    );
    assert_eq!(load.hpa.as_deref(), Some("obs/keda-hpa-model-server"));
}

#[test]
fn plugin_secrets_reach_only_secret_steps() {
    // Canary env names: a source is a name, never a value, and it lands in a secret
    // step of plan.json, never in a values file or a manifest.
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: homelab\n  plugins:\n    robusta: {values: {slackApiKey: {env: CANARY_SLACK}}}\n    grafana-oidc: {values: {issuer: 'https://sso.corp.test', rootUrl: 'https://grafana.corp.test', clientSecret: {env: CANARY_OIDC}}}\n    loki-s3: {values: {endpoint: 'https://s3.corp.test', secretAccessKey: {env: CANARY_S3}}}\n";
    let bundle = render_with("homelab", Some(config), &[]);
    for (path, text) in &bundle.files {
        assert!(!text.contains("CANARY_"), "{path} names a secret source");
    }
    let sources: Vec<String> = bundle
        .plan
        .phases
        .iter()
        .flat_map(|p| &p.steps)
        .map(|s| serde_json::to_value(s).unwrap())
        .flat_map(|s| s["keys"].as_array().cloned().unwrap_or_default())
        .map(|k| k["source"].as_str().unwrap_or_default().to_string())
        .collect();
    for canary in ["env:CANARY_SLACK", "env:CANARY_OIDC", "env:CANARY_S3"] {
        assert!(
            sources.iter().any(|s| s == canary),
            "{canary} in {sources:?}"
        );
    }
    let literal = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: homelab\n  plugins: {grafana-oidc: {values: {clientSecret: canary-literal-secret}}}\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("telltale.yaml"), literal).unwrap();
    let output = telltale(dir.path()).arg("plan").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("a literal secret is not allowed"),
        "{stderr}"
    );
    assert!(!stderr.contains("canary-literal-secret"), "{stderr}");
}

#[cfg(unix)]
fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(unix)]
#[test]
fn an_executable_on_path_runs_as_a_subcommand_with_telltale_set() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    script(
        &bin,
        "telltale-hello",
        r#"echo "args: $*"; echo "telltale: $TELLTALE"; exit 7"#,
    );
    let output = telltale(dir.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .args(["hello", "a", "--flag", "b"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7), "the plugin's exit code");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("args: a --flag b"), "{stdout}");
    let me = assert_cmd::cargo::cargo_bin("telltale");
    assert!(
        stdout.contains(&format!("telltale: {}", me.display())),
        "{stdout}"
    );
    // A typo of the plugin or of a built-in gets a did-you-mean and exit 2.
    for (typo, hint) in [("helo", "hello"), ("plna", "plan")] {
        let output = telltale(dir.path())
            .env("PATH", bin.display().to_string())
            .arg(typo)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{typo}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("unknown command `{typo}`")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("did you mean `{hint}`?")),
            "{stderr}"
        );
    }
    // A file that is not executable is not a plugin.
    std::fs::write(bin.join("telltale-inert"), "#!/bin/sh\necho no\n").unwrap();
    let output = telltale(dir.path())
        .env("PATH", bin.display().to_string())
        .arg("inert")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// Inhibit rules are plugin data: a plugin declares the ones its alerts are
/// the source of. A matcher Alertmanager would refuse stops `plan` with the
/// file and key path; a rule that selects none of the plugin's alerts (a
/// typo in an alert name) fails `plugins lint` instead of vanishing.
#[test]
fn a_plugins_inhibitions_are_checked_where_they_are_declared() {
    require_tool("promtool");
    require_tool("amtool");
    let dir = tempfile::tempdir().unwrap();
    telltale(dir.path())
        .args(["plugins", "new", "demo"])
        .assert()
        .success();
    let plugin = dir.path().join("demo/plugin.yaml");
    let original = std::fs::read_to_string(&plugin).unwrap();
    let with_rule = |source: &str| {
        format!(
            "{original}  inhibitions:\n    - name: a down demo silences its pods\n      source: ['{source}']\n      target: ['pod=~\".+\"']\n      equal: [cluster, namespace]\n"
        )
    };
    std::fs::write(&plugin, with_rule("alertname=~\"(Demo\"")).unwrap();
    let output = telltale(dir.path())
        .args([
            "plan",
            "--profile",
            "kind",
            "--plugin-dir",
            "demo",
            "--out",
            "out",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("plugin.yaml"), "{stderr}");
    assert!(stderr.contains("inhibitions"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing written");

    std::fs::write(&plugin, with_rule("alertname=\"DemoDwn\"")).unwrap();
    let output = with_tools(&mut telltale(dir.path()))
        .args(["plugins", "lint", "demo"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(
            "inhibition `a down demo silences its pods`: its source matchers select no alert"
        ),
        "{stdout}"
    );
}

/// What users read (profiles, plugins, runbooks, every rendered bundle)
/// says what a thing does, never which internal requirement document asked
/// for it: that traceability lives in docs/ only.
#[test]
fn product_text_never_cites_the_requirement_documents() {
    let citation = regex::Regex::new(r"(?i)\bseeds?\b").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = ["profiles", "plugins", "runbooks"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if citation.is_match(line) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(files > 100, "the content was read ({files} files)");
    for profile in PROFILES {
        for (path, text) in &render_profile(profile).files {
            for (n, line) in text.lines().enumerate() {
                if citation.is_match(line) {
                    found.push(format!(
                        "{profile} bundle {path}:{}: {}",
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "cites the requirement documents:\n{}",
        found.join("\n")
    );
}

/// HTTP-service scaling triggers, as the keda plugin's preset for a service
/// the config names: one ScaledObject with each trigger at its
/// threshold, its PromQL on the service's own selector.
#[test]
fn the_http_service_autoscaling_preset_scales_a_named_service_on_its_triggers() {
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: production\n  plugins:\n    keda:\n      enabled: true\n      values:\n        services:\n          - {name: checkout, namespace: shop, selector: 'job=\"checkout\"', minReplicas: 2, maxReplicas: 8}\n";
    let bundle = render_with("production", Some(config), &[]);
    let text = &bundle.files["manifests/09-autoscaling/ScaledObject_shop_checkout.yaml"];
    let so: Value = serde_saphyr::from_str(text).unwrap();
    assert_eq!(so["spec"]["scaleTargetRef"]["name"], "checkout");
    assert_eq!(so["spec"]["minReplicaCount"], 2);
    assert_eq!(so["spec"]["maxReplicaCount"], 8);
    let triggers = so["spec"]["triggers"].as_array().unwrap();
    let by_type = |ty: &str, name: Option<&str>| {
        triggers
            .iter()
            .find(|t| t["type"] == ty && name.is_none_or(|n| t["name"] == n))
            .unwrap_or_else(|| panic!("trigger {ty} {name:?} in {triggers:?}"))
    };
    // > 100 req/min, p95 > 5 s, errors > 1 %, CPU > 70 %, memory > 80 %.
    let cases = [
        (
            by_type("prometheus", Some("requests-per-minute")),
            "AverageValue",
            "100",
        ),
        (by_type("prometheus", Some("p95-seconds")), "Value", "5"),
        (by_type("prometheus", Some("error-ratio")), "Value", "0.01"),
    ];
    for (t, metric_type, threshold) in cases {
        assert_eq!(t["metricType"], metric_type, "{t}");
        assert_eq!(t["metadata"]["threshold"], threshold, "{t}");
        let query = t["metadata"]["query"].as_str().unwrap();
        assert!(query.contains(r#"job="checkout""#), "{query}");
        promql_parser::parser::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    }
    for (ty, value) in [("cpu", "70"), ("memory", "80")] {
        let t = by_type(ty, None);
        assert_eq!(t["metricType"], "Utilization");
        assert_eq!(t["metadata"]["value"], value);
    }
    // Without services, no preset object.
    let plain = render_profile("ml-slo");
    assert!(
        !plain
            .files
            .keys()
            .any(|k| k.contains("ScaledObject") && !k.ends_with("_model-server.yaml")),
        "only the model server's ScaledObject"
    );
}
