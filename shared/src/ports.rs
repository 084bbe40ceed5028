//! The interfaces the services need from the outside world. Adapters in
//! [`crate::adapters`] implement them over DynamoDB, SQS, S3 and HTTP.

use std::future::Future;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::clock::now_ms;
use crate::domain::ids::{CustomerId, ProcessId, ScoringId};
use crate::domain::must::hook::HookKind;
use crate::domain::truck::process::TruckEvent;
use crate::keys::{Cursor, ProcessKey};

/// A failure of our own infrastructure (DynamoDB, SQS, S3): always worth a retry.
#[derive(Debug, Error)]
pub enum InfraError {
    #[error("{service} call failed: {message}")]
    Call { service: &'static str, message: String },
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
}

impl InfraError {
    pub fn call(service: &'static str, err: impl std::fmt::Display) -> InfraError {
        InfraError::Call { service, message: err.to_string() }
    }
}

/// A hook as received: raw body kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedHook {
    pub scoring_id: ScoringId,
    pub kind: HookKind,
    /// `webhook-id` when MUST sends one, else a digest of scoringId, kind and body.
    pub hook_id: String,
    /// The id was derived from the content (MUST sent no delivery id).
    #[serde(default)]
    pub by_content: bool,
    pub body: String,
    pub received_at_ms: u64,
    /// How many times an operator has replayed this hook (kept again under the next number).
    #[serde(default)]
    pub replays: u32,
    /// When an operator's replay queued it again (0: never). `received_at_ms` stays when our
    /// intake received it (what proves a call, and tells a repeat); the wait for a scoringId
    /// we do not know yet counts from here.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requeued_at_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ReceivedHook {
    /// Since when the hook has been waiting on the queue.
    pub fn queued_at_ms(&self) -> u64 {
        self.received_at_ms.max(self.requeued_at_ms)
    }

    /// The SHA-256 of the body (hex): what a hook's record keeps to show which body came.
    pub fn body_digest(&self) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(self.body.as_bytes()))
    }

    /// The hook without its body, as its stored record names it.
    pub fn reference(&self) -> HookRef {
        HookRef {
            scoring_id: self.scoring_id.clone(),
            kind: self.kind,
            hook_id: self.hook_id.clone(),
            by_content: self.by_content,
            received_at_ms: self.received_at_ms,
            replays: self.replays,
            requeued_at_ms: self.requeued_at_ms,
        }
    }
}

/// A stored hook named without its body: what goes on the queue when the hook with its
/// body would not fit there (the runner reads the body from the hook's record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRef {
    pub scoring_id: ScoringId,
    pub kind: HookKind,
    pub hook_id: String,
    #[serde(default)]
    pub by_content: bool,
    pub received_at_ms: u64,
    #[serde(default)]
    pub replays: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requeued_at_ms: u64,
}

impl HookRef {
    /// How the hook is kept for a person (`check`: the intake check that kept it, if one did).
    pub fn kept(&self, check: Option<IntakeCheck>) -> KeptOrigin {
        KeptOrigin::Hook {
            kind: self.kind,
            scoring_id: self.scoring_id.clone(),
            hook_id: self.hook_id.clone(),
            by_content: self.by_content,
            replays: self.replays,
            check,
        }
    }

    pub fn with_body(self, body: String) -> ReceivedHook {
        ReceivedHook {
            scoring_id: self.scoring_id,
            kind: self.kind,
            hook_id: self.hook_id,
            by_content: self.by_content,
            body,
            received_at_ms: self.received_at_ms,
            replays: self.replays,
            requeued_at_ms: self.requeued_at_ms,
        }
    }
}

/// The largest message (in bytes, as sent) polis puts on its queues: every queue's
/// `MaximumMessageSize` in the template (a test keeps them equal). SQS would take up to
/// 1 MiB; 256 KiB keeps a batch of ten inside a Lambda invocation's 6 MB payload.
pub const QUEUE_MESSAGE_LIMIT: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
    /// The delivery id was first used for another scoringId or hook: a replay of a
    /// signed delivery onto another path (the signature does not cover the path).
    UsedElsewhere,
}

/// A check the hook intake applies to an authenticated hook that only a person may
/// override: the hook may be genuine, and yet must not reach its process unseen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntakeCheck {
    /// A payment link to a host that is not one of `PaymentLinkHosts`, or not over https.
    PaymentLinkHost,
    /// A body naming another scoringId than its path (a signed hook replayed elsewhere).
    NamesAnotherScoring,
    /// A signed delivery whose `webhook-id` polis cannot use as an id.
    WebhookId,
    /// A delivery whose `webhook-id` was first used for another scoringId or hook (a signed
    /// delivery replayed onto another path, or MUST reusing an id).
    DeliveryIdUsedElsewhere,
}

