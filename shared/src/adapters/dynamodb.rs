//! The single DynamoDB table behind every store port.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | truck process (JSON state, version) | `TRUCK#{processId}` | `PROCESS` |
//! | credit-life process | `LOAN#{loanNumber}` | `PROCESS` |
//! | alias → process (e.g. `SCORING#{scoringId}`) | the alias | `ALIAS` |
//! | intent of one attempt at a partner call (its outcome is in the process's journal) | the process key | `EFFECT#{effect}#{attempt}` |
//! | received hook (raw) | `HOOK#{scoringId}` | `{kind}#{hookId}` |
//! | kept for an operator (input, review, pending archive) | `QUARANTINE#{id}` | `QUARANTINE` |
//! | insurer token | `TOKEN#{name}` | `TOKEN` |
//!
//! Index `gsi1` (`gsi1pk`, `gsi1sk`) lists a customer's products and the quarantine.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use crate::ports::{
    EffectLog, EffectRecord, HookStore, InfraError, ProcessStore, QuarantineStore, Quarantined, ReceivedHook,
    Recorded, SaveError, StoredProcess, TokenStore, Versioned,
};

/// Hooks and effect records are kept for a year, then expire by TTL.
const RETENTION_MS: u64 = 365 * 24 * 3600 * 1000;

#[derive(Clone)]
pub struct Table {
    client: Client,
    name: String,
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

impl Table {
    pub fn new(client: Client, name: impl Into<String>) -> Table {
        Table { client, name: name.into() }
    }

    fn key(pk: String, sk: &str) -> Item {
        HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, InfraError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(Self::key(pk, sk)))
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

fn process_attributes<P: StoredProcess>(p: &P, version: u64) -> Result<Item, InfraError> {
    let state = serde_json::to_string(p).map_err(|e| InfraError::Corrupt(e.to_string()))?;
    let mut item = Table::key(p.key(), "PROCESS");
    item.insert("state".into(), s(state));
    item.insert("version".into(), n(version));
    for (name, value) in p.index() {
        item.insert(name.into(), s(value));
    }
    Ok(item)
}

impl ProcessStore for Table {
    async fn load<P: StoredProcess>(&self, key: &str) -> Result<Option<Versioned<P>>, InfraError> {
        let Some(item) = self.get(key.to_owned(), "PROCESS").await? else {
            return Ok(None);
        };
        let value = serde_json::from_str(get_s(&item, "state")?)
            .map_err(|e| InfraError::Corrupt(format!("process {key}: {e}")))?;
        Ok(Some(Versioned { value, version: get_n(&item, "version")? }))
    }

    async fn create<P: StoredProcess>(&self, process: &P) -> Result<bool, InfraError> {
        self.put_new(process_attributes(process, 1)?).await
    }

    async fn save<P: StoredProcess>(
        &self,
        process: &P,
        expected: u64,
        new_aliases: &[String],
    ) -> Result<u64, SaveError> {
        let next = expected + 1;
        let item = process_attributes(process, next)?;
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
        for alias in new_aliases {
            let mut mapping = Table::key(alias.clone(), "ALIAS");
            mapping.insert("target".into(), s(process.key()));
            let map = Put::builder()
                .table_name(&self.name)
                .set_item(Some(mapping))
                // An alias never moves to another process.
                .condition_expression("attribute_not_exists(pk) OR #target = :target")
                .expression_attribute_names("#target", "target")
                .expression_attribute_values(":target", s(process.key()))
                .build()
                .map_err(|e| InfraError::call("dynamodb", e))?;
            tx = tx.transact_items(TransactWriteItem::builder().put(map).build());
        }
        tx.send().await.map_err(save_error)?;
        Ok(next)
    }

