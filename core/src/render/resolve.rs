//! From a config, a profile and `--set` to one resolved stack: the profile
//! chain, the enabled plugins with their merged values, alerting, SLOs.
//!
//! Pure apart from reading a profile given by path (through the catalogue).

use std::collections::BTreeMap;

use serde_json::Value;

use super::RenderError;
use super::strvals::Mode;
use super::template;
use super::values::{
    SetArgs, json_strings, merge, misspelt_key, nest, parse_sets, read_set_file, split_path,
    take_secrets, typed,
};
use crate::catalog::{Catalog, PluginEntry, locate, locate_key};
use crate::model::alerting::AlertingLayer;
use crate::model::check;
use crate::model::config::{Cluster, GitOps, Grafana};
use crate::model::document::parse_document;
use crate::model::node::Node;
use crate::model::receiver_layer::ReceiversLayer;
use crate::model::validate;
use crate::model::yaml::parse;
use crate::model::{Alerting, Config, Kind, Layer, LocatedError, Slo, Source};
use crate::secrets::SecretSource;

pub const DEFAULT_NAMESPACE: &str = "monitoring";

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The config file's text, when there is one.
    pub config: Option<Source>,
    /// `--profile`, overriding the config's.
    pub profile: Option<String>,
    /// `-n`, overriding the config's.
    pub namespace: Option<String>,
    /// `--set` arguments, raw.
    pub sets: Vec<String>,
    /// `--set-string` arguments, raw.
    pub set_strings: Vec<String>,
    /// `--set-file` arguments, raw (paths relative to the working directory).
    pub set_files: Vec<String>,
    /// The cluster of a Fleet config to resolve (`--cluster NAME`); a Fleet
    /// resolves one cluster at a time.
    pub member: Option<String>,
}

/// What the config file contributes, from a Config or one cluster of a
/// Fleet: the same shape either way, so the rest of resolve is one path.
struct Input {
    source: Source,
    /// plan.json's `config`: the Config's name, or the fleet cluster's.
    name: String,
    /// The profile the file names and the key path where it does.
    profile: Option<(String, String)>,
    layers: Vec<Layer>,
    cluster: Option<Cluster>,
    /// Where the cluster's name was written (for its error).
    cluster_name_path: String,
    gitops: Option<GitOps>,
}

impl Input {
    fn read(request: &Request) -> Result<Option<Input>, RenderError> {
        let Some(source) = &request.config else {
            if request.member.is_some() {
                return Err(no_fleet("no config file was given").into());
            }
            return Ok(None);
        };
        if crate::model::fleet::is_fleet(source) {
            let fleet = crate::model::fleet::parse(source)?;
            let Some(member) = &request.member else {
                let names: Vec<&str> = fleet
                    .spec
                    .clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(LocatedError::new(
                    source,
                    1,
                    1,
                    format!(
                        "this is a Fleet of {} ({}); this command acts on one cluster of it",
                        crate::plural::count(names.len(), "cluster"),
                        names.join(", ")
                    ),
                )
                .with_hint(format!("pass --cluster NAME, e.g. --cluster {}", names[0]))
                .into());
            };
            let (index, cluster) = fleet
                .member(member)
                .map_err(|m| LocatedError::new(&Source::new("--cluster", ""), 1, 1, m))?;
            return Ok(Some(Input {
                source: source.clone(),
                name: cluster.name.clone(),
                profile: fleet.profile_of(index),
                layers: fleet.layers(source, index),
                cluster: Some(cluster.pin()),
                cluster_name_path: format!("spec.clusters.{index}.name"),
                gitops: fleet.gitops_of(index),
            }));
        }
        if request.member.is_some() {
            return Err(no_fleet(&format!("{} is a Config, not a Fleet", source.name)).into());
        }
        let config: Config = parse_document(source, Kind::Config)?;
        let (cluster_name_path, _) =
            match config.spec.cluster.as_ref().and_then(|c| c.name.as_ref()) {
                Some(name) => ("spec.cluster.name", name),
                None => ("metadata.name", &config.metadata.name),
            };
        Ok(Some(Input {
            source: source.clone(),
            name: config.metadata.name.clone(),
            profile: config
                .spec
                .profile
                .clone()
                .map(|p| (p, "spec.profile".to_string())),
            layers: vec![config.spec.layer(source)],
            cluster: config.spec.cluster.clone(),
            cluster_name_path: cluster_name_path.into(),
            gitops: config.spec.gitops.clone(),
        }))
    }
}

