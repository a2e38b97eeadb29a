//! Where this package's binaries (`fake-helm`, `telltale-local-stack`) are,
//! for the tests and benches of another package.
//!
//! cargo sets `CARGO_BIN_EXE_<name>` only for the targets of the package
//! that has the binary, so telltale's tests cannot use it for these. They sit
//! next to the running test binary instead: `target/<profile>/deps/it-…`
//! runs, `target/<profile>/fake-helm` is the fake. cargo builds them when
//! one of this package's test targets is selected, which is why this package
//! has a smoke test named `it` like telltale's: the documented
//! `cargo test --workspace --all-features --test it …` builds both.
//!
//! A binary left from an older build must not be used silently (a test
//! would pass or fail on code that is no longer there), as it would be after
//! `cargo test -p telltale --test it`, which does not rebuild it. [`path`]
//! compares the binary with the sources rustc says it was built from (the
//! dep-info files in `deps/`): its own (the `deps/` file it is a hard link
//! of, as cargo places it) and those of the workspace libraries it links
//! ([`LINKED`]). A source newer than the binary means it is stale. The check
//! never refuses a binary that cargo would not rebuild (a false alarm would
//! be one the documented command cannot clear): a source of a library that
//! no longer exists is ignored, and where the binary is a copy, not a hard
//! link, its own sources cannot be told and are not checked.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The workspace libraries the fake binaries link (crate names), directly
/// or through `telltale`. A new workspace library they link belongs here;
/// one not built yet (`telltale_core`, issue 16's pure core) is skipped.
const LINKED: [&str; 3] = ["telltale_testing", "telltale", "telltale_core"];

/// The binary `name` of this package, built and up to date, next to the
/// running test or bench; panics with the command that builds it otherwise.
pub fn path(name: &str) -> PathBuf {
    of_package("telltale-testing", name)
}

/// The binary `name` of the workspace package `package` (this one's bench
/// runs `telltale` itself), as [`path`] finds it.
pub fn of_package(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running test binary's path");
    let dir = profile_dir(&exe);
    locate(&dir, workspace_root(), name).unwrap_or_else(|why| {
        let alone = build_command(&dir, package, name);
        // The documented test command builds the debug profile's binaries;
        // a bench (release) needs its binary built on its own.
        let how = if dir.file_name().is_some_and(|n| n == "debug") {
            format!(
                "with the tests (`cargo test --workspace --all-features --test it`, \
                 the documented command) or alone: `{alone}`"
            )
        } else {
            format!("first: `{alone}`")
        };
        panic!("{why}\n`{name}` is a binary of the {package} package; build it {how}")
    })
}

/// The directory rustc's dep-info paths are relative to (cargo runs rustc
/// there for workspace members).
fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `target/<profile>` for a test or bench binary in `target/<profile>/deps`.
fn profile_dir(exe: &Path) -> PathBuf {
    let dir = exe.parent().expect("the test binary is in a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps/ has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The cargo command that builds `name` into `dir`'s profile.
fn build_command(dir: &Path, package: &str, name: &str) -> String {
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => String::new(),
        Some("release") => " --release".to_string(),
        Some(other) => format!(" --profile {other}"),
    };
    format!("cargo build -p {package} --bin {name}{profile}")
}

/// `dir/name`, if it exists and no source it was built from is newer.
fn locate(dir: &Path, root: &Path, name: &str) -> Result<PathBuf, String> {
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = modified(&bin).map_err(|e| format!("`{}` is not built: {e}", bin.display()))?;
    let deps = dir.join("deps");
    let stale = |source: &str, why: &str| format!("`{}` is stale: `{source}` {why}", bin.display());
    if let Some(own) = twin(&deps, &name.replace('-', "_"), &bin) {
        let text = std::fs::read_to_string(own.with_extension("d")).unwrap_or_default();
        for source in sources(&text) {
            match modified(&root.join(&source)) {
                Ok(changed) if changed <= built => {}
                Ok(_) => return Err(stale(&source, "changed after it was built")),
                Err(_) => return Err(stale(&source, "(one of its sources) is gone")),
            }
        }
    }
    for library in LINKED {
        let Some(text) = newest_library_dep_info(&deps, library) else {
            continue;
        };
        for source in sources(&text) {
            if modified(&root.join(&source)).is_ok_and(|changed| changed > built) {
                return Err(stale(&source, "changed after it was built"));
            }
        }
    }
    Ok(bin)
}

/// The file in `deps/` that `bin` is a hard link of (cargo builds there and
/// links the result up one level), if it is one.
fn twin(deps: &Path, crate_name: &str, bin: &Path) -> Option<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(bin).ok()?;
        let prefix = format!("{crate_name}-");
        std::fs::read_dir(deps)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && !n.ends_with(".d"))
            })
            .find(|p| {
                std::fs::metadata(p).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
            })
    }
    #[cfg(not(unix))]
    {
        let _ = (deps, crate_name, bin);
        None
    }
}

