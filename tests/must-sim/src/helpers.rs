//! MUST's helper methods (the seed's "Вспомогательные методы"), as MUST would answer them.
//!
//! The seed names the two methods and nothing else, so the simulator takes the least helpful
//! reading: a bearer token as for every call (401 without one); each checks what MUST's
//! prescoring description checks and refuses with `400 {message, errorCode}` — or with a bare
//! `{message}` where that description gives no code (`Inn required`, `OwnerRegistrationCity
//! required`); an unknown vehicle is `400` with 1203; the tariff answers one line per insurer,
//! and an insurer that cannot price says so with its error code (1505 for Ingosstrakh) in an
//! otherwise successful answer. What a vehicle is (its category, whether it needs a trailer,
//! whether MUST knows it, whether these calls fail) is its scenario's, by VIN (else plates).

use serde_json::{json, Value};

use crate::model::{Answer, Must, Reply};
use crate::scenario::{OfferOutcome, Scenario};

/// `YYYY-MM-DD` of the day `ms` (epoch milliseconds) falls in, UTC.
fn date_of(ms: u64) -> String {
    let z = (ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The vehicle a helper call names, checked as MUST's prescoring checks `front/init`.
fn vehicle(body: &Value) -> Result<String, Reply> {
    let text = |f: &str| body.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
    match (text("vin"), text("plates")) {
        (None, None) => Err(Reply::error(400, Some(1102), "plates invalid")),
        (Some(vin), _) if vin.chars().count() != 17 => Err(Reply::error(400, Some(1406), "incorrect vin")),
        (Some(vin), _) => Ok(vin.to_owned()),
        (None, Some(plates)) => {
            let p: Vec<char> = plates.chars().collect();
            let letter = |c: &char| "АВЕКМНОРСТУХ".contains(*c);
            let ok = matches!(p.len(), 8 | 9)
                && letter(&p[0])
                && p[1..4].iter().all(char::is_ascii_digit)
                && p[4..6].iter().all(letter)
                && p[6..].iter().all(char::is_ascii_digit);
            if ok {
                Ok(plates.to_owned())
            } else {
                Err(Reply::error(400, Some(1102), "plates invalid"))
            }
        }
    }
}

impl Must {
    /// Checks the token, counts the call (by name and by vehicle), finds the vehicle's scenario.
    fn helper(&self, token: Option<&str>, call: &str, body: &Value) -> Result<Scenario, Answer> {
        if !self.authorised(token) {
            return Err(Reply::unauthorized().into());
        }
        let vehicle = vehicle(body).map_err(Answer::from)?;
        let scenario = self.scenario_of(&vehicle);
        self.count_helper(call, &vehicle);
        if let Some(failure) = scenario.helper_failure {
            return Err(Answer::failing(Reply::bare_ok(), Some(failure)));
        }
        if scenario.unknown_vehicle {
            return Err(Reply::error(400, Some(1203), "vin not determined").into());
        }
        Ok(scenario)
    }

    /// `POST /api/scoring/vehicle/license-category`.
    pub fn license_category(&self, token: Option<&str>, body: &Value) -> Answer {
        let scenario = match self.helper(token, "license-category", body) {
            Ok(s) => s,
            Err(answer) => return answer,
        };
        Reply::json(json!({
            "licenseCategory": scenario.license_category,
            "trailerRequired": scenario.trailer_required,
        }))
        .into()
    }

    /// `POST /api/scoring/tariff`: a preliminary price per insurer.
    pub fn tariff(&self, token: Option<&str>, body: &Value) -> Answer {
        let scenario = match self.helper(token, "tariff", body) {
            Ok(s) => s,
            Err(answer) => return answer,
        };
        let text = |f: &str| body.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
        match text("ownerType") {
            Some("legalEntity") if text("inn").is_none() => {
                return Reply::error(400, None, "Inn required").into()
            }
            Some("legalEntity") if text("kpp").is_none() => {
                return Reply::error(400, None, "Kpp required").into()
            }
            Some("legalEntity") => {}
            _ if text("ownerRegistrationCity").is_none() => {
                return Reply::error(400, None, "OwnerRegistrationCity required").into()
            }
            _ => {}
        }
        if text("policyStartOn").is_none_or(|start| start < date_of(self.clock_ms()).as_str()) {
            return Reply::error(400, Some(1403), "invalid policy start on").into();
        }
        let category = text("drivingLicenseCategory");
        if !matches!(category, Some("B" | "C")) {
            return Reply::error(400, Some(1414), "invalid vehicle license category").into();
        }
        if category == Some("C") && text("vehicleWeightGroupRuIns").is_none() {
            return Reply::error(400, Some(1412), "insufficient data to calculate price").into();
        }
        let Some(trailer) = body.get("hasTrailer").and_then(Value::as_bool) else {
            return Reply::error(400, Some(1412), "insufficient data to calculate price").into();
        };
        let lines: Vec<Value> = scenario
            .insurers
            .iter()
            .filter_map(|i| match i.outcome {
                // A trailer costs more (its own coefficient); the price is the offer's otherwise.
                OfferOutcome::Approved => Some(json!({
                    "insuranceCompany": i.insurer,
                    "writtenPremium": if trailer { (i.premium * 1.16 * 100.0).round() / 100.0 } else { i.premium },
                })),
                OfferOutcome::Failed => Some(json!({
                    "insuranceCompany": i.insurer,
                    "errorCode": i.error_code.unwrap_or(1505),
                    "errorMessage": "simulated tariff error",
                })),
                OfferOutcome::Rejected => None,
            })
            .collect();
        Reply::json(json!({"tariffs": lines})).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    #[test]
    fn dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(1_709_164_800_000), "2024-02-29");
    }

    #[test]
    fn the_helpers_take_only_musts_token_and_refuse_as_prescoring_does() {
        let must = Must::new(SimConfig::default());
        let vin = json!({"vin": "WMA06XZZ8GP000001"});
        assert_eq!(must.license_category(None, &vin).reply.status, 401);
        let token = match must.auth(&json!({"login": "polis", "password": "polis-local"})).body {
            crate::model::Body::Json(v) => v["token"].as_str().unwrap().to_owned(),
            other => panic!("{other:?}"),
        };
        let answer = must.license_category(Some(&token), &vin);
        assert_eq!(answer.reply, Reply::json(json!({"licenseCategory": "C", "trailerRequired": false})));
        assert_eq!(must.license_category(Some(&token), &json!({"vin": "SHORT"})).reply.status, 400);
        let tariff = json!({"vin": "WMA06XZZ8GP000001", "drivingLicenseCategory": "C", "hasTrailer": true,
                            "policyStartOn": "2200-01-01", "ownerType": "individual", "ownerRegistrationCity": "Самара"});
        let refused = must.tariff(Some(&token), &tariff).reply;
        assert_eq!(refused, Reply::error(400, Some(1412), "insufficient data to calculate price"));
        let mut priced = tariff.clone();
        priced["vehicleWeightGroupRuIns"] = json!("over-16t");
        let crate::model::Body::Json(lines) = must.tariff(Some(&token), &priced).reply.body else { panic!() };
        assert_eq!(lines["tariffs"][0]["insuranceCompany"], "ingostrah");
        assert_eq!(must.stats().helper_calls["tariff WMA06XZZ8GP000001"], 2);
    }
}
