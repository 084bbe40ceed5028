//! Replay, wired to AWS: what is kept for an operator (re-driven or resolved by
//! `polis::services::replay::Replay`) and the three dead-letter queues (moved
//! back to their source queues). The Lambda (`replay`) and the command
//! (`polis-ops`) are two thin doors to [`Replayer::run`]; the command also reads a
//! process's timeline and the processes stuck in a stage.

use polis::adapters::config::{self, var};
use polis::adapters::dynamodb::Table;
use polis::adapters::sqs::{DeadLetters, Queue};
use polis::domain::workflow::Resolution;
use polis::keys::ProcessKey;
use polis::ports::{now_ms, InfraError, OpenProcess, QuarantineStore, Quarantined};
use polis::services::replay::{Replay, ReplayReport};
use polis::services::timeline::{self, Timeline};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// An operator's answer to a review: `process` is `TRUCK#{requestId}` or `LOAN#{loanNumber}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Resolve {
    pub process: String,
    #[serde(flatten)]
    pub resolution: Resolution,
}

/// What to do; by default the quarantine and the dead letters are replayed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplayRequest {
    pub quarantine: bool,
    pub dead_letters: bool,
    pub resolve: Option<Resolve>,
}

impl Default for ReplayRequest {
    fn default() -> Self {
        ReplayRequest { quarantine: true, dead_letters: true, resolve: None }
    }
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOutcome {
    /// The process whose review was answered.
    pub resolved: Option<String>,
    pub quarantine: Option<ReplayReport>,
    /// Messages moved back, by dead-letter queue URL.
    pub dead_letters: Vec<(String, usize)>,
}

pub struct Replayer {
    replay: Replay<Table, Queue, Queue, Queue>,
    dead_letters: Vec<DeadLetters>,
}

/// The most messages one run moves from each dead-letter queue.
const REDRIVE_LIMIT: usize = 10_000;

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
            DeadLetters::new(sqs.clone(), var("TRUCK_DLQ_URL")?, process.clone()),
            DeadLetters::new(sqs.clone(), var("LOAN_DLQ_URL")?, loan.clone()),
            DeadLetters::new(sqs.clone(), var("BANK_EVENTS_DLQ_URL")?, bank.clone()),
        ];
        let replay = Replay {
            store: Table::new(config::dynamodb(&sdk), var("TABLE_NAME")?).keeping_input_for(
                std::time::Duration::from_secs(config::number("KEPT_INPUT_DAYS", 90)? * 86_400),
            ),
            trucks: queue(process),
            loans: queue(loan),
            bank_events: queue(bank),
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

    pub async fn run(&self, request: ReplayRequest) -> Result<ReplayOutcome, ReplayError> {
        let mut outcome = ReplayOutcome::default();
        if let Some(resolve) = request.resolve {
            let process = ProcessKey::parse(&resolve.process).map_err(ReplayError::Request)?;
            self.replay.resolve(&process, resolve.resolution).await?.map_err(ReplayError::Request)?;
            tracing::info!(process = %resolve.process, "review answered");
            outcome.resolved = Some(resolve.process);
        }
        if request.quarantine {
            outcome.quarantine = Some(self.replay.quarantined().await?);
        }
        if request.dead_letters {
            for dlq in &self.dead_letters {
                let moved = dlq.redrive(REDRIVE_LIMIT).await?;
                tracing::info!(dlq = %dlq.dlq_url, moved, "dead letters moved back");
                outcome.dead_letters.push((dlq.dlq_url.clone(), moved));
            }
        }
        Ok(outcome)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Infra(#[from] InfraError),
}
