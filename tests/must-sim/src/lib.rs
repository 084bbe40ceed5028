//! A MUST partner-API simulator that behaves as the seed says: a token per
//! partner, blob storage, asynchronous scoring, and hooks delivered to the
//! partner **one at a time** per process, **retried with backoff until HTTP 200**.
//!
//! Where MUST's documents are silent, the simulator takes the least helpful
//! reading by default: hooks carry no `webhook-id`; `Idempotency-Key` is ignored;
//! answers to documents, contract and payment calls have empty bodies; the token
//! answer gives no lifetime; policy files are served as `application/octet-stream`
//! with bytes before their `%PDF-` header; recognition may overwrite our contract.
//!
//! Scenarios are chosen per process by the vehicle's VIN (`PUT /sim/scenarios/{vin}`),
//! including calls that fail after (or before) MUST acted on them.
//!
//! MUST itself is [`model::Must`], free of any transport; this crate's server carries
//! its answers over HTTP and delivers its hooks, and a simulation may carry them itself.

pub mod faults;
mod helpers;
pub mod model;
pub mod pdf;
mod scenario;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::mpsc;

pub use model::PAYMENT_HOST;
use model::{Answer, Body, Event, Hook, Must, Reply};
pub use scenario::{
    Call, CallFault, Failure, InsurerResult, OfferOutcome, PolicyFile, PolicyNaming, Scenario,
};

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where the partner hosts its hooks: `{hook_base_url}/api/hooks/{scoringId}/...`.
    pub hook_base_url: String,
    pub hook_auth: HookSigning,
    pub login: String,
    pub password: String,
    pub token_ttl: Duration,
    /// MUST's "asynchronous processing" time before each hook.
    pub processing_delay: Duration,
    /// First retry delay of a hook delivery (doubles up to `max_retry_delay`).
    pub first_retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// The customer pays this long after the payment link is sent.
    pub payment_delay: Duration,
    /// Send a `webhook-id` with each hook (MUST's documents define none; signed hooks always carry one).
    pub send_webhook_ids: bool,
    /// Answer a repeated `Idempotency-Key` with the first answer (MUST's documents promise nothing).
    pub honour_idempotency_keys: bool,
    /// How long a call that "times out" takes to answer (longer than the caller waits).
    pub hang: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hook_base_url: "http://127.0.0.1:3000".into(),
            hook_auth: HookSigning::Secret("local-hook-secret".into()),
            login: "polis".into(),
            password: "polis-local".into(),
            token_ttl: Duration::from_secs(7 * 24 * 3600),
            processing_delay: Duration::from_millis(50),
            first_retry_delay: Duration::from_millis(100),
            max_retry_delay: Duration::from_secs(2),
            payment_delay: Duration::from_millis(200),
            send_webhook_ids: false,
            honour_idempotency_keys: false,
            hang: Duration::from_secs(6),
        }
    }
}

/// How the simulator proves to the partner that a hook is MUST's.
#[derive(Debug, Clone)]
pub enum HookSigning {
    /// A static secret in `x-hook-secret`.
    Secret(String),
    /// Standard Webhooks: `webhook-timestamp` and a `v1,` HMAC-SHA256 signature made with
    /// this `whsec_…` secret over `{webhook-id}.{timestamp}.{body}`.
    Sign(String),
    /// Nothing in the headers: the secret is in the hook base URL's path.
    None,
}

impl HookSigning {
    /// The headers that authenticate a hook with id `id` and `body`, sent at `now_s`.
    pub fn headers(&self, id: &str, body: &[u8], now_s: u64) -> Vec<(&'static str, String)> {
        use base64::Engine;
        use hmac::{KeyInit, Mac};
        match self {
            HookSigning::Secret(secret) => vec![("x-hook-secret", secret.clone())],
            HookSigning::None => Vec::new(),
            HookSigning::Sign(secret) => {
                let b64 = base64::engine::general_purpose::STANDARD;
                let key = b64.decode(secret.trim_start_matches("whsec_")).unwrap_or_default();
                let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else { return Vec::new() };
                mac.update(format!("{id}.{now_s}.").as_bytes());
                mac.update(body);
                let signature = b64.encode(mac.finalize().into_bytes());
                vec![
                    ("webhook-timestamp", now_s.to_string()),
                    ("webhook-signature", format!("v1,{signature}")),
                ]
            }
        }
    }
}

