//! MUST as its documents describe it, without a transport: each call of the partner
//! API is a method that answers with an HTTP status and body, and the hooks and
//! payments it sets off are queued as [`Event`]s for whoever carries them (the HTTP
//! server in [`crate::http`], or a simulation that delivers them itself).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::{json, Value};

use crate::pdf;
use crate::scenario::{Call, CallFault, Failure, OfferOutcome, PolicyFile, PolicyNaming, Scenario};
use crate::{SimConfig, Stats};

/// Where the payment links MUST hands out point (the insurers' payment pages, here one).
pub const PAYMENT_HOST: &str = "pay.must.example";

/// An answer of the API: a status and a JSON body, an empty body, or a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Empty,
    Json(Value),
    File {
        content_type: String,
        bytes: Vec<u8>,
    },
    /// Go to this path on the same host (with a 3xx status).
    Redirect(String),
}

impl Reply {
    /// A success with an empty body: all MUST's documents promise for most calls.
    pub fn bare_ok() -> Reply {
        Reply { status: 200, body: Body::Empty }
    }

    pub fn json(value: Value) -> Reply {
        Reply { status: 200, body: Body::Json(value) }
    }

    /// An error as MUST answers one: `message`, and `errorCode` when there is one.
    pub fn error(status: u16, code: Option<u32>, message: &str) -> Reply {
        let mut body = json!({"message": message});
        if let Some(code) = code {
            body["errorCode"] = json!(code);
        }
        Reply { status, body: Body::Json(body) }
    }

    pub fn unauthorized() -> Reply {
        Reply::error(401, None, "token missing or expired")
    }
}

/// A reply, how long it takes, and how the transport should fail it (the change, if
/// any, is made already).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub reply: Reply,
    pub delay: Option<std::time::Duration>,
    pub failure: Option<Failure>,
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer { reply, delay: None, failure: None }
    }
}

impl Answer {
    /// `reply`, failed as `failure` says.
    pub fn failing(reply: Reply, failure: Option<Failure>) -> Answer {
        Answer { reply, delay: None, failure }
    }
}

/// A hook MUST sends to the partner.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub scoring_id: String,
    /// The path under `/api/hooks/{scoringId}/`.
    pub path: &'static str,
    pub body: Value,
    /// The delivery id, sent as `webhook-id` when `with_id` (and always when signing).
    pub id: String,
    /// Deliveries of this hook at the same instant (a race test; normally 1).
    pub concurrent: u32,
    pub with_id: bool,
}

/// What MUST sets off after answering, for the carrier to perform.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Deliver this hook after the earlier hooks of its process, retried until HTTP 200.
    Hook(Hook),
    /// The customer got a payment link and will pay a little later: call [`Must::pay`].
    CustomerWillPay { scoring_id: String },
    /// Recognition of the documents finishes after `after_ms`: call [`Must::finish_recognition`].
    RecognitionRuns { scoring_id: String, after_ms: u64 },
}

#[derive(Debug, Default)]
struct Process {
    vin: String,
    scenario: Scenario,
    documents_round: u32,
    associated_types: HashSet<u32>,
    documents_accepted: bool,
    /// The partner sent its contract card (MUST scores once it has one, whichever card it
    /// holds by then: recognition may have overwritten it).
    card_received: bool,
    recognition_done: bool,
    scoring_started: bool,
    approved: HashSet<String>,
    payment_requested: bool,
    /// A link of an insurer that dropped out since, to deliver once more, late: (insurer, link).
    late_link: Option<(String, String)>,
    paid: bool,
    hooks_sent: u32,
}

/// A file MUST holds: uploaded by the partner, or issued (drafts, invoices, policies).
#[derive(Debug, Clone)]
struct Blob {
    content_type: String,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, u64>,
    blobs: HashMap<String, Blob>,
    /// Download keys (`GET /download?key=`) to the blob each opens.
    download_keys: HashMap<String, String>,
    /// Where the simulator serves its API (for links to its files).
    public_url: String,
    scenarios: HashMap<String, Scenario>,
    processes: HashMap<String, Process>,
    idempotent: HashMap<String, Value>,
    events: VecDeque<Event>,
    /// How many planned faults have fired, by vehicle and call (each fires once, in order).
    fired: HashMap<(String, Call), usize>,
    next_id: u64,
    stats: Stats,
}

