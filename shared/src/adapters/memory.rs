//! In-memory stand-ins for the AWS-backed ports, for unit tests and the
//! simulation. Each keeps the semantics the real adapter relies on (conditional
//! writes, version checks, alias transactions, leases, the 400 KB item limit,
//! ordered index pages, conditional object puts); the contract suites in
//! `tests/contracts` run the same checks against these and against the real
//! adapters over the AWS emulator, so they cannot drift apart.
//!
//! Every handle is a cheap clone sharing one state.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::ids::CustomerId;
use crate::keys::{self, Cursor, ProcessKey};
use crate::ports::{
    now_ms, BankOutbox, EffectLog, EffectRecord, HookBody, HookRef, HookStore, InfraError, LoanMessage,
    LoanQueue, ObjectStore, OpenProcess, OpenProcesses, ProcessStore, ProductIndex, ProductPage,
    QuarantineStore, Quarantined, ReceivedHook, Recorded, SaveError, StoredObject, StoredProcess, TokenStore,
    TruckMessage, TruckQueue, Versioned,
};

/// DynamoDB refuses items larger than this (attribute names and values, UTF-8).
pub const ITEM_LIMIT: usize = 400 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a test panicked elsewhere; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn too_large(what: &str, size: usize) -> InfraError {
    InfraError::call(
        "dynamodb",
        format!("ValidationException: {what} of {size} bytes exceeds the 400 KB item limit"),
    )
}

#[derive(Debug, Clone)]
struct ProcessItem {
    state: String,
    version: u64,
    index: Vec<(&'static str, String)>,
}

#[derive(Debug, Default)]
struct TableState {
    processes: BTreeMap<String, ProcessItem>,
    aliases: HashMap<String, ProcessKey>,
    intents: HashMap<(String, String), u64>,
    /// Each record with what it kept of the body (a `Digest` record's body is empty).
    hooks: HashMap<(String, String), (ReceivedHook, HookBody)>,
    kept: BTreeMap<String, Quarantined>,
    tokens: HashMap<String, (String, u64)>,
    conflicts: u64,
}

/// The one table, in memory.
#[derive(Clone, Default)]
pub struct MemoryTable {
    state: Arc<Mutex<TableState>>,
    /// Each call yields to the scheduler first, so concurrent callers interleave as they
    /// would against a remote table.
    yields: bool,
}

impl MemoryTable {
    /// A table whose every call lets other tasks run first.
    pub fn yielding() -> MemoryTable {
        MemoryTable { yields: true, ..MemoryTable::default() }
    }

    async fn turn(&self) {
        if self.yields {
            tokio::task::yield_now().await;
        }
    }

    /// Every process record's key, version and state (for invariant checks).
    pub fn processes(&self) -> Vec<(String, u64, String)> {
        lock(&self.state).processes.iter().map(|(k, p)| (k.clone(), p.version, p.state.clone())).collect()
    }

    /// Every intent record: (process key, intent key).
    pub fn intents(&self) -> Vec<(String, String)> {
        lock(&self.state).intents.keys().cloned().collect()
    }

    /// How many writes met a newer version (optimistic concurrency at work).
    pub fn conflicts(&self) -> u64 {
        lock(&self.state).conflicts
    }

