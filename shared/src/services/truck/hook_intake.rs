//! What every hook function does: authenticate, validate, store, enqueue.
//!
//! The answer is 200 only once the hook is durable in DynamoDB *and* on the
//! FIFO queue; otherwise 5xx, so MUST retries, and the retry completes
//! whatever part was missing (a stored duplicate is enqueued again; the
//! process's applied-event list absorbs the repeat).
//!
//! MUST's documents define no delivery id. When MUST sends none, the hook's id is
//! a digest of its scoringId, path and body, and every delivery goes on the queue:
//! a repeat and a new hook with the same body (a second `upload-failed` after a
//! re-sent document) look alike here, and only the process, which knows whether
//! we called MUST in between, can tell them apart.

use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::domain::ids::ScoringId;
use crate::domain::must::hook::{HookKind, HookPayload};
use crate::ports::{
    now_ms, HookStore, InfraError, KeptOrigin, QuarantineStore, Quarantined, ReceivedHook, Recorded,
    TruckMessage, TruckQueue,
};
use crate::services::keep::keep;
use crate::services::truck::hook_auth::{HookAuth, HookCredentials};
use crate::services::Reply;

/// Bodies above this are not processed (they are quarantined with their first bytes).
pub const MAX_HOOK_BODY: usize = 200 * 1024;

/// The parts of an HTTP request a hook function looks at.
pub struct HookRequest<'a> {
    pub scoring_id: Option<&'a str>,
    pub credentials: HookCredentials<'a>,
    pub body: &'a [u8],
}

