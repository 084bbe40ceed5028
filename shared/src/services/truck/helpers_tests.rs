use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

use super::*;
use crate::domain::must::helpers::{LicenseCategoryAnswer, TariffAnswer};

/// MUST's helpers, answering from a script (the last answer repeats), counting calls.
#[derive(Default)]
struct ScriptedMust {
    answers: Mutex<VecDeque<Result<Value, CallError>>>,
    calls: AtomicU32,
    /// Answer this late (to run past the budget).
    delay: Option<Duration>,
}

impl ScriptedMust {
    fn answering(answers: Vec<Result<Value, CallError>>) -> ScriptedMust {
        ScriptedMust { answers: Mutex::new(answers.into()), ..ScriptedMust::default() }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    async fn next<T: serde::de::DeserializeOwned>(&self) -> Result<T, CallError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        let answer = {
            let mut answers = self.answers.lock().unwrap();
            if answers.len() > 1 {
                answers.pop_front().unwrap()
            } else {
                answers.front().cloned().unwrap()
            }
        };
        answer.map(|v| serde_json::from_value(v).unwrap())
    }
}

impl MustHelpers for ScriptedMust {
    async fn license_category(&self, _: &LicenseCategoryRequest) -> Result<LicenseCategoryAnswer, CallError> {
        self.next().await
    }

    async fn tariff(&self, _: &TariffRequest) -> Result<TariffAnswer, CallError> {
        self.next().await
    }
}

const VIN: &[u8] = br#"{"vin":"WMA06XZZ8GP000001"}"#;

fn category_c() -> Result<Value, CallError> {
    Ok(json!({"licenseCategory": "C", "trailerRequired": true}))
}

