//! An insurer's HTTPS API behind a bearer token: one token reused until it
//! expires (shared between containers through the token store), refreshed once
//! when the insurer answers 401; every outcome classified by what the insurer may
//! have done with the request (see [`CallError`]); files read with a size cap.

use std::future::Future;
use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use super::spans::partner_request;
use crate::domain::links::host_of;
use crate::ports::{now_ms, CallError, Download, TokenStore, TIMED_OUT};

/// A token this close to expiry is replaced rather than used.
const TOKEN_MARGIN_MS: u64 = 10 * 60 * 1000;

/// Redirects followed when downloading a file.
const MAX_REDIRECTS: usize = 3;

/// An HTTP client for the insurers: rustls, bounded timeouts, no automatic redirects
/// (a redirected POST is an unknown outcome; downloads follow redirects themselves).
pub fn http_client(timeout: Duration) -> Result<Client, reqwest::Error> {
    Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A transport failure, classified, without the URL (print links are personal data).
pub fn transport_error(e: reqwest::Error) -> CallError {
    // Only a failure to connect (DNS, refused, TLS, connect timeout) surely left the request unsent.
    let connect = e.is_connect();
    let e = e.without_url();
    let mut text = e.to_string();
    // The causes say whether it was refused, reset or timed out; none of them carries the URL.
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if connect {
        CallError::NotSent(text)
    } else if e.is_timeout() {
        CallError::Ambiguous(format!("{TIMED_OUT}: {text}"))
    } else {
        CallError::Ambiguous(text)
    }
}

/// Turns an answer into a result: 2xx ok; 408/425/429 and a 401 (after a fresh token)
/// processed nothing; 3xx and 5xx may have processed it; other 4xx are refusals, with
/// the insurer's code and message when its body has them.
pub async fn classify(response: Response) -> Result<Response, CallError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_EARLY
            | StatusCode::UNAUTHORIZED
    ) {
        return Err(CallError::NotSent(format!("HTTP {status}")));
    }
    if status.is_server_error() || status.is_redirection() || status.is_informational() {
        return Err(CallError::Ambiguous(format!("HTTP {status}")));
    }
    let text = read_capped(response, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let code = ["errorCode", "code"]
        .iter()
        .find_map(|f| json.get(f))
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .and_then(|c| u32::try_from(c).ok());
    let mut message = ["errorMessage", "message", "title"]
        .iter()
        .find_map(|f| json.get(f).and_then(|v| v.as_str()))
        .map(|m| m.chars().take(500).collect())
        .unwrap_or_else(|| format!("HTTP {status}"));
    if let Some(errors) = json.get("errors").filter(|e| !e.is_null()) {
        let errors: String = errors.to_string().chars().take(1000).collect();
        message = format!("{message}: {errors}");
    }
    Err(CallError::Refused { status: status.as_u16(), code, message })
}

/// Reads a JSON answer. A success whose body cannot be read is an unknown outcome: the
/// insurer acted, and we do not know what it answered.
pub async fn read<R: DeserializeOwned>(response: Response) -> Result<R, CallError> {
    let bytes = read_capped(response, 1024 * 1024).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        CallError::Ambiguous(format!("unreadable answer at line {} column {}", e.line(), e.column()))
    })
}

