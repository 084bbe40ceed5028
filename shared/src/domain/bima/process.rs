//! One loan's credit-life insurance with BIMA: token → calc → sale (with the
//! payment status) → print link (BIMA sends it to the customer) → the print
//! form archived → the bank told. A small total state machine with an outbox.

use serde::{Deserialize, Serialize};

use super::api::{Calculation, SaleAccepted};
use super::loan::LoanIssued;
use crate::domain::bank::{ArchivedFile, ErrorReport};
use crate::domain::outcome::Outcome;
use crate::domain::validation::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoanStage {
    Calculating,
    Selling,
    Linking,
    Archiving,
    Issued,
    Failed,
}

/// What we tell the bank about a loan's insurance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum LoanNotice {
    #[serde(rename = "bima.policy-issued")]
    PolicyIssued {
        policy_id: String,
        policy_number: Option<String>,
        premium: String,
        sum_insured: String,
        risks: Vec<String>,
        print_link: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        print_form: Option<ArchivedFile>,
    },
    #[serde(rename = "bima.failed")]
    Failed {
        error: ErrorReport,
        /// For a refused event: every invalid field.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        problems: Vec<FieldError>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoanNotification {
    pub event_id: String,
    /// As the bank sent it (possibly invalid, for a refused event).
    pub loan_number: String,
    #[serde(flatten)]
    pub notice: LoanNotice,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "kebab-case")]
pub enum LoanEffect {
    Calculate,
    Sell,
    RequestPrintLink,
    ArchivePrintForm { url: String },
    Notify(Box<LoanNotification>),
}

impl LoanEffect {
    pub fn key(&self) -> String {
        match self {
            LoanEffect::Calculate => "calc".into(),
            LoanEffect::Sell => "sale".into(),
            LoanEffect::RequestPrintLink => "print-link".into(),
            LoanEffect::ArchivePrintForm { .. } => "print-form".into(),
            LoanEffect::Notify(n) => format!("notify-{}", n.event_id),
        }
    }

