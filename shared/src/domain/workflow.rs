//! What every process (a truck policy, a loan's insurance) keeps besides its own
//! state: the outbox of effects still to perform, the journal of calls made to
//! the partner, and the hold a person must lift when a call that changes
//! something at the partner ended without a known outcome.
//!
//! The step runner's engine (`services::engine`) performs the outbox; the
//! processes decide what each result, failure or uncertainty means.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::outcome::Outcome;

/// How an effect touches the partner, which decides how a failed attempt is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectClass {
    /// Changes nothing at the partner, or nothing that doing it again would harm
    /// (a download into S3, a premium calculation, a notice the bank de-duplicates):
    /// retried after any transient failure.
    Repeatable,
    /// Changes something at the partner (a sale, a payment request). Sent again only
    /// when the earlier attempt surely did not reach the partner, or the partner has
    /// confirmed it honours idempotency keys; otherwise the process is held for review.
    ChangesPartner,
}

/// An effect as the engine sees it.
pub trait EffectSpec: Clone + Serialize + DeserializeOwned + Send + Sync {
    /// Names this piece of work within its process (intent records, the journal).
    fn key(&self) -> String;
    /// The kind of call it makes that changes something at the partner (`init`,
    /// `documents`, `sale`, ...), if it makes one.
    fn changing_call(&self) -> Option<&'static str>;
    /// A notice to the bank (still sent while the process is held): its type and eventId.
    fn notice(&self) -> Option<(&'static str, &str)>;
    /// Whether the call moves money (a payment request or order, a sale): an operator's
    /// re-drive that leads to one needs that operator's confirmation for the item.
    fn moves_money(&self) -> bool;

    fn is_notice(&self) -> bool {
        self.notice().is_some()
    }

    /// What kind of work it is (its `action` as stored: `init`, `submit-documents`, ...),
    /// for metrics: the key names one piece of work, this names its kind.
    fn action(&self) -> String {
        let stored = serde_json::to_value(self).unwrap_or_default();
        stored["action"].as_str().unwrap_or("unknown").to_owned()
    }

    fn class(&self) -> EffectClass {
        match self.changing_call() {
            Some(_) => EffectClass::ChangesPartner,
            None => EffectClass::Repeatable,
        }
    }
}

/// How one attempt at an effect ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum CallOutcome {
    Done,
    /// Surely not received by the partner (or refused for a reason that changes nothing, e.g. 429).
    NotSent {
        detail: String,
    },
    /// May or may not have been received: a timeout, a 5xx or a reset after sending, or an
    /// attempt that died without recording its outcome.
    Ambiguous {
        detail: String,
    },
    /// The partner refused the request.
    Refused {
        detail: String,
    },
    /// A call that changes nothing at the partner failed; it is tried again.
    Failed {
        detail: String,
    },
    /// An ambiguous attempt's review was answered: it `happened` (or not), said `by` an
    /// operator or shown by a later hook from the partner.
    Resolved {
        happened: bool,
        by: String,
    },
}

/// One attempt at an effect, for the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub effect: String,
    pub attempt: u32,
    pub at_ms: u64,
    pub duration_ms: u64,
    #[serde(flatten)]
    pub outcome: CallOutcome,
}

/// A call whose outcome nobody knows: the process waits for a person (or a proof
/// from the partner) to say whether it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// The held effect's key; it stays first in the outbox.
    pub effect: String,
    /// The held attempt at it (0 in holds recorded before attempts were named: then the
    /// journal's last attempt). An answer names it and applies to this hold only.
    #[serde(default)]
    pub attempt: u32,
    pub since_ms: u64,
    pub detail: String,
}

/// How a person (or a proof from the partner) resolved a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "resolution", rename_all = "kebab-case")]
pub enum Resolution {
    /// The call reached the partner; `reference` is the partner's id where one is needed
    /// (MUST's scoringId after `init`; BIMA's policy id after a sale).
    Happened {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        number: Option<String>,
    },
    /// The call did not reach the partner: send it again.
    DidNotHappen,
}

/// Journal entries kept per process; the oldest are dropped beyond this.
const JOURNAL_LIMIT: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "E: DeserializeOwned"))]
pub struct Outbox<E> {
    pending: Vec<E>,
    #[serde(default)]
    calls: Vec<CallRecord>,
    #[serde(default)]
    review: Option<Review>,
    /// Calls that changed something at the partner, completed so far, by kind: when each
    /// attempt started. A hook known only by its content is new when it was received
    /// after one more call of the kind that causes it (see `applied_key`).
    #[serde(default)]
    calls_made: BTreeMap<String, Vec<u64>>,
}

