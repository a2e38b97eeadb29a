//! Rebuild when the embedded content changes: include_dir! does not track
//! files that are added or removed, so name the directories for cargo.

fn main() {
    for dir in ["plugins", "profiles", "manifests", "runbooks"] {
        println!("cargo:rerun-if-changed=../{dir}");
    }
}
