//! What every step runner does, whatever the process: apply an event, perform the
//! pending effects in order, and write the process with optimistic concurrency.
//!
//! A call that changes something at the partner is made at most once per attempt,
//! and a new attempt is made only when the last one surely did not reach the
//! partner: right before the call an intent record (`{effect}#{attempt}`) is
//! written with a conditional put, and the attempt's outcome goes into the
//! process's journal with the next write. An attempt that ends ambiguously (a
//! timeout, a 5xx, a reset after sending), or one that died without recording
//! its outcome, holds the process for review instead of being sent again, unless
//! the partner has confirmed that it honours `Idempotency-Key`.
//!
//! Writes are few on purpose: effects that are harmless to repeat (downloads into
//! S3, notices, a premium calculation) are folded into the next write; the result
//! of a call that changed something at the partner is written right after it.

use std::future::Future;
use std::time::Duration;

use super::retry::Backoff;
use super::RetryLater;
use crate::domain::bank::ErrorReport;
use crate::domain::outcome::Outcome;
use crate::domain::workflow::{
    CallOutcome, CallRecord, EffectClass, EffectSpec, Happening, History, What, Workflow,
};
use crate::keys::ProcessKey;
use crate::ports::{
    now_ms, CallError, EffectLog, EffectRecord, InfraError, KeptOrigin, ProcessStore, QuarantineStore,
    Quarantined, SaveError, StoredProcess, Versioned,
};
use crate::services::keep::keep;
use crate::telemetry::{self, Unit};

/// Attempts at an optimistic write before the message is retried later.
const SAVE_ATTEMPTS: u32 = 5;

/// Attempts at writing a changing call's result while our store fails (0.2 s, doubling).
const RESULT_SAVE_ATTEMPTS: u32 = 6;

/// One change made to a draft since it was read.
enum Change<W: Workflow> {
    /// An event applied to the process, and its history entry if it came from outside
    /// (noted again only where it applies again).
    Event(W::Event, Option<Happening>),
    /// A performed effect, whether it happened, and the event that records its result.
    Completed { effect: String, happened: bool, result: Option<W::Event> },
    /// An attempt at an effect, for the journal.
    Call(CallRecord),
    /// Something for the history (a notice sent).
    Noted(Happening),
}

/// A process with changes not yet written: the version it was read at and the
/// changes since, which are replayed onto a fresh copy when someone else wrote first.
pub struct Draft<W: Workflow> {
    stored: Versioned<W>,
    value: W,
    changes: Vec<Change<W>>,
}

impl<W: Workflow> Draft<W> {
    pub fn new(stored: Versioned<W>) -> Draft<W> {
        Draft { value: stored.value.clone(), stored, changes: Vec::new() }
    }

    pub fn value(&self) -> &W {
        &self.value
    }

    fn apply(&mut self, event: W::Event) -> Outcome {
        let outcome = self.value.apply(event.clone());
        if outcome == Outcome::Advanced {
            self.changes.push(Change::Event(event, None));
        }
        outcome
    }

    /// Notes in the history the event last applied (it came from outside).
    fn note_event(&mut self, happening: Happening) {
        if let Some(Change::Event(_, note)) = self.changes.last_mut() {
            self.value.history_mut().note(happening.clone());
            *note = Some(happening);
        }
    }

    /// Notes the stage in the history when the last change moved it.
    fn note_stage(&mut self) {
        let stage = self.value.stage_name();
        self.value.history_mut().note_stage(now_ms(), stage);
    }

    fn note(&mut self, happening: Happening) {
        self.value.history_mut().note(happening.clone());
        self.changes.push(Change::Noted(happening));
    }

    fn record(&mut self, call: CallRecord) {
        self.value.outbox_mut().record(call.clone());
        self.changes.push(Change::Call(call));
    }

    fn complete(&mut self, effect: String, happened: bool, result: Option<W::Event>) {
        Self::complete_on(&mut self.value, &effect, happened, result.clone());
        self.changes.push(Change::Completed { effect, happened, result });
        self.note_stage();
    }

    fn complete_on(value: &mut W, effect: &str, happened: bool, result: Option<W::Event>) {
        value.outbox_mut().complete(effect, happened);
        if let Some(event) = result {
            if let Outcome::Rejected(reason) = value.apply(event) {
                tracing::error!(%effect, %reason, "effect result contradicts the process");
            }
        }
    }

