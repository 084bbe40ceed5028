//! A BIMA API simulator that behaves as the seed `bima-bank-imon.ru.md` says:
//! `POST /api/v1/auth/token` (the bank's client id and secret as HTTP Basic),
//! then with the bearer token `premium/calc`, `policies/sale` and
//! `policies/print/link`; BIMA "delivers" the link by e-mail and/or SMS to the
//! contacts given (counted in the stats), and serves the print form as a PDF.
//!
//! Requests are checked field by field; a refusal is a 422 naming each field.
//! Faults (500, 429, hangs, slowness) on a share of calls: `Sim::faults`.
//! Scenarios are chosen per loan by its sum (`CREDIT_SUM`, the one value both
//! the calc and the sale carry) with `Sim::set_scenario`.
//!
//! Where the seed is silent, the least helpful reading is the default: the sale
//! answers a bare `200` with an empty body (the seed's "200 OK (сохранено)"), and
//! BIMA's API then asks for the print link itself; `Idempotency-Key` is ignored.

mod validate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

pub use validate::Refusal;

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub client_id: String,
    pub client_secret: String,
    pub token_ttl: Duration,
    /// Yearly premium rate in basis points of the sum (60 = 0.6 % a year).
    pub rate_bp_per_year: u64,
    /// What a sale answers (a loan's scenario may say otherwise).
    pub sale_answer: SaleAnswer,
    /// Answer a repeated `Idempotency-Key` with the first answer (the seed promises nothing).
    pub honour_idempotency_keys: bool,
    /// How long a call that "times out" takes to answer (longer than the caller waits).
    pub hang: Duration,
}

/// What a successful sale answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SaleAnswer {
    /// `200` and an empty body, as much as the seed promises; BIMA asks for the print link itself.
    #[default]
    Bare,
    /// `200` with `{status, policy_id, policy_number}`.
    WithIds,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: "imon".into(),
            client_secret: "bima-local-secret".into(),
            token_ttl: Duration::from_secs(3600),
            rate_bp_per_year: 60,
            sale_answer: SaleAnswer::Bare,
            honour_idempotency_keys: false,
            hang: Duration::from_secs(6),
        }
    }
}

/// What happens to one loan (chosen by its `CREDIT_SUM`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    /// The calc is refused (422) with this message.
    pub calc_error: Option<String>,
    /// The sale is refused (409) with this message.
    pub sale_refused: Option<String>,
    /// The first sale fails this way, after (`true`) or before BIMA saved it.
    pub sale_fault: Option<(Failure, bool)>,
    /// The print-link service answers 503 this many times, then works.
    pub print_link_down: u32,
    /// Every answer about this loan comes after this delay.
    pub slow: Option<Duration>,
    /// How the print form is served.
    pub print_form: PrintForm,
    /// What the sale answers, instead of the simulator's setting.
    pub sale_answer: Option<SaleAnswer>,
}

/// How the print form behind a print link is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrintForm {
    /// A PDF.
    #[default]
    Pdf,
    /// A 302 to where the PDF is.
    Redirected,
    /// 403: the link has expired.
    Expired,
    /// A JPEG scan of the form.
    Jpeg,
    /// A file of this many megabytes.
    Huge(u32),
}

/// What the simulator counted.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub token_calls: u64,
    pub calls: HashMap<String, u64>,
    /// Policies created, by credit number: one loan must make one.
    pub policies_by_credit: HashMap<String, u64>,
    /// Print links delivered, by channel ("email", "sms").
    pub deliveries: HashMap<String, u64>,
    pub unauthorized: u64,
    /// 4xx answers for invalid requests.
    pub refused: u64,
}

pub use polis_must_sim::Failure;

#[derive(Debug, Clone)]
struct Policy {
    number: String,
    scenario_key: String,
    credit_number: String,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, u64>,
    scenarios: HashMap<String, Scenario>,
    print_link_failures: HashMap<String, u32>,
    /// Loans whose planned sale fault has fired.
    sale_faulted: std::collections::HashSet<String>,
    policies: HashMap<String, Policy>,
    idempotent: HashMap<String, Value>,
    next_id: u64,
    stats: Stats,
}

pub struct Sim {
    /// Faults injected on BIMA's API (not on the simulator's own routes).
    pub faults: Arc<polis_must_sim::faults::Faults>,
    config: SimConfig,
    inner: Mutex<Inner>,
    base_url: String,
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
}

impl SimHandle {
    pub fn base_url(&self) -> String {
        self.sim.base_url.clone()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

/// Starts the simulator on `listen` (port 0 for any free port).
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim {
        faults: Arc::default(),
        config,
        inner: Mutex::default(),
        base_url: format!("http://{addr}"),
    });
    let app = Router::new()
        .route("/api/v1/auth/token", post(token))
        .route("/api/v1/premium/calc", post(calc))
        .route("/api/v1/policies/sale", post(sale))
        .route("/api/v1/policies/print/link", post(print_link))
        .route_layer(axum::middleware::from_fn_with_state(sim.faults.clone(), polis_must_sim::faults::inject))
        .route("/print/{file}", get(print_form))
        .route("/print-store/{file}", get(print_form_stored))
        .route("/sim/stats", get(stats))
        .with_state(sim.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SimHandle { addr, sim })
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a handler panicked; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// The scenario of the loan whose `CREDIT_SUM` is `credit_sum`.
    pub fn set_scenario(&self, credit_sum: &str, scenario: Scenario) {
        let mut inner = self.lock();
        inner.print_link_failures.insert(credit_sum.to_owned(), scenario.print_link_down);
        inner.scenarios.insert(credit_sum.to_owned(), scenario);
    }

