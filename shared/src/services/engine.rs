//! What every step runner does, whatever the process: apply an event, perform the
//! pending effects in order, and write the process with optimistic concurrency.
//!
//! Writes are few on purpose. Effects that are harmless to repeat (downloads into
//! S3, notices, a premium calculation) are folded into the next write. An effect
//! that changes something at an insurer is guarded by an intent record (a
//! conditional put before the call) and its result is written right after the
//! call; a redelivered message finds the intent and waits, or, once the lease has
//! run out (the attempt died), calls again under the same `Idempotency-Key`.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::quarantine::keep;
use super::retry::Backoff;
use super::RetryLater;
use crate::domain::bank::truck::ErrorReport;
use crate::domain::outcome::Outcome;
use crate::ports::{
    now_ms, CallError, EffectLog, EffectRecord, InfraError, ProcessStore, QuarantineStore, Quarantined,
    SaveError, StoredProcess, Versioned,
};

/// Attempts at an optimistic write before the message is retried later.
const SAVE_ATTEMPTS: u32 = 5;

/// A process the engine can run: a state machine with an outbox of effects.
pub trait Workflow: StoredProcess + Clone {
    type Event: Clone + Serialize + Send + Sync;
    type Effect: Clone + Send + Sync;

    fn apply(&mut self, event: Self::Event) -> Outcome;
    /// The outbox: effects still to perform, in order.
    fn pending(&self) -> &[Self::Effect];
    fn effect_key(effect: &Self::Effect) -> String;
    /// Harmless to perform again after a crash: needs no intent record.
    fn is_repeatable(effect: &Self::Effect) -> bool;
    fn complete(&mut self, effect_key: &str);
    /// The event that records an effect's permanent failure.
    fn effect_failed(error: ErrorReport) -> Self::Event;
    /// The event's id when it comes from outside (hooks, bank events).
    fn external_id(event: &Self::Event) -> Option<&str>;
    fn stage(&self) -> String;
    fn is_terminal(&self) -> bool;

    fn next_effect(&self) -> Option<&Self::Effect> {
        self.pending().first()
    }
    fn is_pending(&self, effect_key: &str) -> bool {
        self.pending().iter().any(|e| Self::effect_key(e) == effect_key)
    }
}

/// One change made to a draft since it was read.
enum Change<E> {
    /// An event from outside (a hook, a bank event).
    Event(E),
    /// A performed effect and the event that records its result, if any.
    Completed { effect: String, result: Option<E> },
}

/// A process with changes not yet written: the version it was read at and the
/// changes since, which are replayed onto a fresh copy when someone else wrote first.
pub struct Draft<W: Workflow> {
    stored: Versioned<W>,
    value: W,
    changes: Vec<Change<W::Event>>,
}

impl<W: Workflow> Draft<W> {
    pub fn new(stored: Versioned<W>) -> Draft<W> {
        Draft { value: stored.value.clone(), stored, changes: Vec::new() }
    }

    fn complete(&mut self, effect: String, result: Option<W::Event>) {
        Self::complete_on(&mut self.value, &effect, result.clone());
        self.changes.push(Change::Completed { effect, result });
    }

    fn complete_on(value: &mut W, effect: &str, result: Option<W::Event>) {
        value.complete(effect);
        if let Some(event) = result {
            if let Outcome::Rejected(reason) = value.apply(event) {
                tracing::error!(%effect, %reason, "effect result contradicts the process");
            }
        }
    }

    /// Rebuilds the draft on `fresh`: events again (the process ignores those it has
    /// seen), effect results where the effect is still pending there.
    fn rebase(&mut self, fresh: Versioned<W>) {
        let mut value = fresh.value.clone();
        for change in &self.changes {
            match change {
                Change::Event(event) => {
                    value.apply(event.clone());
                }
                Change::Completed { effect, result } if value.is_pending(effect) => {
                    Self::complete_on(&mut value, effect, result.clone());
                }
                Change::Completed { .. } => {}
            }
        }
        self.value = value;
        self.stored = fresh;
    }
}

