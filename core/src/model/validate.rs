//! Value checks shared by every input: Kubernetes names, Prometheus
//! durations, quantities, times of day, time zones, host:port, env var names
//! and the shapes of credentials.
//!
//! Pure: each check takes the text and returns what was expected (and a
//! did-you-mean where one exists). None of the messages repeats the value,
//! so a check can run on text that may be a pasted secret.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

/// Why a value was refused: what was expected, and the fix when one is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub expected: String,
    pub hint: Option<String>,
}

impl Invalid {
    pub fn expected(expected: String) -> Self {
        Self::new(expected)
    }

    fn new(expected: impl Into<String>) -> Self {
        Self {
            expected: expected.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

pub type Check = Result<(), Invalid>;

static LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex"));

/// A DNS-1123 label: namespaces, plugin names, release names (≤ 63).
pub fn dns_label(text: &str) -> Check {
    if text.is_empty() || text.len() > 63 || !LABEL.is_match(text) {
        return Err(Invalid::new(format!(
            "a DNS-1123 label: 1 to 63 lower-case letters, digits or `-`, starting and ending with a letter or digit{}",
            suggest_label(text)
        )));
    }
    Ok(())
}

/// A DNS-1123 subdomain: object names (≤ 253, labels joined by `.`).
pub fn dns_subdomain(text: &str) -> Check {
    let ok = !text.is_empty() && text.len() <= 253 && text.split('.').all(|l| LABEL.is_match(l));
    if !ok {
        return Err(Invalid::new(format!(
            "a DNS-1123 subdomain: up to 253 lower-case letters, digits, `-` or `.`, starting and ending with a letter or digit{}",
            suggest_label(text)
        )));
    }
    Ok(())
}

/// `; did you mean `x`?` when lower-casing and replacing other characters
/// with `-` gives a valid label. Only for short, plain names (never a path
/// or something that may be a secret).
fn suggest_label(text: &str) -> String {
    if text.len() > 63 || text.contains(['/', '\\', ':', '@']) {
        return String::new();
    }
    let fixed: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let fixed = fixed.trim_matches('-').to_string();
    if !fixed.is_empty() && fixed != text && LABEL.is_match(&fixed) {
        format!("; did you mean `{fixed}`?")
    } else {
        String::new()
    }
}

static PROM_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$",
    )
    .expect("static regex")
});

/// A Prometheus duration (`30d`, `1h30m`, `500ms`), not zero.
pub fn prom_duration(text: &str) -> Check {
    let expected =
        "a Prometheus duration such as 30d, 6h, 1h30m or 90s (units ms, s, m, h, d, w, y)";
    if text.is_empty() || text.len() > 32 || !PROM_DURATION.is_match(text) {
        let hint = text
            .strip_suffix("days")
            .or_else(|| text.strip_suffix("day"))
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            .map(|n| format!("did you mean `{n}d`?"));
        let mut e = Invalid::new(expected);
        e.hint = hint;
        return Err(e);
    }
    if text
        .chars()
        .filter(|c| c.is_ascii_digit())
        .all(|c| c == '0')
    {
        return Err(Invalid::new(format!("{expected}, longer than zero")));
    }
    Ok(())
}

/// The length of a Prometheus duration in milliseconds (`0s` is 0); None
/// when it is not one.
pub fn prom_duration_ms(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 32 {
        return None;
    }
    let caps = PROM_DURATION.captures(text)?;
    // (capture group of the number, milliseconds per unit): y w d h m s ms.
    let units: [(usize, u64); 7] = [
        (2, 365 * 86_400_000),
        (4, 7 * 86_400_000),
        (6, 86_400_000),
        (8, 3_600_000),
        (10, 60_000),
        (12, 1_000),
        (14, 1),
    ];
    let mut total: u64 = 0;
    for (group, unit) in units {
        if let Some(n) = caps.get(group) {
            let n: u64 = n.as_str().parse().ok()?;
            total = total.checked_add(n.checked_mul(unit)?)?;
        }
    }
    Some(total)
}

static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$",
    )
    .expect("static regex")
});

