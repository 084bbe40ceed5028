//! What every step runner does, whatever the process: apply an event with
//! optimistic concurrency, then perform the pending effects in order, each
//! insurer call wrapped in an intent record (effect log): the intent is
//! written with a conditional put before the call and the result after it, so
//! a redelivered message reuses finished work instead of redoing it.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
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
    fn next_effect(&self) -> Option<&Self::Effect>;
    fn effect_key(effect: &Self::Effect) -> String;
    fn complete(&mut self, effect_key: &str);
    /// The event that records an effect's permanent failure.
    fn effect_failed(error: ErrorReport) -> Self::Event;
    /// The event's id when it comes from outside (hooks, bank events).
    fn external_id(event: &Self::Event) -> Option<&str>;
    fn stage(&self) -> String;
    fn is_terminal(&self) -> bool;
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

    /// Applies an event with optimistic concurrency, re-reading on conflict. An event
    /// the process rejects, or one that arrives after it ended, is quarantined.
    pub async fn apply<W: Workflow>(
        &self,
        mut current: Versioned<W>,
        event: W::Event,
    ) -> Result<Versioned<W>, RetryLater> {
        for _ in 0..SAVE_ATTEMPTS {
            let mut next = current.value.clone();
            let was_terminal = next.is_terminal();
            let keep = |reason: String| {
                let id = W::external_id(&event).unwrap_or("internal").to_owned();
                let body = serde_json::to_string(&event).unwrap_or_default();
                let origin = serde_json::json!({"process": current.value.key()});
                (id, reason, body, origin)
            };
            match next.apply(event.clone()) {
                Outcome::Advanced => match self.save(&current, next).await {
                    Ok(saved) => return Ok(saved),
                    Err(SaveError::Conflict) => current = self.reload(&current.value.key()).await?,
                    Err(SaveError::Infra(e)) => return Err(e.into()),
                },
                Outcome::Ignored(reason) if was_terminal && W::external_id(&event).is_some() => {
                    let (id, _, body, origin) = keep(reason);
                    self.quarantine("process-event", &id, "process has ended".into(), body, origin).await?;
                    return Ok(current);
                }
                Outcome::Ignored(reason) => {
                    tracing::info!(%reason, "event ignored");
                    return Ok(current);
                }
                Outcome::Rejected(reason) => {
                    let (id, reason, body, origin) = keep(reason);
                    self.quarantine("process-event", &id, reason, body, origin).await?;
                    return Ok(current);
                }
            }
        }
        Err(RetryLater::NotYet("process kept changing under us".into()))
    }

    async fn reload<W: Workflow>(&self, key: &str) -> Result<Versioned<W>, RetryLater> {
        self.store.load(key).await?.ok_or_else(|| RetryLater::NotYet(format!("process {key} vanished")))
    }

    async fn save<W: Workflow>(&self, current: &Versioned<W>, next: W) -> Result<Versioned<W>, SaveError> {
        let known = current.value.aliases();
        let new_aliases: Vec<String> = next.aliases().into_iter().filter(|a| !known.contains(a)).collect();
        let version = self.store.save(&next, current.version, &new_aliases).await?;
        let (from, to) = (current.value.stage(), next.stage());
        if from != to {
            tracing::info!(%from, %to, "stage changed");
        }
        Ok(Versioned { value: next, version })
    }

    /// Performs pending effects in order until none is left.
    pub async fn drive<W, P, Fut>(&self, mut current: Versioned<W>, perform: P) -> Result<(), RetryLater>
    where
        W: Workflow,
        P: Fn(W, W::Effect) -> Fut,
        Fut: Future<Output = Result<Option<W::Event>, EffectFailure>>,
    {
        while let Some(effect) = current.value.next_effect().cloned() {
            let key = W::effect_key(&effect);
            // Boxed: effect futures are large and deeply nested.
            let result = Box::pin(perform(current.value.clone(), effect)).await;
            let mut next = current.value.clone();
            next.complete(&key);
            match result {
                Ok(Some(event)) => {
                    if let Outcome::Rejected(reason) = next.apply(event) {
                        tracing::error!(effect = %key, %reason, "effect result contradicts the process");
                    }
                }
                Ok(None) => {}
                Err(EffectFailure::Permanent(error)) => {
                    tracing::warn!(effect = %key, code = %error.code, "effect failed permanently");
                    next.apply(W::effect_failed(error));
                }
                Err(EffectFailure::Later(e)) => return Err(e),
            }
            current = match self.save(&current, next).await {
                Ok(saved) => saved,
                // Someone else moved the process on; their state wins, and finished
                // work is found in the effect log if it is still pending there.
                Err(SaveError::Conflict) => self.reload(&current.value.key()).await?,
                Err(SaveError::Infra(e)) => return Err(e.into()),
            };
        }
        Ok(())
    }

    /// Runs `call` once per (`process`, `key`), whatever the deliveries: transient
    /// failures are retried with backoff, a refusal is permanent.
    pub async fn once<T, F, Fut>(&self, process: &str, key: &str, call: F) -> Result<T, EffectFailure>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        match self.store.begin(process, key, self.effect_lease.as_millis() as u64).await? {
            EffectRecord::Done(result) => {
                return serde_json::from_value(result)
                    .map_err(|e| InfraError::Corrupt(format!("effect {key}: {e}")).into());
            }
            EffectRecord::InFlight => {
                return Err(EffectFailure::Later(RetryLater::NotYet(format!(
                    "effect {key} is running elsewhere"
                ))));
            }
            EffectRecord::Retaken => tracing::warn!(effect = key, "an earlier attempt died; calling again"),
            EffectRecord::Fresh => {}
        }
        let value = self.retry(key, call).await?;
        let json = serde_json::to_value(&value).map_err(|e| InfraError::Corrupt(e.to_string()))?;
        self.store.finish(process, key, &json).await?;
        Ok(value)
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
