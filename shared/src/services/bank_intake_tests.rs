//! The bank's events in, on the in-memory ports: what is created, what is queued in
//! which FIFO group, what is kept and what the bank is told.

use serde_json::json;

use super::*;
use crate::adapters::memory::{MemorySqs, MemoryTable};
use crate::domain::truck::bank::BankDocument;
use crate::domain::workflow::Workflow;
use crate::keys::ProcessKey;
use crate::services::test_support::{
    drain, edited, fifo, kept, loan_issued, loan_key, process_id, sent_json, sid, truck_key, truck_request,
    Flaky, LOAN_ISSUED, LOAN_NUMBER, REQUEST_ID, TRUCK_DOCUMENTS_CORRECTED, TRUCK_PAYMENT_ORDER,
    TRUCK_POLICY_REQUESTED,
};

/// The intake's ports: the table, the two process queues and the bank's notices.
struct Desk<S = MemoryTable, Q = MemorySqs> {
    table: S,
    trucks: Q,
    loans: MemorySqs,
    notices: MemorySqs,
}

impl Desk {
    fn new() -> Desk {
        Desk { table: MemoryTable::default(), trucks: fifo(), loans: fifo(), notices: MemorySqs::default() }
    }
}

impl<S: Clone, Q: Clone> Desk<S, Q> {
    fn intake(&self) -> BankIntake<S, Q, MemorySqs, MemorySqs> {
        BankIntake {
            store: self.table.clone(),
            trucks: self.trucks.clone(),
            loans: self.loans.clone(),
            outbox: self.notices.clone(),
        }
    }
}

/// The stored process's version, if it is stored.
async fn version<P: crate::ports::StoredProcess>(table: &MemoryTable, key: &ProcessKey) -> Option<u64> {
    table.load::<P>(key).await.unwrap().map(|p| p.version)
}

/// The example process, stored and initialized with MUST's scoringId `sc-1`.
async fn initialized(table: &MemoryTable) {
    let mut p = TruckProcess::start(truck_request());
    table.create(&p).await.unwrap();
    p.apply(TruckEvent::Initialized { scoring_id: sid("sc-1") });
    table.save(&p, 1, &["SCORING#sc-1".to_owned()]).await.unwrap();
}

fn correction() -> TruckEvent {
    let document = BankDocument {
        type_id: 11,
        s3_key: "inbound/REQ-2026-0001/sts-rescan.pdf".into(),
        file_name: "sts-rescan.pdf".into(),
    };
    TruckEvent::DocumentsCorrected { id: "evt-0002".into(), documents: vec![document] }
}

#[tokio::test]
async fn a_policy_request_creates_its_process_and_queues_a_drive_in_its_own_group() {
    let desk = Desk::new();
    desk.intake().handle(TRUCK_POLICY_REQUESTED).await.unwrap();
    let p = desk.table.load::<TruckProcess>(&truck_key()).await.unwrap().expect("created");
    assert_eq!((p.version, p.value.stage_name().as_str()), (1, "initializing"));
    assert_eq!(p.value.request, truck_request());
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&desk.trucks);
    assert_eq!(queued, [(Some(REQUEST_ID.to_owned()), TruckMessage::Drive { process_id: process_id() })]);
    assert!(desk.loans.sent().is_empty() && desk.notices.sent().is_empty());
    assert!(kept(&desk.table).await.is_empty());
}

#[tokio::test]
async fn a_repeated_policy_request_leaves_the_process_as_it_is_and_is_queued_once() {
    let desk = Desk::new();
    initialized(&desk.table).await;
    desk.intake().handle(TRUCK_POLICY_REQUESTED).await.unwrap();
    desk.intake().handle(TRUCK_POLICY_REQUESTED).await.unwrap();
    assert_eq!(version::<TruckProcess>(&desk.table, &truck_key()).await, Some(2), "not created again");
    let p = desk.table.load::<TruckProcess>(&truck_key()).await.unwrap().unwrap().value;
    assert_eq!(p.scoring_id, Some(sid("sc-1")));
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&desk.trucks);
    assert_eq!(
        queued,
        [(Some("sc-1".to_owned()), TruckMessage::Drive { process_id: process_id() })],
        "driven again in the group its hooks use, once per bank event id"
    );
}

