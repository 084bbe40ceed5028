//! polis against MUST and BIMA as their documents describe them, not as our own
//! simulators would like them: no delivery ids, no honoured idempotency keys,
//! bare answers, files of any type, and calls whose answers get lost after the
//! partner acted on them. Each test asserts what the partner saw (how many times
//! each change was made), the final state, and the bank's notices.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use common::{harness, ids, loan_ids, run, FLOW_TIMEOUT};
use polis_e2e::{kinds, Harness};
use polis_must_sim::{Call, CallFault, Failure, InsurerResult, OfferOutcome, PolicyFile, Scenario};
use serde_json::{json, Value};

/// The bank pays an invoice as a legal entity does: once it is ready, the payment order goes in.
async fn bank_pays_invoices(h: &Harness, pid: &str) {
    if let Ok(invoice) = h.wait_for_notification(pid, "truck.invoice-ready", FLOW_TIMEOUT * 2).await {
        let _ = invoice;
        let order = h.put_document(pid, 100, "payment-order.pdf").await.unwrap();
        let event = json!({"type": "truck.payment-order", "eventId": format!("po-{pid}"), "requestId": pid, "document": order});
        h.send_bank_event(&event).await.unwrap();
    }
}

/// One truck flow whose `call` fails once with `failure`, after MUST acted on it or before.
/// Returns (call, failure, committed, the operator's answers, MUST's changes for the call).
async fn truck_flow(call: Call, failure: Failure, committed: bool) -> (String, Vec<String>, u64) {
    let h = harness();
    let name = format!("{}-{failure:?}-{committed}", call.name()).to_lowercase();
    let (pid, vin) = ids(&name);
    let invoice = matches!(call, Call::PaymentInvoice | Call::PaymentOrder);
    let scenario = Scenario { faults: vec![CallFault { call, failure, committed }], ..Scenario::default() };
    h.start_truck_process(&pid, &vin, scenario, invoice).await.unwrap();
    let pays = async {
        if invoice {
            bank_pays_invoices(h, &pid).await;
        }
    };
    let (answers, ()) = tokio::join!(h.answer_truck_reviews(&pid, &vin), pays);
    let answers = answers.unwrap();
    let record = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
    h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
    let changes = h.must.sim.changes(&vin);
    let made = |c: &str| changes.get(c).copied().unwrap_or(0);
    let expected =
        ["init", "documents", "contract", if invoice { "payment-invoice" } else { "payment-link" }];
    for c in expected.into_iter().chain(invoice.then_some("payment-order")) {
        assert_eq!(made(c), 1, "{name}: {c} made once at MUST: {changes:?}");
    }
    let notices = kinds(&h.notifications(&pid));
    assert!(
        notices.contains(&"truck.needs-review".to_owned()),
        "{name}: the bank was told of the review: {notices:?}"
    );
    assert_eq!(notices.last().map(String::as_str), Some("truck.policy-issued"), "{name}: {notices:?}");
    assert_eq!(notices.iter().filter(|k| *k == "truck.policy-issued").count(), 1, "{name}: one policy");
    let resolutions: Vec<&Value> =
        record["outbox"]["calls"].as_array().unwrap().iter().filter(|c| c["outcome"] == "resolved").collect();
    assert_eq!(resolutions.len(), 1, "{name}: one review, answered once: {resolutions:?}");
    assert_eq!(resolutions[0]["happened"], json!(committed), "{name}: answered as it happened");
    // Where MUST's next hook can only follow the call, it proves the call happened: no person needed.
    let provable = !matches!(call, Call::Init);
    if committed && provable {
        assert_eq!(
            resolutions[0]["by"], "a later hook from MUST",
            "{name}: {answers:?}: {}",
            record["outbox"]["calls"]
        );
    }
    let kept = harness().quarantined().await.unwrap();
    let key = json!(format!("TRUCK#{pid}"));
    assert!(
        !kept.iter().any(|k| k["origin"]["process"] == key),
        "{name}: nothing left kept for the process (the review is off the list)"
    );
    (name, answers, made(call.name()))
}

