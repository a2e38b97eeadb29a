//! The HTTP client verify uses: rustls with ring (as kube), a per-request
//! timeout, optional bearer or basic auth from secret sources.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::secrets::Secret;

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    auth: Auth,
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
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| HttpError::Failed {
                url: String::new(),
                message: e.to_string(),
            })?;
        Ok(Http { client, auth })
    }

    fn with_auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token.expose()),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
        }
    }

    /// Sends with the credentials; a transport error names the URL.
    async fn dispatch(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, HttpError> {
        self.with_auth(request)
            .send()
            .await
            .map_err(|e| HttpError::Failed {
                url: url.to_string(),
                message: error_chain(&e),
            })
    }

    /// Sends and fails on any status but 2xx, quoting the body.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, HttpError> {
        let fail = |message: String| HttpError::Failed {
            url: url.to_string(),
            message,
        };
        let response = self.dispatch(request, url).await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(fail(format!("HTTP {status}: {}", body.trim())));
        }
        Ok(response)
    }

    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, HttpError> {
        let response = self.send(self.client.get(url), url).await?;
        response.json().await.map_err(|e| HttpError::Failed {
            url: url.to_string(),
            message: format!("unexpected response: {e}"),
        })
    }

    /// GETs and returns the status, whatever it is (a load test counts
    /// errors instead of stopping at the first).
    pub async fn get_status(&self, url: &str) -> Result<u16, HttpError> {
        let response = self.dispatch(self.client.get(url), url).await?;
        let status = response.status().as_u16();
        // Read the body so the connection goes back to the pool.
        let _ = response.bytes().await;
        Ok(status)
    }

    pub async fn get_text(&self, url: &str) -> Result<String, HttpError> {
        let response = self.send(self.client.get(url), url).await?;
        response.text().await.map_err(|e| HttpError::Failed {
            url: url.to_string(),
            message: e.to_string(),
        })
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
        let fail = |message: String| HttpError::Failed {
            url: url.to_string(),
            message,
        };
        let response = self.dispatch(request, url).await?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&text)
            .map(|v| (status, v))
            .map_err(|e| {
                let body: String = text.chars().take(300).collect();
                fail(format!(
                    "HTTP {status}: unexpected response ({e}): {}",
                    body.trim()
                ))
            })
    }

    /// The same client with other credentials (Grafana's admin, say).
    pub fn with_credentials(&self, auth: Auth) -> Http {
        Http {
            client: self.client.clone(),
            auth,
        }
    }

    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<(), HttpError> {
        self.send(self.client.post(url).json(body), url)
            .await
            .map(|_| ())
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

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut current = e.source();
    while let Some(next) = current {
        let text = next.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = next.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            encode("{namespace=~\".+\"} |= \"a b\""),
            "%7Bnamespace%3D~%22.%2B%22%7D%20%7C%3D%20%22a%20b%22"
        );
    }
}
