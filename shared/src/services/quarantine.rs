//! Input we cannot process is kept, never dropped: stored raw with its reason
//! (and counted as the `Quarantined` metric, which has an alarm), then replayed
//! after a fix by [`Replay`], from the `polis-replay` command or the replay Lambda.
//!
//! Replay re-drives each kept item the way it first came in, after checking it
//! again with the same code the entry point uses; an item that still fails stays
//! kept with its new reason. A replayed hook or event that fails again later is
//! kept again under a new id (its attempt's time is part of the id), so releasing
//! the old record never races with keeping the new one.

use serde::Serialize;
use serde_json::Value;
use sha2::Digest;

use super::hook_intake::{check_body, store_and_enqueue};
use crate::domain::bank::BankEvent;
use crate::domain::ids::{ProcessId, ScoringId};
use crate::domain::must::hook::HookKind;
use crate::domain::must::process::ProcessEvent;
use crate::ports::{
    now_ms, BankOutbox, HookStore, InfraError, LoanMessage, LoanQueue, ProcessMessage, ProcessQueue,
    QuarantineStore, Quarantined, ReceivedHook,
};

/// Stores `item`, logs it (ids and reason only) and counts it.
pub async fn keep<S: QuarantineStore + Sync>(store: &S, item: &Quarantined) -> Result<(), InfraError> {
    store.quarantine(item).await?;
    tracing::warn!(quarantine_id = %item.id, source = %item.source, reason = %item.reason, "quarantined");
    crate::telemetry::count("Quarantined", ("Source", &item.source));
    Ok(())
}

/// What a replay did with each kept item.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    pub replayed: Vec<String>,
    /// Still not processable: id and why.
    pub still_failing: Vec<(String, String)>,
}

pub struct Replay<S, P, L, B> {
    pub store: S,
    pub trucks: P,
    pub loans: L,
    /// The bank-events queue, where a corrected bank event goes again.
    pub bank_events: B,
}

impl<S, P, L, B> Replay<S, P, L, B>
where
    S: QuarantineStore + HookStore + Sync,
    P: ProcessQueue + Sync,
    L: LoanQueue + Sync,
    B: BankOutbox + Sync,
{
    /// Re-drives every kept item that now passes its checks; releases those.
    pub async fn quarantined(&self) -> Result<ReplayReport, InfraError> {
        let mut report = ReplayReport::default();
        for item in self.store.list_quarantined().await? {
            match self.redrive(&item).await? {
                Ok(()) => {
                    self.store.release(&item.id).await?;
                    tracing::info!(quarantine_id = %item.id, "replayed");
                    report.replayed.push(item.id);
                }
                Err(why) => report.still_failing.push((item.id, why)),
            }
        }
        Ok(report)
    }

    /// `Ok(Err(why))`: the item still fails its checks and stays kept.
    async fn redrive(&self, item: &Quarantined) -> Result<Result<(), String>, InfraError> {
        let text = |field: &str| item.origin.get(field).and_then(Value::as_str).unwrap_or_default();
        match item.source.as_str() {
            "hook" => {
                let kind: HookKind = match serde_json::from_value(item.origin["kind"].clone()) {
                    Ok(kind) => kind,
                    Err(e) => return Ok(Err(format!("origin names no hook kind: {e}"))),
                };
                let scoring_id = match ScoringId::parse(text("scoringId")) {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                if let Some(problem) = check_body(kind, item.body.as_bytes()) {
                    return Ok(Err(problem));
                }
                let hook = ReceivedHook {
                    scoring_id,
                    kind,
                    hook_id: text("hookId").to_owned(),
                    body: item.body.clone(),
                    received_at_ms: now_ms(),
                };
                // Not the hook's own id: its first delivery used that, and the queue would
                // drop this one as a repeat if it came within five minutes of it.
                let dedup = format!("replay-{}-{}", hook.hook_id, now_ms());
                store_and_enqueue(&self.store, &self.trucks, hook, &dedup).await?;
                Ok(Ok(()))
            }
            "bank-event" => match BankEvent::accept(&item.body) {
                Ok(_) => {
                    let event: Value = serde_json::from_str(&item.body).unwrap_or_default();
                    self.bank_events.publish(&event).await?;
                    Ok(Ok(()))
                }
                Err(problems) => Ok(Err(problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.problem))
                    .collect::<Vec<_>>()
                    .join("; "))),
            },
            "process-event" => {
                let key = text("process");
                let digest = hex::encode(sha2::Sha256::digest(item.id.as_bytes()));
                let dedup = format!("replay-{digest}-{}", now_ms());
                if let Some(number) = key.strip_prefix("LOAN#") {
                    // A loan's events come from its own effects: driving it again re-derives them.
                    let message = LoanMessage::Drive { loan_number: number.to_owned() };
                    self.loans.enqueue(&message, number, &dedup).await?;
                    return Ok(Ok(()));
                }
                let process_id = match ProcessId::parse(key.trim_start_matches("TRUCK#")) {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                let event: ProcessEvent = match serde_json::from_str(&item.body) {
                    Ok(event) => event,
                    Err(e) => return Ok(Err(format!("not a process event: {e}"))),
                };
                let group = process_id.to_string();
                self.trucks.enqueue(&ProcessMessage::BankEvent { process_id, event }, &group, &dedup).await?;
                Ok(Ok(()))
            }
            other => Ok(Err(format!("unknown source {other:?}"))),
        }
    }
}
