//! BIMA's API over HTTPS: `POST /api/v1/auth/token` (the client's credentials as
//! HTTP Basic, body `{}` as in the seed), then calc, sale and print link.

use reqwest::{Client, Response};
use serde::Serialize;

use super::http_auth::{classify, download, read, read_capped, transport_error, AuthorizedClient};
use super::spans::partner_request;
use crate::domain::bima::api::{
    CalcRequest, Calculation, PrintLink, PrintLinkRequest, SaleAccepted, TokenResponse,
};
use crate::domain::bima::sale::SaleRequest;
use crate::domain::links::host_of;
use crate::ports::{BimaApi, CallError, Download, TokenStore};

/// BIMA does not say how long a token lives; one hour, refreshed on 401 anyway.
const TOKEN_LIFETIME_MS: u64 = 3600 * 1000;

pub struct BimaCredentials {
    pub client_id: String,
    pub client_secret: String,
}

pub struct BimaHttp<T> {
    api: AuthorizedClient<T>,
    credentials: BimaCredentials,
    /// Hosts whose print forms we download (BIMA's API host and any configured).
    print_hosts: Vec<String>,
}

impl<T: TokenStore + Sync> BimaHttp<T> {
    pub fn new(
        http: Client,
        base_url: impl Into<String>,
        credentials: BimaCredentials,
        extra_print_hosts: &[String],
        tokens: T,
    ) -> Self {
        let api = AuthorizedClient::new(http, base_url, crate::keys::BIMA_TOKEN, tokens);
        let mut print_hosts: Vec<String> = extra_print_hosts.to_vec();
        print_hosts.extend(host_of(&api.base_url).map(str::to_owned));
        BimaHttp { api, credentials, print_hosts }
    }

    async fn fetch_token(&self) -> Result<(String, u64), CallError> {
        let request = self
            .api
            .http
            .post(self.api.url("/api/v1/auth/token"))
            .basic_auth(&self.credentials.client_id, Some(&self.credentials.client_secret))
            .json(&serde_json::json!({}));
        let response =
            partner_request("bima", None, &self.api.http, request).await.map_err(transport_error)?;
        let token: TokenResponse = read(classify(response).await?).await?;
        Ok((token.token, TOKEN_LIFETIME_MS))
    }

    async fn post<B: Serialize + Sync>(
        &self,
        path: &str,
        body: &B,
        key: Option<&str>,
    ) -> Result<Response, CallError> {
        self.api.post_json(path, body, key, || self.fetch_token()).await
    }
}

impl<T: TokenStore + Sync + Send> BimaApi for BimaHttp<T> {
    async fn calculate(&self, request: &CalcRequest) -> Result<Calculation, CallError> {
        read(self.post("/api/v1/premium/calc", request, None).await?).await
    }

    /// The seed promises `200 OK (сохранено)` and nothing more: any success is a sale,
    /// its answer read for the policy's id and number where it has them.
    async fn sell(&self, request: &SaleRequest, key: &str) -> Result<SaleAccepted, CallError> {
        let response = self.post("/api/v1/policies/sale", request, Some(key)).await?;
        let body = read_capped(response, 64 * 1024).await.unwrap_or_default();
        Ok(SaleAccepted::from_answer(&body))
    }

    async fn print_link(&self, request: &PrintLinkRequest, key: &str) -> Result<PrintLink, CallError> {
        read(self.post("/api/v1/policies/print/link", request, Some(key)).await?).await
    }

    async fn fetch_print_form(&self, url: &str, max_bytes: u64) -> Result<Option<Download>, CallError> {
        let trusted = |host: &str| self.print_hosts.iter().any(|t| t == host);
        if !host_of(url).is_some_and(trusted) {
            tracing::warn!("print link is not on a trusted host; not archived");
            return Ok(None);
        }
        let first = partner_request("bima", Some("GET print form"), &self.api.http, self.api.http.get(url))
            .await
            .map_err(transport_error)?;
        download(&self.api.http, first, trusted, max_bytes).await.map(Some)
    }
}
