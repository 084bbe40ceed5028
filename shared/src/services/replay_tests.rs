//! Replay on the in-memory ports: each kept input re-driven the way it first came in
//! and released, or reported and kept; a held review answered.

use std::time::Duration;

use super::*;
use crate::adapters::memory::{MemoryObjects, MemorySqs, MemoryTable};
use crate::domain::bima::api::Calculation;
use crate::domain::must::hook::{HookKind, HookPayload};
use crate::domain::truck::bank::BankDocument;
use crate::domain::workflow::Workflow;
use crate::services::engine::Engine;
use crate::services::keep::keep;
use crate::services::loan::runner::{bima_refusal, LoanRunner, PrintLinkCaller};
use crate::services::retry::Backoff;
use crate::services::test_support::{
    drain, edited, fifo, kept, loan_issued, loan_key, process_id, sent_json, sid, truck_key, truck_request,
    Flaky, Plan, ScriptedBima, LOAN_ISSUED, LOAN_NUMBER, REQUEST_ID, TRUCK_POLICY_REQUESTED,
};

const APPROVED: &str = r#"{"insuranceCompany":"ingostrah","writtenPremium":1000}"#;

/// The operator's ports: the table, the two process queues, the bank-events queue.
struct Ops<P = MemorySqs> {
    table: MemoryTable,
    trucks: P,
    loans: MemorySqs,
    bank_events: MemorySqs,
}

impl Ops {
    fn new() -> Ops {
        Ops {
            table: MemoryTable::default(),
            trucks: fifo(),
            loans: fifo(),
            bank_events: MemorySqs::default(),
        }
    }
}

/// The operator these tests act as.
const BY: &str = "op-anna";

/// How long an item that leads to money may wait for a re-drive in these tests.
const MONEY_MAX_AGE: Duration = Duration::from_secs(72 * 3600);

impl<P: Clone> Ops<P> {
    fn replay(&self) -> Replay<MemoryTable, P, MemorySqs, MemorySqs> {
        Replay {
            store: self.table.clone(),
            trucks: self.trucks.clone(),
            loans: self.loans.clone(),
            bank_events: self.bank_events.clone(),
            payment_link_hosts: vec!["pay.must.example".into()],
            money_max_age: MONEY_MAX_AGE,
        }
    }

    /// Keeps an item as the services do; returns its id.
    async fn keep(&self, origin: KeptOrigin, reason: &str, body: &str) -> String {
        let item = Quarantined::new(origin, reason.into(), body.into(), now_ms());
        keep(&self.table, &item).await.unwrap();
        item.id
    }
}

fn kept_hook(scoring: &str, kind: HookKind, hook_id: &str) -> KeptOrigin {
    KeptOrigin::Hook {
        kind,
        scoring_id: sid(scoring),
        hook_id: hook_id.into(),
        by_content: false,
        replays: 0,
        check: None,
    }
}

fn kept_ids(items: &[Quarantined]) -> Vec<String> {
    items.iter().map(|i| i.id.clone()).collect()
}

/// The example process stored, initialized with scoringId `sc-1`.
async fn initialized(table: &MemoryTable) {
    let mut p = TruckProcess::start(truck_request());
    table.create(&p).await.unwrap();
    p.apply(TruckEvent::Initialized { scoring_id: sid("sc-1") });
    table.save(&p, 1, &["SCORING#sc-1".to_owned()]).await.unwrap();
}

/// The example loan stored, its sale held for review.
async fn loan_held_on_the_sale(table: &MemoryTable) {
    let mut p = LoanProcess::start(loan_issued());
    let calculation =
        Calculation { premium: "3000.00".into(), sum_insured: "500000".into(), risks: vec!["death".into()] };
    p.apply(LoanEvent::Calculated { calculation });
    ambiguous(&mut p, "sale", 1);
    p.apply(LoanEvent::CallUncertain { effect: "sale".into(), at_ms: 5, detail: "timed out".into() });
    assert_eq!(p.outbox.held_attempt(), Some(("sale", 1)));
    notices_sent(&mut p);
    table.create(&p).await.unwrap();
}

