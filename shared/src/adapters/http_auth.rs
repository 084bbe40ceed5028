//! An insurer's HTTPS API behind a bearer token: one token reused until it
//! expires (shared between containers through the token store), refreshed once
//! when the insurer answers 401; answers classified as transient or refused.

use std::future::Future;
use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::ports::{now_ms, CallError, TokenStore};

/// A token this close to expiry is replaced rather than used.
const TOKEN_MARGIN_MS: u64 = 10 * 60 * 1000;

/// An HTTP client for the insurers: rustls, bounded timeouts, no redirects.
pub fn http_client(timeout: Duration) -> Result<Client, reqwest::Error> {
    Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

pub fn transport_error(e: reqwest::Error) -> CallError {
    CallError::Transient(format!("{e}"))
}

/// Turns an answer into a result: 2xx ok; 408/425/429/5xx transient; other 4xx refused,
/// with the insurer's code and message when its body has them.
pub async fn classify(response: Response) -> Result<Response, CallError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    if status.is_server_error()
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_EARLY
        )
    {
        return Err(CallError::Transient(format!("HTTP {status}")));
    }
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let code = ["errorCode", "code"]
        .iter()
        .find_map(|f| json.get(f))
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .and_then(|c| u32::try_from(c).ok());
    let mut message = ["errorMessage", "message", "title"]
        .iter()
        .find_map(|f| json.get(f).and_then(|v| v.as_str()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}"));
    if let Some(errors) = json.get("errors").filter(|e| !e.is_null()) {
        message = format!("{message}: {errors}");
    }
    Err(CallError::Refused { status: status.as_u16(), code, message })
}

/// Reads a JSON answer; an unreadable one is a refusal (retrying will not fix it).
pub async fn read<R: DeserializeOwned>(response: Response) -> Result<R, CallError> {
    let status = response.status().as_u16();
    response.json().await.map_err(|e| CallError::Refused {
        status,
        code: None,
        message: format!("unreadable answer: {e}"),
    })
}

pub struct AuthorizedClient<T> {
    pub http: Client,
    pub base_url: String,
    token_name: &'static str,
    tokens: T,
    cached: Mutex<Option<(String, u64)>>,
}

impl<T: TokenStore + Sync> AuthorizedClient<T> {
    pub fn new(http: Client, base_url: impl Into<String>, token_name: &'static str, tokens: T) -> Self {
        AuthorizedClient {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token_name,
            tokens,
            cached: Mutex::new(None),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The current token, or a new one from `fetch` (token, lifetime in ms).
    async fn token<F, Fut>(&self, refresh: bool, fetch: &F) -> Result<String, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(String, u64), CallError>>,
    {
        let mut cached = self.cached.lock().await;
        let fresh = |t: &(String, u64)| t.1 > now_ms() + TOKEN_MARGIN_MS;
        if !refresh {
            if let Some(t) = cached.as_ref().filter(|t| fresh(t)) {
                return Ok(t.0.clone());
            }
            if let Some(t) = self.tokens.load_token(self.token_name).await?.filter(fresh) {
                *cached = Some(t.clone());
                return Ok(t.0);
            }
        }
        let (token, lifetime_ms) = fetch().await?;
        let expires = now_ms() + lifetime_ms;
        self.tokens.save_token(self.token_name, &token, expires).await?;
        *cached = Some((token.clone(), expires));
        tracing::info!(api = self.token_name, expires_at_ms = expires, "obtained a token");
        Ok(token)
    }

    /// Sends an authorised request, refreshing the token once on 401.
    pub async fn send<F, Fut>(
        &self,
        build: impl Fn(&Client) -> RequestBuilder,
        idempotency_key: Option<&str>,
        fetch_token: F,
    ) -> Result<Response, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(String, u64), CallError>>,
    {
        let mut refresh = false;
        loop {
            let token = self.token(refresh, &fetch_token).await?;
            let mut req = build(&self.http).bearer_auth(token);
            if let Some(key) = idempotency_key {
                req = req.header("Idempotency-Key", key);
            }
            let response = req.send().await.map_err(transport_error)?;
            if response.status() == StatusCode::UNAUTHORIZED && !refresh {
                tracing::info!(api = self.token_name, "401; refreshing the token");
                refresh = true;
                continue;
            }
            return classify(response).await;
        }
    }

    /// POSTs `body` as JSON to `path`, authorised as `send` does.
    pub async fn post_json<B, F, Fut>(
        &self,
        path: &str,
        body: &B,
        idempotency_key: Option<&str>,
        fetch_token: F,
    ) -> Result<Response, CallError>
    where
        B: serde::Serialize + Sync,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(String, u64), CallError>>,
    {
        let url = self.url(path);
        self.send(|c| c.post(&url).json(body), idempotency_key, fetch_token).await
    }
}
