//! polis against MUST and BIMA where their documents settle what round one assumed
//! (issue 21): MUST as its seed alone describes it (one insurer, no insurer named in
//! any hook), the contract sent after recognition, errors the bank can correct, the
//! card and file names of MUST's other documents, and BIMA sending its own print
//! link. Each test asserts what the partner saw, the final state and the bank's
//! notices.

mod common;

use common::{harness, ids, run, FLOW_TIMEOUT};
use polis_e2e::kinds;
use polis_must_sim::Scenario;
use serde_json::json;

const HAPPY_NOTICES: [&str; 4] =
    ["truck.offer", "truck.payment-link-ready", "truck.paid", "truck.policy-issued"];

#[test]
fn an_agent_with_one_insurer_gets_the_seeds_hooks_and_the_policy_is_issued() {
    run(async {
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
