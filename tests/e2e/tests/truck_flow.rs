//! Every MUST simulator scenario through the local stack: each asserts the
//! final process record in DynamoDB, the events on the bank queue, and the S3
//! objects.

mod common;

use std::time::Duration;

use common::{harness, ids, items, run, FLOW_TIMEOUT};
use polis_e2e::kinds;
use polis_must_sim::{InsurerResult, OfferOutcome, Scenario};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn insurer(name: &str, outcome: OfferOutcome, premium: f64) -> InsurerResult {
    InsurerResult { insurer: name.into(), outcome, premium, error_code: None }
}

const HAPPY_NOTICES: [&str; 4] =
    ["truck.offer", "truck.payment-link-ready", "truck.paid", "truck.policy-issued"];

/// Starts a truck process with `scenario` and waits until its policy is issued and the bank told.
/// Returns the process id, the final process record and the `truck.policy-issued` notice.
async fn issue(name: &str, scenario: Scenario) -> (String, Value, Value) {
    let h = harness();
    let (pid, vin) = ids(name);
    h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
    let process = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
    let notice = h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
    (pid, process, notice)
}

/// Checks every archived policy file: in S3 once, a PDF, SHA-256 in metadata, record and notice.
async fn assert_archived(process: &Value, notice: &Value) {
    let h = harness();
    let files = process["policy"]["files"].as_array().expect("policy files");
    assert!(!files.is_empty());
    assert_eq!(&notice["files"], &process["policy"]["files"], "the bank is told exactly what was archived");
    for file in files {
        let key = file["key"].as_str().unwrap();
        let pid = process["id"].as_str().unwrap();
        assert_eq!(key, format!("policies/{pid}/{}.pdf", file["blobId"].as_str().unwrap()));
        let (bytes, metadata) = h.archived(key).await.expect("archived object");
        assert!(
            bytes[..1024.min(bytes.len())].windows(5).any(|w| w == b"%PDF-"),
            "a PDF, as readers see one"
        );
        assert_eq!(file["contentType"], "application/pdf");
        let sha = hex::encode(Sha256::digest(&bytes));
        assert_eq!(file["sha256"], json!(sha));
        assert_eq!(metadata.get("sha256"), Some(&sha));
        assert_eq!(file["size"], json!(bytes.len()));
        let versions =
            h.s3().list_object_versions().bucket(&h.archive_bucket).prefix(key).send().await.unwrap();
        assert_eq!(versions.versions().len(), 1, "archived once, never re-written");
    }
}

#[test]
fn one_insurer_approves_and_the_policy_is_archived() {
    run(async {
        let h = harness();
        let (pid, p, notice) = issue("one", Scenario::default()).await;
        assert_eq!(p["chosen"], "ingostrah");
        assert_eq!(p["documents"]["status"], "accepted");
        assert_eq!(p["contract"]["status"], "accepted");
        assert_eq!(p["outbox"]["pending"], json!([]));
        assert_eq!(kinds(&h.notifications(&pid)), HAPPY_NOTICES);
        assert_eq!(h.notifications(&pid)[0]["premium"], json!(17847.29));
        assert_archived(&p, &notice).await;
        // The scoringId maps back to the process.
        let map = items(h, &format!("SCORING#{}", p["scoring_id"].as_str().unwrap())).await;
        assert_eq!(map[0]["target"].as_s().unwrap(), &format!("TRUCK#{pid}"));
    });
}

#[test]
fn two_insurers_approve_and_the_cheaper_offer_is_bought() {
    run(async {
        let h = harness();
        let scenario = Scenario {
            insurers: vec![
                insurer("ingostrah", OfferOutcome::Approved, 21000.0),
                insurer("renaissance", OfferOutcome::Approved, 17000.0),
            ],
            ..Scenario::default()
        };
        let (pid, p, notice) = issue("two", scenario).await;
        assert_eq!(p["chosen"], "renaissance");
        assert_eq!(p["offers"]["ingostrah"]["status"], "approved");
        assert_eq!(notice["insurer"], "renaissance");
        let notices = h.notifications(&pid);
        let link = notices.iter().find(|n| n["type"] == "truck.payment-link-ready").unwrap();
        assert_eq!(link["insurer"], "renaissance");
        assert_eq!(notices.iter().filter(|n| n["type"] == "truck.offer").count(), 2);
        assert_archived(&p, &notice).await;
    });
}