/// What the simulator counted, for tests and for the curious (`GET /sim/stats`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub auth_calls: u64,
    pub init_calls: u64,
    pub calls: HashMap<String, u64>,
    /// Hooks delivered with HTTP 200, by path.
    pub hooks_delivered: HashMap<String, u64>,
    /// Delivery attempts that got anything but 200.
    pub hook_retries: u64,
    pub unauthorized: u64,
    /// Changes MUST made for each vehicle, by call (`init`, `documents`, `contract`, ...): what
    /// the partner saw, whatever the caller was told.
    pub changes: HashMap<String, HashMap<String, u64>>,
    /// Calls that change something, as they reached MUST for each vehicle, by call, whether MUST
    /// acted on them or not (a call failing before MUST acts is received all the same).
    #[serde(default)]
    pub received: HashMap<String, HashMap<String, u64>>,
    /// The contract card MUST holds for each vehicle, last written.
    pub contracts: HashMap<String, Value>,
    /// The files of each document type MUST was last given for each vehicle.
    #[serde(default)]
    pub documents: HashMap<String, std::collections::BTreeMap<u32, usize>>,
    /// The contract card MUST held for each vehicle when it started scoring.
    #[serde(default)]
    pub contracts_at_scoring: HashMap<String, Value>,
    /// Calls of the helper methods, by `"{call} {vin or plates}"`.
    #[serde(default)]
    pub helper_calls: HashMap<String, u64>,
}

/// The HTTP server around [`Must`]: routes, transport faults and hook delivery.
pub struct Sim {
    /// Faults injected on the partner API (not on the simulator's own `/sim` routes).
    pub faults: Arc<faults::Faults>,
    pub must: Must,
    /// Each process's hooks, in order, to its one delivery task.
    deliveries: Mutex<HashMap<String, mpsc::UnboundedSender<Hook>>>,
    http: reqwest::Client,
    /// Where hooks go when a partner registered another base URL than the configured one.
    registered_hook_base: std::sync::RwLock<Option<String>>,
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
}