/// Journals attempt `attempt` at `effect` as the engine does when its outcome is unknown.
fn ambiguous<W: Workflow>(p: &mut W, effect: &str, attempt: u32) {
    p.outbox_mut().record(crate::domain::workflow::CallRecord {
        effect: effect.into(),
        attempt,
        at_ms: 5,
        duration_ms: 20_000,
        outcome: crate::domain::workflow::CallOutcome::Ambiguous { detail: "timed out".into() },
    });
}

/// The process as the runner leaves it once the bank was told: no notice pending.
fn notices_sent<W: Workflow>(p: &mut W) {
    use crate::domain::workflow::EffectSpec;
    let sent: Vec<String> = p.outbox().pending().iter().filter(|e| e.is_notice()).map(|e| e.key()).collect();
    for key in sent {
        p.outbox_mut().complete(&key, true);
    }
}

fn correction() -> TruckEvent {
    let document = BankDocument {
        type_id: 11,
        s3_key: "inbound/REQ-2026-0001/sts-2.pdf".into(),
        file_name: "sts-2.pdf".into(),
    };
    TruckEvent::DocumentsCorrected { id: "evt-0002".into(), documents: vec![document] }
}

#[tokio::test]
async fn a_kept_hook_that_passes_its_checks_is_stored_queued_and_released() {
    let ops = Ops::new();
    let id = ops
        .keep(kept_hook("sc-1", HookKind::Approved, "msg_1"), "unknown scoringId after 601s", APPROVED)
        .await;
    // Its first delivery went on the queue under its delivery id moments ago.
    let first = received_hook("msg_1", 0);
    TruckQueue::enqueue(&ops.trucks, &TruckMessage::Hook(first), "sc-1", "msg_1").await.unwrap();
    drain::<TruckMessage>(&ops.trucks);

    let report = ops.replay().routine(BY).await.unwrap();
    assert_eq!(report, ReplayReport { replayed: vec![id], ..ReplayReport::default() });
    assert!(kept(&ops.table).await.is_empty());
    assert_eq!(ops.table.hooks(), 1, "stored again, as the intake stores it");
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&ops.trucks);
    let [(group, TruckMessage::Hook(hook))] = &queued[..] else { panic!("{queued:?}") };
    assert_eq!(group.as_deref(), Some("sc-1"), "not dropped as a repeat of its first delivery");
    assert_eq!(
        (hook.kind, hook.hook_id.as_str(), hook.by_content, hook.body.as_str(), hook.replays),
        (HookKind::Approved, "msg_1", false, APPROVED, 1)
    );
}

fn received_hook(hook_id: &str, replays: u32) -> ReceivedHook {
    ReceivedHook {
        scoring_id: sid("sc-1"),
        kind: HookKind::Approved,
        hook_id: hook_id.into(),
        by_content: false,
        body: APPROVED.into(),
        received_at_ms: now_ms(),
        replays,
        requeued_at_ms: 0,
    }
}

#[tokio::test]
async fn a_kept_hook_still_failing_its_checks_is_reported_and_kept() {
    let ops = Ops::new();
    let id = ops
        .keep(
            kept_hook("sc-1", HookKind::Approved, "msg_2"),
            "field insuranceCompany: a number",
            r#"{"insuranceCompany":5}"#,
        )
        .await;
    let report = ops.replay().routine(BY).await.unwrap();
    assert_eq!(report.replayed, Vec::<String>::new());
    assert_eq!(
        report.still_failing,
        [(id.clone(), "field insuranceCompany: expected an insurer code string".to_owned())]
    );
    assert_eq!(kept_ids(&kept(&ops.table).await), [id]);
    assert_eq!(ops.table.hooks(), 0);
    assert!(ops.trucks.sent().is_empty());
}

