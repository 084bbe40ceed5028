//! MUST's helper methods through the bank API (`POST /api/trucks/license-category`,
//! `POST /api/trucks/tariff`), signed as the bank's backend signs, through the local cloud to
//! the MUST simulator and back; every answer held to `contracts/openapi.yaml` by the stack's
//! front door.

mod common;

use common::{bank_post, harness, ids, run};
use polis_must_sim::{Failure, InsurerResult, OfferOutcome, Scenario};
use serde_json::{json, Value};

const LICENSE: &str = "/api/trucks/license-category";
const TARIFF: &str = "/api/trucks/tariff";

/// A VIN no other test uses (17 characters without I, O, Q).
fn vin(name: &str) -> String {
    ids(name).1.replace(['I', 'O', 'Q'], "1")
}

fn helper_calls(call: &str, vin: &str) -> u64 {
    harness().must.sim.stats().helper_calls.get(&format!("{call} {vin}")).copied().unwrap_or(0)
}

fn tariff_request(vin: &str) -> Value {
    json!({"vin": vin, "licenseCategory": "C", "weightGroup": "over-16t", "hasTrailer": true,
           "policyStartOn": "2199-01-01", "owner": {"kind": "legalEntity", "inn": "7701234567", "kpp": "770101001"}})
}

#[test]
fn a_tractor_units_category_is_answered_and_then_served_from_the_containers_cache() {
    run(async {
        let h = harness();
        let vin = vin("tractor");
        h.must.sim.set_scenario(&vin, Scenario { trailer_required: true, ..Scenario::default() });
        let calls = 6;
        for _ in 0..calls {
            let (status, body) = bank_post(h, LICENSE, &json!({"vin": vin.to_lowercase()}), true).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body, json!({"licenseCategory": "C", "trailerRequired": true}));
        }
        // Each container asks MUST once; the local cloud runs two per function.
        let asked = helper_calls("license-category", &vin);
        assert!((1..=2).contains(&asked), "MUST asked {asked} times for {calls} calls");
        // By plates only, MUST is asked every time (a plate may move to another vehicle).
        let plates = "А123ВС77";
        for _ in 0..3 {
            let (status, _) = bank_post(h, LICENSE, &json!({"plates": "a123bc77 rus"}), true).await;
            assert_eq!(status, 200);
        }
        assert_eq!(helper_calls("license-category", plates), 3);
    });
}

#[test]
fn a_preliminary_price_is_asked_every_time_and_names_the_insurers_that_could_not_price() {
    run(async {
        let h = harness();
        let vin = vin("tariff");
        let scenario = Scenario {
            insurers: vec![
                InsurerResult {
                    insurer: "renaissance".into(),
                    outcome: OfferOutcome::Approved,
                    premium: 17000.0,
                    error_code: None,
                },
                InsurerResult {
                    insurer: "ingostrah".into(),
                    outcome: OfferOutcome::Failed,
                    premium: 0.0,
                    error_code: Some(1505),
                },
            ],
            ..Scenario::default()
        };
        h.must.sim.set_scenario(&vin, scenario);
        for _ in 0..2 {
            let (status, body) = bank_post(h, TARIFF, &tariff_request(&vin), true).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["estimates"], json!([{"insurer": "renaissance", "premium": 19720.0}]));
            assert_eq!(body["failures"][0]["insurer"], "ingostrah");
            assert_eq!(body["failures"][0]["mustCode"], 1505);
            assert_eq!(body["failures"][0]["category"], "ingosstrakh");
        }
        assert_eq!(helper_calls("tariff", &vin), 2, "a price is never cached");
    });
}

#[test]
fn bad_input_gets_a_400_naming_each_field_and_must_is_not_called() {
    run(async {
        let h = harness();
        let vin = vin("bad");
        let (status, body) = bank_post(h, LICENSE, &json!({"vin": "SECRET-1234"}), true).await;
        assert_eq!(status, 400);
        assert_eq!(body["problems"][0]["field"], "vin");
        assert!(!body.to_string().contains("SECRET"), "the value is not quoted: {body}");
        let mut tariff = tariff_request(&vin);
        tariff["weightGroup"] = Value::Null;
        tariff["owner"]["kpp"] = json!("1");
        tariff["policyStartOn"] = json!("2020-01-01");
        let (status, body) = bank_post(h, TARIFF, &tariff, true).await;
        assert_eq!(status, 400, "{body}");
        let fields: Vec<&str> =
            body["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["weightGroup", "policyStartOn", "owner.kpp"]);
        assert_eq!(helper_calls("tariff", &vin) + helper_calls("license-category", &vin), 0);
        // Unsigned: API Gateway's 403, the function never runs.
        let (status, body) = bank_post(h, LICENSE, &json!({"vin": vin}), false).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(helper_calls("license-category", &vin), 0);
    });
}

#[test]
fn musts_refusal_is_a_422_with_its_code_and_its_failures_are_502_and_504() {
    run(async {
        let h = harness();
        let unknown = vin("unknown");
        h.must.sim.set_scenario(&unknown, Scenario { unknown_vehicle: true, ..Scenario::default() });
        for _ in 0..2 {
            let (status, body) = bank_post(h, LICENSE, &json!({"vin": unknown}), true).await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(body["mustCode"], 1203);
            assert_eq!(body["mustStatus"], 400);
            assert!(body["customerText"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
        }
        assert!(helper_calls("license-category", &unknown) >= 2, "a refusal is not cached");
        // The tariff of a vehicle MUST cannot identify: the same refusal.
        let mut person = tariff_request(&unknown);
        person["owner"] = json!({"kind": "individual", "registrationCity": "Самара"});
        let (status, body) = bank_post(h, TARIFF, &person, true).await;
        assert_eq!((status, body["mustCode"].clone()), (422, json!(1203)), "{body}");

        let failing = vin("failing");
        h.must.sim.set_scenario(
            &failing,
            Scenario { helper_failure: Some(Failure::BadGateway), ..Scenario::default() },
        );
        let (status, body) = bank_post(h, TARIFF, &tariff_request(&failing), true).await;
        assert_eq!(status, 502, "{body}");
        let slow = vin("slow");
        h.must
            .sim
            .set_scenario(&slow, Scenario { helper_failure: Some(Failure::Timeout), ..Scenario::default() });
        let started = std::time::Instant::now();
        let (status, body) = bank_post(h, LICENSE, &json!({"vin": slow}), true).await;
        assert_eq!(status, 504, "{body}");
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
    });
}

#[test]
fn an_expired_token_is_refreshed_once_and_shared() {
    run(async {
        let h = harness();
        let vin = vin("token");
        // A token to expire: the helpers take one if nobody has yet.
        let (status, _) = bank_post(h, LICENSE, &json!({"plates": "В456ОР99"}), true).await;
        assert_eq!(status, 200);
        let before = h.must.sim.stats();
        h.must.sim.expire_tokens();
        let (status, body) = bank_post(h, LICENSE, &json!({"vin": vin}), true).await;
        assert_eq!(status, 200, "{body}");
        let after = h.must.sim.stats();
        assert!(after.unauthorized > before.unauthorized, "MUST refused the old token");
        assert!(after.auth_calls > before.auth_calls, "a new token was taken");
        let token = common::items(h, "TOKEN#must").await;
        assert_eq!(token.len(), 1, "one token item, shared with the truck runner");
    });
}