/// Where something kept for a person came from, and what replaying it means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum KeptOrigin {
    /// A hook we could not process (replay: stored and queued again). `check` names the
    /// intake check it failed, when that is why it was kept: only a person re-drives it,
    /// by its id, with a reason that is recorded.
    Hook {
        kind: HookKind,
        scoring_id: ScoringId,
        hook_id: String,
        by_content: bool,
        replays: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<IntakeCheck>,
    },
    /// An authenticated hook whose path names no scoringId a process could have (kept, as
    /// sent, cut to 128 characters; never re-driven: a person tells MUST).
    UnroutedHook { kind: HookKind, scoring_id: String },
    /// A bank event we could not accept (replay: put back on the bank-events queue).
    BankEvent { event_id: String, event_type: String },
    /// An event a process rejected (replay: queued to the process again).
    #[serde(rename = "process-event")]
    Event { process: ProcessKey, event_id: String, replays: u32 },
    /// A call whose outcome is unknown: the process is held until an operator resolves it.
    Review { process: ProcessKey, effect: String, attempt: u32 },
    /// Files an issued policy has that could not be archived (replay: archived again);
    /// `attempt` is the archive attempt that gave up.
    ArchivePending { process: ProcessKey, attempt: u32 },
}

impl KeptOrigin {
    pub fn source(&self) -> &'static str {
        match self {
            KeptOrigin::Hook { .. } | KeptOrigin::UnroutedHook { .. } => "hook",
            KeptOrigin::BankEvent { .. } => "bank-event",
            KeptOrigin::Event { .. } => "process-event",
            KeptOrigin::Review { .. } => "review",
            KeptOrigin::ArchivePending { .. } => "archive-pending",
        }
    }

    /// What the item is about, for a person's list: the process (and the held attempt),
    /// the hook's scoringId and path, the bank event's type and id.
    pub fn about(&self) -> String {
        match self {
            KeptOrigin::Hook { kind, scoring_id, .. } => format!("scoringId {scoring_id} {}", kind.path()),
            KeptOrigin::UnroutedHook { kind, .. } => format!("an unusable scoringId, {}", kind.path()),
            KeptOrigin::BankEvent { event_id, event_type } => format!("{event_type} {event_id}"),
            KeptOrigin::Event { process, event_id, .. } => format!("{process} {event_id}"),
            KeptOrigin::Review { process, effect, attempt } => {
                format!("{process} {effect} attempt {attempt}")
            }
            KeptOrigin::ArchivePending { process, .. } => process.to_string(),
        }
    }

    /// Whether the item holds raw input from outside (which may carry personal data and
    /// expires after the configured days), rather than a hold or a pending file, which
    /// stay until a person acts.
    pub fn holds_input(&self) -> bool {
        matches!(
            self,
            KeptOrigin::Hook { .. }
                | KeptOrigin::UnroutedHook { .. }
                | KeptOrigin::BankEvent { .. }
                | KeptOrigin::Event { .. }
        )
    }

    /// The kept record's id: the same input kept again is the same record; a replayed
    /// input that fails again is kept under its next replay number.
    fn record_id(&self, body: &str) -> String {
        let digest = |text: &str| {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(text.as_bytes()))[..24].to_owned()
        };
        match self {
            KeptOrigin::Hook { kind, scoring_id, hook_id, replays, .. } => {
                format!("hook-{scoring_id}-{}-{}-r{replays}", kind.path().replace('/', "-"), digest(hook_id))
            }
            KeptOrigin::UnroutedHook { kind, scoring_id } => format!(
                "hook-unrouted-{}-{}",
                kind.path().replace('/', "-"),
                digest(&format!("{scoring_id}\n{body}"))
            ),
            // A refused bank event may name no usable id: the same body is the same event.
            KeptOrigin::BankEvent { .. } => format!("bank-event-{}", digest(body)),
            KeptOrigin::Event { process, event_id, replays } => {
                format!("process-event-{}-r{replays}", digest(&format!("{process}\n{event_id}")))
            }
            KeptOrigin::Review { process, effect, attempt } => {
                format!("review-{}-a{attempt}", digest(&format!("{process}\n{effect}")))
            }
            KeptOrigin::ArchivePending { process, attempt } => {
                format!("archive-pending-{}-a{attempt}", digest(&process.to_string()))
            }
        }
    }
}

