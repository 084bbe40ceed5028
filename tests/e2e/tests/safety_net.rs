//! The safety net where the people are (issue 20), end to end on the local stack: what MUST
//! saw (counted at the simulator), what the bank was told, what was kept for a person.
//! - an insurer that drops out after its link reached the bank has the link withdrawn before
//!   the next one, and its late link is kept, never announced under another insurer;
//! - an operator's answer to a review acts once, and only on the hold it names;
//! - a hook that says the customer paid, or the policy is issued, for a process that asked
//!   for no payment is kept, not applied;
//! - an operator's re-drive of a dead letter that leads to a payment needs its confirmation,
//!   and shows in the process's timeline;
//! - a hook too large for the queue's message is still taken (by reference), never a 503 loop;
//! - a rotated hook secret is taken without a redeploy.

mod common;

use std::time::{Duration, Instant};

use common::{harness, ids, run, FLOW_TIMEOUT};
use polis_e2e::{kinds, operator::held_attempt, stage_of, Harness, HOOK_SECRET};
use polis_must_sim::{Call, CallFault, Failure, InsurerResult, OfferOutcome, Scenario};
use serde_json::{json, Value};

fn approved(insurer: &str, premium: f64) -> InsurerResult {
    InsurerResult { insurer: insurer.into(), outcome: OfferOutcome::Approved, premium, error_code: None }
}

/// Waits until something kept for a person satisfies `matches`; returns it.
async fn kept_where(h: &Harness, matches: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        if let Some(item) = h.quarantined().await.unwrap().into_iter().find(|i| matches(i)) {
            return item;
        }
        assert!(start.elapsed() < FLOW_TIMEOUT, "nothing kept as expected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn post_hook(h: &Harness, secret: &str, sid: &str, path: &str, body: String) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/hooks/{sid}/{path}", h.cloud.http_url))
        .header("x-hook-secret", secret)
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

#[test]
fn an_insurer_dropping_out_after_its_link_has_the_link_withdrawn_before_the_next_and_its_late_link_is_kept() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("withdrawn");
        // Renaissance is cheaper, so chosen; its link goes out, then it drops out (1602) and
        // MUST delivers its link once more, late, just before Ingosstrakh's.
        let scenario = Scenario {
            insurers: vec![approved("ingostrah", 21310.5), approved("renaissance", 17847.29)],
            drops_out_after_link: Some("renaissance".into()),
            ..Scenario::default()
        };
        h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let notices = h.notifications(&pid);
        let links: Vec<(String, String)> = notices
            .iter()
            .filter(|n| n["type"].as_str().is_some_and(|t| t.starts_with("truck.payment-link")))
            .map(|n| (n["type"].as_str().unwrap().to_owned(), n["insurer"].as_str().unwrap().to_owned()))
            .collect();
        let expected = [
            ("truck.payment-link-ready", "renaissance"),
            ("truck.payment-link-withdrawn", "renaissance"),
            ("truck.payment-link-ready", "ingostrah"),
        ]
        .map(|(t, i)| (t.to_owned(), i.to_owned()));
        assert_eq!(links, expected, "{:?}", kinds(&notices));
        let withdrawn = notices.iter().find(|n| n["type"] == "truck.payment-link-withdrawn").unwrap();
        assert!(withdrawn["url"].as_str().unwrap().ends_with("/renaissance"), "{withdrawn}");
        assert!(withdrawn["reason"].as_str().unwrap().contains("1602"), "{withdrawn}");
        let issued = notices.iter().find(|n| n["type"] == "truck.policy-issued").unwrap();
        assert_eq!(issued["insurer"], "ingostrah");
        assert_eq!(h.must.sim.changes(&vin).get("payment-link").copied(), Some(2), "one request per insurer");
        // The late link of the insurer that dropped out: kept for a person, never shown.
        let late = kept_where(h, |i| {
            i["reason"]
                .as_str()
                .is_some_and(|r| r.contains("a payment link for renaissance, but ingostrah is"))
                && i.to_string().contains(&pid)
        })
        .await;
        println!("withdrawn before the next link; the late link kept: {}", late["id"]);
    });
}

