//! The bank chooses the insurer (`"choice": "bank"`) through the local stack: polis waits
//! after the offers for `truck.insurer-chosen`, checks it against the approved offers, and
//! reminds the bank once (the scheduled watchdog) when the wait is too long. The local stack
//! runs the watchdog every 2 s and makes a choice overdue after 6 s (`polis_e2e::stack`).

mod common;

use std::time::Duration;

use common::{harness, ids, run, FLOW_TIMEOUT};
use polis_e2e::{kinds, CHOICE_REMINDER_MINUTES, SCHEDULE_EVERY};
use polis_must_sim::{InsurerResult, OfferOutcome, Scenario};
use serde_json::{json, Value};

fn insurer(name: &str, outcome: OfferOutcome, premium: f64) -> InsurerResult {
    InsurerResult { insurer: name.into(), outcome, premium, error_code: None }
}

fn two_approve() -> Scenario {
    Scenario {
        insurers: vec![
            insurer("ingostrah", OfferOutcome::Approved, 21310.5),
            insurer("renaissance", OfferOutcome::Approved, 17847.29),
        ],
        ..Scenario::default()
    }
}

/// Starts a `"choice": "bank"` process and waits until it waits for the bank, both offers told.
async fn waiting_for_the_bank(
    name: &str,
    scenario: Scenario,
    legal_entity: bool,
    offers: usize,
) -> (String, String) {
    let h = harness();
    let (pid, vin) = ids(name);
    h.start_truck_process_bank_chooses(&pid, &vin, scenario, legal_entity).await.unwrap();
    let process = h.wait_for_stage(&pid, "awaiting-choice", FLOW_TIMEOUT, |_| {}).await.unwrap();
    assert_eq!(process["chosen"], Value::Null);
    let start = std::time::Instant::now();
    while h.notifications(&pid).iter().filter(|n| n["type"] == "truck.offer").count() < offers {
        assert!(start.elapsed() < FLOW_TIMEOUT, "{pid}: offers {:?}", h.notifications(&pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (pid, vin)
}

fn payment_requests(vin: &str) -> u64 {
    let changes = harness().must.sim.changes(vin);
    ["payment-link", "payment-invoice"].iter().filter_map(|call| changes.get(*call)).sum()
}

#[test]
fn the_bank_chooses_the_dearer_of_two_approved_offers_and_the_policy_is_issued_with_that_insurer() {
    run(async {
        let h = harness();
        let (pid, vin) = waiting_for_the_bank("choice-dearer", two_approve(), false, 2).await;
        assert_eq!(payment_requests(&vin), 0, "no payment is requested before the bank chooses");
        assert!(!kinds(&h.notifications(&pid)).contains(&"truck.payment-link-ready".to_owned()));

        h.choose_insurer(&pid, &format!("choose-{pid}"), "ingostrah", None).await.unwrap();
        let process = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(process["chosen"], json!("ingostrah"));
        let link = h.wait_for_notification(&pid, "truck.payment-link-ready", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(link["insurer"], json!("ingostrah"), "the dearer offer, as the bank chose");
        let issued = h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(issued["insurer"], json!("ingostrah"));
        assert_eq!(payment_requests(&vin), 1, "one payment request, for the chosen insurer");
        let invalid =
            h.notifications(&pid).into_iter().filter(|n| n["type"] == "truck.request-invalid").count();
        assert_eq!(invalid, 0);
    });
}

#[test]
fn a_choice_of_an_insurer_that_did_not_approve_is_refused_the_process_waits_and_a_valid_choice_completes_it()
{
    run(async {
        let h = harness();
        let scenario = Scenario {
            insurers: vec![
                insurer("ingostrah", OfferOutcome::Rejected, 0.0),
                insurer("renaissance", OfferOutcome::Approved, 17847.29),
            ],
            ..Scenario::default()
        };
        let (pid, vin) = waiting_for_the_bank("choice-invalid", scenario, false, 2).await;
        let wrong = format!("choose-wrong-{pid}");
        h.choose_insurer(&pid, &wrong, "ingostrah", None).await.unwrap();
        let refusal = h.wait_for_notification(&pid, "truck.request-invalid", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(refusal["rejectedEventId"], json!(wrong));
        assert_eq!(refusal["problems"][0]["field"], json!("insurer"));
        let problem = refusal["problems"][0]["problem"].as_str().unwrap();
        assert!(problem.contains("ingostrah rejected") && problem.contains("renaissance"), "{problem}");
        // Still waiting for the bank, nothing asked of MUST.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let record = h.process(&pid).await.unwrap().unwrap();
        assert_eq!(polis_e2e::stage_of(&record), "awaiting-choice");
        assert_eq!(payment_requests(&vin), 0);

        h.choose_insurer(&pid, &format!("choose-right-{pid}"), "renaissance", Some("link")).await.unwrap();
        let process = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(process["chosen"], json!("renaissance"));
        let issued = h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(issued["insurer"], json!("renaissance"));
        assert_eq!(payment_requests(&vin), 1);
        let refusals =
            h.notifications(&pid).into_iter().filter(|n| n["type"] == "truck.request-invalid").count();
        assert_eq!(refusals, 1, "one refusal, for the one wrong choice");
    });
}

#[test]
fn a_bank_that_does_not_choose_gets_exactly_one_reminder_then_a_legal_entity_chooses_an_invoice() {
    run(async {
        let h = harness();
        let (pid, vin) = waiting_for_the_bank("choice-reminder", two_approve(), true, 2).await;
        let reminder = h.wait_for_notification(&pid, "truck.choice-reminder", FLOW_TIMEOUT).await.unwrap();
        let offers: Vec<(&str, f64)> = reminder["offers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["insurer"].as_str().unwrap(), o["premium"].as_f64().unwrap()))
            .collect();
        assert_eq!(offers, [("renaissance", 17847.29), ("ingostrah", 21310.5)], "the offers, cheapest first");
        let waited = polis::clock::now_ms().saturating_sub(reminder["waitingSinceMs"].as_u64().unwrap());
        let reminder_ms = (CHOICE_REMINDER_MINUTES.parse::<f64>().unwrap() * 60_000.0) as u64;
        assert!(waited >= reminder_ms, "reminded after {waited} ms, before {reminder_ms} ms");
        h.wait_for_process(&pid, FLOW_TIMEOUT, |p| p["choice_reminded"] == json!(true)).await.unwrap();
        // The watchdog keeps running (and finding the process overdue): no second reminder.
        tokio::time::sleep(SCHEDULE_EVERY * 4).await;
        let reminders =
            h.notifications(&pid).into_iter().filter(|n| n["type"] == "truck.choice-reminder").count();
        assert_eq!(reminders, 1, "{:?}", kinds(&h.notifications(&pid)));
        assert_eq!(polis_e2e::stage_of(&h.process(&pid).await.unwrap().unwrap()), "awaiting-choice");

        // A legal entity may pay by invoice (changelog v3), whatever its request said.
        h.choose_insurer(&pid, &format!("choose-{pid}"), "renaissance", Some("invoice")).await.unwrap();
        let invoice = h.wait_for_notification(&pid, "truck.invoice-ready", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(invoice["insurer"], json!("renaissance"));
        assert_eq!(
            h.must.sim.changes(&vin).get("payment-invoice").copied(),
            Some(1),
            "{:?}",
            h.must.sim.changes(&vin)
        );
        assert_eq!(payment_requests(&vin), 1);
    });
}
