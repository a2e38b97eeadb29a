//! Writing a tree of files into a directory the user named, without ever
//! destroying what telltale did not write.
//!
//! `plan --out DIR` (and `plugins lint`) replace DIR only when it is empty
//! or holds exactly a bundle telltale wrote: every file is one DIR's own
//! plan.json lists, with the digest it lists (for a fleet, fleet.json lists
//! every file of every cluster's bundle, their plan.json included). Anything else is named and
//! nothing is touched. The swap goes through sibling directories and
//! renames, so after any failure DIR holds the old bundle or the new one.
//! Every relative path written is checked to be plain components that stay
//! inside the root ([`safe_relative`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    #[error("{dir} holds {file}, which telltale did not write; refusing to replace {dir}")]
    Foreign { dir: String, file: String },
    #[error("{dir} is {what}; refusing to write a bundle there")]
    NotADirectory { dir: String, what: &'static str },
    #[error("{dir} contains the current directory; refusing to replace it")]
    ContainsCwd { dir: String },
    #[error("`{path}` is not a safe relative path inside the output ({why})")]
    UnsafePath { path: String, why: &'static str },
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl OutDirError {
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, OutDirError::Io { .. })
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            OutDirError::Foreign { .. } | OutDirError::NotADirectory { .. } => Some(
                "pass --out with a new or empty directory, or one that holds only a bundle telltale wrote"
                    .into(),
            ),
            OutDirError::ContainsCwd { .. } => Some(
                "run from outside the bundle (cd ..) or pass --out with another directory".into(),
            ),
            _ => None,
        }
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OutDirError {
    let path = path.display().to_string();
    move |source| OutDirError::Io { what, path, source }
}

/// Bundles are small; a plan.json larger than this is not one of ours.
const MAX_PLAN_JSON: u64 = 64 * 1024 * 1024;
/// Bounds on what is inspected in an existing directory.
const MAX_ENTRIES: usize = 100_000;
const MAX_DEPTH: usize = 32;

/// `path` is non-empty plain components (no `..`, no root, no `.`), each of
/// `[A-Za-z0-9._-]`, not starting with `.`, at most 255 bytes; ≤ 4096 in all.
pub fn safe_relative(path: &str) -> Result<(), OutDirError> {
    telltale_core::paths::safe_relative(path).map_err(|e| OutDirError::UnsafePath {
        path: e.path,
        why: e.why,
    })
}

/// `root/rel` after checking `rel` with [`safe_relative`].
pub fn confined(root: &Path, rel: &str) -> Result<PathBuf, OutDirError> {
    safe_relative(rel)?;
    let joined = root.join(rel);
    // Belt and braces: the components of a checked path are all Normal.
    if joined
        .strip_prefix(root)
        .map(|r| r.components().all(|c| matches!(c, Component::Normal(_))))
        != Ok(true)
    {
        return Err(OutDirError::UnsafePath {
            path: rel.to_string(),
            why: "it leaves the output directory",
        });
    }
    Ok(joined)
}

fn sha256_file(path: &Path, limit: u64) -> std::io::Result<Option<String>> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Ok(None);
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

/// The index a directory telltale wrote carries: plan.json (a bundle) or
/// fleet.json (one bundle per cluster of a fleet), with the `kind` each has.
const INDEXES: [(&str, &str); 2] = [("plan.json", "Plan"), ("fleet.json", "FleetPlan")];

/// The files the index in `dir` lists, with their digests, and the index's
/// name; None when there is no readable index of ours.
fn listed_files(dir: &Path) -> Option<(&'static str, BTreeMap<String, String>)> {
    INDEXES
        .iter()
        .find_map(|(name, kind)| Some((*name, index_files(&dir.join(name), kind)?)))
}

fn index_files(path: &Path, kind: &str) -> Option<BTreeMap<String, String>> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_PLAN_JSON {
        return None;
    }
    let mut text = String::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_PLAN_JSON)
        .read_to_string(&mut text)
        .ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    if value.get("kind")?.as_str()? != kind {
        return None;
    }
    let files = value.get("files")?.as_object()?;
    Some(
        files
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
    )
}