#[test]
fn no_insurer_approves_and_the_bank_is_told_rejected() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("rej");
        let mut failed = insurer("renaissance", OfferOutcome::Failed, 0.0);
        failed.error_code = Some(1601);
        let scenario = Scenario {
            insurers: vec![insurer("ingostrah", OfferOutcome::Rejected, 0.0), failed],
            ..Scenario::default()
        };
        h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
        h.wait_for_notification(&pid, "truck.rejected", FLOW_TIMEOUT).await.unwrap();
        let p = h.wait_for_stage(&pid, "rejected", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(p["chosen"], Value::Null);
        let notices = h.notifications(&pid);
        assert_eq!(kinds(&notices), ["truck.offer", "truck.offer", "truck.rejected"]);
        assert_eq!(notices[1]["outcome"], "failed");
        assert_eq!(notices[1]["error"]["code"], "1601");
        assert_eq!(notices[1]["error"]["category"], "renaissance");
        let archived = h
            .s3()
            .list_objects_v2()
            .bucket(&h.archive_bucket)
            .prefix(format!("policies/{pid}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(archived.key_count(), Some(0));
    });
}

#[test]
fn a_rejected_document_is_fixed_by_the_bank_and_the_flow_completes() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("fix");
        h.start_truck_process(&pid, &vin, Scenario { upload_failures: 1, ..Scenario::default() }, false)
            .await
            .unwrap();
        let to_fix = h.wait_for_notification(&pid, "truck.documents-to-fix", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(to_fix["problems"][0]["typeId"], 11);
        assert_eq!(to_fix["problems"][0]["reason"], "document is unreadable");
        let rescan = h.put_document(&pid, 11, "sts-rescan.pdf").await.unwrap();
        h.send_bank_event(&json!({
            "type": "truck.documents-corrected", "eventId": format!("fix-{pid}"), "requestId": pid, "documents": [rescan],
        }))
        .await
        .unwrap();
        let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(p["document_rounds"], 2);
        let sts =
            p["request"]["documents"].as_array().unwrap().iter().find(|d| d["typeId"] == 11).unwrap().clone();
        assert_eq!(sts["fileName"], "sts-rescan.pdf");
        let notice = h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(kinds(&h.notifications(&pid))[0], "truck.documents-to-fix");
        assert_archived(&p, &notice).await;
    });
}

#[test]
fn a_failed_hook_ends_the_process_with_code_category_and_customer_text() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("fail");
        // MUST's own fault: nothing for the bank to correct or wait out.
        h.start_truck_process(&pid, &vin, Scenario { fail_with: Some(1301), ..Scenario::default() }, false)
            .await
            .unwrap();
        let failed = h.wait_for_notification(&pid, "truck.failed", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(failed["error"]["code"], "1301");
        assert_eq!(failed["error"]["category"], "system");
        assert_eq!(
            failed["error"]["customerTextRu"],
            "Произошла непредвиденная ошибка. Уже работаем над ее устранением."
        );
        let p = h.wait_for_stage(&pid, "failed", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(p["error"]["code"], "1301");
    });
}

#[test]
fn every_hook_delivered_twice_is_stored_once_and_applied_once() {
    run(async {
        let h = harness();
        let (pid, p, _) = issue("dup", Scenario { duplicate_hooks: true, ..Scenario::default() }).await;
        tokio::time::sleep(Duration::from_secs(2)).await; // let any late duplicate land
        let sid = p["scoring_id"].as_str().unwrap();
        let stored = items(h, &format!("HOOK#{sid}")).await;
        // types-required, upload-completed, recognition's and our card's update-completed,
        // started, approved, draft-issued, payment-link-generated, policy-is-paid, policy-issued.
        assert_eq!(stored.len(), 10, "ten distinct hooks, each stored once");
        assert_eq!(p["applied"].as_array().unwrap().len(), 10);
        assert_eq!(kinds(&h.notifications(&pid)), HAPPY_NOTICES, "no notice twice");
    });
}

