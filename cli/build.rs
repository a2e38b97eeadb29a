//! Records the git commit the binary is built from, for `telltale version`.
//! (The embedded content is telltale-core's; its build script tracks it.)
use std::process::Command;

fn main() {
    // A new commit moves HEAD or the branch it points to.
    println!("cargo:rerun-if-changed=../.git/HEAD");
    if let Ok(head) = std::fs::read_to_string("../.git/HEAD")
        && let Some(reference) = head.strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed=../.git/{}", reference.trim());
    }
    // A source tarball or `cargo install` from a registry has no git: say so.
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .env("LC_ALL", "C")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TELLTALE_GIT_COMMIT={commit}");
}
