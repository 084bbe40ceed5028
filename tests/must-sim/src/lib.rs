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

pub mod faults;
pub mod pdf;
mod scenario;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub use scenario::{Call, CallFault, Failure, InsurerResult, OfferOutcome, PolicyFile, Scenario};

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
}

impl HookSigning {
    /// The headers that authenticate a hook with id `id` and `body`, sent at `now_s`.
    pub fn headers(&self, id: &str, body: &[u8], now_s: u64) -> Vec<(&'static str, String)> {
        use base64::Engine;
        use hmac::{KeyInit, Mac};
        match self {
            HookSigning::Secret(secret) => vec![("x-hook-secret", secret.clone())],
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
    /// The contract card MUST holds for each vehicle, last written.
    pub contracts: HashMap<String, Value>,
}

#[derive(Debug, Default)]
struct SimProcess {
    vin: String,
    scenario: Scenario,
    documents_round: u32,
    associated_types: HashSet<u32>,
    documents_accepted: bool,
    /// The last contract card MUST holds came from the partner (not from recognition).
    contract_from_partner: bool,
    recognition_done: bool,
    scoring_started: bool,
    approved: HashSet<String>,
    payment_requested: bool,
    paid: bool,
    hooks_sent: u32,
}

/// A file MUST holds: uploaded by the partner, or issued (drafts, invoices, policies).
#[derive(Debug, Clone)]
struct StoredBlob {
    content_type: String,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, u64>,
    blobs: HashMap<String, StoredBlob>,
    scenarios: HashMap<String, Scenario>,
    processes: HashMap<String, SimProcess>,
    idempotent: HashMap<String, Value>,
    outboxes: HashMap<String, mpsc::UnboundedSender<Hook>>,
    /// Planned faults that have fired, by vehicle and call (each fires once).
    fired: HashSet<(String, Call)>,
    next_id: u64,
    stats: Stats,
}

#[derive(Debug, Clone)]
struct Hook {
    scoring_id: String,
    path: &'static str,
    body: Value,
    id: String,
    /// Deliveries of this hook at the same instant (a race test; normally 1).
    concurrent: u32,
    /// Sent with a `webhook-id`.
    with_id: bool,
}

pub struct Sim {
    /// Faults injected on the partner API (not on the simulator's own `/sim` routes).
    pub faults: Arc<faults::Faults>,
    config: SimConfig,
    inner: Mutex<Inner>,
    http: reqwest::Client,
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

fn error(status: StatusCode, code: Option<u32>, message: &str) -> Response {
    let mut body = json!({"message": message});
    if let Some(code) = code {
        body["errorCode"] = json!(code);
    }
    (status, Json(body)).into_response()
}

/// Starts the simulator on `listen` (port 0 for any free port).
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    let sim = Arc::new(Sim {
        faults: Arc::default(),
        config,
        inner: Mutex::new(Inner::default()),
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
        .route("/api/scoring/{sid}/documents", post(documents))
        .route("/api/scoring/{sid}/contract", post(contract))
        .route("/api/scoring/{sid}/payment-link", post(payment_link))
        .route("/api/scoring/{sid}/payment-invoice", post(payment_invoice))
        .route("/api/scoring/scoring/{sid}/payment-order", post(payment_order))
        .route_layer(axum::middleware::from_fn_with_state(sim.faults.clone(), faults::inject))
        .route("/sim/scenarios/{vin}", put(set_scenario))
        .route("/sim/stats", get(stats))
        .route("/pay/{sid}", get(pay_page))
        .with_state(sim.clone());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SimHandle { addr, sim })
}

impl Sim {
    pub fn stats(&self) -> Stats {
        self.inner.lock().map(|i| i.stats.clone()).unwrap_or_default()
    }

    pub fn set_scenario(&self, vin: &str, scenario: Scenario) {
        if let Ok(mut i) = self.inner.lock() {
            i.scenarios.insert(vin.to_owned(), scenario);
        }
    }

    /// Drops every token, as if they all expired (to test refresh on 401).
    pub fn expire_tokens(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.tokens.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a handler panicked; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, name: &str) {
        *self.lock().stats.calls.entry(name.to_owned()).or_default() += 1;
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let mut inner = self.lock();
        let ok = token.and_then(|t| inner.tokens.get(t)).is_some_and(|exp| *exp > now_ms());
        if !ok {
            inner.stats.unauthorized += 1;
        }
        ok
    }

    fn new_id(&self, prefix: &str) -> String {
        let mut inner = self.lock();
        inner.next_id += 1;
        format!("{prefix}-{:08x}-{}", now_ms() as u32, inner.next_id)
    }

    /// Queues a hook for delivery after the processing delay, behind earlier hooks of the process.
    fn send_hook(self: &Arc<Self>, scoring_id: &str, path: &'static str, body: Value) {
        let mut inner = self.lock();
        let Some(process) = inner.processes.get_mut(scoring_id) else {
            return;
        };
        process.hooks_sent += 1;
        let copies = if process.scenario.duplicate_hooks { 2 } else { 1 };
        let hook = Hook {
            scoring_id: scoring_id.to_owned(),
            path,
            body,
            id: format!("hook-{scoring_id}-{}", process.hooks_sent),
            concurrent: process.scenario.concurrent_deliveries.max(1),
            with_id: process.scenario.webhook_ids || self.config.send_webhook_ids,
        };
        let sender = inner.outboxes.entry(scoring_id.to_owned()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(self.clone().deliver_in_order(rx));
            tx
        });
        for _ in 0..copies {
            let _ = sender.send(hook.clone());
        }
    }

    /// One process's hooks, strictly one at a time, each retried until HTTP 200.
    async fn deliver_in_order(self: Arc<Self>, mut hooks: mpsc::UnboundedReceiver<Hook>) {
        while let Some(hook) = hooks.recv().await {
            tokio::time::sleep(self.config.processing_delay).await;
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
        let url = format!("{}/api/hooks/{}/{}", self.config.hook_base_url, hook.scoring_id, hook.path);
        let mut delay = self.config.first_retry_delay;
        loop {
            let body = hook.body.to_string().into_bytes();
            let mut request = self.http.post(&url).header("content-type", "application/json");
            if hook.with_id || matches!(self.config.hook_auth, HookSigning::Sign(_)) {
                request = request.header("webhook-id", &hook.id);
            }
            for (name, value) in self.config.hook_auth.headers(&hook.id, &body, now_ms() / 1000) {
                request = request.header(name, value);
            }
            let sent = request.body(body).send().await;
            if sent.as_ref().is_ok_and(|r| r.status() == StatusCode::OK) {
                *self.lock().stats.hooks_delivered.entry(hook.path.to_owned()).or_default() += 1;
                return;
            }
            self.lock().stats.hook_retries += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.config.max_retry_delay);
        }
    }

    fn with_process<T>(&self, sid: &str, f: impl FnOnce(&mut SimProcess) -> T) -> Option<T> {
        self.lock().processes.get_mut(sid).map(f)
    }

    /// Both steps 3 and 4 done: scoring starts by itself (step 5).
    fn maybe_start_scoring(self: &Arc<Self>, sid: &str) {
        let Some((scenario, start)) = self.with_process(sid, |p| {
            let start =
                p.documents_accepted && p.contract_from_partner && p.recognition_done && !p.scoring_started;
            if start {
                p.scoring_started = true;
            }
            (p.scenario.clone(), start)
        }) else {
            return;
        };
        if !start {
            return;
        }
        if let Some(code) = scenario.fail_with {
            let entry = json!({"errorCode": code, "errorMessage": format!("simulated failure {code}")});
            self.send_hook(sid, "failed", entry);
            return;
        }
        let insurers: Vec<&str> = scenario.insurers.iter().map(|i| i.insurer.as_str()).collect();
        self.send_hook(sid, "started", json!({"insuranceCompanies": insurers}));
        for result in &scenario.insurers {
            match result.outcome {
                OfferOutcome::Approved => {
                    self.with_process(sid, |p| p.approved.insert(result.insurer.clone()));
                    self.send_hook(
                        sid,
                        "approved",
                        json!({"insuranceCompany": result.insurer, "writtenPremium": result.premium}),
                    );
                }
                OfferOutcome::Rejected => self.send_hook(
                    sid,
                    "rejected",
                    json!({"insuranceCompany": result.insurer, "reason": "simulated refusal"}),
                ),
                OfferOutcome::Failed => self.send_hook(
                    sid,
                    "company-failed",
                    json!({
                        "insuranceCompany": result.insurer,
                        "errorCode": result.error_code.unwrap_or(1501),
                        "errorMessage": "simulated insurer error",
                    }),
                ),
            }
        }
        if scenario.insurers.iter().any(|i| i.outcome == OfferOutcome::Approved) {
            let draft = self.store_blob(pdf::one_page("eOSAGO draft"), "application/pdf");
            self.send_hook(sid, "draft-issued", json!({"blobIds": [draft]}));
        }
    }

    /// The planned fault for this call of the vehicle, if it has not fired yet (it fires now).
    fn take_fault(&self, vin: &str, scenario: &Scenario, call: Call) -> Option<CallFault> {
        let fault = scenario.faults.iter().find(|f| f.call == call).copied()?;
        self.lock().fired.insert((vin.to_owned(), call)).then_some(fault)
    }

    /// Counts a change MUST made for the vehicle.
    fn changed(&self, vin: &str, call: Call) {
        let mut inner = self.lock();
        *inner.stats.changes.entry(vin.to_owned()).or_default().entry(call.name().to_owned()).or_default() +=
            1;
    }

    /// How the vehicle's `call` ends for the caller, given `ok` for a plain success.
    async fn answer(&self, fault: Option<CallFault>, ok: Response) -> Response {
        match fault.map(|f| f.failure) {
            None => ok,
            Some(Failure::Timeout) => {
                tokio::time::sleep(self.config.hang).await;
                ok
            }
            Some(Failure::BadGateway) => error(StatusCode::BAD_GATEWAY, None, "bad gateway"),
            // The connection is dropped without an answer (no panic message: `resume_unwind`).
            Some(Failure::Reset) => std::panic::resume_unwind(Box::new("simulated connection reset")),
        }
    }

    /// The changes MUST made for a vehicle, by call.
    pub fn changes(&self, vin: &str) -> HashMap<String, u64> {
        self.lock().stats.changes.get(vin).cloned().unwrap_or_default()
    }

    /// The scoringIds MUST gave the vehicle's processes, oldest first (its back office, as an
    /// operator would look it up).
    pub fn scorings(&self, vin: &str) -> Vec<String> {
        let inner = self.lock();
        let mut ids: Vec<&String> =
            inner.processes.iter().filter(|(_, p)| p.vin == vin).map(|(sid, _)| sid).collect();
        ids.sort_by_key(|sid| sid.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()));
        ids.into_iter().cloned().collect()
    }

    /// The contract card MUST holds for a vehicle.
    pub fn contract(&self, vin: &str) -> Option<Value> {
        self.lock().stats.contracts.get(vin).cloned()
    }

    /// Recognition pre-fills (or overwrites) the contract from the documents and says so.
    fn recognise(self: &Arc<Self>, sid: &str) {
        let Some(vin) = self.with_process(sid, |p| {
            p.recognition_done = true;
            p.contract_from_partner = false;
            p.vin.clone()
        }) else {
            return;
        };
        let recognised = json!({
            "vin": format!("{}X", &vin[..vin.len().saturating_sub(1)]),
            "engineNumber": "5738777",
            "owner": {"name": "распознанный собственник", "ogrn": "1027700132195"},
            "source": "recognition",
        });
        self.lock().stats.contracts.insert(vin, recognised.clone());
        self.send_hook(sid, "contract/update-completed", json!({"contract": recognised}));
    }

    fn store_blob(&self, bytes: Vec<u8>, content_type: &str) -> String {
        let id = self.new_id("blob");
        let blob = StoredBlob { content_type: content_type.to_owned(), bytes };
        self.lock().blobs.insert(id.clone(), blob);
        id
    }

    /// Paid: the insurer issues the policy and MUST sends its files.
    fn issue_policy(self: &Arc<Self>, sid: &str) {
        let Some((files, kind, issued_first)) = self.with_process(sid, |p| {
            p.paid = true;
            (p.scenario.policy_files.max(1), p.scenario.policy_file, p.scenario.issued_before_paid)
        }) else {
            return;
        };
        if !issued_first {
            self.send_hook(sid, "policy-is-paid", json!({}));
        }
        let number = format!("XXX {:010}", now_ms() % 10_000_000_000);
        let blobs: Vec<Value> = (1..=files)
            .map(|n| {
                let title = format!("eOSAGO policy {number} ({n}/{files})");
                let (name, bytes, content_type) = match kind {
                    PolicyFile::Pdf => {
                        (format!("policy-{n}.pdf"), pdf::with_preamble(&title), "application/octet-stream")
                    }
                    PolicyFile::Jpeg => (format!("policy-{n}.jpg"), pdf::jpeg_scan(&title), "image/jpeg"),
                    PolicyFile::Zip => (
                        format!("policy-{n}.zip"),
                        pdf::zip_of("policy.pdf", &pdf::one_page(&title)),
                        "application/octet-stream",
                    ),
                    PolicyFile::Huge(mb) => {
                        (format!("policy-{n}.pdf"), vec![b'%'; mb as usize * 1024 * 1024], "application/pdf")
                    }
                    PolicyFile::Missing => {
                        return json!({"blobId": self.new_id("gone"), "name": format!("policy-{n}.pdf")});
                    }
                };
                json!({"blobId": self.store_blob(bytes, content_type), "name": name})
            })
            .collect();
        self.send_hook(sid, "policy-issued", json!({"policyNumber": number, "documents": blobs}));
        if issued_first {
            self.send_hook(sid, "policy-is-paid", json!({}));
        }
    }
}

async fn auth(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    sim.lock().stats.auth_calls += 1;
    let login = body.get("login").and_then(Value::as_str);
    let password = body.get("password").and_then(Value::as_str);
    if login != Some(sim.config.login.as_str()) || password != Some(sim.config.password.as_str()) {
        return error(StatusCode::UNAUTHORIZED, None, "wrong login or password");
    }
    let token = sim.new_id("token");
    let ttl = sim.config.token_ttl;
    sim.lock().tokens.insert(token.clone(), now_ms() + ttl.as_millis() as u64);
    Json(json!({"token": token})).into_response()
}

fn idempotent_replay(sim: &Sim, headers: &HeaderMap) -> (Option<String>, Option<Value>) {
    if !sim.config.honour_idempotency_keys {
        return (None, None);
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let seen = key.as_ref().and_then(|k| sim.lock().idempotent.get(k).cloned());
    (key, seen)
}

/// A success with an empty body: all MUST's documents promise for these calls.
fn bare_ok() -> Response {
    StatusCode::OK.into_response()
}

async fn init(State(sim): State<Arc<Sim>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !sim.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, None, "token missing or expired");
    }
    sim.lock().stats.init_calls += 1;
    let (key, seen) = idempotent_replay(&sim, &headers);
    if let Some(previous) = seen {
        return Json(previous).into_response();
    }
    let vin = body.get("vin").and_then(Value::as_str).unwrap_or_default().to_owned();
    if sim.lock().scenarios.get(&vin).is_some_and(|s| s.throttled) {
        return error(StatusCode::TOO_MANY_REQUESTS, None, "too many requests, try later");
    }
    let Some(start) = body.get("policyStartOn").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, Some(1403), "invalid policy start on");
    };
    if start.len() != 10 {
        return error(StatusCode::BAD_REQUEST, Some(1403), "invalid policy start on");
    }
    let scenario = sim.lock().scenarios.get(&vin).cloned().unwrap_or_default();
    let fault = sim.take_fault(&vin, &scenario, Call::Init);
    if fault.is_some_and(|f| !f.committed) {
        return sim.answer(fault, bare_ok()).await;
    }
    let sid = sim.new_id("sc");
    let required = scenario.required_types.clone();
    let answer = json!({"scoringId": sid});
    {
        let mut inner = sim.lock();
        inner
            .processes
            .insert(sid.clone(), SimProcess { vin: vin.clone(), scenario, ..SimProcess::default() });
        if let Some(k) = key {
            inner.idempotent.insert(k, answer.clone());
        }
    }
    sim.changed(&vin, Call::Init);
    sim.send_hook(&sid, "documents/types-required", json!({"documentTypes": required}));
    sim.answer(fault, Json(answer).into_response()).await
}