fn no_fleet(why: &str) -> LocatedError {
    LocatedError::new(
        &Source::new("--cluster", ""),
        1,
        1,
        format!("--cluster selects a cluster of a Fleet config, and {why}"),
    )
    .with_hint("drop --cluster, or pass -f with a `kind: Fleet` file")
}

#[derive(Debug, Clone)]
pub struct EnabledPlugin {
    pub entry: PluginEntry,
    pub values: Value,
    /// Secret values paths and where their values come from.
    pub secrets: Vec<(String, SecretSource)>,
}

impl EnabledPlugin {
    pub fn name(&self) -> &str {
        self.entry.name()
    }

    /// The Secret `up` writes this plugin's secrets to.
    pub fn secret_name(&self) -> String {
        format!("telltale-{}", self.name())
    }

    /// For each secret path with a source: `{name, key}` of the Secret key
    /// holding it (what templates see as `secrets`; never the value).
    pub fn secret_refs(&self) -> Value {
        let name = self.secret_name();
        Value::Object(
            self.secrets
                .iter()
                .map(|(path, _)| {
                    (
                        path.clone(),
                        serde_json::json!({"name": name, "key": secret_key(path)}),
                    )
                })
                .collect(),
        )
    }
}

/// The Secret key a secret values path is stored under (a Secret key cannot
/// hold every character a path can: dots become dashes).
pub fn secret_key(path: &str) -> String {
    path.replace('.', "-")
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub config_name: Option<String>,
    pub profile: String,
    pub profile_description: String,
    /// Root first, the selected profile last.
    pub profile_chain: Vec<String>,
    pub namespace: String,
    pub cluster: Cluster,
    pub plugins: Vec<EnabledPlugin>,
    pub alerting: Alerting,
    /// The receivers as the layers declare them, before incomplete ones are
    /// left out: what `init` shows as the profile's.
    pub declared_receivers: ReceiversLayer,
    pub slos: Vec<Slo>,
    pub slo_selector: String,
    pub grafana: Grafana,
    pub gitops: Option<GitOps>,
    pub warnings: Vec<String>,
}

pub fn resolve(catalog: &Catalog, request: &Request) -> Result<Resolved, RenderError> {
    let input = Input::read(request)?;
    let chain = profile_chain(catalog, request, input.as_ref())?;
    let mut layers: Vec<Layer> = chain
        .iter()
        .map(|(_, e)| e.profile.spec.layer(&e.source))
        .collect();
    if let Some(input) = &input {
        layers.extend(input.layers.iter().cloned());
    }
    for layer in &layers {
        crate::model::check::layer(layer)?;
    }
    if let Some(input) = &input {
        let name = input
            .cluster
            .as_ref()
            .and_then(|c| c.name.as_ref())
            .unwrap_or(&input.name);
        validate::dns_subdomain(name)
            .map_err(|i| check::refuse(&input.source, &input.cluster_name_path, i))?;
    }
    let sets = parse_sets(
        &[
            (Mode::Typed, &request.sets),
            (Mode::String, &request.set_strings),
            (Mode::File, &request.set_files),
        ],
        &mut read_set_file,
    )?;
    let namespace = namespace(request, &layers)?;
    let cluster = input
        .as_ref()
        .and_then(|i| i.cluster.clone())
        .unwrap_or(Cluster {
            context: None,
            name: None,
            server: None,
            ca_sha256: None,
        });
    let cluster_name = cluster
        .name
        .clone()
        .or_else(|| input.as_ref().map(|i| i.name.clone()))
        .unwrap_or_else(|| profile_name_of(&chain));
    let selected = &chain[chain.len() - 1].1;
    let ctx = template::Context {
        namespace: namespace.clone(),
        cluster: cluster_name.clone(),
        profile: selected.profile.metadata.name.clone(),
    };
    let merged = Merged::of(&layers);
    // Overlays see the configured datasources (datasources.rs).
    let datasources = super::datasources::template_view(&merged.grafana.datasources);
    let (plugins, left_out) = enabled_plugins(catalog, &layers, &sets, &ctx, &datasources)?;
    let declared_receivers = merged.alerting.receivers.clone();
    let (mut alerting, mut warnings): (Alerting, Vec<String>) = merged.alerting.resolve();
    warnings.extend(super::bridge::default_url(
        catalog,
        &plugins,
        &mut alerting,
        &namespace,
    ));
    warnings.extend(left_out);
    for p in &plugins {
        if let Some(message) = &p.entry.plugin.spec.deprecated {
            warnings.push(format!("plugin `{}` is deprecated: {message}", p.name()));
        }
    }

    Ok(Resolved {
        config_name: input.as_ref().map(|i| i.name.clone()),
        profile: selected.profile.metadata.name.clone(),
        profile_description: selected
            .profile
            .metadata
            .description
            .clone()
            .unwrap_or_default(),
        profile_chain: chain.iter().map(|(n, _)| n.clone()).collect(),
        namespace,
        cluster: Cluster {
            name: Some(cluster_name),
            ..cluster
        },
        plugins,
        alerting,
        declared_receivers,
        slos: merged.slos,
        slo_selector: layers
            .iter()
            .rev()
            .find_map(|l| l.slo_selector.clone())
            .unwrap_or_default(),
        grafana: merged.grafana,
        gitops: input.and_then(|i| i.gitops),
        warnings,
    })
}