#[tokio::test]
async fn a_kept_bank_event_that_now_passes_goes_back_on_the_bank_events_queue() {
    let ops = Ops::new();
    let origin =
        KeptOrigin::BankEvent { event_id: "evt-0001".into(), event_type: "truck.policy-requested".into() };
    let good = ops.keep(origin.clone(), "an old rule", TRUCK_POLICY_REQUESTED).await;
    let bad_body = edited(TRUCK_POLICY_REQUESTED, |v| v["vehicle"]["vin"] = serde_json::json!("SHORT"));
    let bad = ops.keep(origin, "vehicle.vin: 17 letters or digits", &bad_body).await;
    let report = ops.replay().routine(BY).await.unwrap();
    assert_eq!(report.replayed, [good]);
    assert_eq!(report.still_failing, [(bad.clone(), "vehicle.vin: 17 letters or digits".to_owned())]);
    let expected: serde_json::Value = serde_json::from_str(TRUCK_POLICY_REQUESTED).unwrap();
    assert_eq!(sent_json(&ops.bank_events), [expected], "the event, as the bank sent it");
    assert_eq!(kept_ids(&kept(&ops.table).await), [bad]);
    assert!(ops.trucks.sent().is_empty(), "the intake routes it, not the replay");
}

#[tokio::test]
async fn a_kept_truck_event_goes_to_its_process_with_the_next_replay_number() {
    let ops = Ops::new();
    initialized(&ops.table).await;
    let origin = KeptOrigin::Event { process: truck_key(), event_id: "evt-0002".into(), replays: 1 };
    let body = serde_json::to_string(&correction()).unwrap();
    let id = ops.keep(origin, "documents already accepted", &body).await;
    let report = ops.replay().routine(BY).await.unwrap();
    assert_eq!(report.replayed, [id]);
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&ops.trucks);
    let expected = TruckMessage::BankEvent { process_id: process_id(), event: correction(), replays: 2 };
    assert_eq!(queued, [(Some("sc-1".to_owned()), expected)], "in the group the process's hooks use");
    assert!(kept(&ops.table).await.is_empty());
}

#[tokio::test]
async fn a_kept_drive_of_a_truck_process_that_is_not_an_event_stays_kept() {
    let ops = Ops::new();
    let origin = KeptOrigin::Event { process: truck_key(), event_id: "drive".into(), replays: 0 };
    let id = ops.keep(origin, "unknown process", "null").await;
    let report = ops.replay().routine(BY).await.unwrap();
    let [(failing, why)] = &report.still_failing[..] else { panic!("{report:?}") };
    assert_eq!(failing, &id);
    assert!(why.starts_with("not a truck process event"), "{why}");
    assert_eq!(kept(&ops.table).await.len(), 1);
    assert!(ops.trucks.sent().is_empty());
}

