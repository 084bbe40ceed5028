//! Replay, wired to AWS: an operator's actions on what is kept (re-driven or resolved by
//! `polis::services::replay::Replay`) and on the three dead-letter queues. The Lambda
//! (`replay`) and the command (`polis-ops`) are two thin doors to [`Replayer::run`]; the
//! command also reads a process's timeline and the processes stuck in a stage.
//!
//! A request does only what it names: one action (one kept item, one dead letter, one
//! review, or the bulk re-drive of what moves no money and passed every intake check), and
//! every action that changes something names who acts.

use std::sync::Mutex;
use std::time::Duration;

use polis::adapters::config::{self, var};
use polis::adapters::dynamodb::Table;
use polis::adapters::sqs::{DeadLetters, Queue};
use polis::domain::workflow::Resolution;
use polis::keys::ProcessKey;
use polis::ports::{now_ms, InfraError, OpenProcess, QuarantineStore, Quarantined};
use polis::services::replay::{Acted, Approval, Plan, Replay, ReplayReport, SourceQueue};
use polis::services::timeline::{self, Timeline};
use serde::{Deserialize, Serialize};

/// An operator's answer to a review: `process` is `TRUCK#{requestId}` or `LOAN#{loanNumber}`,
/// `effect` and `attempt` the held call and attempt the answer is about (as `polis-ops list`
/// shows them).
#[derive(Debug, Clone, Deserialize)]
pub struct Resolve {
    pub process: String,
    pub effect: String,
    pub attempt: u32,
    #[serde(flatten)]
    pub resolution: Resolution,
}

/// Re-drive one kept item.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redrive {
    /// The kept item's id (`polis-ops list`).
    pub item: String,
    /// Show what it would do; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Re-drive a hook an intake check kept, for this reason (recorded).
    #[serde(default)]
    pub r#override: Option<String>,
    /// The confirmation code its dry run gave, when it leads to money.
    #[serde(default)]
    pub confirm: Option<String>,
}

/// Move one dead letter back to its queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedriveMessage {
    pub queue: SourceQueue,
    pub message_id: String,
    #[serde(default)]
    pub dry_run: bool,
    /// Move a hook an intake check would keep, for this reason (recorded).
    #[serde(default)]
    pub r#override: Option<String>,
    #[serde(default)]
    pub confirm: Option<String>,
}

/// What to do. Everything is off unless asked for; a request names one action, and any
/// other request (none, or several) is refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ReplayRequest {
    /// Who acts: written into the history of every process acted on.
    pub by: Option<String>,
    /// Re-drive every kept item that moves no money and passed every intake check.
    pub quarantine: bool,
    /// Move back every dead letter that moves no money and passed every intake check.
    pub dead_letters: bool,
    /// Show what the action would do; change nothing (whatever the action's own `dryRun`).
    pub dry_run: bool,
    pub redrive: Option<Redrive>,
    pub redrive_message: Option<RedriveMessage>,
    pub resolve: Option<Resolve>,
}

impl ReplayRequest {
    /// Whether the request asks for a dry run (its own, or its item's).
    fn dry_run(&self) -> bool {
        self.dry_run
            || self.redrive.as_ref().is_some_and(|r| r.dry_run)
            || self.redrive_message.as_ref().is_some_and(|r| r.dry_run)
    }

    /// How many actions the request names (the bulk re-drive of kept items and of dead
    /// letters is one).
    fn actions(&self) -> usize {
        let bulk = self.quarantine || self.dead_letters;
        [bulk, self.redrive.is_some(), self.redrive_message.is_some(), self.resolve.is_some()]
            .into_iter()
            .filter(|named| *named)
            .count()
    }
}

/// What a dead-letter queue's bulk re-drive did.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterReport {
    pub queue: String,
    /// Moved back (a dry run: would be).
    pub moved: Vec<String>,
    /// Left where they are, each needing its own command: message id and why.
    pub left: Vec<(String, String)>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOutcome {
    /// The process whose review was answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
    /// The one item (kept, or dead-lettered) acted on, with its plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redriven: Option<Acted>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<ReplayReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<DeadLetterReport>,
}