    /// Rebuilds the draft on `fresh`: events again (the process knows those it has
    /// seen), journal entries not there yet, effect results where the effect is still
    /// pending there.
    fn rebase(&mut self, fresh: Versioned<W>) {
        let mut value = fresh.value.clone();
        for change in &self.changes {
            match change {
                Change::Event(event, note) => {
                    let again = value.apply(event.clone()) == Outcome::Advanced;
                    if let Some(note) = note.clone().filter(|_| again) {
                        value.history_mut().note(note);
                    }
                }
                Change::Call(call) => {
                    let known = value
                        .outbox()
                        .calls()
                        .iter()
                        .any(|c| c.effect == call.effect && c.attempt == call.attempt);
                    if !known {
                        value.outbox_mut().record(call.clone());
                    }
                }
                Change::Noted(happening) => value.history_mut().note(happening.clone()),
                Change::Completed { effect, happened, result } if value.outbox().is_pending(effect) => {
                    Self::complete_on(&mut value, effect, *happened, result.clone());
                }
                Change::Completed { .. } => {}
            }
        }
        self.value = value;
        self.stored = fresh;
        self.note_stage();
    }
}

/// The kept review record of a hold that `after` no longer has.
fn lifted_review<W: Workflow + StoredProcess>(before: &W, after: &W) -> Option<String> {
    let review = before.outbox().review()?;
    if after.outbox().review().is_some() {
        return None;
    }
    let attempt = after
        .outbox()
        .calls()
        .iter()
        .rev()
        .find(|c| c.effect == review.effect && matches!(c.outcome, CallOutcome::Ambiguous { .. }))?
        .attempt;
    let origin = KeptOrigin::Review { process: after.key(), effect: review.effect.clone(), attempt };
    Some(Quarantined::new(origin, String::new(), String::new(), 0).id)
}

/// The metrics of a stage entered that an on-call engineer watches: policies issued (and
/// how long from the bank's request), failed, rejected, held for review.
fn stage_metrics<W: Workflow + StoredProcess>(process: &W, stage: &str) {
    let metric = match stage {
        "issued" | "sold" => "PolicyIssued",
        "failed" | "expired" => "PolicyFailed",
        "rejected" => "PolicyRejected",
        "needs-review" => "NeedsReview",
        _ => return,
    };
    let insurer = process.insurer();
    let dimensions = [("Process", process.kind()), ("Insurer", insurer.as_str())];
    let begun = process.history().entries().first().map(|h| h.at_ms);
    match begun.filter(|_| metric == "PolicyIssued") {
        Some(at) => {
            let waited = now_ms().saturating_sub(at) as f64;
            telemetry::record(
                &dimensions,
                &[(metric, Unit::Count, 1.0), ("RequestToIssued", Unit::Milliseconds, waited)],
            );
        }
        None => telemetry::record(&dimensions, &[(metric, Unit::Count, 1.0)]),
    }
}

/// One attempt at a partner call (or an archive): its latency and outcome, by effect.
fn call_metrics<E: EffectSpec>(process: &str, effect: &E, call: &CallRecord) {
    let outcome = match &call.outcome {
        CallOutcome::Done => "done",
        CallOutcome::NotSent { .. } => "not-sent",
        CallOutcome::Ambiguous { .. } => "ambiguous",
        CallOutcome::Refused { .. } => "refused",
        CallOutcome::Failed { .. } => "failed",
        CallOutcome::Resolved { .. } => "resolved",
    };
    let action = effect.action();
    telemetry::record(
        &[("Process", process), ("Effect", action.as_str()), ("Outcome", outcome)],
        &[
            ("PartnerCall", Unit::Count, 1.0),
            ("PartnerCallLatency", Unit::Milliseconds, call.duration_ms as f64),
        ],
    );
}

/// Why an effect did not complete.
#[derive(Debug)]
pub enum EffectFailure {
    /// The partner refused, or answered something unusable: the process decides what it means.
    Permanent(ErrorReport),
    /// Not done, and the partner surely did not act on it: try again on a later delivery.
    Later(RetryLater),
    /// Another attempt holds the effect's intent and may still be running.
    Busy(String),
    /// A call that changes something at the partner may or may not have happened;
    /// `started_ms` when it was an earlier attempt that made it (else this one).
    Uncertain { detail: String, started_ms: Option<u64> },
}

