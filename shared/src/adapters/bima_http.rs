//! BIMA's API over HTTPS: `POST /api/v1/auth/token` (the client's credentials as
//! HTTP Basic, body `{}` as in the seed), then calc, sale and print link.

use reqwest::{Client, Response};
use serde::Serialize;

use super::http_auth::{classify, read, transport_error, AuthorizedClient};
use crate::domain::bima::api::{
    CalcRequest, Calculation, PrintLink, PrintLinkRequest, SaleAccepted, TokenResponse,
};
use crate::domain::bima::sale::SaleRequest;
use crate::ports::{BimaApi, CallError, TokenStore};

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

/// The `host[:port]` part of an http(s) URL.
fn host_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty() && !host.contains('@')).then_some(host)
}

impl<T: TokenStore + Sync> BimaHttp<T> {
    pub fn new(
        http: Client,
        base_url: impl Into<String>,
        credentials: BimaCredentials,
        extra_print_hosts: &[String],
        tokens: T,
    ) -> Self {
        let api = AuthorizedClient::new(http, base_url, "bima", tokens);
        let mut print_hosts: Vec<String> = extra_print_hosts.to_vec();
        print_hosts.extend(host_of(&api.base_url).map(str::to_owned));
        BimaHttp { api, credentials, print_hosts }
    }

    async fn fetch_token(&self) -> Result<(String, u64), CallError> {
        let response = self
            .api
            .http
            .post(self.api.url("/api/v1/auth/token"))
            .basic_auth(&self.credentials.client_id, Some(&self.credentials.client_secret))
            .json(&serde_json::json!({}))
            .send()
            .await
            .map_err(transport_error)?;
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

    async fn sell(&self, request: &SaleRequest, key: &str) -> Result<SaleAccepted, CallError> {
        read(self.post("/api/v1/policies/sale", request, Some(key)).await?).await
    }

    async fn print_link(&self, request: &PrintLinkRequest, key: &str) -> Result<PrintLink, CallError> {
        read(self.post("/api/v1/policies/print/link", request, Some(key)).await?).await
    }

    async fn fetch_print_form(&self, url: &str) -> Result<Option<Vec<u8>>, CallError> {
        let trusted = host_of(url).is_some_and(|h| self.print_hosts.iter().any(|t| t == h));
        if !trusted {
            tracing::warn!("print link is not on a trusted host; not archived");
            return Ok(None);
        }
        let response = classify(self.api.http.get(url).send().await.map_err(transport_error)?).await?;
        let is_pdf = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/pdf"));
        let bytes = response.bytes().await.map_err(transport_error)?;
        Ok((is_pdf || bytes.starts_with(b"%PDF-")).then(|| bytes.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_of_reads_host_and_port_and_refuses_userinfo_tricks() {
        assert_eq!(super::host_of("https://print.bima.tj/p/1.pdf"), Some("print.bima.tj"));
        assert_eq!(super::host_of("http://127.0.0.1:4020/print/1"), Some("127.0.0.1:4020"));
        assert_eq!(super::host_of("https://bima.tj@evil.example/x"), None);
        assert_eq!(super::host_of("ftp://x/y"), None);
    }
}
