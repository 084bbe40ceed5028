//! The MUST step runner: applies queued events to a truck process and performs
//! the process's pending effects (MUST calls, S3 archive, bank notices).
//!
//! Every insurer call is wrapped in an intent record (effect log): the intent
//! is written with a conditional put before the call and the result after it,
//! so a redelivered message reuses finished work instead of redoing it.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::retry::Backoff;
use super::RetryLater;
use crate::domain::bank::truck::{ArchivedFile, BankDocument, ErrorReport};
use crate::domain::ids::{BlobId, ProcessId, ScoringId};
use crate::domain::must::api::{
    BlobRef, ContractCard, DocumentRef, DocumentsRequest, InitRequest, PaymentOrderRequest, PaymentRequest,
};
use crate::domain::must::hook::HookPayload;
use crate::domain::must::process::{ArchivePurpose, Effect, Outcome, ProcessEvent, TruckProcess};
use crate::ports::{
    now_ms, BankOutbox, CallError, EffectLog, EffectRecord, InfraError, MustApi, ObjectStore, ProcessMessage,
    ProcessStore, QuarantineStore, Quarantined, SaveError, Versioned,
};

/// Policy files larger than this are refused (a policy PDF is tens of kilobytes).
const MAX_FILE_BYTES: usize = 20 * 1024 * 1024;
/// Attempts at an optimistic write before the message is retried later.
const SAVE_ATTEMPTS: u32 = 5;

pub struct RunnerConfig {
    pub documents_bucket: String,
    pub archive_bucket: String,
    /// How long an unfinished effect is presumed still running elsewhere.
    pub effect_lease: Duration,
    pub backoff: Backoff,
}

pub struct TruckRunner<S, M, O, B> {
    pub store: S,
    pub must: M,
    pub objects: O,
    pub outbox: B,
    pub config: RunnerConfig,
}

/// Why an effect did not complete.
enum EffectFailure {
    /// Ends the process; the bank is told.
    Permanent(ErrorReport),
    /// Try again on the next delivery.
    Later(RetryLater),
}

impl From<CallError> for EffectFailure {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Transient(_) => EffectFailure::Later(RetryLater::Call(e)),
            CallError::Refused { status, code: Some(code), message } => {
                let mut report = ErrorReport::from_must(code, Some(&message));
                report.message = format!("HTTP {status}: {}", report.message);
                EffectFailure::Permanent(report)
            }
            CallError::Refused { status, code: None, message } => {
                EffectFailure::Permanent(ErrorReport::integration(&format!("must-http-{status}"), message))
            }
        }
    }
}

impl From<InfraError> for EffectFailure {
    fn from(e: InfraError) -> Self {
        EffectFailure::Later(RetryLater::Infra(e))
    }
}

fn permanent(code: &str, message: String) -> EffectFailure {
    EffectFailure::Permanent(ErrorReport::integration(code, message))
}