#[test]
fn an_answer_acts_once_given_twice_and_not_at_all_on_a_hold_it_does_not_name() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("answer");
        // Two payment requests in a row get a 502 before MUST acts: each is held for review.
        let lost = CallFault { call: Call::PaymentLink, failure: Failure::BadGateway, committed: false };
        let scenario = Scenario { faults: vec![lost, lost], ..Scenario::default() };
        h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
        let record = h.wait_for_stage(&pid, "needs-review", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let received = || h.must.sim.received(&vin).get("payment-link").copied().unwrap_or(0);
        assert_eq!((held_attempt(&record), received()), (1, 1));
        let key = format!("TRUCK#{pid}");
        let listed = h.ops(&["list"]).await.unwrap();
        println!(
            "polis-ops list:\n{}",
            listed.lines().filter(|l| l.contains(&pid)).collect::<Vec<_>>().join("\n")
        );
        // The same answer twice (the command run again): attempt 2 goes out once.
        h.ops(&["resolve", &key, "payment-ingostrah", "1", "did-not-happen"]).await.unwrap();
        let again = h.ops(&["resolve", &key, "payment-ingostrah", "1", "did-not-happen"]).await;
        let record = h
            .wait_for_process(&pid, FLOW_TIMEOUT, |r| held_attempt(r) == 2 && stage_of(r) == "needs-review")
            .await
            .unwrap();
        assert_eq!(received(), 2, "exactly one more call (the repeat was {again:?})");
        // The answer about attempt 1 arrives once more, now that attempt 2 is held: refused.
        let late = h
            .ops(&["resolve", &key, "payment-ingostrah", "1", "did-not-happen"])
            .await
            .unwrap_err()
            .to_string();
        println!("the late answer: {late}");
        assert!(
            late.contains("holds payment-ingostrah attempt 2, not payment-ingostrah attempt 1"),
            "{late}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!((received(), held_attempt(&h.process(&pid).await.unwrap().unwrap())), (2, 2), "{record}");
        // Attempt 2's own answer: one more call, which MUST takes.
        h.ops(&["resolve", &key, "payment-ingostrah", "2", "did-not-happen"]).await.unwrap();
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(received(), 3);
        let timeline = h.ops(&["timeline", &pid]).await.unwrap();
        let answers: Vec<&str> =
            timeline.lines().filter(|l| l.contains("operator  e2e-operator: resolve")).collect();
        assert_eq!(answers.len(), 2, "each answer once in the history:\n{timeline}");
        println!("polis-ops timeline {pid}:\n{timeline}");
    });
}

#[test]
fn a_paid_or_issued_hook_for_a_process_that_asked_for_no_payment_is_kept_not_applied() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("forged");
        // MUST refuses the payment request (400): nothing was asked of anyone's customer.
        let scenario = Scenario { payment_rejected_with: Some(1420), ..Scenario::default() };
        h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
        let record = h.wait_for_stage(&pid, "failed", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let sid = record["scoring_id"].as_str().unwrap().to_owned();
        // Anyone holding the shared secret claims the customer paid and the policy is issued.
        let (status, _) = post_hook(h, HOOK_SECRET, &sid, "policy-is-paid", "{}".into()).await;
        assert_eq!(status, 200);
        let issued = json!({"policyNumber": "XXX 0000000001", "blobIds": ["forged-1"]}).to_string();
        let (status, _) = post_hook(h, HOOK_SECRET, &sid, "policy-issued", issued).await;
        assert_eq!(status, 200);
        for hook in ["policy-is-paid", "policy-issued"] {
            kept_where(h, |i| {
                i["reason"].as_str().is_some_and(|r| r.contains("no payment was requested"))
                    && i["body"].as_str().is_some_and(|b| b.contains(hook))
            })
            .await;
        }
        let record = h.process(&pid).await.unwrap().unwrap();
        assert_eq!((record["stage"].as_str(), record["policy"].is_null()), (Some("failed"), true));
        let told = kinds(&h.notifications(&pid));
        assert!(!told.iter().any(|k| k == "truck.paid" || k == "truck.policy-issued"), "{told:?}");
    });
}

