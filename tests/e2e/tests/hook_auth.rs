//! Hooks authenticated by Standard Webhooks signatures, through the local stack
//! configured with `HookAuthMode=standard-webhooks` and two signing secrets (a
//! rotation in progress): MUST's signed hooks carry a whole flow to the policy;
//! every forged or stale call is refused with 401, stores nothing and costs no
//! queue message (counted at the local cloud's AWS proxy).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{harness, ids, items, run_on, writes_and_messages, FLOW_TIMEOUT};
use polis::services::truck::hook_auth::sign;
use polis_e2e::{HookAuthMode, Partners, StackOptions, StackTimings, NEW_SIGNING_SECRET, OLD_SIGNING_SECRET};
use polis_must_sim::Scenario;
use serde_json::Value;

const SIGNED: StackOptions = StackOptions {
    hook_auth: HookAuthMode::StandardWebhooks,
    log_filter: None,
    release: false,
    instances: 2,
    partners: Partners::SIMULATORS,
    timings: StackTimings::TESTS,
    bima_print_link_by: Some("polis"),
    traces: false,
};
const BODY: &str = r#"{"insuranceCompany":"ingostrah","reason":"fleet too old 17847.29"}"#;
const RETIRED_SECRET: &str = "whsec_dGhpcyBzZWNyZXQgd2FzIHJldGlyZWQ=";