fn stage_name(p: &TruckProcess) -> String {
    serde_json::to_value(p.stage).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
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
        let (process_id, event) = match message {
            ProcessMessage::Hook(hook) => {
                let Some(process_id) = self.store.resolve_scoring_id(&hook.scoring_id).await? else {
                    // The init result may not be written yet; the FIFO group waits for it.
                    return Err(RetryLater::NotYet(format!(
                        "scoringId {} is not mapped yet",
                        hook.scoring_id
                    )));
                };
                match HookPayload::parse(hook.kind, hook.body.as_bytes()) {
                    Ok(payload) => (process_id, Some(ProcessEvent::Hook { id: hook.hook_id, payload })),
                    Err(e) => {
                        let origin = serde_json::json!({"kind": hook.kind, "scoringId": hook.scoring_id});
                        return self
                            .quarantine("hook", &hook.hook_id, e.to_string(), hook.body, origin)
                            .await;
                    }
                }
            }
            ProcessMessage::BankEvent { process_id, event } => (process_id, Some(event)),
            ProcessMessage::Drive { process_id } => (process_id, None),
        };
        let span = tracing::info_span!("process", process_id = %process_id);
        async move {
            let Some(mut current) = self.store.load(&process_id).await? else {
                let body = serde_json::to_string(&event).unwrap_or_default();
                let origin = serde_json::json!({"processId": process_id});
                return self
                    .quarantine("process-event", process_id.as_str(), "unknown process".into(), body, origin)
                    .await;
            };
            if let Some(event) = event {
                current = self.apply(current, event).await?;
            }
            self.drive(current).await
        }
        .instrument(span)
        .await
    }

    async fn quarantine(
        &self,
        source: &str,
        id: &str,
        reason: String,
        body: String,
        origin: serde_json::Value,
    ) -> Result<(), RetryLater> {
        let item = Quarantined {
            id: format!("{source}-{id}"),
            source: source.into(),
            reason: reason.clone(),
            body,
            origin,
            received_at_ms: now_ms(),
        };
        self.store.quarantine(&item).await?;
        tracing::warn!(quarantine_id = %item.id, %reason, "quarantined");
        Ok(())
    }

    /// Applies an event with optimistic concurrency, re-reading on conflict.
    async fn apply(
        &self,
        mut current: Versioned<TruckProcess>,
        event: ProcessEvent,
    ) -> Result<Versioned<TruckProcess>, RetryLater> {
        for _ in 0..SAVE_ATTEMPTS {
            let mut next = current.value.clone();
            let was_terminal = next.stage.is_terminal();
            match next.apply(event.clone()) {
                Outcome::Advanced => match self.save(&current, next, false).await {
                    Ok(saved) => return Ok(saved),
                    Err(SaveError::Conflict) => current = self.reload(&current.value.id).await?,
                    Err(SaveError::Infra(e)) => return Err(e.into()),
                },
                Outcome::Ignored(reason) => {
                    if was_terminal && matches!(event, ProcessEvent::Hook { .. }) {
                        let id = event.external_id().unwrap_or_default().to_owned();
                        let body = serde_json::to_string(&event).unwrap_or_default();
                        let origin = serde_json::json!({"processId": current.value.id});
                        self.quarantine("process-event", &id, "process has ended".into(), body, origin)
                            .await?;
                    } else {
                        tracing::info!(%reason, "event ignored");
                    }
                    return Ok(current);
                }
                Outcome::Rejected(reason) => {
                    let id = event.external_id().unwrap_or("internal").to_owned();
                    let body = serde_json::to_string(&event).unwrap_or_default();
                    let origin = serde_json::json!({"processId": current.value.id});
                    self.quarantine("process-event", &id, reason, body, origin).await?;
                    return Ok(current);
                }
            }
        }
        Err(RetryLater::NotYet("process kept changing under us".into()))
    }

    async fn reload(&self, id: &ProcessId) -> Result<Versioned<TruckProcess>, RetryLater> {
        self.store.load(id).await?.ok_or_else(|| RetryLater::NotYet(format!("process {id} vanished")))
    }

    async fn save(
        &self,
        current: &Versioned<TruckProcess>,
        next: TruckProcess,
        map_scoring_id: bool,
    ) -> Result<Versioned<TruckProcess>, SaveError> {
        let version = self.store.save(&next, current.version, map_scoring_id).await?;
        if next.stage != current.value.stage {
            tracing::info!(from = %stage_name(&current.value), to = %stage_name(&next), "stage changed");
        }
        Ok(Versioned { value: next, version })
    }

    /// Performs pending effects in order until none is left.
    async fn drive(&self, mut current: Versioned<TruckProcess>) -> Result<(), RetryLater> {
        while let Some(effect) = current.value.pending.first().cloned() {
            let key = effect.key();
            // Boxed: the effect futures are large and deeply nested.
            let result = Box::pin(self.perform(&current.value, &effect)).await;
            let mut next = current.value.clone();
            next.complete(&key);
            match result {
                Ok(Some(event)) => {
                    if let Outcome::Rejected(reason) = next.apply(event) {
                        tracing::error!(effect = %key, %reason, "effect result contradicts the process");
                    }
                }
                Ok(None) => {}
                Err(EffectFailure::Permanent(error)) => {
                    tracing::warn!(effect = %key, code = %error.code, "effect failed permanently");
                    next.apply(ProcessEvent::EffectFailed { error });
                }
                Err(EffectFailure::Later(e)) => return Err(e),
            }
            let map_scoring_id = matches!(effect, Effect::InitScoring);
            current = match self.save(&current, next, map_scoring_id).await {
                Ok(saved) => saved,
                // Someone else moved the process on; their state wins, and finished
                // work is found in the effect log if it is still pending there.
                Err(SaveError::Conflict) => self.reload(&current.value.id).await?,
                Err(SaveError::Infra(e)) => return Err(e.into()),
            };
        }
        Ok(())
    }

    /// Runs `call` once per `key` for this process, whatever the deliveries.
    async fn once<T, F, Fut>(&self, process: &ProcessId, key: &str, call: F) -> Result<T, EffectFailure>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let lease = self.config.effect_lease.as_millis() as u64;
        match self.store.begin(process, key, lease).await? {
            EffectRecord::Done(result) => {
                return serde_json::from_value(result)
                    .map_err(|e| EffectFailure::from(InfraError::Corrupt(format!("effect {key}: {e}"))));
            }
            EffectRecord::InFlight => {
                return Err(EffectFailure::Later(RetryLater::NotYet(format!(
                    "effect {key} is running elsewhere"
                ))));
            }
            EffectRecord::Retaken => {
                tracing::warn!(effect = key, "an earlier attempt died; calling again")
            }
            EffectRecord::Fresh => {}
        }
        let value = self.config.backoff.run(key, call).await?;
        let json = serde_json::to_value(&value).map_err(|e| InfraError::Corrupt(e.to_string()))?;
        self.store.finish(process, key, &json).await?;
        Ok(value)
    }

    fn idempotency_key(process: &TruckProcess, key: &str) -> String {
        format!("{}:{key}", process.id)
    }

    fn scoring_id(process: &TruckProcess) -> Result<&ScoringId, EffectFailure> {
        process
            .scoring_id
            .as_ref()
            .ok_or_else(|| permanent("no-scoring-id", "effect needs a scoringId before init".into()))
    }

    async fn perform(
        &self,
        p: &TruckProcess,
        effect: &Effect,
    ) -> Result<Option<ProcessEvent>, EffectFailure> {
        let key = effect.key();
        let idem = Self::idempotency_key(p, &key);
        match effect {
            Effect::InitScoring => {
                let request = InitRequest::for_request(&p.request);
                let scoring_id = self.once(&p.id, &key, || self.must.init(&request, &idem)).await?;
                Ok(Some(ProcessEvent::Initialized { scoring_id }))
            }
            Effect::SubmitDocuments { round, type_ids } => {
                let sid = Self::scoring_id(p)?;
                let mut documents = Vec::new();
                for type_id in type_ids {
                    let doc =
                        p.request.documents.iter().find(|d| d.type_id == *type_id).ok_or_else(|| {
                            permanent("document-missing", format!("no document of type {type_id} to upload"))
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
                self.once(&p.id, &assoc, || self.must.associate_documents(sid, &request, &assoc_idem))
                    .await?;
                Ok(Some(ProcessEvent::DocumentsSubmitted { round: *round }))
            }
            Effect::SubmitContract => {
                let sid = Self::scoring_id(p)?;
                let card = ContractCard::for_request(&p.request);
                self.once(&p.id, &key, || self.must.submit_contract(sid, &card, &idem)).await?;
                Ok(Some(ProcessEvent::ContractSubmitted))
            }
            Effect::RequestPayment { insurer, method } => {
                let sid = Self::scoring_id(p)?;
                let request = PaymentRequest { insurance_company: insurer.clone() };
                self.once(&p.id, &key, || self.must.request_payment(sid, *method, &request, &idem)).await?;
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
                self.once(&p.id, &key, || self.must.submit_payment_order(sid, &request, &idem)).await?;
                Ok(Some(ProcessEvent::PaymentOrderSubmitted))
            }
            Effect::Notify(notification) => {
                self.outbox.publish(notification).await?;
                Ok(None)
            }
        }
    }

    /// Uploads one of the bank's documents to MUST (`POST /api/blob`), once.
    async fn upload(&self, p: &TruckProcess, key: &str, doc: &BankDocument) -> Result<BlobId, EffectFailure> {
        let idem = Self::idempotency_key(p, key);
        let bucket = &self.config.documents_bucket;
        self.once(&p.id, key, || async {
            let bytes = self.objects.get(bucket, &doc.s3_key).await?;
            self.must.upload_blob(&doc.file_name, bytes, &idem).await
        })
        .await
    }

    /// Downloads a MUST blob into S3 at a key fixed by process and blob; a file
    /// already archived (its SHA-256 in the metadata) is not fetched again.
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
        let bucket = &self.config.archive_bucket;
        let key = format!("{folder}/{process}/{blob_id}.pdf");
        let file = |size, sha256| ArchivedFile {
            blob_id: blob_id.to_string(),
            bucket: bucket.clone(),
            key: key.clone(),
            size,
            sha256,
        };
        if let Some(existing) = self.objects.head(bucket, &key).await? {
            if let Some(sha) = existing.sha256 {
                return Ok(file(existing.size, sha));
            }
        }
        let bytes = self.config.backoff.run("download", || self.must.download_blob(blob_id)).await?;
        if bytes.len() < 8 || bytes.len() > MAX_FILE_BYTES || !bytes.starts_with(b"%PDF-") {
            return Err(permanent(
                "not-a-pdf",
                format!("blob {blob_id} is not a PDF of a sane size ({} bytes)", bytes.len()),
            ));
        }
        let sha = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        self.objects.put(bucket, &key, bytes, "application/pdf", &sha).await?;
        tracing::info!(blob_id = %blob_id, size, sha256 = %sha, "archived");
        Ok(file(size, sha))
    }
}
