//! What an operator does with what [`super::keep`] kept, from the `polis-ops` command
//! or the replay Lambda: re-drive one item, answer one review, retry pending archives.
//!
//! Nothing here acts unless told exactly what, and nothing moves money by itself:
//! - every re-drive first has a [`Plan`]: what the item becomes, which calls it leads
//!   to on the process as it stands, whether one of them moves money (a payment request
//!   or order, a sale); `--dry-run` shows it and changes nothing;
//! - an item that leads to money needs the operator's confirmation of that item (the
//!   plan's code, which changes when what it leads to changes), and is refused when it
//!   is older than the configured age;
//! - a hook kept by an intake check (a payment link elsewhere, a body naming another
//!   scoringId, an unusable `webhook-id`) passes every check again, and goes only by
//!   its id with an override whose reason is recorded; a bulk re-drive takes only what
//!   needs neither;
//! - every action is written to the process's history (who, when, what, which item);
//!   each is idempotent: its ids derive from the item (an answer's from the process,
//!   the held call and its attempt), so the same action given twice acts once.
//!
//! A replayed input that fails again later is kept under its next replay number, so
//! releasing the old record never races with keeping the new one.

use std::time::Duration;

use serde::Serialize;

use super::truck::hook_intake::{check_body, intake_check, store_and_enqueue};
use super::truck::runner::message_group;
use crate::domain::bank::BankEvent;
use crate::domain::ids::{ProcessId, ScoringId};
use crate::domain::loan::bank::LoanBankEvent;
use crate::domain::loan::process::{LoanEvent, LoanProcess};
use crate::domain::must::hook::HookPayload;
use crate::domain::outcome::Outcome;
use crate::domain::truck::bank::TruckBankEvent;
use crate::domain::truck::process::{TruckEvent, TruckProcess};
use crate::domain::workflow::{Resolution, What, Workflow};
use crate::keys::{self, ProcessKey};
use crate::ports::{
    now_ms, BankOutbox, HookStore, InfraError, KeptOrigin, LoanMessage, LoanQueue, ProcessStore,
    QuarantineStore, Quarantined, ReceivedHook, Recorded, SaveError, StoredProcess, TruckMessage, TruckQueue,
    Versioned,
};

/// What a bulk re-drive did with each kept item.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    pub replayed: Vec<String>,
    /// Still not processable (or waiting for a person): id and why.
    pub still_failing: Vec<(String, String)>,
    /// Not re-driven in bulk: each needs its own command (it moves money, or it was kept by
    /// an intake check): id and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs_its_own_command: Vec<(String, String)>,
}

/// Who acts, and what they said about the item they name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    /// The operator, as recorded in the process's history.
    pub by: String,
    /// Re-drive a hook an intake check kept, for this reason (recorded).
    pub override_reason: Option<String>,
    /// The plan's confirmation code, for an item that leads to money.
    pub confirm: Option<String>,
    /// Show the plan; change nothing.
    pub dry_run: bool,
}

/// What re-driving one item would do, on the process as it stands now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The kept item's id, or the dead letter's message id.
    pub item: String,
    /// `hook`, `bank-event`, `process-event`, `review`, `archive-pending`, or
    /// `dead-letter:{queue}`.
    pub source: String,
    pub process: Option<ProcessKey>,
    /// What it is, and what the process would do with it.
    pub becomes: String,
    /// The work it leads to at the partners (effect keys: `payment-ingostrah`, `sale`, ...).
    pub leads_to: Vec<String>,
    pub moves_money: bool,
    /// The intake check that kept it: re-driven only by its id with an override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_override: Option<String>,
    /// What the operator confirms it with, when it moves money.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<String>,
    /// Why it cannot be re-driven now (it still fails its checks, waits for an answer, is
    /// too old to move money).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl Plan {
    /// Whether a bulk re-drive may take it: nothing to confirm, override or refuse.
    pub fn is_routine(&self) -> bool {
        self.refused.is_none() && self.needs_override.is_none() && !self.moves_money
    }

    /// Why the approval given does not let the item go (`None`: it may).
    pub fn blocked(&self, approval: &Approval) -> Option<String> {
        if let Some(refused) = &self.refused {
            return Some(refused.clone());
        }
        if let (Some(check), None) = (&self.needs_override, &approval.override_reason) {
            return Some(format!(
                "kept by an intake check ({check}): re-drive it by its id with an override and your reason"
            ));
        }
        match (&self.confirmation, &approval.confirm) {
            (Some(code), Some(given)) if code == given => None,
            (Some(code), Some(_)) => Some(format!(
                "the confirmation does not match this item's plan (it is {code} now: look at the dry run again)"
            )),
            (Some(_), None) => Some(format!(
                "it leads to {} (money): confirm it with the code its dry run shows",
                self.leads_to.join(", ")
            )),
            (None, _) => None,
        }
    }
}