#[tokio::test]
async fn a_kept_loan_event_goes_to_its_loan_and_a_kept_effect_result_becomes_a_drive() {
    let ops = Ops::new();
    let answer = LoanEvent::RetryArchive { id: "retry-7".into() };
    let event = KeptOrigin::Event { process: loan_key(), event_id: "retry-7".into(), replays: 0 };
    ops.keep(event, "the loan's insurance has ended", &serde_json::to_string(&answer).unwrap()).await;
    let result = KeptOrigin::Event { process: loan_key(), event_id: "internal".into(), replays: 0 };
    ops.keep(result, "contradicts the process", r#"{"some":"effect result"}"#).await;
    let first = ops.replay().routine(BY).await.unwrap();
    assert_eq!((first.replayed.len(), first.still_failing.len()), (1, 0));
    let [(waiting, why)] = &first.needs_its_own_command[..] else { panic!("{first:?}") };
    assert!(why.contains("another item of LOAN#1234567890 went in this run"), "{why}");
    // The next run, once the first is applied (here: at once), takes the other.
    assert_eq!(ops.replay().routine(BY).await.unwrap().replayed, std::slice::from_ref(waiting));
    let mut queued: Vec<(Option<String>, LoanMessage)> = drain(&ops.loans);
    queued.sort_by_key(|(_, m)| matches!(m, LoanMessage::Drive { .. }));
    let group = Some(LOAN_NUMBER.to_owned());
    assert_eq!(
        queued,
        [
            (group.clone(), LoanMessage::Event { loan_number: LOAN_NUMBER.into(), event: answer }),
            (group, LoanMessage::Drive { loan_number: LOAN_NUMBER.into() }),
        ]
    );
    assert!(kept(&ops.table).await.is_empty());
}

#[tokio::test]
async fn a_held_review_is_reported_as_waiting_for_a_person_and_kept() {
    let ops = Ops::new();
    loan_held_on_the_sale(&ops.table).await;
    let id = ops
        .keep(KeptOrigin::Review { process: loan_key(), effect: "sale".into(), attempt: 1 }, "HTTP 502", "")
        .await;
    let report = ops.replay().routine(BY).await.unwrap();
    let [(failing, why)] = &report.still_failing[..] else { panic!("{report:?}") };
    assert_eq!(failing, &id);
    assert!(
        why.starts_with("LOAN#1234567890 is held: was sale (attempt 1) received by the partner?"),
        "{why}"
    );
    assert!(why.contains("polis-ops resolve LOAN#1234567890 1 happened|did-not-happen"), "{why}");
    assert_eq!(kept_ids(&kept(&ops.table).await), [id]);
    assert!(ops.loans.sent().is_empty());
}

#[tokio::test]
async fn a_review_that_outlived_its_hold_is_released() {
    // The hold was lifted (a hook proved the call) and the runner died before releasing
    // the review's record: nobody must be asked about it any more.
    let ops = Ops::new();
    ops.table.create(&LoanProcess::start(loan_issued())).await.unwrap();
    let id = ops
        .keep(KeptOrigin::Review { process: loan_key(), effect: "sale".into(), attempt: 1 }, "HTTP 502", "")
        .await;
    let report = ops.replay().routine(BY).await.unwrap();
    assert_eq!((report.replayed, report.still_failing), (vec![id], vec![]));
    assert!(kept(&ops.table).await.is_empty());
    assert!(ops.loans.sent().is_empty(), "nothing is sent for it");
}

#[tokio::test]
async fn a_pending_archive_is_tried_again_through_its_process() {
    let ops = Ops::new();
    ops.keep(KeptOrigin::ArchivePending { process: loan_key(), attempt: 5 }, "print form not archived", "")
        .await;
    ops.keep(
        KeptOrigin::ArchivePending { process: truck_key(), attempt: 2 },
        "1 policy file(s) not archived",
        "",
    )
    .await;
    let report = ops.replay().routine(BY).await.unwrap();
    assert_eq!(report.replayed.len(), 2);
    let loans: Vec<(Option<String>, LoanMessage)> = drain(&ops.loans);
    assert!(
        matches!(&loans[..], [(Some(g), LoanMessage::Event { event: LoanEvent::RetryArchive { id }, .. })]
            if g == LOAN_NUMBER && id.starts_with("retry-archive-")),
        "{loans:?}"
    );
    let trucks: Vec<(Option<String>, TruckMessage)> = drain(&ops.trucks);
    assert!(
        matches!(&trucks[..], [(Some(g), TruckMessage::BankEvent { event: TruckEvent::RetryArchive { .. }, replays: 0, .. })]
            if g == REQUEST_ID),
        "{trucks:?}"
    );
    assert!(kept(&ops.table).await.is_empty());
}

#[tokio::test]
async fn an_item_that_cannot_be_queued_stops_the_replay_and_stays_kept() {
    let inner = Ops::new();
    let ops = Ops {
        table: inner.table.clone(),
        trucks: Flaky::new(inner.trucks.clone()),
        loans: inner.loans,
        bank_events: inner.bank_events,
    };
    let id = ops
        .keep(kept_hook("sc-1", HookKind::Approved, "msg_3"), "unknown scoringId after 700s", APPROVED)
        .await;
    ops.trucks.fail_next(1);
    assert!(ops.replay().routine(BY).await.is_err());
    assert_eq!(kept_ids(&kept(&ops.table).await), std::slice::from_ref(&id), "released only once re-driven");
    assert_eq!(ops.replay().routine(BY).await.unwrap().replayed, [id]);
}

#[tokio::test]
async fn resolving_what_is_not_held_sends_nothing() {
    let ops = Ops::new();
    let happened = || Resolution::Happened { reference: None, number: None };
    assert_eq!(
        ops.replay().resolve(&loan_key(), "sale", 1, happened(), BY).await.unwrap(),
        Err("LOAN#1234567890 does not exist".into())
    );
    ops.table.create(&TruckProcess::start(truck_request())).await.unwrap();
    assert_eq!(
        ops.replay().resolve(&truck_key(), "init", 1, happened(), BY).await.unwrap(),
        Err("TRUCK#REQ-2026-0001 is not held for review".into())
    );
    assert!(ops.trucks.sent().is_empty() && ops.loans.sent().is_empty());
}

#[tokio::test]
async fn resolving_a_held_loan_queues_the_answer_and_releases_its_review_only() {
    let ops = Ops::new();
    loan_held_on_the_sale(&ops.table).await;
    ops.keep(KeptOrigin::Review { process: loan_key(), effect: "sale".into(), attempt: 1 }, "timed out", "")
        .await;
    let other = ops
        .keep(KeptOrigin::Review { process: truck_key(), effect: "init".into(), attempt: 1 }, "reset", "")
        .await;
    let happened = Resolution::Happened { reference: Some("100234".into()), number: Some("CL-9".into()) };
    ops.replay().resolve(&loan_key(), "sale", 1, happened.clone(), BY).await.unwrap().unwrap();
    let queued: Vec<(Option<String>, LoanMessage)> = drain(&ops.loans);
    let [(group, LoanMessage::Event { loan_number, event: LoanEvent::ReviewResolved { id, resolution, .. } })] =
        &queued[..]
    else {
        panic!("{queued:?}")
    };
    assert_eq!((group.as_deref(), loan_number.as_str()), (Some(LOAN_NUMBER), LOAN_NUMBER));
    assert_eq!(id, "review-sale-a1", "the answer's id names the call and the attempt");
    assert_eq!(resolution, &happened);
    assert_eq!(kept_ids(&kept(&ops.table).await), [other], "another process's review stays");
}

#[tokio::test]
async fn resolving_a_held_init_with_its_scoring_id_brings_the_hooks_kept_meanwhile() {
    let ops = Ops::new();
    let mut p = TruckProcess::start(truck_request());
    ambiguous(&mut p, "init", 1);
    p.apply(TruckEvent::CallUncertain { effect: "init".into(), at_ms: 5, detail: "reset".into() });
    notices_sent(&mut p);
    ops.table.create(&p).await.unwrap();
    ops.keep(KeptOrigin::Review { process: truck_key(), effect: "init".into(), attempt: 1 }, "reset", "")
        .await;
    let types = r#"{"documentTypes":[11,12]}"#;
    ops.keep(
        kept_hook("sc-9", HookKind::DocumentsTypesRequired, "msg_9"),
        "unknown scoringId after 601s",
        types,
    )
    .await;
    let elsewhere = ops
        .keep(kept_hook("sc-8", HookKind::Approved, "msg_8"), "unknown scoringId after 601s", APPROVED)
        .await;
    let happened = Resolution::Happened { reference: Some("sc-9".into()), number: None };
    ops.replay().resolve(&truck_key(), "init", 1, happened.clone(), BY).await.unwrap().unwrap();
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&ops.trucks);
    let groups: Vec<Option<&str>> = queued.iter().map(|(g, _)| g.as_deref()).collect();
    // The answer in the process's own group: in the scoringId's, it would wait behind the
    // hooks that wait for it.
    assert_eq!(groups, [Some(truck_key().id()), Some("sc-9")], "{queued:?}");
    assert!(
        matches!(&queued[0].1, TruckMessage::BankEvent { event: TruckEvent::ReviewResolved { resolution, .. }, .. } if *resolution == happened)
    );
    assert!(
        matches!(&queued[1].1, TruckMessage::Hook(h) if h.scoring_id == sid("sc-9") && h.body == types && h.replays == 1),
        "the kept hook goes again, to wait in its scoringId's group for the answer"
    );
    assert_eq!(
        kept_ids(&kept(&ops.table).await),
        [elsewhere],
        "the review and the re-driven hook are released"
    );
}