impl SimHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Starts the simulator on `listen` (port 0 for any free port).
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    let sim = Arc::new(Sim {
        faults: Arc::default(),
        must: Must::new(config),
        deliveries: Mutex::default(),
        registered_hook_base: std::sync::RwLock::default(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(std::io::Error::other)?,
    });
    let app = Router::new()
        .route("/api/scoring/auth", post(auth))
        .route("/api/scoring/init", post(init))
        .route("/api/blob", post(upload_blob))
        .route("/api/blob/{blob_id}", get(download_blob))
        .route("/download", get(download_by_key))
        .route("/api/scoring/{sid}/documents", post(documents))
        .route("/api/scoring/{sid}/contract", post(contract))
        .route("/api/scoring/{sid}/payment-link", post(payment_link))
        .route("/api/scoring/{sid}/payment-invoice", post(payment_invoice))
        .route("/api/scoring/scoring/{sid}/payment-order", post(payment_order))
        .route("/api/scoring/vehicle/license-category", post(license_category))
        .route("/api/scoring/tariff", post(tariff))
        .route_layer(axum::middleware::from_fn_with_state(sim.faults.clone(), faults::inject))
        .route("/sim/scenarios/{vin}", put(set_scenario))
        .route("/sim/stats", get(stats))
        .route("/pay/{sid}/{insurer}", get(pay_page))
        .with_state(sim.clone());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    sim.must.set_public_url(&format!("http://{addr}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SimHandle { addr, sim })
}

impl Sim {
    /// A partner registers where its hooks go (as with MUST's sandbox): from now on,
    /// `{url}/api/hooks/{scoringId}/...`.
    pub fn register_hook_base_url(&self, url: &str) {
        *self.registered_hook_base.write().unwrap_or_else(|e| e.into_inner()) = Some(url.to_owned());
    }

    fn config(&self) -> &SimConfig {
        self.must.config()
    }

    pub fn stats(&self) -> Stats {
        self.must.stats()
    }

    pub fn set_scenario(&self, vin: &str, scenario: Scenario) {
        self.must.set_scenario(vin, scenario);
    }

    /// Drops every token, as if they all expired (to test refresh on 401).
    pub fn expire_tokens(&self) {
        self.must.expire_tokens();
    }

    /// The changes MUST made for a vehicle, by call.
    pub fn changes(&self, vin: &str) -> HashMap<String, u64> {
        self.must.changes(vin)
    }

    /// The calls that change something that reached MUST for a vehicle, by call.
    pub fn received(&self, vin: &str) -> HashMap<String, u64> {
        self.must.stats().received.get(vin).cloned().unwrap_or_default()
    }

    /// The scoringIds MUST gave the vehicle's processes, oldest first.
    pub fn scorings(&self, vin: &str) -> Vec<String> {
        self.must.scorings(vin)
    }

    /// The contract card MUST holds for a vehicle.
    pub fn contract(&self, vin: &str) -> Option<Value> {
        self.must.contract_of(vin)
    }

    /// The contract card MUST held for a vehicle when it started scoring.
    pub fn contract_at_scoring(&self, vin: &str) -> Option<Value> {
        self.must.stats().contracts_at_scoring.get(vin).cloned()
    }

    /// Carries out what MUST set off: hooks to their process's delivery task, payments and recognitions later.
    fn dispatch(self: &Arc<Self>) {
        for event in self.must.take_events() {
            match event {
                Event::Hook(hook) => {
                    let mut deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
                    let sender = deliveries.entry(hook.scoring_id.clone()).or_insert_with(|| {
                        let (tx, rx) = mpsc::unbounded_channel();
                        tokio::spawn(self.clone().deliver_in_order(rx));
                        tx
                    });
                    let _ = sender.send(hook);
                }
                Event::RecognitionRuns { scoring_id, after_ms } => {
                    let sim = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(after_ms)).await;
                        sim.must.finish_recognition(&scoring_id);
                        sim.dispatch();
                    });
                }
                Event::CustomerWillPay { scoring_id } => {
                    let sim = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(sim.config().payment_delay).await;
                        sim.must.pay(&scoring_id);
                        sim.dispatch();
                    });
                }
            }
        }
    }

    /// One process's hooks, strictly one at a time, each retried until HTTP 200.
    async fn deliver_in_order(self: Arc<Self>, mut hooks: mpsc::UnboundedReceiver<Hook>) {
        while let Some(hook) = hooks.recv().await {
            tokio::time::sleep(self.config().processing_delay).await;
            let copies: Vec<_> = (0..hook.concurrent)
                .map(|_| {
                    let (sim, hook) = (self.clone(), hook.clone());
                    tokio::spawn(async move { sim.deliver(&hook).await })
                })
                .collect();
            for copy in copies {
                let _ = copy.await;
            }
        }
    }

    /// One delivery of a hook, retried with backoff until HTTP 200.
    async fn deliver(&self, hook: &Hook) {
        let config = self.config();
        let registered = self.registered_hook_base.read().unwrap_or_else(|e| e.into_inner()).clone();
        let base = registered.as_deref().unwrap_or(&config.hook_base_url);
        let url = format!("{base}/api/hooks/{}/{}", hook.scoring_id, hook.path);
        let mut delay = config.first_retry_delay;
        loop {
            let body = hook.body.to_string().into_bytes();
            let mut request = self.http.post(&url).header("content-type", "application/json");
            if hook.with_id || matches!(config.hook_auth, HookSigning::Sign(_)) {
                request = request.header("webhook-id", &hook.id);
            }
            for (name, value) in config.hook_auth.headers(&hook.id, &body, now_ms() / 1000) {
                request = request.header(name, value);
            }
            let sent = request.body(body).send().await;
            let ok = sent.as_ref().is_ok_and(|r| r.status() == StatusCode::OK);
            self.must.delivered(hook.path, ok);
            if ok {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(config.max_retry_delay);
        }
    }

    /// The answer over HTTP, after dispatching what the call set off.
    async fn respond(self: &Arc<Self>, answer: Answer) -> Response {
        self.dispatch();
        respond(answer, self.config().hang).await
    }
}

