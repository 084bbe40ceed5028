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
use polis_must_sim::Scenario;
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
        let key = json!(format!("TRUCK#{pid}"));
        assert!(!kept.iter().any(|k| k["origin"]["process"] == key), "no hook of the process kept");
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