#[tokio::test]
async fn an_init_that_did_not_happen_is_answered_in_the_request_group() {
    let ops = Ops::new();
    let mut p = TruckProcess::start(truck_request());
    ambiguous(&mut p, "init", 1);
    p.apply(TruckEvent::CallUncertain { effect: "init".into(), at_ms: 5, detail: "reset".into() });
    notices_sent(&mut p);
    ops.table.create(&p).await.unwrap();
    ops.replay().resolve(&truck_key(), "init", 1, Resolution::DidNotHappen, BY).await.unwrap().unwrap();
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&ops.trucks);
    assert!(
        matches!(&queued[..], [(Some(g), TruckMessage::BankEvent { event: TruckEvent::ReviewResolved { resolution: Resolution::DidNotHappen, .. }, .. })] if g == REQUEST_ID),
        "{queued:?}"
    );
}

#[tokio::test]
async fn an_answered_review_reaches_the_runner_and_the_sale_is_not_made_again() {
    let ops = Ops::new();
    ops.table.create(&LoanProcess::start(loan_issued())).await.unwrap();
    let bima = ScriptedBima::default();
    bima.plan("sale", &[Plan::LostAnswer]);
    let runner = LoanRunner {
        engine: Engine {
            store: ops.table.clone(),
            effect_lease: Duration::from_millis(50),
            backoff: Backoff { attempts: 1, first_delay: Duration::from_millis(1), ..Backoff::default() },
            refusal: bima_refusal,
            partner_idempotent: false,
        },
        bima: bima.clone(),
        objects: MemoryObjects::default(),
        outbox: MemorySqs::default(),
        archive_bucket: "archive".into(),
        print_link: PrintLinkCaller::Polis,
    };
    runner.handle(LoanMessage::Drive { loan_number: LOAN_NUMBER.into() }).await.unwrap();
    assert_eq!(kept(&ops.table).await.len(), 1, "the held sale is listed");
    let happened = Resolution::Happened { reference: Some("100234".into()), number: None };
    ops.replay().resolve(&loan_key(), "sale", 1, happened, BY).await.unwrap().unwrap();
    for (_, message) in drain::<LoanMessage>(&ops.loans) {
        runner.handle(message).await.unwrap();
    }
    let p = ops.table.load::<LoanProcess>(&loan_key()).await.unwrap().unwrap().value;
    assert_eq!(p.policy.as_ref().and_then(|s| s.policy_id.as_deref()), Some("100234"));
    assert_eq!(p.stage_name(), "issued");
    assert_eq!(bima.calls("sale"), 1);
    assert!(kept(&ops.table).await.is_empty());
}

