//! What an operator reads with `polis-ops` from the stack's own records: one process's
//! timeline (bank event, hooks, calls to MUST, stages, notices, in order) and the
//! processes stuck in a stage.

mod common;

use std::time::Duration;

use common::{harness, ids, run, FLOW_TIMEOUT};
use polis_must_sim::Scenario;
use serde_json::Value;

#[test]
fn an_issued_policys_timeline_tells_its_story_by_request_id_or_scoring_id() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("timeline");
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        let process = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();

        let timeline: Value =
            serde_json::from_str(&h.ops(&["timeline", &pid, "--json"]).await.unwrap()).unwrap();
        assert_eq!(timeline["process"], format!("TRUCK#{pid}"));
        assert_eq!(
            (timeline["stage"].as_str(), timeline["terminal"].as_bool()),
            (Some("issued"), Some(true))
        );
        let entries = timeline["entries"].as_array().unwrap();
        let at: Vec<u64> = entries.iter().map(|e| e["atMs"].as_u64().unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] <= w[1]), "oldest first");
        let first = &entries[0];
        assert_eq!((first["what"].as_str(), first["from"].as_str()), (Some("event"), Some("bank")));
        assert_eq!(first["kind"], "truck.policy-requested");
        let has = |what: &str, field: &str, value: &str| {
            entries.iter().any(|e| e["what"] == what && e[field] == value)
        };
        for hook in
            ["documents/types-required", "started", "approved", "payment-link-generated", "policy-issued"]
        {
            assert!(has("event", "kind", hook), "hook {hook} in {timeline:#}");
        }
        for stage in ["initializing", "preparing", "scoring", "awaiting-payment", "issued"] {
            assert!(has("stage", "stage", stage), "stage {stage} in {timeline:#}");
        }
        for notice in ["truck.offer", "truck.payment-link-ready", "truck.paid", "truck.policy-issued"] {
            assert!(has("notice", "kind", notice), "notice {notice} in {timeline:#}");
        }
        let init =
            entries.iter().find(|e| e["what"] == "call" && e["effect"] == "init").expect("the init call");
        assert_eq!(init["outcome"], "done");
        assert!(init["durationMs"].as_u64().is_some());

        // The same, found by MUST's scoringId, for a terminal.
        let scoring = process["scoring_id"].as_str().unwrap();
        let text = h.ops(&["timeline", scoring]).await.unwrap();
        assert!(text.starts_with(&format!("TRUCK#{pid}  issued since ")), "{text}");
        assert!(text.contains("must      policy-issued  id "), "{text}");
        assert!(text.contains("notice    truck.policy-issued  eventId "), "{text}");
        assert_eq!(text.lines().count(), entries.len() + 1, "a header, then one line per entry");
        println!("{text}");

        let unknown = h.ops(&["timeline", "NOBODY-1"]).await.unwrap_err().to_string();
        assert!(unknown.contains("no process is named") && unknown.contains("NOBODY-1"), "{unknown}");
    });
}

#[test]
fn a_process_that_stopped_moving_is_listed_as_stuck_and_an_ended_one_is_not() {
    run(async {
        let h = harness();
        let (done, done_vin) = ids("ended");
        h.start_truck_process(&done, &done_vin, Scenario::default(), false).await.unwrap();
        h.wait_for_stage(&done, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        // MUST answers 429 to init: the process stays in `initializing`, retried.
        let (pid, vin) = ids("stuck");
        h.start_truck_process(&pid, &vin, Scenario { throttled: true, ..Scenario::default() }, false)
            .await
            .unwrap();
        while h.process(&pid).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;

        let listed = h.ops(&["stuck", "--older-than", "2s", "--json"]).await.unwrap();
        let stuck: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let mine = stuck
            .iter()
            .find(|p| p["process"] == format!("TRUCK#{pid}"))
            .unwrap_or_else(|| panic!("{listed}"));
        assert_eq!(mine["stage"], "initializing");
        assert!(mine["forMs"].as_u64().unwrap() >= 2_000);
        assert!(!listed.contains(&done), "an issued policy is not stuck: {listed}");
        let since: Vec<u64> = stuck.iter().map(|p| p["sinceMs"].as_u64().unwrap()).collect();
        assert!(since.windows(2).all(|w| w[0] <= w[1]), "longest first");

        let recent = h.ops(&["stuck", "--older-than", "1h"]).await.unwrap();
        assert!(!recent.contains(&pid), "not yet an hour: {recent}");
        let text = h.ops(&["stuck", "--older-than", "2s"]).await.unwrap();
        assert!(text.lines().any(|l| l.starts_with(&format!("TRUCK#{pid}\tinitializing\tsince "))), "{text}");
        let bad = h.ops(&["stuck", "--older-than", "soon"]).await.unwrap_err().to_string();
        assert!(bad.contains("is not a duration"), "{bad}");

        // Let it go: MUST stops throttling, the flow ends.
        h.must.sim.set_scenario(&vin, Scenario::default());
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
    });
}