/// The body, read chunk by chunk up to `max` bytes (`Content-Length` checked first).
pub async fn read_capped(mut response: Response, max: u64) -> Result<Vec<u8>, CallError> {
    let over = |n: u64| CallError::Unusable(format!("{n} bytes or more, over the {max}-byte cap"));
    if let Some(length) = response.content_length().filter(|n| *n > max) {
        return Err(over(length));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(over((bytes.len() + chunk.len()) as u64));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A file from the answer to a GET, following up to three redirects to hosts `allowed`
/// accepts (the first request may carry a token; the redirects go without it), read up
/// to `max` bytes.
pub async fn download(
    http: &Client,
    mut response: Response,
    allowed: impl Fn(&str) -> bool,
    max: u64,
) -> Result<Download, CallError> {
    for _ in 0..MAX_REDIRECTS {
        if !response.status().is_redirection() {
            break;
        }
        let next = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| response.url().join(l).ok())
            .ok_or_else(|| {
                CallError::Ambiguous(format!("HTTP {} without a usable Location", response.status()))
            })?;
        if !host_of(next.as_str()).is_some_and(&allowed) {
            return Err(CallError::Unusable("redirected to a host we do not download from".into()));
        }
        response = partner_request("download", Some("GET redirected file"), http, http.get(next))
            .await
            .map_err(transport_error)?;
    }
    let response = classify(response).await?;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .filter(|v| !v.is_empty());
    Ok(Download { bytes: read_capped(response, max).await?, content_type })
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

    /// The current token, or a new one from `fetch` (token, lifetime in ms). Any failure
    /// to have a token means the request itself was not sent.
    async fn token<F, Fut>(&self, refresh: bool, fetch: &F) -> Result<String, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(String, u64), CallError>>,
    {
        let not_sent = |e: CallError| match e {
            CallError::NotSent(m) => CallError::NotSent(m),
            other => CallError::NotSent(format!("no token: {other}")),
        };
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
        let (token, lifetime_ms) = fetch().await.map_err(not_sent)?;
        let expires = now_ms() + lifetime_ms;
        self.tokens.save_token(self.token_name, &token, expires).await?;
        *cached = Some((token.clone(), expires));
        tracing::info!(api = self.token_name, expires_at_ms = expires, "obtained a token");
        Ok(token)
    }

    /// Sends an authorised request, refreshing the token once on 401. The answer is
    /// classified; a 401 with a fresh token is `NotSent` (nothing was processed).
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
        let response = self.send_raw(build, idempotency_key, fetch_token).await?;
        classify(response).await
    }

    /// As [`AuthorizedClient::send`], the answer not classified (a download follows redirects first).
    pub async fn send_raw<F, Fut>(
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
            let response =
                partner_request(self.token_name, None, &self.http, req).await.map_err(transport_error)?;
            if response.status() == StatusCode::UNAUTHORIZED && !refresh {
                tracing::info!(api = self.token_name, "401; refreshing the token");
                refresh = true;
                continue;
            }
            return Ok(response);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A partner on a loopback port answering every request with `head`, then the body
    /// `write_body` writes; returns its URL and the body bytes it managed to send.
    async fn partner<F, Fut>(head: &'static str, write_body: F) -> (String, Arc<AtomicU64>)
    where
        F: Fn(tokio::net::TcpStream, Arc<AtomicU64>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/print/customer-link-7731440000.pdf", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                if socket.write_all(head.as_bytes()).await.is_ok() {
                    write_body(socket, counter.clone()).await;
                }
            }
        });
        (url, sent)
    }

    /// Writes up to 200 MB in 64 KiB pieces, counting what got out, until the reader hangs up.
    async fn two_hundred_megabytes(mut socket: tokio::net::TcpStream, sent: Arc<AtomicU64>) {
        let piece = vec![b'%'; 64 * 1024];
        for _ in 0..(200 * 16) {
            if socket.write_all(&piece).await.is_err() {
                return;
            }
            sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
    }

    async fn get(url: &str, timeout: Duration) -> Result<Download, CallError> {
        let http = http_client(timeout).unwrap();
        let response = http.get(url).send().await.map_err(transport_error)?;
        download(&http, response, |_| true, 1024 * 1024).await
    }

    #[tokio::test]
    async fn a_file_announced_over_the_cap_is_refused_before_its_body_is_read() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/pdf\r\ncontent-length: 209715200\r\n\r\n";
        let (url, sent) = partner(head, two_hundred_megabytes).await;
        let Err(error) = get(&url, Duration::from_secs(10)).await else { panic!("refused") };
        assert!(matches!(&error, CallError::Unusable(e) if e.contains("209715200 bytes")), "{error}");
        assert!(sent.load(Ordering::SeqCst) < 50 * 1024 * 1024, "the 200 MB were not read");
    }

    #[tokio::test]
    async fn a_file_of_unannounced_length_is_read_only_up_to_the_cap() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/pdf\r\nconnection: close\r\n\r\n";
        let (url, sent) = partner(head, two_hundred_megabytes).await;
        let Err(error) = get(&url, Duration::from_secs(10)).await else { panic!("refused") };
        assert!(
            matches!(&error, CallError::Unusable(e) if e.contains("over the 1048576-byte cap")),
            "{error}"
        );
        // What the kernel buffers besides: far from 200 MB.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(sent.load(Ordering::SeqCst) < 50 * 1024 * 1024, "{} bytes sent", sent.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_partner_that_trickles_bytes_is_cut_at_the_timeout_and_the_link_stays_out_of_the_error() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/pdf\r\ncontent-length: 1000\r\n\r\n";
        let (url, _) = partner(head, |mut socket, _| async move {
            for _ in 0..1000 {
                if socket.write_all(b"%").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        let started = std::time::Instant::now();
        let Err(error) = get(&url, Duration::from_secs(1)).await else { panic!("cut") };
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "cut at the 1 s timeout: {:?}",
            started.elapsed()
        );
        assert!(error.is_transient(), "worth another try later: {error}");
        let said = error.to_string();
        assert!(!said.contains("customer-link") && !said.contains("7731440000"), "{said}");
    }
}
