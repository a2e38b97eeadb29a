//! Issue 8: the built-in plugins of every seed system, the authoring loop
//! (new → lint), plugins wired into the profiles, and executable plugins.

use std::path::Path;

use crate::common::*;
use assert_cmd::Command;
use serde_json::Value;

/// Every plugin the issues name (issue 8; remote-write and the hub's: issue 21).
const ISSUE_PLUGINS: [&str; 22] = [
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
    "mimir",
    "thanos",
    "thanos-sidecar",
    "loki-scalable",
    "fleet",
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

/// Each plugin the issues name is a built-in plugin directory, which
/// `cli::every_builtin_plugin_lints_clean` lints (schema, render in the
/// lint profile, promtool, amtool, runbooks and tests): linting them here
/// again ran the same 22 lints twice.
#[test]
fn each_issue_plugin_is_a_builtin_directory_the_lint_covers() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    for name in ISSUE_PLUGINS {
        assert!(
            plugins.join(name).join("plugin.yaml").is_file(),
            "{name} is not a plugin directory under {}",
            plugins.display()
        );
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

/// Renders `profile` with the built-in catalogue plus the plugins under
/// `plugin_dir`.
fn render_with_plugins(plugin_dir: &Path, profile: &str, config: &str) -> telltale::render::Bundle {
    let catalog = telltale::catalog::Catalog::load(&[plugin_dir.to_path_buf()])
        .expect("the catalogue with the test plugins loads");
    let request = telltale::render::Request {
        config: Some(telltale::model::Source::new("test-config.yaml", config)),
        profile: Some(profile.to_string()),
        ..Default::default()
    };
    telltale::render::render(&catalog, &request).unwrap_or_else(|e| panic!("renders: {e}"))
}

fn secret_step(bundle: &telltale::render::Bundle, name: &str) -> Option<Value> {
    bundle
        .plan
        .phases
        .iter()
        .flat_map(|p| &p.steps)
        .map(|s| serde_json::to_value(s).unwrap())
        .find(|s| s["action"] == "secret" && s["name"] == name)
}

/// A bridge of another vendor, written only as plugin data: its
/// `alerting/` template sees the receivers that text, its Secret carries
/// the integration's token, plan warns while SMS is not configured, and
/// `datasources: [postgres]` brings the left-out-panels warning to a
/// profile whose own plugins do not ask for it. Nothing in render/ knows it.
#[test]
fn a_new_bridge_plugin_is_plugin_data_only() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("sms-relay");
    std::fs::create_dir_all(plugin.join("alerting")).unwrap();
    std::fs::write(
        plugin.join("plugin.yaml"),
        "apiVersion: telltale.dev/v1alpha1\nkind: Plugin\nmetadata: {name: sms-relay, version: 0.1.0, description: test bridge}\nspec:\n  phase: alerting\n  requires: [kube-prometheus-stack]\n  bridge:\n    integration: sms\n    secrets: [{path: twilio.authToken, key: relay-token}]\n    unconfigured: nothing is texted\n    url: 'http://relay.{namespace}.svc:8080/send'\n  datasources: [postgres]\n",
    )
    .unwrap();
    std::fs::write(
        plugin.join("alerting/relay.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: relay, namespace: \"{{ namespace }}\"}\ndata:\n  receivers: \"{% if alerting.sms is defined %}{% for r in alerting.sms.receivers %}{{ r.name }}={{ r.to | join(',') }};{% endfor %}{% endif %}\"\n",
    )
    .unwrap();
    let base = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: kind\n  plugins: {sms-relay: {enabled: true}}\n";
    let sms = "  alerting:\n    receivers:\n      sms: {to: ['+15550100'], twilio: {accountSid: AC1, from: '+15550199', authToken: {env: RELAY_TOKEN}}}\n";

    let configured = render_with_plugins(dir.path(), "kind", &format!("{base}{sms}"));
    let config_map = &configured.files["manifests/07-alerting/ConfigMap_monitoring_relay.yaml"];
    assert!(
        config_map.contains("receivers: critical=+15550100;"),
        "{config_map}"
    );
    // Alertmanager posts the sms webhook to the enabled bridge, not to the
    // built-in catalogue's sachet.
    assert_eq!(
        sms_webhooks(&configured),
        ["http://relay.monitoring.svc:8080/send"]
    );
    let step = secret_step(&configured, "telltale-sms-relay").expect("the bridge's Secret");
    assert_eq!(step["keys"][0]["key"], "relay-token");
    assert_eq!(step["keys"][0]["source"], "env:RELAY_TOKEN");
    assert!(
        !configured
            .plan
            .warnings
            .iter()
            .any(|w| w.contains("nothing is texted")),
        "{:#?}",
        configured.plan.warnings
    );
    // The postgres datasource is not configured and this plugin is shown
    // through it: kind's infrastructure dashboard loses its drift panels.
    assert!(
        configured.plan.warnings.iter().any(|w| w.starts_with(
            "the PostgreSQL panels of dashboard telltale-infrastructure are left out"
        )),
        "{:#?}",
        configured.plan.warnings
    );
    assert!(
        !render_profile("kind")
            .plan
            .warnings
            .iter()
            .any(|w| w.contains("PostgreSQL panels")),
        "kind alone has no plugin shown through postgres"
    );

    let unconfigured = render_with_plugins(dir.path(), "kind", base);
    assert!(
        unconfigured.plan.warnings.iter().any(|w| w
            == "plugin sms-relay is enabled but alerting.receivers.sms is not configured: nothing is texted"),
        "{:#?}",
        unconfigured.plan.warnings
    );
    assert!(secret_step(&unconfigured, "telltale-sms-relay").is_none());
}

/// The URLs of the critical receiver's webhooks (where `sms` posts).
fn sms_webhooks(bundle: &telltale::render::Bundle) -> Vec<String> {
    let am: Value =
        serde_saphyr::from_str(&bundle.files["alertmanager/alertmanager.yaml"]).unwrap();
    let critical = am["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "critical")
        .expect("a critical receiver")
        .clone();
    critical["webhook_configs"]
        .as_array()
        .map(|w| {
            w.iter()
                .map(|w| w["url"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Where `sms` posts without a `bridgeUrl`: the bridging plugin's
/// `spec.bridge.url` (sachet's, data in plugins/sachet/plugin.yaml), with a
/// warning when that plugin is not enabled; the site's `bridgeUrl` wins
/// without one; with no bridging plugin at all the webhook is left out.
#[test]
fn sms_posts_to_the_bridging_plugins_url_unless_the_config_names_one() {
    let config = |extra: &str| {
        format!(
            "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {{name: t}}\nspec:\n  profile: kind\n  alerting:\n    receivers:\n      sms: {{to: ['+15550100'], twilio: {{accountSid: AC1, from: '+15550199', authToken: {{env: T}}}}{extra}}}\n"
        )
    };
    // sachet's URL as its plugin.yaml gives it, in kind's namespace.
    let builtin = telltale::catalog::Catalog::load(&[]).expect("the catalogue loads");
    let sachet = builtin.plugins["sachet"]
        .plugin
        .spec
        .bridge
        .as_ref()
        .expect("sachet bridges sms");
    let url = sachet
        .url
        .as_deref()
        .expect("sachet's plugin.yaml names its url");
    let url = url.replace("{namespace}", "monitoring");
    let bundle = render_with("kind", Some(&config("")), &[]);
    assert_eq!(sms_webhooks(&bundle), [url.as_str()]);
    assert!(
        bundle.plan.warnings.iter().any(|w| *w
            == format!("alerting.receivers.sms posts to {url}, the service of plugin sachet, which is not enabled: enable it (spec.plugins.sachet.enabled: true) or set alerting.receivers.sms.bridgeUrl")),
        "{:#?}",
        bundle.plan.warnings
    );

    let own = render_with(
        "kind",
        Some(&config(", bridgeUrl: 'https://sms.corp.test/alert'")),
        &[],
    );
    assert_eq!(sms_webhooks(&own), ["https://sms.corp.test/alert"]);
    assert!(
        !own.plan
            .warnings
            .iter()
            .any(|w| w.contains("receivers.sms")),
        "{:#?}",
        own.plan.warnings
    );

    // A catalogue in which no plugin bridges sms with a URL (sachet's
    // taken out): nothing to post to, said.
    let mut catalog = telltale::catalog::Catalog::load(&[]).expect("the catalogue loads");
    let bridge = catalog
        .plugins
        .get_mut("sachet")
        .expect("sachet is built in");
    let bridge = bridge
        .plugin
        .spec
        .bridge
        .as_mut()
        .expect("sachet bridges sms");
    assert!(
        bridge.url.take().is_some(),
        "sachet's plugin.yaml names its url"
    );
    let request = telltale::render::Request {
        config: Some(telltale::model::Source::new("test-config.yaml", config(""))),
        profile: Some("kind".to_string()),
        ..Default::default()
    };
    let none = telltale::render::render(&catalog, &request).expect("renders");
    assert!(sms_webhooks(&none).is_empty(), "{:?}", sms_webhooks(&none));
    assert!(
        none.plan.warnings.iter().any(|w| w
            == "alerting.receivers.sms has no bridgeUrl and no plugin bridges sms (plugin.yaml spec.bridge.url): no SMS will be sent"),
        "{:#?}",
        none.plan.warnings
    );
}

#[test]
fn a_bridge_url_is_a_webhook_url_with_only_the_namespace_placeholder() {
    for (url, why, says) in [
        (
            "sachet:9876",
            "no scheme",
            "expected an http:// or https:// URL",
        ),
        (
            "http://user:CANARY-pw@sachet.{namespace}.svc/alert",
            "credentials",
            "looks like a URL with a password",
        ),
        (
            "http://sachet.{cluster}.svc/alert",
            "another placeholder",
            "has a placeholder telltale does not fill",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("sms-relay");
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::write(
            plugin.join("plugin.yaml"),
            format!("apiVersion: telltale.dev/v1alpha1\nkind: Plugin\nmetadata: {{name: sms-relay, version: 0.1.0, description: test bridge}}\nspec:\n  phase: alerting\n  bridge:\n    integration: sms\n    unconfigured: nothing is texted\n    url: '{url}'\n"),
        )
        .unwrap();
        let e = telltale::catalog::Catalog::load(&[dir.path().to_path_buf()]).expect_err(why);
        let shown = format!("{e} {e:?} {:?}", e.hint());
        assert!(shown.contains("plugin.yaml:9:"), "{why}: {shown}");
        assert!(shown.contains("spec.bridge.url"), "{why}: {shown}");
        assert!(shown.contains(says), "{why}: {shown}");
        assert!(
            !shown.contains("CANARY"),
            "{why}: the credential is echoed: {shown}"
        );
    }
}

#[test]
fn a_bridge_names_only_secrets_its_integration_has() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("sms-relay");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(
        plugin.join("plugin.yaml"),
        "apiVersion: telltale.dev/v1alpha1\nkind: Plugin\nmetadata: {name: sms-relay, version: 0.1.0, description: test bridge}\nspec:\n  phase: alerting\n  bridge:\n    integration: sms\n    secrets: [{path: twilio.authtoken, key: token}]\n    unconfigured: nothing is texted\n",
    )
    .unwrap();
    let e = telltale::catalog::Catalog::load(&[dir.path().to_path_buf()])
        .expect_err("an unknown secret path is refused");
    let shown = format!("{e} {:?}", e.hint());
    assert!(shown.contains("plugin.yaml:8:"), "{shown}");
    assert!(
        shown.contains("`twilio.authtoken` is not a secret of alerting.receivers.sms"),
        "{shown}"
    );
    assert!(
        shown.contains("did you mean `twilio.authToken`?"),
        "{shown}"
    );
}

/// sachet's config (its alerting/ template over the `alerting.sms` view):
/// one receiver per Alertmanager receiver that texts, each escalation level
/// with its own numbers, the token a placeholder.
#[test]
fn sachet_texts_each_escalation_level_with_its_numbers() {
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: production\n  alerting:\n    receivers:\n      sms: {to: ['+15550100'], twilio: {accountSid: AC1, from: '+15550199', authToken: {env: TWILIO_AUTH_TOKEN}}}\n    escalation:\n      policy: levels\n      levels:\n        - {after: 0s, notify: [slack, sms]}\n        - {after: 15m, notify: [slack], slackChannel: '#second'}\n        - {after: 30m, notify: [sms], smsTo: ['+15550111']}\n";
    let bundle = render_with("production", Some(config), &[]);
    let object: Value = serde_saphyr::from_str(
        &bundle.files["manifests/07-alerting/ConfigMap_monitoring_telltale-sachet-config.yaml"],
    )
    .unwrap();
    let sachet: Value =
        serde_saphyr::from_str(object["data"]["config.yaml.tmpl"].as_str().unwrap()).unwrap();
    assert_eq!(
        sachet,
        serde_json::json!({
            "providers": {"twilio": {"account_sid": "AC1", "auth_token": "${TWILIO_AUTH_TOKEN}"}},
            "receivers": [
                {"name": "critical", "provider": "twilio", "to": ["+15550100"], "from": "+15550199"},
                {"name": "escalation-3", "provider": "twilio", "to": ["+15550111"], "from": "+15550199"},
            ],
        })
    );
    let step = secret_step(&bundle, "telltale-sachet").expect("sachet's Secret");
    assert_eq!(step["keys"][0]["key"], "twilio-auth-token");
    assert_eq!(step["keys"][0]["source"], "env:TWILIO_AUTH_TOKEN");
}

/// The config's PostgreSQL datasource reaches Grafana as core objects (a
/// provisioning ConfigMap naming an environment variable, the password's
/// Secret) and kube-prometheus-stack's own overlay, which sets that
/// variable from the Secret beside grafana-oidc's.
#[test]
fn the_postgres_datasource_password_reaches_grafana_from_its_secret() {
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: homelab\n  plugins:\n    grafana-oidc: {values: {issuer: 'https://sso.corp.test', rootUrl: 'https://grafana.corp.test', clientSecret: {env: OIDC_SECRET}}}\n  grafana:\n    datasources:\n      postgres: {host: 'db.ml.svc:5432', database: results, user: reader, password: {secretRef: {name: grafana-postgres, key: password}}}\n";
    let bundle = render_with("homelab", Some(config), &[]);
    let values: Value =
        serde_saphyr::from_str(&bundle.files["helm/kube-prometheus-stack/values.yaml"]).unwrap();
    let env = &values["grafana"]["envValueFrom"];
    assert_eq!(
        env["TELLTALE_POSTGRES_PASSWORD"],
        serde_json::json!({"secretKeyRef": {"name": "telltale-grafana-postgres", "key": "password"}}),
        "{env:#}"
    );
    assert_eq!(
        env["GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET"]["secretKeyRef"]["name"],
        "telltale-grafana-oidc"
    );
    let provisioning: Value = serde_saphyr::from_str(
        &bundle.files["manifests/08-dashboards/ConfigMap_monitoring_telltale-datasource-postgres.yaml"],
    )
    .unwrap();
    let file: Value =
        serde_saphyr::from_str(provisioning["data"]["postgres.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        file["datasources"][0]["secureJsonData"]["password"],
        "$TELLTALE_POSTGRES_PASSWORD"
    );
    let step = secret_step(&bundle, "telltale-grafana-postgres").expect("the password's Secret");
    assert_eq!(
        step["keys"][0]["source"],
        "secretRef:grafana-postgres/password"
    );
    // Without the datasource the overlay is empty: no variable, no Secret.
    let bare = render_profile("homelab");
    let values: Value =
        serde_saphyr::from_str(&bare.files["helm/kube-prometheus-stack/values.yaml"]).unwrap();
    assert!(values["grafana"]["envValueFrom"]["TELLTALE_POSTGRES_PASSWORD"].is_null());
    assert!(secret_step(&bare, "telltale-grafana-postgres").is_none());
}