/// A case: its name, the headers sent, the body, and the status expected.
type Case<'a> = (&'a str, Vec<(&'static str, String)>, &'a str, u16);

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Posts `body` to the `rejected` hook of `sid` (a hook no flow here sends, so every call to
/// its function is this test's) with the given Standard Webhooks headers.
async fn post(sid: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/hooks/{sid}/rejected", harness().cloud.http_url))
        .body(body.to_owned());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let res = req.send().await.expect("the hook API answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn signed(id: &str, ts: i64, secret: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sign(secret, id, ts, body.as_bytes()).unwrap()),
    ]
}

#[test]
fn signed_hooks_from_must_carry_a_flow_to_the_policy() {
    run_on(SIGNED, async {
        let h = harness();
        let (pid, vin) = ids("signed");
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert!(p["policy"]["number"].is_string());
    });
}

#[test]
fn forged_stale_or_tampered_hooks_are_refused_and_leave_nothing() {
    run_on(SIGNED, async {
        let h = harness();
        let t = now();
        let tampered = BODY.replacen("17847.29", "17847.20", 1);
        let good = |id: &str| signed(id, t, NEW_SIGNING_SECRET, BODY);
        let mut several = good("m-several");
        several[2].1 = format!(
            "v1,AAAA {} {}",
            sign(RETIRED_SECRET, "m-several", t, BODY.as_bytes()).unwrap(),
            several[2].1
        );
        let mut cases: Vec<Case> = vec![
            ("valid, new secret", good("m-new"), BODY, 200),
            ("valid, old secret during rotation", signed("m-old", t, OLD_SIGNING_SECRET, BODY), BODY, 200),
            ("one valid among several", several, BODY, 200),
            (
                "just inside the tolerance, behind",
                signed("m-in-behind", t - 290, NEW_SIGNING_SECRET, BODY),
                BODY,
                200,
            ),
            (
                "just inside the tolerance, ahead",
                signed("m-in-ahead", t + 290, NEW_SIGNING_SECRET, BODY),
                BODY,
                200,
            ),
        ];
        let mut refused: Vec<Case> = vec![
            ("no headers at all", vec![], BODY, 401),
            ("signature missing", good("r1")[..2].to_vec(), BODY, 401),
            ("timestamp missing", vec![good("r2")[0].clone(), good("r2")[2].clone()], BODY, 401),
            ("id missing", good("r3")[1..].to_vec(), BODY, 401),
            (
                "malformed signature header",
                {
                    let mut g = good("r4");
                    g[2].1 = "sha256=abcdef".into();
                    g
                },
                BODY,
                401,
            ),
            (
                "malformed timestamp",
                {
                    let mut g = good("r5");
                    g[1].1 = "yesterday".into();
                    g
                },
                BODY,
                401,
            ),
            ("wrong secret", signed("r6", t, RETIRED_SECRET, BODY), BODY, 401),
            ("timestamp just outside, behind", signed("r7", t - 330, NEW_SIGNING_SECRET, BODY), BODY, 401),
            ("timestamp just outside, ahead", signed("r8", t + 330, NEW_SIGNING_SECRET, BODY), BODY, 401),
            ("body changed by one byte", good("r9"), &tampered, 401),
            (
                "a shared secret instead of a signature",
                vec![("x-hook-secret", NEW_SIGNING_SECRET.to_owned())],
                BODY,
                401,
            ),
        ];
        cases.append(&mut refused);
        let (mut tried, mut wrong) = (0, Vec::new());
        // The hook function's writes and queue messages, as the local cloud counted them.
        let costs = || writes_and_messages(h, "HookRejectedFunction");
        for (name, headers, body, expected) in cases {
            let (sid, _) = ids("auth");
            let before = costs();
            let (status, answer) = post(&sid, &headers, body).await;
            let after = costs();
            let spent = (after.0 - before.0, after.1 - before.1);
            tried += 1;
            let expected_cost = if expected == 200 { (1, 1) } else { (0, 0) };
            if spent != expected_cost {
                wrong.push(format!("{name}: {spent:?} writes and messages, expected {expected_cost:?}"));
            }
            if status != expected {
                wrong.push(format!("{name}: {status} {answer}"));
            }
            let id = headers.iter().find(|(name, _)| *name == "webhook-id").map(|(_, id)| id.as_str());
            let mut stored = items(h, &format!("HOOK#{sid}")).await.len();
            if let Some(id) = id {
                stored += items(h, &polis::keys::delivery_pk(id)).await.len();
            }
            if expected == 401 && (stored != 0 || answer["error"] != "unauthorized") {
                wrong.push(format!("{name}: refused but {stored} hooks stored, answer {answer}"));
            }
            if expected == 200 && stored != 1 {
                wrong.push(format!("{name}: accepted but {stored} hooks stored"));
            }
        }
        // A valid delivery replayed within its five minutes onto another process, and onto
        // another hook: its id is taken (the signature does not cover the path).
        // (A body both hooks accept, so only the id can refuse it.)
        let both = r#"{"insuranceCompany":"ingostrah","writtenPremium":17847.29}"#;
        let replayed = signed("m-replayed", t, NEW_SIGNING_SECRET, both);
        let (first, _) = ids("auth");
        assert_eq!(post(&first, &replayed, both).await.0, 200);
        for (path, name) in [("rejected", "another process"), ("approved", "another hook")] {
            let (sid, _) = ids("auth");
            let target = if path == "rejected" { sid.clone() } else { first.clone() };
            let mut req = reqwest::Client::new()
                .post(format!("{}/api/hooks/{target}/{path}", h.cloud.http_url))
                .body(both.to_owned());
            for (header, value) in replayed.clone() {
                req = req.header(header, value);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let kept = res.json::<Value>().await.unwrap_or_default()["status"] == "quarantined";
            // The first use's record stands, and nothing was stored for the replay's path
            // (queueing follows storing; the unit tests count the queue).
            let records = items(h, &polis::keys::delivery_pk("m-replayed")).await;
            let first_path = records.iter().all(|r| {
                r.get("scoringId").and_then(|v| v.as_s().ok()) == Some(&first)
                    && r.get("hook").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("rejected")
            });
            let stored_for_replay = items(h, &format!("HOOK#{target}")).await.len();
            tried += 1;
            // Answered 200 and kept for a person (a 409 would stop MUST's stream, were it MUST).
            if status != 200 || !kept || records.len() != 1 || !first_path || stored_for_replay != 0 {
                wrong.push(format!(
                    "replayed onto {name}: {status} (kept: {kept}), {} records, first path kept: {first_path}",
                    records.len()
                ));
            }
        }
        println!("hook authentication: {tried} cases tried, {} wrong", wrong.len());
        assert!(wrong.is_empty(), "{wrong:#?}");
    });
}

#[test]
fn a_signed_hook_whose_webhook_id_cannot_be_an_id_is_kept_for_a_person_not_given_a_content_id() {
    run_on(SIGNED, async {
        let h = harness();
        let (sid, _) = ids("sc-odd-id");
        // Signed correctly, over an id we cannot store as one (a space, a slash, dots): as a
        // content id it would lose its replay protection (a replay onto this path would share it).
        let odd = "evt 1/../2";
        // To `started`: `rejected` is the forgery test's alone (it counts its function's writes).
        let body = r#"{"insuranceCompanies":["ingostrah"]}"#;
        let mut req =
            reqwest::Client::new().post(format!("{}/api/hooks/{sid}/started", h.cloud.http_url)).body(body);
        for (name, value) in signed(odd, now(), NEW_SIGNING_SECRET, body) {
            req = req.header(name, value);
        }
        let res = req.send().await.unwrap();
        let (status, reply): (u16, Value) = (res.status().as_u16(), res.json().await.unwrap());
        assert_eq!((status, reply["status"].as_str()), (200, Some("quarantined")), "{reply}");
        assert!(items(h, &format!("HOOK#{sid}")).await.is_empty(), "not stored as a hook");
        let kept = h.quarantined().await.unwrap();
        let item = kept.iter().find(|i| i.to_string().contains(&sid)).expect("kept");
        assert_eq!(item["origin"]["check"], "webhook-id", "{item}");
        assert_eq!(item["reason"], "its webhook-id cannot be used as an id");
    });
}