/// Something kept for a person: input we could not process (raw, with why), a call
/// held for review, files not archived. Listed and replayed by the operator's command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quarantined {
    pub id: String,
    pub origin: KeptOrigin,
    pub reason: String,
    /// The raw input, verbatim (empty for reviews and pending archives).
    pub body: String,
    pub received_at_ms: u64,
}

/// The most of an input's text a kept item holds, in UTF-8 bytes as stored: with the
/// item's other fields, well inside DynamoDB's 400 KB item limit whatever the input (a
/// body that is not UTF-8 grows up to threefold when made text), so keeping can never
/// fail for size and block the hook stream behind it.
pub const MAX_KEPT_BODY: usize = 200 * 1024;

/// The most of a reason a kept item holds, in UTF-8 bytes: reasons name fields and codes,
/// never whole answers; a longer one is cut (so the item's size stays bounded).
pub const MAX_KEPT_REASON: usize = 2 * 1024;

impl Quarantined {
    pub fn new(origin: KeptOrigin, mut reason: String, mut body: String, at_ms: u64) -> Quarantined {
        if reason.len() > MAX_KEPT_REASON {
            let cut = (0..=MAX_KEPT_REASON).rev().find(|&at| reason.is_char_boundary(at)).unwrap_or(0);
            reason.truncate(cut);
            reason.push('…');
        }
        if body.len() > MAX_KEPT_BODY {
            let cut = (0..=MAX_KEPT_BODY).rev().find(|&at| body.is_char_boundary(at)).unwrap_or(0);
            reason = format!("{reason} (the first {cut} of {} bytes kept)", body.len());
            body.truncate(cut);
        }
        Quarantined { id: origin.record_id(&body), origin, reason, body, received_at_ms: at_ms }
    }
}

/// What flows on the process FIFO queue; MessageGroupId keeps each process in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "kebab-case")]
pub enum TruckMessage {
    /// A stored hook, to apply to the process that owns its scoringId.
    Hook(ReceivedHook),
    /// A stored hook whose message with its body would pass [`QUEUE_MESSAGE_LIMIT`]: its
    /// body is read from its record.
    StoredHook(HookRef),
    /// Apply a bank's (or an operator's, or the watchdog's) event to a process.
    BankEvent {
        process_id: ProcessId,
        event: TruckEvent,
        /// How many times an operator has replayed this event.
        #[serde(default)]
        replays: u32,
    },
    /// Perform whatever the process has pending (sent when a process is created).
    Drive { process_id: ProcessId },
}

/// What flows on the loan FIFO queue (MessageGroupId = the loan number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "kebab-case")]
pub enum LoanMessage {
    /// Perform whatever the loan's insurance has pending.
    Drive { loan_number: String },
    /// Apply an operator's event (a review resolved, an archive retried), then drive.
    Event { loan_number: String, event: crate::domain::loan::process::LoanEvent },
}

/// A process with the version it was read at (for optimistic concurrency).
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// What earlier attempts left of an insurer call's intent record. The call's result
/// is kept in the process record, written right after the call; an intent without
/// that write means the attempt died, or is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectRecord {
    /// No attempt before this one.
    Fresh,
    /// An earlier attempt, started at `started_ms`, longer than the lease ago, never
    /// recorded a result (it died): its outcome is unknown, and this attempt has taken over.
    Retaken { started_ms: u64 },
    /// Another attempt started within the lease and may still be running.
    InFlight,
}

#[derive(Debug, Error)]
pub enum SaveError {
    #[error("the process changed since it was read")]
    Conflict,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// What a hook's record keeps of its body. A body carries personal data: a record keeps its
/// digest, and the body itself only when the queue's message refers to the record instead of
/// carrying the body (otherwise the body lives on in the message and the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookBody {
    Digest,
    Kept,
}

pub trait HookStore {
    /// Stores a hook once; a second delivery of the same hook is `Duplicate`, and its
    /// delivery id used again for another scoringId or hook is `UsedElsewhere`.
    fn record_hook(
        &self,
        hook: &ReceivedHook,
        body: HookBody,
    ) -> impl Future<Output = Result<Recorded, InfraError>> + Send;
    /// The body of a recorded hook (`None` when no record is found: it expired, or never was).
    fn hook_body(&self, hook: &HookRef) -> impl Future<Output = Result<Option<String>, InfraError>> + Send;
}

pub trait QuarantineStore {
    /// Keeps `item` unless a record with its id is kept already; `true` when new.
    fn quarantine(&self, item: &Quarantined) -> impl Future<Output = Result<bool, InfraError>> + Send;
    fn list_quarantined(&self) -> impl Future<Output = Result<Vec<Quarantined>, InfraError>> + Send;
    fn release(&self, id: &str) -> impl Future<Output = Result<(), InfraError>> + Send;
}

