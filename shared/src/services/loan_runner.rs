//! The BIMA step runner: drives a loan's credit-life insurance through the
//! [`Engine`]: calc, sale (once per loan, whatever the deliveries), print link,
//! the print form archived when it is a PDF, the bank told.

use tracing::Instrument;

use super::engine::{Draft, EffectFailure, Engine, Workflow};
use super::truck_runner::archive_pdf;
use super::RetryLater;
use crate::domain::bank::ErrorReport;
use crate::domain::bima::api::PrintLinkRequest;
use crate::domain::bima::process::{CreditLifeProcess, LoanEffect, LoanEvent, LoanStage};
use crate::domain::outcome::Outcome;
use crate::ports::{
    BankOutbox, BimaApi, CallError, EffectLog, LoanMessage, ObjectStore, ProcessStore, QuarantineStore,
    StoredProcess,
};

/// The key of a loan's credit-life record.
pub fn loan_key(loan_number: &str) -> String {
    format!("LOAN#{loan_number}")
}

impl StoredProcess for CreditLifeProcess {
    fn key(&self) -> String {
        loan_key(&self.loan.loan_number)
    }
    fn aliases(&self) -> Vec<String> {
        Vec::new()
    }
    fn index(&self) -> Vec<(&'static str, String)> {
        vec![
            ("stage", Workflow::stage(self)),
            ("customerId", self.loan.customer_id.to_string()),
            ("gsi1pk", format!("CUSTOMER#{}", self.loan.customer_id)),
            ("gsi1sk", format!("LOAN#{}", self.loan.loan_number)),
        ]
    }
}

impl Workflow for CreditLifeProcess {
    type Event = LoanEvent;
    type Effect = LoanEffect;

    fn apply(&mut self, event: LoanEvent) -> Outcome {
        CreditLifeProcess::apply(self, event)
    }
    fn pending(&self) -> &[LoanEffect] {
        &self.pending
    }
    fn effect_key(effect: &LoanEffect) -> String {
        effect.key()
    }
    fn is_repeatable(effect: &LoanEffect) -> bool {
        effect.is_repeatable()
    }
    fn complete(&mut self, effect_key: &str) {
        CreditLifeProcess::complete(self, effect_key)
    }
    fn effect_failed(error: ErrorReport) -> LoanEvent {
        LoanEvent::Failed { error }
    }
    fn external_id(_: &LoanEvent) -> Option<&str> {
        None
    }
    fn stage(&self) -> String {
        serde_json::to_value(self.stage).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
    fn is_terminal(&self) -> bool {
        matches!(self.stage, LoanStage::Issued | LoanStage::Failed)
    }
}

/// BIMA's refusal as the bank sees it: the HTTP status and BIMA's message.
pub fn bima_refusal(e: CallError) -> EffectFailure {
    match e {
        CallError::Transient(_) => EffectFailure::Later(RetryLater::Call(e)),
        CallError::Refused { status, message, .. } => {
            let mut report = ErrorReport::integration(&format!("bima-http-{status}"), message);
            report.category = "bima".into();
            EffectFailure::Permanent(report)
        }
    }
}

pub struct LoanRunner<S, A, O, B> {
    pub engine: Engine<S>,
    pub bima: A,
    pub objects: O,
    pub outbox: B,
    pub archive_bucket: String,
}

impl<S, A, O, B> LoanRunner<S, A, O, B>
where
    S: ProcessStore + EffectLog + QuarantineStore + Sync,
    A: BimaApi + Sync,
    O: ObjectStore + Sync,
    B: BankOutbox + Sync,
{
    pub async fn handle(&self, message: LoanMessage) -> Result<(), RetryLater> {
        let LoanMessage::Drive { loan_number } = message;
        let key = loan_key(&loan_number);
        let span = tracing::info_span!("process", process_id = %key);
        async move {
            let Some(current) = self.engine.load::<CreditLifeProcess>(&key).await? else {
                return Err(RetryLater::NotYet(format!("{key} is not stored yet")));
            };
            self.engine.drive(Draft::new(current), |p, e| async move { self.perform(&p, &e).await }).await
        }
        .instrument(span)
        .await
    }

    async fn perform(
        &self,
        p: &CreditLifeProcess,
        effect: &LoanEffect,
    ) -> Result<Option<LoanEvent>, EffectFailure> {
        let key = effect.key();
        let idem = format!("{}:{key}", p.loan.loan_number);
        let engine = &self.engine;
        match effect {
            LoanEffect::Calculate => {
                let request = p.loan.calc_request();
                let calculation = engine.retry(&key, || self.bima.calculate(&request)).await?;
                Ok(Some(LoanEvent::Calculated { calculation }))
            }
            LoanEffect::Sell => {
                let request = p.loan.sale_request();
                let policy = engine.retry(&key, || self.bima.sell(&request, &idem)).await?;
                Ok(Some(LoanEvent::Sold { policy }))
            }
            LoanEffect::RequestPrintLink => {
                let policy_id = p.policy.as_ref().map(|s| s.policy_id.clone()).ok_or_else(|| {
                    EffectFailure::permanent("no-policy", "print link asked before the sale".into())
                })?;
                let (email, phone) = p.loan.borrower.contacts();
                let request = PrintLinkRequest { policy_id, email, phone };
                let link = engine.retry(&key, || self.bima.print_link(&request, &idem)).await?;
                Ok(Some(LoanEvent::PrintLinkReady { url: link.print_link }))
            }
            LoanEffect::ArchivePrintForm { url } => {
                let policy_id = p.policy.as_ref().map(|s| s.policy_id.as_str()).unwrap_or_default();
                let s3_key = format!("credit-life/{}/{policy_id}.pdf", p.loan.loan_number);
                let form = engine.retry("print-form", || self.bima.fetch_print_form(url)).await?;
                let file = match form {
                    None => None,
                    Some(bytes) => Some(
                        archive_pdf(&self.objects, &self.archive_bucket, &s3_key, policy_id, bytes).await?,
                    ),
                };
                Ok(Some(LoanEvent::PrintFormArchived { file }))
            }
            LoanEffect::Notify(notification) => {
                self.outbox.publish(notification.as_ref()).await?;
                Ok(None)
            }
        }
    }
}
