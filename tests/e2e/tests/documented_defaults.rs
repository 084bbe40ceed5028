//! polis against MUST and BIMA where their documents settle what round one assumed
//! (issue 21): MUST as its seed alone describes it (one insurer, no insurer named in
//! any hook), the contract sent after recognition, errors the bank can correct, the
//! card and file names of MUST's other documents, and BIMA sending its own print
//! link. Each test asserts what the partner saw, the final state and the bank's
//! notices.

mod common;

use std::time::Duration;

use common::{harness, ids, loan_ids, run_on, FLOW_TIMEOUT};
use polis_e2e::{kinds, Harness, StackOptions};
use polis_must_sim::{PolicyNaming, Scenario};
use serde_json::{json, Value};

/// The template's defaults (BIMA sends its own print link; a 60 s recognition wait).
fn documented() -> StackOptions {
    StackOptions { bima_print_link_by: None, ..StackOptions::default() }
}

const HAPPY_NOTICES: [&str; 4] =
    ["truck.offer", "truck.payment-link-ready", "truck.paid", "truck.policy-issued"];

#[test]
fn an_agent_with_one_insurer_gets_the_seeds_hooks_and_the_policy_is_issued() {
    run_on(documented(), async {
        let h = harness();
        let (pid, vin) = ids("seed-only");
        h.start_truck_process(&pid, &vin, Scenario { seed_only: true, ..Scenario::default() }, false)
            .await
            .unwrap();
        let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        // The seed's MUST refuses a payment request naming an insurer (403): one went, unnamed.
        let received = h.must.sim.received(&vin);
        assert_eq!(received.get("payment-link"), Some(&1), "{received:?}");
        assert_eq!(h.must.sim.changes(&vin).get("payment-link"), Some(&1));
        assert_eq!(p["chosen"], "must-agent", "the agent's one insurer, unnamed");
        let notices = h.notifications(&pid);
        assert_eq!(kinds(&notices), HAPPY_NOTICES);
        assert_eq!(notices[0]["insurer"], "must-agent");
        let issued = h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
        assert!(!issued["files"].as_array().unwrap().is_empty(), "the policy archived: {issued}");
        let kept = h.quarantined().await.unwrap();
        assert!(
            !kept
                .iter()
                .any(|k| k["origin"]["source"] == "hook" && k["origin"]["scoringId"] == p["scoring_id"]),
            "no hook of the process kept"
        );
    });
}

/// A truck policy whose documents MUST recognises `recognition` after `upload-completed`
/// (`None`: no recognition at all). Asserts the card MUST held when it started scoring was
/// ours, over what recognition filled in, and that it went once. Returns the process.
async fn recognised_after(name: &str, recognition: Option<Duration>) -> Value {
    let h = harness();
    let (pid, vin) = ids(name);
    let scenario = Scenario {
        prefilled_contract: recognition.is_some(),
        recognition_delay_ms: recognition.map_or(0, |d| d.as_millis() as u64),
        ..Scenario::default()
    };
    h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
    // The template's RecognitionWaitSeconds (60) and the watchdog's run come first when
    // recognition does not come.
    let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT * 2, |_| {}).await.unwrap();
    let scored_on = h.must.sim.contract_at_scoring(&vin).expect("MUST scored");
    assert_eq!(scored_on["vin"], vin.as_str(), "{name}: MUST scored on the bank's card: {scored_on}");
    assert_eq!(scored_on["owner"]["name"], "Петров Пётр Петрович", "{name}: {scored_on}");
    let recognised = recognition.is_some();
    assert_eq!(scored_on["engineNumber"] == "5738777", recognised, "{name}: recognition fills gaps only");
    assert_eq!(h.must.sim.changes(&vin).get("contract"), Some(&1), "{name}: one card, after recognition");
    assert_eq!(h.must.sim.received(&vin).get("contract"), Some(&1), "{name}");
    assert_eq!(kinds(&h.notifications(&pid)), HAPPY_NOTICES, "{name}");
    p
}

/// Whether the watchdog ended the process's wait for recognition.
fn waited_out(process: &Value) -> bool {
    process["history"].as_array().unwrap().iter().any(|h| h["kind"] == "recognition-overdue")
}

