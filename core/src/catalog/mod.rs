//! The catalogue: built-in profiles and plugins (embedded at build time) plus
//! the plugin directories given with `--plugin-dir`.
//!
//! Reads files (the only I/O here is `--plugin-dir` and profile paths);
//! parses and validates every manifest so a broken plugin is reported with
//! its file:line:col before anything renders.

mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

pub use tree::{MAX_FILE_BYTES, Tree, read_input_file};

/// Config and profile files are hand-written YAML: a few KiB.
pub const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;

use crate::model::document::parse_document;
use crate::model::node::Node;
use crate::model::suggest::did_you_mean;
use crate::model::yaml::parse;
use crate::model::{Kind, LocatedError, Plugin, Profile, Source};

static PLUGINS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../plugins");
static PROFILES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../profiles");
static MANIFESTS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../manifests");
static RUNBOOKS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../runbooks");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Invalid(#[from] LocatedError),
    #[error("two plugins are named `{name}`: {first} and {second}")]
    DuplicatePlugin {
        name: String,
        first: String,
        second: String,
    },
    #[error("unknown profile `{name}`")]
    UnknownProfile { name: String, hint: Option<String> },
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a plugin directory: it has no plugin.yaml")]
    NotAPlugin { path: String },
}

impl CatalogError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CatalogError::Invalid(e) => e.hint.clone(),
            CatalogError::UnknownProfile { hint, .. } => hint.clone(),
            CatalogError::DuplicatePlugin { .. } => Some(
                "rename one of them (metadata.name and its directory) or drop one --plugin-dir"
                    .into(),
            ),
            CatalogError::NotAPlugin { .. } => Some(
                "a plugin directory holds plugin.yaml; `telltale plugins new NAME` writes one"
                    .into(),
            ),
            CatalogError::Read { .. } => None,
        }
    }
}

/// A plugin and the files that came with it.
#[derive(Debug, Clone)]
pub struct PluginEntry {
    pub plugin: Plugin,
    pub files: Tree,
    pub builtin: bool,
}

impl PluginEntry {
    pub fn name(&self) -> &str {
        &self.plugin.metadata.name
    }
}

#[derive(Debug, Clone)]
pub struct ProfileEntry {
    pub profile: Profile,
    pub source: Source,
    pub builtin: bool,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub plugins: BTreeMap<String, PluginEntry>,
    pub profiles: BTreeMap<String, ProfileEntry>,
    /// Base objects every profile gets, one subdirectory per phase.
    pub manifests: Tree,
    /// Runbooks of the core alerts.
    pub runbooks: Tree,
}

impl Catalog {
    /// The built-in catalogue plus user plugin directories. Each directory is
    /// either a plugin itself (it holds plugin.yaml) or holds plugin directories.
    pub fn load(plugin_dirs: &[PathBuf]) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog {
            plugins: BTreeMap::new(),
            profiles: BTreeMap::new(),
            manifests: Tree::from_embedded(&MANIFESTS, "builtin:manifests"),
            runbooks: Tree::from_embedded(&RUNBOOKS, "builtin:runbooks"),
        };
        let builtin = Tree::from_embedded(&PLUGINS, "builtin:plugins");
        for name in builtin.subdirs() {
            catalog.add_plugin(load_plugin(builtin.subtree(&name), &name, true)?)?;
        }
        for dir in plugin_dirs {
            for (name, tree) in plugin_trees(dir)? {
                catalog.add_plugin(load_plugin(tree, &name, false)?)?;
            }
        }
        let profiles = Tree::from_embedded(&PROFILES, "builtin:profiles");
        for (file, source) in profiles.files_in("", ".yaml") {
            let name = file.trim_end_matches(".yaml").to_string();
            let profile: Profile = parse_document(&source, Kind::Profile)?;
            check_name(
                &source,
                "metadata.name",
                &profile.metadata.name,
                &name,
                "the file name",
            )?;
            catalog.profiles.insert(
                name,
                ProfileEntry {
                    profile,
                    source,
                    builtin: true,
                },
            );
        }
        Ok(catalog)
    }

    fn add_plugin(&mut self, entry: PluginEntry) -> Result<(), CatalogError> {
        if let Some(existing) = self.plugins.get(entry.name()) {
            let located = entry.files.get("plugin.yaml").map(|source| {
                locate(
                    &source,
                    "metadata.name",
                    format!(
                        "a plugin named `{}` is already defined by {}",
                        entry.name(),
                        existing.files.display("plugin.yaml")
                    ),
                )
            });
            return Err(match located {
                Some(e) => CatalogError::Invalid(e.with_hint(
                    "two plugins cannot share a name: rename one (metadata.name and its directory) or drop one --plugin-dir",
                )),
                None => CatalogError::DuplicatePlugin {
                    name: entry.name().to_string(),
                    first: existing.files.root.clone(),
                    second: entry.files.root.clone(),
                },
            });
        }
        self.plugins.insert(entry.name().to_string(), entry);
        Ok(())
    }

    /// A built-in profile by name, or a Profile file by path.
    pub fn profile(&self, name_or_path: &str) -> Result<ProfileEntry, CatalogError> {
        if let Some(entry) = self.profiles.get(name_or_path) {
            return Ok(entry.clone());
        }
        let looks_like_path = name_or_path.contains('/')
            || name_or_path.ends_with(".yaml")
            || name_or_path.ends_with(".yml");
        if looks_like_path {
            let path = Path::new(name_or_path);
            let text =
                read_input_file(path, MAX_DOCUMENT_BYTES).map_err(|source| CatalogError::Read {
                    path: name_or_path.to_string(),
                    source,
                })?;
            let source = Source::new(name_or_path, text);
            let profile: Profile = parse_document(&source, Kind::Profile)?;
            return Ok(ProfileEntry {
                profile,
                source,
                builtin: false,
            });
        }
        let hint = did_you_mean(name_or_path, self.profiles.keys().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .or_else(|| {
                Some(format!(
                    "known profiles: {}",
                    self.profile_names().join(", ")
                ))
            });
        Err(CatalogError::UnknownProfile {
            name: name_or_path.to_string(),
            hint,
        })
    }

    pub fn profile_names(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
    }

    pub fn plugin_hint(&self, name: &str) -> String {
        did_you_mean(name, self.plugins.keys().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "`telltale plugins list` shows the known plugins".to_string())
    }
}

