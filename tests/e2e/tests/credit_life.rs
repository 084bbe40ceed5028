//! Credit-life insurance through BIMA, and "My products", through the local
//! stack: each test sends `loan.issued` as the bank does and asserts the loan's
//! record in DynamoDB, the bank's notices, the archived print form, BIMA's side
//! (the simulator's counters) and what the products API answers.

mod common;

use std::time::Duration;

use common::{harness, ids, items, loan_ids, run, FLOW_TIMEOUT};
use polis_bima_sim::{PrintForm, SaleAnswer, Scenario};
use polis_e2e::{kinds, Harness};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A loan whose sale BIMA answers with the policy's id and number (the seed promises less:
/// a bare `200`, which the simulator answers unless told otherwise).
fn named(scenario: Scenario) -> Scenario {
    Scenario { sale_answer: Some(SaleAnswer::WithIds), ..scenario }
}

/// Sends the loan (BIMA answering the sale with the policy's id unless `scenario` says
/// otherwise) and waits until its record settles in `stage`; returns the record.
async fn insure_with(number: &str, customer: &str, sum: &str, scenario: Scenario, stage: &str) -> Value {
    let h = harness();
    h.bima.sim.set_scenario(sum, scenario);
    h.send_bank_event(&Harness::loan_event(number, customer, sum)).await.unwrap();
    h.wait_for_loan_stage(number, stage, FLOW_TIMEOUT).await.unwrap()
}

async fn insure(number: &str, customer: &str, sum: &str, stage: &str) -> Value {
    insure_with(number, customer, sum, named(Scenario::default()), stage).await
}