#[test]
fn a_recognition_two_seconds_after_the_upload_is_waited_for_and_our_card_fills_it_in() {
    run_on(documented(), async {
        let p = recognised_after("recognition-2s", Some(Duration::from_secs(2))).await;
        assert_eq!(p["prefilled_contract"]["source"], "recognition");
        assert!(!waited_out(&p));
    });
}

#[test]
fn a_recognition_thirty_seconds_after_the_upload_is_still_waited_for() {
    run_on(documented(), async {
        let p = recognised_after("recognition-30s", Some(Duration::from_secs(30))).await;
        assert_eq!(p["prefilled_contract"]["source"], "recognition");
        assert!(!waited_out(&p));
    });
}

#[test]
fn without_recognition_our_card_goes_once_the_wait_is_over() {
    run_on(documented(), async {
        let p = recognised_after("recognition-never", None).await;
        assert_eq!(p["prefilled_contract"], Value::Null);
        assert!(waited_out(&p), "the watchdog ended the wait: {}", p["history"]);
    });
}

#[test]
fn bima_sends_the_customer_its_print_link_itself_and_polis_never_asks_for_it() {
    run_on(documented(), async {
        let h = harness();
        for (name, answer) in [("bima-bare", None), ("bima-named", Some(polis_bima_sim::SaleAnswer::WithIds))]
        {
            let (number, customer, sum) = loan_ids(name);
            let scenario = polis_bima_sim::Scenario { sale_answer: answer, ..Default::default() };
            h.bima.sim.set_scenario(&sum, scenario);
            h.send_bank_event(&Harness::loan_event(&number, &customer, &sum)).await.unwrap();
            let stage = if answer.is_some() { "issued" } else { "sold" };
            let record = h.wait_for_loan_stage(&number, stage, FLOW_TIMEOUT).await.unwrap();
            let stats = h.bima.sim.stats();
            assert_eq!(stats.policies_by_credit.get(&number), Some(&1), "{name}: one sale");
            assert_eq!(
                stats.print_links_by_credit.get(&number),
                None,
                "{name}: the customer gets one link, BIMA's"
            );
            assert_eq!(record["print_link"], Value::Null, "{name}");
            let notice = format!("bima.policy-{stage}");
            h.wait_for_notification(&number, &notice, FLOW_TIMEOUT).await.unwrap();
        }
    });
}

#[test]
fn the_card_carries_the_truck_applications_fields_as_musts_documents_show_them() {
    run_on(documented(), async {
        let h = harness();
        let (pid, vin) = ids("card-fields");
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        // MUST refuses (1403) a card whose dates are not ISO date-times: it scored this one.
        let card = h.must.sim.contract_at_scoring(&vin).expect("MUST scored");
        assert_eq!(card["policyStartOn"], "2027-01-15T00:00:00+03:00");
        assert_eq!(
            card["technicalInspection"],
            json!({"series": ".", "number": "076260012000001",
                   "startOn": "2026-09-11T00:00:00+03:00", "endOn": "2027-09-30T00:00:00+03:00"})
        );
        assert_eq!((&card["isStandardCargo"], &card["isHighRiskCargo"]), (&json!(true), &json!(false)));
        assert_eq!(h.must.sim.changes(&vin).get("contract"), Some(&1));
    });
}

#[test]
fn both_sides_of_an_sts_go_to_must_as_that_types_files() {
    run_on(documented(), async {
        let h = harness();
        let (pid, vin) = ids("sts-sides");
        h.must.sim.set_scenario(&vin, Scenario::default());
        let documents = vec![
            h.put_document(&pid, 11, "sts-front.pdf").await.unwrap(),
            h.put_document(&pid, 11, "sts-back.pdf").await.unwrap(),
            h.put_document(&pid, 12, "pts.pdf").await.unwrap(),
        ];
        let request = Harness::truck_request(&pid, &format!("cust-{pid}"), &vin, false, documents);
        h.send_bank_event(&request).await.unwrap();
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let grouped = h.must.sim.stats().documents.get(&vin).cloned().unwrap_or_default();
        assert_eq!(grouped, [(11, 2), (12, 1)].into(), "one entry per type, with its files");
        assert_eq!(h.must.sim.changes(&vin).get("documents"), Some(&1));
    });
}

