//! Insurers failing on a share of every call, in a stack of its own (the faults are the
//! simulators', and would reach every flow sharing them): transient failures of calls that
//! change nothing are retried; a changing call whose outcome is unknown holds its process
//! until the operator answers from the partner's records; every change is made once.

mod common;

use std::time::Duration;

use common::{harness, ids, loan_ids, run, FLOW_TIMEOUT};
use polis_e2e::{kinds, Harness};
use polis_must_sim::faults::FaultPlan;
use polis_must_sim::Scenario;

const HAPPY: [&str; 4] = ["truck.offer", "truck.payment-link-ready", "truck.paid", "truck.policy-issued"];

/// MUST made each change of the vehicle's process exactly once.
fn assert_each_change_once(h: &Harness, vin: &str) {
    let changes = h.must.sim.changes(vin);
    for call in ["init", "documents", "contract", "payment-link"] {
        assert_eq!(changes.get(call), Some(&1), "{vin}: {call} made once at MUST: {changes:?}");
    }
}

#[test]
fn insurers_failing_on_a_share_of_calls_and_answering_slowly_still_finish_every_flow() {
    run(async {
        let h = harness();
        let plan = FaultPlan {
            errors_per_mille: 200,
            hangs_per_mille: 50,
            hang: Duration::from_secs(6),
            slow: Duration::from_millis(30),
        };
        h.must.sim.faults.set(plan);
        h.bima.sim.faults.set(plan);
        let mut pids = Vec::new();
        let mut vins = Vec::new();
        let mut loans = Vec::new();
        for i in 0..4 {
            let (pid, vin) = ids(&format!("flaky{i}"));
            h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
            pids.push(pid);
            vins.push(vin);
            let (number, customer, sum) = loan_ids(&format!("flaky{i}"));
            h.send_bank_event(&Harness::loan_event(&number, &customer, &sum)).await.unwrap();
            loans.push(number);
        }
        // A permanent refusal among the faults still ends in a clear bank event.
        let (refused, customer, sum) = loan_ids("flaky-refused");
        let stop_list =
            polis_bima_sim::Scenario { sale_refused: Some("stop list".into()), ..Default::default() };
        h.bima.sim.set_scenario(&sum, stop_list);
        h.send_bank_event(&Harness::loan_event(&refused, &customer, &sum)).await.unwrap();

        // A 500 or an answer that never comes after a changing call is an unknown outcome: the
        // process waits for the operator, who answers from the partner's records.
        let mut answers = Vec::new();
        for (pid, vin) in pids.iter().zip(&vins) {
            answers.extend(h.answer_truck_reviews(pid, vin).await.unwrap());
        }
        let mut issued = 0;
        for pid in &pids {
            h.wait_for_stage(pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
            h.wait_for_notification(pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
            let notices: Vec<String> =
                kinds(&h.notifications(pid)).into_iter().filter(|k| k != "truck.needs-review").collect();
            assert_eq!(notices, HAPPY, "{pid}: each notice once, in order");
            issued += 1;
        }
        for vin in &vins {
            assert_each_change_once(h, vin);
        }
        for number in &loans {
            answers.extend(h.answer_loan_reviews(number).await.unwrap());
            // Sold, or issued when the operator gave BIMA's policy id for a held sale.
            let notices = kinds(&h.notifications(number));
            let outcome: Vec<&String> = notices.iter().filter(|k| *k != "bima.needs-review").collect();
            assert!(
                matches!(outcome[..], [k] if k == "bima.policy-sold" || k == "bima.policy-issued"),
                "{notices:?}"
            );
            assert_eq!(h.bima.sim.stats().policies_by_credit.get(number), Some(&1), "{number}: one policy");
        }
        let failed = h.wait_for_loan_stage(&refused, "failed", FLOW_TIMEOUT * 2).await.unwrap();
        assert_eq!(failed["error"]["code"], "bima-http-409");
        assert_eq!(kinds(&h.notifications(&refused)), ["bima.failed"]);
        h.must.sim.faults.set(FaultPlan::default());
        h.bima.sim.faults.set(FaultPlan::default());
        let (m, b) = (h.must.sim.faults.counts(), h.bima.sim.faults.counts());
        println!(
            "insurer faults: MUST {} calls ({} x 500, {} x 429, {} hangs), BIMA {} calls ({} x 500, {} x 429, {} hangs); \
             {} truck flows and {} loans tried, all issued or sold, 1 refusal told to the bank, 0 lost; \
             {} reviews answered from the partners' records ({answers:?}); every change made once at the partner",
            m.calls, m.errors_500, m.errors_429, m.hangs, b.calls, b.errors_500, b.errors_429, b.hangs, issued, loans.len(),
            answers.len()
        );
        assert!(m.errors_500 + m.errors_429 + m.hangs > 0 && b.errors_500 + b.errors_429 + b.hangs > 0);
    });
}
