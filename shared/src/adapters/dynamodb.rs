//! The single DynamoDB table behind every store port. Its keys and indexes are
//! [`crate::keys`]'s; records are native attributes (a process's state is a map,
//! readable and queryable in the console), written with `serde_dynamo`.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;

use crate::domain::ids::CustomerId;
use crate::keys::{self, Cursor, ProcessKey};
use crate::ports::{
    EffectLog, EffectRecord, HookBody, HookRef, HookStore, InfraError, OpenProcess, OpenProcesses,
    ProcessStore, ProductIndex, ProductPage, QuarantineStore, Quarantined, ReceivedHook, Recorded, SaveError,
    StoredProcess, TokenStore, Versioned,
};

/// Hooks and intent records are kept for a year, then expire by TTL.
const RETENTION_MS: u64 = 365 * 24 * 3600 * 1000;

#[derive(Clone)]
pub struct Table {
    client: Client,
    name: String,
    /// How long kept input (which may carry personal data) lives before TTL removes it.
    kept_input_ttl: Option<std::time::Duration>,
    /// How long a process that ended (and the personal data in it) stays before TTL removes it.
    ended_process_ttl: Option<std::time::Duration>,
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, InfraError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| InfraError::Corrupt(format!("attribute {name} missing or not a string")))
}

fn get_n(item: &Item, name: &str) -> Result<u64, InfraError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| InfraError::Corrupt(format!("attribute {name} missing or not a number")))
}

/// A record stored as a native attribute map, read back.
fn get_record<T: DeserializeOwned>(item: &Item, name: &str) -> Result<T, InfraError> {
    let value =
        item.get(name).cloned().ok_or_else(|| InfraError::Corrupt(format!("attribute {name} missing")))?;
    serde_dynamo::from_attribute_value(value)
        .map_err(|e| InfraError::Corrupt(format!("attribute {name}: {e}")))
}

fn record<T: serde::Serialize>(value: &T) -> Result<AttributeValue, InfraError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| InfraError::Corrupt(e.to_string()))
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException" || c == "TransactionCanceledException")
}

fn call_error<E: std::error::Error + Send + Sync + 'static>(err: SdkError<E>) -> InfraError {
    InfraError::call("dynamodb", aws_sdk_dynamodb::error::DisplayErrorContext(err))
}

fn save_error<E>(err: SdkError<E>) -> SaveError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + Send + Sync + 'static,
{
    if is_condition_failure(&err) {
        SaveError::Conflict
    } else {
        call_error(err).into()
    }
}

fn ttl_from(now_ms: u64) -> AttributeValue {
    n((now_ms + RETENTION_MS) / 1000)
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>) -> Table {
        Table { client, name: name.into(), kept_input_ttl: None, ended_process_ttl: None }
    }

    /// Kept input expires `ttl` after it was received (holds and pending files do not).
    pub fn keeping_input_for(self, ttl: std::time::Duration) -> Table {
        Table { kept_input_ttl: Some(ttl), ..self }
    }

    /// A process that has ended expires `ttl` after it ended; one still running never does.
    pub fn keeping_ended_processes_for(self, ttl: std::time::Duration) -> Table {
        Table { ended_process_ttl: Some(ttl), ..self }
    }

    fn process_attributes<P: StoredProcess>(&self, p: &P, version: u64) -> Result<Item, InfraError> {
        let mut item = key(p.key().to_string(), keys::PROCESS_SK);
        item.insert("state".into(), record(p)?);
        item.insert("version".into(), n(version));
        for (name, value) in p.index() {
            item.insert(name.into(), s(value));
        }
        if let (Some(ttl), Some(ended_ms)) = (self.ended_process_ttl, p.ended_at_ms()) {
            item.insert("expiresAt".into(), n(ended_ms / 1000 + ttl.as_secs()));
        }
        Ok(item)
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, InfraError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(call_error)?;
        Ok(out.item)
    }

    /// Puts `item` unless its key exists; `false` when it did.
    async fn put_new(&self, item: Item) -> Result<bool, InfraError> {
        match self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(call_error(e)),
        }
    }
}

impl ProcessStore for Table {
    async fn load<P: StoredProcess>(&self, process: &ProcessKey) -> Result<Option<Versioned<P>>, InfraError> {
        let Some(item) = self.get(process.to_string(), keys::PROCESS_SK).await? else {
            return Ok(None);
        };
        let value =
            get_record(&item, "state").map_err(|e| InfraError::Corrupt(format!("process {process}: {e}")))?;
        Ok(Some(Versioned { value, version: get_n(&item, "version")? }))
    }