/// The plugin directories inside `dir`, or `dir` itself when it is one.
fn plugin_trees(dir: &Path) -> Result<Vec<(String, Tree)>, CatalogError> {
    let tree = Tree::from_disk(dir).map_err(|source| CatalogError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    if tree.contains("plugin.yaml") {
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_default();
        return Ok(vec![(name, tree)]);
    }
    Ok(tree
        .subdirs()
        .into_iter()
        .filter(|d| tree.contains(&format!("{d}/plugin.yaml")))
        .map(|d| {
            let sub = tree.subtree(&d);
            (d, sub)
        })
        .collect())
}

/// Parses and validates one plugin directory.
pub fn load_plugin(
    files: Tree,
    dir_name: &str,
    builtin: bool,
) -> Result<PluginEntry, CatalogError> {
    let source = files
        .get("plugin.yaml")
        .ok_or_else(|| CatalogError::NotAPlugin {
            path: files.root.clone(),
        })?;
    let plugin: Plugin = parse_document(&source, Kind::Plugin)?;
    crate::model::validate::dns_label(&plugin.metadata.name)
        .map_err(|i| crate::model::check::refuse(&source, "metadata.name", i))?;
    for (key, path) in [
        ("spec.settings.retention", &plugin.spec.settings.retention),
        ("spec.settings.storage", &plugin.spec.settings.storage),
    ] {
        if let Some(path) = path
            && (path.len() > 512 || path.split('.').any(str::is_empty))
        {
            return Err(locate(
                &source,
                key,
                format!("`{path:.80}` is not a key path into the plugin's values"),
            )
            .with_hint("keys joined by dots, such as prometheus.prometheusSpec.retention")
            .into());
        }
    }
    for path in files.paths() {
        if let Err(e) = crate::paths::safe_relative(path) {
            return Err(locate(&source, "metadata.name", format!("plugin file {e}"))
                .with_hint("plugin file names use letters, digits, `.`, `_` and `-`")
                .into());
        }
    }
    for (dir, ext) in [("rules", ".yaml"), ("dashboards", ".json")] {
        for (file, _) in files.files_in(dir, ext) {
            let stem = file.trim_end_matches(ext);
            if let Err(i) = crate::model::validate::dns_subdomain(stem) {
                return Err(locate(
                    &source,
                    "metadata.name",
                    format!(
                        "{dir}/{file}: the file name becomes an object name; expected {}",
                        i.expected
                    ),
                )
                .into());
            }
        }
    }
    check_name(
        &source,
        "metadata.name",
        &plugin.metadata.name,
        dir_name,
        "its directory name",
    )?;
    if semver::Version::parse(&plugin.metadata.version).is_err() {
        return Err(locate(
            &source,
            "metadata.version",
            format!(
                "`{}` is not a semantic version (MAJOR.MINOR.PATCH)",
                plugin.metadata.version
            ),
        )
        .into());
    }
    if !plugin.spec.phase.installable() {
        return Err(locate(&source, "spec.phase", format!(
            "a plugin cannot install in the `{}` phase; use one of namespace, crds, secrets, metrics, logs, exporters, alerting, dashboards, autoscaling",
            plugin.spec.phase
        ))
        .into());
    }
    if let Some(chart) = &plugin.spec.chart
        && semver::Version::parse(chart.version.trim_start_matches('v')).is_err()
    {
        return Err(locate(
            &source,
            "spec.chart.version",
            format!(
                "chart version `{}` must be one exact version, not a range",
                chart.version
            ),
        )
        .into());
    }
    check_bridge(&source, &plugin)?;
    // Without a chart, values.yaml holds the defaults its manifests and
    // overlays read as `values`.
    for (file, _) in files.files_in("overlays", ".yaml") {
        let target = file.trim_end_matches(".yaml");
        // An overlay of the plugin itself: its values that depend on the
        // config (the Grafana datasources), merged after every layer.
        if target == plugin.metadata.name {
            continue;
        }
        if !plugin.spec.requires.iter().any(|r| r == target) {
            return Err(locate(
                &source,
                "spec.requires",
                format!("overlays/{file} changes plugin `{target}`, which is not in spec.requires"),
            )
            .with_hint(format!("add `{target}` to spec.requires"))
            .into());
        }
    }
    Ok(PluginEntry {
        plugin,
        files,
        builtin,
    })
}

/// A bridge names only secret paths its integration has, each to a key a
/// Secret can hold, each key once.
fn check_bridge(source: &Source, plugin: &Plugin) -> Result<(), LocatedError> {
    let Some(bridge) = &plugin.spec.bridge else {
        return Ok(());
    };
    if let Some(url) = &bridge.url {
        crate::model::check::webhook_url(source, "spec.bridge.url", "url", url)?;
        if url.replace("{namespace}", "").contains(['{', '}']) {
            return Err(locate(
                source,
                "spec.bridge.url",
                format!(
                    "`{}` has a placeholder telltale does not fill: only `{{namespace}}` is",
                    url.chars().take(120).collect::<String>()
                ),
            ));
        }
    }
    let known = bridge.integration.secret_paths();
    let mut keys = std::collections::BTreeSet::new();
    for (i, s) in bridge.secrets.iter().enumerate() {
        if !known.contains(&s.path.as_str()) {
            let e = locate(
                source,
                &format!("spec.bridge.secrets.{i}.path"),
                format!(
                    "`{}` is not a secret of alerting.receivers.{}; it has {}",
                    s.path,
                    bridge.integration.as_str(),
                    known.join(", ")
                ),
            );
            return Err(
                match crate::model::suggest::did_you_mean(&s.path, known.iter().copied()) {
                    Some(close) => e.with_hint(format!("did you mean `{close}`?")),
                    None => e,
                },
            );
        }
        let valid = !s.key.is_empty()
            && s.key.len() <= 253
            && s.key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid || !keys.insert(s.key.as_str()) {
            return Err(locate(
                source,
                &format!("spec.bridge.secrets.{i}.key"),
                format!(
                    "`{}` is not a Secret key (letters, digits, `-`, `_`, `.`), or is named twice",
                    s.key.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

fn check_name(
    source: &Source,
    path: &str,
    actual: &str,
    expected: &str,
    what: &str,
) -> Result<(), LocatedError> {
    if actual == expected {
        return Ok(());
    }
    Err(locate(
        source,
        path,
        format!("`{actual}` must equal {what} `{expected}`"),
    ))
}

/// A located error at the value at `path` in a document already known to be valid YAML.
pub fn locate(source: &Source, path: &str, message: impl Into<String>) -> LocatedError {
    let (line, column) = parse::<Node>(source, "YAML")
        .ok()
        .and_then(|node| {
            node.get_path(path)
                .map(|n| n.referenced)
                .or_else(|| node.key_location(path))
                .map(|l| (l.line(), l.column()))
        })
        .unwrap_or((1, 1));
    LocatedError::new(source, line, column, message).at_path(path)
}

/// A located error at the key `path` itself (an unknown name).
pub fn locate_key(source: &Source, path: &str, message: impl Into<String>) -> LocatedError {
    let (line, column) = parse::<Node>(source, "YAML")
        .ok()
        .and_then(|node| node.key_location(path).map(|l| (l.line(), l.column())))
        .unwrap_or((1, 1));
    LocatedError::new(source, line, column, message).at_path(path)
}
