//! The watchdog on the in-memory ports: which processes it reminds, how often the bank is
//! told (once per wait, whatever the runs and redeliveries), and what it counts as stuck.

use super::*;
use crate::adapters::memory::{MemorySqs, MemoryTable};
use crate::domain::must::hook::HookKind;
use crate::domain::truck::bank::InsurerChoice;
use crate::domain::truck::process::TruckProcess;
use crate::ports::{now_ms, ProcessStore};
use crate::services::test_support::{drain, drive, fifo, hook, process_id, truck_request, Runner, World};

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

fn watchdog(table: &MemoryTable, trucks: &MemorySqs) -> Watchdog<MemoryTable, MemorySqs> {
    Watchdog {
        store: table.clone(),
        trucks: trucks.clone(),
        choice_reminder: HOUR,
        recognition_wait: Duration::from_secs(60),
        retry_delay: 30 * MINUTE,
        stuck_after: 2 * HOUR,
    }
}

/// A `"choice": "bank"` process with two approved offers, waiting for the bank.
async fn awaiting_choice_of_the_bank(w: &World, runner: &Runner) {
    let mut request = truck_request();
    request.choice = InsurerChoice::Bank;
    w.table.create(&TruckProcess::start(request)).await.unwrap();
    runner.handle(drive()).await.unwrap();
    for (kind, body) in [
        (HookKind::DocumentsTypesRequired, r#"{"documentTypes":[11,12]}"#),
        (HookKind::DocumentsUploadCompleted, "{}"),
        (HookKind::ContractUpdateCompleted, "{}"),
        (HookKind::Started, r#"{"insuranceCompanies":["ingostrah","renaissance"]}"#),
        (HookKind::Approved, r#"{"insuranceCompany":"ingostrah","writtenPremium":21000}"#),
        (HookKind::Approved, r#"{"insuranceCompany":"renaissance","writtenPremium":17000}"#),
    ] {
        runner.handle(hook(kind, body)).await.unwrap();
    }
    assert_eq!(w.process().await.stage, TruckStage::AwaitingChoice);
}

fn reminders(w: &World) -> Vec<serde_json::Value> {
    crate::services::test_support::sent_json(&w.bank)
        .into_iter()
        .filter(|n| n["type"] == "truck.choice-reminder")
        .collect()
}

#[tokio::test]
async fn a_wait_past_the_reminder_time_gives_the_bank_one_reminder_whatever_the_runs_and_redeliveries() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    awaiting_choice_of_the_bank(&w, &runner).await;
    // A standard queue: nothing deduplicates the watchdog's messages but the process itself.
    let trucks = MemorySqs::default();
    let dog = watchdog(&w.table, &trucks);

    let early = dog.run(now_ms()).await.unwrap();
    assert!(early.overdue_choices.is_empty(), "not overdue yet: {early:?}");
    assert!(drain::<TruckMessage>(&trucks).is_empty());

    let later = now_ms() + HOUR.as_millis() as u64 + 1;
    for _ in 0..3 {
        let report = dog.run(later).await.unwrap();
        assert_eq!(report.overdue_choices, [format!("TRUCK#{}", process_id())]);
    }
    let queued = drain::<TruckMessage>(&trucks);
    assert_eq!(queued.len(), 3, "one message per run");
    for (_, message) in queued.iter().chain(queued.iter()) {
        runner.handle(message.clone()).await.unwrap();
    }
    let sent = reminders(&w);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let offers: Vec<&str> =
        sent[0]["offers"].as_array().unwrap().iter().map(|o| o["insurer"].as_str().unwrap()).collect();
    assert_eq!(offers, ["renaissance", "ingostrah"], "the approved offers, cheapest first");
    assert!(sent[0]["waitingSinceMs"].as_u64().unwrap() > 0);
    let p = w.process().await;
    assert!(p.choice_reminded);
    assert_eq!(p.stage, TruckStage::AwaitingChoice, "still waiting for the bank");
}

#[tokio::test]
async fn on_the_fifo_queue_runs_within_five_minutes_are_one_message() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    awaiting_choice_of_the_bank(&w, &runner).await;
    let trucks = fifo();
    let dog = watchdog(&w.table, &trucks);
    let later = now_ms() + HOUR.as_millis() as u64 + 1;
    dog.run(later).await.unwrap();
    dog.run(later + 1).await.unwrap();
    let queued = drain::<TruckMessage>(&trucks);
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0.as_deref(), Some(process_id().as_str()), "the process id's group");
}

#[tokio::test]
async fn processes_not_waiting_for_a_choice_are_not_reminded_and_stuck_means_waiting_on_polis_or_a_partner() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    let trucks = MemorySqs::default();
    let dog = watchdog(&w.table, &trucks);
    let later = || now_ms() + 3 * HOUR.as_millis() as u64;
    // An automatic choice: scoring at MUST, then the customer is to pay.
    crate::services::test_support::up_to_payment(&w, &runner).await;
    assert_eq!(w.process().await.stage, TruckStage::Scoring);
    let scoring = dog.run(later()).await.unwrap();
    assert_eq!(scoring.stuck, [("truck".to_owned(), 1), ("loan".to_owned(), 0)], "MUST owes the next step");
    runner
        .handle(hook(HookKind::Approved, r#"{"insuranceCompany":"ingostrah","writtenPremium":1000}"#))
        .await
        .unwrap();
    assert_eq!(w.process().await.stage, TruckStage::AwaitingPayment);
    let report = dog.run(later()).await.unwrap();
    assert!(report.overdue_choices.is_empty());
    assert!(drain::<TruckMessage>(&trucks).is_empty());
    assert_eq!(
        report.stuck,
        [("truck".to_owned(), 0), ("loan".to_owned(), 0)],
        "the customer owes it: waiting, not stuck"
    );
    let fresh = dog.run(now_ms()).await.unwrap();
    assert_eq!(fresh.stuck, [("truck".to_owned(), 0), ("loan".to_owned(), 0)]);
}

#[tokio::test]
async fn a_choice_made_before_the_watchdog_message_arrives_leaves_nothing_to_remind() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    awaiting_choice_of_the_bank(&w, &runner).await;
    let trucks = MemorySqs::default();
    watchdog(&w.table, &trucks).run(now_ms() + HOUR.as_millis() as u64 + 1).await.unwrap();
    let choice = TruckEvent::InsurerChosen {
        id: "evt-choice".into(),
        insurer: crate::domain::must::insurer::Insurer::parse("ingostrah").unwrap(),
        method: None,
    };
    runner
        .handle(TruckMessage::BankEvent { process_id: process_id(), event: choice, replays: 0 })
        .await
        .unwrap();
    for (_, message) in drain::<TruckMessage>(&trucks) {
        runner.handle(message).await.unwrap();
    }
    assert!(reminders(&w).is_empty());
    let p = w.process().await;
    assert_eq!(
        (p.stage, p.chosen.as_ref().map(|i| i.as_str())),
        (TruckStage::AwaitingPayment, Some("ingostrah"))
    );
}

#[tokio::test]
async fn a_recognition_that_does_not_come_in_time_lets_our_card_go_once_whatever_the_runs() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    w.table.create(&TruckProcess::start(truck_request())).await.unwrap();
    runner.handle(drive()).await.unwrap();
    for (kind, body) in [
        (HookKind::DocumentsTypesRequired, r#"{"documentTypes":[11,12]}"#),
        (HookKind::DocumentsUploadCompleted, "{}"),
    ] {
        runner.handle(hook(kind, body)).await.unwrap();
    }
    assert_eq!(w.process().await.stage, TruckStage::AwaitingRecognition);
    let trucks = MemorySqs::default();
    let dog = watchdog(&w.table, &trucks);
    let early = dog.run(now_ms() + 30_000).await.unwrap();
    assert!(early.overdue_recognitions.is_empty(), "within the wait: {early:?}");
    let later = now_ms() + 61_000;
    for _ in 0..2 {
        let report = dog.run(later).await.unwrap();
        assert_eq!(report.overdue_recognitions, [format!("TRUCK#{}", process_id())]);
        assert!(report.overdue_choices.is_empty());
    }
    assert_eq!(w.must.changes("contract"), 0);
    for (_, message) in drain::<TruckMessage>(&trucks) {
        runner.handle(message).await.unwrap();
    }
    assert_eq!(w.must.changes("contract"), 1, "our card went, once");
    let p = w.process().await;
    assert_eq!((p.stage, p.prefilled_contract), (TruckStage::Preparing, None));
    assert!(dog.run(later + 61_000).await.unwrap().overdue_recognitions.is_empty(), "no longer waiting");
}

#[test]
fn minutes_are_read_whole_or_in_fractions() {
    assert_eq!(minutes("M", "60"), Ok(HOUR));
    assert_eq!(minutes("M", "0.1"), Ok(Duration::from_secs(6)));
    assert!(minutes("M", "soon").is_err());
    assert!(minutes("M", "-1").is_err());
}
