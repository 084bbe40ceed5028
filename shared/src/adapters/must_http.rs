//! MUST's partner API over HTTPS (reqwest, rustls).
//!
//! Token handling and error classification are [`AuthorizedClient`]'s.

use reqwest::{Client, RequestBuilder, Response};
use serde::Serialize;

use super::http_auth::{classify, download, read, transport_error, AuthorizedClient};
use super::spans::partner_request;
use crate::domain::ids::{BlobId, ScoringId};
use crate::domain::must::api::{
    AuthRequest, AuthResponse, BlobCreated, DocumentsRequest, InitRequest, InitResponse, PaymentOrderRequest,
    PaymentRequest,
};
use crate::domain::must::files::MustFile;
use crate::domain::must::helpers::{
    LicenseCategoryAnswer, LicenseCategoryRequest, TariffAnswer, TariffRequest, LICENSE_CATEGORY_PATH,
    TARIFF_PATH,
};
use crate::domain::truck::bank::PaymentMethod;
use crate::ports::{CallError, Download, MustApi, MustHelpers, TokenStore};

/// MUST's documented token lifetime.
const TOKEN_LIFETIME_MS: u64 = 7 * 24 * 3600 * 1000;

pub struct MustCredentials {
    pub login: String,
    pub password: String,
}

pub struct MustHttp<T> {
    api: AuthorizedClient<T>,
    credentials: MustCredentials,
}

impl<T: TokenStore + Sync> MustHttp<T> {
    pub fn new(http: Client, base_url: impl Into<String>, credentials: MustCredentials, tokens: T) -> Self {
        MustHttp { api: AuthorizedClient::new(http, base_url, crate::keys::MUST_TOKEN, tokens), credentials }
    }

    /// `POST /api/scoring/auth`: a token, valid 7 days unless MUST says otherwise.
    async fn fetch_token(&self) -> Result<(String, u64), CallError> {
        let body = AuthRequest {
            login: self.credentials.login.clone(),
            password: self.credentials.password.clone(),
        };
        let request = self.api.http.post(self.api.url("/api/scoring/auth")).json(&body);
        let response =
            partner_request("must", None, &self.api.http, request).await.map_err(transport_error)?;
        let auth: AuthResponse = read(classify(response).await?).await?;
        Ok((auth.token, auth.expires_in_seconds.map_or(TOKEN_LIFETIME_MS, |s| s * 1000)))
    }

    async fn send(
        &self,
        build: impl Fn(&Client) -> RequestBuilder,
        key: Option<&str>,
    ) -> Result<Response, CallError> {
        self.api.send(build, key, || self.fetch_token()).await
    }

    async fn post_json<B: Serialize + Sync>(
        &self,
        path: &str,
        body: &B,
        key: &str,
    ) -> Result<Response, CallError> {
        self.api.post_json(path, body, Some(key), || self.fetch_token()).await
    }
}

impl<T: TokenStore + Sync + Send> MustApi for MustHttp<T> {
    async fn init(&self, request: &InitRequest, key: &str) -> Result<ScoringId, CallError> {
        let response = self.post_json("/api/scoring/init", request, key).await?;
        Ok(read::<InitResponse>(response).await?.scoring_id)
    }

    async fn upload_blob(&self, file_name: &str, bytes: Vec<u8>, key: &str) -> Result<BlobId, CallError> {
        let url = self.api.url("/api/blob");
        let response = self
            .send(
                |c| {
                    let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(file_name.to_owned());
                    c.post(&url).multipart(reqwest::multipart::Form::new().part("Blob", part))
                },
                Some(key),
            )
            .await?;
        Ok(read::<BlobCreated>(response).await?.blob_id)
    }

    async fn associate_documents(
        &self,
        sid: &ScoringId,
        request: &DocumentsRequest,
        key: &str,
    ) -> Result<(), CallError> {
        self.post_json(&format!("/api/scoring/{sid}/documents"), request, key).await.map(drop)
    }

    async fn submit_contract(
        &self,
        sid: &ScoringId,
        card: &serde_json::Value,
        key: &str,
    ) -> Result<(), CallError> {
        self.post_json(&format!("/api/scoring/{sid}/contract"), card, key).await.map(drop)
    }

    async fn request_payment(
        &self,
        sid: &ScoringId,
        method: PaymentMethod,
        request: &PaymentRequest,
        key: &str,
    ) -> Result<(), CallError> {
        let path = match method {
            PaymentMethod::Link => format!("/api/scoring/{sid}/payment-link"),
            PaymentMethod::Invoice => format!("/api/scoring/{sid}/payment-invoice"),
        };
        self.post_json(&path, request, key).await.map(drop)
    }

    async fn submit_payment_order(
        &self,
        sid: &ScoringId,
        request: &PaymentOrderRequest,
        key: &str,
    ) -> Result<(), CallError> {
        self.post_json(&format!("/api/scoring/scoring/{sid}/payment-order"), request, key).await.map(drop)
    }

