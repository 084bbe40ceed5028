//! What every hook function does: authenticate, validate, store, enqueue.
//!
//! The answer is 200 only once the hook is durable in DynamoDB *and* on the
//! FIFO queue; otherwise 5xx, so MUST retries, and the retry completes
//! whatever part was missing (a stored duplicate is enqueued again; the FIFO
//! deduplication id and the process's applied-event list absorb the repeat).

use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::hook_auth::{HookAuth, HookCredentials};
use super::quarantine::keep;
use super::Reply;
use crate::domain::ids::ScoringId;
use crate::domain::must::hook::{HookKind, HookPayload};
use crate::ports::{
    now_ms, HookStore, InfraError, ProcessMessage, ProcessQueue, QuarantineStore, Quarantined, ReceivedHook,
    Recorded,
};

/// Bodies above this are not processed (they are quarantined with their first bytes).
pub const MAX_HOOK_BODY: usize = 200 * 1024;

/// The parts of an HTTP request a hook function looks at.
pub struct HookRequest<'a> {
    pub scoring_id: Option<&'a str>,
    pub credentials: HookCredentials<'a>,
    pub body: &'a [u8],
}

/// The hook's id: MUST's `webhook-id` when usable, else a digest of kind and body
/// (MUST retries the same hook with the same body).
pub fn hook_id(kind: HookKind, webhook_id: Option<&str>, body: &[u8]) -> String {
    if let Some(id) = webhook_id.filter(|id| {
        (1..=100).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return id.to_owned();
    }
    let mut h = Sha256::new();
    h.update(kind.path().as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

pub struct HookIntake<S, Q> {
    pub store: S,
    pub queue: Q,
    pub auth: HookAuth,
}

impl<S, Q> HookIntake<S, Q>
where
    S: HookStore + QuarantineStore + Sync,
    Q: ProcessQueue + Sync,
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
        let hook_id = hook_id(kind, req.credentials.id, req.body);
        if let Some(reason) = check_body(kind, req.body) {
            return self.quarantine(kind, &scoring_id, &hook_id, req.body, reason).await;
        }
        let hook = ReceivedHook {
            scoring_id,
            kind,
            hook_id: hook_id.clone(),
            body: String::from_utf8_lossy(req.body).into_owned(),
            received_at_ms: now_ms(),
        };
        // MUST's retries of one hook share its id, so the queue keeps one of them.
        let dedup = hook_id.clone();
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

    async fn quarantine(
        &self,
        kind: HookKind,
        scoring_id: &ScoringId,
        hook_id: &str,
        body: &[u8],
        reason: String,
    ) -> Reply {
        let kept = &body[..body.len().min(MAX_HOOK_BODY)];
        let item = Quarantined {
            id: format!("hook-{scoring_id}-{}-{hook_id}", kind.path().replace('/', "-")),
            source: "hook".into(),
            reason: reason.clone(),
            body: String::from_utf8_lossy(kept).into_owned(),
            origin: hook_origin(kind, scoring_id, hook_id),
            received_at_ms: now_ms(),
        };
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

/// Where a quarantined hook came from, as replay reads it back.
pub fn hook_origin(kind: HookKind, scoring_id: &ScoringId, hook_id: &str) -> serde_json::Value {
    json!({"kind": kind, "scoringId": scoring_id, "hookId": hook_id})
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
    Q: ProcessQueue + Sync,
{
    let recorded = store.record_hook(&hook).await?;
    let group = hook.scoring_id.to_string();
    queue.enqueue(&ProcessMessage::Hook(hook), &group, dedup).await?;
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_id_prefers_a_clean_webhook_id_and_else_digests_the_body() {
        assert_eq!(hook_id(HookKind::Started, Some("msg_2KW"), b"{}"), "msg_2KW");
        let a = hook_id(HookKind::Started, Some("bad id/../"), b"{}");
        let b = hook_id(HookKind::Started, None, b"{}");
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(b, hook_id(HookKind::Approved, None, b"{}"), "kind is part of the digest");
        assert_ne!(b, hook_id(HookKind::Started, None, b"{ }"));
    }
}
