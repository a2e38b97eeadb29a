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

/// Bounds on a plugin directory read from disk: a plugin is a handful of
/// small text files.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
const MAX_TREE_BYTES: u64 = 64 * 1024 * 1024;
const MAX_TREE_FILES: usize = 10_000;
const MAX_TREE_DEPTH: usize = 16;

fn refuse(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{}: {why}", path.display()),
    )
}

/// Reads an input file: it must be a regular file (not a FIFO, device or
/// directory) of at most `max` bytes, UTF-8. A symbolic link given by the
/// user on the command line is followed; links inside plugins are not
/// (see [`Tree::from_disk`]).
pub fn read_input_file(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(path, "not a regular file"));
    }
    if meta.len() > max {
        return Err(refuse(path, &format!("larger than {} KiB", max / 1024)));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(refuse(path, &format!("larger than {} KiB", max / 1024)));
    }
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not UTF-8 text", path.display()),
        )
    })
}

struct Budget {
    files: usize,
    bytes: u64,
}

fn collect_disk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
) -> std::io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(refuse(dir, "not a directory"));
    }
    let mut budget = Budget { files: 0, bytes: 0 };
    collect_dir(root, dir, out, &mut budget, 0)
}

fn collect_dir(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    budget: &mut Budget,
    depth: usize,
) -> std::io::Result<()> {
    if depth > MAX_TREE_DEPTH {
        return Err(refuse(dir, "nested too deep for a plugin"));
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        // file_type() does not follow links: a link, FIFO, socket or device
        // inside a plugin is refused, so nothing outside it is read.
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            return Err(refuse(
                &path,
                "a symbolic link; plugin files must be regular files inside the plugin",
            ));
        }
        if kind.is_dir() {
            collect_dir(root, &path, out, budget, depth + 1)?;
            continue;
        }
        if !kind.is_file() {
            return Err(refuse(
                &path,
                "not a regular file (a FIFO, socket or device)",
            ));
        }
        budget.files += 1;
        if budget.files > MAX_TREE_FILES {
            return Err(refuse(root, "more files than a plugin may hold"));
        }
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        match read_input_file(&path, MAX_FILE_BYTES) {
            Ok(text) => {
                budget.bytes += text.len() as u64;
                if budget.bytes > MAX_TREE_BYTES {
                    return Err(refuse(root, "larger than a plugin may be"));
                }
                out.insert(rel, text);
            }
            // Binary files (icons) are not part of what telltale reads.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
