//! An SQS event source mapping: receive a batch, invoke the function with an
//! SQS event, delete what succeeded, leave the reported failures (with
//! `ReportBatchItemFailures`; else none, as Lambda ignores them) to reappear
//! after the visibility timeout (and go to the dead-letter queue after
//! `maxReceiveCount`, which the emulator enforces).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::{json, Map, Value};

use crate::aws_proxy::AwsProxy;
use crate::runtime::RuntimeApi;

pub struct SqsSource {
    pub function: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: usize,
    /// `ReportBatchItemFailures`: only the messages the function names as failed stay on the
    /// queue. Without it Lambda ignores `batchItemFailures` and deletes an answered batch whole.
    pub report_batch_item_failures: bool,
    pub region: String,
}

pub fn spawn(api: Arc<RuntimeApi>, sqs: aws_sdk_sqs::Client, source: SqsSource, aws: Arc<AwsProxy>) {
    tokio::spawn(async move {
        while !api.stopping.load(Ordering::Relaxed) {
            if let Err(e) = poll_once(&api, &sqs, &source, &aws).await {
                eprintln!("local-cloud: poller {}: {e}", source.function);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
}

async fn poll_once(
    api: &RuntimeApi,
    sqs: &aws_sdk_sqs::Client,
    source: &SqsSource,
    aws: &AwsProxy,
) -> Result<(), String> {
    let received = sqs
        .receive_message()
        .queue_url(&source.queue_url)
        .max_number_of_messages(source.batch_size.clamp(1, 10) as i32)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
    let messages = received.messages();
    if messages.is_empty() {
        // Idle long polls cost the same whatever the load; only receives that bring work are counted.
        return Ok(());
    }
    aws.record_service_call(&source.function, "sqs:ReceiveMessage");
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect())
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": source.queue_arn,
                "awsRegion": source.region,
            })
        })
        .collect();
    let event = json!({ "Records": records }).to_string().into_bytes();
    let failed: Vec<String> = match api.invoke(&source.function, event).await {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(|_| source.report_batch_item_failures)
            .and_then(|v| v.get("batchItemFailures").cloned())
            .and_then(|f| f.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.get("itemIdentifier").and_then(Value::as_str).map(str::to_owned))
            .collect(),
        // The whole batch failed: every message comes back after its visibility timeout.
        Err(e) => {
            eprintln!("local-cloud: {} failed a batch: {e}", source.function);
            return Ok(());
        }
    };
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle()?)
                .build()
                .ok()
        })
        .collect();
    if !entries.is_empty() {
        aws.record_service_call(&source.function, "sqs:DeleteMessageBatch");
        sqs.delete_message_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
    }
    Ok(())
}