#[test]
fn every_name_musts_documents_give_a_file_is_understood_and_none_stalls_a_process() {
    run_on(documented(), async {
        let h = harness();
        let cases = [
            ("policy-blob-id", PolicyNaming::PolicyBlobId, true),
            ("policy-link", PolicyNaming::PolicyLink, true),
            ("foreign-link", PolicyNaming::ForeignLink, false),
            ("no-file", PolicyNaming::Nothing, false),
        ];
        let flows = cases.map(|(name, naming, fetched)| async move {
            let (pid, vin) = ids(name);
            let scenario = Scenario { policy_named_by: naming, ..Scenario::default() };
            h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
            let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
            let notice = h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
            let (files, pending) = (notice["files"].as_array().unwrap(), notice["pendingFiles"].as_array());
            if fetched {
                assert_eq!(files.len(), 1, "{name}: {notice}");
                let (bytes, _) = h.archived(files[0]["key"].as_str().unwrap()).await.unwrap();
                assert!(bytes.windows(5).any(|w| w == b"%PDF-"), "{name}");
            } else {
                assert!(files.is_empty(), "{name}: {notice}");
                assert_eq!(
                    pending.map(Vec::len),
                    Some(1),
                    "{name}: the file pending, the bank told: {notice}"
                );
            }
            let kept = h.quarantined().await.unwrap();
            assert!(
                !kept
                    .iter()
                    .any(|k| k["origin"]["source"] == "hook" && k["origin"]["scoringId"] == p["scoring_id"]),
                "{name}: no hook of the process kept"
            );
        });
        futures_util::future::join_all(flows).await;
    });
}

#[test]
fn an_invoice_named_by_its_download_key_is_fetched_and_paid() {
    run_on(documented(), async {
        let h = harness();
        let (pid, vin) = ids("invoice-key");
        let scenario = Scenario { invoice_by_download_key: true, ..Scenario::default() };
        h.start_truck_process(&pid, &vin, scenario, true).await.unwrap();
        let invoice = h.wait_for_notification(&pid, "truck.invoice-ready", FLOW_TIMEOUT).await.unwrap();
        let key = invoice["files"][0]["key"].as_str().expect("the invoice archived");
        assert!(key.starts_with(&format!("invoices/{pid}/key-")), "named by a digest, never the key: {key}");
        let (bytes, _) = h.archived(key).await.unwrap();
        assert!(bytes.starts_with(b"%PDF-"));
        let order = h.put_document(&pid, 100, "payment-order.pdf").await.unwrap();
        let event = json!({"type": "truck.payment-order", "eventId": format!("po-{pid}"), "requestId": pid, "document": order});
        h.send_bank_event(&event).await.unwrap();
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
    });
}

/// A truck request whose diagnostic card ends before its policy starts: MUST's own check
/// of the card it scores refuses it with 1421.
async fn request_with_an_expired_inspection(h: &Harness, pid: &str, vin: &str) -> Value {
    h.must.sim.set_scenario(vin, Scenario::default());
    let documents = vec![
        h.put_document(pid, 11, "sts.pdf").await.unwrap(),
        h.put_document(pid, 12, "pts.pdf").await.unwrap(),
    ];
    let mut request = Harness::truck_request(pid, &format!("cust-{pid}"), vin, false, documents);
    request["vehicle"]["technicalInspection"]["endOn"] = json!("2026-12-31");
    request
}

