//! MUST's helper methods (the seed's "Вспомогательные методы"), which the bank calls
//! through us synchronously:
//!
//! - `/api/scoring/vehicle/license-category`: the vehicle's licence category and whether
//!   it must be driven with a trailer;
//! - `/api/scoring/tariff`: a preliminary price, before any document is uploaded.
//!
//! The seed names the two methods and nothing else: no HTTP method, no body, no answer.
//! Like every call of the seed they are POSTs with MUST's bearer token. The request
//! fields are the names MUST's prescoring description uses (`DrivingLicenseCategory`,
//! `VehicleWeightGroupRuIns`, `HasTrailer`, `OwnerRegistrationCity`, `PolicyStartOn`, in
//! MUST's camelCase), the vehicle is named as `init` names it (`vin`, `plates`), and
//! the answers are read leniently (a few aliases, unknown fields ignored). This file is
//! the one place to correct them when MUST's Swagger says otherwise.
//!
//! Here: what the bank may send us (validated field by field, every problem named
//! without quoting a value), the bodies we send MUST, MUST's answers, and ours.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

use crate::domain::must::error_codes::MustErrorCode;
use crate::domain::must::insurer::Insurer;
use crate::domain::truck::bank::PartyKind;
use crate::domain::validation::{decode, is_digits, is_iso_date, FieldError, Problems};

/// MUST's path of the licence-category helper.
pub const LICENSE_CATEGORY_PATH: &str = "/api/scoring/vehicle/license-category";
/// MUST's path of the preliminary-price helper.
pub const TARIFF_PATH: &str = "/api/scoring/tariff";

/// The letters a Russian registration plate may use (MUST's prescoring rules), and the
/// Latin letters that look the same, which MUST replaces by them.
const PLATE_LETTERS: &str = "АВЕКМНОРСТУХ";
const LATIN_LOOKALIKES: [(char, char); 12] = [
    ('A', 'А'),
    ('B', 'В'),
    ('E', 'Е'),
    ('K', 'К'),
    ('M', 'М'),
    ('H', 'Н'),
    ('O', 'О'),
    ('P', 'Р'),
    ('C', 'С'),
    ('T', 'Т'),
    ('Y', 'У'),
    ('X', 'Х'),
];

/// A plate as MUST's prescoring checks it: `RU`/`RUS` cut off, spaces dropped, Latin
/// look-alikes made Cyrillic, upper case; then one letter, three digits, two letters and
/// a region of two or three digits (`А123ВС77`). `None` when it is not such a plate.
pub fn normalise_plates(raw: &str) -> Option<String> {
    let mut text: String = raw.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    for suffix in ["RUS", "RU"] {
        if let Some(cut) = text.strip_suffix(suffix) {
            text = cut.to_owned();
            break;
        }
    }
    let plate: Vec<char> = text
        .chars()
        .map(|c| LATIN_LOOKALIKES.iter().find(|(latin, _)| *latin == c).map_or(c, |(_, cyr)| *cyr))
        .collect();
    let letter = |c: &char| PLATE_LETTERS.contains(*c);
    let digit = |c: &char| c.is_ascii_digit();
    let ok = matches!(plate.len(), 8 | 9)
        && letter(&plate[0])
        && plate[1..4].iter().all(digit)
        && plate[4..6].iter().all(letter)
        && plate[6..].iter().all(digit);
    ok.then(|| plate.into_iter().collect())
}

/// A VIN as MUST's prescoring checks it: 17 characters (and, as every VIN, no I, O or Q).
pub fn normalise_vin(raw: &str) -> Option<String> {
    let vin = raw.trim().to_ascii_uppercase();
    let ok =
        vin.len() == 17 && vin.bytes().all(|b| b.is_ascii_alphanumeric() && !matches!(b, b'I' | b'O' | b'Q'));
    ok.then_some(vin)
}