/// The premium the simulator's formula gives: 0.6 % of the sum a year, for 12 months.
fn premium_for(sum: &str) -> String {
    let cents = sum.parse::<u64>().unwrap() * 100 * 60 / 10_000;
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[test]
fn a_loan_ends_as_a_policy_in_my_products_with_its_print_link() {
    run(async {
        let h = harness();
        let (number, customer, sum) = loan_ids("life");
        let record = insure(&number, &customer, &sum, "issued").await;

        let premium = premium_for(&sum);
        assert_eq!(record["calculation"]["premium"], json!(premium));
        assert_eq!(record["calculation"]["sum_insured"], json!(sum));
        let policy_id = record["policy"]["policy_id"].as_str().unwrap().to_owned();
        let link = record["print_link"].as_str().unwrap().to_owned();
        assert_eq!(link, format!("{}/print/{policy_id}.pdf", h.bima.base_url()));

        let notice = h.wait_for_notification(&number, "bima.policy-issued", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(notice["policyId"], json!(policy_id));
        assert_eq!(notice["premium"], json!(premium));
        assert_eq!(notice["risks"], json!(["death", "disability"]));
        assert_eq!(notice["printLink"], json!(link));

        let form = &record["print_form"];
        assert_eq!(form["key"], json!(format!("credit-life/{number}/{policy_id}.pdf")));
        assert_eq!(&notice["printForm"], form, "the bank is told what was archived");
        let (bytes, metadata) = h.archived(form["key"].as_str().unwrap()).await.unwrap();
        assert!(bytes.starts_with(b"%PDF-"));
        let sha = hex::encode(Sha256::digest(&bytes));
        assert_eq!((form["sha256"].as_str(), metadata.get("sha256")), (Some(sha.as_str()), Some(&sha)));

        let (status, products) = h.products(&customer, "", true).await.unwrap();
        assert_eq!(status, 200, "{products}");
        assert_eq!(products["customerId"], json!(customer));
        assert_eq!(products["truckPolicies"], json!([]));
        let [loan] = products["loans"].as_array().unwrap().as_slice() else { panic!("{products}") };
        assert_eq!(loan["loanNumber"], json!(number));
        assert_eq!(loan["insuranceStatus"], "issued");
        let policy = &loan["creditLife"];
        assert_eq!(policy["policyId"], json!(policy_id));
        assert_eq!(policy["policyNumber"], record["policy"]["policy_number"]);
        assert_eq!((&policy["premium"], &policy["sumInsured"]), (&json!(premium), &json!(sum)));
        assert_eq!(policy["risks"], json!(["death", "disability"]));
        assert_eq!(policy["printLink"], json!(link));
        assert_eq!(h.bima.sim.stats().policies_by_credit.get(&number), Some(&1));
    });
}

#[test]
fn a_loan_event_delivered_many_times_gives_one_policy_and_one_notice() {
    run(async {
        let h = harness();
        let (number, customer, sum) = loan_ids("dup");
        h.bima.sim.set_scenario(&sum, named(Scenario::default()));
        let event = Harness::loan_event(&number, &customer, &sum);
        for _ in 0..5 {
            h.send_bank_event(&event).await.unwrap();
        }
        h.wait_for_loan_stage(&number, "issued", FLOW_TIMEOUT).await.unwrap();
        h.wait_for_notification(&number, "bima.policy-issued", FLOW_TIMEOUT).await.unwrap();
        // Redeliveries still in flight would show up within a few visibility timeouts.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(h.bima.sim.stats().policies_by_credit.get(&number), Some(&1), "one sale at BIMA");
        assert_eq!(kinds(&h.notifications(&number)), ["bima.policy-issued"]);
        let records = items(h, &format!("LOAN#{number}")).await;
        let sales: Vec<_> =
            records.iter().filter(|i| i["sk"].as_s().unwrap().starts_with("EFFECT#sale#")).collect();
        assert_eq!(sales.len(), 1, "one recorded sale intent");
        let (_, products) = h.products(&customer, "", true).await.unwrap();
        assert_eq!(products["loans"].as_array().unwrap().len(), 1, "{products}");
    });
}

/// A refused step ends the loan's insurance as failed, tells the bank why, and
/// "My products" shows the loan without a policy.
async fn assert_fails(name: &str, scenario: Scenario, code: &str, message: &str) {
    let h = harness();
    let (number, customer, sum) = loan_ids(name);
    let record = insure_with(&number, &customer, &sum, scenario, "failed").await;
    assert_eq!(record["error"]["code"], json!(code), "{record}");
    let notice = h.wait_for_notification(&number, "bima.failed", FLOW_TIMEOUT).await.unwrap();
    assert_eq!(notice["error"]["code"], json!(code));
    assert!(notice["error"]["message"].as_str().unwrap().contains(message), "{notice}");
    assert_eq!(kinds(&h.notifications(&number)), ["bima.failed"]);
    let (status, products) = h.products(&customer, "", true).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(products["loans"][0]["insuranceStatus"], "failed");
    assert_eq!(products["loans"][0]["creditLife"], Value::Null);
}

#[test]
fn a_calc_error_ends_failed_with_bimas_reason() {
    run(assert_fails(
        "calc",
        Scenario { calc_error: Some("program not offered for this term".into()), ..Default::default() },
        "bima-http-422",
        "program not offered for this term",
    ));
}

#[test]
fn a_refused_sale_ends_failed_with_bimas_reason_and_no_policy() {
    run(async {
        assert_fails(
            "refused",
            Scenario { sale_refused: Some("borrower is on the stop list".into()), ..Default::default() },
            "bima-http-409",
            "stop list",
        )
        .await;
    });
}

#[test]
fn the_print_link_service_down_for_a_while_is_retried_until_the_policy_is_issued() {
    run(async {
        let h = harness();
        let (number, customer, sum) = loan_ids("down");
        let before = h.bima.sim.stats().calls.get("print-link").copied().unwrap_or(0);
        let down = named(Scenario { print_link_down: 3, ..Default::default() });
        let record = insure_with(&number, &customer, &sum, down, "issued").await;
        assert!(record["print_link"].as_str().unwrap().ends_with(".pdf"));
        let calls = h.bima.sim.stats().calls.get("print-link").copied().unwrap_or(0) - before;
        assert!(calls >= 4, "three 503s and a success: {calls} calls");
        assert_eq!(kinds(&h.notifications(&number)), ["bima.policy-issued"]);
    });
}

/// An attempt that stored the print form in S3 and died before recording it: the
/// retry's conditional write finds the object and records that one; the bucket
/// keeps one version, and the bank is told of the stored copy.
#[test]
fn a_print_form_an_earlier_attempt_archived_is_adopted_not_written_again() {
    run(async {
        let h = harness();
        let (number, customer, sum) = loan_ids("adopt");
        let (sha, size) = h.loan_with_print_form_already_archived(&number, &customer, &sum).await.unwrap();
        let record = h.wait_for_loan_stage(&number, "issued", FLOW_TIMEOUT).await.unwrap();
        let form = &record["print_form"];
        assert_eq!((form["sha256"].as_str(), form["size"].as_u64()), (Some(sha.as_str()), Some(size as u64)));
        let key = form["key"].as_str().unwrap();
        assert_eq!(h.archived_versions(key).await.unwrap(), 1, "written once, by the earlier attempt");
        let notice = h.wait_for_notification(&number, "bima.policy-issued", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(&notice["printForm"], form);
        println!("print form found archived by an earlier attempt: adopted, 1 object version");
    });
}

#[test]
fn slow_answers_still_end_in_one_policy() {
    run(async {
        let h = harness();
        let (number, customer, sum) = loan_ids("slow");
        // Slower than the local queue's visibility timeout allows for the whole drive (4 s):
        // the message comes back while the first runner still works.
        let slow = named(Scenario { slow: Some(Duration::from_millis(1500)), ..Default::default() });
        insure_with(&number, &customer, &sum, slow, "issued").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(h.bima.sim.stats().policies_by_credit.get(&number), Some(&1));
        assert_eq!(kinds(&h.notifications(&number)), ["bima.policy-issued"]);
    });
}

#[test]
fn my_products_shows_the_truck_policy_beside_the_loan_policy() {
    run(async {
        let h = harness();
        let (number, customer, sum) = loan_ids("both");
        let (pid, vin) = ids("both-truck");
        h.start_truck_process_for(&customer, &pid, &vin, polis_must_sim::Scenario::default(), false)
            .await
            .unwrap();
        insure(&number, &customer, &sum, "issued").await;
        let truck = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();

        let (status, products) = h.products(&customer, "", true).await.unwrap();
        assert_eq!(status, 200, "{products}");
        assert_eq!(products["loans"][0]["creditLife"]["status"], "issued");
        let [policy] = products["truckPolicies"].as_array().unwrap().as_slice() else { panic!("{products}") };
        assert_eq!(policy["processId"], json!(pid));
        assert_eq!(policy["status"], "issued");
        assert_eq!(policy["insurer"], truck["chosen"]);
        assert_eq!(policy["policyNumber"], truck["policy"]["number"]);
        assert!(policy["premium"].as_f64().is_some_and(|p| p > 0.0), "{policy}");
        let document = &policy["documents"][0];
        assert_eq!(document["expiresInSeconds"], json!(300));
        let pdf = reqwest::get(document["url"].as_str().unwrap()).await.unwrap();
        assert_eq!(pdf.status(), 200, "the presigned link opens the archived PDF");
        let bytes = pdf.bytes().await.unwrap();
        assert!(bytes[..64].windows(5).any(|w| w == b"%PDF-"), "the policy PDF (after MUST's preamble)");
        assert_eq!(document["sha256"], json!(hex::encode(Sha256::digest(&bytes))));
    });
}

#[test]
fn my_products_pages_long_lists_and_refuses_bad_calls_precisely() {
    run(async {
        let h = harness();
        let (first, customer, sum) = loan_ids("page");
        let numbers: Vec<String> = (1..=3).map(|i| format!("{first}-{i}")).collect();
        for number in &numbers {
            h.send_bank_event(&Harness::loan_event(number, &customer, &sum)).await.unwrap();
        }
        for number in &numbers {
            h.wait_for_loan_stage(number, "sold", FLOW_TIMEOUT).await.unwrap();
        }
        let (status, page1) = h.products(&customer, "limit=2", true).await.unwrap();
        assert_eq!(status, 200, "{page1}");
        let token = page1["nextToken"].as_str().expect("a second page").to_owned();
        let (status, page2) =
            h.products(&customer, &format!("limit=2&nextToken={token}"), true).await.unwrap();
        assert_eq!(status, 200, "{page2}");
        assert_eq!(page2["nextToken"], Value::Null, "no third page");
        let seen: Vec<&str> = [&page1, &page2]
            .iter()
            .flat_map(|p| p["loans"].as_array().unwrap())
            .map(|l| l["loanNumber"].as_str().unwrap())
            .collect();
        assert_eq!(seen, numbers, "every loan once, in order, across the pages");

        let refused = |status: u16, body: &Value, mentions: &str| {
            assert_eq!(status, 400, "{body}");
            assert!(body["error"].as_str().unwrap().contains(mentions), "{body}");
        };
        let (s, b) = h.products("bad.id", "", true).await.unwrap();
        refused(s, &b, "customer");
        let (s, b) = h.products(&customer, "limit=0", true).await.unwrap();
        refused(s, &b, "limit");
        let (s, b) = h.products(&customer, "limit=ten", true).await.unwrap();
        refused(s, &b, "limit");
        let (s, b) = h.products(&customer, "nextToken=zz", true).await.unwrap();
        refused(s, &b, "nextToken");
        let (s, b) = h.products("C-nobody-at-all", "", true).await.unwrap();
        assert_eq!(s, 404, "{b}");
        let (s, b) = h.products(&customer, "", false).await.unwrap();
        assert_eq!(s, 403, "an unsigned call is refused at the gateway: {b}");
    });
}

/// The seed promises the sale `200 OK (сохранено)` and nothing more.
#[test]
fn a_bare_200_to_the_sale_leaves_the_policy_sold_with_its_number_pending() {
    run(async {
        let h = harness();
        let (number, customer, sum) = loan_ids("bare");
        let record = insure_with(&number, &customer, &sum, Scenario::default(), "sold").await;
        assert_eq!(record["policy"], json!({"policy_id": null, "policy_number": null}));
        let notice = h.wait_for_notification(&number, "bima.policy-sold", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(notice["premium"], json!(premium_for(&sum)));
        assert_eq!(kinds(&h.notifications(&number)), ["bima.policy-sold"]);
        // Counted per loan: the other tests of this file run at the same time.
        let links = h.bima.sim.stats().print_links_by_credit.get(&number).copied().unwrap_or(0);
        assert_eq!(links, 0, "no print-link call without a policy id: BIMA sends the link itself");
        assert_eq!(h.bima.sim.stats().policies_by_credit.get(&number), Some(&1));
        let (status, products) = h.products(&customer, "", true).await.unwrap();
        assert_eq!(status, 200, "{products}");
        let policy = &products["loans"][0]["creditLife"];
        assert_eq!(
            (&policy["status"], &policy["numberPending"]),
            (&json!("sold"), &json!(true)),
            "{products}"
        );
        assert_eq!(policy["policyNumber"], Value::Null);
    });
}

/// Issues a loan whose print form is served as `form`; returns the record and the notice.
async fn issued_with_print_form(name: &str, form: PrintForm) -> (String, Value, Value) {
    let h = harness();
    let (number, customer, sum) = loan_ids(name);
    let record = insure_with(
        &number,
        &customer,
        &sum,
        named(Scenario { print_form: form, ..Default::default() }),
        "issued",
    )
    .await;
    let notice = h.wait_for_notification(&number, "bima.policy-issued", FLOW_TIMEOUT).await.unwrap();
    assert_eq!(kinds(&h.notifications(&number)), ["bima.policy-issued"], "issued, never failed");
    (number, record, notice)
}

#[test]
fn print_forms_are_archived_whatever_their_type_and_behind_a_redirect() {
    run(async {
        let h = harness();
        let (_, record, _) = issued_with_print_form("jpeg", PrintForm::Jpeg).await;
        let form = &record["print_form"];
        assert_eq!(form["contentType"], "image/jpeg");
        assert!(form["key"].as_str().unwrap().ends_with(".jpg"));
        let (bytes, metadata) = h.archived(form["key"].as_str().unwrap()).await.unwrap();
        assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
        assert_eq!(metadata.get("sha256"), Some(&hex::encode(Sha256::digest(&bytes))));
        let (_, record, _) = issued_with_print_form("moved", PrintForm::Redirected).await;
        assert_eq!(record["print_form"]["contentType"], "application/pdf", "the 302 was followed");
    });
}

#[test]
fn a_print_form_that_cannot_be_had_leaves_the_policy_issued_and_kept_for_a_replay() {
    run(async {
        let h = harness();
        for (name, form, why) in
            [("expired", PrintForm::Expired, "403"), ("huge", PrintForm::Huge(25), "cap")]
        {
            let (number, record, notice) = issued_with_print_form(name, form).await;
            assert_eq!(record["print_form"], Value::Null);
            let pending = record["print_form_pending"].as_str().unwrap();
            assert!(pending.contains(why), "{name}: {pending}");
            assert_eq!(notice["printFormPending"], json!(pending));
            let kept = h.quarantined().await.unwrap();
            let process = format!("LOAN#{number}");
            assert!(
                kept.iter().any(|k| k["origin"]["source"] == "archive-pending"
                    && k["origin"]["process"] == json!(process)),
                "{name}: kept for an operator's replay"
            );
        }
    });
}
