//! Counts in messages: "1 object", "2 objects", "0 keys". Every noun telltale
//! counts takes a plain "s", so there is no table of irregular plurals.

/// `n` and the noun, singular for exactly one.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_is_singular_everything_else_plural() {
        assert_eq!(count(0, "key"), "0 keys");
        assert_eq!(count(1, "object"), "1 object");
        assert_eq!(count(2, "check"), "2 checks");
    }
}
