//! The MUST step runner: applies queued hooks and bank events to a truck
//! process and performs its pending effects (MUST calls, S3 archive, bank
//! notices) through the [`Engine`].

use std::time::Duration;

use tracing::Instrument;

use crate::domain::ids::{BlobId, ProcessId};
use crate::domain::must::api::{
    BlobRef, DocumentRef, DocumentsRequest, InitRequest, PaymentOrderRequest, PaymentRequest,
};
use crate::domain::must::files::MustFile;
use crate::domain::must::hook::HookPayload;
use crate::domain::truck::bank::{BankDocument, ErrorReport, PendingFile};
use crate::domain::truck::process::{ArchivePurpose, TruckEffect, TruckEvent, TruckProcess, PAYMENT_REFUSED};
use crate::domain::workflow::EffectSpec;
use crate::keys::{self, ProcessKey};
use crate::ports::{
    now_ms, BankOutbox, CallError, EffectLog, HookStore, InfraError, KeptOrigin, MustApi, ObjectStore,
    ProcessStore, QuarantineStore, Quarantined, ReceivedHook, StoredProcess, TruckMessage,
};
use crate::services::archive::{archive_file, ARCHIVE_ATTEMPTS, MAX_FILE_BYTES};
use crate::services::engine::{Attempt, Draft, EffectFailure, Engine};
use crate::services::RetryLater;

/// The FIFO group of every message about a truck process (see [`TruckProcess::message_group`]).
pub async fn message_group<S: ProcessStore + Sync>(store: &S, id: &ProcessId) -> Result<String, InfraError> {
    Ok(match store.load::<TruckProcess>(&ProcessKey::Truck(id.clone())).await? {
        Some(p) => p.value.message_group(),
        None => id.to_string(),
    })
}

/// MUST's refusal as the bank sees it: MUST's code and text when it gave one.
pub fn must_refusal(e: &CallError) -> ErrorReport {
    match e {
        CallError::Refused { status, code: Some(code), message } => {
            let mut report = ErrorReport::from_must(*code, Some(message));
            report.message = format!("HTTP {status}: {}", report.message);
            report
        }
        CallError::Refused { status, code: None, message } => {
            ErrorReport::integration(&format!("must-http-{status}"), message.clone())
        }
        other => ErrorReport::integration("must-unusable-answer", other.to_string()),
    }
}

/// The process each scoringId leads to, remembered by a container: the mapping
/// never changes once written (the store refuses to move an alias), so a hit
/// saves a read per hook. Bounded: forgotten wholesale when full.
#[derive(Default)]
pub struct KnownScorings(std::sync::Mutex<std::collections::HashMap<String, ProcessKey>>);

impl KnownScorings {
    const MAX: usize = 10_000;

