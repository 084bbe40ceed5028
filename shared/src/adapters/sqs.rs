//! SQS: the process FIFO queue and the bank-notifications queue.

use aws_sdk_sqs::operation::send_message::builders::SendMessageFluentBuilder;
use aws_sdk_sqs::Client;

use crate::ports::{BankOutbox, InfraError, LoanMessage, LoanQueue, TruckMessage, TruckQueue};

#[derive(Clone)]
pub struct Queue {
    client: Client,
    url: String,
}

impl Queue {
    pub fn new(client: Client, url: impl Into<String>) -> Queue {
        Queue { client, url: url.into() }
    }

    async fn send(&self, body: String, fifo: Option<(&str, &str)>) -> Result<(), InfraError> {
        let mut req = traced(self.client.send_message().queue_url(&self.url).message_body(body));
        if let Some((group, dedup)) = fifo {
            req = req.message_group_id(group).message_deduplication_id(dedup);
        }
        req.send().await.map_err(|e| InfraError::call("sqs", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}

/// The message carries the trace of the span sending it (`AWSTraceHeader`), so the
/// consumer's spans join the sender's trace; none when traces are off.
fn traced(send: SendMessageFluentBuilder) -> SendMessageFluentBuilder {
    use aws_sdk_sqs::types::{MessageSystemAttributeNameForSends, MessageSystemAttributeValue};
    let header = crate::telemetry::trace_header().and_then(|header| {
        MessageSystemAttributeValue::builder().data_type("String").string_value(header).build().ok()
    });
    match header {
        Some(header) => {
            send.message_system_attributes(MessageSystemAttributeNameForSends::AwsTraceHeader, header)
        }
        None => send,
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, InfraError> {
    serde_json::to_string(value).map_err(|e| InfraError::Corrupt(e.to_string()))
}

impl TruckQueue for Queue {
    async fn enqueue(&self, message: &TruckMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.enqueue_fifo(message, group, dedup_id).await
    }
}

impl LoanQueue for Queue {
    async fn enqueue(&self, message: &LoanMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.enqueue_fifo(message, group, dedup_id).await
    }
}

impl BankOutbox for Queue {
    async fn publish<N: serde::Serialize + Sync>(&self, notification: &N) -> Result<(), InfraError> {
        self.send(to_json(notification)?, None).await
    }
}

impl Queue {
    /// Sends to a FIFO queue in `group`, de-duplicated by `dedup_id`.
    pub async fn enqueue_fifo<M: serde::Serialize>(
        &self,
        message: &M,
        group: &str,
        dedup_id: &str,
    ) -> Result<(), InfraError> {
        self.send(to_json(message)?, Some((group, dedup_id))).await
    }
}

/// A dead-letter queue and the queue its messages came from.
#[derive(Clone)]
pub struct DeadLetters {
    client: Client,
    pub dlq_url: String,
    pub source_url: String,
}

/// A message waiting in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// When it was first sent to its source queue.
    pub sent_ms: u64,
}

/// How long a read of a dead-letter queue holds the messages it looks at: the replay
/// Lambda's longest run (then they are visible again, should the reader die before
/// releasing them).
const LOOK_SECONDS: i32 = 900;

impl DeadLetters {
    pub fn new(client: Client, dlq_url: impl Into<String>, source_url: impl Into<String>) -> DeadLetters {
        DeadLetters { client, dlq_url: dlq_url.into(), source_url: source_url.into() }
    }

    /// Reads up to `max` dead letters and asks `pick` about each: those picked are moved
    /// back to the source queue (each sent before it is deleted: a crash in between leaves
    /// a copy in both, which the consumers' idempotency absorbs), the rest are made visible
    /// again at once. FIFO messages keep their group and get a deduplication id of their
    /// own message id, so SQS does not drop them as repeats of their first delivery, and a
    /// copy moved twice is one. In a FIFO queue, a group's later messages show only once
    /// its earlier ones are gone: they are moved in the order they came.
    pub async fn sort<F, Fut>(&self, max: usize, mut pick: F) -> Result<Vec<(DeadLetter, bool)>, InfraError>
    where
        F: FnMut(&DeadLetter) -> Fut,
        Fut: std::future::Future<Output = Result<bool, InfraError>>,
    {
        use aws_sdk_sqs::types::MessageSystemAttributeName;
        let fifo = self.source_url.ends_with(".fifo");
        let mut seen: Vec<(DeadLetter, bool)> = Vec::new();
        let mut held = Vec::new();
        let result = async {
            'read: while seen.len() < max {
                let batch = self
                    .client
                    .receive_message()
                    .queue_url(&self.dlq_url)
                    .max_number_of_messages(10.min((max - seen.len()) as i32))
                    .visibility_timeout(LOOK_SECONDS)
                    .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                    .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .map_err(err)?;
                if batch.messages().is_empty() {
                    return Ok(());
                }
                for message in batch.messages() {
                    let attribute = |name| message.attributes().and_then(|a| a.get(&name)).cloned();
                    let letter = DeadLetter {
                        message_id: message.message_id().unwrap_or_default().to_owned(),
                        body: message.body().unwrap_or_default().to_owned(),
                        sent_ms: attribute(MessageSystemAttributeName::SentTimestamp)
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0),
                    };
                    let receipt = message.receipt_handle().unwrap_or_default().to_owned();
                    if seen.iter().any(|(s, _)| s.message_id == letter.message_id) {
                        // Seen already: the read outlasted its hold. Each message once per read.
                        held.push(receipt);
                        break 'read;
                    }
                    let picked = pick(&letter).await?;
                    if picked {
                        let mut send = traced(
                            self.client.send_message().queue_url(&self.source_url).message_body(&letter.body),
                        );
                        if fifo {
                            let group = attribute(MessageSystemAttributeName::MessageGroupId)
                                .unwrap_or_else(|| "redriven".into());
                            send = send
                                .message_group_id(group)
                                .message_deduplication_id(format!("redrive-{}", letter.message_id));
                        }
                        send.send().await.map_err(err)?;
                        self.client
                            .delete_message()
                            .queue_url(&self.dlq_url)
                            .receipt_handle(receipt)
                            .send()
                            .await
                            .map_err(err)?;
                    } else {
                        held.push(receipt);
                    }
                    seen.push((letter, picked));
                }
            }
            Ok(())
        }
        .await;
        // Whatever happened above, what was looked at and not moved is visible again.
        for receipt in held {
            let release = self
                .client
                .change_message_visibility()
                .queue_url(&self.dlq_url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await;
            if let Err(e) = release {
                tracing::warn!(error = %err(e), "a dead letter stays hidden until its look ends");
            }
        }
        result.map(|()| seen)
    }
}

fn err<E: std::error::Error>(e: E) -> InfraError {
    InfraError::call("sqs", aws_sdk_sqs::error::DisplayErrorContext(e))
}