    /// Drops every token, as if they all expired (to test refresh on 401).
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// The policies BIMA made for a credit: (policy id, number), as its back office shows them.
    pub fn policies_of(&self, credit_number: &str) -> Vec<(String, String)> {
        let inner = self.lock();
        let mut found: Vec<(String, String)> = inner
            .policies
            .iter()
            .filter(|(_, p)| p.credit_number == credit_number)
            .map(|(id, p)| (id.clone(), p.number.clone()))
            .collect();
        found.sort();
        found
    }

    fn scenario(&self, key: &str) -> Scenario {
        self.lock().scenarios.get(key).cloned().unwrap_or_default()
    }

    fn count(&self, name: &str) {
        *self.lock().stats.calls.entry(name.to_owned()).or_default() += 1;
    }

    fn new_id(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        inner.next_id
    }

    /// Checks the bearer token and reads the JSON body; `Err` is the 401 or 400 to answer.
    fn accept(&self, headers: &HeaderMap, bytes: &[u8]) -> Result<Value, Box<Response>> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let mut inner = self.lock();
        let valid = token.and_then(|t| inner.tokens.get(t)).is_some_and(|&expires| expires > now_ms());
        if !valid {
            inner.stats.unauthorized += 1;
            return Err(Box::new(error(StatusCode::UNAUTHORIZED, "token missing or expired")));
        }
        serde_json::from_slice::<Value>(bytes).ok().filter(Value::is_object).ok_or_else(|| {
            inner.stats.refused += 1;
            Box::new(error(StatusCode::BAD_REQUEST, "body must be a JSON object"))
        })
    }

    /// A refusal of invalid fields: 422 with each field and why.
    fn refuse(&self, problems: Vec<Refusal>) -> Response {
        self.lock().stats.refused += 1;
        (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "validation failed", "errors": problems})))
            .into_response()
    }

    fn replay(&self, headers: &HeaderMap) -> (Option<String>, Option<Value>) {
        if !self.config.honour_idempotency_keys {
            return (None, None);
        }
        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let seen = key.as_ref().and_then(|k| self.lock().idempotent.get(k).cloned());
        (key, seen)
    }

    async fn delay(&self, key: &str) {
        if let Some(delay) = self.scenario(key).slow {
            tokio::time::sleep(delay).await;
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

async fn token(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    sim.lock().stats.token_calls += 1;
    let expected = (sim.config.client_id.clone(), sim.config.client_secret.clone());
    if basic_credentials(&headers).as_ref() != Some(&expected) {
        sim.lock().stats.unauthorized += 1;
        return error(StatusCode::UNAUTHORIZED, "wrong client id or secret");
    }
    let token = format!("bima-token-{}", sim.new_id());
    sim.lock().tokens.insert(token.clone(), now_ms() + sim.config.token_ttl.as_millis() as u64);
    Json(json!({"token": token})).into_response()
}

/// Whole somoni and dirams: `cents` as "1234.50".
fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

async fn calc(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    sim.count("calc");
    let body = match sim.accept(&headers, &body) {
        Ok(b) => b,
        Err(answer) => return *answer,
    };
    let input = match validate::calc(&body) {
        Ok(input) => input,
        Err(problems) => return sim.refuse(problems),
    };
    let key = input.sum.to_string();
    sim.delay(&key).await;
    if let Some(message) = sim.scenario(&key).calc_error {
        return error(StatusCode::UNPROCESSABLE_ENTITY, &message);
    }
    // premium = sum × yearly rate × years, in dirams, rounded down.
    let cents = input.sum * 100 * sim.config.rate_bp_per_year * input.months / (10_000 * 12);
    Json(json!({
        "premium": money(cents),
        "sum_insured": input.sum.to_string(),
        "risks": [{"code": "DEATH", "name": "death"}, {"code": "DISABILITY", "name": "disability"}],
    }))
    .into_response()
}

async fn sale(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    sim.count("sale");
    let body = match sim.accept(&headers, &body) {
        Ok(b) => b,
        Err(answer) => return *answer,
    };
    let input = match validate::sale(&body) {
        Ok(input) => input,
        Err(problems) => return sim.refuse(problems),
    };
    let scenario = sim.scenario(&input.credit_sum);
    if let Some(message) = scenario.sale_refused.clone() {
        return error(StatusCode::CONFLICT, &message);
    }
    let (key, seen) = sim.replay(&headers);
    if let Some(previous) = seen {
        sim.delay(&input.credit_sum).await;
        return Json(previous).into_response();
    }
    let fault = scenario.sale_fault.filter(|_| sim.lock().sale_faulted.insert(input.credit_sum.clone()));
    if let Some((failure, false)) = fault {
        return fail(&sim, failure, StatusCode::OK.into_response()).await;
    }
    let id = sim.new_id();
    let policy_id = format!("{}", 100_000 + id);
    let number = format!("CL-{:08}", id);
    let answer = json!({"status": "saved", "policy_id": policy_id, "policy_number": number});
    let scenario_key = input.credit_sum.clone();
    let bare = scenario.sale_answer.unwrap_or(sim.config.sale_answer) == SaleAnswer::Bare;
    {
        let mut inner = sim.lock();
        let policy =
            Policy { number, scenario_key: input.credit_sum, credit_number: input.credit_number.clone() };
        inner.policies.insert(policy_id, policy);
        *inner.stats.policies_by_credit.entry(input.credit_number).or_default() += 1;
        if bare {
            // The seed: BIMA's API asks its print-link service itself and the link goes out.
            *inner.stats.deliveries.entry("sms".into()).or_default() += 1;
        }
        if let Some(k) = key {
            inner.idempotent.insert(k, answer.clone());
        }
    }
    // A slow sale is done at BIMA before its answer comes (the caller may be gone by then).
    sim.delay(&scenario_key).await;
    let ok = if bare { StatusCode::OK.into_response() } else { Json(answer).into_response() };
    match fault {
        Some((failure, _)) => fail(&sim, failure, ok).await,
        None => ok,
    }
}

/// How a call ends for the caller when it fails: late, 502, or with the connection dropped.
async fn fail(sim: &Sim, failure: Failure, ok: Response) -> Response {
    match failure {
        Failure::Timeout => {
            tokio::time::sleep(sim.config.hang).await;
            ok
        }
        Failure::BadGateway => error(StatusCode::BAD_GATEWAY, "bad gateway"),
        // No answer at all (no panic message: `resume_unwind`).
        Failure::Reset => std::panic::resume_unwind(Box::new("simulated connection reset")),
    }
}

async fn print_link(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    sim.count("print-link");
    let body = match sim.accept(&headers, &body) {
        Ok(b) => b,
        Err(answer) => return *answer,
    };
    let policy_id = match validate::print_link(&body) {
        Ok(id) => id,
        Err(problems) => return sim.refuse(problems),
    };
    let Some(policy) = sim.lock().policies.get(&policy_id).cloned() else {
        return error(StatusCode::NOT_FOUND, "no such policy");
    };
    sim.delay(&policy.scenario_key).await;
    {
        let mut inner = sim.lock();
        if let Some(left) = inner.print_link_failures.get_mut(&policy.scenario_key).filter(|n| **n > 0) {
            *left -= 1;
            return error(StatusCode::SERVICE_UNAVAILABLE, "print-link service unavailable");
        }
        for (field, channel) in [("email", "email"), ("phone", "sms")] {
            if body.get(field).is_some() {
                *inner.stats.deliveries.entry(channel.into()).or_default() += 1;
            }
        }
    }
    Json(json!({"print_link": format!("{}/print/{policy_id}.pdf", sim.base_url)})).into_response()
}

async fn print_form(State(sim): State<Arc<Sim>>, Path(file): Path<String>) -> Response {
    let policy_id = file.strip_suffix(".pdf").unwrap_or(&file);
    let Some(policy) = sim.lock().policies.get(policy_id).cloned() else {
        return error(StatusCode::NOT_FOUND, "no such policy");
    };
    let title = format!("BIMA credit-life policy {}", policy.number);
    match sim.scenario(&policy.scenario_key).print_form {
        PrintForm::Pdf => {
            ([(header::CONTENT_TYPE, "application/pdf")], polis_must_sim::pdf::one_page(&title))
                .into_response()
        }
        PrintForm::Redirected => {
            (StatusCode::FOUND, [(header::LOCATION, format!("/print-store/{file}"))]).into_response()
        }
        PrintForm::Expired => error(StatusCode::FORBIDDEN, "link expired"),
        PrintForm::Jpeg => {
            ([(header::CONTENT_TYPE, "image/jpeg")], polis_must_sim::pdf::jpeg_scan(&title)).into_response()
        }
        PrintForm::Huge(mb) => {
            ([(header::CONTENT_TYPE, "application/pdf")], vec![b'%'; mb as usize * 1024 * 1024])
                .into_response()
        }
    }
}

/// Where a redirected print link leads.
async fn print_form_stored(State(sim): State<Arc<Sim>>, Path(file): Path<String>) -> Response {
    let policy_id = file.strip_suffix(".pdf").unwrap_or(&file);
    let Some(policy) = sim.lock().policies.get(policy_id).cloned() else {
        return error(StatusCode::NOT_FOUND, "no such policy");
    };
    let pdf = polis_must_sim::pdf::one_page(&format!("BIMA credit-life policy {}", policy.number));
    ([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response()
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<Stats> {
    Json(sim.stats())
}
