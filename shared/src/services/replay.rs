//! Replay of what [`super::keep`] kept, from the `polis-replay` command or the
//! replay Lambda: inputs re-driven the way they first came in, reviews answered,
//! pending archives tried again.
//!
//! Replay re-drives each kept input the way it first came in, after checking it
//! again with the code the entry point uses; one that still fails stays kept with
//! its new reason. A replayed input that fails again later is kept under its next
//! replay number, so releasing the old record never races with keeping the new one.

use serde::Serialize;

use super::truck::hook_intake::{check_body, store_and_enqueue};
use super::truck::runner::message_group;
use crate::domain::bank::BankEvent;
use crate::domain::ids::{ProcessId, ScoringId};
use crate::domain::loan::process::LoanEvent;
use crate::domain::loan::process::LoanProcess;
use crate::domain::truck::process::TruckEvent;
use crate::domain::truck::process::TruckProcess;
use crate::domain::workflow::Resolution;
use crate::keys::ProcessKey;
use crate::ports::{
    now_ms, BankOutbox, HookStore, InfraError, KeptOrigin, LoanMessage, LoanQueue, ProcessStore,
    QuarantineStore, Quarantined, ReceivedHook, TruckMessage, TruckQueue,
};

/// What a replay did with each kept item.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    pub replayed: Vec<String>,
    /// Still not processable (or waiting for a person): id and why.
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
    S: QuarantineStore + HookStore + ProcessStore + Sync,
    P: TruckQueue + Sync,
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
                    tracing::info!(kept_id = %item.id, "replayed");
                    report.replayed.push(item.id);
                }
                Err(why) => report.still_failing.push((item.id, why)),
            }
        }
        Ok(report)
    }

    /// An operator's answer to a review: the held call happened (with the partner's
    /// reference where one is needed) or it did not (it is sent again). `Ok(Err(why))`
    /// when the process is not held (nothing is sent).
    pub async fn resolve(
        &self,
        process: &ProcessKey,
        resolution: Resolution,
    ) -> Result<Result<(), String>, InfraError> {
        let key = process;
        let held = match process {
            ProcessKey::Truck(_) => {
                self.store.load::<TruckProcess>(key).await?.map(|p| p.value.outbox.review().cloned())
            }
            ProcessKey::Loan(_) => {
                self.store.load::<LoanProcess>(key).await?.map(|p| p.value.outbox.review().cloned())
            }
        };
        let review = match held {
            None => return Ok(Err(format!("{key} does not exist"))),
            Some(None) => return Ok(Err(format!("{key} is not held for review"))),
            Some(Some(review)) => review,
        };
        tracing::info!(process = %key, effect = %review.effect, "answering a review");
        let kept = self.store.list_quarantined().await?;
        // Listed before the answer goes out: a review the answer leads to is not released.
        let open: Vec<String> = kept
            .iter()
            .filter(|item| matches!(&item.origin, KeptOrigin::Review { process, .. } if process == key))
            .map(|item| item.id.clone())
            .collect();
        let id = format!("review-resolved-{}", now_ms());
        match process {
            ProcessKey::Truck(pid) => {
                // MUST's first hooks for a scoringId we did not know were kept meanwhile: with
                // `init` answered, they follow the answer in the scoringId's group, in order.
                let scoring = match &resolution {
                    Resolution::Happened { reference: Some(sid), .. } if review.effect == "init" => {
                        ScoringId::parse(sid).ok()
                    }
                    _ => None,
                };
                let event = TruckEvent::ReviewResolved { id, resolution };
                match scoring {
                    None => self.to_truck(pid, event, 0).await?,
                    Some(sid) => {
                        self.to_group(pid, event, sid.as_str(), 0).await?;
                        for item in kept.iter().filter(|i| matches!(&i.origin, KeptOrigin::Hook { scoring_id, .. } if *scoring_id == sid)) {
                            if let Ok(()) = self.redrive(item).await? {
                                self.store.release(&item.id).await?;
                            }
                        }
                    }
                }
            }
            ProcessKey::Loan(number) => {
                self.to_loan(number, LoanEvent::ReviewResolved { id, resolution }).await?;
            }
        }
        for id in open {
            self.store.release(&id).await?;
        }
        Ok(Ok(()))
    }

    /// Queues an event to a truck process in its message group.
    async fn to_truck(&self, pid: &ProcessId, event: TruckEvent, replays: u32) -> Result<(), InfraError> {
        let group = message_group(&self.store, pid).await?;
        self.to_group(pid, event, &group, replays).await
    }

    async fn to_group(
        &self,
        pid: &ProcessId,
        event: TruckEvent,
        group: &str,
        replays: u32,
    ) -> Result<(), InfraError> {
        let dedup = format!("replay-{}-{}", short(&format!("{pid}{event:?}")), now_ms());
        let message = TruckMessage::BankEvent { process_id: pid.clone(), event, replays };
        self.trucks.enqueue(&message, group, &dedup).await
    }

    async fn to_loan(&self, number: &str, event: LoanEvent) -> Result<(), InfraError> {
        let dedup = format!("replay-{}-{}", short(&format!("{number}{event:?}")), now_ms());
        let message = LoanMessage::Event { loan_number: number.to_owned(), event };
        self.loans.enqueue(&message, number, &dedup).await
    }

    /// `Ok(Err(why))`: the item still fails its checks, or waits for a person, and stays kept.
    async fn redrive(&self, item: &Quarantined) -> Result<Result<(), String>, InfraError> {
        match &item.origin {
            KeptOrigin::Hook { kind, scoring_id, hook_id, by_content, replays } => {
                if let Some(problem) = check_body(*kind, item.body.as_bytes()) {
                    return Ok(Err(problem));
                }
                let hook = ReceivedHook {
                    scoring_id: scoring_id.clone(),
                    kind: *kind,
                    hook_id: hook_id.clone(),
                    by_content: *by_content,
                    body: item.body.clone(),
                    received_at_ms: now_ms(),
                    replays: replays + 1,
                };
                // Not the hook's own deduplication id: the queue would drop this one as a
                // repeat if it came within five minutes of the first delivery.
                let dedup = format!("replay-{}-r{}", short(hook_id), replays + 1);
                store_and_enqueue(&self.store, &self.trucks, hook, &dedup).await?;
                Ok(Ok(()))
            }
            KeptOrigin::BankEvent { .. } => match BankEvent::accept(&item.body) {
                Ok(_) => {
                    let event: serde_json::Value = serde_json::from_str(&item.body).unwrap_or_default();
                    self.bank_events.publish(&event).await?;
                    Ok(Ok(()))
                }
                Err(problems) => Ok(Err(problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.problem))
                    .collect::<Vec<_>>()
                    .join("; "))),
            },
            KeptOrigin::Event { process, replays, .. } => match Ok::<_, String>(process.clone()) {
                Err(why) => Ok(Err(why)),
                Ok(ProcessKey::Truck(pid)) => match serde_json::from_str::<TruckEvent>(&item.body) {
                    Ok(event) => self.to_truck(&pid, event, replays + 1).await.map(Ok),
                    Err(e) => Ok(Err(format!("not a truck process event: {e}"))),
                },
                Ok(ProcessKey::Loan(number)) => match serde_json::from_str::<LoanEvent>(&item.body) {
                    Ok(event) => self.to_loan(&number, event).await.map(Ok),
                    // A loan's own effect results are re-derived by driving it again.
                    Err(_) => {
                        let dedup = format!("replay-{}-{}", short(&item.id), now_ms());
                        self.loans
                            .enqueue(&LoanMessage::Drive { loan_number: number.clone() }, &number, &dedup)
                            .await?;
                        Ok(Ok(()))
                    }
                },
            },
            KeptOrigin::Review { process, effect, .. } => Ok(Err(format!(
                "{process} is held: was {effect} received by the partner? \
                 answer with `polis-replay resolve {process} happened|did-not-happen`"
            ))),
            KeptOrigin::ArchivePending { process, .. } => {
                let id = format!("retry-archive-{}", now_ms());
                match Ok::<_, String>(process.clone()) {
                    Err(why) => Ok(Err(why)),
                    Ok(ProcessKey::Truck(pid)) => {
                        self.to_truck(&pid, TruckEvent::RetryArchive { id }, 0).await.map(Ok)
                    }
                    Ok(ProcessKey::Loan(number)) => {
                        self.to_loan(&number, LoanEvent::RetryArchive { id }).await.map(Ok)
                    }
                }
            }
        }
    }
}

/// A short digest for deduplication ids (SQS allows 128 characters).
fn short(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))[..32].to_owned()
}
