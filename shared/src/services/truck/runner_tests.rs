//! The truck runner beyond what `engine_tests` covers: hooks for a scoringId nobody
//! knows yet, hooks after the end, events for a process we do not have, and the
//! issued policy's files into the archive.

use super::*;
use crate::adapters::memory::MemoryTable;
use crate::domain::must::hook::HookKind;
use crate::domain::truck::bank::BankDocument;
use crate::domain::truck::process::TruckStage;
use crate::domain::workflow::Workflow;
use crate::services::test_support::{
    drive, hook, kept, process_id, received, sent_json, truck_key, truck_request, up_to_payment, Flaky, Plan,
    World, POLICY_PDF, UNKNOWN_SCORING_GRACE,
};

const GRACE_MS: u64 = UNKNOWN_SCORING_GRACE.as_millis() as u64;

fn approved_body(insurer: &str) -> String {
    format!(r#"{{"insuranceCompany":"{insurer}","writtenPremium":1000}}"#)
}

/// A process that ended: its only insurer rejected it.
async fn rejected(w: &World) {
    let runner = w.runner(false);
    up_to_payment(w, &runner).await;
    runner.handle(hook(HookKind::Rejected, r#"{"insuranceCompany":"ingostrah"}"#)).await.unwrap();
    assert_eq!(w.process().await.stage, TruckStage::Rejected);
}

/// A process whose policy MUST has issued, with its file `b-7`.
async fn issued(w: &World) {
    let runner = w.runner(false);
    up_to_payment(w, &runner).await;
    for (kind, body) in [
        (HookKind::Approved, approved_body("ingostrah").as_str()),
        (HookKind::PaymentLinkGenerated, r#"{"paymentLink":"https://pay.example/1"}"#),
        (HookKind::PolicyIsPaid, "{}"),
        (HookKind::PolicyIssued, r#"{"policyNumber":"XXX 5425779624","blobIds":["b-7"]}"#),
    ] {
        runner.handle(hook(kind, body)).await.unwrap();
    }
}

fn correction(id: &str) -> TruckEvent {
    let document =
        BankDocument { type_id: 11, s3_key: "inbound/x/sts.pdf".into(), file_name: "sts.pdf".into() };
    TruckEvent::DocumentsCorrected { id: id.into(), documents: vec![document] }
}

#[tokio::test]
async fn a_hook_for_an_unknown_scoring_id_waits_for_its_process_within_the_grace() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    for waited in [0, GRACE_MS - 5_000] {
        let message = TruckMessage::Hook(received(HookKind::Started, "{}", now_ms() - waited));
        match runner.handle(message).await {
            Err(RetryLater::NotYet(why)) => assert_eq!(why, "scoringId sc-1 is not mapped yet"),
            other => panic!("expected to wait, got {other:?}"),
        }
    }
    assert!(kept(&w.table).await.is_empty(), "the FIFO group waits; nothing is kept yet");
}

#[tokio::test]
async fn a_hook_for_an_unknown_scoring_id_is_kept_after_the_grace() {
    let w = World::new(MemoryTable::default());
    let body = r#"{"insuranceCompanies":["ingostrah"]}"#;
    let late = received(HookKind::Started, body, now_ms() - GRACE_MS - 1_000);
    w.runner(false).handle(TruckMessage::Hook(late.clone())).await.unwrap();
    let items = kept(&w.table).await;
    let [item] = &items[..] else { panic!("{items:?}") };
    assert_eq!(
        item.origin,
        KeptOrigin::Hook {
            kind: HookKind::Started,
            scoring_id: late.scoring_id,
            hook_id: late.hook_id,
            by_content: true,
            replays: 0,
            check: None
        }
    );
    assert!(item.reason.starts_with("unknown scoringId after 60"), "{}", item.reason);
    assert_eq!(item.body, body);
    assert!(w.table.processes().is_empty());
}

#[tokio::test]
async fn a_hook_after_the_process_ended_is_ignored_and_changes_nothing() {
    let w = World::new(MemoryTable::default());
    rejected(&w).await;
    let (before, notices) = (w.table.processes(), w.notices().len());
    let runner = w.runner(false);
    for (kind, body) in [
        (HookKind::Approved, approved_body("renaissance")),
        (HookKind::DocumentsUploadCompleted, r#"{"late":true}"#.to_owned()),
        (HookKind::Started, r#"{"insuranceCompanies":["renaissance"]}"#.to_owned()),
    ] {
        runner.handle(hook(kind, &body)).await.unwrap();
    }
    assert_eq!(w.table.processes(), before, "not written");
    assert_eq!(w.notices().len(), notices, "the bank hears nothing more");
    assert!(kept(&w.table).await.is_empty(), "history, not something for a person");
    assert_eq!(w.must.calls("payment"), 0);
}

#[tokio::test]
async fn a_payment_link_after_the_process_ended_is_kept_once_however_often_it_comes() {
    let w = World::new(MemoryTable::default());
    rejected(&w).await;
    let before = w.table.processes();
    let message = hook(HookKind::PaymentLinkGenerated, r#"{"paymentLink":"https://pay.example/9"}"#);
    let TruckMessage::Hook(h) = &message else { unreachable!() };
    let hook_id = h.hook_id.clone();
    // MUST's late retries of it (no delivery id: each is its own message) page nobody again.
    for _ in 0..3 {
        w.runner(false).handle(message.clone()).await.unwrap();
    }
    assert_eq!(w.table.processes(), before);
    let items = kept(&w.table).await;
    let [item] = &items[..] else { panic!("{items:?}") };
    assert_eq!(item.origin, KeptOrigin::Event { process: truck_key(), event_id: hook_id, replays: 0 });
    assert!(item.reason.contains("yet MUST generated a payment request"), "{}", item.reason);
}

#[tokio::test]
async fn a_bank_event_for_a_missing_process_is_kept_with_the_event() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    let missing = ProcessId::parse("REQ-404").unwrap();
    for replays in [0, 2] {
        let message =
            TruckMessage::BankEvent { process_id: missing.clone(), event: correction("evt-9"), replays };
        runner.handle(message).await.unwrap();
    }
    let items = kept(&w.table).await;
    let process = ProcessKey::Truck(missing);
    let mut origins: Vec<String> = items.iter().map(|i| format!("{:?}", i.origin)).collect();
    origins.sort();
    let expected: Vec<String> = [0, 2]
        .map(|replays| {
            format!("{:?}", KeptOrigin::Event { process: process.clone(), event_id: "evt-9".into(), replays })
        })
        .to_vec();
    assert_eq!(origins, expected, "a replay failing again is kept under its next number");
    for item in &items {
        assert_eq!(item.reason, "unknown process");
        assert_eq!(serde_json::from_str::<TruckEvent>(&item.body).unwrap(), correction("evt-9"));
    }
    assert!(w.table.processes().is_empty(), "nothing is created for it");
}

#[tokio::test]
async fn a_drive_for_a_missing_process_is_kept_as_a_drive() {
    let w = World::new(MemoryTable::default());
    w.runner(false).handle(drive()).await.unwrap();
    let items = kept(&w.table).await;
    let [item] = &items[..] else { panic!("{items:?}") };
    assert_eq!(item.origin, KeptOrigin::Event { process: truck_key(), event_id: "drive".into(), replays: 0 });
    assert_eq!((item.reason.as_str(), item.body.as_str()), ("unknown process", "null"));
    assert_eq!(w.must.calls("init"), 0);
}

#[tokio::test]
async fn a_hook_body_the_runner_cannot_read_is_kept_and_the_process_is_untouched() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    w.table.create(&TruckProcess::start(truck_request())).await.unwrap();
    runner.handle(drive()).await.unwrap();
    let before = w.table.processes();
    runner.handle(hook(HookKind::Approved, r#"{"insuranceCompany":5,"writtenPremium":1000}"#)).await.unwrap();
    assert_eq!(w.table.processes(), before);
    let items = kept(&w.table).await;
    let [item] = &items[..] else { panic!("{items:?}") };
    assert!(matches!(&item.origin, KeptOrigin::Hook { kind: HookKind::Approved, replays: 0, .. }));
    assert_eq!(item.reason, "field insuranceCompany: expected an insurer code string");
}

#[tokio::test]
async fn an_issued_policy_is_archived_and_the_bank_gets_its_file() {
    let w = World::new(MemoryTable::default());
    issued(&w).await;
    let p = w.process().await;
    assert_eq!(p.stage, TruckStage::Issued);
    let stored = w.objects.object("archive", "policies/REQ-2026-0001/b-7.pdf").expect("archived");
    assert_eq!(stored.bytes, POLICY_PDF);
    assert_eq!(w.must.calls("download"), 1);
    let notices = sent_json(&w.bank);
    let notice = notices.iter().find(|n| n["type"] == "truck.policy-issued").expect("told");
    assert_eq!(notice["processId"], process_id().as_str());
    assert_eq!(notice["policyNumber"], "XXX 5425779624");
    assert_eq!(notice["files"][0]["key"], "policies/REQ-2026-0001/b-7.pdf");
    assert_eq!(notice["files"][0]["sha256"], stored.sha256);
    assert!(kept(&w.table).await.is_empty());
}

#[tokio::test]
async fn a_policy_file_must_refuses_is_marked_pending_and_the_policy_stays_issued() {
    let w = World::new(MemoryTable::default());
    w.must.plan("download", &[Plan::Refused(404)]);
    issued(&w).await;
    let p = w.process().await;
    assert_eq!(p.stage, TruckStage::Issued);
    let policy = p.policy.expect("issued");
    assert_eq!(policy.pending_files.len(), 1);
    assert_eq!(policy.pending_files[0].blob_id, "b-7");
    assert_eq!(policy.pending_files[0].reason, "must-http-404: download refused");
    assert!(w.objects.keys("archive").is_empty());
    let items = kept(&w.table).await;
    assert!(matches!(&items[..], [i] if matches!(i.origin, KeptOrigin::ArchivePending { .. })), "{items:?}");
    let notices = sent_json(&w.bank);
    let notice = notices.iter().find(|n| n["type"] == "truck.policy-issued").expect("told all the same");
    assert_eq!(notice["pendingFiles"][0]["blobId"], "b-7");
}

#[tokio::test]
async fn a_policy_file_over_the_size_cap_is_marked_pending() {
    let w = World::new(MemoryTable::default());
    w.must.plan("download", &[Plan::Unusable]);
    issued(&w).await;
    let p = w.process().await;
    assert_eq!(p.stage, TruckStage::Issued);
    let pending = &p.policy.expect("issued").pending_files;
    assert!(pending[0].reason.starts_with("must-unusable-answer"), "{pending:?}");
}

#[tokio::test]
async fn a_held_init_whose_notice_could_not_be_sent_is_told_on_the_next_delivery() {
    let w = World::new(MemoryTable::default());
    w.table.create(&TruckProcess::start(truck_request())).await.unwrap();
    w.must.plan("init", &[Plan::LostAnswer]);
    let outbox = Flaky::new(w.bank.clone());
    let runner = w.runner_telling(false, outbox.clone());
    outbox.fail_next(1);
    assert!(runner.handle(drive()).await.is_err(), "the notice is not sent: given back");
    runner.handle(drive()).await.unwrap();
    assert_eq!(w.process().await.stage_name(), "needs-review");
    assert_eq!(w.notices().iter().filter(|(_, kind)| kind == "truck.needs-review").count(), 1);
    assert_eq!(w.must.calls("init"), 1);
}
