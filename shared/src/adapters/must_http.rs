//! MUST's partner API over HTTPS (reqwest, rustls).
//!
//! One token is reused until it expires (shared between containers through the
//! token store) and refreshed once when MUST answers 401.

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::domain::bank::truck::PaymentMethod;
use crate::domain::ids::{BlobId, ScoringId};
use crate::domain::must::api::{
    AuthRequest, AuthResponse, BlobCreated, ContractCard, DocumentsRequest, InitRequest, InitResponse,
    PaymentOrderRequest, PaymentRequest,
};
use crate::ports::{now_ms, CallError, MustApi, TokenStore};

/// MUST's documented token lifetime.
const TOKEN_LIFETIME_MS: u64 = 7 * 24 * 3600 * 1000;
/// A token this close to expiry is replaced rather than used.
const TOKEN_MARGIN_MS: u64 = 10 * 60 * 1000;
const TOKEN_NAME: &str = "must";

pub struct MustCredentials {
    pub login: String,
    pub password: String,
}

pub struct MustHttp<T> {
    http: Client,
    base_url: String,
    credentials: MustCredentials,
    tokens: T,
    cached: Mutex<Option<(String, u64)>>,
}

/// An HTTP client for the insurers: rustls, bounded timeouts, no redirects to elsewhere.
pub fn http_client(timeout: Duration) -> Result<Client, reqwest::Error> {
    Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

fn transport_error(e: reqwest::Error) -> CallError {
    CallError::Transient(format!("{e}"))
}

/// Turns MUST's answer into a result: 2xx ok, 401 a refresh, 408/425/429/5xx transient, other 4xx refused.
async fn classify(response: Response) -> Result<Response, CallError> {
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
    let message = ["errorMessage", "message", "title"]
        .iter()
        .find_map(|f| json.get(f).and_then(|v| v.as_str()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}"));
    Err(CallError::Refused { status: status.as_u16(), code, message })
}

impl<T: TokenStore + Sync> MustHttp<T> {
    pub fn new(http: Client, base_url: impl Into<String>, credentials: MustCredentials, tokens: T) -> Self {
        MustHttp {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            credentials,
            tokens,
            cached: Mutex::new(None),
        }
    }

    async fn token(&self, refresh: bool) -> Result<String, CallError> {
        let mut cached = self.cached.lock().await;
        let fresh = |t: &(String, u64)| t.1 > now_ms() + TOKEN_MARGIN_MS;
        if !refresh {
            if let Some(t) = cached.as_ref().filter(|t| fresh(t)) {
                return Ok(t.0.clone());
            }
            if let Some(t) = self.tokens.load_token(TOKEN_NAME).await?.filter(fresh) {
                *cached = Some(t.clone());
                return Ok(t.0);
            }
        }
        let response = self
            .http
            .post(format!("{}/api/scoring/auth", self.base_url))
            .json(&AuthRequest {
                login: self.credentials.login.clone(),
                password: self.credentials.password.clone(),
            })
            .send()
            .await
            .map_err(transport_error)?;
        let auth: AuthResponse = classify(response).await?.json().await.map_err(transport_error)?;
        let lifetime = auth.expires_in_seconds.map_or(TOKEN_LIFETIME_MS, |s| s * 1000);
        let expires = now_ms() + lifetime;
        self.tokens.save_token(TOKEN_NAME, &auth.token, expires).await?;
        *cached = Some((auth.token.clone(), expires));
        tracing::info!(expires_at_ms = expires, "obtained a MUST token");
        Ok(auth.token)
    }

    /// Sends an authorised request, refreshing the token once on 401.
    async fn send(
        &self,
        build: impl Fn(&Client) -> RequestBuilder,
        idempotency_key: Option<&str>,
    ) -> Result<Response, CallError> {
        let mut refresh = false;
        loop {
            let token = self.token(refresh).await?;
            let mut req = build(&self.http).bearer_auth(token);
            if let Some(key) = idempotency_key {
                req = req.header("Idempotency-Key", key);
            }
            let response = req.send().await.map_err(transport_error)?;
            if response.status() == StatusCode::UNAUTHORIZED && !refresh {
                tracing::info!("MUST answered 401; refreshing the token");
                refresh = true;
                continue;
            }
            return classify(response).await;
        }
    }

    async fn post_json<B: Serialize + Sync>(
        &self,
        path: &str,
        body: &B,
        key: &str,
    ) -> Result<Response, CallError> {
        let url = format!("{}{path}", self.base_url);
        self.send(|c| c.request(Method::POST, &url).json(body), Some(key)).await
    }

    async fn read<R: DeserializeOwned>(response: Response) -> Result<R, CallError> {
        let status = response.status().as_u16();
        response.json().await.map_err(|e| CallError::Refused {
            status,
            code: None,
            message: format!("unreadable answer: {e}"),
        })
    }
}

impl<T: TokenStore + Sync + Send> MustApi for MustHttp<T> {
    async fn init(&self, request: &InitRequest, key: &str) -> Result<ScoringId, CallError> {
        let response = self.post_json("/api/scoring/init", request, key).await?;
        Ok(Self::read::<InitResponse>(response).await?.scoring_id)
    }

    async fn upload_blob(&self, file_name: &str, bytes: Vec<u8>, key: &str) -> Result<BlobId, CallError> {
        let url = format!("{}/api/blob", self.base_url);
        let response = self
            .send(
                |c| {
                    let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(file_name.to_owned());
                    c.post(&url).multipart(reqwest::multipart::Form::new().part("Blob", part))
                },
                Some(key),
            )
            .await?;
        Ok(Self::read::<BlobCreated>(response).await?.blob_id)
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
        card: &ContractCard,
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

    async fn download_blob(&self, blob_id: &BlobId) -> Result<Vec<u8>, CallError> {
        let url = format!("{}/api/blob/{blob_id}", self.base_url);
        let response = self.send(|c| c.get(&url), None).await?;
        Ok(response.bytes().await.map_err(transport_error)?.to_vec())
    }
}
