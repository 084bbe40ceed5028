//! Replay of what [`super::keep`] kept, from the `polis-ops` command or the
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
use crate::domain::workflow::{Resolution, Review};
use crate::keys::ProcessKey;
use crate::ports::{
    now_ms, BankOutbox, HookStore, InfraError, KeptOrigin, LoanMessage, LoanQueue, ProcessStore,
    QuarantineStore, Quarantined, ReceivedHook, Recorded, TruckMessage, TruckQueue,
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
        self.quarantined_where(|_| true).await
    }

    /// As [`Replay::quarantined`], for the kept items `chosen` picks (e.g. input only,
    /// leaving files a partner would not serve for a later, rarer round).
    pub async fn quarantined_where(
        &self,
        chosen: impl Fn(&Quarantined) -> bool,
    ) -> Result<ReplayReport, InfraError> {
        let mut report = ReplayReport::default();
        for item in self.store.list_quarantined().await?.into_iter().filter(|i| chosen(i)) {
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
        let review = match self.review_of(key).await? {
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
                // The answer goes to the process's own group: MUST's first hooks for a
                // scoringId we do not know yet wait in the scoringId's group until the
                // answer maps it (behind them, the answer would wait for them). Those
                // already kept meanwhile are queued again, to wait for it likewise.
                let scoring = match &resolution {
                    Resolution::Happened { reference: Some(sid), .. } if review.effect == "init" => {
                        ScoringId::parse(sid).ok()
                    }
                    _ => None,
                };
                self.to_truck(
                    pid,
                    TruckEvent::ReviewResolved { id, effect: review.effect.clone(), resolution },
                    0,
                )
                .await?;
                if let Some(sid) = scoring {
                    for item in kept.iter().filter(
                        |i| matches!(&i.origin, KeptOrigin::Hook { scoring_id, .. } if *scoring_id == sid),
                    ) {
                        if let Ok(()) = self.redrive(item).await? {
                            self.store.release(&item.id).await?;
                        }
                    }
                }
            }
            ProcessKey::Loan(number) => {
                self.to_loan(
                    number,
                    LoanEvent::ReviewResolved { id, effect: review.effect.clone(), resolution },
                )
                .await?;
            }
        }
        for id in open {
            self.store.release(&id).await?;
        }
        Ok(Ok(()))
    }

    /// The process's open review (`None` when the process does not exist).
    async fn review_of(&self, process: &ProcessKey) -> Result<Option<Option<Review>>, InfraError> {
        Ok(match process {
            ProcessKey::Truck(_) => {
                self.store.load::<TruckProcess>(process).await?.map(|p| p.value.outbox.review().cloned())
            }
            ProcessKey::Loan(_) => {
                self.store.load::<LoanProcess>(process).await?.map(|p| p.value.outbox.review().cloned())
            }
        })
    }

    /// The effect the process is held on, if it is.
    async fn held_on(&self, process: &ProcessKey) -> Result<Option<String>, InfraError> {
        Ok(self.review_of(process).await?.flatten().map(|review| review.effect))
    }

    /// Queues an event to a truck process in its message group.
    async fn to_truck(&self, pid: &ProcessId, event: TruckEvent, replays: u32) -> Result<(), InfraError> {
        let group = message_group(&self.store, pid).await?;
        let dedup = format!("replay-{}-{}", short(&format!("{pid}{event:?}")), now_ms());
        let message = TruckMessage::BankEvent { process_id: pid.clone(), event, replays };
        self.trucks.enqueue(&message, &group, &dedup).await
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
                if store_and_enqueue(&self.store, &self.trucks, hook, &dedup).await?
                    == Recorded::UsedElsewhere
                {
                    return Ok(Err("its webhook-id was first used for another scoringId or hook".into()));
                }
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
            KeptOrigin::Review { process, effect, .. } => {
                // A hold lifted meanwhile (a hook proved the call, or the answer came) whose
                // record outlived it: nothing waits for a person any more.
                if self.held_on(process).await?.as_deref() != Some(effect.as_str()) {
                    return Ok(Ok(()));
                }
                Ok(Err(format!(
                    "{process} is held: was {effect} received by the partner? \
                     answer with `polis-ops resolve {process} happened|did-not-happen`"
                )))
            }
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

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
