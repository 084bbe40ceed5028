//! The bank's events in: validate, record, route to the process queue.
//!
//! An event we cannot accept is kept (quarantined) and answered with a
//! `truck.request-invalid` notice naming every bad field.

use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::RetryLater;
use crate::domain::bank::truck::{TruckBankEvent, TruckNotice, TruckNotification};
use crate::domain::ids::ProcessId;
use crate::domain::must::process::{ProcessEvent, TruckProcess};
use crate::domain::validation::FieldError;
use crate::ports::{
    now_ms, BankOutbox, ProcessMessage, ProcessQueue, ProcessStore, QuarantineStore, Quarantined,
};

pub struct BankIntake<S, Q, B> {
    pub store: S,
    pub queue: Q,
    pub outbox: B,
}

/// A FIFO deduplication id (at most 128 characters) for the bank's event id.
fn dedup_id(event_id: &str) -> String {
    hex::encode(Sha256::digest(event_id.as_bytes()))
}

impl<S, Q, B> BankIntake<S, Q, B>
where
    S: ProcessStore + QuarantineStore + Sync,
    Q: ProcessQueue + Sync,
    B: BankOutbox + Sync,
{
    pub async fn handle(&self, body: &str) -> Result<(), RetryLater> {
        let event: TruckBankEvent = match serde_json::from_str(body) {
            Ok(e) => e,
            Err(e) => {
                let problems = vec![FieldError { field: "$".into(), problem: e.to_string() }];
                return self.refuse(body, problems).await;
            }
        };
        if let Err(problems) = event.validate() {
            return self.refuse(body, problems).await;
        }
        let span = tracing::info_span!("process", process_id = %event.process_id());
        self.route(event).instrument(span).await
    }

    async fn route(&self, event: TruckBankEvent) -> Result<(), RetryLater> {
        let process_id = event.process_id().clone();
        let dedup = dedup_id(event.event_id());
        let message = match event {
            TruckBankEvent::PolicyRequested { request, .. } => {
                let created = self.store.create(&TruckProcess::start(*request)).await?;
                if !created {
                    tracing::info!("process already exists; driving it again");
                }
                ProcessMessage::Drive { process_id: process_id.clone() }
            }
            TruckBankEvent::DocumentsCorrected { event_id, documents, .. } => ProcessMessage::BankEvent {
                process_id: process_id.clone(),
                event: ProcessEvent::DocumentsCorrected { id: event_id, documents },
            },
            TruckBankEvent::PaymentOrder { event_id, document, .. } => ProcessMessage::BankEvent {
                process_id: process_id.clone(),
                event: ProcessEvent::PaymentOrderReceived { id: event_id, document },
            },
        };
        self.queue.enqueue(&message, process_id.as_str(), &dedup).await?;
        tracing::info!("bank event accepted");
        Ok(())
    }

    /// Keeps the raw event and tells the bank what is wrong with it.
    async fn refuse(&self, body: &str, problems: Vec<FieldError>) -> Result<(), RetryLater> {
        let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let event_id = json.get("eventId").and_then(Value::as_str).unwrap_or_default().to_owned();
        let process_id = json.get("requestId").and_then(Value::as_str).and_then(|r| ProcessId::parse(r).ok());
        let digest = hex::encode(Sha256::digest(body.as_bytes()));
        let item = Quarantined {
            id: format!("bank-event-{digest}"),
            source: "bank-event".into(),
            reason: problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.problem))
                .collect::<Vec<_>>()
                .join("; "),
            body: body.to_owned(),
            origin: serde_json::json!({"eventId": event_id}),
            received_at_ms: now_ms(),
        };
        self.store.quarantine(&item).await?;
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        tracing::warn!(quarantine_id = %item.id, ?fields, "bank event refused");
        match process_id {
            Some(process_id) => {
                let notice = TruckNotification {
                    event_id: format!("{process_id}-invalid-{}", &digest[..16]),
                    process_id,
                    notice: TruckNotice::RequestInvalid { rejected_event_id: event_id, problems },
                };
                self.outbox.publish(&notice).await?;
            }
            None => tracing::warn!("refused bank event names no usable requestId; kept in quarantine only"),
        }
        Ok(())
    }
}