    async fn create<P: StoredProcess>(&self, process: &P) -> Result<bool, InfraError> {
        self.put_new(self.process_attributes(process, 1)?).await
    }

    async fn save<P: StoredProcess>(
        &self,
        process: &P,
        expected: u64,
        new_aliases: &[String],
    ) -> Result<u64, SaveError> {
        let next = expected + 1;
        let item = self.process_attributes(process, next)?;
        if new_aliases.is_empty() {
            self.client
                .put_item()
                .table_name(&self.name)
                .set_item(Some(item))
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(expected))
                .send()
                .await
                .map_err(save_error)?;
            return Ok(next);
        }
        let put = Put::builder()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(expected))
            .build()
            .map_err(|e| InfraError::call("dynamodb", e))?;
        let mut tx =
            self.client.transact_write_items().transact_items(TransactWriteItem::builder().put(put).build());
        let target = process.key().to_string();
        for alias in new_aliases {
            let mut mapping = key(alias.clone(), keys::ALIAS_SK);
            mapping.insert("target".into(), s(&target));
            let map = Put::builder()
                .table_name(&self.name)
                .set_item(Some(mapping))
                // An alias never moves to another process.
                .condition_expression("attribute_not_exists(pk) OR #target = :target")
                .expression_attribute_names("#target", "target")
                .expression_attribute_values(":target", s(&target))
                .build()
                .map_err(|e| InfraError::call("dynamodb", e))?;
            tx = tx.transact_items(TransactWriteItem::builder().put(map).build());
        }
        tx.send().await.map_err(save_error)?;
        Ok(next)
    }

    async fn resolve_alias(&self, alias: &str) -> Result<Option<ProcessKey>, InfraError> {
        let Some(item) = self.get(alias.to_owned(), keys::ALIAS_SK).await? else {
            return Ok(None);
        };
        ProcessKey::parse(get_s(&item, "target")?).map(Some).map_err(InfraError::Corrupt)
    }
}

impl EffectLog for Table {
    async fn begin(
        &self,
        process: &ProcessKey,
        intent: &str,
        lease_ms: u64,
    ) -> Result<EffectRecord, InfraError> {
        let now = crate::ports::now_ms();
        let (pk, sk) = (process.to_string(), keys::intent_sk(intent));
        let mut item = key(pk.clone(), &sk);
        item.insert("startedAtMs".into(), n(now));
        item.insert("expiresAt".into(), ttl_from(now));
        if self.put_new(item).await? {
            return Ok(EffectRecord::Fresh);
        }
        let existing = self
            .get(pk.clone(), &sk)
            .await?
            .ok_or_else(|| InfraError::Corrupt(format!("intent {intent} vanished")))?;
        let started = get_n(&existing, "startedAtMs")?;
        if now < started + lease_ms {
            return Ok(EffectRecord::InFlight);
        }
        // Take the lease over; of two takers racing, one wins the condition.
        let mut item = key(pk, &sk);
        item.insert("startedAtMs".into(), n(now));
        item.insert("expiresAt".into(), ttl_from(now));
        let taken = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("startedAtMs = :seen")
            .expression_attribute_values(":seen", n(started))
            .send()
            .await;
        match taken {
            Ok(_) => Ok(EffectRecord::Retaken { started_ms: started }),
            Err(e) if is_condition_failure(&e) => Ok(EffectRecord::InFlight),
            Err(e) => Err(call_error(e)),
        }
    }
}

impl HookStore for Table {
    async fn record_hook(&self, hook: &ReceivedHook, body: HookBody) -> Result<Recorded, InfraError> {
        let (pk, sk) = keys::hook_key(&hook.reference());
        let mut item = key(pk, &sk);
        item.insert("scoringId".into(), s(hook.scoring_id.as_str()));
        item.insert("hook".into(), s(hook.kind.path()));
        item.insert("bodySha256".into(), s(hook.body_digest()));
        if body == HookBody::Kept {
            item.insert("body".into(), s(&hook.body));
        }
        item.insert("receivedAtMs".into(), n(hook.received_at_ms));
        item.insert("expiresAt".into(), ttl_from(hook.received_at_ms));
        let put = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            // The first record comes back with the refusal: no second read to tell a
            // repeat from a delivery id used on another path.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Recorded::New),
            Err(e) if is_condition_failure(&e) => {
                let first = match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(failed) => failed.item,
                    _ => None,
                }
                .unwrap_or_default();
                let same_path = get_s(&first, "scoringId").ok() == Some(hook.scoring_id.as_str())
                    && get_s(&first, "hook").ok() == Some(hook.kind.path());
                Ok(if same_path { Recorded::Duplicate } else { Recorded::UsedElsewhere })
            }
            Err(e) => Err(call_error(e)),
        }
    }

    async fn hook_body(&self, hook: &HookRef) -> Result<Option<String>, InfraError> {
        let (pk, sk) = keys::hook_key(hook);
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key(pk, &sk)))
            .projection_expression("body")
            .consistent_read(true)
            .send()
            .await
            .map_err(call_error)?;
        Ok(out.item().and_then(|item| get_s(item, "body").ok()).map(str::to_owned))
    }
}