/// The first path in `dir` (sorted, depth-first) that is not a file the
/// bundle there lists with its digest; None when `dir` is empty or is
/// exactly such a bundle.
pub fn first_foreign(dir: &Path) -> Result<Option<String>, OutDirError> {
    let listed = listed_files(dir);
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(dir.to_path_buf(), String::new(), 0)];
    let mut seen = 0usize;
    let mut entries_all: Vec<(String, PathBuf, fs::FileType)> = Vec::new();
    while let Some((path, rel, depth)) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&path)
            .map_err(io("read", &path))?
            .collect::<Result<_, _>>()
            .map_err(io("read", &path))?;
        entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
        for entry in entries {
            seen += 1;
            let name = entry.file_name().to_string_lossy().to_string();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry.file_type().map_err(io("inspect", &entry.path()))?;
            if seen > MAX_ENTRIES || depth > MAX_DEPTH {
                return Ok(Some(child_rel));
            }
            if kind.is_dir() {
                stack.push((entry.path(), child_rel.clone(), depth + 1));
            }
            entries_all.push((child_rel, entry.path(), kind));
        }
    }
    entries_all.sort_by(|a, b| a.0.cmp(&b.0));
    if entries_all.is_empty() {
        return Ok(None);
    }
    let Some((index, listed)) = listed else {
        return Ok(entries_all.first().map(|(rel, ..)| rel.clone()));
    };
    for (rel, path, kind) in &entries_all {
        if kind.is_dir() {
            continue;
        }
        if rel == index && kind.is_file() {
            continue;
        }
        let Some(want) = listed.get(rel) else {
            return Ok(Some(rel.clone()));
        };
        if !kind.is_file() {
            return Ok(Some(rel.clone()));
        }
        let got = sha256_file(path, MAX_PLAN_JSON).map_err(io("read", path))?;
        if got.as_deref() != Some(want.as_str()) {
            return Ok(Some(rel.clone()));
        }
    }
    Ok(None)
}

/// The most threads that write a directory's files at once.
const WRITERS: usize = 4;
/// Fewer files than this are written by one thread (one bundle).
const PARALLEL_FROM: usize = 512;

/// Writes `files` (relative path → content) as the new content of `out`.
pub fn replace_dir<'a>(
    out: &Path,
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), OutDirError> {
    let files: Vec<(&str, &str)> = files.into_iter().collect();
    for (rel, _) in &files {
        safe_relative(rel)?;
    }
    let shown = out.display().to_string();
    let existing = match fs::symlink_metadata(out) {
        Ok(meta) if meta.is_dir() => true,
        Ok(meta) => {
            let what = if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a directory"
            };
            return Err(OutDirError::NotADirectory { dir: shown, what });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io("inspect", out)(e)),
    };
    let parent = match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    };
    if existing {
        // Renaming the directory the process (and likely the user's shell)
        // is in would leave them in a deleted directory.
        let cwd = std::env::current_dir()
            .ok()
            .and_then(|c| c.canonicalize().ok());
        let target = out.canonicalize().map_err(io("resolve", out))?;
        if cwd.is_some_and(|c| c.starts_with(&target)) {
            return Err(OutDirError::ContainsCwd { dir: shown });
        }
        if let Some(file) = first_foreign(out)? {
            return Err(OutDirError::Foreign { dir: shown, file });
        }
    }
    fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .filter(|n| n != "." && n != "..")
        .unwrap_or_else(|| "bundle".into());
    let stamp = std::process::id();
    let tmp = parent.join(format!(".{name}.new-{stamp}"));
    let old = parent.join(format!(".{name}.old-{stamp}"));
    for stale in [&tmp, &old] {
        if fs::symlink_metadata(stale).is_ok() {
            fs::remove_dir_all(stale).map_err(io("remove", stale))?;
        }
    }
    let write_all = || -> Result<(), OutDirError> {
        fs::create_dir(&tmp).map_err(io("create", &tmp))?;
        let write = |chunk: &[(&str, &str)]| -> Result<(), OutDirError> {
            for (rel, content) in chunk {
                let target = confined(&tmp, rel)?;
                if let Some(dir) = target.parent() {
                    fs::create_dir_all(dir).map_err(io("create", dir))?;
                }
                fs::write(&target, content).map_err(io("write", &target))?;
            }
            Ok(())
        };
        // A fleet writes thousands of files, and creating a file is the
        // file system's time, not ours: a few threads at once (into the new
        // directory nobody reads yet; create_dir_all tolerates a race).
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, WRITERS);
        if files.len() < PARALLEL_FROM || threads == 1 {
            return write(&files);
        }
        let chunk = files.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|c| scope.spawn(move || write(c)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a writer thread panicked"))
                .collect::<Result<Vec<()>, OutDirError>>()
                .map(|_| ())
        })
    };
    if let Err(e) = write_all() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if existing {
        if let Err(e) = fs::rename(out, &old) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(io("move aside", out)(e));
        }
        if let Err(e) = fs::rename(&tmp, out) {
            // Put the old bundle back: DIR must hold the old or the new one.
            let _ = fs::rename(&old, out);
            let _ = fs::remove_dir_all(&tmp);
            return Err(io("move the bundle to", out)(e));
        }
        fs::remove_dir_all(&old).map_err(io("remove the old bundle at", &old))?;
    } else if let Err(e) = fs::rename(&tmp, out) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(io("move the bundle to", out)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            ".hidden",
            "a\\b",
            "",
            "a/b c",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
        assert!(safe_relative("manifests/05-metrics/ConfigMap_monitoring_x.yaml").is_ok());
    }
}