#[tokio::test]
async fn a_documents_correction_goes_to_the_process_in_its_scoring_group() {
    let desk = Desk::new();
    initialized(&desk.table).await;
    desk.intake().handle(TRUCK_DOCUMENTS_CORRECTED).await.unwrap();
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&desk.trucks);
    let expected = TruckMessage::BankEvent { process_id: process_id(), event: correction(), replays: 0 };
    assert_eq!(queued, [(Some("sc-1".to_owned()), expected)]);
    assert_eq!(version::<TruckProcess>(&desk.table, &truck_key()).await, Some(2), "the runner applies it");
}

#[tokio::test]
async fn a_payment_order_before_init_goes_to_the_process_in_its_request_group() {
    let desk = Desk::new();
    desk.table.create(&TruckProcess::start(truck_request())).await.unwrap();
    desk.intake().handle(TRUCK_PAYMENT_ORDER).await.unwrap();
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&desk.trucks);
    let document = BankDocument {
        type_id: 100,
        s3_key: "inbound/REQ-2026-0001/payment-order.pdf".into(),
        file_name: "payment-order.pdf".into(),
    };
    let event = TruckEvent::PaymentOrderReceived { id: "evt-0003".into(), document, insurer: None };
    let expected = TruckMessage::BankEvent { process_id: process_id(), event, replays: 0 };
    assert_eq!(queued, [(Some(REQUEST_ID.to_owned()), expected)]);
}

#[tokio::test]
async fn a_correction_for_a_process_we_do_not_have_is_queued_for_the_runner_to_keep() {
    let desk = Desk::new();
    desk.intake().handle(TRUCK_DOCUMENTS_CORRECTED).await.unwrap();
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&desk.trucks);
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0.as_deref(), Some(REQUEST_ID));
    assert_eq!(version::<TruckProcess>(&desk.table, &truck_key()).await, None, "no process is made up");
}

#[tokio::test]
async fn a_loan_issued_creates_the_loan_and_queues_a_drive_under_its_number_once() {
    let desk = Desk::new();
    desk.intake().handle(LOAN_ISSUED).await.unwrap();
    desk.intake().handle(LOAN_ISSUED).await.unwrap();
    let p = desk.table.load::<LoanProcess>(&loan_key()).await.unwrap().expect("created");
    assert_eq!((p.version, p.value.stage_name().as_str()), (1, "calculating"));
    assert_eq!(p.value.loan, loan_issued());
    let queued: Vec<(Option<String>, LoanMessage)> = drain(&desk.loans);
    assert_eq!(
        queued,
        [(Some(LOAN_NUMBER.to_owned()), LoanMessage::Drive { loan_number: LOAN_NUMBER.into() })]
    );
    assert!(desk.trucks.sent().is_empty() && desk.notices.sent().is_empty());
}

#[tokio::test]
async fn an_invalid_policy_request_is_kept_with_every_reason_and_the_bank_is_told() {
    let desk = Desk::new();
    let body = edited(TRUCK_POLICY_REQUESTED, |v| {
        v["vehicle"]["vin"] = json!("SHORT");
        v["documents"] = json!([]);
    });
    desk.intake().handle(&body).await.unwrap();
    let items = kept(&desk.table).await;
    let [item] = &items[..] else { panic!("{items:?}") };
    assert_eq!(
        item.origin,
        KeptOrigin::BankEvent { event_id: "evt-0001".into(), event_type: "truck.policy-requested".into() }
    );
    assert_eq!(item.reason, "vehicle.vin: 17 letters or digits; documents: at least one document");
    assert_eq!(item.body, body, "kept verbatim");
    let notices = sent_json(&desk.notices);
    let [notice] = &notices[..] else { panic!("{notices:?}") };
    assert_eq!(notice["type"], "truck.request-invalid");
    assert_eq!(
        (notice["processId"].as_str(), notice["rejectedEventId"].as_str()),
        (Some(REQUEST_ID), Some("evt-0001"))
    );
    assert!(notice["eventId"].as_str().unwrap().starts_with("REQ-2026-0001-invalid-"));
    assert_eq!(
        notice["problems"],
        json!([
            {"field": "vehicle.vin", "problem": "17 letters or digits"},
            {"field": "documents", "problem": "at least one document"}
        ])
    );
    assert_eq!(version::<TruckProcess>(&desk.table, &truck_key()).await, None);
    assert!(desk.trucks.sent().is_empty());
}

