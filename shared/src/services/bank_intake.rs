//! The bank's events in: validate, record, route to the product's queue.
//!
//! An event we cannot accept is kept (quarantined) and answered with a notice
//! naming every bad field: `truck.request-invalid` or `bima.failed`.

use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::RetryLater;
use crate::domain::bank::{BankEvent, ErrorReport};
use crate::domain::ids::ProcessId;
use crate::domain::loan::bank::{LoanBankEvent, LoanIssued};
use crate::domain::loan::process::{LoanNotice, LoanNotification, LoanProcess};
use crate::domain::truck::bank::{TruckBankEvent, TruckNotice, TruckNotification, TruckPolicyRequest};
use crate::domain::truck::process::{TruckEvent, TruckProcess};
use crate::domain::validation::FieldError;
use crate::domain::workflow::{Received, Workflow};
use crate::ports::{
    now_ms, BankOutbox, KeptOrigin, LoanMessage, LoanQueue, ProcessStore, QuarantineStore, Quarantined,
    TruckMessage, TruckQueue,
};
use crate::services::keep::keep;
use crate::services::truck::runner::message_group;

pub struct BankIntake<S, Q, L, B> {
    pub store: S,
    pub trucks: Q,
    pub loans: L,
    pub outbox: B,
}

/// A FIFO deduplication id (at most 128 characters) for the bank's event id.
fn dedup_id(event_id: &str) -> String {
    hex::encode(Sha256::digest(event_id.as_bytes()))
}

/// The process event a bank event about an existing truck request is; a new request
/// (`truck.policy-requested`) is no such event: `Err` gives back its id and request.
pub fn truck_event_of(event: TruckBankEvent) -> Result<TruckEvent, (String, Box<TruckPolicyRequest>)> {
    Ok(match event {
        TruckBankEvent::PolicyRequested { event_id, request } => return Err((event_id, request)),
        TruckBankEvent::DocumentsCorrected { event_id, documents, .. } => {
            TruckEvent::DocumentsCorrected { id: event_id, documents }
        }
        TruckBankEvent::PaymentOrder { event_id, document, insurer, .. } => {
            TruckEvent::PaymentOrderReceived { id: event_id, document, insurer }
        }
        TruckBankEvent::InsurerChosen { event_id, insurer, payment_method, .. } => {
            TruckEvent::InsurerChosen { id: event_id, insurer, method: payment_method }
        }
        TruckBankEvent::RequestCorrected { event_id, correction, .. } => {
            TruckEvent::RequestCorrected { id: event_id, correction }
        }
    })
}

impl<S, Q, L, B> BankIntake<S, Q, L, B>
where
    S: ProcessStore + QuarantineStore + Sync,
    Q: TruckQueue + Sync,
    L: LoanQueue + Sync,
    B: BankOutbox + Sync,
{
    pub async fn handle(&self, body: &str) -> Result<(), RetryLater> {
        match BankEvent::accept(body) {
            Err(problems) => self.refuse(body, problems).await,
            Ok(BankEvent::Truck(event)) => {
                let span = tracing::info_span!("process", process_id = %event.process_id());
                self.route_truck(event).instrument(span).await
            }
            Ok(BankEvent::Loan(LoanBankEvent::Issued(loan))) => {
                let span = tracing::info_span!("process", process_id = %format!("LOAN#{}", loan.loan_number));
                self.route_loan(*loan).instrument(span).await
            }
        }
    }

    /// Every message about a process goes to its one FIFO group (its scoringId once MUST
    /// gave one, the hooks' group), so one runner at a time works on it.
    async fn route_truck(&self, event: TruckBankEvent) -> Result<(), RetryLater> {
        let process_id = event.process_id().clone();
        let dedup = dedup_id(event.event_id());
        let (message, created) = match truck_event_of(event) {
            Err((event_id, request)) => {
                let cause =
                    Received { from: "bank", kind: "truck.policy-requested", id: &event_id, at_ms: 0 };
                let created =
                    self.store.create(&TruckProcess::start(*request).begun(now_ms(), &cause)).await?;
                if !created {
                    tracing::info!("process already exists; driving it again");
                }
                (TruckMessage::Drive { process_id: process_id.clone() }, created)
            }
            Ok(event) => {
                (TruckMessage::BankEvent { process_id: process_id.clone(), event, replays: 0 }, false)
            }
        };
        let group =
            if created { process_id.to_string() } else { message_group(&self.store, &process_id).await? };
        self.trucks.enqueue(&message, &group, &dedup).await?;
        tracing::info!("bank event accepted");
        Ok(())
    }

    /// One loan, one process: a repeated event finds it and drives it again.
    async fn route_loan(&self, loan: LoanIssued) -> Result<(), RetryLater> {
        let number = loan.loan_number.clone();
        let dedup = dedup_id(&loan.event_id);
        let event_id = loan.event_id.clone();
        let cause = Received { from: "bank", kind: "loan.issued", id: &event_id, at_ms: 0 };
        if !self.store.create(&LoanProcess::start(loan).begun(now_ms(), &cause)).await? {
            tracing::info!("loan already insured or in progress; driving it again");
        }
        self.loans.enqueue(&LoanMessage::Drive { loan_number: number.clone() }, &number, &dedup).await?;
        tracing::info!("loan event accepted");
        Ok(())
    }

    /// Keeps the raw event and tells the bank what is wrong with it.
    async fn refuse(&self, body: &str, problems: Vec<FieldError>) -> Result<(), RetryLater> {
        let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let field = |name: &str| json.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (event_id, kind) = (field("eventId"), field("type"));
        let digest = hex::encode(Sha256::digest(body.as_bytes()));
        let reason =
            problems.iter().map(|p| format!("{}: {}", p.field, p.problem)).collect::<Vec<_>>().join("; ");
        let origin = KeptOrigin::BankEvent { event_id: event_id.clone(), event_type: kind.clone() };
        let item = Quarantined::new(origin, reason, body.to_owned(), now_ms());
        keep(&self.store, &item).await?;
        let notice_id = format!("invalid-{}", &digest[..16]);
        if kind.starts_with("loan.") {
            let notice = LoanNotification {
                event_id: notice_id,
                loan_number: field("loanNumber"),
                notice: LoanNotice::Failed {
                    error: ErrorReport::integration("invalid-event", format!("event {event_id} refused")),
                    problems,
                },
            };
            return Ok(self.outbox.publish(&notice).await?);
        }
        match ProcessId::parse(&field("requestId")) {
            Ok(process_id) => {
                let notice = TruckNotification {
                    event_id: format!("{process_id}-{notice_id}"),
                    process_id,
                    notice: TruckNotice::RequestInvalid { rejected_event_id: event_id, problems },
                };
                self.outbox.publish(&notice).await?;
            }
            Err(_) => tracing::warn!("refused bank event names no usable requestId; kept in quarantine only"),
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "bank_intake_tests.rs"]
mod tests;
