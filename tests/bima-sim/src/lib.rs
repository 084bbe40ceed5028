//! A BIMA API simulator that behaves as the seed `bima-bank-imon.ru.md` says:
//! `POST /api/v1/auth/token` (the bank's client id and secret as HTTP Basic),
//! then with the bearer token `premium/calc`, `policies/sale` and
//! `policies/print/link`; BIMA "delivers" the link by e-mail and/or SMS to the
//! contacts given (counted in the stats), and serves the print form as a PDF.
//!
//! Requests are checked field by field; a refusal is a 422 naming each field.
//! Faults (500, 429, hangs, slowness) on a share of calls: `Sim::faults`.
//! BIMA itself is [`model::Bima`], free of any transport; this crate's server carries it
//! over HTTP.
//! Scenarios are chosen per loan by its sum (`CREDIT_SUM`, the one value both
//! the calc and the sale carry) with `Sim::set_scenario`.
//!
//! Where the seed is silent, the least helpful reading is the default: the sale
//! answers a bare `200` with an empty body (the seed's "200 OK (сохранено)"), and
//! BIMA's API then asks for the print link itself; `Idempotency-Key` is ignored.

pub mod model;
mod validate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use polis_must_sim::{into_response, respond};

use model::Bima;
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
    /// Print-link requests naming a known policy, by its credit number.
    pub print_links_by_credit: HashMap<String, u64>,
    /// Print links delivered, by channel ("email", "sms").
    pub deliveries: HashMap<String, u64>,
    pub unauthorized: u64,
    /// 4xx answers for invalid requests.
    pub refused: u64,
}

pub use polis_must_sim::Failure;

/// The HTTP server around [`Bima`].
pub struct Sim {
    /// Faults injected on BIMA's API (not on the simulator's own routes).
    pub faults: Arc<polis_must_sim::faults::Faults>,
    pub bima: Bima,
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
}

impl SimHandle {
    pub fn base_url(&self) -> String {
        self.sim.bima.base_url().to_owned()
    }
}

/// Starts the simulator on `listen` (port 0 for any free port).
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim { faults: Arc::default(), bima: Bima::new(config, format!("http://{addr}")) });
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
    pub fn stats(&self) -> Stats {
        self.bima.stats()
    }

    /// The scenario of the loan whose `CREDIT_SUM` is `credit_sum`.
    pub fn set_scenario(&self, credit_sum: &str, scenario: Scenario) {
        self.bima.set_scenario(credit_sum, scenario);
    }

    /// Drops every token, as if they all expired (to test refresh on 401).
    pub fn expire_tokens(&self) {
        self.bima.expire_tokens();
    }

    /// The policies BIMA made for a credit: (policy id, number).
    pub fn policies_of(&self, credit_number: &str) -> Vec<(String, String)> {
        self.bima.policies_of(credit_number)
    }

    fn hang(&self) -> Duration {
        self.bima.config().hang
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

async fn token(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    into_response(sim.bima.token(basic_credentials(&headers)))
}

async fn calc(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    respond(sim.bima.calc(bearer(&headers), &body), sim.hang()).await
}

async fn sale(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    respond(sim.bima.sale(bearer(&headers), key, &body), sim.hang()).await
}

async fn print_link(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    respond(sim.bima.print_link(bearer(&headers), &body), sim.hang()).await
}

async fn print_form(State(sim): State<Arc<Sim>>, Path(file): Path<String>) -> Response {
    into_response(sim.bima.print_form(&file))
}

async fn print_form_stored(State(sim): State<Arc<Sim>>, Path(file): Path<String>) -> Response {
    into_response(sim.bima.print_form_stored(&file))
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<Stats> {
    Json(sim.stats())
}
