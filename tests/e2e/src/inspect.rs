//! Reading what the stack holds: process and loan records, waiting for a stage, queue depths,
//! the quarantine and the archive; and pure helpers over a record's JSON (its stage as operators
//! see it, whether it has settled, which MUST calls it made).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

use crate::{BoxError, Harness};

impl Harness {
    /// A truck process as stored: its `state` JSON with `version` beside it.
    pub async fn process(&self, process_id: &str) -> Result<Option<Value>, BoxError> {
        self.record(&format!("TRUCK#{process_id}")).await
    }

    /// A loan's credit-life record as stored: its `state` JSON with `version` beside it.
    pub async fn loan(&self, loan_number: &str) -> Result<Option<Value>, BoxError> {
        self.record(&format!("LOAN#{loan_number}")).await
    }

    async fn record(&self, pk: &str) -> Result<Option<Value>, BoxError> {
        // Tests poll records: a contract broken meanwhile (stack.rs, bank.rs) fails them here.
        crate::stack::assert_contracts_held();
        let out = self
            .dynamodb()
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S("PROCESS".into()))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let mut state: Value = attribute_json(item.get("state").ok_or("no state")?)?;
        state["version"] =
            json!(item.get("version").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok()));
        Ok(Some(state))
    }

    /// Waits until the truck process has reached `stage` and settled there (nothing left in
    /// its outbox), calling `on_change` at each new stage seen.
    pub async fn wait_for_stage(
        &self,
        process_id: &str,
        stage: &str,
        timeout: Duration,
        on_change: impl FnMut(&Value),
    ) -> Result<Value, BoxError> {
        self.wait_settled(&format!("TRUCK#{process_id}"), stage, timeout, on_change).await
    }

    /// Waits until the truck process as stored satisfies `holds`. A notice reaches the bank
    /// before the write that records it: a test that saw a notice polls for its record.
    pub async fn wait_for_process(
        &self,
        process_id: &str,
        timeout: Duration,
        holds: impl Fn(&Value) -> bool,
    ) -> Result<Value, BoxError> {
        let start = Instant::now();
        loop {
            let record = self.process(process_id).await?;
            match record {
                Some(p) if holds(&p) => return Ok(p),
                _ if start.elapsed() > timeout => {
                    return Err(
                        format!("{process_id} did not get there within {timeout:?}: {record:?}").into()
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits until the loan's credit-life record has reached `stage` and settled there.
    pub async fn wait_for_loan_stage(
        &self,
        loan_number: &str,
        stage: &str,
        timeout: Duration,
    ) -> Result<Value, BoxError> {
        self.wait_settled(&format!("LOAN#{loan_number}"), stage, timeout, |_| {}).await
    }

    async fn wait_settled(
        &self,
        process_id: &str,
        stage: &str,
        timeout: Duration,
        mut on_change: impl FnMut(&Value),
    ) -> Result<Value, BoxError> {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            if let Some(p) = self.record(process_id).await? {
                let now = stage_of(&p);
                if now != last {
                    on_change(&p);
                    last = now.clone();
                }
                if now == stage && is_settled(&p) {
                    return Ok(p);
                }
                if now != stage && ENDED.contains(&now.as_str()) {
                    return Err(format!("{process_id} ended as {now}, not {stage}: {p}").into());
                }
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{process_id} did not reach {stage} within {timeout:?} (last: {last:?})"
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many messages are in a queue of the stack (by logical id), waiting or being
    /// handled, as SQS approximates it.
    pub async fn queue_depth(&self, logical_id: &str) -> Result<u64, BoxError> {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let url =
            self.cloud.physical(logical_id).ok_or_else(|| format!("{logical_id} is not in the stack"))?;
        let out = self
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(ApproximateNumberOfMessages)
            .attribute_names(ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let count = |name| {
            out.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
        };
        Ok(count(ApproximateNumberOfMessages) + count(ApproximateNumberOfMessagesNotVisible))
    }

    /// Every quarantined record (as stored: id, source, reason, body, origin).
    pub async fn quarantined(&self) -> Result<Vec<Value>, BoxError> {
        let out = self
            .dynamodb()
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :q")
            .expression_attribute_values(":q", AttributeValue::S("QUARANTINE".into()))
            .send()
            .await?;
        Ok(out.items().iter().filter_map(|i| attribute_json(i.get("record")?).ok()).collect())
    }

    /// How many versions of an archived object the (versioned) bucket holds.
    pub async fn archived_versions(&self, key: &str) -> Result<usize, BoxError> {
        let out = self.s3().list_object_versions().bucket(&self.archive_bucket).prefix(key).send().await?;
        Ok(out.versions().iter().filter(|v| v.key() == Some(key)).count())
    }

    /// Reads an archived object with its metadata.
    pub async fn archived(&self, key: &str) -> Result<(Vec<u8>, HashMap<String, String>), BoxError> {
        let out = self.s3().get_object().bucket(&self.archive_bucket).key(key).send().await?;
        let metadata = out.metadata().cloned().unwrap_or_default();
        let bytes = out.body.collect().await?.into_bytes().to_vec();
        Ok((bytes, metadata))
    }
}

/// How long the record has been held for review.
pub(crate) fn held_for(record: &Value) -> Duration {
    let since = record["outbox"]["review"]["sinceMs"].as_u64().unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(now.saturating_sub(since))
}

/// A record stored as native DynamoDB attributes, as JSON.
pub fn attribute_json(value: &AttributeValue) -> Result<Value, BoxError> {
    Ok(serde_dynamo::from_attribute_value(value.clone())?)
}

/// The stages a process ends in.
pub const ENDED: [&str; 4] = ["issued", "rejected", "failed", "sold"];

/// A process record's stage as operators see it: `needs-review` while a call is held.
pub fn stage_of(record: &Value) -> String {
    if !record["outbox"]["review"].is_null() {
        return "needs-review".into();
    }
    record["stage"].as_str().unwrap_or_default().to_owned()
}

/// Nothing left to do for now: no pending effect, or (while held) none but the held call.
pub fn is_settled(record: &Value) -> bool {
    let pending = record["outbox"]["pending"].as_array().cloned().unwrap_or_default();
    if record["outbox"]["review"].is_null() {
        pending.is_empty()
    } else {
        pending.iter().all(|e| e["action"] != "notify")
    }
}

/// The MUST call (as the simulator counts it) an effect of the process makes.
pub fn must_call_of<'a>(effect: &str, record: &Value) -> &'a str {
    if effect == "init" {
        "init"
    } else if effect.starts_with("documents-") {
        "documents"
    } else if effect.starts_with("contract-") {
        "contract"
    } else if effect.starts_with("payment-order-") {
        "payment-order"
    } else if effect.starts_with("payment-") {
        if record["request"]["payment"]["method"] == "invoice" {
            "payment-invoice"
        } else {
            "payment-link"
        }
    } else {
        ""
    }
}

/// How many of the process's calls that `matches` selects it knows happened (done, or
/// resolved as happened).
pub fn done_calls(record: &Value, matches: impl Fn(&str) -> bool) -> u64 {
    record["outbox"]["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["outcome"] == "done" || (c["outcome"] == "resolved" && c["happened"] == true))
        .filter(|c| matches(c["effect"].as_str().unwrap_or_default()))
        .count() as u64
}
