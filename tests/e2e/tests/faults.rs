//! Faults injected through the local stack, each test printing its figures
//! (how many flows tried, finished, lost: zero): AWS gone mid-flow and back, the
//! same hook raced 50 times, insurers failing on a share of calls and slow,
//! tokens expiring mid-process, messages delivered again after their work, and a
//! runner killed between an insurer call and its state write.

mod common;

use std::time::{Duration, Instant};

use common::{harness, ids, items, loan_ids, run, FLOW_TIMEOUT};
use polis_e2e::{kinds, Harness};
use polis_must_sim::Scenario;
use serde_json::{json, Value};

const HAPPY: [&str; 4] = ["truck.offer", "truck.payment-link-ready", "truck.paid", "truck.policy-issued"];

/// Waits for every truck process to be issued; checks each was told the bank exactly once per
/// step (and of any review on the way).
async fn all_trucks_issued(h: &Harness, pids: &[String]) -> usize {
    let mut issued = 0;
    for pid in pids {
        h.wait_for_stage(pid, "issued", FLOW_TIMEOUT * 2, |_| {}).await.unwrap();
        h.wait_for_notification(pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
        let notices: Vec<String> =
            kinds(&h.notifications(pid)).into_iter().filter(|k| k != "truck.needs-review").collect();
        assert_eq!(notices, HAPPY, "{pid}: each notice once, in order");
        issued += 1;
    }
    issued
}

#[test]
fn aws_gone_in_the_middle_of_flows_and_back_loses_nothing_and_applies_nothing_twice() {
    run(async {
        let h = harness();
        let retries_before = h.must.sim.stats().hook_retries;
        let inits_before = h.must.sim.stats().init_calls;
        let mut pids = Vec::new();
        for i in 0..5 {
            let (pid, vin) = ids(&format!("outage{i}"));
            h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
            pids.push(pid);
        }
        // AWS goes away the moment MUST has started a process: MUST's first hook for it, and our
        // write of MUST's answer, both meet the outage.
        let start = Instant::now();
        while h.must.sim.stats().init_calls == inits_before {
            assert!(start.elapsed() < FLOW_TIMEOUT);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        h.cloud.aws.set_down(true);
        let outage = Instant::now();
        // A hook that cannot be stored is not acknowledged: MUST gets a 5xx and will retry.
        let probe = reqwest::Client::new()
            .post(format!("{}/api/hooks/{}/approved", h.cloud.http_url, ids("outage-probe").0))
            .header("x-hook-secret", polis_e2e::HOOK_SECRET)
            .body(r#"{"insuranceCompany":"ingostrah","writtenPremium":1}"#)
            .send()
            .await
            .unwrap();
        assert!(probe.status().is_server_error(), "a hook during the outage got {}", probe.status());
        tokio::time::sleep(Duration::from_secs(6).saturating_sub(outage.elapsed())).await;
        h.cloud.aws.set_down(false);
        let refused = h.cloud.aws.refused();
        let issued = all_trucks_issued(h, &pids).await;
        let retried = h.must.sim.stats().hook_retries - retries_before;
        for pid in &pids {
            let p = h.process(pid).await.unwrap().unwrap();
            let applied: Vec<&str> =
                p["applied"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            let mut unique = applied.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(applied.len(), unique.len(), "{pid}: no hook applied twice");
        }
        println!(
            "AWS outage of 6 s: {refused} AWS calls refused, {retried} hook deliveries answered 5xx and retried by \
             MUST; {} flows tried, {issued} issued, 0 lost, 0 applied twice",
            pids.len()
        );
        assert!(refused > 0, "the outage was felt: AWS calls were refused");
    });
}

#[test]
fn the_same_hook_delivered_many_times_at_once_is_stored_once_and_applied_once() {
    run(async {
        let h = harness();
        // With MUST's delivery ids: 50 at once; without (its documents define none): 10 at once,
        // each delivery its own queue message, told apart by the process.
        for (name, deliveries, webhook_ids) in [("race-ids", 50, true), ("race-content", 10, false)] {
            let (pid, vin) = ids(name);
            let scenario = Scenario { concurrent_deliveries: deliveries, webhook_ids, ..Scenario::default() };
            h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
            let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
            h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
            let sid = p["scoring_id"].as_str().unwrap();
            // Hooks by content are stored under their scoringId; by delivery id, each under its id.
            let applied = p["applied"].as_array().unwrap();
            let mut stored = items(h, &format!("HOOK#{sid}")).await.len();
            for id in applied.iter().filter_map(Value::as_str) {
                stored += items(h, &polis::keys::delivery_pk(id)).await.len();
            }
            assert_eq!(stored, applied.len(), "{name}: one stored hook per distinct hook, each applied once");
            assert_eq!(
                kinds(&h.notifications(&pid)),
                HAPPY,
                "{name}: one state change per hook: each notice once"
            );
            println!(
                "hook race ({}): {} distinct hooks x {deliveries} concurrent deliveries = {} calls; {} stored, {} applied, 0 twice",
                if webhook_ids { "webhook-id" } else { "no webhook-id" },
                stored,
                stored * deliveries as usize,
                stored,
                applied.len()
            );
        }
    });
}

#[test]
fn tokens_expiring_in_the_middle_of_a_process_are_fetched_again() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("token");
        let (number, customer, sum) = loan_ids("token");
        let slow = polis_bima_sim::Scenario {
            slow: Some(Duration::from_millis(600)),
            sale_answer: Some(polis_bima_sim::SaleAnswer::WithIds),
            ..Default::default()
        };
        h.bima.sim.set_scenario(&sum, slow);
        let (must_tokens, bima_tokens) = (h.must.sim.stats().auth_calls, h.bima.sim.stats().token_calls);
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        h.send_bank_event(&Harness::loan_event(&number, &customer, &sum)).await.unwrap();
        // Once each process is under way, its partner's tokens die: MUST's once the truck has
        // its scoringId, BIMA's while BIMA takes its slow time to answer the sale (the print
        // link, asked after that answer, needs a token).
        let must_expiry = async {
            let start = Instant::now();
            while h.process(&pid).await.unwrap().is_none_or(|p| p["stage"] == "initializing") {
                assert!(start.elapsed() < FLOW_TIMEOUT);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            h.must.sim.expire_tokens();
        };
        let bima_expiry = async {
            let start = Instant::now();
            while !h.bima.sim.stats().policies_by_credit.contains_key(&number) {
                assert!(start.elapsed() < FLOW_TIMEOUT);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            h.bima.sim.expire_tokens();
        };
        tokio::join!(must_expiry, bima_expiry);
        all_trucks_issued(h, std::slice::from_ref(&pid)).await;
        h.wait_for_loan_stage(&number, "issued", FLOW_TIMEOUT).await.unwrap();
        let must_new = h.must.sim.stats().auth_calls - must_tokens;
        let bima_new = h.bima.sim.stats().token_calls - bima_tokens;
        println!("token expiry: MUST tokens fetched {must_new}, BIMA {bima_new}; both flows issued");
        assert!(must_new >= 1 && bima_new >= 1, "a new token after the old one died");
    });
}

#[test]
fn messages_delivered_again_after_their_work_was_done_change_nothing() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("again");
        let (number, customer, sum) = loan_ids("again");
        let named = polis_bima_sim::Scenario {
            sale_answer: Some(polis_bima_sim::SaleAnswer::WithIds),
            ..Default::default()
        };
        h.bima.sim.set_scenario(&sum, named);
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        h.send_bank_event(&Harness::loan_event(&number, &customer, &sum)).await.unwrap();
        let truck = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let loan = h.wait_for_loan_stage(&number, "issued", FLOW_TIMEOUT).await.unwrap();
        h.wait_for_notification(&number, "bima.policy-issued", FLOW_TIMEOUT).await.unwrap();
        // As SQS does when a visibility timeout expires after the work: the same messages again.
        let sqs = h.sqs();
        let send = |queue: &str, body: Value, group: &str| {
            let url = h.cloud.physical(queue).unwrap();
            sqs.send_message()
                .queue_url(url)
                .message_body(body.to_string())
                .message_group_id(group.to_owned())
                .message_deduplication_id(format!("again-{}", std::process::id()))
                .send()
        };
        send("TruckQueue", json!({"message": "drive", "process_id": pid}), &pid).await.unwrap();
        send("LoanQueue", json!({"message": "drive", "loan_number": number}), &number).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let truck_after = h.process(&pid).await.unwrap().unwrap();
        let loan_after = h.loan(&number).await.unwrap().unwrap();
        assert_eq!(truck_after["version"], truck["version"], "truck record unchanged");
        assert_eq!(loan_after["version"], loan["version"], "loan record unchanged");
        assert_eq!(kinds(&h.notifications(&pid)), HAPPY);
        assert_eq!(kinds(&h.notifications(&number)), ["bima.policy-issued"]);
        println!("redelivery after done: 2 messages delivered again, 0 changes, 0 new notices");
    });
}

