//! The HTTP client verify uses: rustls with ring (as kube), optional bearer
//! or basic auth from secret sources, and three bounds a hostile or broken
//! server cannot push past: every request ends by the run's deadline (the
//! `--timeout` of the whole verify run), every body is read with a size cap
//! (streamed, never buffered whole), and every piece of a body quoted in a
//! message is short and has the credentials this client sent blanked out
//! (a server may reflect the request's headers into its error page).

use std::time::Duration;

use base64::Engine as _;
use serde::de::{DeserializeOwned, DeserializeSeed};
use tokio::time::Instant;

use crate::secrets::Secret;

/// The most a successful answer may weigh (a large cluster's target list is
/// a few MB); past it the answer is refused, unread.
pub const BODY_CAP: usize = 16 * 1024 * 1024;
/// How much of an error body is read at all.
const ERROR_BODY_CAP: usize = 4 * 1024;
/// How much of a body a message quotes.
const QUOTE_CAP: usize = 200;
/// No single request waits longer than this, deadline or not.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The message of a request the deadline cut short.
pub const CUT_BY_DEADLINE: &str = "no answer before verify's --timeout ran out";
/// What replaces a credential in quoted text.
pub const REDACTED: &str = "[redacted]";

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    auth: Auth,
    /// When the verify run ends: no request outlives it.
    deadline: Option<Instant>,
    /// Sent with every request (a tenant header), one value per name.
    headers: Vec<(&'static str, String)>,
}

#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Bearer(Secret),
    Basic {
        user: String,
        password: Secret,
    },
}

impl Auth {
    /// Every form in which these credentials can come back in a body: the
    /// raw values and the encodings they travel in.
    pub fn forms(&self) -> Vec<String> {
        let mut forms = match self {
            Auth::None => Vec::new(),
            Auth::Bearer(token) => vec![token.expose().to_string()],
            Auth::Basic { user, password } => {
                let pair = format!("{user}:{}", password.expose());
                vec![
                    base64::engine::general_purpose::STANDARD.encode(&pair),
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(&pair),
                    pair,
                    password.expose().to_string(),
                ]
            }
        };
        forms.retain(|f| !f.is_empty());
        // Longest first, so a form containing another is blanked whole.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms
    }

    pub fn is_some(&self) -> bool {
        !matches!(self, Auth::None)
    }
}

/// `text` with every one of `secrets` replaced by [`REDACTED`].
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if !secret.is_empty() && out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// At most `max` characters of `text`, marked when cut.
pub fn cap(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}… ({} more bytes)", &text[..at], text.len() - at),
        None => text.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {message}")]
    Failed { url: String, message: String },
}