impl<E> Default for Outbox<E> {
    fn default() -> Self {
        Outbox { pending: Vec::new(), calls: Vec::new(), review: None, calls_made: BTreeMap::new() }
    }
}

impl<E: EffectSpec> Outbox<E> {
    pub fn new(first: Vec<E>) -> Outbox<E> {
        Outbox { pending: first, ..Outbox::default() }
    }

    pub fn push(&mut self, effect: E) {
        if !self.is_pending(&effect.key()) {
            self.pending.push(effect);
        }
    }

    pub fn pending(&self) -> &[E] {
        &self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn is_pending(&self, key: &str) -> bool {
        self.pending.iter().any(|e| e.key() == key)
    }

    pub fn find(&self, key: &str) -> Option<&E> {
        self.pending.iter().find(|e| e.key() == key)
    }

    /// The next effect to perform: while held, only notices go out.
    pub fn next(&self) -> Option<&E> {
        match self.review {
            None => self.pending.first(),
            Some(_) => self.pending.iter().find(|e| e.is_notice()),
        }
    }

    /// Removes a performed effect; counts it when it `happened` and changed something at the partner.
    pub fn complete(&mut self, key: &str, happened: bool) {
        let changed = self.find(key).and_then(EffectSpec::changing_call).filter(|_| happened);
        self.pending.retain(|e| e.key() != key);
        if let Some(call) = changed {
            // The attempt that reached the partner: the last one the journal has (0, long
            // ago, when it has none).
            let started = self
                .calls
                .iter()
                .rev()
                .find(|c| {
                    c.effect == key && matches!(c.outcome, CallOutcome::Done | CallOutcome::Ambiguous { .. })
                })
                .map_or(0, |c| c.at_ms);
            self.calls_made.entry(call.to_owned()).or_default().push(started);
        }
        if self.review.as_ref().is_some_and(|r| r.effect == key) {
            self.review = None;
        }
    }

    /// Drops every pending effect but the notices (the process ended).
    pub fn drop_work(&mut self) {
        self.pending.retain(E::is_notice);
        self.review = None;
    }

    /// Keeps only the pending effects `keep` selects; a hold on one dropped is lifted
    /// (the call no longer matters).
    pub fn retain(&mut self, keep: impl Fn(&E) -> bool) {
        self.pending.retain(keep);
        if self.review.as_ref().is_some_and(|r| !self.is_pending(&r.effect)) {
            self.review = None;
        }
    }

    pub fn record(&mut self, call: CallRecord) {
        self.calls.push(call);
        if self.calls.len() > JOURNAL_LIMIT {
            self.calls.remove(0);
        }
    }

    pub fn calls(&self) -> &[CallRecord] {
        &self.calls
    }

    /// Calls of kind `call` (an effect's `changing_call`) known to have reached the partner.
    pub fn calls_made(&self, call: &str) -> u32 {
        self.calls_made.get(call).map_or(0, |starts| starts.len() as u32)
    }

    /// Calls of kind `call` made that had started by `at_ms` (all of them when `at_ms` is 0:
    /// not known).
    pub fn calls_made_by(&self, call: &str, at_ms: u64) -> usize {
        let starts = self.calls_made.get(call).map(Vec::as_slice).unwrap_or_default();
        starts.iter().filter(|started| at_ms == 0 || **started < at_ms).count()
    }

    /// When the attempt at the held call started (its last ambiguous attempt).
    pub fn held_since(&self) -> Option<u64> {
        let review = self.review.as_ref()?;
        let attempt = self
            .calls
            .iter()
            .rev()
            .find(|c| c.effect == review.effect && matches!(c.outcome, CallOutcome::Ambiguous { .. }));
        Some(attempt.map_or(review.since_ms, |c| c.at_ms))
    }

    /// Attempts at `key` that ended (and were recorded); the next one is this plus one.
    pub fn attempts(&self, key: &str) -> u32 {
        self.calls.iter().filter(|c| c.effect == key).map(|c| c.attempt).max().unwrap_or(0)
    }

    /// Attempts at `key` that failed since its last success (for giving up on a repeatable effect).
    pub fn failures(&self, key: &str) -> u32 {
        self.calls
            .iter()
            .rev()
            .filter(|c| c.effect == key)
            .take_while(|c| c.outcome != CallOutcome::Done)
            .count() as u32
    }

    pub fn review(&self) -> Option<&Review> {
        self.review.as_ref()
    }

    /// Holds the process on `key` (which stays pending) until a person or a proof resolves it.
    pub fn hold(&mut self, key: &str, since_ms: u64, detail: String) -> bool {
        if self.review.is_some() || !self.is_pending(key) {
            return false;
        }
        let attempt = self.attempts(key);
        self.review = Some(Review { effect: key.to_owned(), attempt, since_ms, detail });
        true
    }

    /// The held call and its attempt, as an answer must name them.
    pub fn held_attempt(&self) -> Option<(&str, u32)> {
        let review = self.review.as_ref()?;
        let attempt = if review.attempt == 0 { self.attempts(&review.effect) } else { review.attempt };
        Some((review.effect.as_str(), attempt))
    }

    /// Whether the hold is the one an answer about `attempt` at `effect` is for: an answer
    /// that meets a later hold (its own was lifted meanwhile) must not be applied to it.
    pub fn holds(&self, effect: &str, attempt: u32) -> bool {
        self.held_attempt() == Some((effect, attempt))
    }

    /// Lifts the hold so the held effect is attempted again.
    pub fn release(&mut self) -> Option<Review> {
        self.review.take()
    }

    /// Notes in the journal how the held call's review was answered.
    pub fn record_resolution(&mut self, happened: bool, by: &str) {
        let Some(review) = self.review.clone() else { return };
        let attempt = self.attempts(&review.effect);
        self.record(CallRecord {
            effect: review.effect,
            attempt,
            at_ms: review.since_ms,
            duration_ms: 0,
            outcome: CallOutcome::Resolved { happened, by: by.to_owned() },
        });
    }

    /// The effect a review holds, if it is still pending.
    pub fn held(&self) -> Option<&E> {
        self.review.as_ref().and_then(|r| self.find(&r.effect))
    }

    /// The key under which an external event counts as applied: its own id when the
    /// sender gave one per message; for an id derived from the content, the id and how
    /// many calls of the kind that causes it (`caused_by`) had started when it was
    /// received (`received_at_ms`; 0: all made so far). The partner retries a hook until
    /// answered, so a repeat is received before its next cause (though it may be applied
    /// after it); the same content after another such call (a second `upload-failed`
    /// after a re-sent document) is a new hook. A repeat received after our next call
    /// started cannot be told from a new hook: only a delivery id can (see the README).
    pub fn applied_key(
        &self,
        id: &str,
        by_content: bool,
        caused_by: Option<&str>,
        received_at_ms: u64,
    ) -> String {
        match (by_content, caused_by) {
            (false, _) => id.to_owned(),
            (true, None) => format!("{id}@"),
            (true, Some(call)) => format!("{id}@{call}{}", self.calls_made_by(call, received_at_ms)),
        }
    }
}

/// Who sent an event from outside, what it is and its id: how the history names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<'a> {
    /// `must`, `bank` or `operator`.
    pub from: &'static str,
    /// The hook's path, the bank event's type, the operator's request.
    pub kind: &'static str,
    pub id: &'a str,
    /// When our intake received it (0: not known; then when it was applied).
    pub at_ms: u64,
}