/// What an operator's action did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acted {
    pub plan: Plan,
    /// Whether anything was done (false: a dry run).
    pub done: bool,
}

/// Where a dead letter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceQueue {
    Truck,
    Loan,
    BankEvents,
}

impl SourceQueue {
    pub const ALL: [SourceQueue; 3] = [SourceQueue::Truck, SourceQueue::Loan, SourceQueue::BankEvents];

    pub fn name(self) -> &'static str {
        match self {
            SourceQueue::Truck => "truck",
            SourceQueue::Loan => "loan",
            SourceQueue::BankEvents => "bank-events",
        }
    }

    pub fn parse(text: &str) -> Result<SourceQueue, String> {
        SourceQueue::ALL
            .into_iter()
            .find(|q| q.name() == text)
            .ok_or_else(|| format!("{text:?} is no queue: truck, loan or bank-events"))
    }
}

pub struct Replay<S, P, L, B> {
    pub store: S,
    pub trucks: P,
    pub loans: L,
    /// The bank-events queue, where a corrected bank event goes again.
    pub bank_events: B,
    /// The hosts a payment link may point to (the intake's `PaymentLinkHosts`).
    pub payment_link_hosts: Vec<String>,
    /// An item that leads to money and is older than this is refused: the customer's
    /// intent, and the offer it was for, have gone stale.
    pub money_max_age: Duration,
}

