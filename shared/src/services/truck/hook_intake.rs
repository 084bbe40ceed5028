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
use crate::domain::links::{host_of, is_trusted_https};
use crate::domain::must::hook::{HookKind, HookPayload};
use crate::domain::truck::process::caused_by;
use crate::ports::{
    now_ms, HookBody, HookStore, InfraError, IntakeCheck, KeptOrigin, QuarantineStore, Quarantined,
    ReceivedHook, Recorded, TruckMessage, TruckQueue, QUEUE_MESSAGE_LIMIT,
};
use crate::services::keep::keep;
use crate::services::truck::hook_auth::{HookCredentials, HookKeys, Network};
use crate::services::Reply;
use crate::telemetry::Unit;

/// Bodies above this are not processed (they are quarantined with their first bytes).
pub const MAX_HOOK_BODY: usize = 200 * 1024;

/// Signed bodies above this are refused (413) before their signature is checked: hashing
/// megabytes for a caller not yet authenticated is work anyone could ask for, and a MUST
/// that signs is one polis agreed a format with (its documents define no signing). In the
/// other modes the caller is authenticated first, for free: an authenticated body of any
/// size API Gateway lets through is answered 200 (over [`MAX_HOOK_BODY`]: kept, its first
/// bytes, for a person).
pub const MAX_SIGNED_BODY: usize = 1024 * 1024;