#[test]
fn a_dead_letter_that_leads_to_a_payment_goes_back_only_with_its_confirmation_and_is_in_the_timeline() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("dlq-money");
        let scenario = Scenario {
            insurers: vec![approved("ingostrah", 21310.5), approved("renaissance", 17847.29)],
            ..Scenario::default()
        };
        h.start_truck_process_bank_chooses(&pid, &vin, scenario, false).await.unwrap();
        let record = h.wait_for_stage(&pid, "awaiting-choice", FLOW_TIMEOUT, |_| {}).await.unwrap();
        // The bank's choice, dead-lettered (its runner failed it eight times, say).
        let choice = json!({
            "message": "bank-event", "process_id": pid, "replays": 0,
            "event": {"event": "insurer-chosen", "id": format!("choice-{pid}"), "insurer": "ingostrah"},
        });
        let sent = h
            .sqs()
            .send_message()
            .queue_url(h.cloud.physical("TruckDeadLetterQueue").unwrap())
            .message_body(choice.to_string())
            .message_group_id(record["scoring_id"].as_str().unwrap())
            .message_deduplication_id(format!("dlq-{pid}"))
            .send()
            .await
            .unwrap();
        let message_id = sent.message_id().unwrap().to_owned();
        let listed = h.ops(&["dead-letters", "--list"]).await.unwrap();
        let plan: Value = listed
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|p| p["item"] == message_id)
            .unwrap_or_else(|| panic!("{listed}"));
        assert_eq!(
            (plan["movesMoney"].as_bool(), plan["leadsTo"].clone()),
            (Some(true), json!(["payment-ingostrah"]))
        );
        let code = plan["confirmation"].as_str().unwrap().to_owned();
        println!("polis-ops dead-letters --list:\n{}", serde_json::to_string_pretty(&plan).unwrap());
        // In bulk it stays; by its id without the code it stays; with the code it goes.
        let bulk: Value = serde_json::from_str(&h.ops(&["dead-letters"]).await.unwrap()).unwrap();
        assert!(bulk.to_string().contains(&message_id), "{bulk}");
        let refused = h.ops(&["redrive-message", "truck", &message_id]).await.unwrap_err().to_string();
        println!("without the code: {refused}");
        assert!(refused.contains("confirm it with the code"), "{refused}");
        assert_eq!(h.must.sim.received(&vin).get("payment-link"), None, "nothing was asked of MUST");
        let moved = h.ops(&["redrive-message", "truck", &message_id, "--confirm", &code]).await.unwrap();
        println!("with it:\n{moved}");
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(h.must.sim.received(&vin).get("payment-link").copied(), Some(1));
        let again = h.ops(&["redrive-message", "truck", &message_id, "--confirm", &code]).await.unwrap_err();
        assert!(again.to_string().contains("no dead letter"), "moved once: {again}");
        let timeline = h.ops(&["timeline", &pid]).await.unwrap();
        let line = timeline
            .lines()
            .find(|l| l.contains("operator  e2e-operator: redrive-message"))
            .unwrap_or_else(|| panic!("{timeline}"));
        assert!(
            line.contains(&message_id) && line.contains("confirmed: leads to payment-ingostrah"),
            "{line}"
        );
        println!("in the timeline: {line}");
    });
}

#[test]
fn a_hook_whose_message_would_not_fit_the_queue_is_taken_and_reaches_its_runner_by_reference() {
    run(async {
        let h = harness();
        // ~130 KiB of JSON, nearly all newlines: escaped into the queue's message it doubles,
        // past the queue's 256 KiB. SQS refuses such a message, so a hook sent whole would get
        // a 503 on every one of MUST's retries, and that process's hooks would stop.
        let (sid, _) = ids("sc-large");
        let body =
            format!("{{{}\"insuranceCompany\":\"ingostrah\",\"writtenPremium\":1}}", "\n".repeat(130 * 1024));
        let (status, reply) = post_hook(h, HOOK_SECRET, &sid, "approved", body.clone()).await;
        assert_eq!((status, reply["status"].as_str()), (200, Some("accepted")), "{reply}");
        // No process has this scoringId: after the grace the runner keeps it, with the body it
        // read from the hook's record.
        let kept = kept_where(h, |i| {
            i["reason"].as_str().is_some_and(|r| r.starts_with("unknown scoringId"))
                && i.to_string().contains(&sid)
        })
        .await;
        assert_eq!(kept["body"].as_str().map(str::len), Some(body.len()), "the whole body came through");
    });
}

#[test]
fn a_rotated_hook_secret_is_taken_without_a_redeploy() {
    run(async {
        let h = harness();
        let name = h.cloud.parameter("HookSecretParameterName").unwrap();
        let ssm = aws_sdk_ssm::Client::new(&h.sdk);
        let put = |value: String| {
            let (ssm, name) = (ssm.clone(), name.clone());
            async move { ssm.put_parameter().name(name).value(value).overwrite(true).send().await.unwrap() }
        };
        let next = "local-hook-secret-next-9876543210";
        let sid = ids("sc-rotate").0;
        let status_with = |secret: &'static str| {
            let sid = sid.clone();
            async move { post_hook(h, secret, &sid, "started", "{}".into()).await.0 }
        };
        assert_eq!(status_with(next).await, 401, "not known yet");
        // The rotation begins: the old and the new secret, separated by whitespace.
        put(format!("{HOOK_SECRET}\n{next}")).await;
        let start = Instant::now();
        while status_with(next).await != 200 {
            assert!(start.elapsed() < Duration::from_secs(30), "the new secret was never taken");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(status_with(HOOK_SECRET).await, 200, "the old one still, while MUST moves over");
        // Back to the old one alone (MUST's simulator signs with it for the other tests).
        put(HOOK_SECRET.into()).await;
        let start = Instant::now();
        while status_with(next).await != 401 {
            assert!(start.elapsed() < Duration::from_secs(30), "the withdrawn secret was never refused");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("rotated in and out within {:?}, no redeploy", start.elapsed());
    });
}