impl<S, P, L, B> Replay<S, P, L, B>
where
    S: QuarantineStore + HookStore + ProcessStore + Sync,
    P: TruckQueue + Sync,
    L: LoanQueue + Sync,
    B: BankOutbox + Sync,
{
    /// Re-drives every kept item that a bulk re-drive may take (see [`Plan::is_routine`]);
    /// lists the rest with why.
    pub async fn routine(&self, by: &str) -> Result<ReplayReport, InfraError> {
        self.routine_where(by, false, |_| true).await
    }

    /// As [`Replay::routine`], for the kept items `chosen` picks; a dry run only sorts them
    /// (`replayed`: those it would re-drive). One item per process per run: each plan is made
    /// on the process as it stands, and an item re-driven before it would change that.
    pub async fn routine_where(
        &self,
        by: &str,
        dry_run: bool,
        chosen: impl Fn(&Quarantined) -> bool,
    ) -> Result<ReplayReport, InfraError> {
        let mut report = ReplayReport::default();
        let approval = Approval { by: by.to_owned(), ..Approval::default() };
        let mut touched: Vec<ProcessKey> = Vec::new();
        for item in self.store.list_quarantined().await?.into_iter().filter(|i| chosen(i)) {
            let plan = self.plan_item(&item).await?;
            if let Some(why) = &plan.refused {
                report.still_failing.push((item.id, why.clone()));
                continue;
            }
            if !plan.is_routine() {
                let why = plan.blocked(&approval).unwrap_or_default();
                report.needs_its_own_command.push((item.id, why));
                continue;
            }
            if let Some(process) = &plan.process {
                if touched.contains(process) {
                    let why =
                        format!("another item of {process} went in this run: run again once it is applied");
                    report.needs_its_own_command.push((item.id, why));
                    continue;
                }
                touched.push(process.clone());
            }
            if dry_run {
                report.replayed.push(item.id);
                continue;
            }
            match self.act(&item, plan, &approval).await? {
                Ok(_) => report.replayed.push(item.id),
                Err(why) => report.still_failing.push((item.id, why)),
            }
        }
        Ok(report)
    }

    /// The plan of the kept item `id` (`Ok(Err)`: no such item).
    pub async fn plan(&self, id: &str) -> Result<Result<Plan, String>, InfraError> {
        match self.find(id).await? {
            Some(item) => Ok(Ok(self.plan_item(&item).await?)),
            None => Ok(Err(format!("nothing is kept under {id} (re-driven or released already?)"))),
        }
    }

    /// Re-drives the kept item `id` as `approval` allows: a dry run shows its plan only.
    pub async fn redrive(&self, id: &str, approval: &Approval) -> Result<Result<Acted, String>, InfraError> {
        let Some(item) = self.find(id).await? else {
            return Ok(Err(format!("nothing is kept under {id} (re-driven or released already?)")));
        };
        let plan = self.plan_item(&item).await?;
        if approval.dry_run {
            return Ok(Ok(Acted { plan, done: false }));
        }
        if let Some(why) = plan.blocked(approval) {
            return Ok(Err(why));
        }
        self.act(&item, plan, approval).await
    }

    async fn find(&self, id: &str) -> Result<Option<Quarantined>, InfraError> {
        Ok(self.store.list_quarantined().await?.into_iter().find(|i| i.id == id))
    }

    /// Re-drives the item, notes the action in its process's history, releases the item
    /// (a failure on the way leaves it kept: the same command again re-drives it under the
    /// same ids, and notes it once).
    async fn act(
        &self,
        item: &Quarantined,
        plan: Plan,
        approval: &Approval,
    ) -> Result<Result<Acted, String>, InfraError> {
        if let Err(why) = self.send(item).await? {
            return Ok(Err(why));
        }
        self.note_redrive("redrive", &plan, approval).await?;
        self.store.release(&item.id).await?;
        tracing::info!(kept_id = %item.id, by = %approval.by, "re-driven");
        Ok(Ok(Acted { plan, done: true }))
    }

    /// An operator's answer to the review of `attempt` at the held call `effect`: it happened
    /// (with the partner's reference where one is needed) or it did not (it is sent again).
    /// The answer's id derives from the process, the call and the attempt: given twice, it is
    /// applied once; naming a call or attempt that is not the one held, it is refused.
    pub async fn resolve(
        &self,
        process: &ProcessKey,
        effect: &str,
        attempt: u32,
        resolution: Resolution,
        by: &str,
    ) -> Result<Result<(), String>, InfraError> {
        let key = process;
        let (held, held_attempt) = match self.held_on(key).await? {
            None => return Ok(Err(format!("{key} does not exist"))),
            Some(None) => return Ok(Err(format!("{key} is not held for review"))),
            Some(Some(held)) => held,
        };
        if (held.as_str(), held_attempt) != (effect, attempt) {
            return Ok(Err(format!(
                "{key} holds {held} attempt {held_attempt}, not {effect} attempt {attempt}: look at it again (polis-ops list)"
            )));
        }
        tracing::info!(process = %key, %effect, attempt, "answering a review");
        let answer = match &resolution {
            Resolution::DidNotHappen => "did-not-happen".to_owned(),
            Resolution::Happened { reference, number } => {
                let named: Vec<&str> = reference.iter().chain(number.iter()).map(String::as_str).collect();
                format!("happened {}", named.join(" ")).trim_end().to_owned()
            }
        };
        let id = format!("review-{effect}-a{attempt}");
        let kept = self.store.list_quarantined().await?;
        // Listed before the answer goes out: a review the answer leads to is not released.
        let open: Vec<String> = kept
            .iter()
            .filter(|item| {
                matches!(&item.origin, KeptOrigin::Review { process, effect: e, attempt: a }
                    if process == key && e == effect && *a <= attempt)
            })
            .map(|item| item.id.clone())
            .collect();
        match process {
            ProcessKey::Truck(pid) => {
                // The answer goes to the process's own group: MUST's first hooks for a
                // scoringId we do not know yet wait in the scoringId's group until the
                // answer maps it (behind them, the answer would wait for them). Those
                // already kept meanwhile are queued again, to wait for it likewise.
                let scoring = match &resolution {
                    Resolution::Happened { reference: Some(sid), .. } if effect == "init" => {
                        ScoringId::parse(sid).ok()
                    }
                    _ => None,
                };
                let event = TruckEvent::ReviewResolved { id, effect: effect.to_owned(), attempt, resolution };
                self.to_truck(pid, event, 0).await?;
                if let Some(sid) = scoring {
                    self.bring_first_hooks(&kept, &sid, by).await?;
                }
            }
            ProcessKey::Loan(number) => {
                let event = LoanEvent::ReviewResolved { id, effect: effect.to_owned(), attempt, resolution };
                self.to_loan(number, event).await?;
            }
        }
        let action = What::Operator {
            by: by.to_owned(),
            action: "resolve".into(),
            item: format!("{effect} #{attempt}"),
            detail: answer,
        };
        self.note(key, action).await?;
        for id in open {
            self.store.release(&id).await?;
        }
        Ok(Ok(()))
    }

    /// MUST's first hooks for a scoringId an answered `init` names, kept while nobody knew
    /// it: re-driven after the answer when a bulk re-drive could take them (they pass the
    /// intake's checks again); any other stays kept for its own command.
    async fn bring_first_hooks(
        &self,
        kept: &[Quarantined],
        sid: &ScoringId,
        by: &str,
    ) -> Result<(), InfraError> {
        let approval = Approval { by: by.to_owned(), ..Approval::default() };
        for item in kept {
            if !matches!(&item.origin, KeptOrigin::Hook { scoring_id, .. } if scoring_id == sid) {
                continue;
            }
            let plan = self.plan_item(item).await?;
            if !plan.is_routine() {
                tracing::warn!(kept_id = %item.id, "a first hook stays kept: it needs its own command");
                continue;
            }
            if let Err(why) = self.act(item, plan, &approval).await? {
                tracing::warn!(kept_id = %item.id, %why, "a first hook stays kept");
            }
        }
        Ok(())
    }

    /// The held call and attempt of the process (`None` when the process does not exist).
    async fn held_on(&self, process: &ProcessKey) -> Result<Option<Option<(String, u32)>>, InfraError> {
        fn held<W: Workflow>(p: Versioned<W>) -> Option<(String, u32)> {
            p.value.outbox().held_attempt().map(|(effect, attempt)| (effect.to_owned(), attempt))
        }
        Ok(match process {
            ProcessKey::Truck(_) => self.store.load::<TruckProcess>(process).await?.map(held),
            ProcessKey::Loan(_) => self.store.load::<LoanProcess>(process).await?.map(held),
        })
    }

    /// Writes an operator's action into the process's history (once, however often it is given).
    async fn note(&self, process: &ProcessKey, action: What) -> Result<(), InfraError> {
        match process {
            ProcessKey::Truck(_) => note_on::<TruckProcess, S>(&self.store, process, action).await,
            ProcessKey::Loan(_) => note_on::<LoanProcess, S>(&self.store, process, action).await,
        }
    }

    /// Queues an event to a truck process in its message group, under a deduplication id
    /// that derives from the event (the same event queued again is dropped by the queue
    /// within five minutes, and applied once by the process after that).
    async fn to_truck(&self, pid: &ProcessId, event: TruckEvent, replays: u32) -> Result<(), InfraError> {
        let group = message_group(&self.store, pid).await?;
        let dedup = format!("replay-{}-r{replays}", short(&format!("{pid}\n{event:?}")));
        let message = TruckMessage::BankEvent { process_id: pid.clone(), event, replays };
        self.trucks.enqueue(&message, &group, &dedup).await
    }

    async fn to_loan(&self, number: &str, event: LoanEvent) -> Result<(), InfraError> {
        let dedup = format!("replay-{}", short(&format!("{number}\n{event:?}")));
        let message = LoanMessage::Event { loan_number: number.to_owned(), event };
        self.loans.enqueue(&message, number, &dedup).await
    }

    /// What re-driving `item` would do now.
    pub async fn plan_item(&self, item: &Quarantined) -> Result<Plan, InfraError> {
        let mut plan =
            Plan { item: item.id.clone(), source: item.origin.source().to_owned(), ..Plan::default() };
        match &item.origin {
            KeptOrigin::Hook { kind, scoring_id, hook_id, by_content, check, .. } => {
                if let Some(problem) = check_body(*kind, item.body.as_bytes()) {
                    plan.refused = Some(problem);
                    return Ok(plan);
                }
                let now = intake_check(*kind, scoring_id, item.body.as_bytes(), &self.payment_link_hosts);
                plan.needs_override = check
                    .map(|c| format!("{c:?}: {}", item.reason))
                    .or_else(|| now.map(|(_, reason)| reason));
                let Ok(payload) = HookPayload::parse(*kind, item.body.as_bytes()) else {
                    return Ok(plan);
                };
                let event = TruckEvent::Hook {
                    id: hook_id.clone(),
                    by_content: *by_content,
                    payload,
                    received_at_ms: item.received_at_ms,
                    scoring_id: Some(scoring_id.clone()),
                };
                match self.store.resolve_alias(&keys::scoring_alias(scoring_id)).await? {
                    Some(process) => self.preview(&mut plan, &process, Change::Apply(Event::Truck(event))).await?,
                    None => {
                        plan.becomes = format!(
                            "a {} hook for scoringId {scoring_id}, which no process has yet: kept again unless its process appears",
                            kind.path()
                        )
                    }
                }
            }
            KeptOrigin::UnroutedHook { .. } => {
                plan.refused = Some(format!(
                    "{}: no process can have it; tell MUST which process it was for",
                    item.reason
                ))
            }
            KeptOrigin::BankEvent { .. } => match BankEvent::accept(&item.body).map_err(problems_of) {
                Err(problems) => plan.refused = Some(problems),
                Ok(BankEvent::Truck(TruckBankEvent::PolicyRequested { request, .. })) => {
                    let process = ProcessKey::Truck(request.request_id.clone());
                    match self.store.load::<TruckProcess>(&process).await? {
                        Some(_) => self.preview(&mut plan, &process, Change::Drive).await?,
                        None => {
                            describe_new(&mut plan, &TruckProcess::start(*request), "a new truck request")
                        }
                    }
                }
                Ok(BankEvent::Truck(event)) => {
                    let process = ProcessKey::Truck(event.process_id().clone());
                    if let Ok(event) = crate::services::bank_intake::truck_event_of(event) {
                        self.preview(&mut plan, &process, Change::Apply(Event::Truck(event))).await?;
                    }
                }
                Ok(BankEvent::Loan(LoanBankEvent::Issued(loan))) => {
                    let process = ProcessKey::Loan(loan.loan_number.clone());
                    match self.store.load::<LoanProcess>(&process).await? {
                        Some(_) => self.preview(&mut plan, &process, Change::Drive).await?,
                        None => describe_new(&mut plan, &LoanProcess::start(*loan), "a new loan to insure"),
                    }
                }
            },
            KeptOrigin::Event { process, .. } => match process {
                ProcessKey::Truck(_) => match serde_json::from_str::<TruckEvent>(&item.body) {
                    Ok(event) => self.preview(&mut plan, process, Change::Apply(Event::Truck(event))).await?,
                    Err(e) => plan.refused = Some(format!("not a truck process event: {e}")),
                },
                ProcessKey::Loan(_) => match serde_json::from_str::<LoanEvent>(&item.body) {
                    Ok(event) => self.preview(&mut plan, process, Change::Apply(Event::Loan(event))).await?,
                    // A loan's own effect results are re-derived by driving it again.
                    Err(_) => self.preview(&mut plan, process, Change::Drive).await?,
                },
            },
            KeptOrigin::Review { process, effect, .. } => {
                plan.process = Some(process.clone());
                match self.held_on(process).await?.flatten() {
                    // A hold lifted meanwhile (a hook proved the call, or the answer came)
                    // whose record outlived it: nothing waits for a person any more.
                    Some((held, attempt)) if held == *effect => {
                        plan.refused = Some(format!(
                            "{process} is held: was {effect} (attempt {attempt}) received by the partner? answer with \
                             `polis-ops resolve {process} {attempt} happened|did-not-happen`"
                        ))
                    }
                    _ => plan.becomes = "released: the hold it was kept for is lifted".into(),
                }
            }
            KeptOrigin::ArchivePending { process, .. } => {
                let change = match process {
                    ProcessKey::Truck(_) => {
                        Change::Apply(Event::Truck(TruckEvent::RetryArchive { id: retry_id(item) }))
                    }
                    ProcessKey::Loan(_) => {
                        Change::Apply(Event::Loan(LoanEvent::RetryArchive { id: retry_id(item) }))
                    }
                };
                self.preview(&mut plan, process, change).await?;
            }
        }
        self.money_rule(&mut plan, item.received_at_ms);
        Ok(plan)
    }

    /// The plan of a message from a dead-letter queue, `sent_ms` when it was first sent.
    pub async fn plan_message(
        &self,
        queue: SourceQueue,
        message_id: &str,
        body: &str,
        sent_ms: u64,
    ) -> Result<Plan, InfraError> {
        let as_kept = |origin: KeptOrigin| Quarantined {
            id: message_id.to_owned(),
            origin,
            reason: "dead-lettered".into(),
            body: body.to_owned(),
            received_at_ms: sent_ms,
        };
        let unreadable = |e: serde_json::Error| Plan {
            item: message_id.to_owned(),
            source: "dead-letter".into(),
            refused: Some(format!("not a {} queue message: {e}", queue.name())),
            ..Plan::default()
        };
        let mut plan = match queue {
            SourceQueue::BankEvents => {
                let origin = KeptOrigin::BankEvent { event_id: String::new(), event_type: String::new() };
                self.plan_item(&as_kept(origin)).await?
            }
            SourceQueue::Truck => match serde_json::from_str::<TruckMessage>(body) {
                Err(e) => unreadable(e),
                Ok(TruckMessage::StoredHook(reference)) => {
                    let body = self.store.hook_body(&reference).await?.unwrap_or_default();
                    let origin = reference.kept(None);
                    self.plan_item(&Quarantined { body, ..as_kept(origin) }).await?
                }
                Ok(TruckMessage::Hook(hook)) => {
                    let origin = hook.reference().kept(None);
                    self.plan_item(&Quarantined { body: hook.body, ..as_kept(origin) }).await?
                }
                Ok(TruckMessage::BankEvent { process_id, event, replays }) => {
                    let origin = KeptOrigin::Event {
                        process: ProcessKey::Truck(process_id),
                        event_id: String::new(),
                        replays,
                    };
                    let body = serde_json::to_string(&event).unwrap_or_default();
                    self.plan_item(&Quarantined { body, ..as_kept(origin) }).await?
                }
                Ok(TruckMessage::Drive { process_id }) => {
                    let mut plan = Plan { item: message_id.to_owned(), ..Plan::default() };
                    self.preview(&mut plan, &ProcessKey::Truck(process_id), Change::Drive).await?;
                    self.money_rule(&mut plan, sent_ms);
                    plan
                }
            },
            SourceQueue::Loan => match serde_json::from_str::<LoanMessage>(body) {
                Err(e) => unreadable(e),
                Ok(LoanMessage::Drive { loan_number }) => {
                    let mut plan = Plan { item: message_id.to_owned(), ..Plan::default() };
                    self.preview(&mut plan, &ProcessKey::Loan(loan_number), Change::Drive).await?;
                    self.money_rule(&mut plan, sent_ms);
                    plan
                }
                Ok(LoanMessage::Event { loan_number, event }) => {
                    let origin = KeptOrigin::Event {
                        process: ProcessKey::Loan(loan_number),
                        event_id: String::new(),
                        replays: 0,
                    };
                    let body = serde_json::to_string(&event).unwrap_or_default();
                    self.plan_item(&Quarantined { body, ..as_kept(origin) }).await?
                }
            },
        };
        plan.item = message_id.to_owned();
        plan.source = format!("dead-letter:{}", queue.name());
        Ok(plan)
    }

    /// An item that leads to money needs its confirmation code, and is refused past the
    /// age a re-drive may have (`since_ms`: when it first came).
    fn money_rule(&self, plan: &mut Plan, since_ms: u64) {
        if !plan.moves_money {
            return;
        }
        let age = Duration::from_millis(now_ms().saturating_sub(since_ms));
        if age > self.money_max_age && plan.refused.is_none() {
            plan.refused = Some(format!(
                "it would lead to {} (money) and came {} h ago, over the {} h a re-drive may be",
                plan.leads_to.join(", "),
                age.as_secs() / 3600,
                self.money_max_age.as_secs() / 3600
            ));
        }
        plan.confirmation =
            Some(short(&format!("{}\n{}", plan.item, plan.leads_to.join(",")))[..8].to_owned());
    }

    /// Records that a dead letter of `plan.process` is moved back, by whom.
    pub async fn note_message(&self, plan: &Plan, approval: &Approval) -> Result<(), InfraError> {
        self.note_redrive("redrive-message", plan, approval).await
    }

    /// Notes a re-drive in the history of the process it concerns (if it exists yet): what
    /// the item becomes, and the override or confirmation given.
    async fn note_redrive(&self, action: &str, plan: &Plan, approval: &Approval) -> Result<(), InfraError> {
        let Some(process) = &plan.process else { return Ok(()) };
        let mut detail = plan.becomes.clone();
        if let Some(reason) = &approval.override_reason {
            detail.push_str(&format!("; override: {reason}"));
        }
        if plan.confirmation.is_some() {
            detail.push_str(&format!("; confirmed: leads to {}", plan.leads_to.join(", ")));
        }
        let action = What::Operator {
            by: approval.by.clone(),
            action: action.into(),
            item: plan.item.clone(),
            detail,
        };
        self.note(process, action).await
    }

    /// Fills `plan` with what `change` would do to `process` as it stands.
    async fn preview(&self, plan: &mut Plan, process: &ProcessKey, change: Change) -> Result<(), InfraError> {
        plan.process = Some(process.clone());
        match process {
            ProcessKey::Truck(_) => {
                let event = match change {
                    Change::Apply(Event::Truck(event)) => Some(event),
                    _ => None,
                };
                let current = self.store.load::<TruckProcess>(process).await?.map(|p| p.value);
                preview_on(plan, current, event);
            }
            ProcessKey::Loan(_) => {
                let event = match change {
                    Change::Apply(Event::Loan(event)) => Some(event),
                    _ => None,
                };
                let current = self.store.load::<LoanProcess>(process).await?.map(|p| p.value);
                preview_on(plan, current, event);
            }
        }
        Ok(())
    }

    /// Sends `item` the way it first came in, after its checks. `Ok(Err(why))`: it still
    /// fails them, or waits for a person, and stays kept.
    async fn send(&self, item: &Quarantined) -> Result<Result<(), String>, InfraError> {
        match &item.origin {
            KeptOrigin::Hook { kind, scoring_id, hook_id, by_content, replays, .. } => {
                if let Some(problem) = check_body(*kind, item.body.as_bytes()) {
                    return Ok(Err(problem));
                }
                // Received when it first came (what proves a call, and tells a repeat); queued now.
                let hook = ReceivedHook {
                    scoring_id: scoring_id.clone(),
                    kind: *kind,
                    hook_id: hook_id.clone(),
                    by_content: *by_content,
                    body: item.body.clone(),
                    received_at_ms: item.received_at_ms,
                    replays: replays + 1,
                    requeued_at_ms: now_ms(),
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
            KeptOrigin::UnroutedHook { .. } => Ok(Err(item.reason.clone())),
            KeptOrigin::BankEvent { .. } => match BankEvent::accept(&item.body).map_err(problems_of) {
                Ok(_) => {
                    let event: serde_json::Value = serde_json::from_str(&item.body).unwrap_or_default();
                    self.bank_events.publish(&event).await?;
                    Ok(Ok(()))
                }
                Err(problems) => Ok(Err(problems)),
            },
            KeptOrigin::Event { process, replays, .. } => match process {
                ProcessKey::Truck(pid) => match serde_json::from_str::<TruckEvent>(&item.body) {
                    Ok(event) => self.to_truck(pid, event, replays + 1).await.map(Ok),
                    Err(e) => Ok(Err(format!("not a truck process event: {e}"))),
                },
                ProcessKey::Loan(number) => match serde_json::from_str::<LoanEvent>(&item.body) {
                    Ok(event) => self.to_loan(number, event).await.map(Ok),
                    // A loan's own effect results are re-derived by driving it again.
                    Err(_) => {
                        let dedup = format!("replay-{}", short(&item.id));
                        self.loans
                            .enqueue(&LoanMessage::Drive { loan_number: number.clone() }, number, &dedup)
                            .await?;
                        Ok(Ok(()))
                    }
                },
            },
            KeptOrigin::Review { process, effect, .. } => {
                if self.held_on(process).await?.flatten().is_some_and(|(held, _)| held == *effect) {
                    return Ok(Err(format!(
                        "{process} is held for review: answer it with `polis-ops resolve`"
                    )));
                }
                Ok(Ok(()))
            }
            KeptOrigin::ArchivePending { process, .. } => {
                let id = retry_id(item);
                match process {
                    ProcessKey::Truck(pid) => {
                        self.to_truck(pid, TruckEvent::RetryArchive { id }, 0).await.map(Ok)
                    }
                    ProcessKey::Loan(number) => {
                        self.to_loan(number, LoanEvent::RetryArchive { id }).await.map(Ok)
                    }
                }
            }
        }
    }
}

/// What a re-drive does to a process: applies an event, or drives what is pending.
enum Change {
    Apply(Event),
    Drive,
}

enum Event {
    Truck(TruckEvent),
    Loan(LoanEvent),
}

/// Fills `plan` with what `event` (or a drive, `None`) does to `current`: the outcome, and
/// all the work at the partners the runner then does (it drives whatever is pending after
/// any message, the item's or not, a duplicate's too).
fn preview_on<W: Workflow>(plan: &mut Plan, current: Option<W>, event: Option<W::Event>) {
    let Some(before) = current else {
        plan.becomes = "nothing: its process does not exist (kept again)".into();
        return;
    };
    let (outcome, work) = match event {
        None => ("drives its process on".to_owned(), before.work_ahead()),
        Some(event) => {
            let mut after = before.clone();
            let said = match after.apply(event) {
                Outcome::Advanced => "applied".to_owned(),
                Outcome::Duplicate => "a duplicate: applied before, changes nothing".to_owned(),
                Outcome::Ignored(why) => format!("ignored: {why}"),
                Outcome::Rejected(why) => format!("rejected (kept again): {why}"),
            };
            (said, after.work_ahead())
        }
    };
    plan.becomes = format!("{outcome} (its process is {})", before.stage_name());
    leads_to(plan, work);
}

/// A plan for a process the item would begin.
fn describe_new<W: Workflow + StoredProcess>(plan: &mut Plan, new: &W, what: &str) {
    plan.becomes = format!("{what}, begun");
    plan.process = Some(new.key());
    leads_to(plan, new.work_ahead());
}

fn leads_to(plan: &mut Plan, work: Vec<(String, bool)>) {
    plan.moves_money = work.iter().any(|(_, money)| *money);
    plan.leads_to = work.into_iter().map(|(key, _)| key).collect();
}

/// Notes `action` in the history of the process `key` (loaded, noted, written at its version).
async fn note_on<W, S>(store: &S, key: &ProcessKey, action: What) -> Result<(), InfraError>
where
    W: Workflow + StoredProcess,
    S: ProcessStore + Sync,
{
    for _ in 0..5 {
        let Some(mut current) = store.load::<W>(key).await? else { return Ok(()) };
        if !current.value.history_mut().note_operator(now_ms(), action.clone()) {
            return Ok(());
        }
        match store.save(&current.value, current.version, &[]).await {
            Ok(_) => return Ok(()),
            Err(SaveError::Conflict) => continue,
            Err(SaveError::Infra(e)) => return Err(e),
        }
    }
    Err(InfraError::call("dynamodb", format!("{key} kept changing; the operator's action is not noted")))
}

/// The retry of a kept item's pending files: one per kept item, so the same command given
/// twice retries once.
fn retry_id(item: &Quarantined) -> String {
    format!("retry-archive-{}", short(&item.id))
}

/// A bank event's problems, each naming its field, as one reason.
fn problems_of(problems: Vec<crate::domain::validation::FieldError>) -> String {
    problems.iter().map(|p| format!("{}: {}", p.field, p.problem)).collect::<Vec<_>>().join("; ")
}

/// A short digest for deduplication ids (SQS allows 128 characters).
fn short(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))[..32].to_owned()
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
