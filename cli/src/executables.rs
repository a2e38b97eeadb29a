//! Executable plugins on PATH (`telltale-NAME`): finding one to run and
//! listing them (for `telltale NAME` and `plugins list`).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The prefix of an executable plugin's file name.
pub const PREFIX: &str = "telltale-";

/// `telltale-NAME` in a PATH directory, when it is an executable file.
pub fn find(name: &str, path_var: &OsStr) -> Option<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) {
        return None;
    }
    std::env::split_paths(path_var)
        .map(|dir| dir.join(format!("{PREFIX}{name}{}", std::env::consts::EXE_SUFFIX)))
        .find(|candidate| is_executable(candidate))
}

/// The names of the executable plugins on PATH (`telltale-NAME` → `NAME`), sorted.
pub fn discover(path_var: &OsStr) -> Vec<String> {
    let mut names = BTreeSet::new();
    for dir in std::env::split_paths(path_var) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            let Some(name) = file.strip_prefix(PREFIX) else {
                continue;
            };
            let name = name.trim_end_matches(std::env::consts::EXE_SUFFIX);
            if !name.is_empty() && is_executable(&entry.path()) {
                names.insert(name.to_string());
            }
        }
    }
    names.into_iter().collect()
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_path_separators_are_never_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find("../x", dir.path().as_os_str()), None);
        assert_eq!(find("", dir.path().as_os_str()), None);
    }
}