#[test]
fn a_runner_killed_between_an_insurer_call_and_its_state_write_is_held_and_answered_not_resent() {
    run(async {
        let h = harness();
        let (number, customer, sum) = loan_ids("killed");
        // BIMA makes the sale at once but answers 1.5 s later: the runner dies in that gap.
        let slow = polis_bima_sim::Scenario {
            slow: Some(Duration::from_millis(1500)),
            sale_answer: Some(polis_bima_sim::SaleAnswer::WithIds),
            ..Default::default()
        };
        h.bima.sim.set_scenario(&sum, slow);
        h.send_bank_event(&Harness::loan_event(&number, &customer, &sum)).await.unwrap();
        let start = Instant::now();
        while !h.bima.sim.stats().policies_by_credit.contains_key(&number) {
            assert!(start.elapsed() < FLOW_TIMEOUT, "the sale never reached BIMA");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let killed = h.cloud.kill("LoanRunnerFunction");
        assert!(killed > 0, "a runner was running");
        // The next attempt finds the dead one's intent: nobody knows whether BIMA sold, so
        // the loan is held; the operator answers from BIMA's records.
        h.wait_for_loan_stage(&number, "needs-review", FLOW_TIMEOUT).await.unwrap();
        let answers = h.answer_loan_reviews(&number).await.unwrap();
        let loan = h.loan(&number).await.unwrap().unwrap();
        h.wait_for_notification(&number, "bima.policy-issued", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(h.bima.sim.stats().policies_by_credit.get(&number), Some(&1), "no second sale");
        assert_eq!(kinds(&h.notifications(&number)), ["bima.needs-review", "bima.policy-issued"]);
        assert_eq!(loan["policy"]["policy_id"], json!(h.bima.sim.policies_of(&number)[0].0));
        println!(
            "runner killed mid-sale: {killed} processes killed; the loan held for review, answered {answers:?}; \
             1 sale at BIMA, 1 policy, 0 lost"
        );
    });
}