async fn upload_blob(State(sim): State<Arc<Sim>>, headers: HeaderMap, mut form: Multipart) -> Response {
    if !sim.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, None, "token missing or expired");
    }
    sim.count("blob");
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("Blob") {
            return match field.bytes().await {
                Ok(bytes) if !bytes.is_empty() => {
                    let id = sim.store_blob(bytes.to_vec(), "application/octet-stream");
                    Json(json!({"blobId": id})).into_response()
                }
                _ => error(StatusCode::BAD_REQUEST, None, "empty file"),
            };
        }
    }
    error(StatusCode::BAD_REQUEST, None, "multipart field Blob is required")
}

async fn download_blob(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(blob_id): Path<String>,
) -> Response {
    if !sim.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, None, "token missing or expired");
    }
    sim.count("download");
    match sim.lock().blobs.get(&blob_id) {
        Some(blob) => {
            ([("content-type", blob.content_type.clone())], Bytes::from(blob.bytes.clone())).into_response()
        }
        None => error(StatusCode::NOT_FOUND, None, "no such blob"),
    }
}

/// Checks the token and that the process exists; counts the call.
fn guard(sim: &Sim, headers: &HeaderMap, sid: &str, call: &str) -> Option<Response> {
    if !sim.authorised(headers) {
        return Some(error(StatusCode::UNAUTHORIZED, None, "token missing or expired"));
    }
    sim.count(call);
    if !sim.lock().processes.contains_key(sid) {
        return Some(error(StatusCode::NOT_FOUND, None, "no such scoring process"));
    }
    None
}

