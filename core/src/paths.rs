//! Relative paths that stay inside the directory they are joined to: what a
//! bundle, a plugin's files and a GitOps layout may name. Checked before any
//! file is written, so a hostile name is refused, not escaped.

#[derive(Debug, thiserror::Error)]
#[error("`{path}` is not a safe relative path inside the output ({why})")]
pub struct UnsafePath {
    /// The path as given, cut to 200 characters.
    pub path: String,
    pub why: &'static str,
}

/// `path` is non-empty plain components (no `..`, no root, no `.`), each of
/// `[A-Za-z0-9._-]`, not starting with `.`, at most 255 bytes; ≤ 4096 in all.
pub fn safe_relative(path: &str) -> Result<(), UnsafePath> {
    let fail = |why| {
        Err(UnsafePath {
            path: path.chars().take(200).collect(),
            why,
        })
    };
    if path.is_empty() || path.len() > 4096 {
        return fail("empty or too long");
    }
    if path.starts_with('/') || path.contains('\\') {
        return fail("absolute or with a backslash");
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return fail("an empty, `.` or `..` component");
        }
        if part.starts_with('.') || part.len() > 255 {
            return fail("a hidden or over-long component");
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return fail("characters other than letters, digits, `.`, `_` and `-`");
        }
    }
    Ok(())
}