/// A Kubernetes resource quantity (`100Gi`, `500m`, `1.5G`).
pub fn quantity(text: &str) -> Check {
    if !text.is_empty() && text.len() <= 64 && QUANTITY.is_match(text) {
        return Ok(());
    }
    let e = Invalid::new(
        "a Kubernetes quantity such as 100Gi, 512Mi, 500m or 2 (suffixes Ki Mi Gi Ti Pi Ei, k M G T P E, m)",
    );
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = &text[digits.len()..];
    let fix = match unit.to_ascii_lowercase().as_str() {
        "kb" | "kib" | "ki" | "k" => Some(("Ki", "k")),
        "mb" | "mib" | "mi" => Some(("Mi", "M")),
        "gb" | "gib" | "gi" | "g" => Some(("Gi", "G")),
        "tb" | "tib" | "ti" | "t" => Some(("Ti", "T")),
        "pb" | "pib" | "pi" | "p" => Some(("Pi", "P")),
        _ => None,
    };
    match fix {
        Some((binary, decimal)) if !digits.is_empty() && digits.len() <= 20 => Err(e.hint(
            format!("did you mean `{digits}{binary}` (binary) or `{digits}{decimal}` (decimal)?"),
        )),
        _ => Err(e),
    }
}

/// `HH:MM`, 00:00 to 24:00 (Alertmanager's time intervals).
pub fn time_of_day(text: &str) -> Result<u32, Invalid> {
    let expected = || Invalid::new("a time of day HH:MM between 00:00 and 24:00");
    let (h, m) = text.split_once(':').ok_or_else(expected)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(expected());
    }
    let h: u32 = h.parse().map_err(|_| expected())?;
    let m: u32 = m.parse().map_err(|_| expected())?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(expected());
    }
    Ok(h * 60 + m)
}

/// An IANA time zone name (`Europe/Berlin`, `UTC`), as Alertmanager loads it.
pub fn timezone(text: &str) -> Check {
    if text == "Local" || text.parse::<chrono_tz::Tz>().is_ok() {
        return Ok(());
    }
    let e = Invalid::new("an IANA time zone name such as UTC, Europe/Berlin or America/New_York");
    if text.len() > 64 {
        return Err(e);
    }
    let lower = text.to_ascii_lowercase();
    let close = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .find(|name| name.to_ascii_lowercase() == lower)
        .or_else(|| {
            super::suggest::did_you_mean(text, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()))
        });
    match close {
        Some(name) => Err(e.hint(format!("did you mean `{name}`?"))),
        None => Err(e),
    }
}

/// `host:port` with a port in 1..=65535 (`[::1]:25` for IPv6).
pub fn host_port(text: &str) -> Check {
    let e = || Invalid::new("host:port, e.g. smtp.example.com:587");
    let (host, port) = text.rsplit_once(':').ok_or_else(e)?;
    let port: u16 = port.parse().map_err(|_| e())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    if port == 0 || !host_ok {
        return Err(e());
    }
    Ok(())
}

static ENV_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$").expect("static regex"));

/// The name of an environment variable (never its value).
pub fn env_var_name(text: &str) -> Check {
    if ENV_NAME.is_match(text) && credential_shape(text).is_none() {
        return Ok(());
    }
    Err(Invalid::new(
        "the name of an environment variable (letters, digits and `_`), not its value",
    )
    .hint("write `{env: SLACK_WEBHOOK_URL}` and export the value in that variable"))
}

/// A wall-clock bound given on the command line (`--timeout`): humantime
/// syntax, from 1s to 24h. Keeps huge values from overflowing deadlines.
pub fn bounded_duration(text: &str) -> Result<Duration, String> {
    const MAX: Duration = Duration::from_secs(24 * 3600);
    if text.len() > 64 {
        return Err("expected a duration such as 10m, 90s or 1h".into());
    }
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("expected a duration such as 10m, 90s or 1h ({e})"))?;
    if d < Duration::from_secs(1) || d > MAX {
        return Err("expected a duration from 1s to 24h".into());
    }
    Ok(d)
}

struct Shape {
    what: &'static str,
    re: Regex,
}

static SHAPES: LazyLock<Vec<Shape>> = LazyLock::new(|| {
    [
        (
            "a URL with a password (user:password@host)",
            r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@",
        ),
        ("a Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{8,}"),
        (
            "a Slack webhook URL",
            r"hooks\.slack\.com/(services|workflows|triggers)/[A-Za-z0-9/_-]{8,}",
        ),
        (
            "a GitHub token",
            r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
        ),
        ("a GitLab token", r"\bglpat-[A-Za-z0-9_-]{16,}"),
        ("an AWS access key", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("an API key (sk-…)", r"\bsk-[A-Za-z0-9_-]{20,}"),
        (
            "a JSON web token",
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        ),
        ("a private key", r"-----BEGIN [A-Z ]*PRIVATE KEY"),
        (
            "a connection string with a password",
            r"(?i)\b(password|pwd)\s*=\s*[^;\s]+",
        ),
    ]
    .into_iter()
    .map(|(what, re)| Shape {
        what,
        re: Regex::new(re).expect("static regex"),
    })
    .collect()
});

/// What kind of credential `value` looks like, if any.
pub fn credential_shape(value: &str) -> Option<&'static str> {
    SHAPES.iter().find(|s| s.re.is_match(value)).map(|s| s.what)
}

