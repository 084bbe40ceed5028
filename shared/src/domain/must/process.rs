//! The MUST truck-eOSAGO process as a state machine.
//!
//! `apply` is total: every (state, event) pair either advances the process
//! (possibly queueing effects for the step runner), is ignored as a duplicate
//! or stale event, or is rejected with a reason. It never panics. Effects are
//! kept in the process itself (an outbox), so a runner that dies between two
//! effects finds the rest still pending on its next delivery.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hook::{DocumentProblem, HookPayload};
use super::insurer::Insurer;
use crate::domain::bank::truck::{
    ArchivedFile, BankDocument, ErrorReport, OfferOutcome, PaymentMethod, TruckNotice, TruckNotification,
    TruckPolicyRequest,
};
use crate::domain::ids::{BlobId, ProcessId, ScoringId};
pub use crate::domain::outcome::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Waiting for our `init` call to return a scoringId (steps 1-2).
    Initializing,
    /// Documents and contract card (steps 3-4).
    Preparing,
    /// MUST is scoring with one or more insurers (step 5).
    Scoring,
    /// An insurer was chosen; payment link or invoice requested, customer to pay (step 6).
    AwaitingPayment,
    /// Paid; waiting for the insurer to issue (step 7).
    AwaitingPolicy,
    /// Issued; downloading the policy files into S3.
    Archiving,
    /// Done: the policy is archived and the bank told.
    Issued,
    /// Done: no insurer approved.
    Rejected,
    /// Done: an error ended the process.
    Failed,
}

