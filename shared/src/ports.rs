//! The interfaces the services need from the outside world. Adapters in
//! [`crate::adapters`] implement them over DynamoDB, SQS, S3 and HTTP.

use std::future::Future;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::ids::{ProcessId, ScoringId};
use crate::domain::must::hook::HookKind;
use crate::domain::must::process::ProcessEvent;

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
    /// `webhook-id` when MUST sends one, else a digest of kind and body.
    pub hook_id: String,
    pub body: String,
    pub received_at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

/// Something we could not process, kept raw with its reason for a person and the replay tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quarantined {
    pub id: String,
    /// `hook`, `bank-event`, or `process-event`.
    pub source: String,
    pub reason: String,
    /// The raw input, verbatim.
    pub body: String,
    /// Where it came from: hook kind and scoringId, queue name, ...
    pub origin: serde_json::Value,
    pub received_at_ms: u64,
}

/// What flows on the process FIFO queue; MessageGroupId keeps each process in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "kebab-case")]
pub enum ProcessMessage {
    /// A stored hook, to apply to the process that owns its scoringId.
    Hook(ReceivedHook),
    /// Apply a bank event to a process.
    BankEvent { process_id: ProcessId, event: ProcessEvent },
    /// Perform whatever the process has pending (sent when a process is created).
    Drive { process_id: ProcessId },
}

/// What flows on the loan FIFO queue (MessageGroupId = the loan number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "kebab-case")]
pub enum LoanMessage {
    /// Perform whatever the loan's insurance has pending.
    Drive { loan_number: String },
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
    /// An earlier attempt started longer than the lease ago and never recorded a
    /// result (it died): its outcome is unknown, and this attempt has taken over.
    Retaken,
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

pub trait HookStore {
    /// Stores a hook once; a second delivery of the same hook is `Duplicate`.
    fn record_hook(&self, hook: &ReceivedHook) -> impl Future<Output = Result<Recorded, InfraError>> + Send;
}

pub trait QuarantineStore {
    fn quarantine(&self, item: &Quarantined) -> impl Future<Output = Result<(), InfraError>> + Send;
    fn list_quarantined(&self) -> impl Future<Output = Result<Vec<Quarantined>, InfraError>> + Send;
    fn release(&self, id: &str) -> impl Future<Output = Result<(), InfraError>> + Send;
}

/// A process as the store keeps it: JSON state under a key, with a version.
pub trait StoredProcess: serde::Serialize + serde::de::DeserializeOwned + Send + Sync {
    /// The record's partition key, e.g. `TRUCK#REQ-1` or `LOAN#L-42`.
    fn key(&self) -> String;
    /// Other keys that must lead to this record (e.g. `SCORING#{scoringId}`).
    fn aliases(&self) -> Vec<String>;
    /// Attributes stored beside the state for the indexes (`gsi1pk`, `gsi1sk`, `stage`, ...).
    fn index(&self) -> Vec<(&'static str, String)>;
}

pub trait ProcessStore {
    fn load<P: StoredProcess>(
        &self,
        key: &str,
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
    /// The key of the process an alias leads to.
    fn resolve_alias(&self, alias: &str) -> impl Future<Output = Result<Option<String>, InfraError>> + Send;
}

pub trait EffectLog {
    /// Records the intent to perform `key` and says what earlier attempts left.
    /// An unfinished attempt older than `lease_ms` is taken over.
    fn begin(
        &self,
        process: &str,
        key: &str,
        lease_ms: u64,
    ) -> impl Future<Output = Result<EffectRecord, InfraError>> + Send;
}

pub trait ProcessQueue {
    fn enqueue(
        &self,
        message: &ProcessMessage,
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

/// Milliseconds since the epoch; the one clock the services read.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How an insurer call failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CallError {
    /// Throttling, 5xx, timeouts, connection errors: retry with backoff.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The insurer refused the request; retrying will not help.
    #[error("refused with HTTP {status}: {message}")]
    Refused { status: u16, code: Option<u32>, message: String },
}

impl From<InfraError> for CallError {
    fn from(e: InfraError) -> CallError {
        CallError::Transient(e.to_string())
    }
}

/// MUST's partner API, as the truck runner uses it. `idempotency_key` is sent as
/// `Idempotency-Key` so a call repeated after a crash can be recognised by MUST.
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
    fn submit_contract(
        &self,
        scoring_id: &ScoringId,
        card: &crate::domain::must::api::ContractCard,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    fn request_payment(
        &self,
        scoring_id: &ScoringId,
        method: crate::domain::bank::truck::PaymentMethod,
        request: &crate::domain::must::api::PaymentRequest,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    fn submit_payment_order(
        &self,
        scoring_id: &ScoringId,
        request: &crate::domain::must::api::PaymentOrderRequest,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    fn download_blob(
        &self,
        blob_id: &crate::domain::ids::BlobId,
    ) -> impl Future<Output = Result<Vec<u8>, CallError>> + Send;
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
    /// The print form behind a link, when it is served as a PDF from a host we trust.
    fn fetch_print_form(&self, url: &str) -> impl Future<Output = Result<Option<Vec<u8>>, CallError>> + Send;
}

/// One page of a customer's products from the index, oldest first.
#[derive(Debug, Clone, Default)]
pub struct ProductPage {
    /// (`gsi1sk`, stored state JSON) per product.
    pub items: Vec<(String, String)>,
    /// Where the next page starts: (`gsi1sk`, `pk`) of the last item.
    pub next: Option<(String, String)>,
}

pub trait ProductIndex {
    /// One query: up to `limit` products of `customer` after `after`.
    fn customer_products(
        &self,
        customer: &str,
        limit: u32,
        after: Option<(String, String)>,
    ) -> impl Future<Output = Result<ProductPage, InfraError>> + Send;
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