/// A process as the store keeps it: its state under its key, with a version.
pub trait StoredProcess: serde::Serialize + serde::de::DeserializeOwned + Send + Sync {
    /// The product line, for logs and metrics: `truck` or `loan`.
    fn kind(&self) -> &'static str;
    /// The record's key.
    fn key(&self) -> ProcessKey;
    /// Other keys that must lead to this record (e.g. the scoringId's alias).
    fn aliases(&self) -> Vec<String>;
    /// Attributes stored beside the state for the indexes (`gsi1pk`, `gsi1sk`, `stage`, ...).
    fn index(&self) -> Vec<(&'static str, String)>;
    /// The insurer, for metrics (`none` before one is chosen).
    fn insurer(&self) -> String;
    /// When the process ended (issued, rejected, failed, expired); `None` while it runs.
    fn ended_at_ms(&self) -> Option<u64>;
}

pub trait ProcessStore {
    fn load<P: StoredProcess>(
        &self,
        key: &ProcessKey,
    ) -> impl Future<Output = Result<Option<Versioned<P>>, InfraError>> + Send;
    /// Creates the process unless it exists; `false` when it already did.
    fn create<P: StoredProcess>(&self, process: &P) -> impl Future<Output = Result<bool, InfraError>> + Send;
    /// Writes the process if it is still at `expected_version`; returns the new version.
    /// `new_aliases` are pointed at the process in the same transaction.
    fn save<P: StoredProcess>(
        &self,
        process: &P,
        expected_version: u64,
        new_aliases: &[String],
    ) -> impl Future<Output = Result<u64, SaveError>> + Send;
    /// The process an alias leads to.
    fn resolve_alias(
        &self,
        alias: &str,
    ) -> impl Future<Output = Result<Option<ProcessKey>, InfraError>> + Send;
}

pub trait EffectLog {
    /// Records the intent to perform `key` and says what earlier attempts left.
    /// An unfinished attempt older than `lease_ms` is taken over.
    fn begin(
        &self,
        process: &ProcessKey,
        intent: &str,
        lease_ms: u64,
    ) -> impl Future<Output = Result<EffectRecord, InfraError>> + Send;
}

pub trait TruckQueue {
    fn enqueue(
        &self,
        message: &TruckMessage,
        group: &str,
        dedup_id: &str,
    ) -> impl Future<Output = Result<(), InfraError>> + Send;
}

pub trait LoanQueue {
    fn enqueue(
        &self,
        message: &LoanMessage,
        group: &str,
        dedup_id: &str,
    ) -> impl Future<Output = Result<(), InfraError>> + Send;
}

pub trait BankOutbox {
    /// Sends one notice (truck or loan) to the bank.
    fn publish<N: serde::Serialize + Sync>(
        &self,
        notification: &N,
    ) -> impl Future<Output = Result<(), InfraError>> + Send;
}

/// A file kept in S3 with its SHA-256 in the object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    pub sha256: Option<String>,
}

pub trait ObjectStore {
    fn get(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Vec<u8>, InfraError>> + Send;
    /// Writes the object unless `key` already holds one; then answers what is there.
    fn put_new(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        sha256: &str,
    ) -> impl Future<Output = Result<Option<StoredObject>, InfraError>> + Send;
}

/// How a call to a partner failed: what the partner may have done decides what we may do next.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CallError {
    /// The request surely did not reach the partner (connection refused, DNS, TLS, a
    /// token we could not get), or the partner says it processed nothing (429, 408, a
    /// 401 with a fresh token): safe to send again.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The partner may have processed it: a timeout, a 5xx, a reset or a redirect
    /// after the request was written, an unreadable success answer.
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
    /// The partner refused the request; retrying will not help.
    #[error("refused with HTTP {status}: {message}")]
    Refused { status: u16, code: Option<u32>, message: String },
    /// The partner answered, and the answer cannot be used (a file over the size cap,
    /// a body we cannot read where it is required); retrying will not help.
    #[error("unusable answer: {0}")]
    Unusable(String),
}

impl CallError {
    /// Worth another try of a call that changes nothing at the partner.
    pub fn is_transient(&self) -> bool {
        matches!(self, CallError::NotSent(_) | CallError::Ambiguous(_))
    }
}

impl From<InfraError> for CallError {
    fn from(e: InfraError) -> CallError {
        CallError::NotSent(e.to_string())
    }
}

/// A file downloaded from a partner, and the type it said it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

