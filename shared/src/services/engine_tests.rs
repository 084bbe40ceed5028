//! The engine through the truck runner, on the in-memory ports and a scripted MUST:
//! what happens to a call that changes something at MUST when it fails in each way,
//! and to two runners working on one process at once.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::adapters::memory::MemoryTable;
use crate::domain::ids::{ProcessId, ScoringId};
use crate::domain::must::hook::HookKind;
use crate::domain::truck::process::TruckProcess;
use crate::ports::{KeptOrigin, ProcessStore, QuarantineStore, TruckMessage};
use crate::services::test_support::{drive, hook, truck_request, up_to_payment, Plan, Runner, World};

async fn approved(runner: &Runner) -> Result<(), RetryLater> {
    runner.handle(hook(HookKind::Approved, r#"{"insuranceCompany":"ingostrah","writtenPremium":1000}"#)).await
}

async fn kept_reviews(table: &MemoryTable) -> Vec<String> {
    let items = table.list_quarantined().await.unwrap();
    items.into_iter().filter(|i| matches!(i.origin, KeptOrigin::Review { .. })).map(|i| i.id).collect()
}

#[tokio::test]
async fn a_payment_request_whose_answer_was_lost_is_held_and_never_sent_again() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::LostAnswer]);
    approved(&runner).await.unwrap();
    let p = w.process().await;
    assert_eq!(p.stage_name(), "needs-review");
    assert_eq!(kept_reviews(&w.table).await.len(), 1, "kept for an operator, with the alarm's metric");
    assert!(w.notices().iter().any(|(_, kind)| kind == "truck.needs-review"));
    // Redeliveries, and any number of them, send nothing.
    for _ in 0..3 {
        runner.handle(drive()).await.unwrap();
    }
    assert_eq!((w.must.calls("payment"), w.must.changes("payment")), (1, 1));
    // MUST's next hook proves the request arrived: the process goes on, the review is off the list.
    runner
        .handle(hook(HookKind::PaymentLinkGenerated, r#"{"paymentLink":"https://pay.example/1"}"#))
        .await
        .unwrap();
    let p = w.process().await;
    assert_eq!(p.stage_name(), "awaiting-payment");
    assert!(kept_reviews(&w.table).await.is_empty());
    assert_eq!(w.must.calls("payment"), 1);
}

#[tokio::test]
async fn a_call_that_surely_was_not_sent_is_sent_again_under_a_new_attempt() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::NotSent]);
    assert!(approved(&runner).await.is_err(), "given back to the queue");
    runner.handle(drive()).await.unwrap();
    assert_eq!((w.must.calls("payment"), w.must.changes("payment")), (2, 1));
    let p = w.process().await;
    assert_eq!(p.stage_name(), "awaiting-payment");
    let intents: Vec<String> =
        w.table.intents().into_iter().map(|(_, k)| k).filter(|k| k.starts_with("EFFECT#payment")).collect();
    assert_eq!(intents.len(), 2, "one intent per attempt: {intents:?}");
    let journal: Vec<_> = p.outbox.calls().iter().filter(|c| c.effect == "payment-ingostrah").collect();
    assert_eq!(journal.len(), 2);
    assert!(matches!(journal[0].outcome, crate::domain::workflow::CallOutcome::NotSent { .. }));
}

#[tokio::test]
async fn a_runner_that_died_during_the_call_leaves_an_outcome_nobody_knows() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::Hang]);
    // The runner dies while MUST holds the request (the future is dropped after the intent).
    let died = tokio::time::timeout(Duration::from_millis(20), approved(&runner)).await;
    assert!(died.is_err());
    // Its message comes back. Within the lease, the attempt may still be running elsewhere: wait.
    assert!(approved(&runner).await.is_err());
    tokio::time::sleep(Duration::from_millis(60)).await;
    // After it: held, not sent again.
    approved(&runner).await.unwrap();
    assert_eq!(w.process().await.stage_name(), "needs-review");
    assert_eq!(w.must.calls("payment"), 1);
}

#[tokio::test]
async fn a_call_whose_message_is_lost_after_the_runner_died_is_still_found_by_the_next_one() {
    // Found by the simulation: the hook that caused the call was applied only in the dying
    // runner's memory; its message then went to the dead-letter queue, and the process,
    // moving on with MUST's next hook, never learnt that the call had been made.
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::Hang]);
    let died = tokio::time::timeout(Duration::from_millis(20), approved(&runner)).await;
    assert!(died.is_err(), "the runner dies while MUST holds the request");
    let stored = w.process().await;
    assert!(
        stored.outbox.is_pending("payment-ingostrah"),
        "written with the call pending before it was sent"
    );
    // The message is never delivered again; a later one drives the process after the lease.
    tokio::time::sleep(Duration::from_millis(60)).await;
    runner.handle(drive()).await.unwrap();
    assert_eq!(w.process().await.stage_name(), "needs-review", "held, not sent again");
    assert_eq!(w.must.calls("payment"), 1);
}

