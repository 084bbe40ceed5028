//! The bodies of our calls to MUST, in MUST's camelCase.
//!
//! Shapes follow MUST's public documents (`UI-Api.md`, `fleet-api.md`); the
//! Swagger is not public, so these structs are the one place to correct them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::ids::{BlobId, ScoringId};
use crate::domain::must::insurer::Insurer;
use crate::domain::truck::bank::{Party, PartyKind, TruckPolicyRequest};

/// `POST /api/scoring/auth`: the partner's credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthRequest {
    pub login: String,
    pub password: String,
}

/// The token, valid 7 days unless MUST says otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// `POST /api/scoring/init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitRequest {
    /// Our process id, so MUST's support can find the process from ours.
    pub external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plates: Option<String>,
    pub policy_start_on: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitResponse {
    pub scoring_id: ScoringId,
}

/// `POST /api/blob` answers with the new blob's id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobCreated {
    pub blob_id: BlobId,
}

/// `POST /api/scoring/{scoringId}/documents`: `{documents:[{typeId, blob:{blobId, name}}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentsRequest {
    pub documents: Vec<DocumentRef>,
}

/// One requested type's files: documents go "grouped by the requested types"
/// (`individual-flow.md`), so both sides of an STS go as type 11's two files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentRef {
    pub type_id: u32,
    pub blobs: Vec<BlobRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobRef {
    pub blob_id: BlobId,
    pub name: String,
}

/// A party of the contract card; `inn` and `kpp` are required for a legal entity (v3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractParty {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_city: Option<String>,
}

/// The card's `technicalInspection` (`UI-Api.md`, `scoring-auth-external.md`): dates as ISO
/// date-times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardInspection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    pub number: String,
    pub start_on: String,
    pub end_on: String,
}

/// A bank's date (`YYYY-MM-DD`) as the ISO date-time MUST's documents show: the start of that
/// day in Moscow, where the policy and the diagnostic card run (the documents' examples mix
/// `…T00:00:00Z` and `…T21:00:00Z`, the latter Moscow's midnight; they settle no zone).
pub fn start_of_day(date: &str) -> String {
    format!("{date}T00:00:00+03:00")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractDriver {
    pub full_name: String,
    pub birth_date: String,
    pub license_number: String,
    pub license_issued_on: String,
}

/// `POST /api/scoring/{scoringId}/contract`: the contract card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractCard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plates: Option<String>,
    pub has_trailer: bool,
    /// An ISO date-time, as MUST's documents show it ([`start_of_day`]).
    pub policy_start_on: String,
    pub term_months: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_standard_cargo: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_high_risk_cargo: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technical_inspection: Option<CardInspection>,
    /// MUST's name for the policyholder.
    pub insurer: ContractParty,
    pub owner: ContractParty,
    pub is_restricted: bool,
    pub driver_count: usize,
    pub drivers: Vec<ContractDriver>,
}

fn contract_party(p: &Party) -> ContractParty {
    ContractParty {
        kind: match p.kind {
            PartyKind::Individual => "individual",
            PartyKind::LegalEntity => "legalEntity",
            PartyKind::Entrepreneur => "privateEntrepreneur",
        }
        .to_owned(),
        name: p.name.clone(),
        inn: p.inn.clone(),
        kpp: p.kpp.clone(),
        phone: p.phone.clone(),
        email: p.email.clone(),
        registration_city: p.registration_city.clone(),
    }
}

impl InitRequest {
    pub fn for_request(r: &TruckPolicyRequest) -> InitRequest {
        InitRequest {
            external_id: r.request_id.to_string(),
            vin: r.vehicle.vin.clone(),
            plates: r.vehicle.plates.clone(),
            policy_start_on: r.policy.start_on.clone(),
        }
    }
}

impl ContractCard {
    pub fn for_request(r: &TruckPolicyRequest) -> ContractCard {
        ContractCard {
            vin: r.vehicle.vin.clone(),
            plates: r.vehicle.plates.clone(),
            has_trailer: r.vehicle.has_trailer,
            policy_start_on: start_of_day(&r.policy.start_on),
            term_months: r.policy.term_months,
            is_standard_cargo: r.vehicle.is_standard_cargo,
            is_high_risk_cargo: r.vehicle.is_high_risk_cargo,
            technical_inspection: r.vehicle.technical_inspection.as_ref().map(|t| CardInspection {
                series: t.series.clone(),
                number: t.number.clone(),
                start_on: start_of_day(&t.start_on),
                end_on: start_of_day(&t.end_on),
            }),
            insurer: contract_party(&r.policyholder),
            owner: contract_party(&r.owner),
            is_restricted: !r.drivers.is_empty(),
            driver_count: r.drivers.len(),
            drivers: r
                .drivers
                .iter()
                .map(|d| ContractDriver {
                    full_name: d.full_name.clone(),
                    birth_date: d.birth_date.clone(),
                    license_number: d.license_number.clone(),
                    license_issued_on: d.license_issued_on.clone(),
                })
                .collect(),
        }
    }
}

