//! The watchdog, run on a schedule: ends the truck processes' timed waits, and tells
//! CloudWatch how many processes are stuck.
//!
//! It reads only the sparse open index (processes not ended, by the time they entered
//! their stage) and writes only to the truck queue. Three waits are timed: a process in
//! `awaiting-choice` longer than the reminder time gets a [`TruckEvent::ChoiceOverdue`]
//! (the bank is reminded), one in `awaiting-recognition` longer than the recognition wait a
//! [`TruckEvent::RecognitionOverdue`] (our card goes without MUST's pre-filled contract),
//! one in `awaiting-retry` longer than the retry delay a [`TruckEvent::RetryDue`] (a new
//! MUST process starts).
//! Each event is named after its wait (`choice-overdue-{since}`, ...). The process applies
//! it once (a repeat of the same wait is a duplicate; a process no longer waiting ignores
//! it), so repeated runs and redeliveries act once per wait.
//!
//! The message goes in the process id's FIFO group (the watchdog does not read the
//! process to learn its scoringId): it may run beside the process's own group, which the
//! engine's versioned writes make safe, and the event commutes with everything else
//! (applied to whatever version it meets, it only adds a notice while the wait lasts).

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::truck::process::{TruckEvent, TruckStage};
use crate::domain::workflow;
use crate::keys::{self, ProcessKey};
use crate::ports::{InfraError, OpenProcesses, TruckMessage, TruckQueue};
use crate::telemetry;

/// Stages where a person, not polis or a partner, owes the next step (the customer pays,
/// the bank chooses, an operator answers a review, which has its own alarm): waiting
/// there is not being stuck.
const WAITING_ON_PEOPLE: [&str; 4] =
    ["awaiting-payment", "awaiting-choice", "awaiting-correction", "needs-review"];

/// The most processes of each kind one run looks at (the open index, longest waiting first).
pub const LIMIT: u32 = 10_000;

pub struct Watchdog<S, Q> {
    pub store: S,
    pub trucks: Q,
    /// How long a truck process waits for the bank's choice before the bank is reminded.
    pub choice_reminder: Duration,
    /// How long a truck process waits for MUST's recognition before sending its card anyway.
    pub recognition_wait: Duration,
    /// How long a truck process stopped by MUST as temporarily unavailable waits before a new one.
    pub retry_delay: Duration,
    /// How long a process of any kind may stay in one stage before it counts as stuck.
    pub stuck_after: Duration,
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchdogReport {
    /// Truck processes whose overdue choice was queued (`TRUCK#...`).
    pub overdue_choices: Vec<String>,
    /// Truck processes whose overdue recognition was queued.
    pub overdue_recognitions: Vec<String>,
    /// Truck processes whose retry after a temporary error was queued.
    pub due_retries: Vec<String>,
    /// Processes not ended and in their stage longer than `stuck_after`, by kind.
    pub stuck: Vec<(String, usize)>,
}

/// A wait of a truck process that the watchdog ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimedWait {
    Choice,
    Recognition,
    Retry,
}

impl TimedWait {
    fn stage(self) -> TruckStage {
        match self {
            TimedWait::Choice => TruckStage::AwaitingChoice,
            TimedWait::Recognition => TruckStage::AwaitingRecognition,
            TimedWait::Retry => TruckStage::AwaitingRetry,
        }
    }

    /// The event ending the wait that began at `since_ms`, named after it: one per wait.
    fn overdue(self, since_ms: u64) -> TruckEvent {
        match self {
            TimedWait::Choice => {
                TruckEvent::ChoiceOverdue { id: format!("choice-overdue-{since_ms}"), since_ms }
            }
            TimedWait::Recognition => {
                TruckEvent::RecognitionOverdue { id: format!("recognition-overdue-{since_ms}"), since_ms }
            }
            TimedWait::Retry => TruckEvent::RetryDue { id: format!("retry-due-{since_ms}"), since_ms },
        }
    }
}

/// A duration in minutes as the template gives it (`60`, `0.1` for tests).
pub fn minutes(name: &str, text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|m| m.is_finite() && *m >= 0.0)
        .map(|m| Duration::from_secs_f64(m * 60.0))
        .ok_or_else(|| format!("{name} must be a number of minutes, not {text:?}"))
}

impl<S, Q> Watchdog<S, Q>
where
    S: OpenProcesses + Sync,
    Q: TruckQueue + Sync,
{
    /// One scheduled run at `now_ms`.
    pub async fn run(&self, now_ms: u64) -> Result<WatchdogReport, InfraError> {
        let mut report = WatchdogReport::default();
        // First (a failed send below must not cost the data point): one line per kind (the
        // dashboard's), and one with their total (the alarm's).
        let stuck_before = now_ms.saturating_sub(self.stuck_after.as_millis() as u64);
        let mut total = 0;
        for kind in keys::PROCESS_KINDS {
            let open = self.store.open_before(kind, stuck_before, LIMIT).await?;
            let stuck = open.iter().filter(|p| !WAITING_ON_PEOPLE.contains(&p.stage.as_str())).count();
            telemetry::gauge("StuckProcesses", ("Process", kind), stuck as f64);
            report.stuck.push((kind.to_owned(), stuck));
            total += stuck;
        }
        telemetry::record(&[], &[("StuckProcesses", telemetry::Unit::Count, total as f64)]);
        report.overdue_recognitions =
            self.end_overdue_waits(TimedWait::Recognition, self.recognition_wait, now_ms).await?;
        report.overdue_choices =
            self.end_overdue_waits(TimedWait::Choice, self.choice_reminder, now_ms).await?;
        report.due_retries = self.end_overdue_waits(TimedWait::Retry, self.retry_delay, now_ms).await?;
        Ok(report)
    }

    /// Queues the overdue event of every truck process in `wait` longer than `longest`;
    /// returns their keys.
    async fn end_overdue_waits(
        &self,
        wait: TimedWait,
        longest: Duration,
        now_ms: u64,
    ) -> Result<Vec<String>, InfraError> {
        let before = now_ms.saturating_sub(longest.as_millis() as u64);
        let stage = workflow::stage_name(&wait.stage(), false);
        let mut queued = Vec::new();
        for open in self.store.open_before("truck", before, LIMIT).await? {
            let ProcessKey::Truck(process_id) = &open.process else { continue };
            if open.stage != stage || open.since_ms == 0 {
                continue;
            }
            let event = wait.overdue(open.since_ms);
            let id = event.external_id().unwrap_or_default();
            let dedup = hex::encode(Sha256::digest(format!("{process_id}:{id}").as_bytes()));
            let message = TruckMessage::BankEvent { process_id: process_id.clone(), event, replays: 0 };
            self.trucks.enqueue(&message, process_id.as_str(), &dedup).await?;
            tracing::info!(process_id = %process_id, since_ms = open.since_ms, wait = ?wait, "wait overdue; queued");
            queued.push(open.process.to_string());
        }
        Ok(queued)
    }
}

#[cfg(test)]
#[path = "watchdog_tests.rs"]
mod tests;