/// An answer over HTTP, late or failed as planned: a timeout answers after `hang`.
pub async fn respond(answer: Answer, hang: Duration) -> Response {
    if let Some(delay) = answer.delay {
        tokio::time::sleep(delay).await;
    }
    match answer.failure {
        None => into_response(answer.reply),
        Some(Failure::Timeout) => {
            tokio::time::sleep(hang).await;
            into_response(answer.reply)
        }
        Some(Failure::BadGateway) => into_response(Reply::error(502, None, "bad gateway")),
        // The connection is dropped without an answer (no panic message: `resume_unwind`).
        Some(Failure::Reset) => std::panic::resume_unwind(Box::new("simulated connection reset")),
    }
}

/// A model's reply as an HTTP response.
pub fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.body {
        Body::Empty => status.into_response(),
        Body::Json(value) => (status, Json(value)).into_response(),
        Body::File { content_type, bytes } => {
            (status, [("content-type", content_type)], Bytes::from(bytes)).into_response()
        }
        Body::Redirect(location) => (status, [("location", location)]).into_response(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

fn idempotency_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("idempotency-key").and_then(|v| v.to_str().ok())
}

async fn auth(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    into_response(sim.must.auth(&body))
}

async fn init(State(sim): State<Arc<Sim>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let answer = sim.must.init(bearer(&headers), idempotency_key(&headers), &body);
    sim.respond(answer).await
}

async fn upload_blob(State(sim): State<Arc<Sim>>, headers: HeaderMap, mut form: Multipart) -> Response {
    let mut blob = None;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("Blob") {
            blob = Some(field.bytes().await.map(|b| b.to_vec()).unwrap_or_default());
            break;
        }
    }
    into_response(sim.must.upload_blob(bearer(&headers), blob))
}

async fn download_by_key(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let key = query.get("key").map(String::as_str).unwrap_or_default();
    into_response(sim.must.download_by_key(bearer(&headers), key))
}

async fn download_blob(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(blob_id): Path<String>,
) -> Response {
    into_response(sim.must.download_blob(bearer(&headers), &blob_id))
}

async fn documents(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let answer = sim.must.documents(bearer(&headers), &sid, &body);
    sim.respond(answer).await
}

async fn contract(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(card): Json<Value>,
) -> Response {
    let answer = sim.must.contract(bearer(&headers), &sid, &card);
    sim.respond(answer).await
}

async fn payment_link(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let answer = sim.must.payment_link(bearer(&headers), &sid, &body);
    sim.respond(answer).await
}

async fn payment_invoice(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let answer = sim.must.payment_invoice(bearer(&headers), &sid, &body);
    sim.respond(answer).await
}

async fn payment_order(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let answer = sim.must.payment_order(bearer(&headers), &sid, &body);
    sim.respond(answer).await
}

async fn license_category(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let answer = sim.must.license_category(bearer(&headers), &body);
    sim.respond(answer).await
}

async fn tariff(State(sim): State<Arc<Sim>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let answer = sim.must.tariff(bearer(&headers), &body);
    sim.respond(answer).await
}

async fn set_scenario(
    State(sim): State<Arc<Sim>>,
    Path(vin): Path<String>,
    Json(scenario): Json<Scenario>,
) -> Response {
    sim.set_scenario(&vin, scenario);
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.stats()).into_response()
}

async fn pay_page(Path((sid, insurer)): Path<(String, String)>) -> Response {
    format!("Simulated payment page of {insurer} for scoring {sid}").into_response()
}
