//! The hook API and the bank-events queue refuse what they must, precisely,
//! and keep what they cannot process.

mod common;

use std::time::Duration;

use common::{harness, ids, items, run, FLOW_TIMEOUT};
use polis_e2e::{Harness, HOOK_SECRET};
use serde_json::{json, Value};

async fn post(path: &str, secret: Option<&str>, body: &str) -> (u16, Value) {
    let h = harness();
    let mut req = reqwest::Client::new().post(format!("{}{path}", h.cloud.http_url)).body(body.to_owned());
    if let Some(s) = secret {
        req = req.header("x-hook-secret", s);
    }
    let res = req.send().await.expect("the hook API answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[test]
fn a_hook_with_a_wrong_or_missing_secret_is_refused_and_nothing_is_stored() {
    run(async {
        let h = harness();
        let (sid, _) = ids("sec");
        for secret in [None, Some("wrong-secret"), Some("")] {
            let (status, body) =
                post(&format!("/api/hooks/{sid}/approved"), secret, r#"{"insuranceCompany":"ingostrah"}"#)
                    .await;
            assert_eq!(status, 401, "{secret:?}");
            assert_eq!(body["error"], "unauthorized");
        }
        assert!(items(h, &format!("HOOK#{sid}")).await.is_empty());
    });
}

#[test]
fn an_authenticated_hook_with_a_bad_scoring_id_is_kept_naming_the_rule_and_answered_200() {
    // MUST retries anything but 200 forever, one hook at a time: a 4xx to MUST stops its stream.
    run(async {
        for bad in ["a%20b", "..%2Fetc", "x%23y"] {
            let (status, body) = post(&format!("/api/hooks/{bad}/started"), Some(HOOK_SECRET), "{}").await;
            assert_eq!((status, body["status"].as_str()), (200, Some("quarantined")), "{bad}");
            assert!(body["reason"].as_str().unwrap().starts_with("scoringId must be"), "{body}");
            // Without the secret: refused, nothing kept.
            assert_eq!(post(&format!("/api/hooks/{bad}/started"), None, "{}").await.0, 401);
        }
        let (status, _) = post("/api/hooks/abc/no-such-hook", Some(HOOK_SECRET), "{}").await;
        assert_eq!(status, 404);
    });
}

/// A request written byte for byte (no client normalises its path).
async fn raw(request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = harness().cloud.http_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[test]
fn the_gateways_own_answers_are_the_gateways_a_path_it_cannot_route_and_a_body_over_its_limit() {
    run(async {
        let head = |path: &str, length: usize| {
            format!(
                "POST {path} HTTP/1.1\r\nhost: polis\r\nx-hook-secret: {HOOK_SECRET}\r\n\
                 content-length: {length}\r\nconnection: close\r\n\r\n"
            )
        };
        // Dot segments, encoded: routed nowhere.
        let (status, answer) = raw(format!("{}{{}}", head("/api/hooks/%2e%2e/started", 2)).as_bytes()).await;
        assert_eq!(status, 404, "{answer}");
        assert!(answer.contains(r#"{"message":"Not Found"}"#), "{answer}");
        // A body over API Gateway's 10 MB: refused by the gateway, no function called.
        let body = vec![b' '; 11 * 1024 * 1024];
        let mut request = head(&format!("/api/hooks/{}/started", ids("sc-huge").0), body.len()).into_bytes();
        request.extend(&body);
        let (status, answer) = raw(&request).await;
        assert_eq!(status, 413, "{}", &answer[..answer.len().min(300)]);
        assert!(answer.contains(r#"{"message":"Request Entity Too Large"}"#), "{answer}");
        // An authenticated 8 MiB body reaches the function: kept for a person, answered 200.
        let (sid, _) = ids("sc-large");
        let (status, reply) =
            post(&format!("/api/hooks/{sid}/started"), Some(HOOK_SECRET), &" ".repeat(8 * 1024 * 1024)).await;
        assert_eq!((status, reply["status"].as_str()), (200, Some("quarantined")), "{reply}");
    });
}

#[test]
fn a_malformed_hook_is_quarantined_with_its_reason_and_answered_200() {
    run(async {
        let h = harness();
        let (sid, _) = ids("bad-body");
        let (status, body) =
            post(&format!("/api/hooks/{sid}/approved"), Some(HOOK_SECRET), r#"{"insuranceCompany": 5}"#)
                .await;
        assert_eq!(status, 200, "MUST must stop retrying: the hook is kept");
        assert_eq!(body["status"], "quarantined");
        assert_eq!(body["reason"], "field insuranceCompany: expected an insurer code string");
        let (status, body) = post(&format!("/api/hooks/{sid}/failed"), Some(HOOK_SECRET), "{not json").await;
        assert_eq!(status, 200);
        assert!(body["reason"].as_str().unwrap().starts_with("body is not JSON"));
        let quarantined = quarantined_for(h, &sid).await;
        assert_eq!(quarantined.len(), 2, "{quarantined:?}");
        assert!(quarantined.iter().any(|q| q["body"] == "{not json"), "kept verbatim");
        assert!(items(h, &format!("HOOK#{sid}")).await.is_empty(), "not stored as a hook to process");
    });
}

async fn quarantined_for(h: &Harness, needle: &str) -> Vec<Value> {
    h.quarantined().await.unwrap().into_iter().filter(|r| r.to_string().contains(needle)).collect()
}

#[test]
fn an_invalid_bank_request_is_refused_naming_every_bad_field_and_kept() {
    run(async {
        let h = harness();
        let (pid, vin) = ids("invalid");
        let mut request = Harness::truck_request(
            &pid,
            "cust-invalid",
            &vin,
            true,
            vec![json!({"typeId": 11, "s3Key": "../x", "fileName": "a.pdf"})],
        );
        request["policyholder"]["inn"] = json!("12345");
        request["policy"]["startOn"] = json!("2027-02-30");
        request["vehicle"]["vin"] = json!("SHORT");
        h.send_bank_event(&request).await.unwrap();
        let refused = h.wait_for_notification(&pid, "truck.request-invalid", FLOW_TIMEOUT).await.unwrap();
        let fields: Vec<&str> =
            refused["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["policyholder.inn", "vehicle.vin", "policy.startOn", "documents[0].s3Key"]);
        assert_eq!(refused["rejectedEventId"], format!("evt-{pid}"));
        assert!(h.process(&pid).await.unwrap().is_none(), "no process for an invalid request");
        assert_eq!(quarantined_for(h, &pid).await.len(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
}

fn loan_event(loan_number: &str) -> Value {
    Harness::loan_event(loan_number, "CUST-42", "500000")
}

#[test]
fn a_loan_event_creates_one_credit_life_record_however_often_it_arrives() {
    run(async {
        let h = harness();
        let (number, _) = ids("L");
        for _ in 0..3 {
            h.send_bank_event(&loan_event(&number)).await.unwrap();
        }
        let mut found = Vec::new();
        for _ in 0..100 {
            found = items(h, &format!("LOAN#{number}")).await;
            if !found.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let records = items(h, &format!("LOAN#{number}")).await;
        let processes: Vec<_> = records.iter().filter(|i| i["sk"].as_s().unwrap() == "PROCESS").collect();
        assert_eq!(processes.len(), 1, "{found:?}");
        assert_eq!(processes[0]["gsi1pk"].as_s().unwrap(), "CUSTOMER#CUST-42");
        let state: Value = polis_e2e::attribute_json(&processes[0]["state"]).unwrap();
        assert_eq!(state["loan"]["loanNumber"], json!(number));
    });
}

#[test]
fn an_invalid_loan_event_is_answered_with_bima_failed_naming_every_field() {
    run(async {
        let h = harness();
        let (number, _) = ids("Lbad");
        let mut loan = loan_event(&number);
        loan["borrower"]["tin"] = json!("12");
        loan["borrower"]["phones"][0]["number"] = json!("+992935550011");
        loan["termMonths"] = json!(0);
        h.send_bank_event(&loan).await.unwrap();
        let mut refused = None;
        for _ in 0..100 {
            refused = h.notifications(&number).into_iter().next();
            if refused.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let refused = refused.expect("a bima.failed notice");
        assert_eq!(refused["type"], "bima.failed");
        let fields: Vec<&str> =
            refused["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["termMonths", "borrower.tin", "borrower.phones[0].number"]);
        assert!(items(h, &format!("LOAN#{number}")).await.is_empty(), "no process for an invalid event");
        assert_eq!(quarantined_for(h, &number).await.len(), 1);
    });
}

/// A small deterministic generator (xorshift), so a failing run can be repeated.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

#[test]
fn random_bad_input_through_the_stack_gets_a_4xx_or_quarantine_never_a_5xx() {
    run(async {
        let h = harness();
        let mut noise = Noise(0x5eed_cafe_f00d);
        let paths =
            ["approved", "failed", "policy-issued", "documents/types-required", "payment-link-generated"];
        let ids = [
            "ok-id",
            "a%2Fb",
            "..",
            "%2E%2E",
            "x%00y",
            "%F0%9F%92%A5",
            "a%23b",
            "very-long-id-very-long-id-very-long-id-very-long-id-very-long-id-very-long-id-x",
        ];
        let bodies = [
            "",
            "{",
            "[]",
            "null",
            "\"text\"",
            "{\"insuranceCompany\": 5}",
            "{\"errorCode\": \"x\"}",
            "{\"documentTypes\": [\"a\", -1]}",
            "{\"url\": null}",
            "{\"blobIds\": {}}",
            "\u{0}\u{1}",
            "{\"insuranceCompany\":\"ingostrah\",\"writtenPremium\":1e999}",
        ];
        let mut statuses = std::collections::BTreeMap::new();
        let tried = 120;
        for _ in 0..tried {
            let path = format!("/api/hooks/{}/{}", noise.pick(&ids), noise.pick(&paths));
            let mut body = noise.pick(&bodies).as_bytes().to_vec();
            if noise.next() % 4 == 0 {
                body = (0..(noise.next() % 300)).map(|_| noise.next() as u8).collect();
            }
            let res = reqwest::Client::new()
                .post(format!("{}{path}", h.cloud.http_url))
                .header("x-hook-secret", HOOK_SECRET)
                .body(body)
                .send()
                .await
                .unwrap();
            *statuses.entry(res.status().as_u16()).or_insert(0u32) += 1;
        }
        println!("bad hooks: {tried} tried, answers {statuses:?}");
        assert!(
            statuses.keys().all(|s| [200, 404].contains(s)),
            "no 5xx, no 401 for bad input: {statuses:?}"
        );

        let example = include_str!("../../../shared/examples/bank/truck.policy-requested.json");
        let breakages =
            ["null", "\"\"", "-1", "{}", "[]", "\"../../etc\"", "\"2027-02-30\"", "1e400", "\"\\u0000\""];
        let fields =
            ["requestId", "customerId", "vehicle", "policy", "documents", "payment", "type", "eventId"];
        let mut events = 0;
        for i in 0..30 {
            let mut event: Value = serde_json::from_str(example).unwrap();
            event["requestId"] = json!(format!("fuzz-{}-{i}", std::process::id()));
            event["eventId"] = json!(format!("evt-fuzz-{}-{i}", std::process::id()));
            let broken = noise.pick(&breakages);
            event[noise.pick(&fields)] = serde_json::from_str(broken).unwrap_or(Value::Null);
            h.send_bank_event(&event).await.unwrap();
            events += 1;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let dead = h.queue_depth("BankEventsDeadLetterQueue").await.unwrap();
        let intake_log =
            std::fs::read_to_string(h.log_dir.join("BankIntakeFunction.log")).unwrap_or_default();
        println!("bad bank events: {events} sent, {dead} dead-lettered");
        assert_eq!(dead, 0, "every bad event was answered, none crashed the intake");
        assert!(!intake_log.contains("panicked"), "the intake never panicked");
    });
}
