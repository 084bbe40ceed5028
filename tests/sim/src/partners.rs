//! MUST and BIMA as our ports see them, carried in-process: each call goes to the
//! partner's model (the same one the HTTP simulators serve), and its answer comes
//! back through our own HTTP classification (`classify`, `read`), so that a status
//! or a body means here exactly what it means over the wire. A planned timeout or
//! reset is an unknown outcome, as the HTTP client reports one; an answer slower
//! than our timeout is a timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use polis::adapters::http_auth::{classify, read, read_capped};
use polis::domain::bima::api::{CalcRequest, Calculation, PrintLink, PrintLinkRequest, SaleAccepted};
use polis::domain::bima::sale::SaleRequest;
use polis::domain::ids::{BlobId, ScoringId};
use polis::domain::must::api::{DocumentsRequest, InitRequest, PaymentOrderRequest, PaymentRequest};
use polis::domain::must::files::MustFile;
use polis::domain::truck::bank::PaymentMethod;
use polis::ports::{BimaApi, CallError, Download, MustApi};
use polis_bima_sim::model::Bima;
use polis_must_sim::model::{Answer, Body, Must, Reply};
use polis_must_sim::Failure;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where the BIMA model's print links point.
pub const BIMA_BASE_URL: &str = "http://bima.sim";

/// A reply as the HTTP client would have received it.
fn response(reply: Reply) -> reqwest::Response {
    let mut builder = http::Response::builder().status(reply.status);
    let bytes = match reply.body {
        Body::Empty => Vec::new(),
        Body::Json(value) => {
            builder = builder.header("content-type", "application/json");
            value.to_string().into_bytes()
        }
        Body::File { content_type, bytes } => {
            builder = builder.header("content-type", content_type);
            bytes
        }
        Body::Redirect(location) => {
            builder = builder.header("location", location);
            Vec::new()
        }
    };
    let built = builder.body(bytes).unwrap_or_else(|_| http::Response::new(Vec::new()));
    reqwest::Response::from(built)
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// The answer after its delay, as our client sees it: a planned failure or an answer
/// later than `timeout` is an unknown outcome; otherwise the status, classified.
async fn carried(answer: Answer, timeout: Duration) -> Result<reqwest::Response, CallError> {
    let delay = answer.delay.unwrap_or_default();
    if delay >= timeout {
        tokio::time::sleep(timeout).await;
        return Err(CallError::Ambiguous("operation timed out".into()));
    }
    tokio::time::sleep(delay).await;
    match answer.failure {
        None => classify(response(answer.reply)).await,
        Some(Failure::Timeout) => {
            tokio::time::sleep(timeout).await;
            Err(CallError::Ambiguous("operation timed out".into()))
        }
        Some(Failure::Reset) => Err(CallError::Ambiguous("connection reset by peer".into())),
        Some(Failure::BadGateway) => classify(response(Reply::error(502, None, "bad gateway"))).await,
    }
}

/// MUST's API over its model, with one token (fetched again when refused). Clones share all.
#[derive(Clone)]
pub struct SimMust {
    pub model: Arc<Must>,
    pub timeout: Duration,
    token: Arc<Mutex<Option<String>>>,
}

impl SimMust {
    pub fn new(model: Arc<Must>, timeout: Duration) -> SimMust {
        SimMust { model, timeout, token: Arc::default() }
    }

    fn token(&self) -> Option<String> {
        let mut token = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if token.is_none() {
            let config = self.model.config();
            let body = serde_json::json!({"login": config.login, "password": config.password});
            if let Body::Json(answer) = self.model.auth(&body).body {
                *token = answer["token"].as_str().map(str::to_owned);
            }
        }
        token.clone()
    }

    /// One call: the token, the model, the answer carried back (what the call set off
    /// waits in the model's events for the simulation to carry).
    async fn call(&self, call: impl Fn(Option<&str>) -> Answer) -> Result<reqwest::Response, CallError> {
        let mut answer = call(self.token().as_deref());
        if answer.reply.status == 401 {
            *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
            answer = call(self.token().as_deref());
        }
        carried(answer, self.timeout).await
    }

    async fn call_json<R: DeserializeOwned>(
        &self,
        call: impl Fn(Option<&str>) -> Answer,
    ) -> Result<R, CallError> {
        read(self.call(call).await?).await
    }
}

impl MustApi for SimMust {
    async fn init(&self, request: &InitRequest, key: &str) -> Result<ScoringId, CallError> {
        let body = json(request);
        let answer: polis::domain::must::api::InitResponse =
            self.call_json(|token| self.model.init(token, Some(key), &body)).await?;
        Ok(answer.scoring_id)
    }

    async fn upload_blob(&self, _file_name: &str, bytes: Vec<u8>, _key: &str) -> Result<BlobId, CallError> {
        let created: polis::domain::must::api::BlobCreated =
            self.call_json(|token| self.model.upload_blob(token, Some(bytes.clone())).into()).await?;
        Ok(created.blob_id)
    }

    async fn associate_documents(
        &self,
        sid: &ScoringId,
        request: &DocumentsRequest,
        _key: &str,
    ) -> Result<(), CallError> {
        let body = json(request);
        self.call(|token| self.model.documents(token, sid.as_str(), &body)).await.map(drop)
    }

    async fn submit_contract(
        &self,
        sid: &ScoringId,
        card: &serde_json::Value,
        _key: &str,
    ) -> Result<(), CallError> {
        self.call(|token| self.model.contract(token, sid.as_str(), card)).await.map(drop)
    }

    async fn request_payment(
        &self,
        sid: &ScoringId,
        method: PaymentMethod,
        request: &PaymentRequest,
        _key: &str,
    ) -> Result<(), CallError> {
        let body = json(request);
        self.call(|token| match method {
            PaymentMethod::Link => self.model.payment_link(token, sid.as_str(), &body),
            PaymentMethod::Invoice => self.model.payment_invoice(token, sid.as_str(), &body),
        })
        .await
        .map(drop)
    }

    async fn submit_payment_order(
        &self,
        sid: &ScoringId,
        request: &PaymentOrderRequest,
        _key: &str,
    ) -> Result<(), CallError> {
        let body = json(request);
        self.call(|token| self.model.payment_order(token, sid.as_str(), &body)).await.map(drop)
    }

    async fn download(&self, file: &MustFile, max_bytes: u64) -> Result<Download, CallError> {
        let response = match file {
            MustFile::Blob { blob_id } => {
                self.call(|token| self.model.download_blob(token, blob_id.as_str()).into()).await?
            }
            MustFile::DownloadKey { key } => {
                self.call(|token| self.model.download_by_key(token, key).into()).await?
            }
            // The simulated MUST names no file by a link.
            MustFile::Link { .. } => return Err(CallError::Unusable("a link: not fetched".into())),
        };
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Download { bytes: read_capped(response, max_bytes).await?, content_type })
    }
}