impl Http {
    pub fn new(auth: Auth) -> Result<Http, HttpError> {
        // Only the first call installs the provider; later ones are no-ops.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| HttpError::Failed {
                url: String::new(),
                message: e.to_string(),
            })?;
        Ok(Http {
            client,
            auth,
            deadline: None,
            headers: Vec::new(),
        })
    }

    /// The same client, sending `name: value` with every request (replacing
    /// an earlier value of `name`).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Http {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    /// The same client, whose requests all end by `deadline`.
    pub fn with_deadline(mut self, deadline: Instant) -> Http {
        self.deadline = Some(deadline);
        self
    }

    /// The forms of the credentials this client sends, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        self.auth.forms()
    }

    fn with_auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token.expose()),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
        }
    }

    fn error(&self, url: &str, message: String) -> HttpError {
        HttpError::Failed {
            url: url.to_string(),
            message: redact(&message, &self.secrets()),
        }
    }

    /// Runs one exchange (request and body) within the run's deadline.
    async fn bounded<T>(
        &self,
        url: &str,
        exchange: impl std::future::Future<Output = Result<T, HttpError>>,
    ) -> Result<T, HttpError> {
        let Some(deadline) = self.deadline else {
            return exchange.await;
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(self.error(url, CUT_BY_DEADLINE.to_string())),
        }
    }

    /// Sends with the credentials; a transport error names the URL.
    async fn dispatch(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, HttpError> {
        let request = self
            .headers
            .iter()
            .fold(request, |r, (name, value)| r.header(*name, value));
        self.with_auth(request)
            .send()
            .await
            .map_err(|e| self.error(url, crate::error::chain(&e)))
    }

    /// Reads at most `limit` bytes of the body; `true` when there was more.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        url: &str,
        limit: usize,
    ) -> Result<(Vec<u8>, bool), HttpError> {
        // Sized once from the announced length (never past the cap), so a
        // big answer is not copied over and over as the buffer doubles.
        let announced = response.content_length().unwrap_or(0);
        let mut body = Vec::with_capacity(announced.min(limit as u64 + 1) as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.error(url, crate::error::chain(&e)))?
        {
            let room = limit - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                return Ok((body, true));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, false))
    }

    /// A successful body, refused past [`BODY_CAP`].
    async fn body(&self, response: reqwest::Response, url: &str) -> Result<Vec<u8>, HttpError> {
        let (body, more) = self.read_capped(response, url, BODY_CAP).await?;
        if more {
            return Err(self.error(
                url,
                format!(
                    "the answer is larger than {} MiB; refused",
                    BODY_CAP / 1024 / 1024
                ),
            ));
        }
        Ok(body)
    }

    /// A short, redacted quote of a body, for a message.
    fn quote(&self, body: &[u8]) -> String {
        cap(
            &redact(&String::from_utf8_lossy(body), &self.secrets()),
            QUOTE_CAP,
        )
    }

    /// Sends and fails on any status but 2xx, quoting (a little of) the body.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, HttpError> {
        let response = self.dispatch(request, url).await?;
        let status = response.status();
        if !status.is_success() {
            let (body, _) = self
                .read_capped(response, url, ERROR_BODY_CAP)
                .await
                .unwrap_or_default();
            return Err(self.error(url, format!("HTTP {status}: {}", self.quote(&body))));
        }
        Ok(response)
    }

    fn parse<T: DeserializeOwned>(
        &self,
        url: &str,
        status: u16,
        body: &[u8],
    ) -> Result<T, HttpError> {
        serde_json::from_slice(body).map_err(|e| {
            self.error(
                url,
                format!(
                    "HTTP {status}: unexpected response ({e}): {}",
                    self.quote(body)
                ),
            )
        })
    }

    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, HttpError> {
        self.bounded(url, async {
            let response = self.send(self.client.get(url), url).await?;
            let status = response.status().as_u16();
            let body = self.body(response, url).await?;
            self.parse(url, status, &body)
        })
        .await
    }

    /// GETs a JSON answer and hands it to `seed` as it arrives, never held
    /// whole: the parser runs on a blocking thread and reads the body through
    /// a short channel, so memory stays that of one chunk plus what the seed
    /// keeps (a target list of any length costs what its tallies cost). The
    /// same bounds as [`Http::get_json`]: refused past [`BODY_CAP`], cut at
    /// the deadline (the parser then sees the end of the body and stops).
    pub async fn get_json_streamed<S, T>(&self, url: &str, seed: S) -> Result<T, HttpError>
    where
        S: for<'de> DeserializeSeed<'de, Value = T> + Send + 'static,
        T: Send + 'static,
    {
        self.bounded(url, async {
            let mut response = self.send(self.client.get(url), url).await?;
            let status = response.status().as_u16();
            let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
            let parser = tokio::task::spawn_blocking(move || {
                let mut reader = ChannelReader::new(rx);
                // serde_json reads a byte at a time: buffer it.
                let buffered = std::io::BufReader::with_capacity(64 * 1024, &mut reader);
                let mut de = serde_json::Deserializer::from_reader(buffered);
                let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
                drop(de);
                (parsed, reader.head)
            });
            let mut read = 0usize;
            let mut stopped = None;
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        read += chunk.len();
                        if read > BODY_CAP {
                            stopped = Some(format!(
                                "the answer is larger than {} MiB; refused",
                                BODY_CAP / 1024 / 1024
                            ));
                            break;
                        }
                        // The parser stopped early (a syntax error): its
                        // error says why.
                        if tx.send(chunk).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        stopped = Some(crate::error::chain(&e));
                        break;
                    }
                }
            }
            drop(tx);
            let (parsed, head) = parser
                .await
                .map_err(|e| self.error(url, format!("the JSON parser stopped: {e}")))?;
            if let Some(message) = stopped {
                return Err(self.error(url, message));
            }
            parsed.map_err(|e| {
                self.error(
                    url,
                    format!(
                        "HTTP {status}: unexpected response ({e}): {}",
                        self.quote(&head)
                    ),
                )
            })
        })
        .await
    }

    /// GETs and returns the status, whatever it is (a load test counts
    /// errors instead of stopping at the first).
    pub async fn get_status(&self, url: &str) -> Result<u16, HttpError> {
        self.bounded(url, async {
            let response = self.dispatch(self.client.get(url), url).await?;
            let status = response.status().as_u16();
            // Read (a little of) the body so the connection can be reused.
            let _ = self.read_capped(response, url, ERROR_BODY_CAP).await;
            Ok(status)
        })
        .await
    }

    pub async fn get_text(&self, url: &str) -> Result<String, HttpError> {
        self.bounded(url, async {
            let response = self.send(self.client.get(url), url).await?;
            let body = self.body(response, url).await?;
            Ok(String::from_utf8_lossy(&body).into_owned())
        })
        .await
    }

    /// POSTs JSON and parses the JSON answer whatever the status: some APIs
    /// (Grafana's /api/ds/query) answer 4xx or 207 with per-query errors in
    /// the body. Returns the status with the body.
    pub async fn post_for_json<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, T), HttpError> {
        self.for_json(self.client.post(url).json(body), url).await
    }

    /// GETs and parses the JSON answer whatever the status (Grafana's
    /// datasource health answers 400 with `{status: "ERROR", message}`).
    pub async fn get_for_json<T: DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<(u16, T), HttpError> {
        self.for_json(self.client.get(url), url).await
    }

    async fn for_json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(u16, T), HttpError> {
        self.bounded(url, async {
            let response = self.dispatch(request, url).await?;
            let status = response.status().as_u16();
            let body = self.body(response, url).await?;
            self.parse(url, status, &body).map(|v| (status, v))
        })
        .await
    }

    /// The same client with other credentials (Grafana's admin, say).
    pub fn with_credentials(&self, auth: Auth) -> Http {
        Http {
            client: self.client.clone(),
            auth,
            deadline: self.deadline,
            headers: self.headers.clone(),
        }
    }

    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<(), HttpError> {
        self.bounded(url, async {
            let response = self.send(self.client.post(url).json(body), url).await?;
            let _ = self.read_capped(response, url, ERROR_BODY_CAP).await;
            Ok(())
        })
        .await
    }
}

