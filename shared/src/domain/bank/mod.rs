//! The bank's events in and our notifications out.

use serde::{Deserialize, Serialize};

use crate::domain::loan::bank::LoanBankEvent;
use crate::domain::must::error_codes::MustErrorCode;
use crate::domain::truck::bank::TruckBankEvent;
use crate::domain::validation::FieldError;

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
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| problem("$", &e))?;
        let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or_default();
        if kind.starts_with("truck.") {
            serde_json::from_value(value).map(BankEvent::Truck).map_err(|e| problem("$", &e))
        } else if kind.starts_with("loan.") {
            serde_json::from_value(value).map(BankEvent::Loan).map_err(|e| problem("$", &e))
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