impl QuarantineStore for Table {
    async fn quarantine(&self, q: &Quarantined) -> Result<bool, InfraError> {
        let mut item = key(keys::kept_key(&q.id), keys::KEPT_SK);
        item.insert("record".into(), record(q)?);
        item.insert("gsi1pk".into(), s(keys::KEPT_INDEX_PK));
        item.insert("gsi1sk".into(), s(keys::kept_sort(q.received_at_ms, &q.id)));
        if let Some(ttl) = self.kept_input_ttl.filter(|_| q.origin.holds_input()) {
            item.insert("expiresAt".into(), n((q.received_at_ms + ttl.as_millis() as u64) / 1000));
        }
        // The same input kept twice is one record.
        self.put_new(item).await
    }

    async fn list_quarantined(&self) -> Result<Vec<Quarantined>, InfraError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.name)
                .index_name(keys::GSI1)
                .key_condition_expression("gsi1pk = :q")
                .expression_attribute_values(":q", s(keys::KEPT_INDEX_PK))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(call_error)?;
            for item in page.items() {
                out.push(get_record(item, "record")?);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    async fn release(&self, id: &str) -> Result<(), InfraError> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(key(keys::kept_key(id), keys::KEPT_SK)))
            .send()
            .await
            .map_err(call_error)?;
        Ok(())
    }
}

impl OpenProcesses for Table {
    async fn open_before(
        &self,
        kind: &str,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<OpenProcess>, InfraError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.name)
                .index_name(keys::OPEN_INDEX)
                .key_condition_expression("openpk = :kind AND opensk < :before")
                .expression_attribute_values(":kind", s(keys::open_partition(kind)))
                .expression_attribute_values(":before", s(keys::open_sort_before(before_ms)))
                .limit(limit.saturating_sub(out.len() as u32).max(1) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(call_error)?;
            for item in page.items() {
                let sort = get_s(item, "opensk")?;
                out.push(
                    keys::parse_open_sort(sort)
                        .ok_or_else(|| InfraError::Corrupt(format!("open index entry {sort:?}")))?,
                );
            }
            start = page.last_evaluated_key;
            if start.is_none() || out.len() >= limit as usize {
                return Ok(out);
            }
        }
    }
}

impl TokenStore for Table {
    async fn load_token(&self, name: &str) -> Result<Option<(String, u64)>, InfraError> {
        let Some(item) = self.get(keys::token_key(name), keys::TOKEN_SK).await? else {
            return Ok(None);
        };
        Ok(Some((get_s(&item, "token")?.to_owned(), get_n(&item, "expiresAtMs")?)))
    }

    async fn save_token(&self, name: &str, token: &str, expires_at_ms: u64) -> Result<(), InfraError> {
        let mut item = key(keys::token_key(name), keys::TOKEN_SK);
        item.insert("token".into(), s(token));
        item.insert("expiresAtMs".into(), n(expires_at_ms));
        item.insert("expiresAt".into(), n(expires_at_ms / 1000));
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(call_error)?;
        Ok(())
    }
}

impl ProductIndex for Table {
    async fn customer_products(
        &self,
        customer: &CustomerId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<ProductPage, InfraError> {
        let gsi1pk = keys::customer_index(customer);
        let start = after.map(|c| {
            HashMap::from([
                ("gsi1pk".to_owned(), s(gsi1pk.clone())),
                ("gsi1sk".to_owned(), s(c.sort)),
                ("pk".to_owned(), s(c.pk)),
                ("sk".to_owned(), s(keys::PROCESS_SK)),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :c")
            .expression_attribute_values(":c", s(gsi1pk))
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(call_error)?;
        // The index projects only the product's summary: the process's state is not there.
        let items = out
            .items()
            .iter()
            .map(|item| {
                serde_json::from_str(get_s(item, "product")?)
                    .map_err(|e| InfraError::Corrupt(format!("attribute product: {e}")))
            })
            .collect::<Result<Vec<_>, InfraError>>()?;
        let next = match out.last_evaluated_key() {
            Some(k) => Some(Cursor { sort: get_s(k, "gsi1sk")?.to_owned(), pk: get_s(k, "pk")?.to_owned() }),
            None => None,
        };
        Ok(ProductPage { items, next })
    }
}