/// BIMA's API over its model, with one token. Clones share all.
#[derive(Clone)]
pub struct SimBima {
    pub model: Arc<Bima>,
    pub timeout: Duration,
    token: Arc<Mutex<Option<String>>>,
}

impl SimBima {
    pub fn new(model: Arc<Bima>, timeout: Duration) -> SimBima {
        SimBima { model, timeout, token: Arc::default() }
    }

    fn token(&self) -> Option<String> {
        let mut token = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if token.is_none() {
            let config = self.model.config();
            let credentials = (config.client_id.clone(), config.client_secret.clone());
            if let Body::Json(answer) = self.model.token(Some(credentials)).body {
                *token = answer["token"].as_str().map(str::to_owned);
            }
        }
        token.clone()
    }

    async fn call(&self, call: impl Fn(Option<&str>) -> Answer) -> Result<reqwest::Response, CallError> {
        let mut answer = call(self.token().as_deref());
        if answer.reply.status == 401 {
            *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
            answer = call(self.token().as_deref());
        }
        carried(answer, self.timeout).await
    }
}

impl BimaApi for SimBima {
    async fn calculate(&self, request: &CalcRequest) -> Result<Calculation, CallError> {
        let body = json(request).to_string();
        read(self.call(|token| self.model.calc(token, body.as_bytes())).await?).await
    }

    async fn sell(&self, request: &SaleRequest, key: &str) -> Result<SaleAccepted, CallError> {
        let body = json(request).to_string();
        let response = self.call(|token| self.model.sale(token, Some(key), body.as_bytes())).await?;
        let answer = read_capped(response, 64 * 1024).await.unwrap_or_default();
        Ok(SaleAccepted::from_answer(&answer))
    }

    async fn print_link(&self, request: &PrintLinkRequest, _key: &str) -> Result<PrintLink, CallError> {
        let body = json(request).to_string();
        read(self.call(|token| self.model.print_link(token, body.as_bytes())).await?).await
    }

    async fn fetch_print_form(&self, url: &str, max_bytes: u64) -> Result<Option<Download>, CallError> {
        let Some(file) = url.strip_prefix(&format!("{BIMA_BASE_URL}/print/")) else {
            return Ok(None);
        };
        let mut reply = self.model.print_form(file);
        if matches!(reply.body, Body::Redirect(_)) {
            reply = self.model.print_form_stored(file);
        }
        let response = classify(response(reply)).await?;
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Some(Download { bytes: read_capped(response, max_bytes).await?, content_type }))
    }
}
