//! Nothing is dropped: input we cannot process is kept with its reason and
//! counted (the `Quarantined` metric); `polis-ops` re-drives what passes its
//! checks now and leaves the rest kept; a flow whose messages were dead-lettered
//! while MUST was down completes once they are moved back. Each test prints its
//! figures (kept, replayed, lost).

mod common;

use std::time::{Duration, Instant};

use common::{harness, ids, run, FLOW_TIMEOUT};
use polis_e2e::{Harness, HOOK_SECRET};
use polis_must_sim::{InsurerResult, OfferOutcome, Scenario};
use serde_json::{json, Value};

async fn post_hook(sid: &str, path: &str, body: String) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{}/api/hooks/{sid}/{path}", harness().cloud.http_url))
        .header("x-hook-secret", HOOK_SECRET)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Waits until a quarantined record mentioning `needle` exists; returns it.
async fn kept(h: &Harness, needle: &str) -> Value {
    let start = Instant::now();
    loop {
        let found = h.quarantined().await.unwrap().into_iter().find(|r| r.to_string().contains(needle));
        if let Some(record) = found {
            return record;
        }
        assert!(start.elapsed() < FLOW_TIMEOUT, "nothing quarantined for {needle}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `function` wrote an embedded-metric line counting one `metric` by `dimension`.
fn counts(h: &Harness, function: &str, metric: &str, dimension: (&str, &str)) -> bool {
    let log = std::fs::read_to_string(h.log_dir.join(format!("{function}.log"))).unwrap_or_default();
    log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).any(|line| {
        line.get("_aws").is_some() && line[metric].as_f64() == Some(1.0) && line[dimension.0] == dimension.1
    })
}

#[test]
fn input_we_cannot_process_is_kept_counted_and_replayed_without_loss() {
    run(async {
        let h = harness();
        // 1. A hook whose body MUST got wrong.
        let (malformed, _) = ids("q-malformed");
        post_hook(&malformed, "approved", r#"{"insuranceCompany": 5, "writtenPremium": 1}"#.into()).await;
        // 2. A body over the size limit.
        let (oversized, _) = ids("q-oversized");
        let big = format!(r#"{{"insuranceCompany":"ingostrah","pad":"{}"}}"#, "x".repeat(250 * 1024));
        post_hook(&oversized, "approved", big).await;
        // 3. A valid hook for a scoringId no process has.
        let (unknown, _) = ids("q-unknown");
        post_hook(&unknown, "approved", r#"{"insuranceCompany":"ingostrah","writtenPremium":1}"#.into())
            .await;
        // 4. A payment request for a process that ended rejected (after a paid and issued
        // policy it would be history; here money could move where nothing was approved).
        let (pid, vin) = ids("q-ended");
        let rejected = InsurerResult {
            insurer: "ingostrah".into(),
            outcome: OfferOutcome::Rejected,
            premium: 0.0,
            error_code: None,
        };
        let scenario = Scenario { insurers: vec![rejected], ..Scenario::default() };
        h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
        let done = h.wait_for_stage(&pid, "rejected", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let sid = done["scoring_id"].as_str().unwrap().to_owned();
        let late = post_hook(
            &sid,
            "payment-link-generated",
            r#"{"paymentLink":"https://pay.must.example/late"}"#.into(),
        )
        .await;
        let late_id = late["hookId"].as_str().unwrap().to_owned();
        // 5. A bank event that is not valid.
        let (bad_request, bad_vin) = ids("q-bank");
        let mut request = Harness::truck_request(&bad_request, "cust-q", &bad_vin, false, vec![]);
        request["policyholder"]["inn"] = json!("12");
        h.send_bank_event(&request).await.unwrap();

        let records = [
            kept(h, &malformed).await,
            kept(h, &oversized).await,
            kept(h, &format!("\"scoringId\":\"{unknown}\"")).await,
            kept(h, &late_id).await,
            kept(h, &format!("evt-{bad_request}")).await,
        ];
        let reasons: Vec<&str> = records.iter().map(|r| r["reason"].as_str().unwrap()).collect();
        assert_eq!(reasons[0], "field insuranceCompany: expected an insurer code string");
        assert!(reasons[1].contains("over the 204800-byte limit"), "{}", reasons[1]);
        assert_eq!(records[1]["body"].as_str().unwrap().len(), 204_800, "kept up to the limit");
        assert!(reasons[2].starts_with("unknown scoringId"), "{}", reasons[2]);
        assert!(reasons[3].starts_with("the process has ended"), "{}", reasons[3]);
        assert!(reasons[4].contains("policyholder.inn"), "{}", reasons[4]);
        for (function, source) in [
            ("HookApprovedFunction", "hook"),
            ("TruckRunnerFunction", "hook"),
            ("BankIntakeFunction", "bank-event"),
        ] {
            assert!(
                counts(h, function, "Quarantined", ("Source", source)),
                "{function} counts the Quarantined metric"
            );
        }

        let report: Value = serde_json::from_str(&h.replay("quarantine").await.unwrap()).unwrap();
        let quarantine = &report["quarantine"];
        let replayed: Vec<&str> =
            quarantine["replayed"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let failing: Vec<&str> =
            quarantine["stillFailing"].as_array().unwrap().iter().filter_map(|p| p[0].as_str()).collect();
        let id = |r: &Value| r["id"].as_str().unwrap().to_owned();
        for still in [&records[0], &records[1], &records[4]] {
            assert!(failing.contains(&id(still).as_str()), "{} still fails its checks: {report}", id(still));
        }
        for redriven in [&records[2], &records[3]] {
            assert!(replayed.contains(&id(redriven).as_str()), "{} is re-driven: {report}", id(redriven));
        }
        // Re-driven, they meet the same end and are kept again, under a new id: none is lost.
        let again_unknown = kept(h, &format!("\"scoringId\":\"{unknown}\"")).await;
        let again_late = kept(h, &late_id).await;
        assert_ne!(id(&again_unknown), id(&records[2]));
        assert_ne!(id(&again_late), id(&records[3]));
        let all = h.quarantined().await.unwrap();
        let lost = records
            .iter()
            .filter(|r| {
                !all.iter().any(|a| a["body"] == r["body"] && a["origin"]["source"] == r["origin"]["source"])
            })
            .count();
        println!(
            "quarantine: 5 kinds kept, {} re-driven, {} still failing, {lost} lost",
            replayed.len(),
            failing.len()
        );
        assert_eq!(lost, 0);
    });
}

#[test]
fn a_flow_dead_lettered_while_must_kept_refusing_completes_after_replay() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("dlq");
        // MUST answers 429 to init: it processed nothing, so we retry (unlike a 5xx) until the
        // message has been received as often as the queue allows.
        h.start_truck_process(&pid, &vin, Scenario { throttled: true, ..Scenario::default() }, false)
            .await
            .unwrap();
        let start = Instant::now();
        loop {
            let waiting = h.queue_depth("TruckDeadLetterQueue").await.unwrap();
            if waiting > 0 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(150), "nothing reached the dead-letter queue");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let dead_lettered_after = start.elapsed();
        assert_eq!(
            h.process(&pid).await.unwrap().unwrap()["stage"],
            "initializing",
            "stuck while MUST is down"
        );

        h.must.sim.set_scenario(&vin, Scenario::default());
        let report: Value = serde_json::from_str(&h.replay("dead-letters").await.unwrap()).unwrap();
        let moved: usize = report["deadLetters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["moved"].as_array().unwrap().len())
            .sum();
        assert!(moved >= 1, "{report}");
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        println!("dead letters: dead-lettered after {dead_lettered_after:?}, {moved} moved back, flow issued, 0 lost");
    });
}
