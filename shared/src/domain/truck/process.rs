//! The MUST truck-eOSAGO process as a state machine.
//!
//! `apply` is total: every (state, event) pair either advances the process
//! (possibly queueing effects for the step runner), is a duplicate, is ignored
//! as stale, or is rejected with a reason. It never panics. Effects are kept in
//! the process itself (an [`Outbox`]), so a runner that dies between two effects
//! finds the rest still pending on its next delivery.
//!
//! Money rules the process keeps, whatever the order of events:
//! - a call that changes something at MUST and ended without a known outcome
//!   holds the process for review; a hook that can only follow that call
//!   (`payment-link-generated` after the payment request, ...) proves it happened;
//! - once the insurer has issued the policy, nothing turns the process into
//!   `failed`: later errors are kept beside it, files not archived are marked
//!   pending for a replay.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bank::{
    ApprovedOffer, ArchivedFile, BankDocument, ErrorReport, InsurerChoice, OfferOutcome, PartyKind,
    PaymentMethod, PendingFile, RequestCorrection, TruckNotice, TruckNotification, TruckPolicyRequest,
};
use crate::domain::ids::{ProcessId, ScoringId};
use crate::domain::must::api::ContractCard;
use crate::domain::must::error_codes::{ErrorKind, MustErrorCode, PAYMENT_EXPIRED};
use crate::domain::must::files::{files_or_blob_ids, MustFile};
use crate::domain::must::hook::{DocumentProblem, HookKind, HookPayload};
use crate::domain::must::insurer::Insurer;
pub use crate::domain::outcome::Outcome;
use crate::domain::validation::{FieldError, Problems};
use crate::domain::workflow::{self, EffectSpec, History, Outbox, Received, Resolution, Workflow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TruckStage {
    /// Waiting for our `init` call to return a scoringId (steps 1-2).
    Initializing,
    /// Documents and contract card (steps 3-4).
    Preparing,
    /// MUST accepted the documents and recognises them: our card waits for the contract
    /// recognition pre-fills (changelog v3: it would overwrite ours), at most
    /// `RecognitionWaitSeconds` (the watchdog's [`TruckEvent::RecognitionOverdue`]).
    AwaitingRecognition,
    /// MUST is scoring with one or more insurers (step 5).
    Scoring,
    /// The offers are in; the bank chooses one (`"choice": "bank"`) with `truck.insurer-chosen`.
    AwaitingChoice,
    /// MUST stopped the process with a code the customer can correct (before any payment):
    /// the bank was told (`truck.correction-needed`); `truck.request-corrected` starts a new one.
    AwaitingCorrection,
    /// MUST stopped the process as temporarily unavailable (before any payment): a new one
    /// starts when the watchdog finds the wait over ([`TruckEvent::RetryDue`]).
    AwaitingRetry,
    /// An insurer was chosen; payment link or invoice requested, customer to pay (step 6).
    AwaitingPayment,
    /// Paid; waiting for the insurer to issue (step 7).
    AwaitingPolicy,
    /// Issued; downloading the policy files into S3.
    Archiving,
    /// Done: the insurer issued the policy (its files archived, or marked pending).
    Issued,
    /// Done: no insurer approved.
    Rejected,
    /// Done: an error ended the process before a policy was issued.
    Failed,
    /// Done: the payment deadline passed and MUST stopped the process (error 1603).
    Expired,
}

impl TruckStage {
    pub fn is_terminal(self) -> bool {
        matches!(self, TruckStage::Issued | TruckStage::Rejected | TruckStage::Failed | TruckStage::Expired)
    }

    /// The later of two stages in the flow's order (hooks only move a process forward).
    fn max_with(self, other: TruckStage) -> TruckStage {
        self.max(other)
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

/// Our contract card. It goes after MUST has accepted and recognised the documents
/// (changelog v3: recognition may overwrite the contract), merged over what was recognised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Contract {
    NotSent,
    /// Our card of `round` is being sent. MUST's hooks may come before we learn how the
    /// call ended: an acknowledgement (the call reached MUST), or recognition overwriting
    /// the card it got.
    Submitting {
        round: u32,
        #[serde(default)]
        acknowledged: bool,
        #[serde(default)]
        overwritten: bool,
    },
    Submitted {
        round: u32,
    },
    /// MUST holds our card, sent in round `round`.
    Accepted {
        round: u32,
    },
}

/// Our card is sent again at most this many times when recognition overwrites it.
const CONTRACT_ROUNDS: u32 = 2;

/// New MUST processes a request gets after codes the customer can correct, and after
/// temporary unavailability: each bounded, so no request loops at MUST for ever.
pub const MAX_CORRECTIONS: u32 = 3;
pub const MAX_RETRIES: u32 = 3;

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
    Draft,
}

impl ArchivePurpose {
    pub fn name(self) -> &'static str {
        match self {
            ArchivePurpose::Policy => "policy",
            ArchivePurpose::Invoice => "invoice",
            ArchivePurpose::Draft => "draft",
        }
    }
}

/// Work the step runner must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum TruckEffect {
    /// Steps 1-2: token and `POST /api/scoring/init`, for the request's `scoring`-th MUST
    /// process (a correction or a retry starts another; 1: the first).
    InitScoring {
        #[serde(default = "first_scoring", skip_serializing_if = "is_first")]
        scoring: u32,
    },
    /// Step 3: upload the bank's documents of these types and associate them.
    SubmitDocuments { round: u32, type_ids: Vec<u32> },
    /// Step 4: the contract card (ours over what recognition pre-filled), round `round` of
    /// the `scoring`-th MUST process.
    SubmitContract {
        round: u32,
        #[serde(default = "first_scoring", skip_serializing_if = "is_first")]
        scoring: u32,
    },
    /// Step 6: payment link or invoice for the chosen insurer.
    RequestPayment { insurer: Insurer, method: PaymentMethod },
    /// Download MUST's files and store them in S3.
    ArchiveFiles {
        purpose: ArchivePurpose,
        #[serde(alias = "blob_ids", deserialize_with = "files_or_blob_ids")]
        files: Vec<MustFile>,
    },
    /// Upload a paid invoice's payment order (changelog v3).
    SubmitPaymentOrder { document: BankDocument },
    /// Tell the bank.
    Notify(TruckNotification),
}

fn is_first(scoring: &u32) -> bool {
    *scoring <= 1
}

fn first_scoring() -> u32 {
    1
}

/// An effect's key within the `scoring`-th MUST process: calls of a new process are new
/// calls (their own attempts, intents and idempotency keys).
fn of_scoring(key: &str, scoring: u32) -> String {
    if is_first(&scoring) {
        key.to_owned()
    } else {
        format!("{key}-s{scoring}")
    }
}

impl EffectSpec for TruckEffect {
    fn key(&self) -> String {
        match self {
            TruckEffect::InitScoring { scoring } => of_scoring("init", *scoring),
            // Rounds count on across MUST processes.
            TruckEffect::SubmitDocuments { round, .. } => format!("documents-{round}"),
            TruckEffect::SubmitContract { round, scoring } => {
                of_scoring(&format!("contract-{round}"), *scoring)
            }
            TruckEffect::RequestPayment { insurer, .. } => format!("payment-{insurer}"),
            TruckEffect::ArchiveFiles { purpose, files } => match files.first() {
                Some(first) => format!("archive-{}-{}", purpose.name(), first.source_id()),
                None => format!("archive-{}", purpose.name()),
            },
            TruckEffect::SubmitPaymentOrder { document } => {
                format!("payment-order-{}", short_digest(&document.s3_key))
            }
            TruckEffect::Notify(n) => format!("notify-{}", n.event_id),
        }
    }