impl Stage {
    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Issued | Stage::Rejected | Stage::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Documents {
    /// MUST has not said which document types it needs yet.
    AwaitingTypes,
    /// Some required documents are missing or were rejected; the bank must send corrections.
    NeedsFix { problems: Vec<DocumentProblem> },
    /// Upload round `round` is being sent (effect pending).
    Submitting { round: u32 },
    /// Round `round` was associated with the process; MUST is checking it.
    Submitted { round: u32 },
    /// MUST accepted all documents (`upload-completed`).
    Accepted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Contract {
    /// Not sent: it goes after the documents (changelog v3).
    NotSent,
    Submitting,
    Submitted,
    Accepted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Offer {
    Pending,
    Approved { premium: Option<f64> },
    Rejected { reason: Option<String> },
    Failed { error: ErrorReport },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Payment {
    NotRequested,
    Requesting,
    Requested,
    LinkReady { url: String },
    InvoiceReady { files: Vec<ArchivedFile> },
    OrderSubmitting,
    OrderSubmitted,
    Paid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchivePurpose {
    Policy,
    Invoice,
}

/// Work the step runner must do; each is idempotent under its `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "kebab-case")]
pub enum Effect {
    /// Steps 1-2: token and `POST /api/scoring/init`.
    InitScoring,
    /// Step 3: upload the bank's documents of these types and associate them.
    SubmitDocuments { round: u32, type_ids: Vec<u32> },
    /// Step 4: the contract card.
    SubmitContract,
    /// Step 6: payment link or invoice for the chosen insurer.
    RequestPayment { insurer: Insurer, method: PaymentMethod },
    /// Download MUST blobs and store them in S3.
    ArchiveFiles { purpose: ArchivePurpose, blob_ids: Vec<BlobId> },
    /// Upload a paid invoice's payment order (changelog v3).
    SubmitPaymentOrder { document: BankDocument },
    /// Tell the bank.
    Notify(TruckNotification),
}

impl Effect {
    /// A key that names this piece of work within its process, for intent records.
    pub fn key(&self) -> String {
        match self {
            Effect::InitScoring => "init".into(),
            Effect::SubmitDocuments { round, .. } => format!("documents-{round}"),
            Effect::SubmitContract => "contract".into(),
            Effect::RequestPayment { insurer, .. } => format!("payment-{insurer}"),
            Effect::ArchiveFiles { purpose: ArchivePurpose::Policy, .. } => "archive-policy".into(),
            Effect::ArchiveFiles { purpose: ArchivePurpose::Invoice, .. } => "archive-invoice".into(),
            Effect::SubmitPaymentOrder { document } => format!("payment-order-{}", document.s3_key),
            Effect::Notify(n) => format!("notify-{}", n.event_id),
        }
    }

    /// Whether doing this again after a crash is harmless, so no intent record need
    /// guard it: downloads into S3 (the object is found there), notices (the bank
    /// de-duplicates by `eventId`). Every call that changes the process at MUST is not.
    pub fn is_repeatable(&self) -> bool {
        matches!(self, Effect::ArchiveFiles { .. } | Effect::Notify(_))
    }
}

/// What happened, from MUST, the bank, or the runner's own completed effects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ProcessEvent {
    /// A hook from MUST; `id` is its stored id (the de-duplication key).
    Hook {
        id: String,
        payload: HookPayload,
    },
    /// The bank sent replacement documents.
    DocumentsCorrected {
        id: String,
        documents: Vec<BankDocument>,
    },
    /// The bank sent a paid invoice's payment order.
    PaymentOrderReceived {
        id: String,
        document: BankDocument,
    },
    /// Results of effects, applied by the runner that performed them.
    Initialized {
        scoring_id: ScoringId,
    },
    DocumentsSubmitted {
        round: u32,
    },
    ContractSubmitted,
    PaymentRequested {
        insurer: Insurer,
    },
    FilesArchived {
        purpose: ArchivePurpose,
        files: Vec<ArchivedFile>,
    },
    PaymentOrderSubmitted,
    /// An effect failed permanently.
    EffectFailed {
        error: ErrorReport,
    },
}

impl ProcessEvent {
    /// Events from outside carry an id; the process remembers it to apply each only once.
    pub fn external_id(&self) -> Option<&str> {
        match self {
            ProcessEvent::Hook { id, .. }
            | ProcessEvent::DocumentsCorrected { id, .. }
            | ProcessEvent::PaymentOrderReceived { id, .. } => Some(id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedPolicy {
    pub number: Option<String>,
    pub blob_ids: Vec<BlobId>,
    pub files: Vec<ArchivedFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruckProcess {
    pub id: ProcessId,
    pub request: TruckPolicyRequest,
    pub stage: Stage,
    pub scoring_id: Option<ScoringId>,
    pub documents: Documents,
    pub required_types: Vec<u32>,
    /// Upload rounds started so far; numbers the next one.
    pub document_rounds: u32,
    pub contract: Contract,
    /// The contract MUST pre-filled from recognised documents, if it sent one.
    pub prefilled_contract: Option<serde_json::Value>,
    pub offers: BTreeMap<Insurer, Offer>,
    pub chosen: Option<Insurer>,
    pub payment: Payment,
    pub drafts: Vec<BlobId>,
    pub policy: Option<IssuedPolicy>,
    pub error: Option<ErrorReport>,
    /// Effects not yet performed, oldest first.
    pub pending: Vec<Effect>,
    /// Ids of external events already applied.
    pub applied: Vec<String>,
    /// Notifications issued so far; numbers the next one's id.
    pub notices: u32,
}

impl TruckProcess {
    /// A new process for the bank's request; its first effect is step 1-2.
    pub fn start(request: TruckPolicyRequest) -> TruckProcess {
        TruckProcess {
            id: request.request_id.clone(),
            request,
            stage: Stage::Initializing,
            scoring_id: None,
            documents: Documents::AwaitingTypes,
            required_types: Vec::new(),
            document_rounds: 0,
            contract: Contract::NotSent,
            prefilled_contract: None,
            offers: BTreeMap::new(),
            chosen: None,
            payment: Payment::NotRequested,
            drafts: Vec::new(),
            policy: None,
            error: None,
            pending: vec![Effect::InitScoring],
            applied: Vec::new(),
            notices: 0,
        }
    }

    /// Applies one event. On `Ignored` or `Rejected` the process is unchanged.
    pub fn apply(&mut self, event: ProcessEvent) -> Outcome {
        if let Some(id) = event.external_id() {
            if self.applied.iter().any(|a| a == id) {
                return Outcome::Ignored(format!("duplicate event {id}"));
            }
        }
        let external_id = event.external_id().map(str::to_owned);
        if self.stage.is_terminal() {
            return Outcome::Ignored(format!("process has ended ({:?})", self.stage));
        }
        let mut next = self.clone();
        let outcome = next.transition(event);
        if outcome == Outcome::Advanced {
            if let Some(id) = external_id {
                next.applied.push(id);
            }
            *self = next;
        }
        outcome
    }

    /// Removes a performed effect from the outbox.
    pub fn complete(&mut self, effect_key: &str) {
        self.pending.retain(|e| e.key() != effect_key);
    }

    fn notify(&mut self, notice: TruckNotice) {
        self.notices += 1;
        let n = TruckNotification {
            event_id: format!("{}-{}", self.id, self.notices),
            process_id: self.id.clone(),
            notice,
        };
        self.pending.push(Effect::Notify(n));
    }

    fn fail(&mut self, error: ErrorReport) {
        self.stage = Stage::Failed;
        // Work that can no longer matter is dropped; notices already due are still sent.
        self.pending.retain(|e| matches!(e, Effect::Notify(_)));
        self.error = Some(error.clone());
        self.notify(TruckNotice::Failed { error });
    }

    fn transition(&mut self, event: ProcessEvent) -> Outcome {
        use Outcome::{Advanced, Ignored, Rejected};
        match event {
            ProcessEvent::Initialized { scoring_id } => match &self.scoring_id {
                Some(existing) if *existing == scoring_id => Ignored("already initialized".into()),
                Some(existing) => Rejected(format!("already initialized as {existing}, not {scoring_id}")),
                None => {
                    self.scoring_id = Some(scoring_id);
                    self.stage = Stage::Preparing;
                    Advanced
                }
            },
            ProcessEvent::Hook { payload, .. } if self.scoring_id.is_none() => {
                Rejected(format!("hook {:?} before the process was initialized", hook_name(&payload)))
            }
            ProcessEvent::Hook { payload, .. } => self.on_hook(payload),
            ProcessEvent::DocumentsCorrected { documents, .. } => self.on_documents_corrected(documents),
            ProcessEvent::PaymentOrderReceived { document, .. } => match self.payment {
                Payment::InvoiceReady { .. } | Payment::OrderSubmitted => {
                    self.payment = Payment::OrderSubmitting;
                    self.pending.push(Effect::SubmitPaymentOrder { document });
                    Advanced
                }
                _ => Rejected("payment order for a process with no invoice".into()),
            },
            ProcessEvent::DocumentsSubmitted { round } => match self.documents {
                Documents::Submitting { round: r } if r == round => {
                    self.documents = Documents::Submitted { round };
                    if self.contract == Contract::NotSent {
                        self.contract = Contract::Submitting;
                        self.pending.push(Effect::SubmitContract);
                    }
                    Advanced
                }
                _ => Ignored(format!("documents round {round} is not the one in flight")),
            },
            ProcessEvent::ContractSubmitted => match self.contract {
                Contract::Submitting => {
                    self.contract = Contract::Submitted;
                    Advanced
                }
                _ => Ignored("contract is not being submitted".into()),
            },
            ProcessEvent::PaymentRequested { insurer } => {
                if self.payment == Payment::Requesting && self.chosen.as_ref() == Some(&insurer) {
                    self.payment = Payment::Requested;
                    Advanced
                } else {
                    Ignored("no payment request in flight for that insurer".into())
                }
            }
            ProcessEvent::FilesArchived { purpose: ArchivePurpose::Invoice, files } => {
                let Some(insurer) = self.chosen.clone() else {
                    return Rejected("invoice archived with no insurer chosen".into());
                };
                self.payment = Payment::InvoiceReady { files: files.clone() };
                self.notify(TruckNotice::InvoiceReady { insurer, files });
                Advanced
            }
            ProcessEvent::FilesArchived { purpose: ArchivePurpose::Policy, files } => {
                let Some(policy) = self.policy.as_mut() else {
                    return Rejected("policy archived before it was issued".into());
                };
                policy.files = files.clone();
                let policy_number = policy.number.clone();
                self.stage = Stage::Issued;
                self.notify(TruckNotice::PolicyIssued { insurer: self.chosen.clone(), policy_number, files });
                Advanced
            }
            ProcessEvent::PaymentOrderSubmitted => match self.payment {
                Payment::OrderSubmitting => {
                    self.payment = Payment::OrderSubmitted;
                    Advanced
                }
                _ => Ignored("no payment order in flight".into()),
            },
            ProcessEvent::EffectFailed { error } => {
                self.fail(error);
                Advanced
            }
        }
    }

    fn on_hook(&mut self, payload: HookPayload) -> Outcome {
        use Outcome::{Advanced, Ignored, Rejected};
        match payload.clone() {
            HookPayload::DocumentsTypesRequired { type_ids } => {
                if matches!(self.documents, Documents::Accepted) {
                    return Ignored("documents already accepted".into());
                }
                self.required_types = type_ids;
                self.submit_documents_or_ask_bank(None)
            }
            HookPayload::DocumentsUploadFailed { problems } => match self.documents {
                Documents::Accepted => Ignored("documents already accepted".into()),
                _ => {
                    self.documents = Documents::NeedsFix { problems: problems.clone() };
                    self.notify(TruckNotice::DocumentsToFix { problems });
                    Advanced
                }
            },
            HookPayload::DocumentsUploadCompleted => {
                self.documents = Documents::Accepted;
                Advanced
            }
            HookPayload::ContractUpdateCompleted { prefilled_contract } => {
                if prefilled_contract.is_some() {
                    self.prefilled_contract = prefilled_contract;
                }
                // A pre-filled contract from recognition, before ours was sent, does not
                // accept our card: ours still goes, after the documents.
                if self.contract == Contract::Submitted {
                    self.contract = Contract::Accepted;
                }
                Advanced
            }
            HookPayload::Started { insurers } => {
                self.stage = self.stage.max_with(Stage::Scoring);
                for insurer in insurers {
                    self.offers.entry(insurer).or_insert(Offer::Pending);
                }
                self.decide()
            }
            HookPayload::Approved { insurer, premium } => {
                self.record_offer(insurer.clone(), Offer::Approved { premium });
                self.notify(TruckNotice::Offer {
                    insurer,
                    outcome: OfferOutcome::Approved,
                    premium,
                    error: None,
                });
                self.decide()
            }
            HookPayload::Rejected { insurer, .. } | HookPayload::CompanyFailed { insurer, .. }
                if self.chosen.as_ref() == Some(&insurer) && self.is_paid_or_further() =>
            {
                let error = match payload {
                    HookPayload::CompanyFailed { code, message, .. } => {
                        ErrorReport::from_must(code, message.as_deref())
                    }
                    _ => ErrorReport::integration(
                        "chosen-insurer-rejected",
                        "the chosen insurer rejected after payment",
                    ),
                };
                self.fail(error);
                Advanced
            }
            HookPayload::Rejected { insurer, reason } => {
                self.record_offer(insurer.clone(), Offer::Rejected { reason });
                self.notify(TruckNotice::Offer {
                    insurer,
                    outcome: OfferOutcome::Rejected,
                    premium: None,
                    error: None,
                });
                self.decide()
            }
            HookPayload::CompanyFailed { insurer, code, message } => {
                let error = ErrorReport::from_must(code, message.as_deref());
                self.record_offer(insurer.clone(), Offer::Failed { error: error.clone() });
                self.notify(TruckNotice::Offer {
                    insurer,
                    outcome: OfferOutcome::Failed,
                    premium: None,
                    error: Some(error),
                });
                self.decide()
            }
            HookPayload::DraftIssued { blob_ids, .. } => {
                for id in blob_ids {
                    if !self.drafts.contains(&id) {
                        self.drafts.push(id);
                    }
                }
                Advanced
            }
            HookPayload::PaymentLinkGenerated { url, .. } => {
                let Some(insurer) = self.chosen.clone() else {
                    return Rejected("payment link for a process that requested none".into());
                };
                self.payment = Payment::LinkReady { url: url.clone() };
                self.notify(TruckNotice::PaymentLinkReady { insurer, url });
                Advanced
            }
            HookPayload::PaymentInvoiceGenerated { blob_ids, .. } => {
                if self.chosen.is_none() {
                    return Rejected("invoice for a process that requested none".into());
                }
                self.pending.push(Effect::ArchiveFiles { purpose: ArchivePurpose::Invoice, blob_ids });
                Advanced
            }
            HookPayload::PolicyIsPaid => {
                if self.chosen.is_none() {
                    return Rejected("paid before any payment was requested".into());
                }
                self.payment = Payment::Paid;
                self.stage = Stage::AwaitingPolicy;
                self.notify(TruckNotice::Paid);
                Advanced
            }
            HookPayload::PolicyIssued { policy_number, blob_ids } => {
                if self.chosen.is_none() {
                    return Rejected("policy issued before any payment was requested".into());
                }
                if self.policy.is_some() {
                    return Ignored("policy already issued".into());
                }
                self.stage = Stage::Archiving;
                self.policy = Some(IssuedPolicy {
                    number: policy_number,
                    blob_ids: blob_ids.clone(),
                    files: Vec::new(),
                });
                self.pending.push(Effect::ArchiveFiles { purpose: ArchivePurpose::Policy, blob_ids });
                Advanced
            }
            HookPayload::Failed { code, message } => {
                self.fail(ErrorReport::from_must(code, message.as_deref()));
                Advanced
            }
        }
    }

    /// Sends the documents MUST asked for, or tells the bank which ones it still owes.
    fn submit_documents_or_ask_bank(&mut self, only: Option<&[u32]>) -> Outcome {
        let missing: Vec<DocumentProblem> = self
            .required_types
            .iter()
            .filter(|t| !self.request.documents.iter().any(|d| d.type_id == **t))
            .map(|t| DocumentProblem {
                type_id: *t,
                reason: Some("required by MUST, not provided by the bank".into()),
            })
            .collect();
        if !missing.is_empty() {
            self.documents = Documents::NeedsFix { problems: missing.clone() };
            self.notify(TruckNotice::DocumentsToFix { problems: missing });
            return Outcome::Advanced;
        }
        self.document_rounds += 1;
        let round = self.document_rounds;
        let type_ids = match only {
            Some(types) => types.to_vec(),
            None => self.required_types.clone(),
        };
        self.documents = Documents::Submitting { round };
        self.pending.push(Effect::SubmitDocuments { round, type_ids });
        Outcome::Advanced
    }

    fn on_documents_corrected(&mut self, corrected: Vec<BankDocument>) -> Outcome {
        if matches!(self.documents, Documents::Accepted) {
            return Outcome::Ignored("documents already accepted".into());
        }
        let fixed_types: Vec<u32> = corrected.iter().map(|d| d.type_id).collect();
        for doc in corrected {
            self.request.documents.retain(|d| d.type_id != doc.type_id);
            self.request.documents.push(doc);
        }
        match &self.documents {
            Documents::NeedsFix { .. } if !self.required_types.is_empty() => {
                if self.document_rounds == 0 {
                    // Nothing reached MUST yet: send the whole required set.
                    return self.submit_documents_or_ask_bank(None);
                }
                let resend: Vec<u32> =
                    fixed_types.into_iter().filter(|t| self.required_types.contains(t)).collect();
                if resend.is_empty() {
                    return Outcome::Advanced;
                }
                self.submit_documents_or_ask_bank(Some(&resend))
            }
            // Before MUST named the types, or while a round is in flight: keep them for later.
            _ => Outcome::Advanced,
        }
    }

    fn record_offer(&mut self, insurer: Insurer, offer: Offer) {
        self.stage = self.stage.max_with(Stage::Scoring);
        let withdrawn = !matches!(offer, Offer::Approved { .. });
        self.offers.insert(insurer.clone(), offer);
        if withdrawn && self.chosen.as_ref() == Some(&insurer) {
            // The chosen insurer dropped out (e.g. 1502/1602, payment link error):
            // before payment, fall back to the next approved offer; `decide` follows.
            self.chosen = None;
            self.payment = Payment::NotRequested;
            self.stage = Stage::Scoring;
            self.pending.retain(|e| !matches!(e, Effect::RequestPayment { .. }));
        }
    }

    /// Whether money has moved, after which the insurer can no longer be switched.
    fn is_paid_or_further(&self) -> bool {
        matches!(self.payment, Payment::Paid | Payment::OrderSubmitting | Payment::OrderSubmitted)
            || self.policy.is_some()
    }

    /// Chooses an insurer when the bank's rule allows; ends the process when none is left.
    fn decide(&mut self) -> Outcome {
        if self.chosen.is_some() {
            return Outcome::Advanced;
        }
        let approved = |o: &Offer| matches!(o, Offer::Approved { .. });
        let preferred = self
            .request
            .payment
            .preferred_insurer
            .clone()
            .filter(|p| self.offers.get(p).is_some_and(approved));
        let any_pending = self.offers.values().any(|o| *o == Offer::Pending);
        let choice = preferred.or_else(|| {
            if any_pending {
                return None;
            }
            self.offers
                .iter()
                .filter_map(|(i, o)| match o {
                    Offer::Approved { premium } => Some((premium.unwrap_or(f64::INFINITY), i)),
                    _ => None,
                })
                .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)))
                .map(|(_, i)| i.clone())
        });
        match choice {
            Some(insurer) => {
                self.chosen = Some(insurer.clone());
                self.stage = Stage::AwaitingPayment;
                self.payment = Payment::Requesting;
                self.pending.push(Effect::RequestPayment { insurer, method: self.request.payment.method });
            }
            None if !any_pending && !self.offers.is_empty() => {
                self.stage = Stage::Rejected;
                self.pending.retain(|e| matches!(e, Effect::Notify(_)));
                self.notify(TruckNotice::Rejected);
            }
            None => {}
        }
        Outcome::Advanced
    }
}

impl Stage {
    /// The later of two stages in the flow's order (hooks only move a process forward).
    fn max_with(self, other: Stage) -> Stage {
        if (other as u8) > (self as u8) {
            other
        } else {
            self
        }
    }
}

fn hook_name(payload: &HookPayload) -> String {
    serde_json::to_value(payload)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