    fn get(&self, alias: &str) -> Option<ProcessKey> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(alias).cloned()
    }

    fn remember(&self, alias: String, key: ProcessKey) {
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
    S: ProcessStore + EffectLog + QuarantineStore + HookStore + Sync,
    M: MustApi + Sync,
    O: ObjectStore + Sync,
    B: BankOutbox + Sync,
{
    /// Handles one message of the truck queue, as SQS carries it.
    pub async fn handle_body(&self, body: &str) -> Result<(), RetryLater> {
        let message: TruckMessage = serde_json::from_str(body)
            .map_err(|e| RetryLater::NotYet(format!("unreadable process message: {e}")))?;
        self.handle(message).await
    }

    /// Handles one message from the process queue.
    pub async fn handle(&self, message: TruckMessage) -> Result<(), RetryLater> {
        let (key, event, replays) = match message {
            TruckMessage::Hook(hook) => match self.hook_event(hook).await? {
                Some((key, event, replays)) => (key, Some(event), replays),
                None => return Ok(()),
            },
            TruckMessage::StoredHook(reference) => match self.engine.store.hook_body(&reference).await? {
                Some(body) => match self.hook_event(reference.with_body(body)).await? {
                    Some((key, event, replays)) => (key, Some(event), replays),
                    None => return Ok(()),
                },
                None => {
                    let reason = "its record (and body) is gone: it expired before it was applied".to_owned();
                    let at = reference.received_at_ms;
                    return self.engine.quarantine(reference.kept(None), reason, String::new(), at).await;
                }
            },
            TruckMessage::BankEvent { process_id, event, replays } => {
                (ProcessKey::Truck(process_id), Some(event), replays)
            }
            TruckMessage::Drive { process_id } => (ProcessKey::Truck(process_id), None, 0),
        };
        let span = tracing::info_span!("process", process_id = %key.id());
        async move {
            let Some(current) = self.engine.load::<TruckProcess>(&key).await? else {
                let body = serde_json::to_string(&event).unwrap_or_default();
                let event_id = event.as_ref().and_then(|e| e.external_id()).unwrap_or("drive").to_owned();
                let origin = KeptOrigin::Event { process: key.clone(), event_id, replays };
                return self.engine.quarantine(origin, "unknown process".into(), body, now_ms()).await;
            };
            let draft = match event {
                Some(event) => self.engine.apply(current, event, replays).await?,
                None => Draft::new(current),
            };
            self.engine.drive(draft, |p, e, a| async move { self.perform(&p, &e, &a).await }).await
        }
        .instrument(span)
        .await
    }

    /// The process a hook is for and the event it is; `None` when it was kept instead (its
    /// scoringId unknown past the grace, or its body unusable).
    async fn hook_event(
        &self,
        hook: ReceivedHook,
    ) -> Result<Option<(ProcessKey, TruckEvent, u32)>, RetryLater> {
        let alias = keys::scoring_alias(&hook.scoring_id);
        let Some(key) = self.process_of(&alias).await? else {
            let waited = Duration::from_millis(now_ms().saturating_sub(hook.queued_at_ms()));
            if waited < self.unknown_scoring_grace {
                // The init result may not be written yet; the FIFO group waits for it.
                return Err(RetryLater::NotYet(format!("scoringId {} is not mapped yet", hook.scoring_id)));
            }
            let reason = format!("unknown scoringId after {}s", waited.as_secs());
            let at = hook.received_at_ms;
            self.engine.quarantine(hook.reference().kept(None), reason, hook.body, at).await?;
            return Ok(None);
        };
        match HookPayload::parse(hook.kind, hook.body.as_bytes()) {
            Ok(payload) => {
                let event = TruckEvent::Hook {
                    id: hook.hook_id,
                    by_content: hook.by_content,
                    payload,
                    received_at_ms: hook.received_at_ms,
                    scoring_id: Some(hook.scoring_id.clone()),
                };
                Ok(Some((key, event, hook.replays)))
            }
            Err(e) => {
                let at = hook.received_at_ms;
                self.engine.quarantine(hook.reference().kept(None), e.to_string(), hook.body, at).await?;
                Ok(None)
            }
        }
    }

    async fn process_of(&self, alias: &str) -> Result<Option<ProcessKey>, RetryLater> {
        if let Some(key) = self.known_scorings.get(alias) {
            return Ok(Some(key));
        }
        let key = self.engine.store.resolve_alias(alias).await?;
        if let Some(key) = &key {
            self.known_scorings.remember(alias.to_owned(), key.clone());
        }
        Ok(key)
    }

    /// Sent as `Idempotency-Key` (useful only if MUST honours it): one per effect, not per attempt.
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
        effect: &TruckEffect,
        attempt: &Attempt,
    ) -> Result<Option<TruckEvent>, EffectFailure> {
        let key = effect.key();
        let idem = Self::idempotency_key(p, &key);
        let engine = &self.engine;
        match effect {
            TruckEffect::InitScoring { .. } => {
                let request = InitRequest::for_request(&p.request);
                let scoring_id = engine.call_once(attempt, || self.must.init(&request, &idem)).await?;
                Ok(Some(TruckEvent::Initialized { scoring_id }))
            }
            TruckEffect::SubmitDocuments { round, type_ids } => {
                let sid = Self::scoring_id(p)?;
                let mut documents = Vec::new();
                for type_id in type_ids {
                    let mut blobs = Vec::new();
                    for (i, doc) in p.request.documents.iter().filter(|d| d.type_id == *type_id).enumerate() {
                        let blob_id = self.upload(p, &format!("{key}-upload-{type_id}-{i}"), doc).await?;
                        blobs.push(BlobRef { blob_id, name: doc.file_name.clone() });
                    }
                    if blobs.is_empty() {
                        let message = format!("no document of type {type_id} to upload");
                        return Err(EffectFailure::permanent("document-missing", message));
                    }
                    documents.push(DocumentRef { type_id: *type_id, blobs });
                }
                let request = DocumentsRequest { documents };
                engine.call_once(attempt, || self.must.associate_documents(sid, &request, &idem)).await?;
                Ok(Some(TruckEvent::DocumentsSubmitted { round: *round }))
            }
            TruckEffect::SubmitContract { round, .. } => {
                let sid = Self::scoring_id(p)?;
                let card = p.contract_card();
                engine.call_once(attempt, || self.must.submit_contract(sid, &card, &idem)).await?;
                Ok(Some(TruckEvent::ContractSubmitted { round: *round }))
            }
            TruckEffect::RequestPayment { insurer, method } => {
                let sid = Self::scoring_id(p)?;
                let request = PaymentRequest::for_insurer(insurer);
                // Changelog v2: 403 means this insurer did not approve (a refusal: nothing
                // changed at MUST); the process takes the next offer.
                let refused = engine
                    .call_once(attempt, || async {
                        match self.must.request_payment(sid, *method, &request, &idem).await {
                            Ok(()) => Ok(None),
                            Err(CallError::Refused { status: 403, message, .. }) => Ok(Some(message)),
                            Err(e) => Err(e),
                        }
                    })
                    .await?;
                match refused {
                    None => Ok(Some(TruckEvent::PaymentRequested { insurer: insurer.clone() })),
                    Some(message) => Err(EffectFailure::Permanent(ErrorReport::integration(
                        PAYMENT_REFUSED,
                        format!("HTTP 403: {message}"),
                    ))),
                }
            }
            TruckEffect::ArchiveFiles { purpose, files } => self.archive(p, *purpose, files, attempt).await,
            TruckEffect::SubmitPaymentOrder { document } => {
                let sid = Self::scoring_id(p)?;
                let blob_id = self.upload(p, &format!("{key}-upload"), document).await?;
                let request = PaymentOrderRequest { blob_id };
                engine.call_once(attempt, || self.must.submit_payment_order(sid, &request, &idem)).await?;
                Ok(Some(TruckEvent::PaymentOrderSubmitted))
            }
            TruckEffect::Notify(notification) => {
                self.outbox.publish(notification).await?;
                Ok(None)
            }
        }
    }

    /// Uploads one of the bank's documents to MUST (`POST /api/blob`). Repeatable: a blob
    /// uploaded again after a crash is one nothing refers to.
    async fn upload(&self, p: &TruckProcess, key: &str, doc: &BankDocument) -> Result<BlobId, EffectFailure> {
        let idem = Self::idempotency_key(p, key);
        let bucket = &self.documents_bucket;
        let bytes = self.objects.get(bucket, &doc.s3_key).await?;
        self.engine.call(key, || self.must.upload_blob(&doc.file_name, bytes.clone(), &idem)).await
    }

    /// Downloads MUST's files into S3. A file that cannot be had (refused, over the size
    /// cap, or still failing after [`ARCHIVE_ATTEMPTS`]) is marked pending, kept for an
    /// operator's replay, and the rest goes on: an issued policy never fails for it.
    async fn archive(
        &self,
        p: &TruckProcess,
        purpose: ArchivePurpose,
        sources: &[MustFile],
        attempt: &Attempt,
    ) -> Result<Option<TruckEvent>, EffectFailure> {
        let folder = match purpose {
            ArchivePurpose::Policy => "policies",
            ArchivePurpose::Invoice => "invoices",
            ArchivePurpose::Draft => "drafts",
        };
        let last_try = p.outbox.failures(&attempt.effect) + 1 >= ARCHIVE_ATTEMPTS;
        let (mut files, mut pending) = (Vec::new(), Vec::new());
        for source in sources {
            let source_id = source.source_id();
            let download = self.engine.call("download", || self.must.download(source, MAX_FILE_BYTES)).await;
            let reason = match download {
                Ok(file) => {
                    let stem = format!("{folder}/{}/{source_id}", p.id);
                    files.push(
                        archive_file(&self.objects, &self.archive_bucket, &stem, &source_id, file).await?,
                    );
                    continue;
                }
                Err(EffectFailure::Permanent(report)) => format!("{}: {}", report.code, report.message),
                Err(EffectFailure::Later(RetryLater::Call(e))) if last_try => {
                    format!("still failing after {ARCHIVE_ATTEMPTS} attempts: {e}")
                }
                Err(other) => return Err(other),
            };
            tracing::warn!(file = %source_id, %reason, "file not archived; marked pending");
            pending.push(PendingFile { blob_id: source_id, reason });
        }
        if !pending.is_empty() && purpose != ArchivePurpose::Draft {
            let origin = KeptOrigin::ArchivePending { process: p.key(), attempt: attempt.number };
            let reason = format!("{} {} file(s) not archived", pending.len(), purpose.name());
            crate::services::keep::keep(
                &self.engine.store,
                &Quarantined::new(origin, reason, String::new(), now_ms()),
            )
            .await?;
        }
        Ok(Some(TruckEvent::FilesArchived { purpose, files, pending }))
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