/// The example process scoring with ingostrah (`sc-1`), no offer in yet.
async fn scoring_with_ingostrah(table: &MemoryTable) {
    let mut p = TruckProcess::start(truck_request());
    table.create(&p).await.unwrap();
    p.outbox_mut().complete("init", true);
    p.apply(TruckEvent::Initialized { scoring_id: sid("sc-1") });
    let started = HookPayload::parse(HookKind::Started, br#"{"insuranceCompanies":["ingostrah"]}"#).unwrap();
    p.apply(TruckEvent::Hook {
        id: "h-started".into(),
        by_content: false,
        payload: started,
        received_at_ms: 1,
        scoring_id: None,
    });
    notices_sent(&mut p);
    table.save(&p, 1, &["SCORING#sc-1".to_owned()]).await.unwrap();
}

fn approval(confirm: Option<&str>, override_reason: Option<&str>, dry_run: bool) -> Approval {
    Approval {
        by: BY.into(),
        confirm: confirm.map(str::to_owned),
        override_reason: override_reason.map(str::to_owned),
        dry_run,
    }
}

/// The operators' actions in the process's history: (by, action, item, detail).
async fn operator_actions(table: &MemoryTable, key: &ProcessKey) -> Vec<(String, String, String, String)> {
    let history = match key {
        ProcessKey::Truck(_) => table.load::<TruckProcess>(key).await.unwrap().unwrap().value.history,
        ProcessKey::Loan(_) => table.load::<LoanProcess>(key).await.unwrap().unwrap().value.history,
    };
    history
        .entries()
        .iter()
        .filter_map(|h| match &h.what {
            What::Operator { by, action, item, detail } => {
                Some((by.clone(), action.clone(), item.clone(), detail.clone()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_hook_that_leads_to_a_payment_is_not_redriven_in_bulk_and_goes_only_with_its_confirmation() {
    let ops = Ops::new();
    scoring_with_ingostrah(&ops.table).await;
    let id = ops
        .keep(kept_hook("sc-1", HookKind::Approved, "msg_5"), "unknown scoringId after 601s", APPROVED)
        .await;
    let report = ops.replay().routine(BY).await.unwrap();
    assert!(report.replayed.is_empty(), "{report:?}");
    let [(skipped, why)] = &report.needs_its_own_command[..] else { panic!("{report:?}") };
    assert_eq!(skipped, &id);
    assert!(why.contains("payment-ingostrah (money)"), "{why}");

    let dry = ops.replay().redrive(&id, &approval(None, None, true)).await.unwrap().unwrap();
    assert!(!dry.done);
    assert_eq!(
        (dry.plan.leads_to.clone(), dry.plan.moves_money),
        (vec!["payment-ingostrah".to_owned()], true)
    );
    assert_eq!(dry.plan.process, Some(truck_key()));
    let code = dry.plan.confirmation.clone().expect("a code to confirm it with");
    assert!(ops.trucks.sent().is_empty() && kept(&ops.table).await.len() == 1, "a dry run changes nothing");
    assert!(operator_actions(&ops.table, &truck_key()).await.is_empty());

    let unconfirmed = ops.replay().redrive(&id, &approval(None, None, false)).await.unwrap();
    assert!(
        unconfirmed.as_ref().is_err_and(|why| why.contains("confirm it with the code")),
        "{unconfirmed:?}"
    );
    let wrong = ops.replay().redrive(&id, &approval(Some("00000000"), None, false)).await.unwrap();
    assert!(wrong.as_ref().is_err_and(|why| why.contains("does not match")), "{wrong:?}");
    assert!(ops.trucks.sent().is_empty());

    let done = ops.replay().redrive(&id, &approval(Some(&code), None, false)).await.unwrap().unwrap();
    assert!(done.done);
    assert_eq!(drain::<TruckMessage>(&ops.trucks).len(), 1);
    assert!(kept(&ops.table).await.is_empty());
    let actions = operator_actions(&ops.table, &truck_key()).await;
    let [(by, action, item, detail)] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!((by.as_str(), action.as_str(), item), (BY, "redrive", &id));
    assert!(detail.contains("confirmed: leads to payment-ingostrah"), "{detail}");

    let again = ops.replay().redrive(&id, &approval(Some(&code), None, false)).await.unwrap();
    assert!(
        again.is_err_and(|why| why.contains("nothing is kept under")),
        "the same command again acts no more"
    );
    assert!(ops.trucks.sent().len() == 1);
}

#[tokio::test]
async fn a_hook_kept_by_an_intake_check_goes_only_by_its_id_with_an_override_that_is_recorded() {
    let ops = Ops::new();
    scoring_with_ingostrah(&ops.table).await;
    let link = r#"{"insuranceCompany":"ingostrah","paymentLink":"https://pay.elsewhere.example/1"}"#;
    let origin = KeptOrigin::Hook {
        kind: HookKind::PaymentLinkGenerated,
        scoring_id: sid("sc-1"),
        hook_id: "msg_6".into(),
        by_content: false,
        replays: 0,
        check: Some(crate::ports::IntakeCheck::PaymentLinkHost),
    };
    let id = ops
        .keep(origin, "payment link host pay.elsewhere.example is not one of PaymentLinkHosts", link)
        .await;
    let report = ops.replay().routine(BY).await.unwrap();
    assert_eq!(report.needs_its_own_command.iter().map(|(i, _)| i).collect::<Vec<_>>(), [&id], "{report:?}");
    let refused = ops.replay().redrive(&id, &approval(None, None, false)).await.unwrap();
    assert!(refused.is_err_and(|why| why.contains("override")));
    assert!(ops.trucks.sent().is_empty());
    let reason = "the insurer's new payment page, confirmed by phone (ticket 4711)";
    ops.replay().redrive(&id, &approval(None, Some(reason), false)).await.unwrap().unwrap();
    assert_eq!(drain::<TruckMessage>(&ops.trucks).len(), 1);
    let actions = operator_actions(&ops.table, &truck_key()).await;
    assert!(actions[0].3.contains(&format!("override: {reason}")), "{actions:?}");
}

#[tokio::test]
async fn an_item_that_leads_to_money_is_refused_past_the_age_a_redrive_may_be() {
    let ops = Ops::new();
    let origin = KeptOrigin::BankEvent { event_id: "evt-loan".into(), event_type: "loan.issued".into() };
    let stale_at = now_ms() - MONEY_MAX_AGE.as_millis() as u64 - 3_600_000;
    let stale = Quarantined::new(origin, "an old rule".into(), LOAN_ISSUED.into(), stale_at);
    keep(&ops.table, &stale).await.unwrap();
    let plan = ops.replay().plan(&stale.id).await.unwrap().unwrap();
    assert_eq!((plan.leads_to.clone(), plan.moves_money), (vec!["calc".to_owned(), "sale".to_owned()], true));
    let code = plan.confirmation.clone().unwrap();
    let refused = ops.replay().redrive(&stale.id, &approval(Some(&code), None, false)).await.unwrap();
    assert!(refused.is_err_and(|why| why.contains("over the 72 h")), "even confirmed");
    let report = ops.replay().routine(BY).await.unwrap();
    assert_eq!(report.still_failing.len(), 1, "{report:?}");
    assert!(ops.bank_events.sent().is_empty());
}

#[tokio::test]
async fn the_same_answer_given_twice_is_queued_once_and_an_answer_to_another_attempt_is_refused() {
    let ops = Ops::new();
    loan_held_on_the_sale(&ops.table).await;
    for _ in 0..2 {
        ops.replay().resolve(&loan_key(), "sale", 1, Resolution::DidNotHappen, BY).await.unwrap().unwrap();
    }
    let queued: Vec<(Option<String>, LoanMessage)> = drain(&ops.loans);
    assert_eq!(queued.len(), 1, "the repeat has the same ids: the queue drops it ({queued:?})");
    assert_eq!(
        ops.replay().resolve(&loan_key(), "sale", 2, Resolution::DidNotHappen, BY).await.unwrap(),
        Err("LOAN#1234567890 holds sale attempt 1, not sale attempt 2: look at it again (polis-ops list)"
            .into())
    );
    assert_eq!(
        ops.replay().resolve(&loan_key(), "print-link", 1, Resolution::DidNotHappen, BY).await.unwrap(),
        Err("LOAN#1234567890 holds sale attempt 1, not print-link attempt 1: look at it again (polis-ops list)".into()),
        "an answer names the call as well as the attempt"
    );
    let actions = operator_actions(&ops.table, &loan_key()).await;
    assert_eq!(
        actions,
        [(BY.to_owned(), "resolve".to_owned(), "sale #1".to_owned(), "did-not-happen".to_owned())],
        "noted once"
    );
}

#[tokio::test]
async fn an_item_that_changes_nothing_still_leads_to_what_its_process_has_pending_and_that_may_be_money() {
    // The runner drives whatever is pending after any message, a duplicate's too: re-driving a
    // repeat on a process whose payment request waits sets that request off.
    let ops = Ops::new();
    scoring_with_ingostrah(&ops.table).await;
    let mut p = ops.table.load::<TruckProcess>(&truck_key()).await.unwrap().unwrap();
    let approved = HookPayload::parse(HookKind::Approved, APPROVED.as_bytes()).unwrap();
    let hook = TruckEvent::Hook {
        id: "msg_7".into(),
        by_content: false,
        payload: approved,
        received_at_ms: 1,
        scoring_id: None,
    };
    assert_eq!(p.value.apply(hook), crate::domain::outcome::Outcome::Advanced);
    notices_sent(&mut p.value);
    ops.table.save(&p.value, p.version, &[]).await.unwrap();
    let id =
        ops.keep(kept_hook("sc-1", HookKind::Approved, "msg_7"), "a repeat kept by mistake", APPROVED).await;
    let plan = ops.replay().plan(&id).await.unwrap().unwrap();
    assert!(plan.becomes.starts_with("a duplicate"), "{plan:?}");
    assert_eq!((plan.leads_to.clone(), plan.moves_money), (vec!["payment-ingostrah".to_owned()], true));
    let report = ops.replay().routine(BY).await.unwrap();
    assert_eq!(report.needs_its_own_command.len(), 1, "not in bulk: {report:?}");
    assert!(ops.trucks.sent().is_empty());
}