#[tokio::test]
async fn a_partner_that_honours_idempotency_keys_gets_the_call_again() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(true);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::LostAnswer]);
    assert!(approved(&runner).await.is_err(), "retried on the next delivery, not held");
    runner.handle(drive()).await.unwrap();
    assert_eq!(w.process().await.stage_name(), "awaiting-payment");
    assert_eq!(w.must.calls("payment"), 2, "sent again under the same Idempotency-Key");
}

#[tokio::test]
async fn an_operator_answers_a_held_init_with_the_scoring_id() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    w.table.create(&TruckProcess::start(truck_request())).await.unwrap();
    w.must.plan("init", &[Plan::LostAnswer]);
    runner.handle(drive()).await.unwrap();
    assert_eq!(w.process().await.stage_name(), "needs-review");
    let resolved = crate::domain::truck::process::TruckEvent::ReviewResolved {
        id: "op-1".into(),
        effect: "init".into(),
        attempt: 1,
        resolution: crate::domain::workflow::Resolution::Happened {
            reference: Some("sc-1".into()),
            number: None,
        },
    };
    let pid = ProcessId::parse("REQ-2026-0001").unwrap();
    runner.handle(TruckMessage::BankEvent { process_id: pid, event: resolved, replays: 0 }).await.unwrap();
    let p = w.process().await;
    assert_eq!(
        (p.stage_name().as_str(), p.scoring_id.as_ref().map(ScoringId::as_str)),
        ("preparing", Some("sc-1"))
    );
    assert_eq!(w.must.calls("init"), 1, "init was not sent again");
    runner.handle(hook(HookKind::DocumentsTypesRequired, r#"{"documentTypes":[11]}"#)).await.unwrap();
    assert_eq!(w.must.changes("documents"), 1, "the hooks of the scoringId now reach the process");
}

#[tokio::test]
async fn two_runners_on_one_process_never_give_two_notices_one_id() {
    let w = World::new(MemoryTable::yielding());
    let (a, b) = (w.runner(false), w.runner(false));
    w.table.create(&TruckProcess::start(truck_request())).await.unwrap();
    a.handle(drive()).await.unwrap();
    for (kind, body) in [
        (HookKind::DocumentsTypesRequired, r#"{"documentTypes":[11,12]}"#),
        (HookKind::DocumentsUploadCompleted, "{}"),
        (HookKind::ContractUpdateCompleted, "{}"),
    ] {
        a.handle(hook(kind, body)).await.unwrap();
    }
    b.handle(hook(HookKind::Started, r#"{"insuranceCompanies":["ingostrah","renaissance"]}"#)).await.unwrap();
    // Two hooks of one process handled at once by two runners (as two message groups would).
    let rejected =
        |insurer: &str| hook(HookKind::Rejected, &format!(r#"{{"insuranceCompany":"{insurer}"}}"#));
    let (ra, rb) = tokio::join!(a.handle(rejected("ingostrah")), b.handle(rejected("renaissance")));
    ra.unwrap();
    rb.unwrap();
    let p = w.process().await;
    assert_eq!(p.stage_name(), "rejected");
    assert!(p.outbox.is_empty(), "the second writer sent what the first one's write brought: {:?}", p.outbox);
    let mut by_id: HashMap<String, Vec<String>> = HashMap::new();
    for m in w.bank.sent() {
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        by_id.entry(v["eventId"].as_str().unwrap().to_owned()).or_default().push(m.clone());
    }
    for (id, bodies) in &by_id {
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{id} names two different notices: {bodies:?}");
    }
    assert!(w.table.conflicts() > 0, "the two runners raced on one version");
    let kinds: Vec<String> = {
        let mut seen: Vec<(String, String)> = w.notices();
        seen.sort();
        seen.dedup();
        seen.into_iter().map(|(_, k)| k).collect()
    };
    assert_eq!(kinds.iter().filter(|k| *k == "truck.offer").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "truck.rejected").count(), 1);
}

#[tokio::test]
async fn a_payment_refused_with_403_is_journalled_as_refused_and_not_counted_as_made() {
    // Found by the simulation: a refused payment request was journalled "done" and counted
    // among the calls MUST acted on, so an operator comparing MUST's count with ours would
    // answer a later held payment "did not happen", and it would be sent twice.
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::Refused(403)]);
    approved(&runner).await.unwrap();
    let p = w.process().await;
    let outcomes: Vec<(&str, &str)> = p
        .outbox
        .calls()
        .iter()
        .filter(|c| c.effect.starts_with("payment-"))
        .map(|c| {
            let outcome = match c.outcome {
                crate::domain::workflow::CallOutcome::Done => "done",
                crate::domain::workflow::CallOutcome::Refused { .. } => "refused",
                _ => "other",
            };
            (c.effect.as_str(), outcome)
        })
        .collect();
    assert_eq!(outcomes, [("payment-ingostrah", "refused")]);
    assert_eq!(p.outbox.calls_made("payment"), 0, "MUST changed nothing");
    assert_eq!((w.must.calls("payment"), w.must.changes("payment")), (1, 0));
    assert_eq!(p.stage_name(), "failed", "no other insurer approved");
}