/// The dep-info of the library `crate_name` most recently built in `deps/`
/// (the one describing `lib<crate_name>-….rlib`).
fn newest_library_dep_info(deps: &Path, crate_name: &str) -> Option<String> {
    let prefix = format!("{crate_name}-");
    let rlib = format!("/lib{crate_name}-");
    std::fs::read_dir(deps)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".d"))
        })
        .filter_map(|p| Some((modified(&p).ok()?, std::fs::read_to_string(&p).ok()?)))
        .filter(|(_, text)| {
            text.lines().any(|line| {
                line.split_once(": ")
                    .or_else(|| line.strip_suffix(':').map(|t| (t, "")))
                    .is_some_and(|(target, _)| target.contains(&rlib) && target.ends_with(".rlib"))
            })
        })
        .max_by_key(|(time, _)| *time)
        .map(|(_, text)| text)
}

fn modified(path: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(path)?.modified()
}

/// The prerequisites of the first rule of a Makefile-style dep-info file
/// (`target: a b c`; rustc repeats the same list for each output), with
/// `\ ` unescaped to a space; `# env-dep:` comments are skipped.
fn sources(text: &str) -> Vec<String> {
    let Some(line) = text
        .lines()
        .find(|l| !l.starts_with('#') && l.contains(": "))
    else {
        return Vec::new();
    };
    let (_, prerequisites) = line.split_once(": ").unwrap_or_default();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = prerequisites.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(' ') => current.push(' '),
                Some(other) => {
                    current.push('\\');
                    current.push(other);
                }
                None => current.push('\\'),
            },
            ' ' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set_modified(path: &Path, time: SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    fn hours_ago(hours: u64) -> SystemTime {
        SystemTime::now() - Duration::from_secs(hours * 3600)
    }

    /// A workspace (`src/a.rs`, `src/b c.rs`, `lib/l.rs`) and a profile dir
    /// laid out as cargo leaves it: `deps/fake_bin-123` and its dep-info,
    /// `fake-bin` a hard link of it, the library `telltale`'s dep-info. The
    /// sources are 3 hours old, the binary 2.
    struct Built {
        root: tempfile::TempDir,
        profile: tempfile::TempDir,
    }

    impl Built {
        fn new() -> Built {
            let root = tempfile::tempdir().unwrap();
            let profile = tempfile::tempdir().unwrap();
            let deps = profile.path().join("deps");
            std::fs::create_dir_all(root.path().join("src")).unwrap();
            std::fs::create_dir_all(root.path().join("lib")).unwrap();
            std::fs::create_dir_all(&deps).unwrap();
            for source in ["src/a.rs", "src/b c.rs", "lib/l.rs"] {
                let path = root.path().join(source);
                std::fs::write(&path, "").unwrap();
                set_modified(&path, hours_ago(3));
            }
            let bin = deps.join("fake_bin-123");
            std::fs::write(&bin, "binary").unwrap();
            set_modified(&bin, hours_ago(2));
            let d = deps.display();
            std::fs::write(
                deps.join("fake_bin-123.d"),
                format!("{d}/fake_bin-123: src/a.rs src/b\\ c.rs\n\nsrc/a.rs:\n"),
            )
            .unwrap();
            std::fs::write(
                deps.join("telltale-9.d"),
                format!("{d}/telltale-9.d: lib/l.rs\n\n{d}/libtelltale-9.rlib: lib/l.rs\n"),
            )
            .unwrap();
            std::fs::hard_link(&bin, profile.path().join("fake-bin")).unwrap();
            Built { root, profile }
        }

        fn touch(&self, source: &str) {
            set_modified(&self.root.path().join(source), SystemTime::now());
        }

        fn locate(&self) -> Result<PathBuf, String> {
            locate(self.profile.path(), self.root.path(), "fake-bin")
        }
    }

    #[test]
    fn a_binary_newer_than_its_sources_is_used() {
        let found = Built::new().locate().unwrap();
        assert_eq!(found.file_name().unwrap(), "fake-bin");
    }

    #[test]
    fn its_own_source_changed_after_the_build_makes_it_stale() {
        let built = Built::new();
        built.touch("src/b c.rs");
        let err = built.locate().unwrap_err();
        assert!(err.contains("is stale") && err.contains("b c.rs"), "{err}");
    }

    #[test]
    fn a_linked_library_changed_after_the_build_makes_it_stale() {
        let built = Built::new();
        built.touch("lib/l.rs");
        let err = built.locate().unwrap_err();
        assert!(
            err.contains("is stale") && err.contains("lib/l.rs"),
            "{err}"
        );
    }

    #[test]
    fn its_own_source_gone_makes_it_stale_a_library_source_gone_does_not() {
        let built = Built::new();
        std::fs::remove_file(built.root.path().join("lib/l.rs")).unwrap();
        built.locate().unwrap();
        std::fs::remove_file(built.root.path().join("src/a.rs")).unwrap();
        let err = built.locate().unwrap_err();
        assert!(err.contains("is gone"), "{err}");
    }

    /// A test binary's or another binary's dep-info of the same crate name
    /// is not a library's: editing `telltale`'s main.rs does not make the
    /// fakes stale (cargo would not rebuild them, so the alarm could never
    /// be cleared).
    #[test]
    fn only_a_library_dep_info_counts() {
        let built = Built::new();
        let deps = built.profile.path().join("deps");
        std::fs::write(root_file(&built, "main.rs"), "").unwrap();
        std::fs::write(
            deps.join("telltale-77.d"),
            format!("{}/telltale-77: main.rs\n", deps.display()),
        )
        .unwrap();
        built.touch("main.rs");
        built.locate().unwrap();
    }

    fn root_file(built: &Built, name: &str) -> PathBuf {
        built.root.path().join(name)
    }

    #[test]
    fn a_missing_binary_is_an_error() {
        let built = Built::new();
        let err = locate(built.profile.path(), built.root.path(), "other").unwrap_err();
        assert!(err.contains("is not built"), "{err}");
    }

    #[test]
    fn dep_info_rules_and_comments() {
        let text = "/t/x.d: a.rs b\\ c.rs\n\n/t/x: a.rs b\\ c.rs\n\na.rs:\n\n# env-dep:X=a: b\n";
        assert_eq!(sources(text), ["a.rs", "b c.rs"]);
        assert!(sources("# env-dep:X=a: b\n").is_empty());
    }

    #[test]
    fn the_build_command_names_the_profile() {
        let cmd = |p: &str| {
            build_command(
                Path::new("/t").join(p).as_path(),
                "telltale-testing",
                "fake-helm",
            )
        };
        assert_eq!(
            cmd("debug"),
            "cargo build -p telltale-testing --bin fake-helm"
        );
        assert_eq!(
            cmd("release"),
            "cargo build -p telltale-testing --bin fake-helm --release"
        );
        assert_eq!(
            cmd("ci"),
            "cargo build -p telltale-testing --bin fake-helm --profile ci"
        );
    }

    #[test]
    fn the_profile_dir_is_above_deps() {
        assert_eq!(
            profile_dir(Path::new("/t/debug/deps/it-0123")),
            Path::new("/t/debug")
        );
        assert_eq!(profile_dir(Path::new("/t/debug/it")), Path::new("/t/debug"));
    }
}
