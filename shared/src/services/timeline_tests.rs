use super::*;
use crate::adapters::memory::MemoryTable;
use crate::domain::must::hook::HookKind;
use crate::domain::workflow::Received;
use crate::ports::{now_ms, QuarantineStore};
use crate::services::test_support::{drive, hook, truck_key, truck_request, Plan, World};

/// The timeline's lines without their times, as a person would skim them.
fn skim(timeline: &Timeline) -> Vec<String> {
    timeline
        .entries
        .iter()
        .map(|e| match &e.line {
            Line::Happened(What::Stage { stage }) => format!("stage {stage}"),
            Line::Happened(What::Event { from, kind, .. }) => format!("{from} {kind}"),
            Line::Happened(What::Notice { kind, .. }) => format!("notice {kind}"),
            Line::Happened(What::Operator { by, action, .. }) => format!("operator {by} {action}"),
            Line::Other(Recorded::Call { effect, attempt, outcome, .. }) => {
                format!("call {effect}#{attempt} {outcome}")
            }
            Line::Other(Recorded::Kept { source, .. }) => format!("kept {source}"),
        })
        .collect()
}

async fn started(w: &World) {
    let cause = Received { from: "bank", kind: "truck.policy-requested", id: "ev-1", at_ms: 0 };
    w.table.create(&TruckProcess::start(truck_request()).begun(now_ms(), &cause)).await.unwrap();
}

async fn timeline_now(w: &World) -> Timeline {
    let kept = w.table.list_quarantined().await.unwrap();
    timeline(&w.table, &truck_key(), &kept).await.unwrap().expect("the process exists")
}

#[tokio::test]
async fn an_issued_policy_tells_its_story_in_order_calls_events_stages_and_notices() {
    let w = World::new(MemoryTable::default());
    started(&w).await;
    let runner = w.runner(false);
    runner.handle(drive()).await.unwrap();
    for (kind, body) in [
        (HookKind::DocumentsTypesRequired, r#"{"documentTypes":[11,12]}"#),
        (HookKind::DocumentsUploadCompleted, "{}"),
        (HookKind::ContractUpdateCompleted, "{}"),
        (HookKind::Started, r#"{"insuranceCompanies":["ingostrah"]}"#),
        (HookKind::Approved, r#"{"insuranceCompany":"ingostrah","writtenPremium":1000}"#),
        (HookKind::PaymentLinkGenerated, r#"{"paymentLink":"https://pay.example/1"}"#),
        (HookKind::PolicyIsPaid, "{}"),
        (HookKind::PolicyIssued, r#"{"policyNumber":"XXX 5425779624","blobIds":["b-7"]}"#),
    ] {
        runner.handle(hook(kind, body)).await.unwrap();
    }
    let t = timeline_now(&w).await;
    assert_eq!((t.stage.as_str(), t.terminal), ("issued", true));
    assert!(t.entries.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "oldest first");
    let lines = skim(&t);
    let at =
        |line: &str| lines.iter().position(|l| l == line).unwrap_or_else(|| panic!("{line:?} in {lines:#?}"));
    assert_eq!(lines[0], "bank truck.policy-requested", "it begins with the bank's request");
    assert_eq!(lines[1], "stage initializing");
    // The history in the order it happened (calls interleave by their start time, which
    // a fast test cannot tell apart from the events around them within a millisecond).
    let order = [
        "stage preparing",
        "must documents/types-required",
        "must started",
        "stage scoring",
        "must approved",
        "notice truck.offer",
        "must payment-link-generated",
        "notice truck.payment-link-ready",
        "must policy-is-paid",
        "notice truck.paid",
        "must policy-issued",
        "stage issued",
        "notice truck.policy-issued",
    ];
    let places: Vec<usize> = order.iter().map(|line| at(line)).collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "in the order it happened: {lines:#?}");
    for call in ["call init#1 done", "call documents-1#1 done", "call payment-ingostrah#1 done"] {
        at(call);
    }

    let text = t.render(now_ms());
    assert!(text.starts_with(&format!("TRUCK#{}  issued since ", truck_request().request_id)), "{text}");
    assert!(!text.lines().next().unwrap().contains('('), "an ended process has no 'for how long'");
    assert!(text.contains("call      init #1  done in "), "{text}");
    assert!(text.contains("must      policy-issued  id "), "{text}");
    assert_eq!(text.lines().count(), t.entries.len() + 1);
}

#[tokio::test]
async fn a_held_process_shows_the_ambiguous_call_its_review_and_how_long_it_waits() {
    let w = World::new(MemoryTable::default());
    started(&w).await;
    w.must.plan("init", &[Plan::LostAnswer]);
    w.runner(false).handle(drive()).await.unwrap();
    let t = timeline_now(&w).await;
    assert_eq!(t.stage, "needs-review");
    assert!(!t.terminal);
    let lines = skim(&t);
    for line in ["call init#1 ambiguous", "kept review", "stage needs-review"] {
        assert!(lines.contains(&line.to_owned()), "{line:?} in {lines:#?}");
    }
    assert!(t.stage_since_ms > 0);
    let header = t.render(t.stage_since_ms + 90_000).lines().next().unwrap().to_owned();
    assert!(header.ends_with("(1m 30s)"), "{header}");
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["entries"][0]["what"], "event");
    assert!(json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["what"] == "call" && e["outcome"] == "ambiguous"));
}

#[tokio::test]
async fn an_operator_finds_a_process_by_request_id_scoring_id_loan_number_or_key() {
    let w = World::new(MemoryTable::default());
    started(&w).await;
    w.runner(false).handle(drive()).await.unwrap();
    let request = truck_request().request_id.to_string();
    for id in [request.as_str(), "sc-1", &truck_key().to_string()] {
        assert_eq!(find(&w.table, id).await.unwrap(), Some(truck_key()), "{id}");
    }
    assert_eq!(find(&w.table, "NOBODY-1").await.unwrap(), None);
}

#[tokio::test]
async fn stuck_lists_processes_in_their_stage_longer_than_asked_longest_first() {
    let table = MemoryTable::default();
    let cause = Received { from: "bank", kind: "truck.policy-requested", id: "ev", at_ms: 0 };
    let mut request = truck_request();
    let now = now_ms();
    for (id, since) in [("REQ-A", now - 3_600_000), ("REQ-B", now - 7_200_000), ("REQ-C", now - 60_000)] {
        request.request_id = ProcessId::parse(id).unwrap();
        table.create(&TruckProcess::start(request.clone()).begun(since, &cause)).await.unwrap();
    }
    let found = stuck(&table, Duration::from_secs(30 * 60), now, 100).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|p| p.process.id()).collect();
    assert_eq!(ids, ["REQ-B", "REQ-A"], "REQ-C is there for a minute only");
    assert_eq!(found[0].stage, "initializing");
}

#[test]
fn times_and_spans_read_as_people_write_them() {
    assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(utc(1_795_501_808_164), "2026-11-24T06:30:08.164Z");
    assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z", "a leap day");
    assert_eq!(span(800), "800 ms");
    assert_eq!(span(90_000), "1m 30s");
    assert_eq!(span(2 * 86_400_000 + 3 * 3_600_000), "2d 3h");
    assert_eq!(parse_span("30m"), Ok(Duration::from_secs(1_800)));
    assert_eq!(parse_span("2h"), Ok(Duration::from_secs(7_200)));
    assert_eq!(parse_span("1d"), Ok(Duration::from_secs(86_400)));
    for bad in ["", "m", "30", "30x", "-1m", "1.5h"] {
        assert!(parse_span(bad).is_err(), "{bad:?}");
    }
}