/// What the layers say of alerting, SLOs and Grafana, merged in order.
struct Merged {
    alerting: AlertingLayer,
    slos: Vec<Slo>,
    grafana: Grafana,
}

impl Merged {
    fn of(layers: &[Layer]) -> Merged {
        let mut alerting = AlertingLayer::default();
        let mut slos: Vec<Slo> = Vec::new();
        let mut grafana = Grafana::default();
        for layer in layers {
            if let Some(a) = &layer.alerting {
                alerting.merge(a);
            }
            for slo in &layer.slos {
                // A later layer redefines an SLO of the same name.
                slos.retain(|s| s.name != slo.name);
                slos.push(slo.clone());
            }
            if let Some(g) = &layer.grafana {
                grafana = g.clone();
            }
        }
        Merged {
            alerting,
            slos,
            grafana,
        }
    }
}

/// `-n`, else the last layer's namespace, else the default.
fn namespace(request: &Request, layers: &[Layer]) -> Result<String, RenderError> {
    let namespace = request
        .namespace
        .clone()
        .or_else(|| layers.iter().rev().find_map(|l| l.namespace.clone()))
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    if let Some(ns) = &request.namespace {
        validate::dns_label(ns).map_err(|i| {
            LocatedError::new(
                &Source::new("--namespace", ""),
                1,
                1,
                format!("expected {}", i.expected),
            )
        })?;
    }
    Ok(namespace)
}

type Chain = Vec<(String, crate::catalog::ProfileEntry)>;

