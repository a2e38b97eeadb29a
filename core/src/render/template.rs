//! minijinja for values.yaml and manifests: a few variables, strict.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::model::{LocatedError, Source};

#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub namespace: String,
    pub cluster: String,
    pub profile: String,
}

/// Instructions one template may run: far more than any real values.yaml
/// or manifest needs (they take a few thousand), far less than a hang.
pub const FUEL: u64 = 5_000_000;
const RECURSION_LIMIT: usize = 64;
const MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// What a plugin's manifests and overlays see besides [`Context`]: its
/// resolved values, which of its secrets have a source (never their
/// values), the config's Grafana datasources and, for `alerting/`
/// templates, the alerting view. Each is an empty mapping when not given,
/// so `{% if datasources.postgres is defined %}` works everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub values: Option<&'a serde_json::Value>,
    pub secrets: Option<&'a serde_json::Value>,
    pub datasources: Option<&'a serde_json::Value>,
    pub alerting: Option<&'a serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
struct WithScope<'a> {
    #[serde(flatten)]
    ctx: &'a Context,
    values: &'a serde_json::Value,
    secrets: &'a serde_json::Value,
    datasources: &'a serde_json::Value,
    alerting: &'a serde_json::Value,
}

/// Renders a manifest or overlay: `namespace`, `cluster`, `profile` and the
/// plugin's resolved `values` (defaults < profile < config < --set), with
/// no secret set.
pub fn render_with_values(
    source: &Source,
    ctx: &Context,
    values: &serde_json::Value,
) -> Result<Source, LocatedError> {
    render_in(
        source,
        ctx,
        Scope {
            values: Some(values),
            ..Scope::default()
        },
    )
}

/// Renders a plugin's manifest or overlay in its [`Scope`]. `secrets`: for
/// each declared secret path whose source is set, the Secret key `up`
/// writes it to (`{name, key}`, the shape of a SecretKeySelector). An
/// overlay references the key without ever seeing the value, and can
/// choose by what is configured (`{% if secrets.password is defined %}`).
pub fn render_in(source: &Source, ctx: &Context, scope: Scope<'_>) -> Result<Source, LocatedError> {
    let empty = serde_json::json!({});
    render_any(
        source,
        &WithScope {
            ctx,
            values: scope.values.unwrap_or(&empty),
            secrets: scope.secrets.unwrap_or(&empty),
            datasources: scope.datasources.unwrap_or(&empty),
            alerting: scope.alerting.unwrap_or(&empty),
        },
    )
}

/// `{{ x | toyaml }}`: a value as the bundle writes YAML (sorted keys), so
/// a template can hand another program a config file of its own format
/// (sachet's, from the alerting view) byte for byte as telltale would.
fn toyaml(value: minijinja::Value) -> Result<String, minijinja::Error> {
    let json = serde_json::to_value(&value).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    serde_saphyr::to_string(&json)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

/// The error `fail(message)` raises in a template: the plugin refusing a
/// combination of values (helm's `fail`), reported as the plugin's message
/// at the template's line.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused by the template")
    }
}

impl std::error::Error for Refused {}

fn fail(message: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message).with_source(Refused))
}

fn refused(e: &minijinja::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<Refused>())
}

/// Renders `source` as a template; an unknown variable is an error.
pub fn render(source: &Source, ctx: &Context) -> Result<Source, LocatedError> {
    render_any(source, ctx)
}

fn render_any<T: Serialize>(source: &Source, ctx: &T) -> Result<Source, LocatedError> {
    // Most content has no template syntax at all: skip the engine.
    if !source.text.contains("{{") && !source.text.contains("{%") {
        return Ok(source.clone());
    }
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // A plugin's template is input too: nested loops or deep recursion end
    // with an error instead of hanging or overflowing the stack.
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_keep_trailing_newline(true);
    env.add_function("fail", fail);
    env.add_filter("toyaml", toyaml);
    // `namespace()` under a name the `namespace` variable does not shadow:
    // a template that builds a list in a loop carries it in one.
    env.add_function("scratch", minijinja::functions::namespace);
    if source.text.len() > MAX_OUTPUT {
        return Err(LocatedError::new(
            source,
            1,
            1,
            "the template is larger than 4 MiB",
        ));
    }
    env.render_str(&source.text, ctx)
        .and_then(|text| {
            if text.len() > MAX_OUTPUT {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "the template renders to more than 4 MiB",
                ))
            } else {
                Ok(text)
            }
        })
        .map(|text| Source::new(source.name.clone(), text))
        .map_err(|e| {
            let line = e.line().unwrap_or(1) as u64;
            if refused(&e) {
                return LocatedError::new(source, line, 1, describe(&e));
            }
            LocatedError::new(source, line, 1, format!("template error: {}", describe(&e)))
                .with_hint("values.yaml may use {{ namespace }}, {{ cluster }} and {{ profile }}, manifests and overlays also {{ values.KEY }}, {{ secrets.PATH }} (a Secret key reference) and {{ datasources.NAME }}, alerting/ templates {{ alerting }}; wrap other braces in {% raw %}…{% endraw %}")
        })
}

fn describe(e: &minijinja::Error) -> String {
    match e.kind() {
        minijinja::ErrorKind::OutOfFuel => format!(
            "the template runs more than {FUEL} instructions (a loop that does not end, or nested loops over large ranges)"
        ),
        _ => e
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.kind().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            namespace: "monitoring".into(),
            cluster: "c".into(),
            profile: "p".into(),
        }
    }

    #[test]
    fn nested_loops_run_out_of_fuel() {
        let text =
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let e = render(&Source::new("v.yaml", text), &ctx()).unwrap_err();
        assert!(e.message.contains("instructions"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn fail_refuses_with_the_plugins_message_at_its_line() {
        let text = "a: 1\n{% if values.x %}{{ fail('x needs y') }}{% endif %}\n";
        let on = render_with_values(
            &Source::new("o.yaml", text),
            &ctx(),
            &serde_json::json!({"x": true}),
        );
        let e = on.unwrap_err();
        assert_eq!(e.message, "x needs y", "{e}");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.hint.is_none(), "{e:?}");
        let off = render_with_values(
            &Source::new("o.yaml", text),
            &ctx(),
            &serde_json::json!({"x": false}),
        );
        assert!(off.is_ok());
    }

    #[test]
    fn secrets_say_which_key_is_set_never_a_value() {
        let text = "{% if secrets.token is defined %}{{ secrets.token.name }}/{{ secrets.token.key }}{% else %}none{% endif %}";
        let refs = serde_json::json!({"token": {"name": "telltale-p", "key": "token"}});
        let set = render_in(
            &Source::new("o.yaml", text),
            &ctx(),
            Scope {
                secrets: Some(&refs),
                ..Scope::default()
            },
        )
        .unwrap();
        assert_eq!(set.text, "telltale-p/token");
        let unset =
            render_with_values(&Source::new("o.yaml", text), &ctx(), &serde_json::json!({}))
                .unwrap();
        assert_eq!(unset.text, "none");
    }

    #[test]
    fn recursion_is_bounded() {
        let text = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
        let e = render(&Source::new("v.yaml", text), &ctx()).unwrap_err();
        assert!(e.message.starts_with("template error"), "{e}");
    }
}