/// One thing that happened to a process, for the operator's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Happening {
    pub at_ms: u64,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum What {
    /// The process entered `stage` (as operators see it: `needs-review` while held).
    Stage { stage: String },
    /// An event from outside was applied (`at_ms` is when our intake received it).
    Event { from: String, kind: String, id: String, applied_ms: u64 },
    /// A notice went to the bank.
    Notice { kind: String, event_id: String },
    /// An operator acted on the process (`by` whom, which `action` on which `item`, and
    /// what they said: an answer, an override's reason, a confirmation).
    Operator { by: String, action: String, item: String, detail: String },
}

/// Happenings kept per process; beyond this the oldest but the first are dropped.
const HISTORY_LIMIT: usize = 200;

/// What happened to a process, oldest first: the stages it went through and the events
/// it got. Its calls are in the outbox's journal; both make the operator's timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History(Vec<Happening>);

impl History {
    pub fn entries(&self) -> &[Happening] {
        &self.0
    }

    /// Adds `happening` unless it is there already (a change replayed onto a fresh copy).
    pub fn note(&mut self, happening: Happening) {
        if self.0.contains(&happening) {
            return;
        }
        self.0.push(happening);
        if self.0.len() > HISTORY_LIMIT {
            // The first entry says when and how the process began: kept.
            self.0.remove(1);
        }
    }

    /// Notes an operator's action once: the same action given again (a retried command)
    /// is not noted twice.
    pub fn note_operator(&mut self, at_ms: u64, action: What) -> bool {
        if self.0.iter().any(|h| h.what == action) {
            return false;
        }
        self.note(Happening { at_ms, what: action });
        true
    }