impl ContractCard {
    /// The card we send: ours laid over the contract MUST pre-filled from the recognised
    /// documents (changelog v3), so the bank's values win where the bank gave them and
    /// the recognised ones fill the gaps.
    pub fn merged_with(&self, prefilled: Option<&Value>) -> Value {
        let ours = serde_json::to_value(self).unwrap_or_default();
        match prefilled {
            Some(base @ Value::Object(_)) => {
                let mut card = base.clone();
                overlay(&mut card, &ours);
                card
            }
            _ => ours,
        }
    }

    /// Whether a contract MUST holds differs from this card in a value the bank gave
    /// (recognition overwrote ours).
    pub fn is_overridden_by(&self, theirs: &Value) -> bool {
        differs(&serde_json::to_value(self).unwrap_or_default(), theirs)
    }
}

/// Lays `ours` over `base`: objects field by field, anything else replaced where ours is not null.
fn overlay(base: &mut Value, ours: &Value) {
    match (base, ours) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if v.is_object() => overlay(existing, v),
                    _ if v.is_null() => {}
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) if !o.is_null() => *b = o.clone(),
        _ => {}
    }
}

/// Whether `theirs` has, at a path where `ours` has a value, a different one.
fn differs(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Object(o), Value::Object(t)) => {
            o.iter().any(|(k, v)| t.get(k).is_some_and(|tv| differs(v, tv)))
        }
        (Value::Null, _) | (_, Value::Null) => false,
        (o, t) => o != t,
    }
}

/// `POST /api/scoring/{scoringId}/payment-link` and `/payment-invoice`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    /// The chosen insurer (changelog v2); none for an agent MUST names no insurer for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance_company: Option<Insurer>,
}

impl PaymentRequest {
    pub fn for_insurer(insurer: &Insurer) -> PaymentRequest {
        PaymentRequest { insurance_company: (!insurer.is_unnamed()).then(|| insurer.clone()) }
    }
}

/// `POST /api/scoring/scoring/{scoringId}/payment-order` (the path as MUST's changelog v3 prints it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentOrderRequest {
    pub blob_id: BlobId,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn card() -> ContractCard {
        let json = include_str!("../../../examples/bank/truck.policy-requested.json");
        let crate::domain::truck::bank::TruckBankEvent::PolicyRequested { request, .. } =
            serde_json::from_str(json).unwrap()
        else {
            unreachable!("the example is a policy request")
        };
        ContractCard::for_request(&request)
    }

    #[test]
    fn the_banks_values_win_and_recognition_fills_the_gaps() {
        let prefilled = json!({
            "vin": "RECOGNISED0000001", "engineNumber": "5738777",
            "owner": {"name": "recognised name", "registrationCity": "Самара", "ogrn": "1027700132195"},
        });
        let merged = card().merged_with(Some(&prefilled));
        assert_eq!(merged["vin"], "WMA06XZZ8GP000001", "the bank gave the VIN");
        assert_eq!(merged["engineNumber"], "5738777", "only recognition knows the engine number");
        assert_eq!(merged["owner"]["name"], "ООО «Грузовые перевозки»");
        assert_eq!(merged["owner"]["registrationCity"], "Москва");
        assert_eq!(merged["owner"]["ogrn"], "1027700132195");
        assert_eq!(card().merged_with(None), serde_json::to_value(card()).unwrap());
    }

    #[test]
    fn a_contract_is_overridden_only_where_it_contradicts_the_bank() {
        let ours = card().merged_with(Some(&json!({"engineNumber": "1"})));
        assert!(!card().is_overridden_by(&ours), "our own card, with gaps filled, is ours");
        assert!(!card().is_overridden_by(&json!({"engineNumber": "2", "vin": null})));
        assert!(card().is_overridden_by(&json!({"vin": "RECOGNISED0000001"})));
        assert!(card().is_overridden_by(&json!({"owner": {"inn": "7700000000"}})));
    }
}
