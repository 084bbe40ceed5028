//! The operator: runs `polis-ops` against the stack (replaying quarantined and dead-lettered
//! messages, resolving reviews) and plays the one who answers reviews from what the partner's
//! back office shows.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::inspect::{done_calls, held_for, is_settled, must_call_of, stage_of, ENDED};
use crate::stack::workspace_root;
use crate::{BoxError, Harness};

impl Harness {
    /// Runs the operator's `polis-ops` command (`list`, `quarantine`, `dead-letters`, `all`)
    /// against this stack, as an operator would with the stack's outputs; returns its stdout.
    pub async fn replay(&self, command: &str) -> Result<String, BoxError> {
        self.ops(&[command]).await
    }

    /// An operator's answer to the review of `attempt` at `effect` with `polis-ops resolve`;
    /// `Ok(false)` when the process was no longer held (a hook from the partner proved the call
    /// meanwhile).
    pub async fn resolve(
        &self,
        process: &str,
        effect: &str,
        attempt: u64,
        answer: &[&str],
    ) -> Result<bool, BoxError> {
        let attempt = attempt.to_string();
        let mut args = vec!["resolve", process, effect, &attempt];
        args.extend(answer);
        match self.ops(&args).await {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("is not held for review") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `polis-ops` with arguments, e.g. `["resolve", "TRUCK#REQ-1", "init", "1", "happened", "sc-1"]` or
    /// `["timeline", "REQ-1"]`, as the operator [`OPERATOR`].
    pub async fn ops(&self, args: &[&str]) -> Result<String, BoxError> {
        let command = args.join(" ");
        let physical = |id: &str| self.cloud.physical(id).ok_or_else(|| format!("{id} is not in the stack"));
        let out = tokio::process::Command::new(workspace_root().join("target/debug/polis-ops"))
            .args(args)
            .env("TABLE_NAME", &self.table)
            .env("TRUCK_QUEUE_URL", physical("TruckQueue")?)
            .env("LOAN_QUEUE_URL", physical("LoanQueue")?)
            .env("BANK_EVENTS_QUEUE_URL", &self.bank_events_url)
            .env("TRUCK_DLQ_URL", physical("TruckDeadLetterQueue")?)
            .env("LOAN_DLQ_URL", physical("LoanDeadLetterQueue")?)
            .env("BANK_EVENTS_DLQ_URL", physical("BankEventsDeadLetterQueue")?)
            .env("PAYMENT_LINK_HOSTS", self.cloud.parameter("PaymentLinkHosts").unwrap_or_default())
            .env("POLIS_OPERATOR", OPERATOR)
            .output()
            .await?;
        if !out.status.success() {
            return Err(format!("polis-ops {command}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Plays the operator who can look into MUST's back office: while the truck process for
    /// `vin` is held for review, answers with what MUST's records say (the held call
    /// happened, with its scoringId for `init`, or it did not), then replays what was kept
    /// meanwhile (hooks for a scoringId we did not know yet). Returns each answer given.
    pub async fn answer_truck_reviews(&self, pid: &str, vin: &str) -> Result<Vec<String>, BoxError> {
        let start = Instant::now();
        let mut answers = Vec::new();
        let mut answered = Value::Null;
        loop {
            let Some(record) = self.process(pid).await? else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let stage = stage_of(&record);
            if ENDED.contains(&stage.as_str()) && is_settled(&record) {
                return Ok(answers);
            }
            // Hooks of its scoringId kept while nobody knew it (another operator's replay may
            // have re-driven them before the answer): replayed again.
            if let Some(sid) = record["scoring_id"].as_str().filter(|_| stage != "needs-review") {
                let needle = format!("\"scoringId\":\"{sid}\"");
                if self.quarantined().await?.iter().any(|k| k.to_string().contains(&needle)) {
                    self.replay("quarantine").await?;
                }
            }
            if let Some((effect, attempt)) = review_due(&record, &mut answered) {
                let call = must_call_of(&effect, &record);
                let ours = done_calls(&record, |e| must_call_of(e, &record) == call);
                let theirs = self.must.sim.changes(vin).get(call).copied().unwrap_or(0);
                let key = format!("TRUCK#{pid}");
                let (answered_it, answer) = if theirs > ours {
                    let reference =
                        (call == "init").then(|| self.must.sim.scorings(vin).last().cloned()).flatten();
                    let mut args = vec!["happened"];
                    args.extend(reference.as_deref());
                    (self.resolve(&key, &effect, attempt, &args).await?, format!("{effect}: happened"))
                } else {
                    (
                        self.resolve(&key, &effect, attempt, &["did-not-happen"]).await?,
                        format!("{effect}: did not happen"),
                    )
                };
                if answered_it {
                    // What waited for the answer (a first hook for the scoringId) goes again.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    self.replay("quarantine").await?;
                    answers.push(answer);
                }
            }
            if start.elapsed() > Duration::from_secs(180) {
                return Err(format!("{pid} did not end: {stage}, answers {answers:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// As [`Harness::answer_truck_reviews`], for a loan: a held sale is answered with the
    /// policy BIMA's back office shows for the credit (or "did not happen" when it has none).
    pub async fn answer_loan_reviews(&self, number: &str) -> Result<Vec<String>, BoxError> {
        let start = Instant::now();
        let mut answers = Vec::new();
        let mut answered = Value::Null;
        loop {
            let Some(record) = self.loan(number).await? else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let stage = stage_of(&record);
            if ENDED.contains(&stage.as_str()) && is_settled(&record) {
                return Ok(answers);
            }
            if let Some((effect, attempt)) = review_due(&record, &mut answered) {
                let key = format!("LOAN#{number}");
                let policies = self.bima.sim.policies_of(number);
                let (answered_it, answer) = match (effect.as_str(), policies.first()) {
                    ("sale", Some((id, policy_number))) => (
                        self.resolve(&key, &effect, attempt, &["happened", id, policy_number]).await?,
                        format!("sale: happened ({id})"),
                    ),
                    _ => (
                        self.resolve(&key, &effect, attempt, &["did-not-happen"]).await?,
                        format!("{effect}: did not happen"),
                    ),
                };
                if answered_it {
                    answers.push(answer);
                }
            }
            if start.elapsed() > Duration::from_secs(180) {
                return Err(format!("{number} did not end: {stage}, answers {answers:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Who the end-to-end operator is, in the processes' histories.
pub const OPERATOR: &str = "e2e-operator";

/// The held attempt of the review `record` holds (the journal's last when the hold names
/// none), as the operator reads it from `polis-ops list`.
pub fn held_attempt(record: &Value) -> u64 {
    let review = &record["outbox"]["review"];
    let effect = review["effect"].as_str().unwrap_or_default();
    match review["attempt"].as_u64() {
        Some(attempt) if attempt > 0 => attempt,
        _ => record["outbox"]["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["effect"] == effect)
            .filter_map(|c| c["attempt"].as_u64())
            .max()
            .unwrap_or(0),
    }
}

/// The effect and attempt of the review `record` holds, when an operator should answer it
/// now: held past [`REVIEW_PATIENCE`], settled, and not the one answered last (`answered`, updated).
fn review_due(record: &Value, answered: &mut Value) -> Option<(String, u64)> {
    let review = &record["outbox"]["review"];
    let due = stage_of(record) == "needs-review"
        && is_settled(record)
        && held_for(record) > REVIEW_PATIENCE
        && review != answered;
    if !due {
        return None;
    }
    *answered = review.clone();
    Some((review["effect"].as_str().unwrap_or_default().to_owned(), held_attempt(record)))
}

/// How long the operator leaves a review open before answering it: a hook from the partner
/// may still prove the call happened.
const REVIEW_PATIENCE: Duration = Duration::from_secs(15);