fn tariff_body() -> Vec<u8> {
    json!({"vin": "WMA06XZZ8GP000001", "licenseCategory": "C", "weightGroup": "up-to-16t", "hasTrailer": false,
           "policyStartOn": "2200-01-01", "owner": {"kind": "individual", "registrationCity": "Самара"}})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_category_asked_by_vin_is_answered_then_served_from_the_cache() {
    let helpers = TruckHelpers::new(ScriptedMust::answering(vec![category_c()]));
    for _ in 0..3 {
        let reply = helpers.handle("/api/trucks/license-category", VIN).await;
        assert_eq!(reply, Reply::new(200, json!({"licenseCategory": "C", "trailerRequired": true})));
    }
    assert_eq!(helpers.must.calls(), 1, "asked MUST once");
    // The same vehicle in lower case is the same VIN.
    helpers.handle("/api/trucks/license-category", br#"{"vin":"wma06xzz8gp000001"}"#).await;
    assert_eq!(helpers.must.calls(), 1);
}

#[tokio::test]
async fn a_category_asked_by_plates_only_is_always_asked_of_must() {
    let helpers = TruckHelpers::new(ScriptedMust::answering(vec![category_c()]));
    for _ in 0..2 {
        let reply =
            helpers.handle("/api/trucks/license-category", r#"{"plates":"К860ММ21"}"#.as_bytes()).await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(helpers.must.calls(), 2, "a plate may move to another vehicle");
    assert!(helpers.cache.is_empty());
}

#[tokio::test]
async fn the_tariff_is_never_cached() {
    let line = json!({"tariffs": [{"insuranceCompany": "ingostrah", "writtenPremium": 17847.29},
                                 {"insuranceCompany": "renaissance", "errorCode": 1505}]});
    let helpers = TruckHelpers::new(ScriptedMust::answering(vec![Ok(line)]));
    for _ in 0..2 {
        let reply = helpers.handle("/api/trucks/tariff", &tariff_body()).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.body["estimates"], json!([{"insurer": "ingostrah", "premium": 17847.29}]));
        assert_eq!(reply.body["failures"][0]["mustCode"], 1505);
    }
    assert_eq!(helpers.must.calls(), 2);
}

#[tokio::test]
async fn bad_input_gets_a_precise_400_and_must_is_not_called() {
    let helpers = TruckHelpers::new(ScriptedMust::answering(vec![category_c()]));
    let reply = helpers.handle("/api/trucks/license-category", br#"{"vin":"WMA06-SECRET"}"#).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body["problems"],
        json!([{"field": "vin", "problem": "17 letters or digits, without I, O or Q"}])
    );
    assert!(!reply.body.to_string().contains("SECRET"));
    let mut tariff: Value = serde_json::from_slice(&tariff_body()).unwrap();
    tariff["policyStartOn"] = json!("2000-01-01");
    tariff["owner"] = json!({"kind": "legalEntity", "inn": "12"});
    let reply = helpers.handle("/api/trucks/tariff", tariff.to_string().as_bytes()).await;
    assert_eq!(reply.status, 400);
    let fields: Vec<&str> =
        reply.body["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["policyStartOn", "owner.inn", "owner.kpp"]);
    assert_eq!(helpers.must.calls(), 0);
}

#[tokio::test]
async fn musts_refusal_is_a_422_with_its_code_and_is_not_cached() {
    let refused = CallError::Refused { status: 400, code: Some(1203), message: "vin not determined".into() };
    let helpers = TruckHelpers::new(ScriptedMust::answering(vec![Err(refused), category_c()]));
    let reply = helpers.handle("/api/trucks/license-category", VIN).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["mustCode"], 1203);
    assert_eq!(reply.body["mustStatus"], 400);
    assert_eq!(reply.body["mustMessage"], "vin not determined");
    let reply = helpers.handle("/api/trucks/license-category", VIN).await;
    assert_eq!(reply.status, 200, "the refusal was not cached");
}

#[tokio::test]
async fn each_kind_of_must_failure_has_its_status() {
    let cases = [
        (CallError::Ambiguous("HTTP 500 Internal Server Error".into()), 502),
        (CallError::Ambiguous("HTTP 502 Bad Gateway".into()), 502),
        (CallError::Ambiguous(format!("{TIMED_OUT}: error sending request")), 504),
        (CallError::Ambiguous("HTTP 504 Gateway Timeout".into()), 504),
        (CallError::Ambiguous("error sending request: connection reset".into()), 502),
        (CallError::NotSent("HTTP 429 Too Many Requests".into()), 503),
        (CallError::NotSent("HTTP 401 Unauthorized".into()), 502),
        (CallError::NotSent("no token: refused with HTTP 401: wrong login or password".into()), 502),
        (CallError::NotSent("dynamodb call failed: throttled".into()), 503),
        (CallError::Refused { status: 403, code: None, message: "forbidden".into() }, 502),
        (CallError::Refused { status: 404, code: None, message: "no such vehicle".into() }, 422),
        (CallError::Unusable("1048577 bytes or more".into()), 502),
    ];
    for (error, status) in cases {
        let said = error.to_string();
        let helpers = TruckHelpers::new(ScriptedMust::answering(vec![Err(error)]));
        let reply = helpers.handle("/api/trucks/license-category", VIN).await;
        assert_eq!(reply.status, status, "{said}: {:?}", reply.body);
        assert!(reply.body["error"].is_string());
        assert!(helpers.cache.is_empty(), "{said}: nothing cached");
    }
    let unusable = TruckHelpers::new(ScriptedMust::answering(vec![Ok(json!({"trailerRequired": true}))]));
    assert_eq!(unusable.handle("/api/trucks/license-category", VIN).await.status, 502, "no category");
}

#[tokio::test(start_paused = true)]
async fn a_call_past_the_budget_is_a_504() {
    let must =
        ScriptedMust { delay: Some(Duration::from_secs(60)), ..ScriptedMust::answering(vec![category_c()]) };
    let helpers = TruckHelpers::new(must);
    let reply = helpers.handle("/api/trucks/license-category", VIN).await;
    assert_eq!(reply.status, 504);
}

#[tokio::test(start_paused = true)]
async fn the_cache_forgets_after_its_ttl_and_stays_within_its_bound() {
    crate::clock::follow_tokio_time(Some(1_000_000));
    let cache = TtlCache::new(Duration::from_secs(60), 2);
    cache.put("a".into(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    cache.put("b".into(), 2);
    cache.put("c".into(), 3);
    assert_eq!(cache.len(), 2);
    assert_eq!(
        (cache.get("a"), cache.get("b"), cache.get("c")),
        (None, Some(2), Some(3)),
        "the oldest made room"
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(cache.get("b"), None, "expired");
    crate::clock::follow_tokio_time(None);
}

#[test]
fn today_is_read_from_the_clock_in_utc() {
    let today = today_utc();
    assert!(crate::domain::validation::is_iso_date(&today), "{today}");
    assert!(today.as_str() > "2025-01-01");
}