    /// Every call that changes the process at MUST; downloads into S3 (the object is found
    /// there) and notices (the bank de-duplicates by `eventId`) are repeatable.
    fn changing_call(&self) -> Option<&'static str> {
        match self {
            TruckEffect::InitScoring { .. } => Some(CALL_INIT),
            TruckEffect::SubmitDocuments { .. } => Some(CALL_DOCUMENTS),
            TruckEffect::SubmitContract { .. } => Some(CALL_CONTRACT),
            TruckEffect::RequestPayment { .. } => Some(CALL_PAYMENT),
            TruckEffect::SubmitPaymentOrder { .. } => Some(CALL_PAYMENT_ORDER),
            TruckEffect::ArchiveFiles { .. } | TruckEffect::Notify(_) => None,
        }
    }

    fn notice(&self) -> Option<(&'static str, &str)> {
        match self {
            TruckEffect::Notify(n) => Some((n.notice.kind(), &n.event_id)),
            _ => None,
        }
    }

    fn moves_money(&self) -> bool {
        matches!(self, TruckEffect::RequestPayment { .. } | TruckEffect::SubmitPaymentOrder { .. })
    }
}

const CALL_INIT: &str = "init";
const CALL_DOCUMENTS: &str = "documents";
const CALL_CONTRACT: &str = "contract";
const CALL_PAYMENT: &str = "payment";
const CALL_PAYMENT_ORDER: &str = "payment-order";

/// Which of our calls makes MUST send a hook of this kind: another such call, another
/// hook; MUST's own progress (scoring, issuing) sends each of its hooks once.
pub fn caused_by(kind: HookKind) -> Option<&'static str> {
    match kind {
        HookKind::DocumentsTypesRequired => Some(CALL_INIT),
        HookKind::DocumentsUploadFailed | HookKind::DocumentsUploadCompleted => Some(CALL_DOCUMENTS),
        HookKind::ContractUpdateCompleted => Some(CALL_CONTRACT),
        HookKind::PaymentLinkGenerated | HookKind::PaymentInvoiceGenerated => Some(CALL_PAYMENT),
        HookKind::PolicyIsPaid => Some(CALL_PAYMENT_ORDER),
        HookKind::Started
        | HookKind::Approved
        | HookKind::Rejected
        | HookKind::DraftIssued
        | HookKind::PolicyIssued
        | HookKind::Failed
        | HookKind::CompanyFailed => None,
    }
}

/// The pending entry of a file MUST's hook did not name in any way polis reads.
fn unnamed_file(what: &str) -> PendingFile {
    PendingFile {
        blob_id: "unnamed".into(),
        reason: format!(
            "MUST's hook named no {what} file polis can read (a blobId, policyBlobId, paymentInvoiceBlobId, \
             paymentInvoiceDownloadKey or policyLink): ask MUST for it"
        ),
    }
}

/// [`caused_by`] for one hook: a pre-filled contract is recognition's, which our documents
/// set off (changelog v3), not an answer to our card.
fn hook_caused_by(payload: &HookPayload) -> Option<&'static str> {
    match payload {
        HookPayload::ContractUpdateCompleted { prefilled_contract: Some(_) } => Some(CALL_DOCUMENTS),
        other => caused_by(other.kind()),
    }
}

fn short_digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_owned()
}

/// What happened, from MUST, the bank, an operator, or the runner's own effects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum TruckEvent {
    /// A hook from MUST. `id` is its stored id; `by_content` when it was derived from
    /// the hook's content because MUST sent no delivery id (see `Outbox::applied_key`).
    Hook {
        id: String,
        #[serde(default)]
        by_content: bool,
        payload: HookPayload,
        /// When our intake received it (0: not known).
        #[serde(default)]
        received_at_ms: u64,
        /// The MUST process it came from (its path's scoringId; absent: the current one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scoring_id: Option<ScoringId>,
    },
    /// The bank sent replacement documents.
    DocumentsCorrected {
        id: String,
        documents: Vec<BankDocument>,
    },
    /// The bank sent a paid invoice's payment order (for `insurer`'s invoice, when it says).
    PaymentOrderReceived {
        id: String,
        document: BankDocument,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        insurer: Option<Insurer>,
    },
    /// An operator resolved the review of a call whose outcome was unknown.
    ReviewResolved {
        id: String,
        /// The held call and attempt the answer is about: an answer that meets another
        /// hold (the first was lifted meanwhile, and a new attempt held) is not applied to it.
        effect: String,
        #[serde(default)]
        attempt: u32,
        resolution: Resolution,
    },
    /// An operator asks for the files not archived yet to be tried again.
    RetryArchive {
        id: String,
    },
    /// The bank chose an approved offer (`truck.insurer-chosen`), and how to pay for it.
    InsurerChosen {
        id: String,
        insurer: Insurer,
        #[serde(default)]
        method: Option<PaymentMethod>,
    },
    /// The watchdog found the process waiting for the bank's choice since `since_ms`
    /// (the stage's start) for too long. `id` names that wait, so every run's message
    /// about it is one event.
    ChoiceOverdue {
        id: String,
        since_ms: u64,
    },
    /// The watchdog found the process waiting for MUST's recognition since `since_ms` for
    /// longer than polis waits: our card goes without the pre-filled contract. `id` names
    /// that wait.
    RecognitionOverdue {
        id: String,
        since_ms: u64,
    },
    /// The bank corrected the request after `truck.correction-needed`.
    RequestCorrected {
        id: String,
        correction: Box<RequestCorrection>,
    },
    /// The watchdog found the wait after a temporary error (since `since_ms`) over: a new
    /// MUST process starts. `id` names that wait.
    RetryDue {
        id: String,
        since_ms: u64,
    },
    /// Results of effects, applied by the runner that performed them.
    Initialized {
        scoring_id: ScoringId,
    },
    DocumentsSubmitted {
        round: u32,
    },
    ContractSubmitted {
        round: u32,
    },
    PaymentRequested {
        insurer: Insurer,
    },
    /// MUST refused the payment for this insurer (changelog v2: 403, it did not approve).
    PaymentRefused {
        insurer: Insurer,
        error: ErrorReport,
    },
    FilesArchived {
        purpose: ArchivePurpose,
        files: Vec<ArchivedFile>,
        #[serde(default)]
        pending: Vec<PendingFile>,
    },
    PaymentOrderSubmitted,
    /// An effect failed permanently.
    EffectFailed {
        effect: String,
        error: ErrorReport,
    },
    /// A call that changes something at MUST ended without a known outcome.
    CallUncertain {
        effect: String,
        at_ms: u64,
        detail: String,
    },
}

impl TruckEvent {
    /// Events from outside carry an id; the process remembers it to apply each only once.
    pub fn external_id(&self) -> Option<&str> {
        match self {
            TruckEvent::Hook { id, .. }
            | TruckEvent::DocumentsCorrected { id, .. }
            | TruckEvent::PaymentOrderReceived { id, .. }
            | TruckEvent::ReviewResolved { id, .. }
            | TruckEvent::RetryArchive { id }
            | TruckEvent::InsurerChosen { id, .. }
            | TruckEvent::ChoiceOverdue { id, .. }
            | TruckEvent::RecognitionOverdue { id, .. }
            | TruckEvent::RequestCorrected { id, .. }
            | TruckEvent::RetryDue { id, .. } => Some(id),
            _ => None,
        }
    }