pub struct Replayer {
    replay: Replay<Table, Queue, Queue, Queue>,
    dead_letters: Vec<(SourceQueue, DeadLetters)>,
}

/// The most messages one run reads from each dead-letter queue.
const DEAD_LETTER_LIMIT: usize = 10_000;

/// The most stuck processes of each kind one listing shows.
const STUCK_LIMIT: u32 = 1_000;

impl Replayer {
    /// From the environment (the same in the Lambda and in the command).
    pub async fn from_env() -> Result<Replayer, Box<dyn std::error::Error + Send + Sync>> {
        let sdk = config::aws().await;
        let sqs = config::sqs(&sdk);
        let queue = |url: String| Queue::new(sqs.clone(), url);
        let (process, loan, bank) =
            (var("TRUCK_QUEUE_URL")?, var("LOAN_QUEUE_URL")?, var("BANK_EVENTS_QUEUE_URL")?);
        let dead_letters = vec![
            (SourceQueue::Truck, DeadLetters::new(sqs.clone(), var("TRUCK_DLQ_URL")?, process.clone())),
            (SourceQueue::Loan, DeadLetters::new(sqs.clone(), var("LOAN_DLQ_URL")?, loan.clone())),
            (
                SourceQueue::BankEvents,
                DeadLetters::new(sqs.clone(), var("BANK_EVENTS_DLQ_URL")?, bank.clone()),
            ),
        ];
        let replay = Replay {
            store: config::table(&sdk)?,
            trucks: queue(process),
            loans: queue(loan),
            bank_events: queue(bank),
            payment_link_hosts: config::list("PAYMENT_LINK_HOSTS"),
            money_max_age: Duration::from_secs(config::number("REDRIVE_MONEY_MAX_AGE_HOURS", 72)? * 3600),
        };
        Ok(Replayer { replay, dead_letters })
    }

    pub async fn list(&self) -> Result<Vec<Quarantined>, InfraError> {
        self.replay.store.list_quarantined().await
    }

    /// The timeline of the process `id` names (a request id, scoringId, loan number or key).
    pub async fn timeline(&self, id: &str) -> Result<Option<Timeline>, InfraError> {
        let store = &self.replay.store;
        let Some(key) = timeline::find(store, id).await? else { return Ok(None) };
        timeline::timeline(store, &key, &store.list_quarantined().await?).await
    }

    /// Processes in their stage for longer than `older_than`, longest first.
    pub async fn stuck(&self, older_than: Duration) -> Result<Vec<OpenProcess>, InfraError> {
        timeline::stuck(&self.replay.store, older_than, now_ms(), STUCK_LIMIT).await
    }

    /// Every dead letter with its plan; nothing moves.
    pub async fn list_dead_letters(&self) -> Result<Vec<Plan>, InfraError> {
        let mut plans = Vec::new();
        for (queue, dlq) in &self.dead_letters {
            for (letter, _) in dlq.sort(DEAD_LETTER_LIMIT, |_| async { Ok(false) }).await? {
                plans.push(
                    self.replay
                        .plan_message(*queue, &letter.message_id, &letter.body, letter.sent_ms)
                        .await?,
                );
            }
        }
        Ok(plans)
    }