/// A key whose value is a credential by its name (`adminPassword`,
/// `api_token`, `clientSecret`, `dsn`), unlike keys that name one
/// (`existingSecret`, `passwordKey`, `secretName`, `tokenFile`).
pub fn credential_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    if k.starts_with("existing")
        || [
            "name", "ref", "file", "path", "key", "keys", "enabled", "mode", "id",
        ]
        .iter()
        .any(|s| k.ends_with(s) && !CREDENTIAL_WORDS.iter().any(|w| k.ends_with(w)))
    {
        return false;
    }
    CREDENTIAL_WORDS.iter().any(|w| k.ends_with(w))
}

const CREDENTIAL_WORDS: &[&str] = &[
    "password",
    "passwd",
    "token",
    "secret",
    "dsn",
    "apikey",
    "secretkey",
    "accesskey",
    "privatekey",
    "credentials",
];

/// Why a plain value must not be accepted at `key` (its last segment):
/// a credential by shape anywhere, or a non-empty string at a credential key.
pub fn credential(key: Option<&str>, value: &str) -> Option<String> {
    if let Some(what) = credential_shape(value) {
        return Some(format!("this value looks like {what}"));
    }
    if let Some(key) = key
        && credential_key(key)
        && !value.trim().is_empty()
    {
        return Some(format!("`{key}` holds a credential"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns_label("monitoring").is_ok());
        assert!(dns_label("../etc").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        let e = dns_label("My_NS").unwrap_err();
        assert!(e.expected.contains("did you mean `my-ns`"), "{e:?}");
        assert!(dns_subdomain("a.b-c").is_ok());
        assert!(dns_subdomain("a/b").is_err());
    }

    #[test]
    fn durations_and_quantities() {
        assert!(prom_duration("30d").is_ok());
        assert!(prom_duration("1h30m").is_ok());
        assert!(prom_duration("30x").is_err());
        assert!(prom_duration("0s").is_err());
        assert_eq!(
            prom_duration("30days").unwrap_err().hint.as_deref(),
            Some("did you mean `30d`?")
        );
        assert!(quantity("100Gi").is_ok());
        assert!(quantity("500m").is_ok());
        let e = quantity("100Gb").unwrap_err();
        assert!(e.hint.unwrap().contains("`100Gi`"));
        assert!(bounded_duration("10m").is_ok());
        assert!(bounded_duration("99999999999999999999h").is_err());
        assert!(bounded_duration("1000000000h").is_err());
    }

    #[test]
    fn times_zones_hosts() {
        assert_eq!(time_of_day("09:30"), Ok(570));
        assert!(time_of_day("25:00").is_err());
        assert!(time_of_day("24:00").is_ok());
        assert!(timezone("Europe/Berlin").is_ok());
        assert!(timezone("Mars/Olympus").is_err());
        assert_eq!(
            timezone("europe/berlin").unwrap_err().hint.as_deref(),
            Some("did you mean `Europe/Berlin`?")
        );
        assert!(host_port("smtp.example.com:587").is_ok());
        assert!(host_port("nohostport").is_err());
        assert!(host_port("host:0").is_err());
    }

    #[test]
    fn credentials_by_shape_and_key() {
        let dsn = format!("postgres://u:{}@db/x", "pw");
        assert!(credential(None, &dsn).is_some());
        assert!(credential(None, "https://example.com/a").is_none());
        assert!(credential(None, &format!("xoxb-{}", "1234567890ab")).is_some());
        assert!(credential(Some("adminPassword"), "x").is_some());
        assert!(credential(Some("existingSecret"), "grafana-admin").is_none());
        assert!(credential(Some("passwordKey"), "password").is_none());
        assert!(credential(Some("retention"), "15d").is_none());
        assert!(env_var_name("SLACK_URL").is_ok());
        assert!(env_var_name(&format!("xoxb-{}", "1234567890ab")).is_err());
    }
}