async fn documents(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = guard(&sim, &headers, &sid, "documents") {
        return refused;
    }
    let Some(list) = body.get("documents").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, None, "documents: a list is required");
    };
    let mut types = Vec::new();
    for d in list {
        let type_id = d.get("typeId").and_then(Value::as_u64);
        let blob_id = d.pointer("/blob/blobId").and_then(Value::as_str);
        match (type_id, blob_id) {
            (Some(t), Some(b)) if sim.lock().blobs.contains_key(b) => types.push(t as u32),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    None,
                    "each document needs typeId and a known blob.blobId",
                )
            }
        }
    }
    let Some((vin, scenario)) = sim.with_process(&sid, |p| (p.vin.clone(), p.scenario.clone())) else {
        return error(StatusCode::NOT_FOUND, None, "no such scoring process");
    };
    let fault = sim.take_fault(&vin, &scenario, Call::Documents);
    if fault.is_some_and(|f| !f.committed) {
        return sim.answer(fault, bare_ok()).await;
    }
    sim.changed(&vin, Call::Documents);
    let Some((round, missing)) = sim.with_process(&sid, |p| {
        p.documents_round += 1;
        p.associated_types.extend(types.iter().copied());
        let missing: Vec<u32> =
            p.scenario.required_types.iter().copied().filter(|t| !p.associated_types.contains(t)).collect();
        (p.documents_round, missing)
    }) else {
        return error(StatusCode::NOT_FOUND, None, "no such scoring process");
    };
    if round <= scenario.upload_failures {
        // The same body every time: only the order of events tells a repeat from a new round.
        let first = scenario.required_types.first().copied().unwrap_or(11);
        sim.send_hook(
            &sid,
            "documents/upload-failed",
            json!({"documents": [{"typeId": first, "reason": "document is unreadable"}]}),
        );
    } else if !missing.is_empty() {
        sim.send_hook(&sid, "documents/upload-failed", json!({"missingTypeIds": missing}));
    } else {
        sim.with_process(&sid, |p| {
            p.documents_accepted = true;
            p.recognition_done = !p.scenario.prefilled_contract;
        });
        // Recognition pre-fills the contract as the documents are accepted; a late one
        // finishes only after our card has come (and overwrites it).
        if scenario.prefilled_contract && !scenario.late_recognition {
            sim.recognise(&sid);
        }
        sim.send_hook(&sid, "documents/upload-completed", json!({}));
        sim.maybe_start_scoring(&sid);
    }
    sim.answer(fault, bare_ok()).await
}

