//! What an operator reads with `polis-ops` from the stack's own records: one process's
//! timeline (bank event, hooks, calls to MUST, stages, notices, in order) and the
//! processes stuck in a stage; and the metrics the functions emit for CloudWatch. (The
//! traces: `tracing.rs`.)

mod common;

use std::time::Duration;

use common::{harness, ids, log_dir, run, FLOW_TIMEOUT};
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

/// Every Embedded Metric Format line the stack's functions wrote to their logs so far.
fn emf_lines() -> Vec<Value> {
    let dir = log_dir(&format!("polis-e2e-{}", std::process::id()));
    let mut lines = Vec::new();
    for file in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        lines.extend(text.lines().filter(|l| l.contains(r#""_aws":"#)).map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("an EMF line is JSON ({e}): {l}"))
        }));
    }
    lines
}

/// Checks one line against CloudWatch's EMF specification; returns (metric, dimensions) pairs.
fn valid_emf(line: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let aws = &line["_aws"];
    let at = aws["Timestamp"].as_u64().unwrap_or_else(|| panic!("Timestamp in ms: {line}"));
    assert!(at > 1_700_000_000_000, "Timestamp in milliseconds since the epoch: {line}");
    let mut found = Vec::new();
    for spec in aws["CloudWatchMetrics"].as_array().unwrap_or_else(|| panic!("CloudWatchMetrics: {line}")) {
        assert_eq!(spec["Namespace"], "polis", "{line}");
        let sets = spec["Dimensions"].as_array().unwrap_or_else(|| panic!("Dimensions: {line}"));
        let metrics = spec["Metrics"].as_array().unwrap_or_else(|| panic!("Metrics: {line}"));
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{line}");
        for set in sets {
            let names = set.as_array().unwrap_or_else(|| panic!("a dimension set is an array: {line}"));
            assert!(names.len() <= 30, "{line}");
            for name in names {
                let value = line[name.as_str().unwrap()].as_str();
                assert!(value.is_some_and(|v| !v.is_empty()), "dimension {name} has a string value: {line}");
            }
        }
        let widest =
            sets.iter().filter_map(Value::as_array).max_by_key(|s| s.len()).cloned().unwrap_or_default();
        for metric in metrics {
            let name = metric["Name"].as_str().unwrap_or_else(|| panic!("a metric's Name: {line}"));
            assert!(["Count", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap_or("")), "{line}");
            assert!(line[name].as_f64().is_some_and(f64::is_finite), "{name} has a number: {line}");
            let dims = widest
                .iter()
                .map(|d| {
                    (d.as_str().unwrap().to_owned(), line[d.as_str().unwrap()].as_str().unwrap().to_owned())
                })
                .collect();
            found.push((name.to_owned(), dims));
        }
    }
    found
}

#[test]
fn the_functions_emit_valid_embedded_metrics_for_issued_policies_partner_calls_and_hooks() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("metrics");
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();

        let lines = emf_lines();
        let metrics: Vec<(String, Vec<(String, String)>)> = lines.iter().flat_map(valid_emf).collect();
        let has = |metric: &str, dims: &[(&str, &str)]| {
            metrics.iter().any(|(name, found)| {
                name == metric && dims.iter().all(|(k, v)| found.iter().any(|(fk, fv)| fk == k && fv == v))
            })
        };
        // Every metric is by the stack's environment (the template's default), as the alarms select.
        assert!(!metrics.is_empty());
        for (name, dims) in &metrics {
            assert!(dims.iter().any(|(k, v)| k == "Environment" && v == "dev"), "{name} {dims:?}");
        }
        assert!(has("HookReceived", &[("Hook", "started"), ("Status", "accepted")]), "{metrics:?}");
        assert!(
            has("PartnerCall", &[("Process", "truck"), ("Effect", "init-scoring"), ("Outcome", "done")]),
            "{metrics:?}"
        );
        assert!(
            has("PartnerCallLatency", &[("Process", "truck"), ("Effect", "request-payment")]),
            "{metrics:?}"
        );
        assert!(has("PolicyIssued", &[("Process", "truck"), ("Insurer", "ingostrah")]), "{metrics:?}");
        let waited = lines.iter().filter_map(|l| l["RequestToIssued"].as_f64()).fold(0.0, f64::max);
        assert!(waited > 0.0, "the time from the bank's request to the policy");
    });
}
