//! MUST's partner API over HTTPS (reqwest, rustls).
//!
//! Token handling and error classification are [`AuthorizedClient`]'s.

use reqwest::{Client, RequestBuilder, Response};
use serde::Serialize;

use super::http_auth::{classify, download, read, transport_error, AuthorizedClient};
use crate::domain::ids::{BlobId, ScoringId};
use crate::domain::must::api::{
    AuthRequest, AuthResponse, BlobCreated, DocumentsRequest, InitRequest, InitResponse, PaymentOrderRequest,
    PaymentRequest,
};
use crate::domain::truck::bank::PaymentMethod;
use crate::ports::{CallError, Download, MustApi, TokenStore};

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
        let response = self
            .api
            .http
            .post(self.api.url("/api/scoring/auth"))
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
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

    /// `GET /api/blob/{blobId}`, whatever the file's type; a redirect (to MUST's storage)
    /// is followed without our token.
    async fn download_blob(&self, blob_id: &BlobId, max_bytes: u64) -> Result<Download, CallError> {
        let url = self.api.url(&format!("/api/blob/{blob_id}"));
        let first = self.api.send_raw(|c| c.get(&url), None, || self.fetch_token()).await?;
        // MUST's own storage may live on another host; our token does not go there.
        download(&self.api.http, first, |_| true, max_bytes).await
    }
}