/// MUST's partner API, as the truck runner uses it. `idempotency_key` is sent as
/// `Idempotency-Key`: MUST's documents promise nothing for it, so we never rely on it
/// unless MUST confirms in writing (`MustHonoursIdempotencyKey`).
pub trait MustApi {
    fn init(
        &self,
        request: &crate::domain::must::api::InitRequest,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<ScoringId, CallError>> + Send;
    fn upload_blob(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<crate::domain::ids::BlobId, CallError>> + Send;
    fn associate_documents(
        &self,
        scoring_id: &ScoringId,
        request: &crate::domain::must::api::DocumentsRequest,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    /// The contract card as JSON (ours over what recognition pre-filled).
    fn submit_contract(
        &self,
        scoring_id: &ScoringId,
        card: &serde_json::Value,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    fn request_payment(
        &self,
        scoring_id: &ScoringId,
        method: crate::domain::truck::bank::PaymentMethod,
        request: &crate::domain::must::api::PaymentRequest,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    fn submit_payment_order(
        &self,
        scoring_id: &ScoringId,
        request: &crate::domain::must::api::PaymentOrderRequest,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    /// A file MUST has for us, read up to `max_bytes` (over that, or a link polis does not
    /// follow: `Unusable`).
    fn download(
        &self,
        file: &crate::domain::must::files::MustFile,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Download, CallError>> + Send;
}

/// Where the MUST token is shared between containers (one token, reused until it expires).
pub trait TokenStore {
    fn load_token(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<(String, u64)>, InfraError>> + Send;
    fn save_token(
        &self,
        name: &str,
        token: &str,
        expires_at_ms: u64,
    ) -> impl Future<Output = Result<(), InfraError>> + Send;
}

/// BIMA's API, as the credit-life runner uses it.
pub trait BimaApi {
    fn calculate(
        &self,
        request: &crate::domain::bima::api::CalcRequest,
    ) -> impl Future<Output = Result<crate::domain::bima::api::Calculation, CallError>> + Send;
    fn sell(
        &self,
        request: &crate::domain::bima::sale::SaleRequest,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<crate::domain::bima::api::SaleAccepted, CallError>> + Send;
    fn print_link(
        &self,
        request: &crate::domain::bima::api::PrintLinkRequest,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<crate::domain::bima::api::PrintLink, CallError>> + Send;
    /// The print form behind a link (redirects followed), when the link and every
    /// redirect are on hosts we trust; `None` for a link elsewhere (linked, not archived).
    fn fetch_print_form(
        &self,
        url: &str,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Option<Download>, CallError>> + Send;
}

/// One page of a customer's products from the index, oldest first.
#[derive(Debug, Clone, Default)]
pub struct ProductPage {
    pub items: Vec<crate::domain::products::ProductSummary>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

pub trait ProductIndex {
    /// One query: up to `limit` products of `customer` after `after`.
    fn customer_products(
        &self,
        customer: &CustomerId,
        limit: u32,
        after: Option<Cursor>,
    ) -> impl Future<Output = Result<ProductPage, InfraError>> + Send;
}

/// A process not in a terminal stage, as the open index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenProcess {
    pub process: ProcessKey,
    pub stage: String,
    /// When it entered `stage` (0: before stages were recorded).
    pub since_ms: u64,
}

pub trait OpenProcesses {
    /// Up to `limit` processes of `kind` (`truck`, `loan`) in their stage since before
    /// `before_ms`, longest first.
    fn open_before(
        &self,
        kind: &str,
        before_ms: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OpenProcess>, InfraError>> + Send;
}

pub trait Presigner {
    /// A short-lived URL to GET `bucket/key`.
    fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<String, InfraError>> + Send;
}

/// What a [`CallError`]'s text starts with when the partner did not answer in time (our
/// client's timeout), so a synchronous caller can say 504 rather than 502.
pub const TIMED_OUT: &str = "timed out";

/// MUST's helper methods (the seed's "Вспомогательные методы"), which change nothing at
/// MUST: the bank calls them through us synchronously, with MUST's shared token.
pub trait MustHelpers {
    /// `/api/scoring/vehicle/license-category`: the vehicle's licence category and
    /// whether a trailer is mandatory.
    fn license_category(
        &self,
        request: &crate::domain::must::helpers::LicenseCategoryRequest,
    ) -> impl Future<Output = Result<crate::domain::must::helpers::LicenseCategoryAnswer, CallError>> + Send;
    /// `/api/scoring/tariff`: a preliminary price per insurer, before documents.
    fn tariff(
        &self,
        request: &crate::domain::must::helpers::TariffRequest,
    ) -> impl Future<Output = Result<crate::domain::must::helpers::TariffAnswer, CallError>> + Send;
}