/// MUST's partner API and back office.
pub struct Must {
    config: SimConfig,
    clock: fn() -> u64,
    state: Mutex<State>,
}

/// The wall clock, for a model outside a simulation (the simulation gives its own).
pub fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn not_approved() -> Reply {
    Reply::error(403, None, "insurance company has not approved this scoring")
}

impl Must {
    pub fn new(config: SimConfig) -> Must {
        Must::with_clock(config, system_ms)
    }

    /// A MUST that reads the time from `clock` (epoch milliseconds), e.g. a simulation's.
    pub fn with_clock(config: SimConfig, clock: fn() -> u64) -> Must {
        Must { config, clock, state: Mutex::default() }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a caller panicked; the data is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    /// What happened that the carrier must act on, oldest first.
    pub fn take_events(&self) -> Vec<Event> {
        self.lock().events.drain(..).collect()
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn set_scenario(&self, vin: &str, scenario: Scenario) {
        self.lock().scenarios.insert(vin.to_owned(), scenario);
    }

    /// Drops every token, as if they all expired.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// The changes MUST made for a vehicle, by call: what the partner saw, whatever the caller was told.
    pub fn changes(&self, vin: &str) -> HashMap<String, u64> {
        self.lock().stats.changes.get(vin).cloned().unwrap_or_default()
    }

    /// The scoringIds MUST gave the vehicle's processes, oldest first (its back office, as an
    /// operator would look it up).
    pub fn scorings(&self, vin: &str) -> Vec<String> {
        let state = self.lock();
        let mut ids: Vec<&String> =
            state.processes.iter().filter(|(_, p)| p.vin == vin).map(|(sid, _)| sid).collect();
        ids.sort_by_key(|sid| sid.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()));
        ids.into_iter().cloned().collect()
    }

    /// The contract card MUST holds for a vehicle.
    pub fn contract_of(&self, vin: &str) -> Option<Value> {
        self.lock().stats.contracts.get(vin).cloned()
    }

    /// Counts a hook delivery attempt (by the carrier).
    pub fn delivered(&self, path: &str, ok: bool) {
        let mut state = self.lock();
        if ok {
            *state.stats.hooks_delivered.entry(path.to_owned()).or_default() += 1;
        } else {
            state.stats.hook_retries += 1;
        }
    }

    fn count(&self, name: &str) {
        *self.lock().stats.calls.entry(name.to_owned()).or_default() += 1;
    }

    /// The time on MUST's clock (epoch milliseconds).
    pub fn clock_ms(&self) -> u64 {
        self.now_ms()
    }

    /// The scenario of a vehicle (by VIN, or by plates when it has none).
    pub fn scenario_of(&self, vehicle: &str) -> Scenario {
        self.lock().scenarios.get(vehicle).cloned().unwrap_or_default()
    }

    /// Counts a helper call, by name and by vehicle.
    pub fn count_helper(&self, call: &str, vehicle: &str) {
        self.count(call);
        *self.lock().stats.helper_calls.entry(format!("{call} {vehicle}")).or_default() += 1;
    }

    /// A bearer token MUST issued and that has not expired.
    pub fn authorised(&self, token: Option<&str>) -> bool {
        let now = self.now_ms();
        let mut state = self.lock();
        let ok = token.and_then(|t| state.tokens.get(t)).is_some_and(|exp| *exp > now);
        if !ok {
            state.stats.unauthorized += 1;
        }
        ok
    }

    fn new_id(&self, prefix: &str) -> String {
        let now = self.now_ms();
        let mut state = self.lock();
        state.next_id += 1;
        format!("{prefix}-{:08x}-{}", now as u32, state.next_id)
    }

    fn with_process<T>(&self, sid: &str, f: impl FnOnce(&mut Process) -> T) -> Option<T> {
        self.lock().processes.get_mut(sid).map(f)
    }

    /// Queues a hook behind the earlier hooks of its process.
    fn send_hook(&self, scoring_id: &str, path: &'static str, mut body: Value) {
        let mut state = self.lock();
        let send_ids = self.config.send_webhook_ids;
        let Some(process) = state.processes.get_mut(scoring_id) else {
            return;
        };
        if process.scenario.seed_only {
            // The seed's hooks: no insurer named anywhere.
            if let Some(fields) = body.as_object_mut() {
                fields.remove("insuranceCompany");
                fields.remove("insuranceCompanies");
            }
        }
        process.hooks_sent += 1;
        let copies = if process.scenario.duplicate_hooks { 2 } else { 1 };
        let hook = Hook {
            scoring_id: scoring_id.to_owned(),
            path,
            body,
            id: format!("hook-{scoring_id}-{}", process.hooks_sent),
            concurrent: process.scenario.concurrent_deliveries.max(1),
            with_id: process.scenario.webhook_ids || send_ids,
        };
        for _ in 0..copies {
            state.events.push_back(Event::Hook(hook.clone()));
        }
    }

    /// Each listed fault of a call fails one call of it, in the order listed; the call is
    /// counted as received.
    fn take_fault(&self, vin: &str, scenario: &Scenario, call: Call) -> Option<CallFault> {
        let mut state = self.lock();
        *state
            .stats
            .received
            .entry(vin.to_owned())
            .or_default()
            .entry(call.name().to_owned())
            .or_default() += 1;
        let fired = state.fired.entry((vin.to_owned(), call)).or_default();
        let fault = scenario.faults.iter().filter(|f| f.call == call).nth(*fired).copied()?;
        *fired += 1;
        Some(fault)
    }

    /// Counts a change MUST made for the vehicle.
    fn changed(&self, vin: &str, call: Call) {
        let mut state = self.lock();
        *state.stats.changes.entry(vin.to_owned()).or_default().entry(call.name().to_owned()).or_default() +=
            1;
    }

    fn idempotent_replay(&self, key: Option<&str>) -> (Option<String>, Option<Value>) {
        if !self.config.honour_idempotency_keys {
            return (None, None);
        }
        let seen = key.and_then(|k| self.lock().idempotent.get(k).cloned());
        (key.map(str::to_owned), seen)
    }

    /// Checks the token and that the process exists; counts the call.
    fn guard(&self, token: Option<&str>, sid: &str, call: &str) -> Option<Reply> {
        if !self.authorised(token) {
            return Some(Reply::unauthorized());
        }
        self.count(call);
        if !self.lock().processes.contains_key(sid) {
            return Some(Reply::error(404, None, "no such scoring process"));
        }
        None
    }

    /// `POST /api/scoring/auth`.
    pub fn auth(&self, body: &Value) -> Reply {
        self.lock().stats.auth_calls += 1;
        let login = body.get("login").and_then(Value::as_str);
        let password = body.get("password").and_then(Value::as_str);
        if login != Some(self.config.login.as_str()) || password != Some(self.config.password.as_str()) {
            return Reply::error(401, None, "wrong login or password");
        }
        let token = self.new_id("token");
        let expires = self.now_ms() + self.config.token_ttl.as_millis() as u64;
        self.lock().tokens.insert(token.clone(), expires);
        Reply::json(json!({"token": token}))
    }

    /// `POST /api/scoring/init`.
    pub fn init(&self, token: Option<&str>, idempotency_key: Option<&str>, body: &Value) -> Answer {
        if !self.authorised(token) {
            return Reply::unauthorized().into();
        }
        self.lock().stats.init_calls += 1;
        let (key, seen) = self.idempotent_replay(idempotency_key);
        if let Some(previous) = seen {
            return Reply::json(previous).into();
        }
        let vin = body.get("vin").and_then(Value::as_str).unwrap_or_default().to_owned();
        if self.lock().scenarios.get(&vin).is_some_and(|s| s.throttled) {
            return Reply::error(429, None, "too many requests, try later").into();
        }
        let start = body.get("policyStartOn").and_then(Value::as_str);
        if start.is_none_or(|s| s.len() != 10) {
            return Reply::error(400, Some(1403), "invalid policy start on").into();
        }
        let scenario = self.lock().scenarios.get(&vin).cloned().unwrap_or_default();
        let fault = self.take_fault(&vin, &scenario, Call::Init);
        if let Some(f) = fault.filter(|f| !f.committed) {
            return Answer::failing(Reply::bare_ok(), Some(f.failure));
        }
        let sid = self.new_id("sc");
        let required = scenario.required_types.clone();
        let answer = json!({"scoringId": sid});
        {
            let mut state = self.lock();
            state.processes.insert(sid.clone(), Process { vin: vin.clone(), scenario, ..Process::default() });
            if let Some(k) = key {
                state.idempotent.insert(k, answer.clone());
            }
        }
        self.changed(&vin, Call::Init);
        self.send_hook(&sid, "documents/types-required", json!({"documentTypes": required}));
        Answer::failing(Reply::json(answer), fault.map(|f| f.failure))
    }

    /// `POST /api/blob` with the multipart field `Blob` (`None` when the field is missing).
    pub fn upload_blob(&self, token: Option<&str>, blob: Option<Vec<u8>>) -> Reply {
        if !self.authorised(token) {
            return Reply::unauthorized();
        }
        self.count("blob");
        match blob {
            Some(bytes) if !bytes.is_empty() => {
                Reply::json(json!({"blobId": self.store_blob(bytes, "application/octet-stream")}))
            }
            Some(_) => Reply::error(400, None, "empty file"),
            None => Reply::error(400, None, "multipart field Blob is required"),
        }
    }

    /// `GET /api/blob/{blobId}`.
    pub fn download_blob(&self, token: Option<&str>, blob_id: &str) -> Reply {
        if !self.authorised(token) {
            return Reply::unauthorized();
        }
        self.count("download");
        match self.lock().blobs.get(blob_id) {
            Some(blob) => Reply {
                status: 200,
                body: Body::File { content_type: blob.content_type.clone(), bytes: blob.bytes.clone() },
            },
            None => Reply::error(404, None, "no such blob"),
        }
    }

    /// `GET /download?key=` (`UI-Api.md`: the invoice's download key).
    pub fn download_by_key(&self, token: Option<&str>, key: &str) -> Reply {
        let blob = self.lock().download_keys.get(key).cloned();
        match blob {
            Some(blob_id) => self.download_blob(token, &blob_id),
            None if !self.authorised(token) => Reply::unauthorized(),
            None => Reply::error(404, None, "no such download key"),
        }
    }

    /// Where the simulator serves its API, for the links `policy-issued` may carry.
    pub fn set_public_url(&self, url: &str) {
        self.lock().public_url = url.trim_end_matches('/').to_owned();
    }

    /// `POST /api/scoring/{scoringId}/documents`.
    pub fn documents(&self, token: Option<&str>, sid: &str, body: &Value) -> Answer {
        if let Some(refused) = self.guard(token, sid, "documents") {
            return refused.into();
        }
        let Some(list) = body.get("documents").and_then(Value::as_array) else {
            return Reply::error(400, None, "documents: a list is required").into();
        };
        // Grouped by the requested types (individual-flow.md): one entry per type, its files.
        let mut types = Vec::new();
        let mut files_by_type = std::collections::BTreeMap::new();
        for d in list {
            let type_id = d.get("typeId").and_then(Value::as_u64).map(|t| t as u32);
            let blobs: Option<Vec<&str>> = d
                .get("blobs")
                .and_then(Value::as_array)
                .map(|bs| bs.iter().filter_map(|b| b.get("blobId").and_then(Value::as_str)).collect());
            let known = |bs: &Vec<&str>| {
                let state = self.lock();
                !bs.is_empty() && bs.iter().all(|b| state.blobs.contains_key(*b))
            };
            match (type_id, blobs) {
                (Some(t), Some(bs)) if known(&bs) && !types.contains(&t) => {
                    types.push(t);
                    files_by_type.insert(t, bs.len());
                }
                _ => {
                    let message = "one entry per typeId, each with blobs: [{blobId}] of uploaded files";
                    return Reply::error(400, None, message).into();
                }
            }
        }
        let Some((vin, scenario)) = self.with_process(sid, |p| (p.vin.clone(), p.scenario.clone())) else {
            return Reply::error(404, None, "no such scoring process").into();
        };
        let fault = self.take_fault(&vin, &scenario, Call::Documents);
        if let Some(f) = fault.filter(|f| !f.committed) {
            return Answer::failing(Reply::bare_ok(), Some(f.failure));
        }
        self.changed(&vin, Call::Documents);
        self.lock().stats.documents.insert(vin.clone(), files_by_type);
        let (round, missing) = self
            .with_process(sid, |p| {
                p.documents_round += 1;
                p.associated_types.extend(types.iter().copied());
                let missing: Vec<u32> = p
                    .scenario
                    .required_types
                    .iter()
                    .copied()
                    .filter(|t| !p.associated_types.contains(t))
                    .collect();
                (p.documents_round, missing)
            })
            .unwrap_or_default();
        if round <= scenario.upload_failures {
            // The same body every time: only the order of events tells a repeat from a new round.
            let first = scenario.required_types.first().copied().unwrap_or(11);
            self.send_hook(
                sid,
                "documents/upload-failed",
                json!({"documents": [{"typeId": first, "reason": "document is unreadable"}]}),
            );
        } else if !missing.is_empty() {
            self.send_hook(sid, "documents/upload-failed", json!({"missingTypeIds": missing}));
        } else {
            self.with_process(sid, |p| {
                p.documents_accepted = true;
                p.recognition_done = !p.scenario.prefilled_contract;
            });
            self.send_hook(sid, "documents/upload-completed", json!({}));
            // Recognition runs once the documents are associated (changelog v3); a late one
            // finishes only after our card has come (and overwrites it).
            if scenario.prefilled_contract && !scenario.late_recognition {
                let after_ms = scenario.recognition_delay_ms;
                self.lock().events.push_back(Event::RecognitionRuns { scoring_id: sid.to_owned(), after_ms });
            }
            self.maybe_start_scoring(sid);
        }
        Answer::failing(Reply::bare_ok(), fault.map(|f| f.failure))
    }

    /// `POST /api/scoring/{scoringId}/contract`.
    pub fn contract(&self, token: Option<&str>, sid: &str, card: &Value) -> Answer {
        if let Some(refused) = self.guard(token, sid, "contract") {
            return refused.into();
        }
        // The documents show the card's dates as ISO date-times; MUST refuses what it cannot read.
        for at in ["/policyStartOn", "/technicalInspection/startOn", "/technicalInspection/endOn"] {
            if let Some(value) = card.pointer(at) {
                if !value.as_str().is_some_and(is_date_time) {
                    return Reply::error(400, Some(1403), &format!("{at}: an ISO date-time is required"))
                        .into();
                }
            }
        }
        if card.pointer("/insurer/type").and_then(Value::as_str) == Some("legalEntity") {
            for field in ["inn", "kpp"] {
                if card.pointer(&format!("/insurer/{field}")).and_then(Value::as_str).is_none() {
                    let message = format!("insurer.{field} is required for a legal entity");
                    return Reply::error(400, None, &message).into();
                }
            }
        }
        let Some((vin, scenario, recognition_pending)) = self.with_process(sid, |p| {
            (p.vin.clone(), p.scenario.clone(), p.scenario.prefilled_contract && !p.recognition_done)
        }) else {
            return Reply::error(404, None, "no such scoring process").into();
        };
        let fault = self.take_fault(&vin, &scenario, Call::Contract);
        if let Some(f) = fault.filter(|f| !f.committed) {
            return Answer::failing(Reply::bare_ok(), Some(f.failure));
        }
        self.changed(&vin, Call::Contract);
        self.lock().stats.contracts.insert(vin, card.clone());
        self.with_process(sid, |p| p.card_received = true);
        self.send_hook(sid, "contract/update-completed", json!({}));
        if recognition_pending {
            // Changelog v3: recognition overwrites a contract that came before it finished.
            self.recognise(sid);
        }
        self.maybe_start_scoring(sid);
        Answer::failing(Reply::bare_ok(), fault.map(|f| f.failure))
    }

    /// The insurer a payment is asked for, if it approved and can be paid (changelog v2: otherwise HTTP 403).
    fn approved_insurer(&self, sid: &str, body: &Value) -> Option<String> {
        let insurer = body.get("insuranceCompany").and_then(Value::as_str).unwrap_or_default().to_owned();
        self.with_process(sid, |p| {
            let payable = p.approved.contains(&insurer) && !p.scenario.payment_refused.contains(&insurer);
            p.payment_requested |= payable;
            payable
        })
        .unwrap_or(false)
        .then_some(insurer)
    }

    /// The vehicle and planned fault of a payment call.
    fn payment_call(&self, sid: &str, call: Call) -> (String, Option<CallFault>) {
        let (vin, scenario) =
            self.with_process(sid, |p| (p.vin.clone(), p.scenario.clone())).unwrap_or_default();
        let fault = self.take_fault(&vin, &scenario, call);
        (vin, fault)
    }

    /// `POST /api/scoring/{scoringId}/payment-link`.
    pub fn payment_link(&self, token: Option<&str>, sid: &str, body: &Value) -> Answer {
        if let Some(refused) = self.guard(token, sid, "payment-link") {
            return refused.into();
        }
        let (vin, fault) = self.payment_call(sid, Call::PaymentLink);
        if let Some(f) = fault.filter(|f| !f.committed) {
            return Answer::failing(Reply::bare_ok(), Some(f.failure));
        }
        if let Some(code) = self.with_process(sid, |p| p.scenario.payment_rejected_with).flatten() {
            return Reply::error(400, Some(code), "simulated refusal of the payment request").into();
        }
        let Some(insurer) = self.approved_insurer(sid, body) else {
            return not_approved().into();
        };
        self.changed(&vin, Call::PaymentLink);
        let page = if insurer.is_empty() { "agent" } else { insurer.as_str() };
        let link = format!("https://{PAYMENT_HOST}/pay/{sid}/{page}");
        if let Some((late, late_link)) = self.with_process(sid, |p| p.late_link.take()).flatten() {
            self.send_hook(
                sid,
                "payment-link-generated",
                json!({"insuranceCompany": late, "paymentLink": late_link}),
            );
        }
        self.send_hook(
            sid,
            "payment-link-generated",
            json!({"insuranceCompany": insurer, "paymentLink": link}),
        );
        let drops_out = self
            .with_process(sid, |p| {
                let out = p.scenario.drops_out_after_link.as_ref() == Some(&insurer);
                if out {
                    p.approved.remove(&insurer);
                    p.late_link = Some((insurer.clone(), link.clone()));
                }
                out
            })
            .unwrap_or(false);
        if drops_out {
            let failure = json!({
                "insuranceCompany": insurer,
                "errorCode": 1602,
                "errorMessage": "simulated: the insurer could not keep its payment link",
            });
            self.send_hook(sid, "company-failed", failure);
        } else if self.with_process(sid, |p| p.scenario.payment_deadline_passes).unwrap_or(false) {
            let stopped =
                json!({"errorCode": 1603, "errorMessage": "Истек срок оплаты полиса, процесс остановлен"});
            self.send_hook(sid, "failed", stopped);
        } else {
            self.lock().events.push_back(Event::CustomerWillPay { scoring_id: sid.to_owned() });
        }
        Answer::failing(Reply::bare_ok(), fault.map(|f| f.failure))
    }

    /// `POST /api/scoring/{scoringId}/payment-invoice`.
    pub fn payment_invoice(&self, token: Option<&str>, sid: &str, body: &Value) -> Answer {
        if let Some(refused) = self.guard(token, sid, "payment-invoice") {
            return refused.into();
        }
        let (vin, fault) = self.payment_call(sid, Call::PaymentInvoice);
        if let Some(f) = fault.filter(|f| !f.committed) {
            return Answer::failing(Reply::bare_ok(), Some(f.failure));
        }
        let Some(insurer) = self.approved_insurer(sid, body) else {
            return not_approved().into();
        };
        self.changed(&vin, Call::PaymentInvoice);
        let invoice = self.store_blob(pdf::one_page(&format!("Invoice for {sid}")), "application/pdf");
        let by_key = self.with_process(sid, |p| p.scenario.invoice_by_download_key).unwrap_or(false);
        let named = if by_key {
            let key = format!("dk-{}", self.new_id("key"));
            self.lock().download_keys.insert(key.clone(), invoice);
            json!({"insuranceCompany": insurer, "paymentInvoiceDownloadKey": key})
        } else {
            json!({"insuranceCompany": insurer, "paymentInvoiceBlobId": invoice})
        };
        self.send_hook(sid, "payment-invoice-generated", named);
        Answer::failing(Reply::bare_ok(), fault.map(|f| f.failure))
    }

    /// `POST /api/scoring/scoring/{scoringId}/payment-order`.
    pub fn payment_order(&self, token: Option<&str>, sid: &str, body: &Value) -> Answer {
        if let Some(refused) = self.guard(token, sid, "payment-order") {
            return refused.into();
        }
        let known =
            body.get("blobId").and_then(Value::as_str).is_some_and(|b| self.lock().blobs.contains_key(b));
        let invoiced = self.with_process(sid, |p| p.payment_requested).unwrap_or(false);
        if !known || !invoiced {
            let message = "a known blobId of a payment order, after an invoice, is required";
            return Reply::error(400, None, message).into();
        }
        let (vin, fault) = self.payment_call(sid, Call::PaymentOrder);
        if let Some(f) = fault.filter(|f| !f.committed) {
            return Answer::failing(Reply::bare_ok(), Some(f.failure));
        }
        self.changed(&vin, Call::PaymentOrder);
        if !self.with_process(sid, |p| p.paid).unwrap_or(true) {
            self.issue_policy(sid);
        }
        Answer::failing(Reply::bare_ok(), fault.map(|f| f.failure))
    }

    /// The customer paid through the link: the insurer issues the policy.
    pub fn pay(&self, sid: &str) {
        if !self.with_process(sid, |p| p.paid).unwrap_or(true) {
            self.issue_policy(sid);
        }
    }

    /// Recognition finished: its contract overwrites the card MUST holds; scoring may start.
    pub fn finish_recognition(&self, sid: &str) {
        if self.with_process(sid, |p| p.recognition_done).unwrap_or(true) {
            return;
        }
        self.recognise(sid);
        self.maybe_start_scoring(sid);
    }

    /// Both steps 3 and 4 done: scoring starts by itself (step 5), on whatever card MUST
    /// holds then (the documents are silent on waiting for a second card after recognition).
    fn maybe_start_scoring(&self, sid: &str) {
        let Some((scenario, vin, start)) = self.with_process(sid, |p| {
            let start = p.documents_accepted && p.card_received && p.recognition_done && !p.scoring_started;
            p.scoring_started |= start;
            (p.scenario.clone(), p.vin.clone(), start)
        }) else {
            return;
        };
        if !start {
            return;
        }
        let mut state = self.lock();
        let card = state.stats.contracts.get(&vin).cloned();
        if let Some(card) = &card {
            state.stats.contracts_at_scoring.insert(vin.clone(), card.clone());
        }
        drop(state);
        let nth = self.scorings(&vin).iter().position(|s| s == sid).unwrap_or_default() as u32;
        let unavailable = (nth < scenario.unavailable_first).then_some(1205);
        if let Some(code) = scenario.fail_with.or(unavailable).or_else(|| card.as_ref().and_then(card_error))
        {
            let entry = json!({"errorCode": code, "errorMessage": format!("simulated failure {code}")});
            self.send_hook(sid, "failed", entry);
            return;
        }
        let insurers: Vec<&str> = scenario.insurers.iter().map(|i| i.insurer.as_str()).collect();
        self.send_hook(sid, "started", json!({"insuranceCompanies": insurers}));
        for result in &scenario.insurers {
            match result.outcome {
                OfferOutcome::Approved => {
                    // A payment request names the insurer approved (none, for the seed's agent).
                    let payable = if scenario.seed_only { String::new() } else { result.insurer.clone() };
                    self.with_process(sid, |p| p.approved.insert(payable));
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
                    if scenario.seed_only { "failed" } else { "company-failed" },
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

    /// Recognition pre-fills (or overwrites) the contract from the documents and says so.
    fn recognise(&self, sid: &str) {
        let Some(vin) = self.with_process(sid, |p| {
            p.recognition_done = true;
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
        self.lock().blobs.insert(id.clone(), Blob { content_type: content_type.to_owned(), bytes });
        id
    }

    /// Paid: the insurer issues the policy and MUST sends its files.
    fn issue_policy(&self, sid: &str) {
        let Some((files, kind, issued_first, naming)) = self.with_process(sid, |p| {
            p.paid = true;
            (
                p.scenario.policy_files.max(1),
                p.scenario.policy_file,
                p.scenario.issued_before_paid,
                p.scenario.policy_named_by,
            )
        }) else {
            return;
        };
        if !issued_first {
            self.send_hook(sid, "policy-is-paid", json!({}));
        }
        let number = format!("XXX {:010}", self.now_ms() % 10_000_000_000);
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
        let first = blobs.first().and_then(|b| b["blobId"].as_str()).unwrap_or_default().to_owned();
        let public_url = self.lock().public_url.clone();
        let issued = match naming {
            PolicyNaming::Documents => json!({"policyNumber": number, "documents": blobs}),
            PolicyNaming::PolicyBlobId => json!({"policyNumber": number, "policyBlobId": first}),
            PolicyNaming::PolicyLink => {
                json!({"policyNumber": number, "policyLink": format!("{public_url}/api/blob/{first}")})
            }
            PolicyNaming::ForeignLink => {
                json!({"policyNumber": number, "policyLink": format!("https://files.insurer.example/{first}.pdf")})
            }
            PolicyNaming::Nothing => json!({"policyNumber": number}),
        };
        self.send_hook(sid, "policy-issued", issued);
        if issued_first {
            self.send_hook(sid, "policy-is-paid", json!({}));
        }
    }
}

/// An ISO 8601 date-time with its zone, as MUST's documents show them
/// (`2021-09-02T14:42:00.256Z`, `2021-04-04T08:10:18.021+00:00`).
fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        rest = &fraction[end..];
    }
    let zone = rest.as_bytes();
    rest == "Z"
        || (zone.len() == 6
            && matches!(zone[0], b'+' | b'-')
            && zone[1..3].iter().all(u8::is_ascii_digit)
            && zone[3] == b':'
            && zone[4..6].iter().all(u8::is_ascii_digit))
}

/// MUST's own check of the card it scores (its error table): a diagnostic card that ends
/// before the policy starts is 1421, "enter a valid diagnostic card".
fn card_error(card: &Value) -> Option<u32> {
    let ends = card["technicalInspection"]["endOn"].as_str()?.get(..10)?;
    let starts = card["policyStartOn"].as_str()?.get(..10)?;
    (ends < starts).then_some(1421)
}

#[cfg(test)]
mod date_time_tests {
    use super::is_date_time;

    #[test]
    fn the_documents_date_times_are_read_and_a_bare_date_is_not() {
        for ok in ["2021-09-02T14:42:00.256Z", "2021-04-04T08:10:18.021+00:00", "2026-12-01T00:00:00+03:00"] {
            assert!(is_date_time(ok), "{ok}");
        }
        for bad in ["2026-12-01", "2026-12-01T00:00:00", "2026-12-01T00:00:00.Z", "2026-12-01 00:00:00Z"] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }
}
