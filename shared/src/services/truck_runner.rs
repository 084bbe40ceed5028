//! The MUST step runner: applies queued hooks and bank events to a truck
//! process and performs its pending effects (MUST calls, S3 archive, bank
//! notices) through the [`Engine`].

use sha2::{Digest, Sha256};
use tracing::Instrument;

use std::time::Duration;

use super::engine::{Draft, EffectFailure, Engine, Workflow};
use super::hook_intake::hook_origin;
use super::RetryLater;
use crate::domain::bank::truck::{ArchivedFile, BankDocument, ErrorReport};
use crate::domain::ids::{BlobId, ProcessId};
use crate::domain::must::api::{
    BlobRef, ContractCard, DocumentRef, DocumentsRequest, InitRequest, PaymentOrderRequest, PaymentRequest,
};
use crate::domain::must::hook::HookPayload;
use crate::domain::must::process::{ArchivePurpose, Effect, Outcome, ProcessEvent, TruckProcess};
use crate::ports::{
    now_ms, BankOutbox, CallError, EffectLog, InfraError, MustApi, ObjectStore, ProcessMessage, ProcessStore,
    QuarantineStore, StoredObject, StoredProcess,
};

/// Policy files larger than this are refused (a policy PDF is tens of kilobytes).
const MAX_FILE_BYTES: usize = 20 * 1024 * 1024;

/// The key of a truck process's record.
pub fn truck_key(id: &ProcessId) -> String {
    format!("TRUCK#{id}")
}

/// The alias that leads from MUST's scoringId to the process.
pub fn scoring_alias(scoring_id: &str) -> String {
    format!("SCORING#{scoring_id}")
}

impl StoredProcess for TruckProcess {
    fn key(&self) -> String {
        truck_key(&self.id)
    }

    fn aliases(&self) -> Vec<String> {
        self.scoring_id.iter().map(|s| scoring_alias(s.as_str())).collect()
    }

    fn index(&self) -> Vec<(&'static str, String)> {
        let mut index = vec![
            ("stage", Workflow::stage(self)),
            ("customerId", self.request.customer_id.to_string()),
            ("gsi1pk", format!("CUSTOMER#{}", self.request.customer_id)),
            ("gsi1sk", format!("TRUCK#{}", self.id)),
        ];
        if let Some(sid) = &self.scoring_id {
            index.push(("scoringId", sid.to_string()));
        }
        index
    }
}

impl Workflow for TruckProcess {
    type Event = ProcessEvent;
    type Effect = Effect;

