//! The URLs verify (and `ack`) is given, refused before any request when
//! they could not be used safely.

use crate::error::CommandError;

/// Refuses, before any request, a URL verify could not use safely: not
/// http(s), credentials in the URL itself, or plain http to another host
/// while credentials are to be sent (unless `allow_insecure`). The message
/// names the flag, never the URL (it may carry a password).
pub fn check_url(
    flag: &str,
    url: &str,
    credentials: bool,
    allow_insecure: bool,
) -> Result<(), CommandError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| CommandError::bad_input(format!("{flag}: not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CommandError::bad_input(format!(
            "{flag}: the scheme must be http or https, not `{}`",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(CommandError::bad_input(format!(
            "{flag} carries credentials (user:password@): pass them with --basic-auth-env instead"
        ))
        .with_hint("the URL is not repeated here, since it holds a password"));
    }
    if credentials && !allow_insecure && insecure(&parsed) {
        return Err(CommandError::bad_input(format!(
            "{flag} is plain http to {}: the credentials would travel unencrypted",
            parsed.host_str().unwrap_or_default()
        ))
        .with_hint(
            "use https, a port-forward to 127.0.0.1, or pass --allow-insecure-credentials",
        ));
    }
    Ok(())
}

/// Plain http to a host other than this machine.
pub fn insecure(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    url.scheme() == "http" && !loopback
}