#[tokio::test]
async fn a_request_naming_another_requests_document_is_refused() {
    let desk = Desk::new();
    let body = edited(TRUCK_POLICY_REQUESTED, |v| {
        v["documents"][1]["s3Key"] = json!("inbound/REQ-2026-0002/pts.pdf");
        v["documents"][2]["s3Key"] = json!("elsewhere/diagnostic-card.pdf");
    });
    desk.intake().handle(&body).await.unwrap();
    let items = kept(&desk.table).await;
    let [item] = &items[..] else { panic!("{items:?}") };
    let under = "a key under inbound/REQ-2026-0001/ without empty, '.' or '..' segments";
    assert_eq!(item.reason, format!("documents[1].s3Key: {under}; documents[2].s3Key: {under}"));
    assert_eq!(version::<TruckProcess>(&desk.table, &truck_key()).await, None, "no process, no download");
    assert!(desk.trucks.sent().is_empty());
}

#[tokio::test]
async fn an_invalid_loan_is_kept_and_answered_with_bima_failed() {
    let desk = Desk::new();
    let body = edited(LOAN_ISSUED, |v| v["borrower"]["tin"] = json!("12345"));
    desk.intake().handle(&body).await.unwrap();
    let items = kept(&desk.table).await;
    let [item] = &items[..] else { panic!("{items:?}") };
    assert_eq!(
        item.origin,
        KeptOrigin::BankEvent { event_id: "evt-loan-0001".into(), event_type: "loan.issued".into() }
    );
    assert_eq!(item.reason, "borrower.tin: a Tajik INN has 9 digits");
    let notices = sent_json(&desk.notices);
    let [notice] = &notices[..] else { panic!("{notices:?}") };
    assert_eq!(
        (notice["type"].as_str(), notice["loanNumber"].as_str()),
        (Some("bima.failed"), Some(LOAN_NUMBER))
    );
    assert_eq!(notice["error"]["code"], "invalid-event");
    assert_eq!(notice["error"]["message"], "event evt-loan-0001 refused");
    assert_eq!(notice["problems"], json!([{"field": "borrower.tin", "problem": "a Tajik INN has 9 digits"}]));
    assert_eq!(version::<LoanProcess>(&desk.table, &loan_key()).await, None);
    assert!(desk.loans.sent().is_empty());
}

#[tokio::test]
async fn an_unreadable_truck_event_naming_its_request_is_kept_and_answered() {
    let desk = Desk::new();
    let body = edited(TRUCK_DOCUMENTS_CORRECTED, |v| {
        v.as_object_mut().unwrap().remove("documents");
    });
    desk.intake().handle(&body).await.unwrap();
    let items = kept(&desk.table).await;
    assert_eq!(items.len(), 1);
    assert!(items[0].reason.starts_with("$: missing field `documents`"), "{}", items[0].reason);
    let notices = sent_json(&desk.notices);
    assert_eq!(notices.len(), 1);
    assert_eq!(
        (notices[0]["type"].as_str(), notices[0]["processId"].as_str()),
        (Some("truck.request-invalid"), Some(REQUEST_ID))
    );
    assert!(desk.trucks.sent().is_empty());
}