/// A body the bank sent, as JSON; the problem names the place, never the content.
fn parse_body(body: &[u8]) -> Result<Value, Vec<FieldError>> {
    let one = |problem: &str| vec![FieldError { field: "$".into(), problem: problem.into() }];
    if body.is_empty() {
        return Err(one("a JSON object is required"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(one("a JSON object is required")),
        Err(e) => Err(one(&format!("not JSON (line {} column {})", e.line(), e.column()))),
    }
}

/// A decoding problem: a missing field is named as the field itself (serde names its parent).
fn decoded<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Vec<FieldError>> {
    decode(value).map_err(|mut e| {
        let missing =
            e.problem.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')).map(str::to_owned);
        if let Some(name) = missing {
            e.field = if e.field == "$" { name } else { format!("{}.{name}", e.field) };
            e.problem = "required".into();
        }
        vec![e]
    })
}

/// The vehicle the bank names: a VIN, registration plates, or both.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VehicleInput {
    #[serde(default)]
    vin: Option<String>,
    #[serde(default)]
    plates: Option<String>,
}

/// A vehicle, checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vehicle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plates: Option<String>,
}

impl VehicleInput {
    fn check(&self, p: &mut Problems) -> Vehicle {
        let vin = self.vin.as_deref().filter(|v| !v.trim().is_empty());
        let plates = self.plates.as_deref().filter(|v| !v.trim().is_empty());
        p.check(vin.is_some() || plates.is_some(), "vin", "a vin or plates is required");
        let vin = vin.and_then(|v| {
            let vin = normalise_vin(v);
            p.check(vin.is_some(), "vin", "17 letters or digits, without I, O or Q");
            vin
        });
        let plates = plates.and_then(|v| {
            let plates = normalise_plates(v);
            p.check(plates.is_some(), "plates", "a Russian registration plate such as А123ВС77");
            plates
        });
        Vehicle { vin, plates }
    }
}

/// `POST /api/trucks/license-category`, as the bank sends it, validated: the body MUST gets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCategoryRequest {
    #[serde(flatten)]
    pub vehicle: Vehicle,
}

impl LicenseCategoryRequest {
    /// The bank's body, checked: every problem named by its field.
    pub fn parse(body: &[u8]) -> Result<LicenseCategoryRequest, Vec<FieldError>> {
        let input: VehicleInput = decoded(parse_body(body)?)?;
        let mut p = Problems::default();
        let vehicle = input.check(&mut p);
        p.into_result()?;
        Ok(LicenseCategoryRequest { vehicle })
    }

    /// The key under which an answer may be cached: only a vehicle named by its VIN (see
    /// the service), with the plates as given beside it.
    pub fn cache_key(&self) -> Option<String> {
        let vin = self.vehicle.vin.as_deref()?;
        Some(format!("{vin}|{}", self.vehicle.plates.as_deref().unwrap_or("")))
    }
}

/// MUST's answer to the licence-category helper, read leniently.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCategoryAnswer {
    #[serde(default, alias = "drivingLicenseCategory", alias = "vehicleLicenseCategory", alias = "category")]
    pub license_category: Option<String>,
    #[serde(default, alias = "isTrailerRequired", alias = "trailerIsRequired", alias = "hasTrailer")]
    pub trailer_required: Option<bool>,
}

/// Our answer to the bank: the category (`B`, `C`, ...) and whether a trailer is mandatory
/// (`null` when MUST did not say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCategory {
    pub license_category: String,
    pub trailer_required: Option<bool>,
}

impl LicenseCategoryAnswer {
    /// Our answer, or why MUST's cannot be used.
    pub fn into_answer(self) -> Result<LicenseCategory, String> {
        let category = self
            .license_category
            .map(|c| c.trim().to_uppercase())
            .filter(|c| !c.is_empty() && c.len() <= 8 && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
            .ok_or("MUST's answer names no licence category")?;
        Ok(LicenseCategory { license_category: category, trailer_required: self.trailer_required })
    }
}

/// The licence categories the tariff takes (MUST: "neither C nor B" is error 1414).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TariffCategory {
    B,
    C,
}