    /// Whether doing this again after a crash is harmless, so no intent record need
    /// guard it: the premium calculation changes nothing at BIMA, the print form is
    /// found in S3, the bank de-duplicates notices by `eventId`. The sale and the
    /// print link (BIMA sends it to the customer) are not.
    pub fn is_repeatable(&self) -> bool {
        matches!(self, LoanEffect::Calculate | LoanEffect::ArchivePrintForm { .. } | LoanEffect::Notify(_))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum LoanEvent {
    Calculated {
        calculation: Calculation,
    },
    Sold {
        policy: SaleAccepted,
    },
    PrintLinkReady {
        url: String,
    },
    /// `file` is `None` when the link does not serve a PDF (nothing to archive).
    PrintFormArchived {
        file: Option<ArchivedFile>,
    },
    Failed {
        error: ErrorReport,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditLifeProcess {
    pub loan: LoanIssued,
    pub stage: LoanStage,
    pub calculation: Option<Calculation>,
    pub policy: Option<SaleAccepted>,
    pub print_link: Option<String>,
    pub print_form: Option<ArchivedFile>,
    pub error: Option<ErrorReport>,
    pub pending: Vec<LoanEffect>,
    pub notices: u32,
}

impl CreditLifeProcess {
    pub fn start(loan: LoanIssued) -> CreditLifeProcess {
        CreditLifeProcess {
            loan,
            stage: LoanStage::Calculating,
            calculation: None,
            policy: None,
            print_link: None,
            print_form: None,
            error: None,
            pending: vec![LoanEffect::Calculate],
            notices: 0,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.stage, LoanStage::Issued | LoanStage::Failed)
    }

    pub fn complete(&mut self, effect_key: &str) {
        self.pending.retain(|e| e.key() != effect_key);
    }

    fn notify(&mut self, notice: LoanNotice) {
        self.notices += 1;
        self.pending.push(LoanEffect::Notify(Box::new(LoanNotification {
            event_id: format!("loan-{}-{}", self.loan.loan_number, self.notices),
            loan_number: self.loan.loan_number.clone(),
            notice,
        })));
    }

    /// Applies one event; on `Ignored` the process is unchanged.
    pub fn apply(&mut self, event: LoanEvent) -> Outcome {
        if self.is_terminal() {
            return Outcome::Ignored(format!("process has ended ({:?})", self.stage));
        }
        match (self.stage, event) {
            (LoanStage::Calculating, LoanEvent::Calculated { calculation }) => {
                self.calculation = Some(calculation);
                self.stage = LoanStage::Selling;
                self.pending.push(LoanEffect::Sell);
            }
            (LoanStage::Selling, LoanEvent::Sold { policy }) => {
                self.policy = Some(policy);
                self.stage = LoanStage::Linking;
                self.pending.push(LoanEffect::RequestPrintLink);
            }
            (LoanStage::Linking, LoanEvent::PrintLinkReady { url }) => {
                self.print_link = Some(url.clone());
                self.stage = LoanStage::Archiving;
                self.pending.push(LoanEffect::ArchivePrintForm { url });
            }
            (LoanStage::Archiving, LoanEvent::PrintFormArchived { file }) => {
                let (Some(calc), Some(policy), Some(link)) =
                    (self.calculation.clone(), self.policy.clone(), self.print_link.clone())
                else {
                    return Outcome::Rejected("archived before calculation, sale and link".into());
                };
                self.print_form = file.clone();
                self.stage = LoanStage::Issued;
                self.notify(LoanNotice::PolicyIssued {
                    policy_id: policy.policy_id,
                    policy_number: policy.policy_number,
                    premium: calc.premium,
                    sum_insured: calc.sum_insured,
                    risks: calc.risks,
                    print_link: link,
                    print_form: file,
                });
            }
            (_, LoanEvent::Failed { error }) => {
                self.stage = LoanStage::Failed;
                self.pending.retain(|e| matches!(e, LoanEffect::Notify(_)));
                self.error = Some(error.clone());
                self.notify(LoanNotice::Failed { error, problems: Vec::new() });
            }
            (stage, event) => {
                let name =
                    serde_json::to_value(&event).ok().and_then(|v| v["event"].as_str().map(str::to_owned));
                return Outcome::Ignored(format!(
                    "{} does not apply in stage {stage:?}",
                    name.unwrap_or_default()
                ));
            }
        }
        Outcome::Advanced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::bima::loan::LoanBankEvent;

    pub(crate) fn loan() -> LoanIssued {
        let json = include_str!("../../../examples/bank/loan.issued.json");
        let LoanBankEvent::Issued(loan) = serde_json::from_str(json).unwrap();
        *loan
    }

    fn calc() -> Calculation {
        Calculation { premium: "3000".into(), sum_insured: "500000".into(), risks: vec!["death".into()] }
    }

    #[test]
    fn the_happy_path_issues_and_tells_the_bank_once() {
        let mut p = CreditLifeProcess::start(loan());
        assert_eq!(p.pending, [LoanEffect::Calculate]);
        for (effect, event) in [
            ("calc", LoanEvent::Calculated { calculation: calc() }),
            (
                "sale",
                LoanEvent::Sold {
                    policy: SaleAccepted { policy_id: "77".into(), policy_number: Some("N-77".into()) },
                },
            ),
            ("print-link", LoanEvent::PrintLinkReady { url: "https://print/77.pdf".into() }),
            ("print-form", LoanEvent::PrintFormArchived { file: None }),
        ] {
            p.complete(effect);
            assert_eq!(p.apply(event), Outcome::Advanced);
        }
        assert_eq!(p.stage, LoanStage::Issued);
        let [LoanEffect::Notify(n)] = p.pending.as_slice() else { panic!("{:?}", p.pending) };
        assert_eq!(n.event_id, "loan-1234567890-1");
        let LoanNotice::PolicyIssued { policy_id, print_link, premium, .. } = &n.notice else { panic!() };
        assert_eq!(
            (policy_id.as_str(), print_link.as_str(), premium.as_str()),
            ("77", "https://print/77.pdf", "3000")
        );
    }

    #[test]
    fn events_out_of_order_are_ignored_and_change_nothing() {
        let mut p = CreditLifeProcess::start(loan());
        let before = p.clone();
        assert!(matches!(p.apply(LoanEvent::PrintLinkReady { url: "x".into() }), Outcome::Ignored(_)));
        assert_eq!(p, before);
    }

    #[test]
    fn a_failure_ends_the_process_and_later_events_are_ignored() {
        let mut p = CreditLifeProcess::start(loan());
        p.apply(LoanEvent::Failed { error: ErrorReport::integration("bima-http-422", "program unknown") });
        assert_eq!(p.stage, LoanStage::Failed);
        assert!(
            matches!(p.pending.as_slice(), [LoanEffect::Notify(_)]),
            "Calculate dropped, the notice kept"
        );
        assert!(matches!(p.apply(LoanEvent::Calculated { calculation: calc() }), Outcome::Ignored(_)));
    }
}