async fn contract(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(card): Json<Value>,
) -> Response {
    if let Some(refused) = guard(&sim, &headers, &sid, "contract") {
        return refused;
    }
    if card.pointer("/insurer/type").and_then(Value::as_str) == Some("legalEntity") {
        for field in ["inn", "kpp"] {
            if card.pointer(&format!("/insurer/{field}")).and_then(Value::as_str).is_none() {
                return error(
                    StatusCode::BAD_REQUEST,
                    None,
                    &format!("insurer.{field} is required for a legal entity"),
                );
            }
        }
    }
    let Some((vin, scenario, recognition_pending)) = sim.with_process(&sid, |p| {
        (p.vin.clone(), p.scenario.clone(), p.scenario.prefilled_contract && !p.recognition_done)
    }) else {
        return error(StatusCode::NOT_FOUND, None, "no such scoring process");
    };
    let fault = sim.take_fault(&vin, &scenario, Call::Contract);
    if fault.is_some_and(|f| !f.committed) {
        return sim.answer(fault, bare_ok()).await;
    }
    sim.changed(&vin, Call::Contract);
    sim.lock().stats.contracts.insert(vin, card);
    sim.with_process(&sid, |p| p.contract_from_partner = true);
    sim.send_hook(&sid, "contract/update-completed", json!({}));
    if recognition_pending {
        // Changelog v3: recognition overwrites a contract that came before it finished.
        sim.recognise(&sid);
    }
    sim.maybe_start_scoring(&sid);
    sim.answer(fault, bare_ok()).await
}