    fn apply(&mut self, event: ProcessEvent) -> Outcome {
        TruckProcess::apply(self, event)
    }
    fn pending(&self) -> &[Effect] {
        &self.pending
    }
    fn effect_key(effect: &Effect) -> String {
        effect.key()
    }
    fn is_repeatable(effect: &Effect) -> bool {
        effect.is_repeatable()
    }
    fn complete(&mut self, effect_key: &str) {
        TruckProcess::complete(self, effect_key)
    }
    fn effect_failed(error: ErrorReport) -> ProcessEvent {
        ProcessEvent::EffectFailed { error }
    }
    fn external_id(event: &ProcessEvent) -> Option<&str> {
        event.external_id()
    }
    fn stage(&self) -> String {
        serde_json::to_value(self.stage).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
    fn is_terminal(&self) -> bool {
        self.stage.is_terminal()
    }
}

/// MUST's refusal as the bank sees it: MUST's code and text when it gave one.
pub fn must_refusal(e: CallError) -> EffectFailure {
    match e {
        CallError::Transient(_) => EffectFailure::Later(RetryLater::Call(e)),
        CallError::Refused { status, code: Some(code), message } => {
            let mut report = ErrorReport::from_must(code, Some(&message));
            report.message = format!("HTTP {status}: {}", report.message);
            EffectFailure::Permanent(report)
        }
        CallError::Refused { status, code: None, message } => {
            EffectFailure::permanent(&format!("must-http-{status}"), message)
        }
    }
}

/// The process each scoringId leads to, remembered by a container: the mapping
/// never changes once written (the store refuses to move an alias), so a hit
/// saves a read per hook. Bounded: forgotten wholesale when full.
#[derive(Default)]
pub struct KnownScorings(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl KnownScorings {
    const MAX: usize = 10_000;

    fn get(&self, alias: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(alias).cloned()
    }

    fn remember(&self, alias: String, key: String) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= Self::MAX {
            known.clear();
        }
        known.insert(alias, key);
    }
}

pub struct TruckRunner<S, M, O, B> {
    pub engine: Engine<S>,
    pub must: M,
    pub objects: O,
    pub outbox: B,
    pub documents_bucket: String,
    pub archive_bucket: String,
    /// How long a hook for a scoringId we do not know waits for its process before it is quarantined.
    pub unknown_scoring_grace: Duration,
    pub known_scorings: KnownScorings,
}

impl<S, M, O, B> TruckRunner<S, M, O, B>
where
    S: ProcessStore + EffectLog + QuarantineStore + Sync,
    M: MustApi + Sync,
    O: ObjectStore + Sync,
    B: BankOutbox + Sync,
{
    /// Handles one message from the process queue.
    pub async fn handle(&self, message: ProcessMessage) -> Result<(), RetryLater> {
        let (key, event) = match message {
            ProcessMessage::Hook(hook) => {
                let alias = scoring_alias(hook.scoring_id.as_str());
                let origin = hook_origin(hook.kind, &hook.scoring_id, &hook.hook_id);
                let Some(key) = self.process_of(&alias).await? else {
                    let waited = Duration::from_millis(now_ms().saturating_sub(hook.received_at_ms));
                    if waited < self.unknown_scoring_grace {
                        // The init result may not be written yet; the FIFO group waits for it.
                        return Err(RetryLater::NotYet(format!(
                            "scoringId {} is not mapped yet",
                            hook.scoring_id
                        )));
                    }
                    let reason = format!("unknown scoringId after {}s", waited.as_secs());
                    return self.engine.quarantine("hook", &hook.hook_id, reason, hook.body, origin).await;
                };
                match HookPayload::parse(hook.kind, hook.body.as_bytes()) {
                    Ok(payload) => (key, Some(ProcessEvent::Hook { id: hook.hook_id, payload })),
                    Err(e) => {
                        return self
                            .engine
                            .quarantine("hook", &hook.hook_id, e.to_string(), hook.body, origin)
                            .await;
                    }
                }
            }
            ProcessMessage::BankEvent { process_id, event } => (truck_key(&process_id), Some(event)),
            ProcessMessage::Drive { process_id } => (truck_key(&process_id), None),
        };
        let span = tracing::info_span!("process", process_id = %key.trim_start_matches("TRUCK#"));
        async move {
            let Some(current) = self.engine.load::<TruckProcess>(&key).await? else {
                let body = serde_json::to_string(&event).unwrap_or_default();
                let origin = serde_json::json!({"process": key});
                return self
                    .engine
                    .quarantine("process-event", &key, "unknown process".into(), body, origin)
                    .await;
            };
            let draft = match event {
                Some(event) => self.engine.apply(current, event).await?,
                None => Draft::new(current),
            };
            self.engine.drive(draft, |p, e| async move { self.perform(&p, &e).await }).await
        }
        .instrument(span)
        .await
    }

    async fn process_of(&self, alias: &str) -> Result<Option<String>, RetryLater> {
        if let Some(key) = self.known_scorings.get(alias) {
            return Ok(Some(key));
        }
        let key = self.engine.store.resolve_alias(alias).await?;
        if let Some(key) = &key {
            self.known_scorings.remember(alias.to_owned(), key.clone());
        }
        Ok(key)
    }

    fn idempotency_key(process: &TruckProcess, key: &str) -> String {
        format!("{}:{key}", process.id)
    }

    fn scoring_id(process: &TruckProcess) -> Result<&crate::domain::ids::ScoringId, EffectFailure> {
        process.scoring_id.as_ref().ok_or_else(|| {
            EffectFailure::permanent("no-scoring-id", "effect needs a scoringId before init".into())
        })
    }

    async fn perform(
        &self,
        p: &TruckProcess,
        effect: &Effect,
    ) -> Result<Option<ProcessEvent>, EffectFailure> {
        let key = effect.key();
        let idem = Self::idempotency_key(p, &key);
        let engine = &self.engine;
        match effect {
            Effect::InitScoring => {
                let request = InitRequest::for_request(&p.request);
                let scoring_id = engine.retry(&key, || self.must.init(&request, &idem)).await?;
                Ok(Some(ProcessEvent::Initialized { scoring_id }))
            }
            Effect::SubmitDocuments { round, type_ids } => {
                let sid = Self::scoring_id(p)?;
                let mut documents = Vec::new();
                for type_id in type_ids {
                    let doc =
                        p.request.documents.iter().find(|d| d.type_id == *type_id).ok_or_else(|| {
                            EffectFailure::permanent(
                                "document-missing",
                                format!("no document of type {type_id} to upload"),
                            )
                        })?;
                    let blob_id = self.upload(p, &format!("{key}-upload-{type_id}"), doc).await?;
                    documents.push(DocumentRef {
                        type_id: *type_id,
                        blob: BlobRef { blob_id, name: doc.file_name.clone() },
                    });
                }
                let request = DocumentsRequest { documents };
                let assoc = format!("{key}-associate");
                let assoc_idem = Self::idempotency_key(p, &assoc);
                engine.retry(&assoc, || self.must.associate_documents(sid, &request, &assoc_idem)).await?;
                Ok(Some(ProcessEvent::DocumentsSubmitted { round: *round }))
            }
            Effect::SubmitContract => {
                let sid = Self::scoring_id(p)?;
                let card = ContractCard::for_request(&p.request);
                engine.retry(&key, || self.must.submit_contract(sid, &card, &idem)).await?;
                Ok(Some(ProcessEvent::ContractSubmitted))
            }
            Effect::RequestPayment { insurer, method } => {
                let sid = Self::scoring_id(p)?;
                let request = PaymentRequest { insurance_company: insurer.clone() };
                engine.retry(&key, || self.must.request_payment(sid, *method, &request, &idem)).await?;
                Ok(Some(ProcessEvent::PaymentRequested { insurer: insurer.clone() }))
            }
            Effect::ArchiveFiles { purpose, blob_ids } => {
                let mut files = Vec::new();
                for blob_id in blob_ids {
                    files.push(self.archive(&p.id, *purpose, blob_id).await?);
                }
                Ok(Some(ProcessEvent::FilesArchived { purpose: *purpose, files }))
            }
            Effect::SubmitPaymentOrder { document } => {
                let sid = Self::scoring_id(p)?;
                let blob_id = self.upload(p, &format!("{key}-upload"), document).await?;
                let request = PaymentOrderRequest { blob_id };
                engine.retry(&key, || self.must.submit_payment_order(sid, &request, &idem)).await?;
                Ok(Some(ProcessEvent::PaymentOrderSubmitted))
            }
            Effect::Notify(notification) => {
                self.outbox.publish(notification).await?;
                Ok(None)
            }
        }
    }

    /// Uploads one of the bank's documents to MUST (`POST /api/blob`). Not guarded on
    /// its own: a blob repeated after a crash is one MUST never sees associated, and
    /// the upload carries an `Idempotency-Key` for MUST to recognise it.
    async fn upload(&self, p: &TruckProcess, key: &str, doc: &BankDocument) -> Result<BlobId, EffectFailure> {
        let idem = Self::idempotency_key(p, key);
        let bucket = &self.documents_bucket;
        self.engine
            .retry(key, || async {
                let bytes = self.objects.get(bucket, &doc.s3_key).await?;
                self.must.upload_blob(&doc.file_name, bytes, &idem).await
            })
            .await
    }

    /// Downloads a MUST blob into S3 at a key fixed by process and blob.
    async fn archive(
        &self,
        process: &ProcessId,
        purpose: ArchivePurpose,
        blob_id: &BlobId,
    ) -> Result<ArchivedFile, EffectFailure> {
        let folder = match purpose {
            ArchivePurpose::Policy => "policies",
            ArchivePurpose::Invoice => "invoices",
        };
        let key = format!("{folder}/{process}/{blob_id}.pdf");
        let bytes = self.engine.retry("download", || self.must.download_blob(blob_id)).await?;
        archive_pdf(&self.objects, &self.archive_bucket, &key, blob_id.as_str(), bytes).await
    }
}

/// Stores a PDF in S3 under `key` with its SHA-256 in the metadata, once: when an
/// earlier attempt stored it already (and died before recording it), that object
/// is the archived file.
pub async fn archive_pdf<O: ObjectStore + Sync>(
    objects: &O,
    bucket: &str,
    key: &str,
    source_id: &str,
    bytes: Vec<u8>,
) -> Result<ArchivedFile, EffectFailure> {
    if bytes.len() < 8 || bytes.len() > MAX_FILE_BYTES || !bytes.starts_with(b"%PDF-") {
        return Err(EffectFailure::permanent(
            "not-a-pdf",
            format!("{source_id} is not a PDF of a sane size ({} bytes)", bytes.len()),
        ));
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    let (size, sha256) = match objects.put_new(bucket, key, bytes, "application/pdf", &sha256).await? {
        None => (size, sha256),
        Some(StoredObject { size, sha256: Some(stored) }) => (size, stored),
        Some(StoredObject { sha256: None, .. }) => {
            return Err(InfraError::Corrupt(format!("{key} is in the archive without its SHA-256")).into());
        }
    };
    tracing::info!(source = source_id, size, sha256 = %sha256, "archived");
    Ok(ArchivedFile {
        blob_id: source_id.to_owned(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        sha256,
    })
}
