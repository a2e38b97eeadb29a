//! Credentials inside URLs, masked for display: a URL's user and password
//! (`https://***@host`) and a token-like query parameter. Libraries (reqwest,
//! kube, git) quote the URLs they were given, and a kubeconfig's server URL
//! may carry a password, so every error line, and the server a report
//! names, goes through this.

use std::sync::LazyLock;

/// `text` with the credentials a URL can carry replaced by `***`: the
/// password of `scheme://user:password@host` (as `gitops::repo::display_repo`
/// shows a repository) and the value of a `token`, `access_token`,
/// `password`, `secret`, `key` or `sig` query parameter. Causes come from
/// libraries (reqwest, kube, git) that quote the URL they were given, so
/// every error line goes through this before it is printed.
pub fn redact_credentials(text: &str) -> String {
    static USERINFO: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]*:[^/\s@]*@").ok()
    });
    static QUERY: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)([?&](?:access_token|token|password|passwd|secret|api_key|apikey|key|sig|signature)=)[^&\s#)]*",
        )
        .ok()
    });
    let text = match USERINFO.as_ref() {
        Some(re) => re.replace_all(text, "${1}***@").into_owned(),
        None => text.to_string(),
    };
    match QUERY.as_ref() {
        Some(re) => re.replace_all(&text, "${1}***").into_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_masked_and_the_rest_kept() {
        assert_eq!(
            redact_credentials("error sending request for url (https://u:pw@api.example.com/x)"),
            "error sending request for url (https://***@api.example.com/x)"
        );
        assert_eq!(
            redact_credentials("GET http://h/api?token=abc&x=1 failed"),
            "GET http://h/api?token=***&x=1 failed"
        );
        assert_eq!(
            redact_credentials("at http://h/q?a=1&access_token=abc"),
            "at http://h/q?a=1&access_token=***"
        );
        // A user without a password and an e-mail address are not secrets.
        for kept in [
            "ssh://git@github.com/o/r.git",
            "see a@b.c: nothing",
            "no url",
        ] {
            assert_eq!(redact_credentials(kept), kept);
        }
    }
}