/// How many body chunks may wait for the streaming parser: one. hyper's
/// chunks grow to ~400 KiB on a fast connection, so each one queued is
/// memory that grows with the answer.
const STREAM_CHUNKS: usize = 1;

/// A blocking [`std::io::Read`] over the chunks an async body yields; it
/// keeps the first [`QUOTE_CAP`] bytes, for a message quoting the answer.
struct ChannelReader<B> {
    rx: tokio::sync::mpsc::Receiver<B>,
    current: Option<B>,
    at: usize,
    head: Vec<u8>,
}

impl<B: AsRef<[u8]>> ChannelReader<B> {
    fn new(rx: tokio::sync::mpsc::Receiver<B>) -> Self {
        ChannelReader {
            rx,
            current: None,
            at: 0,
            head: Vec::new(),
        }
    }
}

impl<B: AsRef<[u8]>> std::io::Read for ChannelReader<B> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(chunk) = &self.current {
                let rest = &chunk.as_ref()[self.at..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    let room = QUOTE_CAP.saturating_sub(self.head.len());
                    self.head.extend_from_slice(&rest[..n.min(room)]);
                    self.at += n;
                    return Ok(n);
                }
            }
            // The sender gone is the end of the body.
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.current = Some(chunk);
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
    }
}

/// Percent-encodes a query parameter (RFC 3986 unreserved characters pass).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_the_credentials_is_blanked() {
        let auth = Auth::Basic {
            user: "admin".into(),
            password: Secret::new("pw-canary"),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode("admin:pw-canary");
        let text = format!("echo: Basic {encoded} / admin:pw-canary / pw-canary");
        let out = redact(&text, &auth.forms());
        assert!(
            !out.contains("pw-canary") && !out.contains(&encoded),
            "{out}"
        );
        assert_eq!(out.matches(REDACTED).count(), 3, "{out}");
    }

    #[test]
    fn quotes_are_capped() {
        assert_eq!(cap("abc", 5), "abc");
        assert_eq!(cap(&"é".repeat(10), 3), "ééé… (14 more bytes)");
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            encode("{namespace=~\".+\"} |= \"a b\""),
            "%7Bnamespace%3D~%22.%2B%22%7D%20%7C%3D%20%22a%20b%22"
        );
    }
}