    /// Notes that the process is now in `stage`, unless that is where it last was.
    pub fn note_stage(&mut self, at_ms: u64, stage: String) {
        if self.stage().is_some_and(|(last, _)| last == stage) {
            return;
        }
        self.note(Happening { at_ms, what: What::Stage { stage } });
    }

    /// The stage last noted, and since when.
    pub fn stage(&self) -> Option<(&str, u64)> {
        self.0.iter().rev().find_map(|h| match &h.what {
            What::Stage { stage } => Some((stage.as_str(), h.at_ms)),
            What::Event { .. } | What::Notice { .. } | What::Operator { .. } => None,
        })
    }

    /// The happening that notes `event` applied at `now_ms`.
    pub fn event(event: &Received<'_>, now_ms: u64) -> Happening {
        Happening {
            at_ms: if event.at_ms == 0 { now_ms } else { event.at_ms },
            what: What::Event {
                from: event.from.to_owned(),
                kind: event.kind.to_owned(),
                id: event.id.to_owned(),
                applied_ms: now_ms,
            },
        }
    }
}

/// A process the engine can drive: a state machine with an outbox.
pub trait Workflow: Clone + Serialize + DeserializeOwned + Send + Sync {
    type Event: Clone + Serialize + Send + Sync;
    type Effect: EffectSpec;

    /// Applies one event; on anything but `Advanced` the process is unchanged.
    fn apply(&mut self, event: Self::Event) -> Outcome;
    fn outbox(&self) -> &Outbox<Self::Effect>;
    fn outbox_mut(&mut self) -> &mut Outbox<Self::Effect>;
    fn history(&self) -> &History;
    fn history_mut(&mut self) -> &mut History;
    /// The stage as operators and indexes see it (`needs-review` while held).
    fn stage_name(&self) -> String;
    fn is_terminal(&self) -> bool;
    /// Who sent the event, when it comes from outside (hooks, bank and operator events).
    fn received(event: &Self::Event) -> Option<Received<'_>>;

    /// The process as it begins, at `at_ms`, with the event that began it in its history.
    fn begun(mut self, at_ms: u64, cause: &Received<'_>) -> Self {
        self.history_mut().note(History::event(cause, at_ms));
        let stage = self.stage_name();
        self.history_mut().note_stage(at_ms, stage);
        self
    }

    /// The work at the partners the process does from here with no event from outside:
    /// each effect's key, and whether it moves money. By default its pending effects; a
    /// process whose effects lead to others by themselves adds those.
    fn work_ahead(&self) -> Vec<(String, bool)> {
        pending_work(self.outbox())
    }

    /// The event that records an effect's permanent failure.
    fn effect_failed(effect: &Self::Effect, error: super::bank::ErrorReport) -> Self::Event;
    /// The event that holds the process because `effect`'s outcome is unknown.
    fn effect_uncertain(effect: &str, at_ms: u64, detail: String) -> Self::Event;
}

/// The pending effects that are work at a partner (notices aside): key, and whether it moves
/// money. None while the process is held: a drive then sends notices only.
pub fn pending_work<E: EffectSpec>(outbox: &Outbox<E>) -> Vec<(String, bool)> {
    if outbox.review().is_some() {
        return Vec::new();
    }
    outbox.pending().iter().filter(|e| !e.is_notice()).map(|e| (e.key(), e.moves_money())).collect()
}