/// A category-C vehicle's weight group, which MUST needs for its price (error 1412 without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightGroup {
    /// Permitted maximum mass up to 16 tonnes.
    #[serde(rename = "up-to-16t")]
    UpTo16t,
    /// Over 16 tonnes.
    #[serde(rename = "over-16t")]
    Over16t,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerInput {
    kind: PartyKind,
    #[serde(default)]
    registration_city: Option<String>,
    #[serde(default)]
    inn: Option<String>,
    #[serde(default)]
    kpp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TariffInput {
    #[serde(default)]
    vin: Option<String>,
    #[serde(default)]
    plates: Option<String>,
    license_category: TariffCategory,
    #[serde(default)]
    weight_group: Option<WeightGroup>,
    has_trailer: bool,
    policy_start_on: String,
    owner: OwnerInput,
}

/// `POST /api/trucks/tariff`, validated: the body MUST gets (`/api/scoring/tariff`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TariffRequest {
    #[serde(flatten)]
    pub vehicle: Vehicle,
    pub driving_license_category: TariffCategory,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicle_weight_group_ru_ins: Option<WeightGroup>,
    pub has_trailer: bool,
    pub policy_start_on: String,
    /// MUST's names, as in the contract card: `individual`, `legalEntity`, `privateEntrepreneur`.
    pub owner_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_registration_city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kpp: Option<String>,
}

impl TariffRequest {
    /// The bank's body, checked against what MUST's prescoring refuses (a start in the past:
    /// `today` is `YYYY-MM-DD`, UTC); every problem named by its field, no value quoted.
    pub fn parse(body: &[u8], today: &str) -> Result<TariffRequest, Vec<FieldError>> {
        let input: TariffInput = decoded(parse_body(body)?)?;
        let mut p = Problems::default();
        let vehicle = VehicleInput { vin: input.vin.clone(), plates: input.plates.clone() }.check(&mut p);
        p.check(
            input.license_category != TariffCategory::C || input.weight_group.is_some(),
            "weightGroup",
            "required for category C: up-to-16t or over-16t",
        );
        let start = input.policy_start_on.as_str();
        p.check(is_iso_date(start), "policyStartOn", "YYYY-MM-DD");
        if is_iso_date(start) {
            p.check(start >= today, "policyStartOn", "today or later");
        }
        let owner = &input.owner;
        let city = owner.registration_city.as_deref().map(str::trim).filter(|c| !c.is_empty());
        if let Some(c) = city {
            p.check(c.chars().count() <= 200, "owner.registrationCity", "at most 200 characters");
        }
        match owner.kind {
            PartyKind::LegalEntity => {
                p.check(
                    owner.inn.as_deref().is_some_and(|i| is_digits(i, &[10])),
                    "owner.inn",
                    "a legal entity needs a 10-digit INN",
                );
                p.check(
                    owner.kpp.as_deref().is_some_and(|k| is_digits(k, &[9])),
                    "owner.kpp",
                    "a legal entity needs a 9-digit KPP",
                );
            }
            PartyKind::Individual | PartyKind::Entrepreneur => {
                p.check(city.is_some(), "owner.registrationCity", "required for a person");
                if let Some(inn) = &owner.inn {
                    p.check(is_digits(inn, &[12]), "owner.inn", "a person's INN has 12 digits");
                }
                p.check(owner.kpp.is_none(), "owner.kpp", "only a legal entity has a KPP");
            }
        }
        p.into_result()?;
        Ok(TariffRequest {
            vehicle,
            driving_license_category: input.license_category,
            vehicle_weight_group_ru_ins: input.weight_group,
            has_trailer: input.has_trailer,
            policy_start_on: input.policy_start_on,
            owner_type: match owner.kind {
                PartyKind::Individual => "individual",
                PartyKind::LegalEntity => "legalEntity",
                PartyKind::Entrepreneur => "privateEntrepreneur",
            },
            owner_registration_city: city.map(str::to_owned),
            inn: owner.inn.clone(),
            kpp: owner.kpp.clone(),
        })
    }
}

/// One insurer's line of MUST's tariff answer: a premium, or an error code (e.g. 1505,
/// "Ингосстрах ошибка предварительного расчета").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TariffLine {
    #[serde(default, alias = "insurer")]
    pub insurance_company: Option<String>,
    #[serde(default, alias = "premium", alias = "price")]
    pub written_premium: Option<f64>,
    #[serde(default, alias = "code")]
    pub error_code: Option<u32>,
}

/// MUST's answer to the tariff helper: one line per insurer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TariffAnswer {
    #[serde(default, alias = "insuranceCompanies", alias = "items")]
    pub tariffs: Option<Vec<TariffLine>>,
}