    pub async fn run(&self, request: ReplayRequest) -> Result<ReplayOutcome, ReplayError> {
        if request.actions() != 1 {
            return Err(ReplayError::Request(
                "name one action: redrive (one kept item), redriveMessage (one dead letter), resolve (one \
                 review), or quarantine / deadLetters (every item that moves no money)"
                    .into(),
            ));
        }
        let dry_run = request.dry_run();
        if dry_run && request.resolve.is_some() {
            return Err(ReplayError::Request(
                "an answer has no dry run: `polis-ops list` shows the hold".into(),
            ));
        }
        let by = match (request.by.clone().filter(|b| !b.trim().is_empty()), dry_run) {
            (Some(by), _) => by,
            (None, true) => "dry-run".to_owned(),
            (None, false) => {
                return Err(ReplayError::Request("say who acts (\"by\"): it is recorded".into()))
            }
        };
        let mut outcome = ReplayOutcome::default();
        if let Some(resolve) = request.resolve {
            let process = ProcessKey::parse(&resolve.process).map_err(ReplayError::Request)?;
            self.replay
                .resolve(&process, &resolve.effect, resolve.attempt, resolve.resolution, &by)
                .await?
                .map_err(ReplayError::Request)?;
            tracing::info!(process = %resolve.process, effect = %resolve.effect, attempt = resolve.attempt, %by, "review answered");
            outcome.resolved = Some(resolve.process);
        }
        if let Some(one) = request.redrive {
            let approval =
                Approval { by: by.clone(), override_reason: one.r#override, confirm: one.confirm, dry_run };
            outcome.redriven =
                Some(self.replay.redrive(&one.item, &approval).await?.map_err(ReplayError::Request)?);
        }
        if let Some(one) = request.redrive_message {
            let approval =
                Approval { by: by.clone(), override_reason: one.r#override, confirm: one.confirm, dry_run };
            outcome.redriven = Some(self.redrive_message(one.queue, &one.message_id, &approval).await?);
        }
        if request.quarantine {
            outcome.quarantine = Some(self.replay.routine_where(&by, dry_run, |_| true).await?);
        }
        if request.dead_letters {
            let approval = Approval { by, dry_run, ..Approval::default() };
            for (queue, dlq) in &self.dead_letters {
                outcome.dead_letters.push(self.routine_dead_letters(*queue, dlq, &approval).await?);
            }
        }
        Ok(outcome)
    }

    /// Moves back the dead letters of `queue` that a bulk re-drive may take, one per process
    /// (each plan is made on the process as it stands), and notes each in its process's history.
    async fn routine_dead_letters(
        &self,
        queue: SourceQueue,
        dlq: &DeadLetters,
        approval: &Approval,
    ) -> Result<DeadLetterReport, InfraError> {
        let mut report = DeadLetterReport { queue: queue.name().to_owned(), ..DeadLetterReport::default() };
        // Each message's plan, and why it stays (when it does).
        let sorted: Mutex<Vec<(Plan, Option<String>)>> = Mutex::new(Vec::new());
        let moved = dlq
            .sort(DEAD_LETTER_LIMIT, |letter| {
                let (replay, sorted) = (&self.replay, &sorted);
                let letter = letter.clone();
                async move {
                    let plan =
                        replay.plan_message(queue, &letter.message_id, &letter.body, letter.sent_ms).await?;
                    let mut sorted = sorted.lock().unwrap_or_else(|e| e.into_inner());
                    let process_goes = plan.process.is_some()
                        && sorted.iter().any(|(other, why)| why.is_none() && other.process == plan.process);
                    let why = if !plan.is_routine() {
                        Some(plan.blocked(approval).unwrap_or_default())
                    } else if process_goes {
                        Some(
                            "another message of its process goes in this run: run again once it is applied"
                                .into(),
                        )
                    } else {
                        None
                    };
                    let go = why.is_none() && !approval.dry_run;
                    sorted.push((plan, why));
                    Ok(go)
                }
            })
            .await?;
        let sorted = sorted.into_inner().unwrap_or_else(|e| e.into_inner());
        for ((letter, went), (plan, why)) in moved.into_iter().zip(sorted) {
            match why {
                Some(why) => report.left.push((letter.message_id, why)),
                None => {
                    if went {
                        // Noted once it moved: a move that failed returned above, unnoted.
                        self.replay.note_message(&plan, approval).await?;
                    }
                    report.moved.push(letter.message_id);
                }
            }
        }
        tracing::info!(
            queue = queue.name(),
            moved = report.moved.len(),
            left = report.left.len(),
            "dead letters sorted"
        );
        Ok(report)
    }

    /// Moves the dead letter `message_id` of `queue` back, as `approval` allows.
    async fn redrive_message(
        &self,
        queue: SourceQueue,
        message_id: &str,
        approval: &Approval,
    ) -> Result<Acted, ReplayError> {
        let dlq = self
            .dead_letters
            .iter()
            .find_map(|(q, dlq)| (*q == queue).then_some(dlq))
            .ok_or_else(|| ReplayError::Request(format!("no dead-letter queue for {}", queue.name())))?;
        // The plan of the message, once found, and why it may not go (if it may not).
        let found: Mutex<Option<(Plan, Option<String>)>> = Mutex::new(None);
        dlq.sort(DEAD_LETTER_LIMIT, |letter| {
            let (replay, found) = (&self.replay, &found);
            let letter = letter.clone();
            async move {
                let seen = found.lock().unwrap_or_else(|e| e.into_inner()).is_some();
                if letter.message_id != message_id || seen {
                    return Ok(false);
                }
                let plan =
                    replay.plan_message(queue, &letter.message_id, &letter.body, letter.sent_ms).await?;
                let why = plan.blocked(approval);
                let go = why.is_none() && !approval.dry_run;
                *found.lock().unwrap_or_else(|e| e.into_inner()) = Some((plan, why));
                Ok(go)
            }
        })
        .await?;
        let found = found.into_inner().unwrap_or_else(|e| e.into_inner());
        let (plan, blocked) = found.ok_or_else(|| {
            ReplayError::Request(format!(
                "no dead letter {message_id} in the {} dead-letter queue (moved already? in a FIFO queue only \
                 each process's oldest shows: move that first)",
                queue.name()
            ))
        })?;
        match (approval.dry_run, blocked) {
            (true, _) => Ok(Acted { plan, done: false }),
            (false, Some(why)) => Err(ReplayError::Request(why)),
            (false, None) => {
                // Noted once it moved: a move that failed returned above, unnoted.
                self.replay.note_message(&plan, approval).await?;
                tracing::info!(queue = queue.name(), message_id, by = %approval.by, "dead letter moved back");
                Ok(Acted { plan, done: true })
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_does_only_the_one_thing_it_names_and_an_empty_one_nothing() {
        let read = |json: &str| serde_json::from_str::<ReplayRequest>(json);
        assert_eq!(read("{}").unwrap().actions(), 0, "every flag is off unless asked for");
        let answer = read(
            r#"{"by":"anna","resolve":{"process":"TRUCK#REQ-1","effect":"init","attempt":2,"resolution":"did-not-happen"}}"#,
        )
        .unwrap();
        assert!(answer.actions() == 1 && !answer.quarantine && !answer.dead_letters, "{answer:?}");
        assert!(
            read(r#"{"redrive":{"item":"x","dryRun":true}}"#).unwrap().dry_run(),
            "a dry run needs no name"
        );
        let outer = read(r#"{"dryRun":true,"redrive":{"item":"x"}}"#).unwrap();
        assert!(outer.dry_run(), "the request's dry run covers its action");
        let two =
            read(r#"{"redrive":{"item":"x"},"redriveMessage":{"queue":"truck","messageId":"m"}}"#).unwrap();
        assert_eq!(two.actions(), 2, "refused: one action per request");
        assert_eq!(
            read(r#"{"quarantine":true,"deadLetters":true}"#).unwrap().actions(),
            1,
            "one bulk re-drive"
        );
        assert!(read(r#"{"quarantine":true,"everything":true}"#).is_err());
        let unnamed = r#"{"resolve":{"process":"TRUCK#REQ-1","attempt":1,"resolution":"did-not-happen"}}"#;
        assert!(read(unnamed).is_err(), "an answer names the call it answers");
    }
}