/// The hook's id, and whether it was derived from the content: MUST's `webhook-id`
/// when it sends a usable one, else a digest of scoringId, path and body (MUST retries
/// a hook with the same body; hooks of different processes never share an id).
pub fn hook_id(
    scoring_id: &ScoringId,
    kind: HookKind,
    webhook_id: Option<&str>,
    body: &[u8],
) -> (String, bool) {
    if let Some(id) = webhook_id.filter(|id| {
        (1..=100).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return (id.to_owned(), false);
    }
    let mut h = Sha256::new();
    h.update(scoring_id.as_str().as_bytes());
    h.update(b"\n");
    h.update(kind.path().as_bytes());
    h.update(b"\n");
    h.update(body);
    (hex::encode(h.finalize()), true)
}

/// The FIFO deduplication id of one delivery: a delivery id absorbs MUST's retries for
/// five minutes; a content id must not (a new hook may have the same content), so each
/// delivery is its own message.
fn dedup_id(hook: &ReceivedHook) -> String {
    if hook.by_content {
        format!("{}-{}", hook.hook_id, hook.received_at_ms)
    } else {
        hook.hook_id.clone()
    }
}

pub struct HookIntake<S, Q> {
    pub store: S,
    pub queue: Q,
    pub auth: HookAuth,
}

impl<S, Q> HookIntake<S, Q>
where
    S: HookStore + QuarantineStore + Sync,
    Q: TruckQueue + Sync,
{
    pub async fn receive(&self, kind: HookKind, req: HookRequest<'_>) -> Reply {
        // Before anything is read or stored: a refused call costs no write and no message.
        if let Err(why) = self.auth.verify(&req.credentials, req.body, (now_ms() / 1000) as i64) {
            tracing::warn!(hook = kind.path(), reason = %why, "hook refused");
            return Reply::new(401, json!({"error": "unauthorized"}));
        }
        let scoring_id = match ScoringId::parse(req.scoring_id.unwrap_or_default()) {
            Ok(id) => id,
            Err(e) => return Reply::new(400, json!({"error": e.to_string()})),
        };
        let span = tracing::info_span!("hook", scoring_id = %scoring_id, hook = kind.path());
        self.accept(kind, scoring_id, req).instrument(span).await
    }

    async fn accept(&self, kind: HookKind, scoring_id: ScoringId, req: HookRequest<'_>) -> Reply {
        let (hook_id, by_content) = hook_id(&scoring_id, kind, req.credentials.id, req.body);
        if let Some(reason) = check_body(kind, req.body) {
            let origin = KeptOrigin::Hook { kind, scoring_id, hook_id, by_content, replays: 0 };
            return self.quarantine(origin, req.body, reason).await;
        }
        let hook = ReceivedHook {
            scoring_id,
            kind,
            hook_id: hook_id.clone(),
            by_content,
            body: String::from_utf8_lossy(req.body).into_owned(),
            received_at_ms: now_ms(),
            replays: 0,
        };
        let dedup = dedup_id(&hook);
        match store_and_enqueue(&self.store, &self.queue, hook, &dedup).await {
            Ok(recorded) => {
                let status = match recorded {
                    Recorded::New => "accepted",
                    Recorded::Duplicate => "duplicate",
                };
                tracing::info!(hook_id, status, "hook accepted");
                Reply::new(200, json!({"status": status, "hookId": hook_id}))
            }
            Err(e) => {
                tracing::error!(error = %e, "hook not stored and enqueued; MUST will retry");
                Reply::new(503, json!({"error": "temporarily unavailable, retry"}))
            }
        }
    }

    async fn quarantine(&self, origin: KeptOrigin, body: &[u8], reason: String) -> Reply {
        let kept = &body[..body.len().min(MAX_HOOK_BODY)];
        let item =
            Quarantined::new(origin, reason.clone(), String::from_utf8_lossy(kept).into_owned(), now_ms());
        match keep(&self.store, &item).await {
            // 200 so MUST stops retrying: the hook is kept for replay after a fix.
            Ok(()) => Reply::new(200, json!({"status": "quarantined", "reason": reason})),
            Err(e) => {
                tracing::error!(error = %e, "hook could not be quarantined; MUST will retry");
                Reply::new(503, json!({"error": "temporarily unavailable, retry"}))
            }
        }
    }
}

/// Why a hook's body cannot be processed, if it cannot (size, encoding, payload).
pub fn check_body(kind: HookKind, body: &[u8]) -> Option<String> {
    if body.len() > MAX_HOOK_BODY {
        return Some(format!("body of {} bytes is over the {MAX_HOOK_BODY}-byte limit", body.len()));
    }
    match std::str::from_utf8(body) {
        Err(_) => Some("body is not UTF-8".to_owned()),
        Ok(_) => HookPayload::parse(kind, body).err().map(|e| e.to_string()),
    }
}

/// Stores a hook (once) and puts it on its process's FIFO group under `dedup` (the
/// queue drops a repeat of it for five minutes); both must succeed.
pub async fn store_and_enqueue<S, Q>(
    store: &S,
    queue: &Q,
    hook: ReceivedHook,
    dedup: &str,
) -> Result<Recorded, InfraError>
where
    S: HookStore + Sync,
    Q: TruckQueue + Sync,
{
    let recorded = store.record_hook(&hook).await?;
    let group = hook.scoring_id.to_string();
    queue.enqueue(&TruckMessage::Hook(hook), &group, dedup).await?;
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_id_prefers_a_clean_webhook_id_and_else_digests_scoring_id_path_and_body() {
        let sid = ScoringId::parse("sc-1").unwrap();
        assert_eq!(hook_id(&sid, HookKind::Started, Some("msg_2KW"), b"{}"), ("msg_2KW".to_owned(), false));
        let (a, by_content) = hook_id(&sid, HookKind::Started, Some("bad id/../"), b"{}");
        assert!(by_content);
        assert_eq!((a.clone(), true), hook_id(&sid, HookKind::Started, None, b"{}"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, hook_id(&sid, HookKind::Approved, None, b"{}").0, "kind is part of the digest");
        assert_ne!(a, hook_id(&sid, HookKind::Started, None, b"{ }").0);
        let other = ScoringId::parse("sc-2").unwrap();
        assert_ne!(a, hook_id(&other, HookKind::Started, None, b"{}").0, "two processes never share an id");
    }

    #[test]
    fn each_delivery_of_a_content_identified_hook_is_its_own_message() {
        let hook = |id: &str, by_content, at| ReceivedHook {
            scoring_id: ScoringId::parse("sc-1").unwrap(),
            kind: HookKind::DocumentsUploadFailed,
            hook_id: id.into(),
            by_content,
            body: "{}".into(),
            received_at_ms: at,
            replays: 0,
        };
        assert_ne!(dedup_id(&hook("d", true, 1)), dedup_id(&hook("d", true, 2)));
        assert_eq!(dedup_id(&hook("msg_1", false, 1)), dedup_id(&hook("msg_1", false, 2)));
    }
}
