//! Did-you-mean: the closest known name to a misspelt one.

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let names = ["homelab", "production", "kind"];
        assert_eq!(did_you_mean("homelb", names), Some("homelab"));
        assert_eq!(did_you_mean("prod", names), Some("production"));
        assert_eq!(did_you_mean("zzz", names), None);
    }
}
