//! BIMA as the seed describes it, without a transport: each API call is a method
//! answering with an HTTP status and body ([`Reply`]); the HTTP server in this crate
//! carries the answers, and a simulation may call the methods itself.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use polis_must_sim::model::{Answer, Body, Reply};
use serde_json::{json, Value};

use crate::validate::{self, Refusal};
use crate::{PrintForm, SaleAnswer, Scenario, SimConfig, Stats};

#[derive(Debug, Clone)]
struct Policy {
    number: String,
    scenario_key: String,
    credit_number: String,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, u64>,
    scenarios: HashMap<String, Scenario>,
    print_link_failures: HashMap<String, u32>,
    /// Loans whose planned sale fault has fired.
    sale_faulted: HashSet<String>,
    policies: HashMap<String, Policy>,
    idempotent: HashMap<String, Value>,
    next_id: u64,
    stats: Stats,
}

/// BIMA's API and back office.
pub struct Bima {
    config: SimConfig,
    /// Where print links point (`{base_url}/print/{policyId}.pdf`).
    base_url: String,
    clock: fn() -> u64,
    state: Mutex<State>,
}

fn error(status: u16, message: &str) -> Reply {
    Reply { status, body: Body::Json(json!({"message": message})) }
}

/// Whole somoni and dirams: `cents` as "1234.50".
fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl Bima {
    pub fn new(config: SimConfig, base_url: String) -> Bima {
        Bima::with_clock(config, base_url, polis_must_sim::model::system_ms)
    }

    /// A BIMA that reads the time from `clock` (epoch milliseconds), e.g. a simulation's.
    pub fn with_clock(config: SimConfig, base_url: String, clock: fn() -> u64) -> Bima {
        Bima { config, base_url, clock, state: Mutex::default() }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a caller panicked; the data is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// The scenario of the loan whose `CREDIT_SUM` is `credit_sum`.
    pub fn set_scenario(&self, credit_sum: &str, scenario: Scenario) {
        let mut state = self.lock();
        state.print_link_failures.insert(credit_sum.to_owned(), scenario.print_link_down);
        state.scenarios.insert(credit_sum.to_owned(), scenario);
    }

    /// Drops every token, as if they all expired.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// The policies BIMA made for a credit: (policy id, number), as its back office shows them.
    pub fn policies_of(&self, credit_number: &str) -> Vec<(String, String)> {
        let state = self.lock();
        let mut found: Vec<(String, String)> = state
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
        let mut state = self.lock();
        state.next_id += 1;
        state.next_id
    }

    /// Checks the bearer token and reads the JSON body; `Err` is the 401 or 400 to answer.
    fn accept(&self, token: Option<&str>, bytes: &[u8]) -> Result<Value, Reply> {
        let now = (self.clock)();
        let mut state = self.lock();
        let valid = token.and_then(|t| state.tokens.get(t)).is_some_and(|&expires| expires > now);
        if !valid {
            state.stats.unauthorized += 1;
            return Err(error(401, "token missing or expired"));
        }
        serde_json::from_slice::<Value>(bytes).ok().filter(Value::is_object).ok_or_else(|| {
            state.stats.refused += 1;
            error(400, "body must be a JSON object")
        })
    }

    /// A refusal of invalid fields: 422 with each field and why.
    fn refuse(&self, problems: Vec<Refusal>) -> Reply {
        self.lock().stats.refused += 1;
        Reply { status: 422, body: Body::Json(json!({"message": "validation failed", "errors": problems})) }
    }

    fn replay(&self, key: Option<&str>) -> (Option<String>, Option<Value>) {
        if !self.config.honour_idempotency_keys {
            return (None, None);
        }
        let seen = key.and_then(|k| self.lock().idempotent.get(k).cloned());
        (key.map(str::to_owned), seen)
    }

    fn answer(&self, key: &str, reply: Reply) -> Answer {
        Answer { reply, delay: self.scenario(key).slow, failure: None }
    }

    /// `POST /api/v1/auth/token` with the client id and secret (HTTP Basic).
    pub fn token(&self, credentials: Option<(String, String)>) -> Reply {
        self.lock().stats.token_calls += 1;
        let expected = (self.config.client_id.clone(), self.config.client_secret.clone());
        if credentials.as_ref() != Some(&expected) {
            self.lock().stats.unauthorized += 1;
            return error(401, "wrong client id or secret");
        }
        let token = format!("bima-token-{}", self.new_id());
        let expires = (self.clock)() + self.config.token_ttl.as_millis() as u64;
        self.lock().tokens.insert(token.clone(), expires);
        Reply::json(json!({"token": token}))
    }

    /// `POST /api/v1/premium/calc`.
    pub fn calc(&self, token: Option<&str>, body: &[u8]) -> Answer {
        self.count("calc");
        let body = match self.accept(token, body) {
            Ok(b) => b,
            Err(reply) => return reply.into(),
        };
        let input = match validate::calc(&body) {
            Ok(input) => input,
            Err(problems) => return self.refuse(problems).into(),
        };
        let key = input.sum.to_string();
        if let Some(message) = self.scenario(&key).calc_error {
            return self.answer(&key, error(422, &message));
        }
        // premium = sum × yearly rate × years, in dirams, rounded down.
        let cents = input.sum * 100 * self.config.rate_bp_per_year * input.months / (10_000 * 12);
        let reply = Reply::json(json!({
            "premium": money(cents),
            "sum_insured": input.sum.to_string(),
            "risks": [{"code": "DEATH", "name": "death"}, {"code": "DISABILITY", "name": "disability"}],
        }));
        self.answer(&key, reply)
    }

    /// `POST /api/v1/policies/sale`. A slow sale is made at BIMA before its answer comes
    /// (the caller may be gone by then).
    pub fn sale(&self, token: Option<&str>, idempotency_key: Option<&str>, body: &[u8]) -> Answer {
        self.count("sale");
        let body = match self.accept(token, body) {
            Ok(b) => b,
            Err(reply) => return reply.into(),
        };
        let input = match validate::sale(&body) {
            Ok(input) => input,
            Err(problems) => return self.refuse(problems).into(),
        };
        let scenario = self.scenario(&input.credit_sum);
        if let Some(message) = scenario.sale_refused.clone() {
            return error(409, &message).into();
        }
        let (key, seen) = self.replay(idempotency_key);
        if let Some(previous) = seen {
            return self.answer(&input.credit_sum, Reply::json(previous));
        }
        let fault = scenario.sale_fault.filter(|_| self.lock().sale_faulted.insert(input.credit_sum.clone()));
        if let Some((failure, false)) = fault {
            return Answer::failing(Reply::bare_ok(), Some(failure));
        }
        let id = self.new_id();
        let policy_id = format!("{}", 100_000 + id);
        let number = format!("CL-{:08}", id);
        let answer = json!({"status": "saved", "policy_id": policy_id, "policy_number": number});
        let scenario_key = input.credit_sum.clone();
        let bare = scenario.sale_answer.unwrap_or(self.config.sale_answer) == SaleAnswer::Bare;
        {
            let mut state = self.lock();
            let policy =
                Policy { number, scenario_key: input.credit_sum, credit_number: input.credit_number.clone() };
            state.policies.insert(policy_id, policy);
            *state.stats.policies_by_credit.entry(input.credit_number).or_default() += 1;
            if bare {
                // The seed: BIMA's API asks its print-link service itself and the link goes out.
                *state.stats.deliveries.entry("sms".into()).or_default() += 1;
            }
            if let Some(k) = key {
                state.idempotent.insert(k, answer.clone());
            }
        }
        let reply = if bare { Reply::bare_ok() } else { Reply::json(answer) };
        Answer { failure: fault.map(|(failure, _)| failure), ..self.answer(&scenario_key, reply) }
    }

    /// `POST /api/v1/policies/print/link`.
    pub fn print_link(&self, token: Option<&str>, body: &[u8]) -> Answer {
        self.count("print-link");
        let body = match self.accept(token, body) {
            Ok(b) => b,
            Err(reply) => return reply.into(),
        };
        let policy_id = match validate::print_link(&body) {
            Ok(id) => id,
            Err(problems) => return self.refuse(problems).into(),
        };
        let Some(policy) = self.lock().policies.get(&policy_id).cloned() else {
            return error(404, "no such policy").into();
        };
        let reply = {
            let mut state = self.lock();
            *state.stats.print_links_by_credit.entry(policy.credit_number.clone()).or_default() += 1;
            if let Some(left) = state.print_link_failures.get_mut(&policy.scenario_key).filter(|n| **n > 0) {
                *left -= 1;
                error(503, "print-link service unavailable")
            } else {
                for (field, channel) in [("email", "email"), ("phone", "sms")] {
                    if body.get(field).is_some() {
                        *state.stats.deliveries.entry(channel.into()).or_default() += 1;
                    }
                }
                Reply::json(json!({"print_link": format!("{}/print/{policy_id}.pdf", self.base_url)}))
            }
        };
        self.answer(&policy.scenario_key, reply)
    }

    /// `GET /print/{policyId}.pdf`: the print form behind a link.
    pub fn print_form(&self, file: &str) -> Reply {
        let policy_id = file.strip_suffix(".pdf").unwrap_or(file);
        let Some(policy) = self.lock().policies.get(policy_id).cloned() else {
            return error(404, "no such policy");
        };
        let title = format!("BIMA credit-life policy {}", policy.number);
        let file_reply = |content_type: &str, bytes| Reply {
            status: 200,
            body: Body::File { content_type: content_type.to_owned(), bytes },
        };
        match self.scenario(&policy.scenario_key).print_form {
            PrintForm::Pdf => file_reply("application/pdf", polis_must_sim::pdf::one_page(&title)),
            PrintForm::Redirected => {
                Reply { status: 302, body: Body::Redirect(format!("/print-store/{file}")) }
            }
            PrintForm::Expired => error(403, "link expired"),
            PrintForm::Jpeg => file_reply("image/jpeg", polis_must_sim::pdf::jpeg_scan(&title)),
            PrintForm::Huge(mb) => file_reply("application/pdf", vec![b'%'; mb as usize * 1024 * 1024]),
        }
    }

    /// `GET /print-store/{policyId}.pdf`: where a redirected print link leads.
    pub fn print_form_stored(&self, file: &str) -> Reply {
        let policy_id = file.strip_suffix(".pdf").unwrap_or(file);
        let Some(policy) = self.lock().policies.get(policy_id).cloned() else {
            return error(404, "no such policy");
        };
        let pdf = polis_must_sim::pdf::one_page(&format!("BIMA credit-life policy {}", policy.number));
        Reply { status: 200, body: Body::File { content_type: "application/pdf".into(), bytes: pdf } }
    }
}