/// Why an effect did not complete.
pub enum EffectFailure {
    /// Ends the process; the bank is told.
    Permanent(ErrorReport),
    /// Try again on the next delivery.
    Later(RetryLater),
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

pub struct Engine<S> {
    pub store: S,
    /// How long an unfinished effect is presumed still running elsewhere.
    pub effect_lease: Duration,
    pub backoff: Backoff,
    /// Turns an insurer's refusal into the report the bank receives.
    pub refusal: fn(CallError) -> EffectFailure,
}

impl<S> Engine<S>
where
    S: ProcessStore + EffectLog + QuarantineStore + Sync,
{
    pub async fn load<W: Workflow>(&self, key: &str) -> Result<Option<Versioned<W>>, RetryLater> {
        Ok(self.store.load(key).await?)
    }

    /// Keeps `body` with its reason for a person and the replay tool.
    pub async fn quarantine(
        &self,
        source: &str,
        id: &str,
        reason: String,
        body: String,
        origin: serde_json::Value,
    ) -> Result<(), RetryLater> {
        let item = Quarantined {
            // The attempt's time makes each keeping its own record (see services::quarantine).
            id: format!("{source}-{id}-{}", now_ms()),
            source: source.into(),
            reason,
            body,
            origin,
            received_at_ms: now_ms(),
        };
        keep(&self.store, &item).await?;
        Ok(())
    }

    /// Applies an event to the process (written with the next save). An event the
    /// process rejects, or one that arrives after it ended, is quarantined.
    pub async fn apply<W: Workflow>(
        &self,
        current: Versioned<W>,
        event: W::Event,
    ) -> Result<Draft<W>, RetryLater> {
        let mut draft = Draft::new(current);
        let mut next = draft.value.clone();
        let was_terminal = next.is_terminal();
        let id = W::external_id(&event).unwrap_or("internal").to_owned();
        let body = || serde_json::to_string(&event).unwrap_or_default();
        let origin = serde_json::json!({"process": draft.value.key()});
        match next.apply(event.clone()) {
            Outcome::Advanced => {
                draft.value = next;
                draft.changes.push(Change::Event(event));
            }
            Outcome::Ignored(_) if was_terminal && W::external_id(&event).is_some() => {
                self.quarantine("process-event", &id, "process has ended".into(), body(), origin).await?;
            }
            Outcome::Ignored(reason) => tracing::info!(%reason, "event ignored"),
            Outcome::Rejected(reason) => {
                self.quarantine("process-event", &id, reason, body(), origin).await?;
            }
        }
        Ok(draft)
    }

    async fn reload<W: Workflow>(&self, key: &str) -> Result<Versioned<W>, RetryLater> {
        self.store.load(key).await?.ok_or_else(|| RetryLater::NotYet(format!("process {key} vanished")))
    }

    /// Writes the draft's changes, if any, re-reading and replaying them on conflict.
    async fn save<W: Workflow>(&self, draft: &mut Draft<W>) -> Result<(), RetryLater> {
        for _ in 0..SAVE_ATTEMPTS {
            if draft.changes.is_empty() {
                return Ok(());
            }
            let known = draft.stored.value.aliases();
            let new_aliases: Vec<String> =
                draft.value.aliases().into_iter().filter(|a| !known.contains(a)).collect();
            match self.store.save(&draft.value, draft.stored.version, &new_aliases).await {
                Ok(version) => {
                    let (from, to) = (draft.stored.value.stage(), draft.value.stage());
                    if from != to {
                        tracing::info!(%from, %to, "stage changed");
                    }
                    draft.stored = Versioned { value: draft.value.clone(), version };
                    draft.changes.clear();
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

    /// Before giving a message back for a retry: what was done so far is written,
    /// so the retry does not do it again. If that fails too, the retry redoes it.
    async fn keep_progress<W: Workflow>(&self, draft: &mut Draft<W>) {
        if let Err(e) = self.save(draft).await {
            tracing::warn!(error = %e, "progress not written; the retry redoes it");
        }
    }

    /// Records the intent to perform `key`, unless another attempt holds it within its lease.
    async fn take_intent(&self, process: &str, key: &str) -> Result<(), RetryLater> {
        match self.store.begin(process, key, self.effect_lease.as_millis() as u64).await? {
            EffectRecord::Fresh => Ok(()),
            EffectRecord::Retaken => {
                tracing::warn!(effect = %key, "an earlier attempt died; calling again");
                Ok(())
            }
            EffectRecord::InFlight => Err(RetryLater::NotYet(format!("effect {key} is running elsewhere"))),
        }
    }

    /// Performs pending effects in order until none is left, then writes the process.
    pub async fn drive<W, P, Fut>(&self, mut draft: Draft<W>, perform: P) -> Result<(), RetryLater>
    where
        W: Workflow,
        P: Fn(W, W::Effect) -> Fut,
        Fut: Future<Output = Result<Option<W::Event>, EffectFailure>>,
    {
        let process = draft.value.key();
        while let Some(effect) = draft.value.next_effect().cloned() {
            let key = W::effect_key(&effect);
            let guarded = !W::is_repeatable(&effect);
            if guarded {
                if let Err(e) = self.take_intent(&process, &key).await {
                    self.keep_progress(&mut draft).await;
                    return Err(e);
                }
            }
            // Boxed: effect futures are large and deeply nested.
            let result = match Box::pin(perform(draft.value.clone(), effect)).await {
                Ok(event) => event,
                Err(EffectFailure::Permanent(error)) => {
                    tracing::warn!(effect = %key, code = %error.code, "effect failed permanently");
                    Some(W::effect_failed(error))
                }
                Err(EffectFailure::Later(e)) => {
                    self.keep_progress(&mut draft).await;
                    return Err(e);
                }
            };
            draft.complete(key, result);
            if guarded {
                // The insurer has acted: its result is written before anything else happens.
                self.save(&mut draft).await?;
            }
        }
        self.save(&mut draft).await
    }

    /// Runs an idempotent call with the engine's backoff; a refusal becomes the process's failure.
    pub async fn retry<T, F, Fut>(&self, what: &str, call: F) -> Result<T, EffectFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.backoff.run(what, call).await.map_err(|e| match e {
            CallError::Transient(_) => EffectFailure::Later(RetryLater::Call(e)),
            refused => (self.refusal)(refused),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// A toy process: each event `e` not seen before asks for effect `call-e`, whose
    /// result event is `result:e`.
    #[derive(Clone, Default, Serialize, Deserialize)]
    struct Toy {
        seen: Vec<String>,
        pending: Vec<String>,
        results: Vec<String>,
    }

    impl StoredProcess for Toy {
        fn key(&self) -> String {
            "TOY#1".into()
        }
        fn aliases(&self) -> Vec<String> {
            Vec::new()
        }
        fn index(&self) -> Vec<(&'static str, String)> {
            Vec::new()
        }
    }

    impl Workflow for Toy {
        type Event = String;
        type Effect = String;

        fn apply(&mut self, event: String) -> Outcome {
            if event.starts_with("result:") {
                self.results.push(event);
            } else if self.seen.contains(&event) {
                return Outcome::Ignored(format!("{event} seen"));
            } else {
                self.pending.push(format!("call-{event}"));
                self.seen.push(event);
            }
            Outcome::Advanced
        }
        fn pending(&self) -> &[String] {
            &self.pending
        }
        fn effect_key(effect: &String) -> String {
            effect.clone()
        }
        fn is_repeatable(_: &String) -> bool {
            false
        }
        fn complete(&mut self, effect_key: &str) {
            self.pending.retain(|e| e != effect_key);
        }
        fn effect_failed(_: ErrorReport) -> String {
            "result:failed".into()
        }
        fn external_id(event: &String) -> Option<&str> {
            Some(event)
        }
        fn stage(&self) -> String {
            "running".into()
        }
        fn is_terminal(&self) -> bool {
            false
        }
    }

    fn toy(events: &[&str], completed: &[(&str, &str)]) -> Toy {
        let mut t = Toy::default();
        for e in events {
            t.apply((*e).to_owned());
        }
        for (effect, result) in completed {
            t.complete(effect);
            t.apply((*result).to_owned());
        }
        t
    }

    /// Our draft: event `a` applied and its call made; read at version 1.
    fn ours() -> Draft<Toy> {
        let mut draft = Draft::new(Versioned { value: Toy::default(), version: 1 });
        draft.value.apply("a".into());
        draft.changes.push(Change::Event("a".into()));
        draft.complete("call-a".into(), Some("result:a".into()));
        draft
    }

    #[test]
    fn a_conflict_replays_our_changes_on_what_the_other_writer_stored() {
        let mut draft = ours();
        // Meanwhile version 2 was written with event b, and a (a redelivery) too.
        draft.rebase(Versioned { value: toy(&["b", "a"], &[]), version: 2 });
        assert_eq!(draft.value.seen, ["b", "a"], "a is not applied twice");
        assert_eq!(draft.value.pending, ["call-b"], "our effect done, theirs still to do");
        assert_eq!(draft.value.results, ["result:a"]);
        assert_eq!(draft.stored.version, 2, "the next write expects their version");
        assert_eq!(draft.changes.len(), 2, "still unwritten");
    }

    #[test]
    fn an_effect_the_other_writer_completed_is_not_completed_again() {
        let mut draft = ours();
        draft.rebase(Versioned { value: toy(&["a"], &[("call-a", "result:a-theirs")]), version: 2 });
        assert_eq!(draft.value.results, ["result:a-theirs"], "their result stands, ours is dropped");
        assert!(draft.value.pending.is_empty());
    }
}