#[test]
fn a_code_the_customer_can_correct_is_corrected_by_the_bank_and_the_policy_issued_from_a_new_must_process() {
    run_on(documented(), async {
        let h = harness();
        let (pid, vin) = ids("correct");
        let request = request_with_an_expired_inspection(h, &pid, &vin).await;
        h.send_bank_event(&request).await.unwrap();
        let needed = h.wait_for_notification(&pid, "truck.correction-needed", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(needed["field"], "vehicle.technicalInspection");
        assert_eq!(needed["error"]["code"], "1421");
        assert_eq!(needed["error"]["customerTextRu"], "Введите действующую Диагностическую Карту.");
        h.wait_for_stage(&pid, "awaiting-correction", FLOW_TIMEOUT, |_| {}).await.unwrap();

        let mut vehicle = request["vehicle"].clone();
        vehicle["technicalInspection"]["endOn"] = json!("2027-12-31");
        let correction = json!({
            "type": "truck.request-corrected", "eventId": format!("fix-{pid}"), "requestId": pid, "vehicle": vehicle,
        });
        polis_contract_docs::validate_event(&correction)
            .expect("the correction is as contracts/schemas has it");
        // The same correction delivered twice acts once.
        h.send_bank_event(&correction).await.unwrap();
        h.send_bank_event(&correction).await.unwrap();
        let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();

        let scorings = h.must.sim.scorings(&vin);
        assert_eq!(scorings.len(), 2, "one new MUST process: {scorings:?}");
        assert_eq!(h.must.sim.changes(&vin).get("init"), Some(&2));
        assert_eq!(h.must.sim.changes(&vin).get("payment-link"), Some(&1));
        assert_eq!((&p["scoring_id"], &p["closed_scorings"]), (&json!(scorings[1]), &json!([scorings[0]])));
        let card = h.must.sim.contract_at_scoring(&vin).expect("MUST scored the new process");
        assert_eq!(
            card["technicalInspection"]["endOn"], "2027-12-31T00:00:00+03:00",
            "scored on the corrected card"
        );
        let notices = h.notifications(&pid);
        assert_eq!(kinds(&notices)[0], "truck.correction-needed");
        assert_eq!(kinds(&notices)[1..], HAPPY_NOTICES);
        let corrected = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["what"] == "event" && e["kind"] == "truck.request-corrected")
            .count();
        assert_eq!(corrected, 1, "the correction is in the timeline once");
    });
}

#[test]
fn a_temporary_unavailability_before_payment_is_retried_as_a_new_must_process() {
    run_on(documented(), async {
        let h = harness();
        let (pid, vin) = ids("unavailable");
        h.start_truck_process(&pid, &vin, Scenario { unavailable_first: 1, ..Scenario::default() }, false)
            .await
            .unwrap();
        let retry = h.wait_for_notification(&pid, "truck.retry-scheduled", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(retry["error"]["code"], "1205");
        assert_eq!(retry["error"]["customerTextRu"], "Оформление для Юридических лиц временно недоступно.");
        let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(h.must.sim.scorings(&vin).len(), 2);
        assert_eq!(h.must.sim.changes(&vin).get("init"), Some(&2));
        assert_eq!(p["retries"], 1);
        assert!(p["history"].as_array().unwrap().iter().any(|e| e["kind"] == "retry-due"), "in the timeline");
    });
}

#[test]
fn a_payment_deadline_that_passes_expires_the_process_and_no_other_insurer_is_asked() {
    run_on(documented(), async {
        let h = harness();
        let (pid, vin) = ids("deadline");
        let approved = |insurer: &str, premium: f64| polis_must_sim::InsurerResult {
            insurer: insurer.into(),
            outcome: polis_must_sim::OfferOutcome::Approved,
            premium,
            error_code: None,
        };
        let scenario = Scenario {
            insurers: vec![approved("ingostrah", 17847.29), approved("renaissance", 19000.0)],
            payment_deadline_passes: true,
            ..Scenario::default()
        };
        h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
        let p = h.wait_for_stage(&pid, "expired", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let expired = h.wait_for_notification(&pid, "truck.expired", FLOW_TIMEOUT).await.unwrap();
        assert_eq!((&expired["insurer"], &expired["error"]["code"]), (&json!("ingostrah"), &json!("1603")));
        assert_eq!(p["error"]["code"], "1603");
        tokio::time::sleep(Duration::from_secs(2)).await; // let anything wrongly queued go out
        assert_eq!(h.must.sim.received(&vin).get("payment-link"), Some(&1), "renaissance is never asked");
        assert_eq!(h.must.sim.scorings(&vin).len(), 1, "never restarted after a payment request");
    });
}