#[tokio::test]
async fn an_event_naming_no_usable_request_is_kept_and_nobody_is_told() {
    let desk = Desk::new();
    let foreign = r#"{"type":"mortgage.issued","eventId":"e-9"}"#;
    desk.intake().handle(foreign).await.unwrap();
    desk.intake().handle("not json at all").await.unwrap();
    let bad_request = edited(TRUCK_DOCUMENTS_CORRECTED, |v| v["requestId"] = json!("../REQ"));
    desk.intake().handle(&bad_request).await.unwrap();
    let items = kept(&desk.table).await;
    assert_eq!(items.len(), 3, "{items:?}");
    let reason_of = |body: &str| items.iter().find(|i| i.body == body).map(|i| i.reason.clone()).unwrap();
    assert!(reason_of(foreign).starts_with(r#"type: unknown event type "mortgage.issued""#));
    assert!(reason_of("not json at all").starts_with("$: expected"), "{}", reason_of("not json at all"));
    assert!(reason_of(&bad_request).starts_with("$: processId must be"), "{}", reason_of(&bad_request));
    assert!(desk.notices.sent().is_empty(), "no process or loan to address a notice to");
    assert!(desk.trucks.sent().is_empty() && desk.loans.sent().is_empty());
}

#[tokio::test]
async fn the_same_refused_event_is_kept_once_and_its_notices_share_one_id() {
    let desk = Desk::new();
    let body = edited(TRUCK_POLICY_REQUESTED, |v| v["vehicle"]["vin"] = json!("SHORT"));
    desk.intake().handle(&body).await.unwrap();
    desk.intake().handle(&body).await.unwrap();
    assert_eq!(kept(&desk.table).await.len(), 1);
    let notices = sent_json(&desk.notices);
    assert_eq!(notices.len(), 2);
    assert_eq!(notices[0]["eventId"], notices[1]["eventId"], "the bank de-duplicates by it");
}

#[tokio::test]
async fn an_event_whose_process_cannot_be_created_is_given_back_and_done_on_redelivery() {
    let inner = Desk::new();
    let desk = Desk {
        table: Flaky::new(inner.table.clone()),
        trucks: inner.trucks.clone(),
        loans: inner.loans,
        notices: inner.notices,
    };
    desk.table.fail_next(1);
    assert!(matches!(desk.intake().handle(TRUCK_POLICY_REQUESTED).await, Err(RetryLater::Infra(_))));
    assert!(desk.trucks.sent().is_empty());
    desk.intake().handle(TRUCK_POLICY_REQUESTED).await.unwrap();
    assert_eq!(version::<TruckProcess>(&inner.table, &truck_key()).await, Some(1));
    assert_eq!(desk.trucks.sent().len(), 1);
}

#[tokio::test]
async fn a_request_whose_message_was_not_queued_is_queued_on_redelivery() {
    let inner = Desk::new();
    let desk = Desk {
        table: inner.table.clone(),
        trucks: Flaky::new(inner.trucks.clone()),
        loans: inner.loans,
        notices: inner.notices,
    };
    desk.trucks.fail_next(1);
    assert!(desk.intake().handle(TRUCK_POLICY_REQUESTED).await.is_err());
    assert_eq!(
        version::<TruckProcess>(&desk.table, &truck_key()).await,
        Some(1),
        "created before the queue failed"
    );
    desk.intake().handle(TRUCK_POLICY_REQUESTED).await.unwrap();
    let queued: Vec<(Option<String>, TruckMessage)> = drain(&inner.trucks);
    assert_eq!(queued, [(Some(REQUEST_ID.to_owned()), TruckMessage::Drive { process_id: process_id() })]);
}

#[tokio::test]
async fn a_refused_event_that_cannot_be_kept_is_given_back_before_the_bank_is_told() {
    let inner = Desk::new();
    let desk = Desk {
        table: Flaky::new(inner.table.clone()),
        trucks: inner.trucks,
        loans: inner.loans,
        notices: inner.notices,
    };
    let body = edited(LOAN_ISSUED, |v| v["borrower"]["tin"] = json!("12345"));
    desk.table.fail_next(1);
    assert!(desk.intake().handle(&body).await.is_err());
    assert!(desk.notices.sent().is_empty(), "told only once it is kept");
    desk.intake().handle(&body).await.unwrap();
    assert_eq!((kept(&inner.table).await.len(), desk.notices.sent().len()), (1, 1));
}