/// The stage name of a serde-named stage enum.
pub fn stage_name<S: Serialize>(stage: &S, held: bool) -> String {
    if held {
        return "needs-review".into();
    }
    serde_json::to_value(stage).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A notice's id, the same whenever the same cause produces the same notice: the bank
/// de-duplicates by it, and two runners racing on one process cannot give two
/// different notices one id.
pub fn notice_id(process: &str, cause: &str, kind: &str, nth: usize) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{cause}\n{kind}\n{nth}").as_bytes());
    format!("{process}-{}", &hex::encode(digest)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Toy {
        Call(String),
        Notice(String),
    }

    impl EffectSpec for Toy {
        fn key(&self) -> String {
            match self {
                Toy::Call(k) | Toy::Notice(k) => k.clone(),
            }
        }
        fn changing_call(&self) -> Option<&'static str> {
            match self {
                Toy::Call(_) => Some("call"),
                Toy::Notice(_) => None,
            }
        }
        fn notice(&self) -> Option<(&'static str, &str)> {
            match self {
                Toy::Notice(id) => Some(("toy.notice", id)),
                Toy::Call(_) => None,
            }
        }
        fn moves_money(&self) -> bool {
            false
        }
    }

    fn call(effect: &str, attempt: u32, outcome: CallOutcome) -> CallRecord {
        CallRecord { effect: effect.into(), attempt, at_ms: 1, duration_ms: 1, outcome }
    }

    #[test]
    fn a_held_outbox_sends_only_notices_until_the_hold_is_lifted() {
        let mut o = Outbox::new(vec![Toy::Call("sale".into()), Toy::Notice("n1".into())]);
        assert_eq!(o.next(), Some(&Toy::Call("sale".into())));
        assert!(o.hold("sale", 5, "timeout after sending".into()));
        assert!(!o.hold("sale", 6, "again".into()), "one hold at a time");
        assert_eq!(o.next(), Some(&Toy::Notice("n1".into())));
        o.complete("n1", true);
        assert_eq!(o.next(), None, "the held call waits");
        assert_eq!(o.held(), Some(&Toy::Call("sale".into())));
        o.release();
        assert_eq!(o.next(), Some(&Toy::Call("sale".into())));
    }

    #[test]
    fn a_repeat_received_before_the_next_call_started_is_the_same_hook_though_applied_after_it() {
        let mut o = Outbox::new(vec![Toy::Call("init".into())]);
        o.record(call("init", 1, CallOutcome::Done));
        o.calls.last_mut().unwrap().at_ms = 100;
        o.complete("init", true);
        assert_eq!(
            o.applied_key("h", true, Some("call"), 90),
            "h@call0",
            "received before the call: its cause came earlier"
        );
        assert_eq!(o.applied_key("h", true, Some("call"), 110), "h@call1", "received after it: new");
        assert_eq!(o.applied_key("h", true, Some("call"), 0), "h@call1", "reception not known: all calls");
    }

    #[test]
    fn completing_the_held_effect_lifts_the_hold_and_counts_the_change() {
        let mut o = Outbox::new(vec![Toy::Call("init".into())]);
        assert_eq!(o.applied_key("h", true, Some("call"), 0), "h@call0");
        o.hold("init", 1, "reset".into());
        o.complete("init", true);
        assert!(o.review().is_none());
        assert_eq!(
            o.applied_key("h", true, Some("call"), 0),
            "h@call1",
            "new after another call that causes it"
        );
        assert_eq!(
            o.applied_key("h", true, Some("other"), 0),
            "h@other0",
            "not after a call of another kind"
        );
        assert_eq!(o.applied_key("h", true, None, 0), "h@", "never new when nothing of ours causes it");
        assert_eq!(o.applied_key("h", false, Some("call"), 0), "h", "delivery ids are ids");
        o.push(Toy::Notice("n".into()));
        o.complete("n", true);
        assert_eq!(
            o.applied_key("h", true, Some("call"), 0),
            "h@call1",
            "notices change nothing at the partner"
        );
        o.push(Toy::Call("refused".into()));
        o.complete("refused", false);
        assert_eq!(o.applied_key("h", true, Some("call"), 0), "h@call1", "a refused call changed nothing");
    }

    #[test]
    fn attempts_and_failures_come_from_the_journal() {
        let mut o: Outbox<Toy> = Outbox::default();
        assert_eq!(o.attempts("sale"), 0);
        o.record(call("sale", 1, CallOutcome::NotSent { detail: "refused".into() }));
        o.record(call("dl", 1, CallOutcome::Done));
        o.record(call("dl", 2, CallOutcome::Ambiguous { detail: "timeout".into() }));
        o.record(call("dl", 3, CallOutcome::NotSent { detail: "timeout".into() }));
        assert_eq!((o.attempts("sale"), o.attempts("dl")), (1, 3));
        assert_eq!(o.failures("dl"), 2, "counted since the last success");
        for n in 0..JOURNAL_LIMIT as u32 {
            o.record(call("x", n + 1, CallOutcome::Done));
        }
        assert_eq!(o.calls().len(), JOURNAL_LIMIT);
    }

    #[test]
    fn notice_ids_depend_on_the_cause_not_on_the_order() {
        let a = notice_id("REQ-1", "hook-a", "truck.offer", 0);
        assert_eq!(a, notice_id("REQ-1", "hook-a", "truck.offer", 0));
        assert_ne!(a, notice_id("REQ-1", "hook-b", "truck.offer", 0));
        assert_ne!(a, notice_id("REQ-1", "hook-a", "truck.paid", 0));
        assert_ne!(a, notice_id("REQ-1", "hook-a", "truck.offer", 1));
        assert!(a.starts_with("REQ-1-") && a.len() == "REQ-1-".len() + 16);
    }
}