/// The insurer a payment is asked for, if it approved and can be paid (changelog v2: otherwise HTTP 403).
fn approved_insurer(sim: &Sim, sid: &str, body: &Value) -> Option<String> {
    let insurer = body.get("insuranceCompany").and_then(Value::as_str).unwrap_or_default().to_owned();
    let payable = sim
        .with_process(sid, |p| {
            p.approved.contains(&insurer) && !p.scenario.payment_refused.contains(&insurer)
        })
        .unwrap_or(false);
    payable.then(|| {
        sim.with_process(sid, |p| p.payment_requested = true);
        insurer
    })
}

/// The vehicle, scenario and planned fault of a payment call.
fn payment_call(sim: &Sim, sid: &str, call: Call) -> (String, Option<CallFault>) {
    let (vin, scenario) = sim.with_process(sid, |p| (p.vin.clone(), p.scenario.clone())).unwrap_or_default();
    let fault = sim.take_fault(&vin, &scenario, call);
    (vin, fault)
}

fn not_approved() -> Response {
    error(StatusCode::FORBIDDEN, None, "insurance company has not approved this scoring")
}

async fn payment_link(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = guard(&sim, &headers, &sid, "payment-link") {
        return refused;
    }
    let (vin, fault) = payment_call(&sim, &sid, Call::PaymentLink);
    if fault.is_some_and(|f| !f.committed) {
        return sim.answer(fault, bare_ok()).await;
    }
    let Some(insurer) = approved_insurer(&sim, &sid, &body) else {
        return not_approved();
    };
    sim.changed(&vin, Call::PaymentLink);
    let link = format!("https://pay.must.example/pay/{sid}");
    sim.send_hook(&sid, "payment-link-generated", json!({"insuranceCompany": insurer, "paymentLink": link}));
    // The customer follows the link and pays a little later.
    let sim2 = sim.clone();
    let paying = sid.clone();
    tokio::spawn(async move {
        tokio::time::sleep(sim2.config.payment_delay).await;
        sim2.issue_policy(&paying);
    });
    sim.answer(fault, bare_ok()).await
}

