//! The bank's events in and our notifications out.

use serde::{Deserialize, Serialize};

use crate::domain::loan::bank::{LoanBankEvent, LoanIssued};
use crate::domain::must::error_codes::MustErrorCode;
use crate::domain::truck::bank::{TruckBankEvent, TruckPolicyRequest};
use crate::domain::validation::{self, FieldError};

/// Any event the bank sends on the bank-events queue, by its `type`'s product prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BankEvent {
    Truck(TruckBankEvent),
    Loan(LoanBankEvent),
}

impl BankEvent {
    /// Reads an event; the error names the field at fault (`type` when it is unknown).
    pub fn parse(body: &str) -> Result<BankEvent, FieldError> {
        let problem = |field: &str, e: &dyn std::fmt::Display| FieldError {
            field: field.into(),
            problem: e.to_string(),
        };
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| problem("$", &validation::without_values(&e)))?;
        let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
        // A tagged enum hides the path inside it from the decoder: on an error, the
        // event's own form is decoded again to name the field.
        let located = |value: serde_json::Value, error: FieldError| {
            let inner = match kind.as_str() {
                "truck.policy-requested" => validation::decode::<TruckPolicyRequest>(value).err(),
                "loan.issued" => validation::decode::<LoanIssued>(value).err(),
                _ => None,
            };
            inner.filter(|e| e.field != "$").unwrap_or(error)
        };
        if kind.starts_with("truck.") {
            validation::decode(value.clone()).map(BankEvent::Truck).map_err(|e| located(value, e))
        } else if kind.starts_with("loan.") {
            validation::decode(value.clone()).map(BankEvent::Loan).map_err(|e| located(value, e))
        } else {
            Err(problem("type", &format!("unknown event type {kind:?}: expected truck.* or loan.*")))
        }
    }

    /// Reads and validates an event: every problem, each naming its field.
    pub fn accept(body: &str) -> Result<BankEvent, Vec<FieldError>> {
        let event = BankEvent::parse(body).map_err(|p| vec![p])?;
        match &event {
            BankEvent::Truck(truck) => truck.validate()?,
            BankEvent::Loan(LoanBankEvent::Issued(loan)) => loan.validate()?,
        }
        Ok(event)
    }
}

/// A file we archived in S3 for the bank, whatever its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedFile {
    pub blob_id: String,
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// As the partner labelled it, or as sniffed from its first bytes.
    pub content_type: String,
}

/// A file the partner has for us that is not archived yet: a person can replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingFile {
    pub blob_id: String,
    pub reason: String,
}

/// An error as the bank receives it: MUST's code, its category and the customer's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReport {
    pub code: String,
    pub category: String,
    pub customer_text_ru: String,
    pub message: String,
}

impl ErrorReport {
    pub fn from_must(code: u32, message: Option<&str>) -> ErrorReport {
        let entry = MustErrorCode::lookup(code);
        let category = serde_json::to_value(entry.category)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        ErrorReport {
            code: code.to_string(),
            category,
            customer_text_ru: entry.customer_text_ru.to_owned(),
            message: message.unwrap_or(entry.description).to_owned(),
        }
    }

    /// A failure on our side of the integration (not one of MUST's codes).
    pub fn integration(code: &str, message: impl Into<String>) -> ErrorReport {
        ErrorReport {
            code: code.to_owned(),
            category: "integration".to_owned(),
            customer_text_ru: MustErrorCode::lookup(0).customer_text_ru.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples with one personal value sent with the wrong JSON type.
    fn with(example: &str, pointer: &str, value: serde_json::Value) -> String {
        let mut event: serde_json::Value = serde_json::from_str(example).unwrap();
        *event.pointer_mut(pointer).unwrap() = value;
        event.to_string()
    }

    #[test]
    fn a_wrong_typed_personal_value_is_named_by_its_field_and_never_quoted() {
        let truck = include_str!("../../../examples/bank/truck.policy-requested.json");
        let loan = include_str!("../../../examples/bank/loan.issued.json");
        for (body, secret, field) in [
            (with(truck, "/policyholder/inn", 7731440000u64.into()), "7731440000", "policyholder.inn"),
            (with(truck, "/policyholder/phone", 79990000000u64.into()), "79990000000", "policyholder.phone"),
            (with(loan, "/borrower/tin", 123456789u64.into()), "123456789", "borrower.tin"),
            (
                with(loan, "/borrower/phones/0/number", 935550011u64.into()),
                "935550011",
                "borrower.phones[0].number",
            ),
            (
                with(loan, "/borrower/lastName", serde_json::json!(["СОЛИХОВ"])),
                "СОЛИХОВ",
                "borrower.lastName",
            ),
        ] {
            let error = BankEvent::parse(&body).unwrap_err();
            let said = format!("{} {}", error.field, error.problem);
            assert!(!said.contains(secret), "{said}");
            assert_eq!(error.field, field, "{said}");
            assert!(error.problem.starts_with("invalid type: "), "{said}");
        }
    }
}