/// The loan's sale fails once with `failure`, after BIMA saved it or before.
async fn loan_flow(failure: Failure, committed: bool) -> (String, Vec<String>, u64) {
    let h = harness();
    let name = format!("sale-{failure:?}-{committed}").to_lowercase();
    let (number, customer, sum) = loan_ids(&name);
    h.bima.sim.set_scenario(
        &sum,
        polis_bima_sim::Scenario { sale_fault: Some((failure, committed)), ..Default::default() },
    );
    h.send_bank_event(&Harness::loan_event(&number, &customer, &sum)).await.unwrap();
    h.wait_for_loan_stage(&number, "needs-review", FLOW_TIMEOUT).await.unwrap();
    let answers = h.answer_loan_reviews(&number).await.unwrap();
    let record = h.loan(&number).await.unwrap().unwrap();
    let policies = h.bima.sim.stats().policies_by_credit.get(&number).copied().unwrap_or(0);
    assert_eq!(policies, 1, "{name}: one sale at BIMA");
    let notices = kinds(&h.notifications(&number));
    assert_eq!(notices[0], "bima.needs-review", "{name}: {notices:?}");
    // Answered with BIMA's policy id, the sale goes on to its print link; sent again, BIMA's
    // bare answer leaves it sold with its number pending.
    let expected = if committed { "issued" } else { "sold" };
    assert_eq!(record["stage"], expected, "{name}: {record}");
    (name, answers, policies)
}

#[test]
fn every_changing_call_whose_answer_is_lost_is_made_once_and_the_flow_ends_with_one_policy() {
    run(async {
        let mut flows = Vec::new();
        for call in Call::ALL {
            for failure in [Failure::Timeout, Failure::BadGateway, Failure::Reset] {
                flows.push(truck_flow(call, failure, true));
            }
        }
        let trucks = futures_util::future::join_all(flows).await;
        let loans = futures_util::future::join_all(
            [Failure::Timeout, Failure::BadGateway, Failure::Reset].map(|f| loan_flow(f, true)),
        )
        .await;
        for (name, answers, changes) in trucks.iter().chain(&loans) {
            assert_eq!(*changes, 1);
            println!("{name}: made once at the partner; held for review, then {}", describe(answers));
        }
        println!("{} flows, each change made once, each ended with one policy", trucks.len() + loans.len());
    });
}

#[test]
fn every_changing_call_that_never_reached_the_partner_is_sent_again_once_an_operator_says_so() {
    run(async {
        let trucks =
            futures_util::future::join_all(Call::ALL.map(|c| truck_flow(c, Failure::BadGateway, false)))
                .await;
        let (loan, answers, policies) = loan_flow(Failure::BadGateway, false).await;
        for (name, answers, changes) in &trucks {
            assert_eq!(*changes, 1);
            assert!(answers.iter().all(|a| a.ends_with("did not happen")), "{name}: {answers:?}");
            println!(
                "{name}: not made at the partner; held, answered \"did not happen\", sent again, made once"
            );
        }
        assert_eq!(policies, 1);
        println!("{loan}: {}", describe(&answers));
    });
}

fn describe(answers: &[String]) -> String {
    if answers.is_empty() {
        "proven by the partner's next hook (no operator)".into()
    } else {
        format!("answered by the operator: {answers:?}")
    }
}

/// Starts a truck flow and waits until it is issued; returns its id, VIN and record.
async fn issued(name: &str, scenario: Scenario) -> (String, String, Value) {
    let h = harness();
    let (pid, vin) = ids(name);
    h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
    let record = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
    h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
    (pid, vin, record)
}

