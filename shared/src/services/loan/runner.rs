//! The BIMA step runner: drives a loan's credit-life insurance through the
//! [`Engine`]: calc, sale (once per loan, whatever the deliveries; never resent
//! after an unknown outcome), print link, the print form archived whatever its
//! type, the bank told.

use tracing::Instrument;

use crate::domain::bank::ErrorReport;
use crate::domain::bima::api::PrintLinkRequest;
use crate::domain::ids::PolicyId;
use crate::domain::loan::process::{LoanEffect, LoanEvent, LoanProcess};
use crate::domain::workflow::EffectSpec;
use crate::keys::ProcessKey;
use crate::ports::{
    now_ms, BankOutbox, BimaApi, CallError, EffectLog, KeptOrigin, LoanMessage, ObjectStore, ProcessStore,
    QuarantineStore, Quarantined, StoredProcess,
};
use crate::services::archive::{archive_file, ARCHIVE_ATTEMPTS, MAX_FILE_BYTES};
use crate::services::engine::{Attempt, Draft, EffectFailure, Engine};
use crate::services::RetryLater;

/// BIMA's refusal as the bank sees it: the HTTP status and BIMA's message.
pub fn bima_refusal(e: &CallError) -> ErrorReport {
    let mut report = match e {
        CallError::Refused { status, message, .. } => {
            ErrorReport::integration(&format!("bima-http-{status}"), message.clone())
        }
        other => ErrorReport::integration("bima-unusable-answer", other.to_string()),
    };
    report.category = "bima".into();
    report
}

/// Who asks BIMA's print-link service for the link the customer receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintLinkCaller {
    /// We do, once BIMA's sale answer names the policy (the brief's reading).
    Polis,
    /// BIMA's API does it by itself after the sale (the seed's reading): we never call it.
    Bima,
}

pub struct LoanRunner<S, A, O, B> {
    pub engine: Engine<S>,
    pub bima: A,
    pub objects: O,
    pub outbox: B,
    pub archive_bucket: String,
    pub print_link: PrintLinkCaller,
}

impl<S, A, O, B> LoanRunner<S, A, O, B>
where
    S: ProcessStore + EffectLog + QuarantineStore + Sync,
    A: BimaApi + Sync,
    O: ObjectStore + Sync,
    B: BankOutbox + Sync,
{
    /// Handles one message of the loan queue, as SQS carries it.
    pub async fn handle_body(&self, body: &str) -> Result<(), RetryLater> {
        let message: LoanMessage = serde_json::from_str(body)
            .map_err(|e| RetryLater::NotYet(format!("unreadable loan message: {e}")))?;
        self.handle(message).await
    }

    pub async fn handle(&self, message: LoanMessage) -> Result<(), RetryLater> {
        let (loan_number, event) = match message {
            LoanMessage::Drive { loan_number } => (loan_number, None),
            LoanMessage::Event { loan_number, event } => (loan_number, Some(event)),
        };
        let key = ProcessKey::Loan(loan_number);
        let span = tracing::info_span!("process", process_id = %key.id());
        async move {
            let Some(current) = self.engine.load::<LoanProcess>(&key).await? else {
                return Err(RetryLater::NotYet(format!("{key} is not stored yet")));
            };
            let draft = match event {
                Some(event) => self.engine.apply(current, event, 0).await?,
                None => Draft::new(current),
            };
            self.engine.drive(draft, |p, e, a| async move { self.perform(&p, &e, &a).await }).await
        }
        .instrument(span)
        .await
    }

    async fn perform(
        &self,
        p: &LoanProcess,
        effect: &LoanEffect,
        attempt: &Attempt,
    ) -> Result<Option<LoanEvent>, EffectFailure> {
        let key = effect.key();
        let idem = format!("{}:{key}", p.loan.loan_number);
        let engine = &self.engine;
        match effect {
            LoanEffect::Calculate => {
                let request = p.loan.calc_request();
                let calculation = engine.call(&key, || self.bima.calculate(&request)).await?;
                Ok(Some(LoanEvent::Calculated { calculation }))
            }
            LoanEffect::Sell => {
                let request = p.loan.sale_request();
                let policy = engine.call_once(attempt, || self.bima.sell(&request, &idem)).await?;
                Ok(Some(LoanEvent::Sold { policy }))
            }
            LoanEffect::RequestPrintLink if self.print_link == PrintLinkCaller::Bima => {
                Ok(Some(LoanEvent::PrintLinkByBima))
            }
            LoanEffect::RequestPrintLink => {
                let policy_id = p.policy.as_ref().and_then(|s| s.policy_id.clone()).ok_or_else(|| {
                    EffectFailure::permanent(
                        "no-policy",
                        "print link asked before the sale named a policy".into(),
                    )
                })?;
                let (email, phone) = p.loan.borrower.contacts();
                let request = PrintLinkRequest { policy_id, email, phone };
                let link = engine.call(&key, || self.bima.print_link(&request, &idem)).await?;
                Ok(Some(LoanEvent::PrintLinkReady { url: link.print_link }))
            }
            LoanEffect::ArchivePrintForm { url } => self.archive(p, url, attempt).await,
            LoanEffect::Notify(notification) => {
                self.outbox.publish(notification.as_ref()).await?;
                Ok(None)
            }
        }
    }

    /// The print form into S3 when its link is on a trusted host. One that cannot be had
    /// (an expired link, over the size cap, still failing after [`ARCHIVE_ATTEMPTS`]) is
    /// noted on the issued policy and kept for an operator's replay.
    async fn archive(
        &self,
        p: &LoanProcess,
        url: &str,
        attempt: &Attempt,
    ) -> Result<Option<LoanEvent>, EffectFailure> {
        let policy_id = p.policy.as_ref().and_then(|s| s.policy_id.clone()).unwrap_or_default();
        // The id goes into an S3 key: only one that is a safe key part is used there.
        let name =
            PolicyId::parse(&policy_id).map(|id| id.to_string()).unwrap_or_else(|_| "print-form".into());
        let last_try = p.outbox.failures(&attempt.effect) + 1 >= ARCHIVE_ATTEMPTS;
        let problem =
            match self.engine.call("print-form", || self.bima.fetch_print_form(url, MAX_FILE_BYTES)).await {
                Ok(None) => return Ok(Some(LoanEvent::PrintFormArchived { file: None, problem: None })),
                Ok(Some(form)) => {
                    let stem = format!("credit-life/{}/{name}", p.loan.loan_number);
                    let file =
                        archive_file(&self.objects, &self.archive_bucket, &stem, &policy_id, form).await?;
                    return Ok(Some(LoanEvent::PrintFormArchived { file: Some(file), problem: None }));
                }
                Err(EffectFailure::Permanent(report)) => format!("{}: {}", report.code, report.message),
                Err(EffectFailure::Later(RetryLater::Call(e))) if last_try => {
                    format!("still failing after {ARCHIVE_ATTEMPTS} attempts: {e}")
                }
                Err(other) => return Err(other),
            };
        tracing::warn!(%problem, "print form not archived; marked pending");
        let origin = KeptOrigin::ArchivePending { process: p.key(), attempt: attempt.number };
        let reason = format!("print form not archived: {problem}");
        crate::services::keep::keep(
            &self.engine.store,
            &Quarantined::new(origin, reason, String::new(), now_ms()),
        )
        .await?;
        Ok(Some(LoanEvent::PrintFormArchived { file: None, problem: Some(problem) }))
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