    /// What caused the notices this event gives: the same cause, the same notice ids.
    fn cause(&self) -> String {
        match self {
            TruckEvent::Initialized { .. } => "initialized".into(),
            TruckEvent::DocumentsSubmitted { round } => format!("documents-submitted-{round}"),
            TruckEvent::ContractSubmitted { round } => format!("contract-submitted-{round}"),
            TruckEvent::PaymentRequested { insurer } => format!("payment-requested-{insurer}"),
            TruckEvent::PaymentRefused { insurer, .. } => format!("payment-refused-{insurer}"),
            TruckEvent::FilesArchived { purpose, files, pending } => format!(
                "archived-{}-{}-{}",
                purpose.name(),
                files.first().map_or("", |f| f.blob_id.as_str()),
                pending.len()
            ),
            TruckEvent::PaymentOrderSubmitted => "payment-order-submitted".into(),
            TruckEvent::EffectFailed { effect, .. } => format!("failed-{effect}"),
            TruckEvent::CallUncertain { effect, at_ms, .. } => format!("uncertain-{effect}-{at_ms}"),
            // External events are caused by themselves (`apply` passes their applied key).
            _ => String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedPolicy {
    pub number: Option<String>,
    /// The files MUST named (`files`: those archived).
    #[serde(alias = "blob_ids", deserialize_with = "files_or_blob_ids")]
    pub sources: Vec<MustFile>,
    pub files: Vec<ArchivedFile>,
    /// Files MUST has for us that are not archived yet (a replay finishes them).
    #[serde(default)]
    pub pending_files: Vec<PendingFile>,
}

/// The cause of the event being applied, and the notices it produced so far (for their ids).
#[derive(Debug, Clone, Default, PartialEq)]
struct Cause {
    id: String,
    notices: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruckProcess {
    pub id: ProcessId,
    pub request: TruckPolicyRequest,
    pub stage: TruckStage,
    pub scoring_id: Option<ScoringId>,
    /// Which MUST process of the request is the current one (1: the first).
    #[serde(default = "first_scoring")]
    pub scoring: u32,
    /// MUST processes stopped with a code the bank could correct or wait out: their late
    /// hooks are history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed_scorings: Vec<ScoringId>,
    /// New MUST processes started after a correction, and after temporary unavailability.
    #[serde(default)]
    pub corrections: u32,
    #[serde(default)]
    pub retries: u32,
    pub documents: Documents,
    pub required_types: Vec<u32>,
    /// Upload rounds started so far; numbers the next one.
    pub document_rounds: u32,
    pub contract: Contract,
    /// The contract MUST pre-filled from recognised documents, if it sent one.
    pub prefilled_contract: Option<Value>,
    /// MUST's acknowledgements of our cards so far (a bare `contract/update-completed`, one
    /// per card that reached it): one beyond the cards known to have reached it is the
    /// acknowledgement of the card in flight; fewer may be an earlier card's.
    #[serde(default)]
    pub contract_acks: u32,
    pub offers: BTreeMap<Insurer, Offer>,
    pub chosen: Option<Insurer>,
    /// Chosen insurers that dropped out after their payment request reached MUST (or may
    /// have): a link, invoice or payment order that names no insurer may be theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_after_request: Vec<Insurer>,
    /// Whether the bank was reminded of the current wait for its choice.
    #[serde(default)]
    pub choice_reminded: bool,
    /// Whether a payment was ever decided on (an insurer chosen and its payment asked for):
    /// from then on MUST's process is never replaced, whatever was dropped or refused since.
    #[serde(default)]
    pub payment_decided: bool,
    pub payment: Payment,
    /// Draft files MUST issued, and those archived.
    #[serde(deserialize_with = "files_or_blob_ids")]
    pub drafts: Vec<MustFile>,
    #[serde(default)]
    pub draft_files: Vec<ArchivedFile>,
    pub policy: Option<IssuedPolicy>,
    pub error: Option<ErrorReport>,
    /// Errors reported after the policy was issued: kept, never turning it into `failed`.
    #[serde(default)]
    pub late_errors: Vec<ErrorReport>,
    pub outbox: Outbox<TruckEffect>,
    /// Keys of external events already applied.
    pub applied: Vec<String>,
    #[serde(default)]
    pub history: History,
    #[serde(skip)]
    cause: Cause,
}

impl TruckProcess {
    /// A new process for the bank's request; its first effect is step 1-2.
    pub fn start(request: TruckPolicyRequest) -> TruckProcess {
        TruckProcess {
            id: request.request_id.clone(),
            request,
            stage: TruckStage::Initializing,
            scoring_id: None,
            scoring: 1,
            closed_scorings: Vec::new(),
            corrections: 0,
            retries: 0,
            documents: Documents::AwaitingTypes,
            required_types: Vec::new(),
            document_rounds: 0,
            contract: Contract::NotSent,
            prefilled_contract: None,
            contract_acks: 0,
            offers: BTreeMap::new(),
            chosen: None,
            dropped_after_request: Vec::new(),
            choice_reminded: false,
            payment_decided: false,
            payment: Payment::NotRequested,
            drafts: Vec::new(),
            draft_files: Vec::new(),
            policy: None,
            error: None,
            late_errors: Vec::new(),
            outbox: Outbox::new(vec![TruckEffect::InitScoring { scoring: 1 }]),
            applied: Vec::new(),
            history: History::default(),
            cause: Cause::default(),
        }
    }

    /// The FIFO message group of everything about this process: MUST's scoringId once
    /// known (the hooks' group), our process id before.
    pub fn message_group(&self) -> String {
        match &self.scoring_id {
            Some(sid) => sid.to_string(),
            None => self.id.to_string(),
        }
    }

    /// The card we send MUST: ours over what recognition pre-filled.
    pub fn contract_card(&self) -> Value {
        ContractCard::for_request(&self.request).merged_with(self.prefilled_contract.as_ref())
    }

    /// Applies one event. On anything but `Advanced` the process is unchanged.
    pub fn apply(&mut self, event: TruckEvent) -> Outcome {
        let key = match &event {
            TruckEvent::Hook { id, by_content, payload, received_at_ms, .. } => {
                Some(self.outbox.applied_key(id, *by_content, hook_caused_by(payload), *received_at_ms))
            }
            other => other.external_id().map(str::to_owned),
        };
        if key.as_ref().is_some_and(|k| self.applied.contains(k)) {
            return Outcome::Duplicate;
        }
        let mut next = self.clone();
        next.cause = Cause { id: key.clone().unwrap_or_else(|| event.cause()), notices: Vec::new() };
        let outcome = next.transition(event);
        if outcome == Outcome::Advanced {
            next.cause = Cause::default();
            next.applied.extend(key);
            *self = next;
        }
        outcome
    }

    fn notify(&mut self, notice: TruckNotice) {
        let kind = notice.kind();
        let nth = self.cause.notices.iter().filter(|k| **k == kind).count();
        self.cause.notices.push(kind);
        let n = TruckNotification {
            event_id: workflow::notice_id(self.id.as_str(), &self.cause.id, kind, nth),
            process_id: self.id.clone(),
            notice,
        };
        self.outbox.push(TruckEffect::Notify(n));
    }

    fn fail(&mut self, error: ErrorReport) {
        if self.policy.is_some() {
            // The insurer has issued: the policy stays issued, the error is kept beside it.
            self.late_errors.push(error);
            return;
        }
        self.stage = TruckStage::Failed;
        // Work that can no longer matter is dropped; notices already due are still sent.
        self.outbox.drop_work();
        self.error = Some(error.clone());
        self.notify(TruckNotice::Failed { error });
    }

    /// The payment deadline passed (error 1603): MUST stopped the process, and no other
    /// insurer is asked for a payment.
    fn expire(&mut self, error: ErrorReport) {
        if self.policy.is_some() {
            self.late_errors.push(error);
            return;
        }
        self.stage = TruckStage::Expired;
        self.outbox.drop_work();
        self.error = Some(error.clone());
        self.notify(TruckNotice::Expired { insurer: self.chosen.clone(), error });
    }

    /// Whether the process has gone as far as paying: a payment was decided on (asked for,
    /// maybe sent, refused or dropped since). From there MUST's process is never replaced by
    /// a new one automatically.
    fn payment_begun(&self) -> bool {
        self.payment_decided
            || self.payment != Payment::NotRequested
            || self.outbox.calls_made(CALL_PAYMENT) > 0
    }

    /// MUST's `failed`. Before any payment, a code the customer can correct waits for the
    /// bank's correction and a temporary one for a retry, each a bounded number of times;
    /// anything else ends the process (as expired: 1603 once payment was asked for, unpaid).
    fn on_failed(&mut self, code: u32, message: Option<&str>) -> Outcome {
        let error = ErrorReport::from_must(code, message);
        if self.payment_begun() || self.policy.is_some() {
            // A deadline passing once paid contradicts the payment: a failure for a person.
            if code == PAYMENT_EXPIRED && !self.is_paid_or_further() {
                self.expire(error);
            } else {
                self.fail(error);
            }
            return Outcome::Advanced;
        }
        match MustErrorCode::lookup(code).kind() {
            ErrorKind::Data { field } if self.corrections < MAX_CORRECTIONS => {
                self.close_scoring(error.clone(), TruckStage::AwaitingCorrection);
                let corrections_left = MAX_CORRECTIONS - self.corrections;
                self.notify(TruckNotice::CorrectionNeeded {
                    field: field.to_owned(),
                    error,
                    corrections_left,
                });
            }
            ErrorKind::Temporary if self.retries < MAX_RETRIES => {
                self.close_scoring(error.clone(), TruckStage::AwaitingRetry);
                let retry = self.retries + 1;
                self.notify(TruckNotice::RetryScheduled { error, retry, retries: MAX_RETRIES });
            }
            _ => self.fail(error),
        }
        Outcome::Advanced
    }

    /// MUST stopped the current process: its pending work goes (a held call with it: the
    /// process it changed is over), its late hooks are history, and the request waits in
    /// `stage`. What it had (documents, card, offers) goes too: nothing the bank sends
    /// meanwhile (a choice, rescans) can act on the closed process.
    fn close_scoring(&mut self, error: ErrorReport, stage: TruckStage) {
        self.closed_scorings.extend(self.scoring_id.take());
        self.outbox.drop_work();
        self.error = Some(error);
        self.stage = stage;
        self.documents = Documents::AwaitingTypes;
        self.required_types.clear();
        self.contract = Contract::NotSent;
        self.prefilled_contract = None;
        // Every card sent to the closed processes counts as acknowledged: an acknowledgement
        // from now on is of a card of the new one.
        self.contract_acks = self.outbox.calls_made(CALL_CONTRACT);
        self.offers.clear();
        self.choice_reminded = false;
    }

    /// The request's next MUST process, from init, with the request as it now stands.
    fn restart(&mut self) {
        self.scoring = self.scoring.max(1) + 1;
        self.stage = TruckStage::Initializing;
        self.error = None;
        self.outbox.push(TruckEffect::InitScoring { scoring: self.scoring });
    }

    /// A hook from a MUST process that was stopped and replaced: history, unless it claims
    /// money moved (none was asked for there), which a person looks at.
    fn on_closed_scoring_hook(&self, scoring_id: &ScoringId, payload: &HookPayload) -> Outcome {
        match payload {
            HookPayload::PaymentLinkGenerated { .. }
            | HookPayload::PaymentInvoiceGenerated { .. }
            | HookPayload::PolicyIsPaid { .. }
            | HookPayload::PolicyIssued { .. } => Outcome::Rejected(format!(
                "MUST process {scoring_id} was stopped before any payment, yet its hook {} claims one",
                payload.kind().path()
            )),
            _ => Outcome::Ignored(format!("MUST process {scoring_id} was stopped and replaced: history")),
        }
    }

    /// What an ended process still takes: history MUST sends late (payment, drafts, a
    /// policy issued after all), files archived late, an operator's retry.
    fn takes_after_end(&self, event: &TruckEvent) -> bool {
        match event {
            TruckEvent::Hook { payload, .. } => match payload {
                HookPayload::PolicyIsPaid { .. } => self.payment_requested(),
                HookPayload::DraftIssued { .. } => self.stage == TruckStage::Issued,
                HookPayload::PolicyIssued { .. } => {
                    matches!(self.stage, TruckStage::Failed | TruckStage::Expired) && self.payment_requested()
                }
                // Kept beside the issued policy, never turning it into failed.
                HookPayload::Failed { .. } | HookPayload::CompanyFailed { .. } => {
                    self.stage == TruckStage::Issued
                }
                _ => false,
            },
            TruckEvent::EffectFailed { .. } => self.stage == TruckStage::Issued,
            TruckEvent::FilesArchived { .. } | TruckEvent::RetryArchive { .. } => true,
            _ => false,
        }
    }

    fn transition(&mut self, event: TruckEvent) -> Outcome {
        use Outcome::{Advanced, Ignored, Rejected};
        if let TruckEvent::Hook { scoring_id: Some(sid), payload, .. } = &event {
            if self.closed_scorings.contains(sid) {
                return self.on_closed_scoring_hook(sid, payload);
            }
        }
        if self.stage.is_terminal() && !self.takes_after_end(&event) {
            let why = format!("the process has ended ({:?})", self.stage);
            return match &event {
                // The customer has paid and the policy exists: a payment request that comes
                // late (its delivery retried, or re-driven from a dead-letter queue) is history.
                TruckEvent::Hook {
                    payload:
                        HookPayload::PaymentLinkGenerated { .. } | HookPayload::PaymentInvoiceGenerated { .. },
                    ..
                } if self.stage == TruckStage::Issued && self.payment == Payment::Paid => Ignored(format!(
                    "{why}: the policy is paid and issued; a late payment request is history"
                )),
                // A payment asked for after any other end needs a person; the rest is MUST's history.
                TruckEvent::Hook {
                    payload:
                        HookPayload::PaymentLinkGenerated { .. } | HookPayload::PaymentInvoiceGenerated { .. },
                    ..
                } => Rejected(format!("{why}, yet MUST generated a payment request")),
                // Money MUST could only report after a payment request that was never made:
                // not MUST's history, a claim for a person to look at.
                TruckEvent::Hook {
                    payload: HookPayload::PolicyIsPaid { .. } | HookPayload::PolicyIssued { .. },
                    ..
                } if !self.payment_requested() => Rejected(format!(
                    "{why}, and no payment was requested, yet a hook says it was paid or issued"
                )),
                TruckEvent::Hook { .. } => Ignored(format!("{why}: history")),
                // An answer that crossed the end (a hook proved the call meanwhile): moot.
                TruckEvent::ReviewResolved { .. } => Ignored(format!("{why}: nothing is held")),
                // A correction that crossed the end: the bank has the process's last word.
                TruckEvent::DocumentsCorrected { .. } => {
                    Ignored(format!("{why}: the correction came too late"))
                }
                // A choice or correction that crossed the end: the bank is told, its event is not kept.
                TruckEvent::InsurerChosen { id, .. } | TruckEvent::RequestCorrected { id, .. } => {
                    let stage = workflow::stage_name(&self.stage, false);
                    self.refuse(id, "requestId", format!("the process has ended ({stage})"));
                    Advanced
                }
                TruckEvent::ChoiceOverdue { .. } => Ignored(format!("{why}: no choice is awaited")),
                TruckEvent::RecognitionOverdue { .. } => Ignored(format!("{why}: no recognition is awaited")),
                TruckEvent::RetryDue { .. } => Ignored(format!("{why}: no retry is awaited")),
                other if other.external_id().is_some() => Rejected(why),
                _ => Ignored(why),
            };
        }
        match event {
            TruckEvent::Initialized { scoring_id } if self.closed_scorings.contains(&scoring_id) => {
                Rejected(format!("{scoring_id} is a MUST process this request closed"))
            }
            TruckEvent::Initialized { scoring_id } => match &self.scoring_id {
                Some(existing) if *existing == scoring_id => Ignored("already initialized".into()),
                Some(existing) => Rejected(format!("already initialized as {existing}, not {scoring_id}")),
                None => {
                    self.scoring_id = Some(scoring_id);
                    self.stage = self.stage.max_with(TruckStage::Preparing);
                    Advanced
                }
            },
            TruckEvent::Hook { payload, .. } if self.scoring_id.is_none() => {
                Rejected(format!("hook {:?} before the process was initialized", payload.kind().path()))
            }
            TruckEvent::Hook { payload, received_at_ms, .. } => {
                self.proven_by(&payload, received_at_ms);
                let outcome = self.on_hook(payload, received_at_ms);
                if outcome == Advanced {
                    self.switch_if_chosen_dropped_out();
                }
                outcome
            }
            TruckEvent::DocumentsCorrected { documents, .. } => self.on_documents_corrected(documents),
            TruckEvent::PaymentOrderReceived { document, insurer, .. } => match self.payment {
                // After a switch, an order must say whose invoice it paid: one for the invoice
                // withdrawn must not pay the next insurer's.
                _ if !self.dropped_after_request.is_empty() && insurer.as_ref() != self.chosen.as_ref() => Rejected(format!(
                    "a payment order for {}, after {} dropped out and {} was chosen: whose invoice did it pay?",
                    insurer.as_ref().map_or_else(|| "no insurer named".to_owned(), ToString::to_string),
                    self.dropped_after_request.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                    self.chosen.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string),
                )),
                Payment::InvoiceReady { .. } | Payment::OrderSubmitted => {
                    self.payment = Payment::OrderSubmitting;
                    self.outbox.push(TruckEffect::SubmitPaymentOrder { document });
                    Advanced
                }
                _ => Rejected("payment order for a process with no invoice".into()),
            },
            TruckEvent::ReviewResolved { effect, attempt, resolution, .. } => {
                if !self.outbox.holds(&effect, attempt) {
                    return Ignored(format!(
                        "the answer is about {effect} attempt {attempt}, which is not held"
                    ));
                }
                let outcome = self.resolve(resolution, "an operator");
                if outcome == Advanced {
                    self.switch_if_chosen_dropped_out();
                }
                outcome
            }
            TruckEvent::InsurerChosen { id, insurer, method } => self.on_insurer_chosen(&id, insurer, method),
            TruckEvent::ChoiceOverdue { since_ms, .. } => {
                if self.stage != TruckStage::AwaitingChoice {
                    return Ignored("not waiting for the bank's choice".into());
                }
                if self.choice_reminded {
                    return Ignored("the bank was reminded of this wait already".into());
                }
                self.choice_reminded = true;
                let offers = self.approved_offers();
                self.notify(TruckNotice::ChoiceReminder { offers, waiting_since_ms: since_ms });
                Advanced
            }
            TruckEvent::RecognitionOverdue { .. } => {
                if self.stage != TruckStage::AwaitingRecognition || self.contract != Contract::NotSent {
                    return Ignored("not waiting for MUST's recognition".into());
                }
                // Recognition may still come: a pre-filled contract that overwrites ours gets
                // ours sent again (`on_contract_updated`).
                self.submit_contract(1);
                Advanced
            }
            TruckEvent::RequestCorrected { id, correction } => {
                if self.stage != TruckStage::AwaitingCorrection {
                    let stage = workflow::stage_name(&self.stage, false);
                    self.refuse(&id, "requestId", format!("no correction is awaited (stage {stage})"));
                    return Advanced;
                }
                match correction.applied_to(&self.request) {
                    Ok(request) => {
                        self.request = request;
                        self.corrections += 1;
                        self.restart();
                    }
                    Err(problems) => self.refuse_for(&id, problems),
                }
                Advanced
            }
            TruckEvent::RetryDue { .. } => {
                if self.stage != TruckStage::AwaitingRetry {
                    return Ignored("not waiting to retry".into());
                }
                self.retries += 1;
                self.restart();
                Advanced
            }
            TruckEvent::RetryArchive { .. } => match self.policy.as_ref() {
                Some(policy) if !policy.pending_files.is_empty() => {
                    // Only files MUST named can be tried again (not a policy issued with none).
                    let files: Vec<MustFile> = policy
                        .sources
                        .iter()
                        .filter(|f| policy.pending_files.iter().any(|p| p.blob_id == f.source_id()))
                        .cloned()
                        .collect();
                    if files.is_empty() {
                        return Ignored("MUST named no file to try again".into());
                    }
                    self.outbox.push(TruckEffect::ArchiveFiles { purpose: ArchivePurpose::Policy, files });
                    Advanced
                }
                _ => Ignored("no policy file is pending".into()),
            },
            TruckEvent::DocumentsSubmitted { round } => match self.documents {
                Documents::Submitting { round: r } if r == round => {
                    self.documents = Documents::Submitted { round };
                    Advanced
                }
                _ => Ignored(format!("documents round {round} is not the one in flight")),
            },
            TruckEvent::ContractSubmitted { round } => match self.contract {
                Contract::Submitting { round: r, acknowledged, overwritten } if r == round => {
                    if overwritten && round < CONTRACT_ROUNDS {
                        self.submit_contract(round + 1);
                    } else if acknowledged {
                        self.contract = Contract::Accepted { round };
                    } else {
                        self.contract = Contract::Submitted { round };
                    }
                    Advanced
                }
                _ => Ignored(format!("contract round {round} is not the one in flight")),
            },
            TruckEvent::PaymentRequested { insurer } => {
                if self.payment == Payment::Requesting && self.chosen.as_ref() == Some(&insurer) {
                    self.payment = Payment::Requested;
                    Advanced
                } else {
                    Ignored("no payment request in flight for that insurer".into())
                }
            }
            TruckEvent::PaymentRefused { insurer, error } => {
                if self.chosen.as_ref() != Some(&insurer) || self.is_paid_or_further() {
                    return Ignored("no payment request in flight for that insurer".into());
                }
                // Changelog v2: that insurer cannot be paid; the next approved offer can.
                self.record_offer(insurer.clone(), Offer::Failed { error: error.clone() });
                self.notify(TruckNotice::Offer {
                    insurer,
                    outcome: OfferOutcome::Failed,
                    premium: None,
                    error: Some(error),
                });
                self.decide()
            }
            TruckEvent::FilesArchived { purpose, files, pending } => {
                self.on_archived(purpose, files, pending)
            }
            TruckEvent::PaymentOrderSubmitted => match self.payment {
                Payment::OrderSubmitting => {
                    self.payment = Payment::OrderSubmitted;
                    Advanced
                }
                _ => Ignored("no payment order in flight".into()),
            },
            TruckEvent::EffectFailed { error, .. } => {
                self.fail(error);
                Advanced
            }
            TruckEvent::CallUncertain { effect, at_ms, detail } => {
                if !self.outbox.hold(&effect, at_ms, detail.clone()) {
                    return Ignored(format!("{effect} is not pending or a review is open"));
                }
                if self.acknowledged_already() {
                    // MUST's hook for it came first: the call reached MUST.
                    self.resolve(
                        Resolution::Happened { reference: None, number: None },
                        "an earlier hook from MUST",
                    );
                    return Advanced;
                }
                self.notify(TruckNotice::NeedsReview { effect, since_ms: at_ms, detail });
                Advanced
            }
        }
    }

    /// Whether the held call is our card, which MUST has already acknowledged. (Recognition
    /// overwriting the card proves nothing: it runs at its own pace, whether ours came or not.)
    fn acknowledged_already(&self) -> bool {
        matches!(
            (self.outbox.held(), &self.contract),
            (
                Some(TruckEffect::SubmitContract { round, .. }),
                Contract::Submitting { round: r, acknowledged: true, .. },
            ) if round == r
        )
    }

    /// Whether `acks` acknowledgements of our cards include one of the card in flight: one
    /// beyond the cards known to have reached MUST (a bare `update-completed` received after
    /// our next card went may still be the previous card's).
    fn acknowledges_the_card_in_flight(&self, acks: u32) -> bool {
        acks > self.outbox.calls_made(CALL_CONTRACT)
    }

    /// A hook that can only follow a held call, received after the call was made, proves
    /// that it happened.
    fn proven_by(&mut self, payload: &HookPayload, received_at_ms: u64) {
        let Some(held) = self.outbox.held() else { return };
        if received_at_ms != 0 && self.outbox.held_since().is_some_and(|since| received_at_ms < since) {
            return;
        }
        let proven = match (held, payload) {
            (
                TruckEffect::SubmitDocuments { .. },
                HookPayload::DocumentsUploadFailed { .. }
                | HookPayload::DocumentsUploadCompleted
                | HookPayload::ContractUpdateCompleted { prefilled_contract: Some(_) },
            ) => true,
            (
                TruckEffect::SubmitContract { .. },
                HookPayload::ContractUpdateCompleted { prefilled_contract: None },
            ) => self.acknowledges_the_card_in_flight(self.contract_acks + 1),
            // MUST scores once it has a card of ours, not necessarily the latest one (it may
            // start on the card recognition overwrote while our next is on its way).
            (TruckEffect::SubmitContract { round: 1, .. }, HookPayload::Started { .. }) => true,
            (
                TruckEffect::RequestPayment { .. },
                HookPayload::PaymentLinkGenerated { .. }
                | HookPayload::PaymentInvoiceGenerated { .. }
                | HookPayload::PolicyIsPaid { .. }
                | HookPayload::PolicyIssued { .. },
            ) => true,
            (
                TruckEffect::SubmitPaymentOrder { .. },
                HookPayload::PolicyIsPaid { .. } | HookPayload::PolicyIssued { .. },
            ) => true,
            _ => false,
        };
        if proven {
            self.resolve(Resolution::Happened { reference: None, number: None }, "a later hook from MUST");
        }
    }

    /// Lifts a review: the held call happened (its result is applied), or it did not (it is sent again).
    fn resolve(&mut self, resolution: Resolution, by: &str) -> Outcome {
        use Outcome::{Advanced, Rejected};
        let Some(held) = self.outbox.held().cloned() else {
            // Answered already (a later hook proved it, or another answer came first).
            return Outcome::Ignored("no call is held for review".into());
        };
        let reference = match resolution {
            Resolution::DidNotHappen => {
                self.outbox.record_resolution(false, by);
                self.outbox.release();
                return Advanced;
            }
            Resolution::Happened { reference, .. } => reference,
        };
        let result = match &held {
            TruckEffect::InitScoring { .. } => match reference.as_deref().map(ScoringId::parse) {
                Some(Ok(scoring_id)) => TruckEvent::Initialized { scoring_id },
                _ => return Rejected("init happened: give MUST's scoringId as the reference".into()),
            },
            TruckEffect::SubmitDocuments { round, .. } => TruckEvent::DocumentsSubmitted { round: *round },
            TruckEffect::SubmitContract { round, .. } => TruckEvent::ContractSubmitted { round: *round },
            TruckEffect::RequestPayment { insurer, .. } => {
                TruckEvent::PaymentRequested { insurer: insurer.clone() }
            }
            TruckEffect::SubmitPaymentOrder { .. } => TruckEvent::PaymentOrderSubmitted,
            TruckEffect::ArchiveFiles { .. } | TruckEffect::Notify(_) => {
                return Rejected("only calls that change something at MUST are held".into())
            }
        };
        self.outbox.record_resolution(true, by);
        self.outbox.complete(&held.key(), true);
        match self.transition(result) {
            Outcome::Rejected(why) => Rejected(why),
            _ => Advanced,
        }
    }

    /// After a held payment request is answered (by an operator, or proven by a hook, once
    /// that hook is applied): the chosen insurer dropped out while it was held (its request
    /// was kept for the answer), so the process goes to the next offer now.
    fn switch_if_chosen_dropped_out(&mut self) {
        let before = self.chosen.clone();
        self.drop_chosen_if_out();
        if before.is_some() && self.chosen.is_none() {
            self.decide();
        }
    }

    fn on_hook(&mut self, payload: HookPayload, received_at_ms: u64) -> Outcome {
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
                if self.contract == Contract::NotSent {
                    if self.prefilled_contract.is_some() {
                        // Recognition's contract came first: ours fills it in now.
                        self.submit_contract(1);
                    } else if self.stage == TruckStage::Preparing {
                        self.stage = TruckStage::AwaitingRecognition;
                    }
                }
                Advanced
            }
            HookPayload::ContractUpdateCompleted { prefilled_contract } => {
                self.on_contract_updated(prefilled_contract, received_at_ms);
                Advanced
            }
            HookPayload::Started { insurers } => {
                self.stage = self.stage.max_with(TruckStage::Scoring);
                // MUST scores once it has a card of ours: our first, if nothing overwrote it.
                match self.contract {
                    Contract::Submitting { round: 1, overwritten: false, .. } => {
                        self.contract =
                            Contract::Submitting { round: 1, acknowledged: true, overwritten: false };
                    }
                    Contract::Submitted { round: 1 } => self.contract = Contract::Accepted { round: 1 },
                    _ => {}
                }
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
            // The chosen insurer's payment deadline passed, unpaid: over, and no other
            // insurer is asked to be paid.
            HookPayload::CompanyFailed { insurer, code: PAYMENT_EXPIRED, message }
                if self.chosen.as_ref() == Some(&insurer) && self.payment_begun() =>
            {
                self.expire(ErrorReport::from_must(PAYMENT_EXPIRED, message.as_deref()));
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
            HookPayload::DraftIssued { files, .. } => {
                let new: Vec<MustFile> = files.into_iter().filter(|f| !self.drafts.contains(f)).collect();
                if new.is_empty() {
                    return Ignored("drafts already known".into());
                }
                self.drafts.extend(new.iter().cloned());
                self.outbox.push(TruckEffect::ArchiveFiles { purpose: ArchivePurpose::Draft, files: new });
                Advanced
            }
            HookPayload::PaymentLinkGenerated { url, insurer: named } => {
                let Some(insurer) = self.chosen.clone() else {
                    return Rejected("payment link for a process that requested none".into());
                };
                if let Some(wrong) = self.names_another_insurer(named.as_ref(), "a payment link") {
                    return Rejected(wrong);
                }
                if self.is_paid_or_further() {
                    return Ignored("already paid".into());
                }
                self.payment = Payment::LinkReady { url: url.clone() };
                self.notify(TruckNotice::PaymentLinkReady { insurer, url });
                Advanced
            }
            HookPayload::PaymentInvoiceGenerated { files, insurer: named } => {
                if self.chosen.is_none() {
                    return Rejected("invoice for a process that requested none".into());
                }
                if let Some(wrong) = self.names_another_insurer(named.as_ref(), "an invoice") {
                    return Rejected(wrong);
                }
                self.archive(ArchivePurpose::Invoice, files)
            }
            HookPayload::PolicyIsPaid { insurer: named } => {
                if !self.payment_requested() {
                    return Rejected("paid, yet no payment was requested".into());
                }
                if let Some(wrong) = self.names_another_insurer(named.as_ref(), "a payment") {
                    return Rejected(wrong);
                }
                if self.payment == Payment::Paid {
                    return Ignored("already paid".into());
                }
                // May come after `policy-issued` (MUST sends them close together): history, recorded.
                self.payment = Payment::Paid;
                if !self.stage.is_terminal() {
                    self.stage = self.stage.max_with(TruckStage::AwaitingPolicy);
                }
                self.notify(TruckNotice::Paid);
                Advanced
            }
            HookPayload::PolicyIssued { policy_number, files, insurer: named } => {
                if !self.payment_requested() {
                    return Rejected("policy issued, yet no payment was requested".into());
                }
                if let Some(wrong) = self.names_another_insurer(named.as_ref(), "a policy") {
                    return Rejected(wrong);
                }
                if self.policy.is_some() {
                    return Ignored("policy already issued".into());
                }
                // Issued after all (even after an error ended the process): the policy exists.
                self.error = None;
                self.stage = TruckStage::Archiving;
                self.policy = Some(IssuedPolicy {
                    number: policy_number,
                    sources: files.clone(),
                    files: Vec::new(),
                    pending_files: Vec::new(),
                });
                self.archive(ArchivePurpose::Policy, files)
            }
            HookPayload::Failed { code, message } => self.on_failed(code, message.as_deref()),
        }
    }

    /// Archives the files a hook named; with none polis can read, the invoice is ready or the
    /// policy issued all the same, its file pending and the bank told: never a wait for ever.
    fn archive(&mut self, purpose: ArchivePurpose, files: Vec<MustFile>) -> Outcome {
        if files.is_empty() {
            return self.on_archived(purpose, Vec::new(), vec![unnamed_file(purpose.name())]);
        }
        self.outbox.push(TruckEffect::ArchiveFiles { purpose, files });
        Outcome::Advanced
    }

    fn submit_contract(&mut self, round: u32) {
        if self.stage == TruckStage::AwaitingRecognition {
            self.stage = TruckStage::Preparing;
        }
        self.contract = Contract::Submitting { round, acknowledged: false, overwritten: false };
        self.outbox.push(TruckEffect::SubmitContract { round, scoring: self.scoring });
    }

    /// `contract/update-completed`: an acknowledgement of our card, or (changelog v3) the
    /// contract recognition pre-filled. Ours goes after recognition; a recognised contract
    /// that overwrote ours afterwards gets ours sent again, not silently kept.
    fn on_contract_updated(&mut self, prefilled: Option<Value>, received_at_ms: u64) {
        // Recognition received before our last card went out is older than that card: MUST
        // holds ours. (Recognition runs at its own pace; its hook may be applied after our call.)
        let after_our_last_card = self.outbox.calls_made_by(CALL_CONTRACT, received_at_ms)
            == self.outbox.calls_made(CALL_CONTRACT) as usize;
        let overridden = after_our_last_card
            && prefilled
                .as_ref()
                .is_some_and(|theirs| ContractCard::for_request(&self.request).is_overridden_by(theirs));
        if let Some(contract) = prefilled.clone() {
            self.prefilled_contract = Some(contract);
        }
        match self.contract.clone() {
            Contract::NotSent if prefilled.is_some() => self.submit_contract(1),
            // Recognition done, its contract not shown to us: ours goes now.
            Contract::NotSent if self.stage == TruckStage::AwaitingRecognition => self.submit_contract(1),
            Contract::NotSent => {}
            // Hooks that overtook the answer to our call: noted for when it comes.
            Contract::Submitting { round, .. } if prefilled.is_none() => {
                self.contract_acks += 1;
                if self.acknowledges_the_card_in_flight(self.contract_acks) {
                    self.contract = Contract::Submitting { round, acknowledged: true, overwritten: false };
                }
            }
            Contract::Submitting { round, acknowledged, .. } if overridden => {
                self.contract = Contract::Submitting { round, acknowledged, overwritten: true };
            }
            Contract::Submitting { .. } => {}
            Contract::Submitted { round } | Contract::Accepted { round }
                if overridden && round < CONTRACT_ROUNDS =>
            {
                self.submit_contract(round + 1)
            }
            Contract::Submitted { round } => {
                self.contract_acks += u32::from(prefilled.is_none());
                self.contract = Contract::Accepted { round };
            }
            Contract::Accepted { .. } => self.contract_acks += u32::from(prefilled.is_none()),
        }
    }

    fn on_archived(
        &mut self,
        purpose: ArchivePurpose,
        files: Vec<ArchivedFile>,
        pending: Vec<PendingFile>,
    ) -> Outcome {
        match purpose {
            ArchivePurpose::Draft => {
                self.draft_files.extend(files);
                Outcome::Advanced
            }
            ArchivePurpose::Invoice => {
                let Some(insurer) = self.chosen.clone() else {
                    return Outcome::Rejected("invoice archived with no insurer chosen".into());
                };
                if self.is_paid_or_further() {
                    return Outcome::Ignored("already paid".into());
                }
                self.payment = Payment::InvoiceReady { files: files.clone() };
                self.notify(TruckNotice::InvoiceReady { insurer, files, pending_files: pending });
                Outcome::Advanced
            }
            ArchivePurpose::Policy => {
                let Some(policy) = self.policy.as_mut() else {
                    return Outcome::Rejected("policy archived before it was issued".into());
                };
                let retried: Vec<&str> = files.iter().map(|f| f.blob_id.as_str()).collect();
                policy.files.retain(|f| !retried.contains(&f.blob_id.as_str()));
                policy.files.extend(files);
                policy.pending_files = pending;
                let notice = TruckNotice::PolicyIssued {
                    insurer: self.chosen.clone(),
                    policy_number: policy.number.clone(),
                    files: policy.files.clone(),
                    pending_files: policy.pending_files.clone(),
                    drafts: self.draft_files.clone(),
                };
                self.stage = TruckStage::Issued;
                self.notify(notice);
                Outcome::Advanced
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
        self.outbox.push(TruckEffect::SubmitDocuments { round, type_ids });
        Outcome::Advanced
    }

    fn on_documents_corrected(&mut self, corrected: Vec<BankDocument>) -> Outcome {
        if matches!(self.documents, Documents::Accepted) {
            return Outcome::Ignored("documents already accepted".into());
        }
        let mut fixed_types: Vec<u32> = corrected.iter().map(|d| d.type_id).collect();
        fixed_types.sort_unstable();
        fixed_types.dedup();
        // A corrected type's files replace all of that type's (both sides of an STS, say).
        self.request.documents.retain(|d| !fixed_types.contains(&d.type_id));
        self.request.documents.extend(corrected);
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
        self.stage = self.stage.max_with(TruckStage::Scoring);
        self.offers.insert(insurer, offer);
        self.drop_chosen_if_out();
    }

    /// The chosen insurer dropped out before payment (e.g. 1502/1602, a later rejection, or
    /// payment refused with 403): its link or invoice, if the bank has it, is withdrawn
    /// before anything else, and the process goes back to the offers (`decide` follows).
    /// A payment request held for review stays held: the switch waits for the answer.
    fn drop_chosen_if_out(&mut self) {
        let Some(insurer) = self.chosen.clone() else { return };
        let out = !matches!(self.offers.get(&insurer), Some(Offer::Approved { .. }));
        let held = matches!(self.outbox.held(), Some(TruckEffect::RequestPayment { .. }));
        if !out || held || self.is_paid_or_further() {
            return;
        }
        let reason = match self.offers.get(&insurer) {
            Some(Offer::Rejected { reason }) => {
                format!("{insurer} rejected{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())
            }
            Some(Offer::Failed { error }) => format!("{insurer} failed: {} {}", error.code, error.message),
            _ => format!("{insurer} dropped out"),
        };
        let payment = std::mem::replace(&mut self.payment, Payment::NotRequested);
        // Requesting: the request was refused, or did not happen (an operator said so).
        if !matches!(payment, Payment::NotRequested | Payment::Requesting) {
            self.dropped_after_request.push(insurer.clone());
        }
        let withdrawn = match payment {
            Payment::LinkReady { url } => Some((Some(url), Vec::new())),
            Payment::InvoiceReady { files } => Some((None, files)),
            _ => None,
        };
        if let Some((url, invoice_files)) = withdrawn {
            self.notify(TruckNotice::PaymentLinkWithdrawn {
                insurer: insurer.clone(),
                url,
                invoice_files,
                reason,
            });
        }
        self.chosen = None;
        self.stage = TruckStage::Scoring;
        // Its payment request, and its invoice not archived yet: neither may become the next one's.
        self.outbox.retain(|e| {
            !matches!(
                e,
                TruckEffect::RequestPayment { .. }
                    | TruckEffect::ArchiveFiles { purpose: ArchivePurpose::Invoice, .. }
            )
        });
    }

    /// Whether a payment was requested for the chosen insurer (or may have been: the request
    /// is held for review). A hook that says the customer paid, or that the policy is issued,
    /// is believed only then.
    fn payment_requested(&self) -> bool {
        let held = matches!(self.outbox.held(), Some(TruckEffect::RequestPayment { .. }));
        (self.chosen.is_some() && !matches!(self.payment, Payment::NotRequested | Payment::Requesting))
            || held
    }

    /// Why a hook about paying names the wrong insurer, if it does: MUST names one when it
    /// can use several (changelog v2), and it must be the one chosen. A link or invoice that
    /// names none, after a chosen insurer dropped out, may be that insurer's: kept too.
    fn names_another_insurer(&self, named: Option<&Insurer>, what: &str) -> Option<String> {
        let link_or_invoice = matches!(what, "a payment link" | "an invoice");
        let Some(named) = named else {
            return (link_or_invoice && !self.dropped_after_request.is_empty()).then(|| {
                let dropped: Vec<String> =
                    self.dropped_after_request.iter().map(ToString::to_string).collect();
                format!(
                    "{what} naming no insurer, after {} dropped out: it may be theirs",
                    dropped.join(", ")
                )
            });
        };
        match &self.chosen {
            Some(chosen) if chosen == named => None,
            Some(chosen) => Some(format!("{what} for {named}, but {chosen} is the insurer chosen")),
            None => Some(format!("{what} for {named}, but no insurer is chosen")),
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
        let by_bank = self.request.choice == InsurerChoice::Bank;
        let choice = preferred.filter(|_| !by_bank).or_else(|| {
            if any_pending || by_bank {
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
        let any_approved = self.offers.values().any(approved);
        match choice {
            Some(insurer) => self.choose(insurer),
            // `"choice": "bank"`: every insurer has answered, and the bank chooses.
            None if by_bank && !any_pending && any_approved => self.await_choice(),
            None if !any_pending && !self.offers.is_empty() => {
                let payment_refusals: Vec<&ErrorReport> = self
                    .offers
                    .values()
                    .filter_map(|o| match o {
                        Offer::Failed { error } if error.code == PAYMENT_REFUSED => Some(error),
                        _ => None,
                    })
                    .collect();
                if let Some(last) = payment_refusals.last() {
                    // Approved, but no approved insurer could be paid: that is a failure, with its reason.
                    let error = (*last).clone();
                    self.fail(error);
                } else {
                    self.stage = TruckStage::Rejected;
                    self.outbox.drop_work();
                    self.notify(TruckNotice::Rejected);
                }
            }
            None => {}
        }
        Outcome::Advanced
    }
}

impl TruckProcess {
    /// The chosen insurer's payment is requested (step 6): a changing call, sent once.
    fn choose(&mut self, insurer: Insurer) {
        self.payment_decided = true;
        self.chosen = Some(insurer.clone());
        self.stage = TruckStage::AwaitingPayment;
        self.payment = Payment::Requesting;
        self.outbox.push(TruckEffect::RequestPayment { insurer, method: self.request.payment.method });
    }

    /// Waits for the bank's choice: a new wait (and its reminder) unless one is under way.
    fn await_choice(&mut self) {
        if self.stage != TruckStage::AwaitingChoice {
            self.stage = TruckStage::AwaitingChoice;
            self.choice_reminded = false;
        }
    }

    /// The approved offers, cheapest first.
    pub fn approved_offers(&self) -> Vec<ApprovedOffer> {
        let mut offers: Vec<ApprovedOffer> = self
            .offers
            .iter()
            .filter_map(|(insurer, o)| match o {
                Offer::Approved { premium } => {
                    Some(ApprovedOffer { insurer: insurer.clone(), premium: *premium })
                }
                _ => None,
            })
            .collect();
        offers.sort_by(|a, b| {
            let price = |o: &ApprovedOffer| o.premium.unwrap_or(f64::INFINITY);
            price(a).total_cmp(&price(b)).then_with(|| a.insurer.cmp(&b.insurer))
        });
        offers
    }

    /// Tells the bank its event cannot be taken (`truck.request-invalid`); the process waits on.
    fn refuse(&mut self, event_id: &str, field: &str, problem: String) {
        self.refuse_for(event_id, vec![FieldError { field: field.to_owned(), problem }]);
    }

    fn refuse_for(&mut self, event_id: &str, problems: Vec<FieldError>) {
        self.notify(TruckNotice::RequestInvalid { rejected_event_id: event_id.to_owned(), problems });
    }

    /// The bank's choice, checked against the approved offers: taken (the payment is
    /// requested), or refused with `truck.request-invalid` naming the field at fault. Applied
    /// either way, so a redelivery of the same event is a duplicate.
    fn on_insurer_chosen(
        &mut self,
        event_id: &str,
        insurer: Insurer,
        method: Option<PaymentMethod>,
    ) -> Outcome {
        if self.request.choice != InsurerChoice::Bank {
            self.refuse(
                event_id,
                "type",
                "this request's insurer is chosen by polis (its \"choice\" is not \"bank\")".into(),
            );
            return Outcome::Advanced;
        }
        let method_wanted = method.unwrap_or(self.request.payment.method);
        if let Some(chosen) = &self.chosen {
            if *chosen == insurer && method_wanted == self.request.payment.method {
                return Outcome::Ignored(format!("{insurer} is chosen already"));
            }
            let problem =
                format!("{chosen} was chosen already and its payment requested; it cannot be changed");
            let field = if *chosen == insurer { "paymentMethod" } else { "insurer" };
            self.refuse(event_id, field, problem);
            return Outcome::Advanced;
        }
        let mut p = Problems::default();
        let approved: Vec<String> = self.approved_offers().iter().map(|o| o.insurer.to_string()).collect();
        let listed = if approved.is_empty() { "none yet".to_owned() } else { approved.join(", ") };
        match self.offers.get(&insurer) {
            Some(Offer::Approved { .. }) => {}
            Some(other) => {
                let state = match other {
                    Offer::Pending => "is still scoring",
                    Offer::Rejected { .. } => "rejected",
                    _ => "failed",
                };
                p.add("insurer", format!("{insurer} {state}; approved offers: {listed}"));
            }
            None => p.add("insurer", format!("{insurer} has made no offer; approved offers: {listed}")),
        }
        p.check(
            method_wanted == PaymentMethod::Link || self.request.policyholder.kind == PartyKind::LegalEntity,
            "paymentMethod",
            "invoice payment is for legal entities only",
        );
        if let Err(problems) = p.into_result() {
            self.refuse_for(event_id, problems);
            return Outcome::Advanced;
        }
        self.request.payment.method = method_wanted;
        self.choose(insurer);
        Outcome::Advanced
    }
}

/// The code of a payment MUST refused for an insurer (changelog v2: HTTP 403).
pub const PAYMENT_REFUSED: &str = "must-payment-refused";

impl Workflow for TruckProcess {
    type Event = TruckEvent;
    type Effect = TruckEffect;

    fn apply(&mut self, event: TruckEvent) -> Outcome {
        TruckProcess::apply(self, event)
    }
    fn outbox(&self) -> &Outbox<TruckEffect> {
        &self.outbox
    }
    fn outbox_mut(&mut self) -> &mut Outbox<TruckEffect> {
        &mut self.outbox
    }
    fn history(&self) -> &History {
        &self.history
    }
    fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }
    fn stage_name(&self) -> String {
        workflow::stage_name(&self.stage, self.outbox.review().is_some())
    }
    fn is_terminal(&self) -> bool {
        self.stage.is_terminal()
    }
    fn received(event: &TruckEvent) -> Option<Received<'_>> {
        let (from, kind, at_ms) = match event {
            TruckEvent::Hook { payload, received_at_ms, .. } => {
                ("must", payload.kind().path(), *received_at_ms)
            }
            TruckEvent::DocumentsCorrected { .. } => ("bank", "truck.documents-corrected", 0),
            TruckEvent::PaymentOrderReceived { .. } => ("bank", "truck.payment-order", 0),
            TruckEvent::ReviewResolved { .. } => ("operator", "review-resolved", 0),
            TruckEvent::RetryArchive { .. } => ("operator", "retry-archive", 0),
            TruckEvent::InsurerChosen { .. } => ("bank", "truck.insurer-chosen", 0),
            TruckEvent::ChoiceOverdue { .. } => ("watchdog", "choice-overdue", 0),
            TruckEvent::RecognitionOverdue { .. } => ("watchdog", "recognition-overdue", 0),
            TruckEvent::RequestCorrected { .. } => ("bank", "truck.request-corrected", 0),
            TruckEvent::RetryDue { .. } => ("watchdog", "retry-due", 0),
            _ => return None,
        };
        Some(Received { from, kind, id: event.external_id()?, at_ms })
    }
    fn effect_failed(effect: &TruckEffect, error: ErrorReport) -> TruckEvent {
        match effect {
            // Changelog v2: this insurer cannot be paid (a refusal: nothing changed at MUST).
            TruckEffect::RequestPayment { insurer, .. } if error.code == PAYMENT_REFUSED => {
                TruckEvent::PaymentRefused { insurer: insurer.clone(), error }
            }
            _ => TruckEvent::EffectFailed { effect: effect.key(), error },
        }
    }
    fn effect_uncertain(effect: &str, at_ms: u64, detail: String) -> TruckEvent {
        TruckEvent::CallUncertain { effect: effect.to_owned(), at_ms, detail }
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
