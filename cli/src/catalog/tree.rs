//! A directory of text files, embedded in the binary or read from disk.
//!
//! The renderer never touches the file system: it reads [`Tree`]s, so
//! built-in and user content go through the same code.

use std::collections::BTreeMap;
use std::path::Path;

use include_dir::Dir;

use crate::model::Source;

#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// How paths in this tree are reported: `builtin:plugins/loki` or a path on disk.
    pub root: String,
    files: BTreeMap<String, String>,
}

impl Tree {
    pub fn from_embedded(dir: &Dir<'_>, root: &str) -> Tree {
        let mut files = BTreeMap::new();
        collect_embedded(dir, &mut files);
        // Paths inside an embedded Dir are relative to the include root;
        // strip the subdirectory prefix so the tree is rooted at `dir`.
        let prefix = dir.path().to_string_lossy().to_string();
        let files = files
            .into_iter()
            .map(|(path, text)| {
                let rel = path
                    .strip_prefix(&prefix)
                    .map(|p| p.trim_start_matches('/').to_string())
                    .unwrap_or(path);
                (rel, text)
            })
            .collect();
        Tree {
            root: root.to_string(),
            files,
        }
    }

    pub fn from_disk(dir: &Path) -> std::io::Result<Tree> {
        let mut files = BTreeMap::new();
        collect_disk(dir, dir, &mut files)?;
        Ok(Tree {
            root: dir.display().to_string(),
            files,
        })
    }

    pub fn from_files(root: &str, files: impl IntoIterator<Item = (String, String)>) -> Tree {
        Tree {
            root: root.to_string(),
            files: files.into_iter().collect(),
        }
    }

    pub fn get(&self, rel: &str) -> Option<Source> {
        self.files
            .get(rel)
            .map(|text| Source::new(self.display(rel), text.clone()))
    }

    pub fn contains(&self, rel: &str) -> bool {
        self.files.contains_key(rel)
    }

    pub fn display(&self, rel: &str) -> String {
        if self.root.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.root)
        }
    }

    /// Files directly in `dir` (not below) whose name ends with `ext`, sorted.
    pub fn files_in(&self, dir: &str, ext: &str) -> Vec<(String, Source)> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.files
            .iter()
            .filter_map(|(path, text)| {
                let name = path.strip_prefix(&prefix)?;
                (!name.contains('/') && name.ends_with(ext)).then(|| {
                    (
                        name.to_string(),
                        Source::new(self.display(path), text.clone()),
                    )
                })
            })
            .collect()
    }

    /// First-level subdirectory names, sorted.
    pub fn subdirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = self
            .files
            .keys()
            .filter_map(|p| p.split_once('/').map(|(d, _)| d.to_string()))
            .collect();
        dirs.dedup();
        dirs
    }

    /// The subtree below `dir`, re-rooted.
    pub fn subtree(&self, dir: &str) -> Tree {
        let prefix = format!("{dir}/");
        Tree {
            root: self.display(dir),
            files: self
                .files
                .iter()
                .filter_map(|(p, t)| p.strip_prefix(&prefix).map(|r| (r.to_string(), t.clone())))
                .collect(),
        }
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

fn collect_embedded(dir: &Dir<'_>, out: &mut BTreeMap<String, String>) {
    for file in dir.files() {
        if let Some(text) = file.contents_utf8() {
            out.insert(file.path().to_string_lossy().to_string(), text.to_string());
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, out);
    }
}

fn collect_disk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_disk(root, &path, out)?;
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, text);
        }
    }
    Ok(())
}