/// The profile chain, root first, the selected profile last; an unknown
/// profile located where its name was written, a cycle refused.
fn profile_chain(
    catalog: &Catalog,
    request: &Request,
    input: Option<&Input>,
) -> Result<Chain, RenderError> {
    let profile_name = request
        .profile
        .clone()
        .or_else(|| input.and_then(|i| i.profile.as_ref().map(|(p, _)| p.clone())))
        .ok_or_else(|| RenderError::NoProfile {
            known: catalog.profile_names(),
        })?;
    // The profile chain, selected profile first while walking, with cycle detection.
    let mut chain = Vec::new();
    // Where each profile name was written, to locate an unknown one.
    let mut origin: Option<(Source, String)> = match (&request.profile, input) {
        (None, Some(i)) => i
            .profile
            .as_ref()
            .map(|(_, at)| (i.source.clone(), at.clone())),
        _ => None,
    };
    let mut next = Some(profile_name.clone());
    while let Some(name) = next {
        let entry = match catalog.profile(&name) {
            Ok(entry) => entry,
            Err(
                e @ (crate::catalog::CatalogError::UnknownProfile { .. }
                | crate::catalog::CatalogError::Read { .. }),
            ) => {
                let hint = e.hint();
                let message = match &e {
                    crate::catalog::CatalogError::Read { source, .. } => {
                        format!("cannot read profile `{name}`: {source}")
                    }
                    _ => format!("unknown profile `{name}`"),
                };
                return Err(match &origin {
                    Some((source, path)) => {
                        let located = locate(source, path, message);
                        match hint {
                            Some(h) => located.with_hint(h).into(),
                            None => located.into(),
                        }
                    }
                    None => e.into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        origin = Some((entry.source.clone(), "spec.extends".into()));
        if let Some(pos) = chain
            .iter()
            .position(|(n, _): &(String, _)| *n == entry.profile.metadata.name)
        {
            let mut cycle: Vec<String> = chain[pos..].iter().map(|(n, _)| n.clone()).collect();
            cycle.push(entry.profile.metadata.name.clone());
            let (_, last): &(String, crate::catalog::ProfileEntry) = &chain[chain.len() - 1];
            return Err(locate(
                &last.source,
                "spec.extends",
                format!("cyclic `extends`: {}", cycle.join(" → ")),
            )
            .into());
        }
        next = entry.profile.spec.extends.clone();
        chain.push((entry.profile.metadata.name.clone(), entry));
    }
    chain.reverse();
    Ok(chain)
}

fn profile_name_of(chain: &[(String, crate::catalog::ProfileEntry)]) -> String {
    chain.last().map(|(n, _)| n.clone()).unwrap_or_default()
}

/// The enabled plugins, each with its values (defaults < layers < `--set`,
/// overlays last) and secret sources, in install order; and the warnings of
/// those left out for want of a required value.
fn enabled_plugins(
    catalog: &Catalog,
    layers: &[Layer],
    sets: &SetArgs,
    ctx: &template::Context,
    datasources: &Value,
) -> Result<(Vec<EnabledPlugin>, Vec<String>), RenderError> {
    let enabled = which_enabled(catalog, layers, sets)?;
    let on: Vec<&String> = enabled
        .iter()
        .filter(|(_, (on, _))| *on)
        .map(|(n, _)| n)
        .collect();
    check_together(catalog, layers, &enabled, &on)?;
    let mut out = Vec::new();
    let mut left_out = Vec::new();
    for name in on {
        let entry = catalog.plugins[name].clone();
        let (values, mut secrets) = plugin_values(&entry, name, layers, sets, ctx)?;
        secrets.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(warning) = unset_required(catalog, &enabled, &entry, name, &values)? {
            left_out.push(warning);
            continue;
        }
        out.push(EnabledPlugin {
            entry,
            values,
            secrets,
        });
    }
    apply_overlays(&mut out, ctx, datasources)?;
    Ok((install_order(out), left_out))
}

/// Which plugins are on, and the layer that decided it (for error
/// locations); unknown plugins and `--set` of a plugin that is off refused.
fn which_enabled(
    catalog: &Catalog,
    layers: &[Layer],
    sets: &SetArgs,
) -> Result<BTreeMap<String, (bool, usize)>, RenderError> {
    let mut enabled: BTreeMap<String, (bool, usize)> = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for (name, settings) in &layer.plugins {
            if !catalog.plugins.contains_key(name) {
                return Err(locate_key(
                    &layer.source,
                    &format!("{}.plugins.{name}", layer.path),
                    format!("unknown plugin `{name}`"),
                )
                .with_hint(catalog.plugin_hint(name))
                .into());
            }
            // Mentioning a plugin enables it unless a layer says `enabled: false`.
            let on = settings
                .enabled
                .unwrap_or_else(|| enabled.get(name).is_none_or(|(on, _)| *on));
            enabled.insert(name.clone(), (on, i));
        }
        for name in layer.set.keys() {
            if !catalog.plugins.contains_key(name) {
                return Err(locate_key(
                    &layer.source,
                    &format!("{}.set.{name}", layer.path),
                    format!("unknown plugin `{name}`"),
                )
                .with_hint(catalog.plugin_hint(name))
                .into());
            }
        }
    }
    for set in &sets.args {
        if !catalog.plugins.contains_key(&set.plugin) {
            return Err(LocatedError::new(
                &set.source,
                1,
                1,
                format!("unknown plugin `{}`", set.plugin),
            )
            .at_path(set.plugin.clone())
            .with_hint(catalog.plugin_hint(&set.plugin))
            .into());
        }
        if !enabled.get(&set.plugin).is_some_and(|(on, _)| *on) {
            return Err(LocatedError::new(
                &set.source,
                1,
                1,
                format!("plugin `{}` is not enabled in this profile", set.plugin),
            )
            .at_path(set.plugin.clone())
            .with_hint(format!(
                "enable it with `plugins: {{{}: {{enabled: true}}}}` in the config",
                set.plugin
            ))
            .into());
        }
    }

    Ok(enabled)
}

/// Every `requires` of an enabled plugin is enabled, no `conflicts` is.
fn check_together(
    catalog: &Catalog,
    layers: &[Layer],
    enabled: &BTreeMap<String, (bool, usize)>,
    on: &[&String],
) -> Result<(), RenderError> {
    for name in on {
        let entry = &catalog.plugins[*name];
        let (_, layer_index) = enabled[*name];
        let layer = &layers[layer_index];
        for required in &entry.plugin.spec.requires {
            if !on.contains(&required) {
                return Err(locate_key(
                    &layer.source,
                    &format!("{}.plugins.{name}", layer.path),
                    format!("plugin `{name}` requires `{required}`, which is not enabled"),
                )
                .with_hint(format!("enable `{required}` too"))
                .into());
            }
        }
        for conflict in &entry.plugin.spec.conflicts {
            if on.contains(&conflict) {
                return Err(locate_key(
                    &layer.source,
                    &format!("{}.plugins.{name}", layer.path),
                    format!("plugins `{name}` and `{conflict}` cannot be enabled together"),
                )
                .with_hint("disable one of them with `enabled: false`")
                .into());
            }
        }
    }

    Ok(())
}

/// A plugin's values and its secret paths' sources.
type Values = (Value, Vec<(String, SecretSource)>);

/// One plugin's values (values.yaml < each layer's `values` and `set` <
/// `--set`) and the secret sources the layers give its secret paths.
fn plugin_values(
    entry: &PluginEntry,
    name: &str,
    layers: &[Layer],
    sets: &SetArgs,
    ctx: &template::Context,
) -> Result<Values, RenderError> {
    let secret_paths: Vec<String> = entry
        .plugin
        .spec
        .secrets
        .iter()
        .map(|s| s.path.clone())
        .collect();
    let mut values = match entry.files.get("values.yaml") {
        Some(source) => {
            let rendered = template::render(&source, ctx)?;
            let node: Node = parse(&rendered, "helm values (a mapping)")?;
            node.to_json()
        }
        None => Value::Object(Default::default()),
    };
    if !values.is_object() && !values.is_null() {
        return Err(RenderError::Invalid(LocatedError::new(
            &entry.files.get("values.yaml").unwrap_or_default(),
            1,
            1,
            "values.yaml must be a mapping",
        )));
    }
    let mut secrets: Vec<(String, SecretSource)> = Vec::new();
    for layer in layers {
        let Some(settings) = layer.plugins.get(name) else {
            // Only `set:` may mention it in this layer.
            apply_layer_set(layer, name, &mut values, &secret_paths)?;
            continue;
        };
        if let Some(v) = &settings.values {
            if v.value.as_map().is_none() && v.value != Node::Null {
                return Err(LocatedError::new(
                    &layer.source,
                    v.referenced.line(),
                    v.referenced.column(),
                    format!(
                        "plugin values must be a mapping, found {}",
                        v.value.kind_name()
                    ),
                )
                .at_path(format!("{}.plugins.{name}.values", layer.path))
                .into());
            }
            let prefix = format!("{}.plugins.{name}.values", layer.path);
            let (json, found) = take_secrets(&layer.source, v, &secret_paths, &prefix)?;
            for leaf in check::string_leaves(v, &secret_paths) {
                if let Some(why) = validate::credential(Some(leaf.key), leaf.text) {
                    return Err(check::refuse_credential(
                        &layer.source,
                        leaf.node.referenced.line(),
                        leaf.node.referenced.column(),
                        &format!("{prefix}.{}", leaf.path),
                        &why,
                    )
                    .into());
                }
            }
            if let Some((bad, invalid)) = typed(Some(&values), &[], &json) {
                let at = v
                    .value
                    .get_path(&bad)
                    .map_or(v.referenced, |n| n.referenced);
                let e = LocatedError::new(
                    &layer.source,
                    at.line(),
                    at.column(),
                    format!("expected {}", invalid.expected),
                )
                .at_path(format!("{prefix}.{bad}"));
                return Err(match invalid.hint {
                    Some(h) => e.with_hint(h),
                    None => e,
                }
                .into());
            }
            for (path, source) in found {
                secrets.retain(|(p, _)| *p != path);
                secrets.push((path, source));
            }
            merge(&mut values, json);
        }
        apply_layer_set(layer, name, &mut values, &secret_paths)?;
    }
    for set in sets.args.iter().filter(|s| s.plugin == *name) {
        check_set(name, set, &values, &secret_paths)?;
    }
    if let Some(tree) = sets.merged.get(name) {
        merge(&mut values, tree.clone());
    }
    Ok((values, secrets))
}

/// The warning for a plugin left out because a required value is unset,
/// or an error when an enabled plugin requires it.
fn unset_required(
    catalog: &Catalog,
    enabled: &BTreeMap<String, (bool, usize)>,
    entry: &PluginEntry,
    name: &str,
    values: &Value,
) -> Result<Option<String>, RenderError> {
    let unset: Vec<&crate::model::plugin::SecretValue> = entry
        .plugin
        .spec
        .required
        .iter()
        .filter(|r| {
            split_path(&r.path)
                .iter()
                .try_fold(values, |v, k| v.get(k.as_str()))
                .is_none_or(Value::is_null)
        })
        .collect();
    if unset.is_empty() {
        return Ok(None);
    }
    let needed_by = enabled
        .iter()
        .filter(|(_, (on, _))| *on)
        .find(|(other, _)| {
            catalog.plugins[*other]
                .plugin
                .spec
                .requires
                .iter()
                .any(|r| r == name)
        });
    let keys: Vec<String> = unset
        .iter()
        .map(|r| format!("`{}` ({})", r.path, r.description))
        .collect();
    if let Some((other, _)) = needed_by {
        return Err(RenderError::Invalid(LocatedError::new(
            &entry.files.get("plugin.yaml").unwrap_or_default(),
            1,
            1,
            format!(
                "plugin `{name}` needs {} and plugin `{other}` requires it: set spec.plugins.{name}.values in telltale.yaml",
                keys.join(", ")
            ),
        )));
    }
    Ok(Some(format!(
        "plugin {name} is left out: it needs {}; set them under `spec.plugins.{name}.values` in telltale.yaml (or `enabled: false` to drop it)",
        keys.join(", ")
    )))
}

/// `overlays/<target>.yaml` of an enabled plugin: values it needs of another
/// plugin's release (loki-s3 switches Loki's storage to S3), rendered with
/// the overlay plugin's own values and merged over the target's, after all
/// of the target's layers. A target that is not enabled is an error only
/// when it is required (resolve already refused that), otherwise skipped.
/// A plugin's overlay of itself holds values that depend on the config
/// (the Grafana datasources); an overlay that renders to nothing changes
/// nothing.
fn apply_overlays(
    plugins: &mut [EnabledPlugin],
    ctx: &template::Context,
    datasources: &Value,
) -> Result<(), RenderError> {
    let mut patches: Vec<(String, Value)> = Vec::new();
    for p in plugins.iter() {
        let secrets = p.secret_refs();
        let scope = template::Scope {
            values: Some(&p.values),
            secrets: Some(&secrets),
            datasources: Some(datasources),
            alerting: None,
        };
        for (file, source) in p.entry.files.files_in("overlays", ".yaml") {
            let target = file.trim_end_matches(".yaml").to_string();
            let rendered = template::render_in(&source, ctx, scope)?;
            if rendered.text.trim().is_empty() {
                continue;
            }
            let node: Node = parse(&rendered, "helm values (a mapping)")?;
            let patch = node.to_json();
            if !patch.is_null() {
                patches.push((target, patch));
            }
        }
    }
    for (target, patch) in patches {
        if let Some(t) = plugins.iter_mut().find(|p| p.name() == target) {
            merge(&mut t.values, patch);
        }
    }
    Ok(())
}

fn apply_layer_set(
    layer: &Layer,
    plugin: &str,
    values: &mut Value,
    secret_paths: &[String],
) -> Result<(), RenderError> {
    let Some(entries) = layer.set.get(plugin) else {
        return Ok(());
    };
    for (key, value) in entries {
        let path = split_path(key);
        if path.iter().any(String::is_empty) || path.len() > super::values::MAX_SET_DEPTH {
            return Err(LocatedError::new(
                &layer.source,
                value.referenced.line(),
                value.referenced.column(),
                format!("`{key}` is not a dotted key path"),
            )
            .at_path(format!("{}.set.{plugin}", layer.path))
            .into());
        }
        if secret_paths.contains(&path.join(".")) {
            return Err(LocatedError::new(
                &layer.source,
                value.referenced.line(),
                value.referenced.column(),
                "secrets cannot be given with `set`; use spec.plugins.<plugin>.values with a secret source",
            )
            .at_path(format!("{}.set.{plugin}.{key}", layer.path))
            .into());
        }
        let json = value.value.to_json();
        let at = |message: String| {
            LocatedError::new(
                &layer.source,
                value.referenced.line(),
                value.referenced.column(),
                message,
            )
            .at_path(format!("{}.set.{plugin}.{key}", layer.path))
        };
        let mut strings = Vec::new();
        json_strings(
            &json,
            path.last().map(String::as_str).unwrap_or_default(),
            &mut strings,
        );
        for (k, text) in strings {
            if let Some(why) = validate::credential(Some(k), text) {
                return Err(check::refuse_credential(
                    &layer.source,
                    value.referenced.line(),
                    value.referenced.column(),
                    &format!("{}.set.{plugin}.{key}", layer.path),
                    &why,
                )
                .into());
            }
        }
        let default = path.iter().try_fold(&*values, |v, k| v.get(k.as_str()));
        if let Some((_, invalid)) = typed(default, &path, &json) {
            let e = at(format!("expected {}", invalid.expected));
            return Err(match invalid.hint {
                Some(h) => e.with_hint(h),
                None => e,
            }
            .into());
        }
        merge(values, nest(&path, json));
    }
    Ok(())
}

/// One flag's keys for one plugin, against the values before any flag:
/// no secret path, no credential, no misspelt key, the defaults' types.
fn check_set(
    name: &str,
    set: &super::values::SetArg,
    values: &Value,
    secret_paths: &[String],
) -> Result<(), RenderError> {
    let at = |path: String, message: String| {
        LocatedError::new(&set.source, 1, 1, message).at_path(format!("{name}.{path}"))
    };
    for secret in secret_paths {
        let parts = split_path(secret);
        if parts
            .iter()
            .try_fold(&set.value, |v, k| v.get(k.as_str()))
            .is_some()
        {
            return Err(at(secret.clone(), crate::secrets::LITERAL_SECRET.into()).into());
        }
    }
    let mut strings = Vec::new();
    json_strings(&set.value, "", &mut strings);
    for (key, text) in strings {
        if let Some(why) = validate::credential(Some(key), text) {
            return Err(check::refuse_credential(
                &set.source,
                1,
                1,
                &format!("{name} (key `{key}`)"),
                &why,
            )
            .into());
        }
    }
    if let Some((path, known, close)) = misspelt_key(values, &set.value, &mut Vec::new()) {
        let mut listed: Vec<&str> = known.iter().map(String::as_str).take(12).collect();
        if known.len() > listed.len() {
            listed.push("…");
        }
        return Err(at(
            path,
            format!(
                "unknown key; the keys telltale knows here are {}",
                listed.join(", ")
            ),
        )
        .with_hint(format!("did you mean `{close}`?"))
        .into());
    }
    if let Some((bad, invalid)) = typed(Some(values), &[], &set.value) {
        let e = at(bad, format!("expected {}", invalid.expected));
        return Err(match invalid.hint {
            Some(h) => e.with_hint(h),
            None => e,
        }
        .into());
    }
    Ok(())
}

/// Phase order, and within a phase a plugin after the plugins it requires
/// (alloy after loki), otherwise by name.
fn install_order(mut plugins: Vec<EnabledPlugin>) -> Vec<EnabledPlugin> {
    plugins.sort_by(|a, b| {
        (a.entry.plugin.spec.phase, a.name()).cmp(&(b.entry.plugin.spec.phase, b.name()))
    });
    let mut ordered: Vec<EnabledPlugin> = Vec::with_capacity(plugins.len());
    while !plugins.is_empty() {
        // The first plugin whose same-phase requirements are already placed;
        // `requires` cycles cannot stall this: fall back to the first one.
        let ready = plugins
            .iter()
            .position(|p| {
                p.entry.plugin.spec.requires.iter().all(|r| {
                    ordered.iter().any(|o| o.name() == r)
                        || !plugins.iter().any(|q| {
                            q.name() == r && q.entry.plugin.spec.phase == p.entry.plugin.spec.phase
                        })
                })
            })
            .unwrap_or(0);
        ordered.push(plugins.remove(ready));
    }
    ordered
}