#[test]
fn without_delivery_ids_a_repeat_is_applied_once_and_the_same_body_in_a_later_round_is_news() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("same-body");
        let scenario = Scenario { upload_failures: 2, duplicate_hooks: true, ..Scenario::default() };
        h.start_truck_process(&pid, &vin, scenario, false).await.unwrap();
        for round in 1..=2u64 {
            let fix = h.wait_for_notification(&pid, "truck.documents-to-fix", FLOW_TIMEOUT).await.unwrap();
            assert_eq!(fix["problems"][0]["typeId"], 11);
            let start = std::time::Instant::now();
            while (kinds(&h.notifications(&pid)).iter().filter(|k| *k == "truck.documents-to-fix").count()
                as u64)
                < round
            {
                let record = h.process(&pid).await.unwrap();
                assert!(start.elapsed() < FLOW_TIMEOUT, "round {round}: no documents-to-fix; {record:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let rescan = h.put_document(&pid, 11, &format!("sts-{round}.pdf")).await.unwrap();
            let event = json!({"type": "truck.documents-corrected", "eventId": format!("fix-{round}-{pid}"), "requestId": pid, "documents": [rescan]});
            h.send_bank_event(&event).await.unwrap();
            // The next round's identical hook is told apart only once our upload went out.
            let start = std::time::Instant::now();
            while h.must.sim.changes(&vin).get("documents").copied().unwrap_or(0) < round + 1 {
                assert!(start.elapsed() < FLOW_TIMEOUT, "round {round} not re-sent");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let record = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
        let notices = kinds(&h.notifications(&pid));
        let to_fix = notices.iter().filter(|k| *k == "truck.documents-to-fix").count();
        assert_eq!(to_fix, 2, "two byte-identical upload-failed hooks, two rounds: {notices:?}");
        assert_eq!(
            notices.iter().filter(|k| *k == "truck.paid").count(),
            1,
            "every hook came twice, applied once"
        );
        assert_eq!(record["document_rounds"], 3);
        assert_eq!(h.must.sim.changes(&vin).get("documents"), Some(&3));
        let delivered: u64 = h.must.sim.stats().hooks_delivered.values().sum();
        println!("no webhook-id: identical upload-failed in rounds 1 and 2 both applied; every hook delivered twice ({delivered} deliveries so far in this stack), each applied once");
    });
}

#[test]
fn ten_processes_at_once_without_delivery_ids_are_all_issued() {
    run(async {
        let names: Vec<String> = (0..10).map(|i| format!("ten{i}")).collect();
        let done = futures_util::future::join_all(names.iter().map(|n| issued(n, Scenario::default()))).await;
        let h = harness();
        for (pid, _, record) in &done {
            assert_eq!(record["stage"], "issued");
            let notices = kinds(&h.notifications(pid));
            assert_eq!(
                notices,
                ["truck.offer", "truck.payment-link-ready", "truck.paid", "truck.policy-issued"],
                "{pid}"
            );
        }
        println!("10 processes at once, no webhook-id: 10 issued, every hook applied once");
    });
}

fn approved(insurer: &str, premium: f64) -> InsurerResult {
    InsurerResult { insurer: insurer.into(), outcome: OfferOutcome::Approved, premium, error_code: None }
}

#[test]
fn a_403_on_the_payment_link_takes_the_next_approved_insurer_and_none_left_fails_with_the_reason() {
    run(async {
        let h = harness();
        let two = vec![approved("ingostrah", 17000.0), approved("renaissance", 21000.0)];
        let scenario = Scenario {
            insurers: two.clone(),
            payment_refused: vec!["ingostrah".into()],
            ..Scenario::default()
        };
        let (pid, vin, record) = issued("refused-403", scenario).await;
        assert_eq!(record["chosen"], "renaissance", "the cheaper one could not be paid");
        assert_eq!(record["offers"]["ingostrah"]["status"], "failed");
        let link = h.wait_for_notification(&pid, "truck.payment-link-ready", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(link["insurer"], "renaissance");
        assert_eq!(h.must.sim.changes(&vin).get("payment-link"), Some(&1));

        let (pid, vin) = ids("refused-all");
        let nobody = Scenario {
            insurers: two,
            payment_refused: vec!["ingostrah".into(), "renaissance".into()],
            ..Scenario::default()
        };
        h.start_truck_process(&pid, &vin, nobody, false).await.unwrap();
        let failed = h.wait_for_notification(&pid, "truck.failed", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(failed["error"]["code"], "must-payment-refused");
        assert!(failed["error"]["message"].as_str().unwrap().contains("403"), "{failed}");
        assert_eq!(h.must.sim.changes(&vin).get("payment-link"), None, "no payment was made");
    });
}

#[test]
fn policy_is_paid_after_policy_issued_is_history_not_a_quarantined_error() {
    run(async {
        let h = harness();
        let (pid, _, record) =
            issued("paid-late", Scenario { issued_before_paid: true, ..Scenario::default() }).await;
        let sid = record["scoring_id"].as_str().unwrap().to_owned();
        h.wait_for_notification(&pid, "truck.paid", FLOW_TIMEOUT).await.unwrap();
        let record = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert_eq!(record["payment"]["status"], "paid");
        assert_eq!(
            kinds(&h.notifications(&pid)),
            ["truck.offer", "truck.payment-link-ready", "truck.policy-issued", "truck.paid"]
        );
        let kept = h.quarantined().await.unwrap();
        assert!(!kept.iter().any(|k| k.to_string().contains(&sid)), "nothing kept for {sid}");
    });
}

#[test]
fn policy_files_of_any_type_are_archived_and_one_that_cannot_be_had_never_fails_the_policy() {
    run(async {
        let h = harness();
        for (name, file, content_type, ext) in [
            ("scan", PolicyFile::Jpeg, "image/jpeg", "jpg"),
            ("zip", PolicyFile::Zip, "application/zip", "zip"),
        ] {
            let (_, _, record) = issued(name, Scenario { policy_file: file, ..Scenario::default() }).await;
            let archived = &record["policy"]["files"][0];
            assert_eq!(archived["contentType"], content_type);
            assert!(archived["key"].as_str().unwrap().ends_with(ext), "{archived}");
            let (_, metadata) = h.archived(archived["key"].as_str().unwrap()).await.unwrap();
            assert_eq!(metadata.get("sha256"), archived["sha256"].as_str().map(str::to_owned).as_ref());
        }
        for (name, file, why) in [("gone", PolicyFile::Missing, "404"), ("big", PolicyFile::Huge(25), "cap")]
        {
            let (pid, _, record) = issued(name, Scenario { policy_file: file, ..Scenario::default() }).await;
            let pending = &record["policy"]["pending_files"][0];
            assert!(pending["reason"].as_str().unwrap().contains(why), "{name}: {pending}");
            let notice = h.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
            assert_eq!(notice["pendingFiles"][0]["blobId"], pending["blobId"]);
            assert!(!kinds(&h.notifications(&pid)).contains(&"truck.failed".to_owned()));
            let kept = h.quarantined().await.unwrap();
            let process = json!(format!("TRUCK#{pid}"));
            assert!(kept
                .iter()
                .any(|k| k["origin"]["source"] == "archive-pending" && k["origin"]["process"] == process));
        }
    });
}

/// The local cloud provisions every queue attribute the template sets (a missing
/// `DeduplicationScope` once hid lost hooks locally).
#[test]
fn the_emulators_queues_have_every_attribute_the_template_sets() {
    run(async {
        let h = harness();
        let template =
            polis_local_cloud::template::Template::load(&polis_e2e::workspace_root().join("template.yaml"))
                .unwrap();
        let mut checked = 0;
        for (id, def) in template.of_type("AWS::SQS::Queue") {
            let url = h.cloud.physical(id).unwrap();
            let out = h
                .sqs()
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .unwrap();
            let actual: BTreeMap<String, String> =
                out.attributes().unwrap().iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect();
            for (prop, value) in def["Properties"].as_object().unwrap() {
                // Encryption is not provisioned locally: the emulator does not encrypt (the
                // translated-template rehearsal checks which key each queue uses).
                if matches!(
                    prop.as_str(),
                    "RedrivePolicy" | "Tags" | "KmsMasterKeyId" | "KmsDataKeyReusePeriodSeconds"
                ) {
                    continue;
                }
                let expected = h.cloud.resources.resolve(value).unwrap();
                assert_eq!(
                    actual.get(prop).map(|v| v.to_lowercase()),
                    Some(expected.to_lowercase()),
                    "{id}.{prop}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked} attributes checked");
    });
}