impl TariffAnswer {
    /// Our answer to the bank: `{estimates:[{insurer, premium}], failures:[{insurer, mustCode,
    /// category, customerText}]}`, or why MUST's answer cannot be used.
    pub fn into_answer(self) -> Result<Value, String> {
        let lines = self.tariffs.ok_or("MUST's answer has no tariffs")?;
        let (mut estimates, mut failures) = (Vec::new(), Vec::new());
        for line in lines {
            let insurer = line
                .insurance_company
                .as_deref()
                .and_then(|i| Insurer::parse(i).ok())
                .ok_or("a tariff line names no usable insurer")?;
            match (line.written_premium, line.error_code) {
                (Some(premium), None) if premium.is_finite() && premium > 0.0 => {
                    estimates.push(json!({"insurer": insurer, "premium": premium}))
                }
                (_, Some(code)) => {
                    let known = MustErrorCode::lookup(code);
                    failures.push(json!({
                        "insurer": insurer,
                        "mustCode": code,
                        "category": known.category,
                        "customerText": known.customer_text_ru,
                    }))
                }
                _ => return Err(format!("the line of {insurer} has neither a premium nor an error code")),
            }
        }
        Ok(json!({"estimates": estimates, "failures": failures}))
    }
}

/// Why a helper call did not give the bank its answer; each is one HTTP answer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum HelperFailure {
    /// The bank's body breaks these rules (400).
    #[error("invalid request: {} problem(s)", .0.len())]
    Invalid(Vec<FieldError>),
    /// MUST refused the data (its 4xx): 422 with MUST's code when it gave one.
    #[error("MUST refused with HTTP {status}")]
    Refused { status: u16, code: Option<u32>, message: String },
    /// MUST asked us to slow down (429, 408, 425): 503, retry later.
    #[error("MUST is busy")]
    Busy,
    /// MUST did not answer in time: 504.
    #[error("MUST did not answer in time")]
    Timeout,
    /// MUST failed, could not be reached, refused our credentials, or answered something
    /// unusable: 502.
    #[error("MUST failed: {0}")]
    Upstream(String),
    /// Our own storage (the token) is unavailable: 503.
    #[error("temporarily unavailable")]
    Unavailable,
}

impl HelperFailure {
    pub fn status(&self) -> u16 {
        match self {
            HelperFailure::Invalid(_) => 400,
            HelperFailure::Refused { .. } => 422,
            HelperFailure::Busy | HelperFailure::Unavailable => 503,
            HelperFailure::Timeout => 504,
            HelperFailure::Upstream(_) => 502,
        }
    }