impl EffectFailure {
    pub fn permanent(code: &str, message: String) -> EffectFailure {
        EffectFailure::Permanent(ErrorReport::integration(code, message))
    }
}

impl From<InfraError> for EffectFailure {
    fn from(e: InfraError) -> Self {
        EffectFailure::Later(RetryLater::Infra(e))
    }
}

/// The attempt at an effect that a `perform` is making: what its intent record is named after.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub process: ProcessKey,
    pub effect: String,
    pub number: u32,
}

pub struct Engine<S> {
    pub store: S,
    /// How long an unfinished call is presumed still running elsewhere.
    pub effect_lease: Duration,
    pub backoff: Backoff,
    /// Turns a partner's refusal into the report the bank receives.
    pub refusal: fn(&CallError) -> ErrorReport,
    /// The partner has confirmed in writing that it honours `Idempotency-Key`: a changing
    /// call whose outcome is unknown is sent again under the same key instead of held.
    pub partner_idempotent: bool,
}

impl<S> Engine<S>
where
    S: ProcessStore + EffectLog + QuarantineStore + Sync,
{
    pub async fn load<W: Workflow + StoredProcess>(
        &self,
        key: &ProcessKey,
    ) -> Result<Option<Versioned<W>>, RetryLater> {
        Ok(self.store.load(key).await?)
    }

    /// Keeps `body` with its reason for a person and the replay tool; `at_ms` is when it
    /// first came (a replay's rules on old items count from it).
    pub async fn quarantine(
        &self,
        origin: KeptOrigin,
        reason: String,
        body: String,
        at_ms: u64,
    ) -> Result<(), RetryLater> {
        keep(&self.store, &Quarantined::new(origin, reason, body, at_ms)).await?;
        Ok(())
    }

    /// Applies an event from outside to the process (written with the next save). An
    /// event the process rejects (including a new one after it ended) is quarantined; a
    /// repeat of one it applied is a counted no-op.
    pub async fn apply<W: Workflow + StoredProcess>(
        &self,
        current: Versioned<W>,
        event: W::Event,
        replays: u32,
    ) -> Result<Draft<W>, RetryLater> {
        let mut draft = Draft::new(current);
        match draft.apply(event.clone()) {
            // Noted in the history with the change; an event that changes nothing writes
            // nothing (a kept one is on the kept list, a repeat or an ignored one in the logs).
            Outcome::Advanced => {
                if let Some(received) = W::received(&event) {
                    draft.note_event(History::event(&received, now_ms()));
                }
                draft.note_stage();
            }
            Outcome::Duplicate => {
                tracing::info!("event applied before; nothing to do");
                telemetry::count("DuplicateEvent", ("Process", draft.value.kind()));
            }
            Outcome::Ignored(reason) => tracing::info!(%reason, "event ignored"),
            Outcome::Rejected(reason) => {
                let id = W::received(&event).map_or("internal", |r| r.id).to_owned();
                let origin = KeptOrigin::Event { process: draft.value.key(), event_id: id, replays };
                let body = serde_json::to_string(&event).unwrap_or_default();
                self.quarantine(origin, reason, body, now_ms()).await?;
            }
        }
        Ok(draft)
    }

    async fn reload<W: Workflow + StoredProcess>(
        &self,
        key: &ProcessKey,
    ) -> Result<Versioned<W>, RetryLater> {
        self.store.load(key).await?.ok_or_else(|| RetryLater::NotYet(format!("process {key} vanished")))
    }

    /// Writes the draft's changes, if any, re-reading and replaying them on conflict.
    async fn save<W: Workflow + StoredProcess>(&self, draft: &mut Draft<W>) -> Result<(), RetryLater> {
        for _ in 0..SAVE_ATTEMPTS {
            if draft.changes.is_empty() {
                return Ok(());
            }
            // Also a process written before stages were noted gets its stage (and its place in
            // the open index) with its next write.
            draft.note_stage();
            let known = draft.stored.value.aliases();
            let new_aliases: Vec<String> =
                draft.value.aliases().into_iter().filter(|a| !known.contains(a)).collect();
            match self.store.save(&draft.value, draft.stored.version, &new_aliases).await {
                Ok(version) => {
                    let (from, to) = (draft.stored.value.stage_name(), draft.value.stage_name());
                    if from != to {
                        tracing::info!(%from, %to, "stage changed");
                        stage_metrics(&draft.value, &to);
                    }
                    let lifted = lifted_review(&draft.stored.value, &draft.value);
                    draft.stored = Versioned { value: draft.value.clone(), version };
                    draft.changes.clear();
                    if let Some(item) = lifted {
                        // Resolved (by a proof from the partner, or an operator): off the list.
                        if let Err(e) = self.store.release(&item).await {
                            tracing::warn!(error = %e, "a resolved review stays listed");
                        }
                    }
                    return Ok(());
                }
                Err(SaveError::Conflict) => {
                    let fresh = self.reload(&draft.value.key()).await?;
                    draft.rebase(fresh);
                }
                Err(SaveError::Infra(e)) => return Err(e.into()),
            }
        }
        Err(RetryLater::NotYet("process kept changing under us".into()))
    }

    /// Writes a changing call's result, retrying our own store's transient failures with
    /// backoff for up to about 12 s (well within the function's timeout).
    async fn save_result<W: Workflow + StoredProcess>(&self, draft: &mut Draft<W>) -> Result<(), RetryLater> {
        let mut delay = Duration::from_millis(200);
        for _ in 0..RESULT_SAVE_ATTEMPTS {
            match self.save(draft).await {
                Err(RetryLater::Infra(e)) => {
                    tracing::warn!(error = %e, "the result of a changing call is not written yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        self.save(draft).await
    }

    /// Before giving a message back for a retry: what was done so far is written,
    /// so the retry does not do it again. If that fails too, the retry redoes it.
    async fn keep_progress<W: Workflow + StoredProcess>(&self, draft: &mut Draft<W>) {
        if let Err(e) = self.save(draft).await {
            tracing::warn!(error = %e, "progress not written; the retry redoes it");
        }
    }

    /// Performs pending effects in order until none is left (or the process is held),
    /// then writes the process.
    pub async fn drive<W, P, Fut>(&self, mut draft: Draft<W>, perform: P) -> Result<(), RetryLater>
    where
        W: Workflow + StoredProcess,
        P: Fn(W, W::Effect, Attempt) -> Fut,
        Fut: Future<Output = Result<Option<W::Event>, EffectFailure>>,
    {
        let process = draft.value.key();
        loop {
            let Some(effect) = draft.value.outbox().next().cloned() else {
                self.save(&mut draft).await?;
                // A write that met another writer's changes may have brought new work.
                if draft.value.outbox().next().is_none() {
                    return Ok(());
                }
                continue;
            };
            let key = effect.key();
            let changes = effect.class() == EffectClass::ChangesPartner;
            if changes && !draft.changes.is_empty() {
                // Written with the effect pending before anything is sent for it: a call
                // made by an attempt that dies is then found (and held) by the next one,
                // whatever becomes of the message that caused it.
                self.save(&mut draft).await?;
                if draft.value.outbox().next().map(EffectSpec::key).as_ref() != Some(&key) {
                    continue;
                }
            }
            let attempt = Attempt {
                process: process.clone(),
                effect: key.clone(),
                number: draft.value.outbox().attempts(&key) + 1,
            };
            let number = attempt.number;
            let started = now_ms();
            // Boxed: effect futures are large and deeply nested.
            let result = Box::pin(perform(draft.value.clone(), effect.clone(), attempt)).await;
            let call = |outcome| {
                let record = CallRecord {
                    effect: key.clone(),
                    attempt: number,
                    at_ms: started,
                    duration_ms: now_ms().saturating_sub(started),
                    outcome,
                };
                call_metrics(draft.value.kind(), &effect, &record);
                record
            };
            match result {
                Ok(event) => {
                    match effect.notice() {
                        Some((kind, event_id)) => draft.note(Happening {
                            at_ms: started,
                            what: What::Notice { kind: kind.to_owned(), event_id: event_id.to_owned() },
                        }),
                        None => draft.record(call(CallOutcome::Done)),
                    }
                    draft.complete(key.clone(), true, event);
                }
                Err(EffectFailure::Permanent(error)) => {
                    tracing::warn!(effect = %key, code = %error.code, "effect failed permanently");
                    draft.record(call(CallOutcome::Refused { detail: error.message.clone() }));
                    draft.complete(key.clone(), false, Some(W::effect_failed(&effect, error)));
                }
                Err(EffectFailure::Uncertain { detail, started_ms }) => {
                    tracing::error!(effect = %key, %detail, "outcome unknown; held for review, not sent again");
                    // Kept for an operator first: if the hold is not written, the retry keeps it again.
                    let origin =
                        KeptOrigin::Review { process: process.clone(), effect: key.clone(), attempt: number };
                    keep(&self.store, &Quarantined::new(origin, detail.clone(), String::new(), started))
                        .await?;
                    let mut record = call(CallOutcome::Ambiguous { detail: detail.clone() });
                    if let Some(earlier) = started_ms {
                        // The attempt that may have reached the partner: a hook can only prove
                        // it if received after this.
                        record.at_ms = earlier;
                    }
                    draft.record(record);
                    // Held from now (the attempt's start is in the journal).
                    draft.apply(W::effect_uncertain(&key, now_ms(), detail));
                    draft.note_stage();
                }
                Err(EffectFailure::Busy(why)) => {
                    self.keep_progress(&mut draft).await;
                    return Err(RetryLater::NotYet(why));
                }
                Err(EffectFailure::Later(e)) => {
                    let not_sent = match &e {
                        RetryLater::Call(cause) => {
                            let detail = cause.to_string();
                            draft.record(call(if changes {
                                CallOutcome::NotSent { detail }
                            } else {
                                CallOutcome::Failed { detail }
                            }));
                            changes
                        }
                        _ => false,
                    };
                    if not_sent {
                        // That the attempt sent nothing is what lets the next one send: lost, its
                        // intent would look like a call nobody can vouch for, and be held for a
                        // person. So it is written as patiently as a result.
                        if let Err(lost) = self.save_result(&mut draft).await {
                            tracing::warn!(error = %lost, "that the call was not sent is not written");
                        }
                    } else {
                        self.keep_progress(&mut draft).await;
                    }
                    return Err(e);
                }
            }
            if changes {
                // The partner has acted (or may have): that is written before anything else
                // happens, and patiently: an attempt whose result is lost is one nobody can
                // repeat without asking a person.
                self.save_result(&mut draft).await?;
            }
        }
    }

    /// A call that changes nothing at the partner, with the engine's backoff for
    /// transient failures; a refusal becomes a permanent failure.
    pub async fn call<T, F, Fut>(&self, what: &str, call: F) -> Result<T, EffectFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.backoff.run(what, CallError::is_transient, call).await.map_err(|e| self.failure(e))
    }

    /// A call that changes something at the partner: first its intent is recorded
    /// (one attempt, one call); it is repeated within this attempt only while it surely
    /// did not reach the partner (or the partner honours idempotency keys); an
    /// ambiguous outcome is `Uncertain`.
    pub async fn call_once<T, F, Fut>(&self, attempt: &Attempt, call: F) -> Result<T, EffectFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let lease = self.effect_lease.as_millis() as u64;
        let intent = format!("{}#{}", attempt.effect, attempt.number);
        match self.store.begin(&attempt.process, &intent, lease).await? {
            EffectRecord::Fresh => {}
            EffectRecord::InFlight => {
                return Err(EffectFailure::Busy(format!("{} is being attempted elsewhere", attempt.effect)));
            }
            EffectRecord::Retaken { .. } if self.partner_idempotent => {
                tracing::warn!(effect = %attempt.effect, "an earlier attempt died; sending again under its idempotency key");
            }
            EffectRecord::Retaken { started_ms } => {
                return Err(EffectFailure::Uncertain {
                    detail: format!(
                        "attempt {} started earlier and never recorded its outcome",
                        attempt.number
                    ),
                    started_ms: Some(started_ms),
                });
            }
        }
        let idempotent = self.partner_idempotent;
        let retry = move |e: &CallError| match e {
            CallError::NotSent(_) => true,
            CallError::Ambiguous(_) => idempotent,
            CallError::Refused { .. } | CallError::Unusable(_) => false,
        };
        match self.backoff.run(&attempt.effect, retry, call).await {
            Ok(value) => Ok(value),
            Err(CallError::Ambiguous(detail)) if !idempotent => {
                Err(EffectFailure::Uncertain { detail, started_ms: None })
            }
            Err(e) => Err(self.failure(e)),
        }
    }

    fn failure(&self, e: CallError) -> EffectFailure {
        match e {
            CallError::Refused { .. } | CallError::Unusable(_) => {
                EffectFailure::Permanent((self.refusal)(&e))
            }
            transient => EffectFailure::Later(RetryLater::Call(transient)),
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