    async fn resolve_alias(&self, alias: &str) -> Result<Option<String>, InfraError> {
        let Some(item) = self.get(alias.to_owned(), "ALIAS").await? else {
            return Ok(None);
        };
        Ok(Some(get_s(&item, "target")?.to_owned()))
    }
}

impl EffectLog for Table {
    async fn begin(&self, process: &str, key: &str, lease_ms: u64) -> Result<EffectRecord, InfraError> {
        let now = crate::ports::now_ms();
        let sk = format!("EFFECT#{key}");
        let mut item = Table::key(process.to_owned(), &sk);
        item.insert("startedAtMs".into(), n(now));
        item.insert("expiresAt".into(), ttl_from(now));
        if self.put_new(item).await? {
            return Ok(EffectRecord::Fresh);
        }
        let existing = self
            .get(process.to_owned(), &sk)
            .await?
            .ok_or_else(|| InfraError::Corrupt(format!("effect {key} vanished")))?;
        let started = get_n(&existing, "startedAtMs")?;
        if now < started + lease_ms {
            return Ok(EffectRecord::InFlight);
        }
        // Take the lease over; of two takers racing, one wins the condition.
        let mut item = Table::key(process.to_owned(), &sk);
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
            Ok(_) => Ok(EffectRecord::Retaken),
            Err(e) if is_condition_failure(&e) => Ok(EffectRecord::InFlight),
            Err(e) => Err(call_error(e)),
        }
    }
}

impl HookStore for Table {
    async fn record_hook(&self, hook: &ReceivedHook) -> Result<Recorded, InfraError> {
        let mut item = Table::key(
            format!("HOOK#{}", hook.scoring_id),
            &format!("{}#{}", hook.kind.path(), hook.hook_id),
        );
        item.insert("body".into(), s(&hook.body));
        item.insert("receivedAtMs".into(), n(hook.received_at_ms));
        item.insert("expiresAt".into(), ttl_from(hook.received_at_ms));
        Ok(if self.put_new(item).await? { Recorded::New } else { Recorded::Duplicate })
    }
}

impl QuarantineStore for Table {
    async fn quarantine(&self, q: &Quarantined) -> Result<bool, InfraError> {
        let mut item = Table::key(format!("QUARANTINE#{}", q.id), "QUARANTINE");
        let json = serde_json::to_string(q).map_err(|e| InfraError::Corrupt(e.to_string()))?;
        item.insert("record".into(), s(json));
        item.insert("reason".into(), s(&q.reason));
        item.insert("gsi1pk".into(), s("QUARANTINE"));
        item.insert("gsi1sk".into(), s(format!("{:013}#{}", q.received_at_ms, q.id)));
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
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :q")
                .expression_attribute_values(":q", s("QUARANTINE"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(call_error)?;
            for item in page.items() {
                let q = serde_json::from_str(get_s(item, "record")?)
                    .map_err(|e| InfraError::Corrupt(e.to_string()))?;
                out.push(q);
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
            .set_key(Some(Table::key(format!("QUARANTINE#{id}"), "QUARANTINE")))
            .send()
            .await
            .map_err(call_error)?;
        Ok(())
    }
}

impl TokenStore for Table {
    async fn load_token(&self, name: &str) -> Result<Option<(String, u64)>, InfraError> {
        let Some(item) = self.get(format!("TOKEN#{name}"), "TOKEN").await? else {
            return Ok(None);
        };
        Ok(Some((get_s(&item, "token")?.to_owned(), get_n(&item, "expiresAtMs")?)))
    }

    async fn save_token(&self, name: &str, token: &str, expires_at_ms: u64) -> Result<(), InfraError> {
        let mut item = Table::key(format!("TOKEN#{name}"), "TOKEN");
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

impl crate::ports::ProductIndex for Table {
    async fn customer_products(
        &self,
        customer: &str,
        limit: u32,
        after: Option<(String, String)>,
    ) -> Result<crate::ports::ProductPage, InfraError> {
        let gsi1pk = format!("CUSTOMER#{customer}");
        let start = after.map(|(gsi1sk, pk)| {
            HashMap::from([
                ("gsi1pk".to_owned(), s(gsi1pk.clone())),
                ("gsi1sk".to_owned(), s(gsi1sk)),
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s("PROCESS")),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.name)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :c")
            .expression_attribute_values(":c", s(gsi1pk))
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(call_error)?;
        let items = out
            .items()
            .iter()
            .map(|i| Ok((get_s(i, "gsi1sk")?.to_owned(), get_s(i, "state")?.to_owned())))
            .collect::<Result<Vec<_>, InfraError>>()?;
        let next = match out.last_evaluated_key() {
            Some(k) => Some((get_s(k, "gsi1sk")?.to_owned(), get_s(k, "pk")?.to_owned())),
            None => None,
        };
        Ok(crate::ports::ProductPage { items, next })
    }
}