    /// The body of the answer. Nothing the bank sent is quoted; MUST's own message is passed
    /// on (to the bank, never to a log).
    pub fn body(&self) -> Value {
        match self {
            HelperFailure::Invalid(problems) => {
                let said: Vec<String> =
                    problems.iter().map(|p| format!("{}: {}", p.field, p.problem)).collect();
                json!({"error": said.join("; "), "problems": problems})
            }
            HelperFailure::Refused { status, code, message } => {
                let known = code.map(MustErrorCode::lookup);
                json!({
                    "error": match known {
                        Some(k) => format!("MUST refused the request (HTTP {status}, code {}: {})", k.code, k.description),
                        None => format!("MUST refused the request (HTTP {status})"),
                    },
                    "mustStatus": status,
                    "mustCode": code,
                    "category": known.map(|k| k.category),
                    "customerText": known.map(|k| k.customer_text_ru),
                    "mustMessage": message,
                })
            }
            HelperFailure::Busy => json!({"error": "MUST is busy; retry in a few seconds"}),
            HelperFailure::Timeout => json!({"error": "MUST did not answer in time; retry"}),
            HelperFailure::Upstream(_) => json!({"error": "MUST failed to answer; retry later"}),
            HelperFailure::Unavailable => json!({"error": "temporarily unavailable, retry"}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(r: Result<impl std::fmt::Debug, Vec<FieldError>>) -> Vec<String> {
        r.expect_err("refused").into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn plates_are_read_as_musts_prescoring_reads_them() {
        assert_eq!(normalise_plates("a123bc77").as_deref(), Some("А123ВС77"));
        assert_eq!(normalise_plates("А 123 ВС 777 RUS").as_deref(), Some("А123ВС777"));
        assert_eq!(normalise_plates("К860ММ21").as_deref(), Some("К860ММ21"));
        for bad in ["", "123", "Б123ВС77", "А12ВС77", "А123ВС7", "А123ВС7777", "Ж123ВС77"] {
            assert_eq!(normalise_plates(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_vin_has_17_characters_without_i_o_q() {
        assert_eq!(normalise_vin("vlur4x20009034464").as_deref(), Some("VLUR4X20009034464"));
        assert_eq!(normalise_vin("VLUR4X2000903446"), None);
        assert_eq!(normalise_vin("VLUR4X2000903446O"), None);
    }

    #[test]
    fn a_license_category_request_needs_a_good_vin_or_plates_and_names_the_field() {
        let ok = LicenseCategoryRequest::parse(br#"{"vin":"vlur4x20009034464"}"#).unwrap();
        assert_eq!(ok.vehicle.vin.as_deref(), Some("VLUR4X20009034464"));
        assert_eq!(ok.cache_key().as_deref(), Some("VLUR4X20009034464|"));
        let by_plates = LicenseCategoryRequest::parse(r#"{"plates":"К860ММ21"}"#.as_bytes()).unwrap();
        assert_eq!(by_plates.cache_key(), None, "a plate may move to another vehicle: not cached");
        assert_eq!(problems(LicenseCategoryRequest::parse(b"{}")), ["vin"]);
        assert_eq!(problems(LicenseCategoryRequest::parse(br#"{"vin":"SECRET-VIN"}"#)), ["vin"]);
        assert_eq!(problems(LicenseCategoryRequest::parse(br#"{"plates":"x"}"#)), ["plates"]);
        assert_eq!(problems(LicenseCategoryRequest::parse(br#"{"vin":4242424242}"#)), ["vin"]);
        assert_eq!(problems(LicenseCategoryRequest::parse(b"[1]")), ["$"]);
        assert_eq!(problems(LicenseCategoryRequest::parse(b"{not json")), ["$"]);
        assert_eq!(problems(LicenseCategoryRequest::parse(b"")), ["$"]);
    }

    #[test]
    fn a_problem_never_quotes_what_the_bank_sent() {
        let license = [r#"{"vin":"SECRET-VIN-1234"}"#, r#"{"vin":7712345678}"#, r#"{"plates":"SECRET77"}"#];
        let tariffs = [
            r#"{"vin":"WMA06XZZ8GP000001","licenseCategory":"C","weightGroup":"up-to-16t","hasTrailer":true,
                "policyStartOn":"2099-01-01","owner":{"kind":"legalEntity","inn":"7712345678901","kpp":"SECRETKPP"}}"#,
            r#"{"vin":"WMA06XZZ8GP000001","licenseCategory":"SECRETCAT","hasTrailer":true,"policyStartOn":"2099-01-01","owner":{"kind":"individual"}}"#,
            r#"{"vin":4242424242,"licenseCategory":"B","hasTrailer":true,"policyStartOn":"2099-01-01","owner":{"kind":"individual","registrationCity":"Самара"}}"#,
        ];
        let mut failures: Vec<HelperFailure> = license
            .iter()
            .map(|b| HelperFailure::Invalid(LicenseCategoryRequest::parse(b.as_bytes()).expect_err(b)))
            .collect();
        failures.extend(
            tariffs.iter().map(|b| {
                HelperFailure::Invalid(TariffRequest::parse(b.as_bytes(), "2026-01-01").expect_err(b))
            }),
        );
        for failure in failures {
            let said = failure.body().to_string();
            for secret in ["SECRET", "7712345678", "4242"] {
                assert!(!said.contains(secret), "{said}");
            }
        }
    }

    fn tariff(body: Value) -> Result<TariffRequest, Vec<FieldError>> {
        TariffRequest::parse(body.to_string().as_bytes(), "2026-11-24")
    }

    fn good_tariff() -> Value {
        json!({"vin": "WMA06XZZ8GP000001", "licenseCategory": "C", "weightGroup": "over-16t", "hasTrailer": true,
               "policyStartOn": "2026-12-01", "owner": {"kind": "legalEntity", "inn": "7701234567", "kpp": "770101001"}})
    }

    #[test]
    fn a_tariff_request_becomes_musts_body() {
        let request = tariff(good_tariff()).unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"vin": "WMA06XZZ8GP000001", "drivingLicenseCategory": "C", "vehicleWeightGroupRuIns": "over-16t",
                   "hasTrailer": true, "policyStartOn": "2026-12-01", "ownerType": "legalEntity",
                   "inn": "7701234567", "kpp": "770101001"})
        );
    }

    #[test]
    fn a_tariff_request_is_refused_naming_every_field_at_fault() {
        let mut bad = good_tariff();
        bad["weightGroup"] = Value::Null;
        bad["policyStartOn"] = json!("2026-11-23");
        bad["owner"]["kpp"] = json!("77");
        assert_eq!(problems(tariff(bad)), ["weightGroup", "policyStartOn", "owner.kpp"]);
        let mut person = good_tariff();
        person["owner"] = json!({"kind": "individual", "kpp": "770101001"});
        person["vin"] = Value::Null;
        assert_eq!(problems(tariff(person)), ["vin", "owner.registrationCity", "owner.kpp"]);
        let mut dates = good_tariff();
        dates["policyStartOn"] = json!("2027-02-30");
        assert_eq!(problems(tariff(dates)), ["policyStartOn"]);
        let mut missing = good_tariff();
        missing.as_object_mut().unwrap().remove("hasTrailer");
        assert_eq!(problems(tariff(missing)), ["hasTrailer"]);
        let mut category = good_tariff();
        category["licenseCategory"] = json!("D");
        assert_eq!(problems(tariff(category)), ["licenseCategory"]);
        let mut owner = good_tariff();
        owner["owner"] = json!({});
        assert_eq!(problems(tariff(owner)), ["owner.kind"]);
    }

    #[test]
    fn musts_answers_are_read_leniently_and_checked() {
        let a: LicenseCategoryAnswer =
            serde_json::from_value(json!({"drivingLicenseCategory": "c", "isTrailerRequired": true, "x": 1}))
                .unwrap();
        assert_eq!(
            a.into_answer().unwrap(),
            LicenseCategory { license_category: "C".into(), trailer_required: Some(true) }
        );
        let silent: LicenseCategoryAnswer = serde_json::from_value(json!({"licenseCategory": "B"})).unwrap();
        assert_eq!(silent.into_answer().unwrap().trailer_required, None);
        let empty: LicenseCategoryAnswer = serde_json::from_value(json!({})).unwrap();
        assert!(empty.into_answer().is_err());

        let t: TariffAnswer = serde_json::from_value(json!({"tariffs": [
            {"insuranceCompany": "ingostrah", "writtenPremium": 21310.5},
            {"insuranceCompany": "renaissance", "errorCode": 1505, "errorMessage": "x"}]}))
        .unwrap();
        let ours = t.into_answer().unwrap();
        assert_eq!(ours["estimates"], json!([{"insurer": "ingostrah", "premium": 21310.5}]));
        assert_eq!(ours["failures"][0]["mustCode"], 1505);
        assert_eq!(ours["failures"][0]["category"], "ingosstrakh");
        let bare: TariffAnswer = serde_json::from_value(json!({})).unwrap();
        assert!(bare.into_answer().is_err());
        let neither: TariffAnswer =
            serde_json::from_value(json!({"tariffs": [{"insuranceCompany": "ingostrah"}]})).unwrap();
        assert!(neither.into_answer().is_err());
    }

    #[test]
    fn each_failure_has_its_status_and_a_refusal_carries_musts_code_and_text() {
        let refused =
            HelperFailure::Refused { status: 400, code: Some(1406), message: "incorrect vin".into() };
        assert_eq!(refused.status(), 422);
        let body = refused.body();
        assert_eq!(body["mustCode"], 1406);
        assert_eq!(body["category"], "plates-and-vin");
        assert!(body["error"].as_str().unwrap().contains("1406"), "{body}");
        assert!(body["customerText"].as_str().is_some_and(|t| !t.is_empty()));
        let bare = HelperFailure::Refused { status: 400, code: None, message: "Inn required".into() };
        assert_eq!(bare.body()["mustCode"], Value::Null);
        assert_eq!(HelperFailure::Timeout.status(), 504);
        assert_eq!(HelperFailure::Upstream("HTTP 500".into()).status(), 502);
        assert_eq!(HelperFailure::Busy.status(), 503);
        assert!(!HelperFailure::Upstream("HTTP 500 at host".into()).body().to_string().contains("host"));
    }
}
