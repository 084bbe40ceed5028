//! A customer's product as "My products" shows it: the few fields of a process the bank's
//! cabinet reads, kept beside the process and projected alone into the customer index, so
//! the index (and whoever may query it) never holds the rest of the process's personal data.

use serde::{Deserialize, Serialize};

use crate::domain::bank::{ArchivedFile, PendingFile};
use crate::domain::bima::api::Calculation;
use crate::domain::ids::ProcessId;
use crate::domain::loan::process::LoanProcess;
use crate::domain::must::insurer::Insurer;
use crate::domain::truck::process::{Offer, TruckProcess};
use crate::domain::workflow::Workflow;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "product", rename_all = "kebab-case")]
pub enum ProductSummary {
    Truck(TruckProduct),
    Loan(LoanProduct),
}

/// A truck eOSAGO request and its policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruckProduct {
    pub process_id: ProcessId,
    pub status: String,
    pub insurer: Option<Insurer>,
    /// The chosen insurer's premium, when its offer named one.
    pub premium: Option<f64>,
    pub policy_number: Option<String>,
    pub policy_files: Vec<ArchivedFile>,
    pub pending_files: Vec<PendingFile>,
    pub draft_files: Vec<ArchivedFile>,
}

/// A loan and its credit-life policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoanProduct {
    pub loan_number: String,
    pub sum: String,
    pub term_months: u16,
    pub start_date: String,
    pub status: String,
    pub policy_id: Option<String>,
    pub policy_number: Option<String>,
    /// Whether BIMA has sold the policy (its id and number may still be to come).
    pub sold: bool,
    pub calculation: Option<Calculation>,
    pub print_link: Option<String>,
    pub print_form_pending: Option<String>,
}

impl From<&TruckProcess> for ProductSummary {
    fn from(p: &TruckProcess) -> ProductSummary {
        let premium = p.chosen.as_ref().and_then(|i| match p.offers.get(i) {
            Some(Offer::Approved { premium }) => *premium,
            _ => None,
        });
        ProductSummary::Truck(TruckProduct {
            process_id: p.id.clone(),
            status: p.stage_name(),
            insurer: p.chosen.clone(),
            premium,
            policy_number: p.policy.as_ref().and_then(|policy| policy.number.clone()),
            policy_files: p.policy.as_ref().map(|policy| policy.files.clone()).unwrap_or_default(),
            pending_files: p.policy.as_ref().map(|policy| policy.pending_files.clone()).unwrap_or_default(),
            draft_files: p.draft_files.clone(),
        })
    }
}

impl From<&LoanProcess> for ProductSummary {
    fn from(p: &LoanProcess) -> ProductSummary {
        ProductSummary::Loan(LoanProduct {
            loan_number: p.loan.loan_number.clone(),
            sum: p.loan.sum.clone(),
            term_months: p.loan.term_months,
            start_date: p.loan.start_date.clone(),
            status: p.stage_name(),
            policy_id: p.policy.as_ref().and_then(|policy| policy.policy_id.clone()),
            policy_number: p.policy.as_ref().and_then(|policy| policy.policy_number.clone()),
            sold: p.policy.is_some(),
            calculation: p.calculation.clone(),
            print_link: p.print_link.clone(),
            print_form_pending: p.print_form_pending.clone(),
        })
    }
}
