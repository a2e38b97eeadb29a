//! Property tests of the parsers that take user input: the config, the
//! profile, the plugin manifest (with its values and templates) and `--set`.
//! Whatever the text, they return a value or an error — never panic — and
//! do so quickly. The case count is bounded so this runs in the normal
//! `cargo test` (PROPTEST_CASES raises it for a longer fuzzing run).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use telltale::catalog::{Tree, load_plugin};
use telltale::model::document::parse_document;
use telltale::model::{Config, Kind, Profile, Source};
use telltale::render::{Request, render, values::parse_set};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// Text that looks like YAML often enough to reach deep into the parsers.
fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("apiVersion: telltale.dev/v1alpha1\n".to_string()),
        Just("kind: Config\n".to_string()),
        Just("kind: Profile\n".to_string()),
        Just("metadata:\n  name: t\n".to_string()),
        Just("spec:\n".to_string()),
        Just("  profile: kind\n".to_string()),
        Just("  namespace: ../x\n".to_string()),
        Just(
            "  slos:\n    - name: a\n      objective: 100\n      errors: e\n      total: t\n"
                .to_string()
        ),
        Just("  alerting:\n    businessHours: {start: '25:00', timezone: Nowhere}\n".to_string()),
        Just("  set:\n    loki:\n      a.b: -3\n".to_string()),
        Just("  plugins:\n    loki: {values: {x: [1, {y: z}]}}\n".to_string()),
        Just("&a [*a]\n".to_string()),
        Just("{{ namespace }}".to_string()),
        Just("\t".to_string()),
        "[ -~]{0,40}\n",
        "[\\[\\]{}:,&*!|>'\"%@` \n-]{0,20}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{what} took {:?}",
        started.elapsed()
    );
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn config_parser_never_panics(text in yamlish()) {
        let source = Source::new("c.yaml", text);
        let _ = bounded("config", || parse_document::<Config>(&source, Kind::Config));
    }

    #[test]
    fn profile_parser_never_panics(text in yamlish()) {
        let source = Source::new("p.yaml", text);
        let _ = bounded("profile", || parse_document::<Profile>(&source, Kind::Profile));
    }

    #[test]
    fn any_config_renders_or_fails_cleanly(text in yamlish()) {
        let catalog = crate::common::catalog();
        let request = Request {
            config: Some(Source::new("c.yaml", text)),
            ..Request::default()
        };
        let _ = bounded("render", || render(&catalog, &request));
    }

    #[test]
    fn plugin_loader_never_panics(
        header in yamlish(),
        values in yamlish(),
        manifest in "[ -~\n]{0,200}",
    ) {
        let plugin = format!(
            "apiVersion: telltale.dev/v1alpha1\nkind: Plugin\nmetadata:\n  name: p\n  version: 0.1.0\n  description: d\nspec:\n  phase: exporters\n{header}"
        );
        let tree = Tree::from_files("p", [
            ("plugin.yaml".to_string(), plugin),
            ("values.yaml".to_string(), values),
            ("manifests/m.yaml".to_string(), manifest),
        ]);
        let _ = bounded("plugin", || load_plugin(tree, "p", false));
    }

    #[test]
    fn set_parser_never_panics(raw in "[ -~]{0,300}") {
        let _ = bounded("--set", || parse_set(&raw));
    }

    #[test]
    fn set_parser_handles_any_path_shape(
        segments in prop::collection::vec("[a-zA-Z0-9_.\\\\-]{0,12}", 0..80),
        value in "[ -~]{0,60}",
    ) {
        let raw = format!("{}={value}", segments.join("."));
        let parsed = bounded("--set", || parse_set(&raw));
        if let Ok(sets) = parsed {
            prop_assert!(sets.args.iter().all(|a| a.value.is_object()));
        }
    }

    #[test]
    fn set_values_render_or_fail_cleanly(
        key in "[a-zA-Z]{1,10}(\\.[a-zA-Z]{1,10}){0,3}",
        value in "[ -~]{0,60}",
    ) {
        let catalog = crate::common::catalog();
        let request = Request {
            profile: Some("kind".into()),
            sets: vec![format!("loki.{key}={value}")],
            ..Request::default()
        };
        let _ = bounded("render", || render(&catalog, &request));
    }
}