    /// `GET /api/blob/{blobId}`, `GET /download?key=`, or a link on MUST's own API host,
    /// whatever the file's type; a redirect (to MUST's storage) is followed without our
    /// token. A link anywhere else is not fetched: our token does not go there, and a hook
    /// does not choose where polis connects.
    async fn download(&self, file: &MustFile, max_bytes: u64) -> Result<Download, CallError> {
        let url = match file {
            MustFile::Blob { blob_id } => self.api.url(&format!("/api/blob/{blob_id}")),
            MustFile::DownloadKey { key } => {
                let mut url = reqwest::Url::parse(&self.api.url("/download"))
                    .map_err(|e| CallError::Unusable(format!("MUST's base URL: {e}")))?;
                url.query_pairs_mut().append_pair("key", key);
                url.to_string()
            }
            MustFile::Link { url } if same_origin(url, &self.api.base_url) => url.clone(),
            MustFile::Link { .. } => {
                return Err(CallError::Unusable(
                    "a link to a host other than MUST's API: not fetched, kept for a person".into(),
                ))
            }
        };
        let first = self.api.send_raw(|c| c.get(&url), None, || self.fetch_token()).await?;
        // MUST's own storage may live on another host; our token does not go there.
        download(&self.api.http, first, |_| true, max_bytes).await
    }
}

/// The helpers change nothing at MUST: no idempotency key; the same token as the runner's
/// (`TOKEN#must`), refreshed once on a 401. A success whose body cannot be read is
/// `Ambiguous` (nothing changed, but there is no answer to give).
impl<T: TokenStore + Sync + Send> MustHelpers for MustHttp<T> {
    async fn license_category(
        &self,
        request: &LicenseCategoryRequest,
    ) -> Result<LicenseCategoryAnswer, CallError> {
        let response =
            self.api.post_json(LICENSE_CATEGORY_PATH, request, None, || self.fetch_token()).await?;
        read(response).await
    }

    async fn tariff(&self, request: &TariffRequest) -> Result<TariffAnswer, CallError> {
        let response = self.api.post_json(TARIFF_PATH, request, None, || self.fetch_token()).await?;
        read(response).await
    }
}

/// Whether `url` is on the scheme, host and port of `base`.
fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::adapters::http_auth::http_client;
    use crate::adapters::memory::MemoryTable;
    use crate::domain::must::helpers::LicenseCategoryRequest;

    /// A MUST on a loopback port that knows only the token `fresh` (issued by its auth) and
    /// answers the licence-category helper; it records each request's first line and token.
    async fn must(seen: Arc<Mutex<Vec<String>>>, helper_status: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = vec![0u8; 16 * 1024];
                let mut n = 0;
                // Headers and the (small) body arrive together or soon after.
                while n < buf.len() {
                    let read = socket.read(&mut buf[n..]).await.unwrap_or(0);
                    n += read;
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if read == 0 || text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = text.lines().next().unwrap_or_default().to_owned();
                let token = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("authorization: bearer ").map(str::to_owned)
                    })
                    .unwrap_or_default();
                seen.lock().unwrap().push(format!("{line} [{token}]"));
                let (status, body) = if line.contains("/api/scoring/auth") {
                    ("200 OK", r#"{"token":"fresh"}"#)
                } else if token != "fresh" {
                    ("401 Unauthorized", r#"{"message":"token missing or expired"}"#)
                } else if helper_status.starts_with("200") {
                    (helper_status, r#"{"licenseCategory":"C","trailerRequired":false}"#)
                } else {
                    (helper_status, r#"{"message":"incorrect vin","errorCode":1406}"#)
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        url
    }

    fn client(url: &str, tokens: MemoryTable) -> MustHttp<MemoryTable> {
        let credentials = MustCredentials { login: "polis".into(), password: "polis-local".into() };
        MustHttp::new(http_client(Duration::from_secs(5)).unwrap(), url, credentials, tokens)
    }

    fn request() -> LicenseCategoryRequest {
        LicenseCategoryRequest::parse(br#"{"vin":"WMA06XZZ8GP000001"}"#).unwrap()
    }

    #[tokio::test]
    async fn a_helper_reuses_the_shared_token_and_refreshes_it_once_on_a_401() {
        let seen = Arc::default();
        let url = must(Arc::clone(&seen), "200 OK").await;
        let tokens = MemoryTable::default();
        // The runner's token, still valid by its date, but MUST has forgotten it.
        tokens
            .save_token(crate::keys::MUST_TOKEN, "stale", crate::ports::now_ms() + 86_400_000)
            .await
            .unwrap();
        let must = client(&url, tokens.clone());
        let answer = must.license_category(&request()).await.unwrap();
        assert_eq!(answer.license_category.as_deref(), Some("C"));
        let calls = seen.lock().unwrap().clone();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(
            calls[0].starts_with("POST /api/scoring/vehicle/license-category")
                && calls[0].ends_with("[stale]")
        );
        assert!(calls[1].starts_with("POST /api/scoring/auth"), "{calls:?}");
        assert!(calls[2].ends_with("[fresh]"), "{calls:?}");
        let shared = tokens.load_token(crate::keys::MUST_TOKEN).await.unwrap().unwrap();
        assert_eq!(shared.0, "fresh", "the new token is shared with the runner");
        // The next call uses it without asking again.
        must.license_category(&request()).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn a_refusal_keeps_musts_status_code_and_message() {
        let seen = Arc::default();
        let url = must(seen, "400 Bad Request").await;
        let must = client(&url, MemoryTable::default());
        let error = must.license_category(&request()).await.unwrap_err();
        assert_eq!(
            error,
            CallError::Refused { status: 400, code: Some(1406), message: "incorrect vin".into() }
        );
    }

    #[test]
    fn a_link_is_fetched_only_on_musts_own_scheme_host_and_port() {
        let base = "https://api.must.example";
        assert!(same_origin("https://api.must.example/api/blob/p-1", base));
        assert!(same_origin("https://api.must.example:443/files/p", base));
        for other in [
            "http://api.must.example/p",
            "https://files.must.example/p",
            "https://api.must.example:8443/p",
            "not a url",
        ] {
            assert!(!same_origin(other, base), "{other}");
        }
    }
}