/// The card MUST holds at the end: the bank's values, recognition's where the bank gave none.
fn assert_contract_is_ours_over_recognition(vin: &str) {
    let contract = harness().must.sim.contract(vin).expect("MUST holds a contract");
    assert_eq!(contract["vin"], vin, "the bank's VIN, not the recognised one");
    assert_eq!(contract["owner"]["name"], "Петров Пётр Петрович");
    assert_eq!(contract["engineNumber"], "5738777", "recognition fills what the bank did not give");
    assert_eq!(contract["owner"]["ogrn"], "1027700132195");
}

#[test]
fn a_contract_recognised_before_ours_is_filled_in_by_ours_and_kept() {
    run(async {
        let h = harness();
        let (pid, p, _) =
            issue("prefill", Scenario { prefilled_contract: true, ..Scenario::default() }).await;
        assert_eq!(p["prefilled_contract"]["source"], "recognition");
        assert_eq!(p["contract"]["status"], "accepted");
        let vin = p["request"]["vehicle"]["vin"].as_str().unwrap();
        assert_contract_is_ours_over_recognition(vin);
        assert_eq!(h.must.sim.changes(vin).get("contract"), Some(&1), "one card, after recognition");
        assert_eq!(kinds(&h.notifications(&pid)), HAPPY_NOTICES);
    });
}

#[test]
fn a_contract_recognised_after_ours_does_not_silently_replace_it() {
    run(async {
        let h = harness();
        let scenario = Scenario { prefilled_contract: true, late_recognition: true, ..Scenario::default() };
        let (pid, p, _) = issue("late-recognition", scenario).await;
        let vin = p["request"]["vehicle"]["vin"].as_str().unwrap();
        assert_eq!(p["contract"]["status"], "accepted");
        assert_eq!(h.must.sim.changes(vin).get("contract"), Some(&2), "ours, overwritten, then ours again");
        assert_contract_is_ours_over_recognition(vin);
        assert_eq!(kinds(&h.notifications(&pid)), HAPPY_NOTICES);
    });
}

#[test]
fn a_legal_entity_pays_by_invoice_and_the_payment_order_issues_the_policy() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("inv");
        h.start_truck_process(&pid, &vin, Scenario::default(), true).await.unwrap();
        let invoice = h.wait_for_notification(&pid, "truck.invoice-ready", FLOW_TIMEOUT).await.unwrap();
        let key = invoice["files"][0]["key"].as_str().unwrap();
        assert!(key.starts_with(&format!("invoices/{pid}/")));
        let (bytes, _) = h.archived(key).await.unwrap();
        assert!(bytes.starts_with(b"%PDF-"));
        let order = h.put_document(&pid, 100, "payment-order.pdf").await.unwrap();
        h.send_bank_event(&json!({
            "type": "truck.payment-order", "eventId": format!("po-{pid}"), "requestId": pid, "document": order,
        }))
        .await
        .unwrap();
        let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(p["payment"]["status"], "paid");
        let notice = h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(
            kinds(&h.notifications(&pid)),
            ["truck.offer", "truck.invoice-ready", "truck.paid", "truck.policy-issued"]
        );
        assert_archived(&p, &notice).await;
    });
}

#[test]
fn the_same_bank_request_twice_gives_one_process() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("twice");
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(kinds(&h.notifications(&pid)), HAPPY_NOTICES);
        let effects = items(h, &format!("TRUCK#{pid}")).await;
        let inits = effects.iter().filter(|i| i["sk"].as_s().unwrap().starts_with("EFFECT#init#")).count();
        assert_eq!(inits, 1);
        assert!(p["scoring_id"].is_string());
    });
}