async fn payment_invoice(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = guard(&sim, &headers, &sid, "payment-invoice") {
        return refused;
    }
    let (vin, fault) = payment_call(&sim, &sid, Call::PaymentInvoice);
    if fault.is_some_and(|f| !f.committed) {
        return sim.answer(fault, bare_ok()).await;
    }
    let Some(insurer) = approved_insurer(&sim, &sid, &body) else {
        return not_approved();
    };
    sim.changed(&vin, Call::PaymentInvoice);
    let invoice = sim.store_blob(pdf::one_page(&format!("Invoice for {sid}")), "application/pdf");
    sim.send_hook(
        &sid,
        "payment-invoice-generated",
        json!({"insuranceCompany": insurer, "paymentInvoiceBlobId": invoice}),
    );
    sim.answer(fault, bare_ok()).await
}

async fn payment_order(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = guard(&sim, &headers, &sid, "payment-order") {
        return refused;
    }
    let known = body.get("blobId").and_then(Value::as_str).is_some_and(|b| sim.lock().blobs.contains_key(b));
    let invoiced = sim.with_process(&sid, |p| p.payment_requested).unwrap_or(false);
    if !known || !invoiced {
        return error(
            StatusCode::BAD_REQUEST,
            None,
            "a known blobId of a payment order, after an invoice, is required",
        );
    }
    let (vin, fault) = payment_call(&sim, &sid, Call::PaymentOrder);
    if fault.is_some_and(|f| !f.committed) {
        return sim.answer(fault, bare_ok()).await;
    }
    sim.changed(&vin, Call::PaymentOrder);
    let already_paid = sim.with_process(&sid, |p| p.paid).unwrap_or(true);
    if !already_paid {
        sim.issue_policy(&sid);
    }
    sim.answer(fault, bare_ok()).await
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

async fn pay_page(Path(sid): Path<String>) -> Response {
    format!("Simulated payment page for scoring {sid}").into_response()
}