    /// How many hooks are stored.
    pub fn hooks(&self) -> usize {
        lock(&self.state).hooks.len()
    }
}

fn item_size<P: StoredProcess>(p: &P, state: &str) -> usize {
    p.key().to_string().len()
        + keys::PROCESS_SK.len()
        + state.len()
        + p.index().iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

impl ProcessStore for MemoryTable {
    async fn load<P: StoredProcess>(&self, key: &ProcessKey) -> Result<Option<Versioned<P>>, InfraError> {
        self.turn().await;
        let Some(item) = lock(&self.state).processes.get(&key.to_string()).cloned() else { return Ok(None) };
        let value = serde_json::from_str(&item.state)
            .map_err(|e| InfraError::Corrupt(format!("process {key}: {e}")))?;
        Ok(Some(Versioned { value, version: item.version }))
    }

    async fn create<P: StoredProcess>(&self, process: &P) -> Result<bool, InfraError> {
        self.turn().await;
        let state = serde_json::to_string(process).map_err(|e| InfraError::Corrupt(e.to_string()))?;
        let size = item_size(process, &state);
        if size > ITEM_LIMIT {
            return Err(too_large("process item", size));
        }
        let mut s = lock(&self.state);
        let key = process.key().to_string();
        if s.processes.contains_key(&key) {
            return Ok(false);
        }
        s.processes.insert(key, ProcessItem { state, version: 1, index: process.index() });
        Ok(true)
    }

    async fn save<P: StoredProcess>(
        &self,
        process: &P,
        expected: u64,
        new_aliases: &[String],
    ) -> Result<u64, SaveError> {
        self.turn().await;
        let state = serde_json::to_string(process).map_err(|e| InfraError::Corrupt(e.to_string()))?;
        let size = item_size(process, &state);
        if size > ITEM_LIMIT {
            return Err(too_large("process item", size).into());
        }
        let key = process.key();
        let record = key.to_string();
        let mut s = lock(&self.state);
        // One transaction: the version check and every alias, or nothing.
        if s.processes.get(&record).map(|p| p.version) != Some(expected) {
            s.conflicts += 1;
            return Err(SaveError::Conflict);
        }
        if new_aliases.iter().any(|a| s.aliases.get(a).is_some_and(|t| *t != key)) {
            return Err(SaveError::Conflict);
        }
        for alias in new_aliases {
            s.aliases.insert(alias.clone(), key.clone());
        }
        s.processes.insert(record, ProcessItem { state, version: expected + 1, index: process.index() });
        Ok(expected + 1)
    }

    async fn resolve_alias(&self, alias: &str) -> Result<Option<ProcessKey>, InfraError> {
        self.turn().await;
        Ok(lock(&self.state).aliases.get(alias).cloned())
    }
}

impl EffectLog for MemoryTable {
    async fn begin(
        &self,
        process: &ProcessKey,
        intent: &str,
        lease_ms: u64,
    ) -> Result<EffectRecord, InfraError> {
        self.turn().await;
        let now = now_ms();
        let mut s = lock(&self.state);
        let slot = (process.to_string(), keys::intent_sk(intent));
        match s.intents.get(&slot).copied() {
            None => {
                s.intents.insert(slot, now);
                Ok(EffectRecord::Fresh)
            }
            Some(started) if now < started + lease_ms => Ok(EffectRecord::InFlight),
            Some(started) => {
                s.intents.insert(slot, now);
                Ok(EffectRecord::Retaken { started_ms: started })
            }
        }
    }
}

impl HookStore for MemoryTable {
    async fn record_hook(&self, hook: &ReceivedHook, body: HookBody) -> Result<Recorded, InfraError> {
        self.turn().await;
        let kept = if body == HookBody::Kept { hook.body.len() } else { 0 };
        let size = kept + hook.hook_id.len() + 64;
        if size > ITEM_LIMIT {
            return Err(too_large("hook item", size));
        }
        let mut s = lock(&self.state);
        let slot = keys::hook_key(&hook.reference());
        if let Some((first, _)) = s.hooks.get(&slot) {
            let same_path = first.scoring_id == hook.scoring_id && first.kind == hook.kind;
            return Ok(if same_path { Recorded::Duplicate } else { Recorded::UsedElsewhere });
        }
        let mut record = hook.clone();
        if body == HookBody::Digest {
            record.body = String::new();
        }
        s.hooks.insert(slot, (record, body));
        Ok(Recorded::New)
    }

    async fn hook_body(&self, hook: &HookRef) -> Result<Option<String>, InfraError> {
        self.turn().await;
        let state = lock(&self.state);
        Ok(state
            .hooks
            .get(&keys::hook_key(hook))
            .and_then(|(h, body)| (*body == HookBody::Kept).then(|| h.body.clone())))
    }
}

impl QuarantineStore for MemoryTable {
    async fn quarantine(&self, item: &Quarantined) -> Result<bool, InfraError> {
        self.turn().await;
        // Sized as DynamoDB sizes it: the UTF-8 bytes of the text attributes (JSON's
        // escapes do not count), plus the origin's fields.
        let origin = serde_json::to_string(&item.origin).map_err(|e| InfraError::Corrupt(e.to_string()))?;
        let size = item.id.len() + item.reason.len() + item.body.len() + origin.len() + 64;
        if size > ITEM_LIMIT {
            return Err(too_large("kept item", size));
        }
        let mut s = lock(&self.state);
        if s.kept.contains_key(&item.id) {
            return Ok(false);
        }
        s.kept.insert(item.id.clone(), item.clone());
        Ok(true)
    }

    async fn list_quarantined(&self) -> Result<Vec<Quarantined>, InfraError> {
        let mut items: Vec<Quarantined> = lock(&self.state).kept.values().cloned().collect();
        items.sort_by(|a, b| (a.received_at_ms, &a.id).cmp(&(b.received_at_ms, &b.id)));
        Ok(items)
    }

    async fn release(&self, id: &str) -> Result<(), InfraError> {
        lock(&self.state).kept.remove(id);
        Ok(())
    }
}

impl TokenStore for MemoryTable {
    async fn load_token(&self, name: &str) -> Result<Option<(String, u64)>, InfraError> {
        Ok(lock(&self.state).tokens.get(name).cloned())
    }

    async fn save_token(&self, name: &str, token: &str, expires_at_ms: u64) -> Result<(), InfraError> {
        lock(&self.state).tokens.insert(name.to_owned(), (token.to_owned(), expires_at_ms));
        Ok(())
    }
}

impl OpenProcesses for MemoryTable {
    async fn open_before(
        &self,
        kind: &str,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<OpenProcess>, InfraError> {
        self.turn().await;
        let (partition, end) = (keys::open_partition(kind), keys::open_sort_before(before_ms));
        let s = lock(&self.state);
        let mut sorts: Vec<&String> = s
            .processes
            .values()
            .filter(|p| p.index.iter().any(|(k, v)| *k == "openpk" && *v == partition))
            .filter_map(|p| p.index.iter().find(|(k, _)| *k == "opensk").map(|(_, v)| v))
            .filter(|sort| **sort < end)
            .collect();
        sorts.sort();
        Ok(sorts.into_iter().take(limit as usize).filter_map(|sort| keys::parse_open_sort(sort)).collect())
    }
}

impl ProductIndex for MemoryTable {
    async fn customer_products(
        &self,
        customer: &CustomerId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<ProductPage, InfraError> {
        let gsi1pk = keys::customer_index(customer);
        let s = lock(&self.state);
        let mut rows: Vec<(String, String, String)> = s
            .processes
            .iter()
            .filter(|(_, p)| p.index.iter().any(|(k, v)| *k == "gsi1pk" && *v == gsi1pk))
            .filter_map(|(pk, p)| {
                let sk = p.index.iter().find(|(k, _)| *k == "gsi1sk")?.1.clone();
                let product = p.index.iter().find(|(k, _)| *k == "product")?.1.clone();
                Some((sk, pk.clone(), product))
            })
            .collect();
        rows.sort();
        let start = match &after {
            Some(c) => rows.iter().position(|(s, p, _)| (s, p) > (&c.sort, &c.pk)).unwrap_or(rows.len()),
            None => 0,
        };
        let page: Vec<_> = rows[start..].iter().take(limit as usize).cloned().collect();
        let more = start + page.len() < rows.len();
        let next =
            page.last().filter(|_| more).map(|(sort, pk, _)| Cursor { sort: sort.clone(), pk: pk.clone() });
        let items = page
            .into_iter()
            .map(|(_, _, product)| {
                serde_json::from_str(&product).map_err(|e| InfraError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProductPage { items, next })
    }
}

/// How a [`MemorySqs`] queue behaves.
#[derive(Debug, Clone)]
pub struct SqsConfig {
    /// FIFO: messages of a group in order, one receive's batch in flight at a time, de-duplicated for five
    /// minutes by id (per group, as the template's `DeduplicationScope: messageGroup`).
    pub fifo: bool,
    pub visibility_ms: u64,
    /// Received this many times without being deleted, a message moves to `dead_letters`.
    pub max_receives: Option<u32>,
}

impl SqsConfig {
    pub fn fifo(visibility_ms: u64, max_receives: u32) -> SqsConfig {
        SqsConfig { fifo: true, visibility_ms, max_receives: Some(max_receives) }
    }

    pub fn standard(visibility_ms: u64) -> SqsConfig {
        SqsConfig { fifo: false, visibility_ms, max_receives: None }
    }
}

/// SQS's deduplication window.
const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, Clone)]
struct SqsMessage {
    id: u64,
    body: String,
    group: Option<String>,
    receive_count: u32,
    visible_at_ms: u64,
    receipt: u64,
}

/// A message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    pub receipt: u64,
    pub body: String,
    pub group: Option<String>,
    pub receive_count: u32,
}

#[derive(Default)]
struct SqsState {
    messages: Vec<SqsMessage>,
    /// Deduplication ids seen, by (group, id), with when.
    seen: HashMap<(String, String), u64>,
    /// How many were left at the last pruning (the next comes at twice as many).
    seen_after_prune: usize,
    /// Every body ever accepted, in order (what a consumer of a bank-facing queue saw).
    log: Vec<String>,
    next: u64,
}

/// An SQS queue in memory, with what the functions rely on: FIFO groups in order with
/// one receive's batch in flight per group, five minutes of deduplication, visibility timeouts,
/// receive counts and a dead-letter queue; a standard queue delivers in any order.
#[derive(Clone)]
pub struct MemorySqs {
    config: SqsConfig,
    state: Arc<Mutex<SqsState>>,
    dead_letters: Option<Box<MemorySqs>>,
}

impl Default for MemorySqs {
    fn default() -> Self {
        MemorySqs::new(SqsConfig::standard(30_000), None)
    }
}

impl MemorySqs {
    pub fn new(config: SqsConfig, dead_letters: Option<MemorySqs>) -> MemorySqs {
        MemorySqs { config, state: Arc::default(), dead_letters: dead_letters.map(Box::new) }
    }

    /// Sends a message (what the port adapters do); a FIFO repeat within the window is dropped.
    pub fn send(&self, body: String, fifo: Option<(&str, &str)>) -> Result<(), InfraError> {
        let now = now_ms();
        let mut s = lock(&self.state);
        if let (true, Some((group, dedup))) = (self.config.fifo, fifo) {
            let slot = (group.to_owned(), dedup.to_owned());
            if s.seen.get(&slot).is_some_and(|at| now < at + DEDUP_WINDOW_MS) {
                return Ok(());
            }
            // Ids past the window are forgotten, as SQS forgets them (a long run stays small).
            if s.seen.len() >= 2 * s.seen_after_prune.max(1024) {
                s.seen.retain(|_, at| now < *at + DEDUP_WINDOW_MS);
                s.seen_after_prune = s.seen.len();
            }
            s.seen.insert(slot, now);
        }
        s.next += 1;
        let id = s.next;
        s.log.push(body.clone());
        let group = fifo.map(|(g, _)| g.to_owned()).filter(|_| self.config.fifo);
        s.messages.push(SqsMessage { id, body, group, receive_count: 0, visible_at_ms: 0, receipt: 0 });
        Ok(())
    }

    /// Receives up to `max` messages (FIFO: only from groups with none in flight).
    pub fn receive(&self, max: usize) -> Vec<Delivery> {
        let now = now_ms();
        let mut s = lock(&self.state);
        let mut moved = Vec::new();
        // Groups with a message in flight from an earlier receive; within this receive a
        // group's messages come in order, several at a time (as SQS hands a batch).
        let busy: Vec<String> =
            s.messages.iter().filter(|m| m.visible_at_ms > now).filter_map(|m| m.group.clone()).collect();
        let mut out = Vec::new();
        let mut receipts = s.next;
        for m in s.messages.iter_mut() {
            if out.len() >= max {
                break;
            }
            if m.visible_at_ms > now {
                continue;
            }
            if let Some(group) = &m.group {
                if busy.contains(group) {
                    continue;
                }
            }
            if self.config.max_receives.is_some_and(|limit| m.receive_count >= limit) {
                moved.push(m.id);
                continue;
            }
            m.receive_count += 1;
            m.visible_at_ms = now + self.config.visibility_ms;
            receipts += 1;
            m.receipt = receipts;
            out.push(Delivery {
                message_id: m.id.to_string(),
                receipt: m.receipt,
                body: m.body.clone(),
                group: m.group.clone(),
                receive_count: m.receive_count,
            });
        }
        s.next = receipts;
        // Received too often: to the dead-letter queue, as SQS's redrive policy does.
        let dead: Vec<SqsMessage> = s.messages.iter().filter(|m| moved.contains(&m.id)).cloned().collect();
        s.messages.retain(|m| !moved.contains(&m.id));
        drop(s);
        if let Some(dlq) = &self.dead_letters {
            let mut d = lock(&dlq.state);
            for mut m in dead {
                d.next += 1;
                m.id = d.next;
                m.receive_count = 0;
                m.visible_at_ms = 0;
                d.messages.push(m);
            }
        }
        out
    }

    /// Deletes a received message (a stale receipt deletes nothing, as in SQS after a re-receive).
    pub fn delete(&self, receipt: u64) {
        lock(&self.state).messages.retain(|m| m.receipt != receipt || m.visible_at_ms == 0);
    }

    /// Messages waiting or in flight.
    pub fn len(&self) -> usize {
        lock(&self.state).messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every body ever accepted, in order.
    pub fn sent(&self) -> Vec<String> {
        lock(&self.state).log.clone()
    }

    /// The dead-letter queue, if any.
    pub fn dead_letters(&self) -> Option<&MemorySqs> {
        self.dead_letters.as_deref()
    }

    /// Moves every dead letter back (the operator's redrive), each as a new message.
    pub fn redrive(&self) -> usize {
        let Some(dlq) = &self.dead_letters else { return 0 };
        let letters: Vec<SqsMessage> = std::mem::take(&mut lock(&dlq.state).messages);
        let mut s = lock(&self.state);
        for mut m in letters.iter().cloned() {
            s.next += 1;
            m.id = s.next;
            m.receive_count = 0;
            m.visible_at_ms = 0;
            s.messages.push(m);
        }
        letters.len()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, InfraError> {
    serde_json::to_string(value).map_err(|e| InfraError::Corrupt(e.to_string()))
}

impl TruckQueue for MemorySqs {
    async fn enqueue(&self, message: &TruckMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.send(json(message)?, Some((group, dedup_id)))
    }
}

impl LoanQueue for MemorySqs {
    async fn enqueue(&self, message: &LoanMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.send(json(message)?, Some((group, dedup_id)))
    }
}

impl BankOutbox for MemorySqs {
    async fn publish<N: serde::Serialize + Sync>(&self, notification: &N) -> Result<(), InfraError> {
        self.send(json(notification)?, None)
    }
}

#[derive(Debug, Clone)]
pub struct MemoryObject {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub sha256: String,
}

/// Buckets in memory, with the conditional put the archive relies on.
#[derive(Clone, Default)]
pub struct MemoryObjects {
    objects: Arc<Mutex<BTreeMap<(String, String), MemoryObject>>>,
    /// How many objects were ever written (a conditional put that found one writes nothing).
    writes: Arc<Mutex<u64>>,
}

impl MemoryObjects {
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        let object =
            MemoryObject { bytes, content_type: "application/octet-stream".into(), sha256: String::new() };
        lock(&self.objects).insert((bucket.to_owned(), key.to_owned()), object);
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<MemoryObject> {
        lock(&self.objects).get(&(bucket.to_owned(), key.to_owned())).cloned()
    }

    pub fn keys(&self, bucket: &str) -> Vec<String> {
        lock(&self.objects).keys().filter(|(b, _)| b == bucket).map(|(_, k)| k.clone()).collect()
    }

    pub fn writes(&self) -> u64 {
        *lock(&self.writes)
    }
}

impl ObjectStore for MemoryObjects {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, InfraError> {
        self.object(bucket, key)
            .map(|o| o.bytes)
            .ok_or_else(|| InfraError::call("s3", format!("NoSuchKey: {bucket}/{key}")))
    }

    async fn put_new(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        sha256: &str,
    ) -> Result<Option<StoredObject>, InfraError> {
        let mut objects = lock(&self.objects);
        let slot = (bucket.to_owned(), key.to_owned());
        if let Some(existing) = objects.get(&slot) {
            let sha256 = Some(existing.sha256.clone()).filter(|s| !s.is_empty());
            return Ok(Some(StoredObject { size: existing.bytes.len() as u64, sha256 }));
        }
        let object = MemoryObject { bytes, content_type: content_type.to_owned(), sha256: sha256.to_owned() };
        objects.insert(slot, object);
        *lock(&self.writes) += 1;
        Ok(None)
    }
}