/// The parts of an HTTP request a hook function looks at.
pub struct HookRequest<'a> {
    pub scoring_id: Option<&'a str>,
    /// Where the call came from, as API Gateway saw it.
    pub source_ip: Option<std::net::IpAddr>,
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
    if let Some(id) = webhook_id.filter(|id| is_usable_delivery_id(id)) {
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

/// Whether a `webhook-id` can be our hook's id (a key, a deduplication id, and the `hookId`
/// of the answer as `contracts/openapi.yaml` has it).
fn is_usable_delivery_id(id: &str) -> bool {
    (1..=100).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
    /// The keys in force (swapped when the secret is rotated).
    pub auth: HookKeys,
    /// Networks a hook may come from (any, when empty).
    pub sources: Vec<Network>,
    /// Hosts a payment link may point to (any, over https, when empty): a link
    /// elsewhere is kept for a person rather than shown to a customer.
    pub payment_link_hosts: Vec<String>,
}

impl<S, Q> HookIntake<S, Q>
where
    S: HookStore + QuarantineStore + Sync,
    Q: TruckQueue + Sync,
{
    pub async fn receive(&self, kind: HookKind, req: HookRequest<'_>) -> Reply {
        // Before anything is read or stored: a refused call costs no write and no message.
        if !self.sources.is_empty()
            && !req.source_ip.is_some_and(|ip| self.sources.iter().any(|n| n.contains(ip)))
        {
            tracing::warn!(hook = kind.path(), "hook refused: not from an allowed network");
            return Reply::new(403, json!({"error": "forbidden"}));
        }
        let auth = self.auth.current();
        if auth.is_signed() && req.body.len() > MAX_SIGNED_BODY {
            let error = format!("body of {} bytes is over the {MAX_SIGNED_BODY}-byte limit", req.body.len());
            tracing::warn!(hook = kind.path(), reason = %error, "hook refused");
            return Reply::new(413, json!({ "error": error }));
        }
        if let Err(why) = auth.verify(&req.credentials, req.body, (now_ms() / 1000) as i64) {
            tracing::warn!(hook = kind.path(), reason = %why, "hook refused");
            return Reply::new(401, json!({"error": "unauthorized"}));
        }
        // From here the caller is MUST: whatever polis cannot use is kept and answered 200 (MUST
        // retries anything else forever, and sends a process's hooks one at a time).
        let raw = req.scoring_id.unwrap_or_default();
        let scoring_id = match ScoringId::parse(raw) {
            Ok(id) => id,
            Err(e) => {
                let scoring_id: String = raw.chars().take(128).collect();
                let origin = KeptOrigin::UnroutedHook { kind, scoring_id };
                return self.quarantine(origin, req.body, e.to_string()).await;
            }
        };
        let span = tracing::info_span!("hook", scoring_id = %scoring_id, hook = kind.path());
        self.accept(kind, scoring_id, auth.is_signed(), req).instrument(span).await
    }

    async fn accept(
        &self,
        kind: HookKind,
        scoring_id: ScoringId,
        signed: bool,
        req: HookRequest<'_>,
    ) -> Reply {
        let (hook_id, by_content) = hook_id(&scoring_id, kind, req.credentials.id, req.body);
        // A signed delivery is replay-protected by its id: one we cannot use as an id must
        // not silently become a content id (which a replay onto this path would share).
        let unusable_id = (signed && by_content)
            .then(|| (IntakeCheck::WebhookId, "its webhook-id cannot be used as an id".to_owned()));
        let kept = match check_body(kind, req.body) {
            Some(reason) => Some((None, reason)),
            None => unusable_id
                .or_else(|| intake_check(kind, &scoring_id, req.body, &self.payment_link_hosts))
                .map(|(check, reason)| (Some(check), reason)),
        };
        if let Some((check, reason)) = kept {
            let origin = KeptOrigin::Hook { kind, scoring_id, hook_id, by_content, replays: 0, check };
            return self.quarantine(origin, req.body, reason).await;
        }
        let hook = ReceivedHook {
            scoring_id: scoring_id.clone(),
            kind,
            hook_id: hook_id.clone(),
            by_content,
            body: String::from_utf8_lossy(req.body).into_owned(),
            received_at_ms: now_ms(),
            replays: 0,
            requeued_at_ms: 0,
        };
        let dedup = dedup_id(&hook);
        match store_and_enqueue(&self.store, &self.queue, hook, &dedup).await {
            Ok(Recorded::UsedElsewhere) => {
                tracing::warn!(hook_id, "hook kept: its delivery id was first used on another path");
                let check = Some(IntakeCheck::DeliveryIdUsedElsewhere);
                let origin = KeptOrigin::Hook { kind, scoring_id, hook_id, by_content, replays: 0, check };
                let reason = "its webhook-id was first used for another scoringId or hook".to_owned();
                self.quarantine(origin, req.body, reason).await
            }
            Ok(recorded) => {
                let status = if recorded == Recorded::New { "accepted" } else { "duplicate" };
                tracing::info!(hook_id, status, "hook accepted");
                crate::telemetry::record(
                    &[("Hook", kind.path()), ("Status", status)],
                    &[("HookReceived", Unit::Count, 1.0)],
                );
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

/// The checks a hook that passed authentication and parses must still pass before it
/// reaches its process, each for a reason a person may weigh (and override, by the kept
/// item's id): the intake and a replay apply the same ones.
pub fn intake_check(
    kind: HookKind,
    scoring_id: &ScoringId,
    body: &[u8],
    payment_link_hosts: &[String],
) -> Option<(IntakeCheck, String)> {
    names_another_scoring(scoring_id, body)
        .map(|reason| (IntakeCheck::NamesAnotherScoring, reason))
        .or_else(|| check_link(kind, body, payment_link_hosts).map(|r| (IntakeCheck::PaymentLinkHost, r)))
}

/// Why a payment link cannot go to the bank, if it cannot: a partner's page we were not told of.
fn check_link(kind: HookKind, body: &[u8], payment_link_hosts: &[String]) -> Option<String> {
    // Only this hook carries a link: no second parse of any other on the hot path.
    if kind != HookKind::PaymentLinkGenerated {
        return None;
    }
    let Ok(HookPayload::PaymentLinkGenerated { url, .. }) = HookPayload::parse(kind, body) else {
        return None;
    };
    let host = host_of(&url).unwrap_or_default();
    (!is_trusted_https(&url, payment_link_hosts))
        .then(|| format!("payment link host {host} is not one of PaymentLinkHosts"))
}

/// A body that names a scoringId other than its path's: a signed hook replayed onto
/// another process (the signature does not cover the path). MUST's documented hooks
/// name none; one that does must name its own.
fn names_another_scoring(path: &ScoringId, body: &[u8]) -> Option<String> {
    // Most bodies never mention it: no parse for them.
    if !body.windows(9).any(|w| w == b"scoringId") {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let named = json.get("scoringId")?.as_str()?;
    (named != path.as_str()).then(|| "the body names another scoringId than its path".to_owned())
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
/// queue drops a repeat of it for five minutes); both must succeed, and a retry by MUST
/// completes whichever half failed.
///
/// A hook known by its content (MUST's documents define no delivery id) that MUST's own
/// progress sends (started, approved, issued, ...) is written to both at once: its id
/// names its path and scoringId, so it cannot have been used elsewhere, and a message
/// whose record is missing is still a whole message (the process applies a repeat once
/// by its id). MUST waits for the slower write, not for both in turn. A hook one of our
/// calls causes is recorded first: its repeat is told by when it came (see
/// `Outbox::applied_key`), and a second message beside a failed record could look new.
/// A delivery id may have been used on another path (a replayed signed delivery): its
/// record decides first, and one used elsewhere is neither stored nor queued.
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
    let group = hook.scoring_id.to_string();
    // A hook too large for the queue goes by reference to its record: recorded first.
    let fits = fits_on_queue(&hook);
    // A hook our own call causes is told from a repeat by when it was received: a message
    // sent beside a failed record, then MUST's retry, could count twice. Those go in turn.
    let at_once = fits && hook.by_content && caused_by(hook.kind).is_none();
    if at_once {
        let message = TruckMessage::Hook(hook);
        let TruckMessage::Hook(hook) = &message else { unreachable!("built as a hook just above") };
        let (recorded, queued) =
            tokio::join!(store.record_hook(hook, HookBody::Digest), queue.enqueue(&message, &group, dedup));
        queued?;
        return recorded;
    }
    let body = if fits { HookBody::Digest } else { HookBody::Kept };
    let recorded = store.record_hook(&hook, body).await?;
    if recorded != Recorded::UsedElsewhere {
        let message = match fits {
            true => TruckMessage::Hook(hook),
            false => TruckMessage::StoredHook(hook.reference()),
        };
        queue.enqueue(&message, &group, dedup).await?;
    }
    Ok(recorded)
}

/// Whether the hook's message, its body escaped as JSON, fits [`QUEUE_MESSAGE_LIMIT`]. A
/// body of quotes, backslashes and control characters grows up to sixfold when escaped:
/// a hook MUST may send (up to [`MAX_HOOK_BODY`]) can pass the limit, and SQS would refuse
/// it on every retry, stopping that process's hooks for good.
fn fits_on_queue(hook: &ReceivedHook) -> bool {
    /// The message's fields besides the body, generously.
    const ENVELOPE: usize = 1024;
    let room = QUEUE_MESSAGE_LIMIT - ENVELOPE - hook.hook_id.len();
    // Most bodies fit however they escape: no count on the hot path.
    if hook.body.len() * 6 <= room {
        return true;
    }
    let escaped: usize = hook
        .body
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum();
    escaped <= room
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemorySqs, MemoryTable};
    use crate::services::test_support::{drain, fifo, kept, sid, Flaky, Recorder};
    use crate::services::truck::hook_auth::HookAuth;

    const SECRET: &str = "local-hook-secret-0123456789";
    const APPROVED: &str = r#"{"insuranceCompany":"ingostrah","writtenPremium":17847.29}"#;

    fn intake<S, Q>(store: S, queue: Q) -> HookIntake<S, Q> {
        HookIntake {
            store,
            queue,
            auth: HookAuth::from_config("shared-secret", SECRET).unwrap().into(),
            sources: Vec::new(),
            payment_link_hosts: vec!["pay.must.example".into()],
        }
    }

    /// A request with our secret, for `sc-1`, without a delivery id.
    fn request(body: &[u8]) -> HookRequest<'_> {
        HookRequest {
            scoring_id: Some("sc-1"),
            source_ip: None,
            credentials: HookCredentials { secret: Some(SECRET.as_bytes()), ..Default::default() },
            body,
        }
    }

    fn status(reply: &Reply) -> (u16, &str) {
        (reply.status, reply.body["status"].as_str().unwrap_or_default())
    }

    #[tokio::test]
    async fn a_caller_without_the_secret_gets_401_and_nothing_is_stored_queued_or_kept() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let hooks = intake(table.clone(), queue.clone());
        for secret in [None, Some(&b"local-hook-secret-0123456780"[..])] {
            for body in [APPROVED.as_bytes(), b"{not json"] {
                let mut req = request(body);
                req.credentials.secret = secret;
                let reply = hooks.receive(HookKind::Approved, req).await;
                assert_eq!(reply, Reply::new(401, json!({"error": "unauthorized"})));
            }
        }
        assert_eq!(table.hooks(), 0);
        assert!(queue.sent().is_empty());
        assert!(kept(&table).await.is_empty(), "a refused caller's body is not kept either");
    }

    #[tokio::test]
    async fn an_authenticated_hook_with_a_bad_scoring_id_is_kept_naming_the_rule_and_answered_200() {
        // MUST retries anything but 200 forever, one hook at a time: a 400 would stop its stream.
        let (table, queue) = (MemoryTable::default(), fifo());
        let hooks = intake(table.clone(), queue.clone());
        for scoring_id in [Some("../sc-1"), Some("a#b"), Some(""), None] {
            let mut req = request(APPROVED.as_bytes());
            req.scoring_id = scoring_id;
            let reply = hooks.receive(HookKind::Approved, req).await;
            assert_eq!(status(&reply), (200, "quarantined"), "{scoring_id:?}");
            let reason = reply.body["reason"].as_str().unwrap();
            assert!(reason.starts_with("scoringId must be 1 to 64 characters of A-Z"), "{reason}");
        }
        assert_eq!(table.hooks(), 0);
        assert!(queue.sent().is_empty());
        let items = kept(&table).await;
        assert_eq!(items.len(), 3, "one per scoringId sent (none and empty are one): {items:?}");
        assert!(items.iter().all(|i| matches!(i.origin, KeptOrigin::UnroutedHook { .. })));
        // Without the secret, the same calls are refused before anything is read.
        let mut req = request(APPROVED.as_bytes());
        (req.scoring_id, req.credentials.secret) = (Some("../sc-1"), None);
        assert_eq!(hooks.receive(HookKind::Approved, req).await.status, 401);
    }

    #[tokio::test]
    async fn a_valid_hook_is_stored_and_queued_in_its_scoring_group_before_200() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let reply = intake(table.clone(), queue.clone())
            .receive(HookKind::Approved, request(APPROVED.as_bytes()))
            .await;
        let (expected_id, _) = hook_id(&sid("sc-1"), HookKind::Approved, None, APPROVED.as_bytes());
        assert_eq!(reply, Reply::new(200, json!({"status": "accepted", "hookId": expected_id})));
        assert_eq!(table.hooks(), 1);
        let messages: Vec<(Option<String>, TruckMessage)> = drain(&queue);
        let [(group, TruckMessage::Hook(hook))] = &messages[..] else { panic!("{messages:?}") };
        assert_eq!(group.as_deref(), Some("sc-1"));
        assert_eq!(
            (hook.kind, hook.hook_id.as_str(), hook.by_content, hook.body.as_str(), hook.replays),
            (HookKind::Approved, expected_id.as_str(), true, APPROVED, 0)
        );
        assert!(kept(&table).await.is_empty());
    }

    #[tokio::test]
    async fn a_signed_hook_is_accepted_under_its_webhook_id() {
        let secret = crate::services::truck::hook_auth::tests::OLD;
        let (table, queue) = (MemoryTable::default(), fifo());
        let hooks = HookIntake {
            store: table.clone(),
            queue: queue.clone(),
            auth: HookAuth::from_config("standard-webhooks", secret).unwrap().into(),
            sources: Vec::new(),
            payment_link_hosts: Vec::new(),
        };
        let now = (now_ms() / 1000) as i64;
        let signature =
            crate::services::truck::hook_auth::sign(secret, "msg_2KW", now, APPROVED.as_bytes()).unwrap();
        let timestamp = now.to_string();
        let credentials = HookCredentials {
            id: Some("msg_2KW"),
            timestamp: Some(&timestamp),
            signature: Some(&signature),
            ..Default::default()
        };
        let req =
            HookRequest { scoring_id: Some("sc-1"), source_ip: None, credentials, body: APPROVED.as_bytes() };
        let reply = hooks.receive(HookKind::Approved, req).await;
        assert_eq!(reply, Reply::new(200, json!({"status": "accepted", "hookId": "msg_2KW"})));
        let messages: Vec<(Option<String>, TruckMessage)> = drain(&queue);
        assert!(
            matches!(&messages[..], [(_, TruckMessage::Hook(h))] if h.hook_id == "msg_2KW" && !h.by_content)
        );
        // The same body signed for another body's signature is refused.
        let req = HookRequest { scoring_id: Some("sc-1"), source_ip: None, credentials, body: b"{}" };
        assert_eq!(hooks.receive(HookKind::Approved, req).await.status, 401);
        assert_eq!(table.hooks(), 1);
    }

    #[tokio::test]
    async fn a_body_we_cannot_use_is_kept_with_its_reason_and_answered_200() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let hooks = intake(table.clone(), queue.clone());
        let body = br#"{"insuranceCompany":5,"writtenPremium":1000}"#;
        let reply = hooks.receive(HookKind::Approved, request(body)).await;
        let reason = "field insuranceCompany: expected an insurer code string";
        assert_eq!(reply, Reply::new(200, json!({"status": "quarantined", "reason": reason})));
        let items = kept(&table).await;
        let [item] = &items[..] else { panic!("{items:?}") };
        let (hook_id, _) = hook_id(&sid("sc-1"), HookKind::Approved, None, body);
        assert_eq!(
            item.origin,
            KeptOrigin::Hook {
                kind: HookKind::Approved,
                scoring_id: sid("sc-1"),
                hook_id,
                by_content: true,
                replays: 0,
                check: None
            }
        );
        assert_eq!((item.reason.as_str(), item.body.as_bytes()), (reason, &body[..]));
        assert_eq!(table.hooks(), 0, "not stored as a hook");
        assert!(queue.sent().is_empty(), "not queued to the process");

        let reply = hooks.receive(HookKind::PolicyIssued, request(&[0xFF, 0xFE, b'{'])).await;
        assert_eq!(status(&reply), (200, "quarantined"));
        assert_eq!(reply.body["reason"], "body is not UTF-8");
        assert_eq!(kept(&table).await.len(), 2);
    }

    #[tokio::test]
    async fn an_oversized_body_is_kept_with_its_first_bytes_only() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let body = vec![b' '; MAX_HOOK_BODY + 10];
        let reply = intake(table.clone(), queue.clone()).receive(HookKind::Started, request(&body)).await;
        assert_eq!(status(&reply), (200, "quarantined"));
        assert!(reply.body["reason"].as_str().unwrap().contains("over the 204800-byte limit"), "{reply:?}");
        let items = kept(&table).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].body.len(), MAX_HOOK_BODY);
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn a_delivery_id_used_again_on_another_scoring_id_or_hook_is_refused_and_not_queued() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let hooks = intake(table.clone(), queue.clone());
        let delivered = |scoring_id| {
            let mut req = request(APPROVED.as_bytes());
            req.scoring_id = Some(scoring_id);
            req.credentials.id = Some("msg_2KW");
            req
        };
        assert_eq!(status(&hooks.receive(HookKind::Approved, delivered("sc-1")).await), (200, "accepted"));
        assert_eq!(status(&hooks.receive(HookKind::Approved, delivered("sc-1")).await), (200, "duplicate"));
        for (kind, scoring_id) in [(HookKind::Approved, "sc-2"), (HookKind::PolicyIsPaid, "sc-1")] {
            let reply = hooks.receive(kind, delivered(scoring_id)).await;
            assert_eq!(status(&reply), (200, "quarantined"), "{kind:?} {scoring_id}: {reply:?}");
        }
        let messages: Vec<(Option<String>, TruckMessage)> = drain(&queue);
        assert_eq!(
            messages.len(),
            1,
            "only the first delivery is queued (the repeat is absorbed by the FIFO): {messages:?}"
        );
        let items = kept(&table).await;
        assert_eq!(items.len(), 2, "each replay kept for a person: {items:?}");
        assert!(items.iter().all(|i| matches!(
            i.origin,
            KeptOrigin::Hook { check: Some(IntakeCheck::DeliveryIdUsedElsewhere), .. }
        )));
    }

    #[tokio::test]
    async fn with_an_allow_list_only_its_networks_may_call_and_others_cost_nothing() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let mut hooks = intake(table.clone(), queue.clone());
        hooks.sources = vec!["203.0.113.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
        for (from, expected) in [
            (Some("203.0.113.7"), 200),
            (Some("2001:db8::1"), 200),
            (Some("::ffff:203.0.113.9"), 200),
            (Some("203.0.114.1"), 403),
            (Some("10.0.0.1"), 403),
            (None, 403),
        ] {
            let body = format!(r#"{{"insuranceCompany":"ingostrah","writtenPremium":{}}}"#, expected);
            let mut req = request(body.as_bytes());
            req.source_ip = from.map(|ip| ip.parse().unwrap());
            let reply = hooks.receive(HookKind::Approved, req).await;
            assert_eq!(reply.status, expected, "{from:?}: {reply:?}");
        }
        assert_eq!(table.hooks(), 1, "one accepted body (the three allowed calls carry the same one)");
        assert!(kept(&table).await.is_empty());
    }

    #[tokio::test]
    async fn a_body_naming_another_scoring_id_than_its_path_is_kept_not_queued() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let hooks = intake(table.clone(), queue.clone());
        let naming = |sid: &str| {
            format!(r#"{{"scoringId":"{sid}","insuranceCompany":"ingostrah","writtenPremium":1}}"#)
        };
        let own = hooks.receive(HookKind::Approved, request(naming("sc-1").as_bytes())).await;
        assert_eq!(status(&own), (200, "accepted"));
        let other = hooks.receive(HookKind::Approved, request(naming("sc-2").as_bytes())).await;
        assert_eq!(status(&other), (200, "quarantined"), "{other:?}");
        assert_eq!(drain::<TruckMessage>(&queue).len(), 1);
    }

    #[tokio::test]
    async fn a_payment_link_elsewhere_than_the_configured_hosts_is_kept_not_queued() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let hooks = intake(table.clone(), queue.clone());
        let link = |url: &str| format!(r#"{{"insuranceCompany":"ingostrah","paymentLink":"{url}"}}"#);
        let good = link("https://pay.must.example/pay/1");
        let reply = hooks.receive(HookKind::PaymentLinkGenerated, request(good.as_bytes())).await;
        assert_eq!(status(&reply), (200, "accepted"));
        for url in ["https://pay.evil.example/pay/1", "http://pay.must.example/pay/1"] {
            let reply = hooks.receive(HookKind::PaymentLinkGenerated, request(link(url).as_bytes())).await;
            assert_eq!(status(&reply), (200, "quarantined"), "{url}: {reply:?}");
        }
        assert_eq!(drain::<TruckMessage>(&queue).len(), 1, "only the trusted link goes on");
        assert_eq!(kept(&table).await.len(), 2);
    }

    #[tokio::test]
    async fn a_body_that_triples_when_made_text_is_still_kept_within_the_item_limit() {
        // 200 KiB of bytes that are not UTF-8: each becomes U+FFFD (3 bytes) as text.
        let (table, queue) = (MemoryTable::default(), fifo());
        let body = vec![0xFF; MAX_HOOK_BODY];
        let reply = intake(table.clone(), queue.clone()).receive(HookKind::Started, request(&body)).await;
        assert_eq!(status(&reply), (200, "quarantined"), "{reply:?}");
        let items = kept(&table).await;
        assert_eq!(items.len(), 1);
        assert!(items[0].body.len() <= crate::ports::MAX_KEPT_BODY);
        assert!(
            items[0].reason.contains(&format!("of {} bytes kept", 3 * MAX_HOOK_BODY)),
            "{}",
            items[0].reason
        );
    }

    #[tokio::test]
    async fn a_signed_body_over_the_limit_is_refused_before_its_signature_is_checked() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let mut hooks = intake(table.clone(), queue.clone());
        hooks.auth =
            HookAuth::from_config("standard-webhooks", crate::services::truck::hook_auth::tests::OLD)
                .unwrap()
                .into();
        let body = vec![b' '; MAX_SIGNED_BODY + 1];
        let reply = hooks.receive(HookKind::Started, request(&body)).await;
        assert_eq!(reply.status, 413, "{reply:?}");
        assert!(reply.body["error"].as_str().unwrap().contains("over the 1048576-byte limit"));
        assert_eq!(table.hooks(), 0);
        assert!(queue.sent().is_empty());
        assert!(kept(&table).await.is_empty());
    }

    #[tokio::test]
    async fn an_authenticated_body_of_any_size_is_answered_200_and_kept_when_too_large() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let hooks = intake(table.clone(), queue.clone());
        let body = vec![b' '; 3 * MAX_SIGNED_BODY];
        let reply = hooks.receive(HookKind::Started, request(&body)).await;
        assert_eq!(status(&reply), (200, "quarantined"), "{reply:?}");
        let mut unauthenticated = request(&body);
        unauthenticated.credentials.secret = None;
        assert_eq!(hooks.receive(HookKind::Started, unauthenticated).await.status, 401);
        assert_eq!((table.hooks(), queue.sent().len(), kept(&table).await.len()), (0, 0, 1));
    }

    #[tokio::test]
    async fn a_repeated_delivery_with_a_delivery_id_is_a_duplicate_and_one_message() {
        let (table, queue) = (MemoryTable::default(), fifo());
        let hooks = intake(table.clone(), queue.clone());
        let mut replies = Vec::new();
        for _ in 0..2 {
            let mut req = request(APPROVED.as_bytes());
            req.credentials.id = Some("msg_1");
            replies.push(hooks.receive(HookKind::Approved, req).await);
        }
        assert_eq!(replies[0], Reply::new(200, json!({"status": "accepted", "hookId": "msg_1"})));
        assert_eq!(replies[1], Reply::new(200, json!({"status": "duplicate", "hookId": "msg_1"})));
        assert_eq!(table.hooks(), 1);
        assert_eq!(queue.sent().len(), 1, "the queue drops the repeat by its delivery id");
    }

    #[tokio::test]
    async fn each_delivery_of_a_hook_known_by_content_is_its_own_message() {
        let (table, queue) = (MemoryTable::default(), Recorder::default());
        let hooks = intake(table.clone(), queue.clone());
        let first = hooks.receive(HookKind::DocumentsUploadFailed, request(b"{}")).await;
        let second = hooks.receive(HookKind::DocumentsUploadFailed, request(b"{}")).await;
        assert_eq!((status(&first), status(&second)), ((200, "accepted"), (200, "duplicate")));
        assert_eq!(first.body["hookId"], second.body["hookId"]);
        assert_eq!(table.hooks(), 1, "stored once");
        let messages = queue.messages();
        assert_eq!(
            messages.len(),
            2,
            "both deliveries are queued; the process tells a repeat from a new hook"
        );
        for (body, group, dedup) in &messages {
            let received = body["receivedAtMs"].as_u64().unwrap();
            assert_eq!(group, "sc-1");
            assert_eq!(
                *dedup,
                format!("{}-{received}", body["hookId"].as_str().unwrap()),
                "one id per delivery"
            );
        }
        // A delivery id is the deduplication id, whenever the delivery comes.
        let mut req = request(b"{}");
        req.credentials.id = Some("msg_7");
        hooks.receive(HookKind::DocumentsUploadFailed, req).await;
        assert_eq!(queue.messages()[2].2, "msg_7");
    }

    #[tokio::test]
    async fn a_signed_hook_not_stored_gets_503_and_is_not_queued() {
        let (store, queue) = (Flaky::new(MemoryTable::default()), fifo());
        let hooks = intake(store.clone(), queue.clone());
        let signed = || {
            let mut req = request(APPROVED.as_bytes());
            req.credentials.id = Some("msg_1");
            req
        };
        store.fail_next(1);
        let reply = hooks.receive(HookKind::Approved, signed()).await;
        assert_eq!(reply, Reply::new(503, json!({"error": "temporarily unavailable, retry"})));
        assert_eq!(store.inner.hooks(), 0);
        assert!(queue.sent().is_empty(), "its record decides first (it may be a replay from another path)");
        // MUST's retry gets through.
        assert_eq!(status(&hooks.receive(HookKind::Approved, signed()).await), (200, "accepted"));
        assert_eq!((store.inner.hooks(), queue.sent().len()), (1, 1));
    }

    #[tokio::test]
    async fn a_hook_known_by_content_not_stored_gets_503_and_its_retry_is_applied_once() {
        use crate::services::test_support::{up_to_payment, World};
        let w = World::new(MemoryTable::default());
        let runner = w.runner(false);
        up_to_payment(&w, &runner).await;
        let (store, queue) = (Flaky::new(w.table.clone()), fifo());
        let hooks = intake(store.clone(), queue.clone());
        store.fail_next(1);
        let reply = hooks.receive(HookKind::Approved, request(APPROVED.as_bytes())).await;
        assert_eq!(reply.status, 503, "the record failed: MUST is asked to send it again");
        // A later delivery (not within the same millisecond: each delivery is its own message).
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let retry = hooks.receive(HookKind::Approved, request(APPROVED.as_bytes())).await;
        assert_eq!(status(&retry), (200, "accepted"));
        let messages = drain::<TruckMessage>(&queue);
        assert_eq!(messages.len(), 2, "the first delivery's message went out beside the failed record");
        for (_, message) in messages {
            runner.handle(message).await.unwrap();
        }
        let offers: Vec<_> = w.notices().into_iter().filter(|(_, kind)| kind == "truck.offer").collect();
        assert_eq!(offers.len(), 1, "the approval is applied once: {offers:?}");
    }

    /// A port that takes `delay` for every call (paused time), to see which calls overlap.
    #[derive(Clone)]
    struct Slow<T> {
        inner: T,
        delay: std::time::Duration,
    }

    impl<T: HookStore + Sync> HookStore for Slow<T> {
        async fn record_hook(&self, hook: &ReceivedHook, body: HookBody) -> Result<Recorded, InfraError> {
            tokio::time::sleep(self.delay).await;
            self.inner.record_hook(hook, body).await
        }
        async fn hook_body(&self, hook: &crate::ports::HookRef) -> Result<Option<String>, InfraError> {
            self.inner.hook_body(hook).await
        }
    }

    impl<T: TruckQueue + Sync> TruckQueue for Slow<T> {
        async fn enqueue(&self, message: &TruckMessage, group: &str, dedup: &str) -> Result<(), InfraError> {
            tokio::time::sleep(self.delay).await;
            self.inner.enqueue(message, group, dedup).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hook_musts_progress_sends_waits_for_the_slower_write_others_for_both_in_turn() {
        let ms = std::time::Duration::from_millis;
        let store = Slow { inner: MemoryTable::default(), delay: ms(30) };
        let queue = Slow { inner: fifo(), delay: ms(50) };
        let by_content = crate::services::test_support::received(HookKind::Approved, APPROVED, 1);
        let started = tokio::time::Instant::now();
        let recorded = store_and_enqueue(&store, &queue, by_content, "d-1").await.unwrap();
        assert_eq!((recorded, started.elapsed()), (Recorded::New, ms(50)), "the put and the send at once");
        let signed = ReceivedHook {
            hook_id: "msg_2".into(),
            by_content: false,
            ..crate::services::test_support::received(HookKind::Approved, APPROVED, 2)
        };
        let started = tokio::time::Instant::now();
        let recorded = store_and_enqueue(&store, &queue, signed, "msg_2").await.unwrap();
        assert_eq!((recorded, started.elapsed()), (Recorded::New, ms(80)), "the record first, then the send");
        // A hook our payment request causes: its repeat is told by when it came, so in turn.
        let caused = crate::services::test_support::received(HookKind::PolicyIsPaid, "{}", 3);
        let started = tokio::time::Instant::now();
        let recorded = store_and_enqueue(&store, &queue, caused, "d-3").await.unwrap();
        assert_eq!((recorded, started.elapsed()), (Recorded::New, ms(80)), "recorded first");
        assert_eq!(queue.inner.sent().len(), 3);
    }

    #[tokio::test]
    async fn a_hook_stored_but_not_queued_gets_503_and_its_retry_is_queued() {
        let (table, queue) = (MemoryTable::default(), Flaky::new(MemorySqs::default()));
        let hooks = intake(table.clone(), queue.clone());
        queue.fail_next(1);
        let reply = hooks.receive(HookKind::Approved, request(APPROVED.as_bytes())).await;
        assert_eq!(reply.status, 503);
        assert_eq!(table.hooks(), 1, "stored before the queue failed");
        assert!(queue.inner.sent().is_empty());
        let retry = hooks.receive(HookKind::Approved, request(APPROVED.as_bytes())).await;
        assert_eq!(status(&retry), (200, "duplicate"));
        assert_eq!(queue.inner.sent().len(), 1, "the retry completes what was missing");
    }

    #[tokio::test]
    async fn a_hook_whose_message_would_pass_the_queue_limit_goes_by_reference_and_is_applied() {
        use crate::services::test_support::{up_to_payment, World};
        // ~130 KiB of JSON that is mostly whitespace: each newline doubles when escaped.
        let body = format!(
            "{{{}\"insuranceCompany\":\"ingostrah\",\"writtenPremium\":17847.29}}",
            "\n".repeat(130 * 1024)
        );
        let whole = ReceivedHook {
            body: body.clone(),
            ..crate::services::test_support::received(HookKind::Approved, &body, 1)
        };
        assert!(
            serde_json::to_string(&TruckMessage::Hook(whole)).unwrap().len() > QUEUE_MESSAGE_LIMIT,
            "with its body, the message would be refused by the queue"
        );
        let w = World::new(MemoryTable::default());
        let runner = w.runner(false);
        up_to_payment(&w, &runner).await;
        let queue = fifo();
        let reply = intake(w.table.clone(), queue.clone())
            .receive(HookKind::Approved, request(body.as_bytes()))
            .await;
        assert_eq!(status(&reply), (200, "accepted"), "{reply:?}");
        let messages = drain::<TruckMessage>(&queue);
        let [(_, message @ TruckMessage::StoredHook(reference))] = &messages[..] else {
            panic!("{messages:?}")
        };
        assert!(serde_json::to_string(message).unwrap().len() < 1024, "the reference alone travels");
        assert_eq!(w.table.hook_body(reference).await.unwrap().as_deref(), Some(body.as_str()));
        runner.handle(message.clone()).await.unwrap();
        let offers: Vec<_> = w.notices().into_iter().filter(|(_, kind)| kind == "truck.offer").collect();
        assert_eq!(offers.len(), 1, "the runner read the body and applied the approval");
        // A small hook still travels whole, its record and message written at once.
        let small = r#"{"insuranceCompany":"ingostrah","reason":"no"}"#;
        intake(w.table.clone(), queue.clone()).receive(HookKind::Rejected, request(small.as_bytes())).await;
        assert!(matches!(&drain::<TruckMessage>(&queue)[..], [(_, TruckMessage::Hook(_))]));
    }

    #[tokio::test]
    async fn a_body_that_cannot_be_kept_gets_503() {
        let store = Flaky::new(MemoryTable::default());
        let hooks = intake(store.clone(), fifo());
        store.fail_next(1);
        let reply = hooks.receive(HookKind::Approved, request(b"{not json")).await;
        assert_eq!(reply, Reply::new(503, json!({"error": "temporarily unavailable, retry"})));
        assert!(kept(&store.inner).await.is_empty());
    }

    #[test]
    fn hook_id_prefers_a_clean_webhook_id_and_else_digests_scoring_id_path_and_body() {
        let sid = ScoringId::parse("sc-1").unwrap();
        assert_eq!(hook_id(&sid, HookKind::Started, Some("msg_2KW"), b"{}"), ("msg_2KW".to_owned(), false));
        let (a, by_content) = hook_id(&sid, HookKind::Started, Some("bad id/../"), b"{}");
        assert!(hook_id(&sid, HookKind::Started, Some("a#b"), b"{}").1, "a key's separator");
        assert!(hook_id(&sid, HookKind::Started, Some(&"x".repeat(101)), b"{}").1, "too long");
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
            requeued_at_ms: 0,
        };
        assert_ne!(dedup_id(&hook("d", true, 1)), dedup_id(&hook("d", true, 2)));
        assert_eq!(dedup_id(&hook("msg_1", false, 1)), dedup_id(&hook("msg_1", false, 2)));
    }
}
