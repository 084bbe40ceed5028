//! SQS: the process FIFO queue and the bank-notifications queue.

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
        let mut req = self.client.send_message().queue_url(&self.url).message_body(body);
        if let Some((group, dedup)) = fifo {
            req = req.message_group_id(group).message_deduplication_id(dedup);
        }
        req.send().await.map_err(|e| InfraError::call("sqs", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
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

impl DeadLetters {
    pub fn new(client: Client, dlq_url: impl Into<String>, source_url: impl Into<String>) -> DeadLetters {
        DeadLetters { client, dlq_url: dlq_url.into(), source_url: source_url.into() }
    }

    /// Moves up to `max` messages back to the source queue, each sent before it is deleted
    /// (a crash in between leaves a copy in both, which the consumers' idempotency absorbs).
    /// FIFO messages keep their group and get a fresh deduplication id, so SQS does not drop
    /// them as repeats of the first delivery. Returns how many moved.
    pub async fn redrive(&self, max: usize) -> Result<usize, InfraError> {
        use aws_sdk_sqs::types::MessageSystemAttributeName;
        let fifo = self.source_url.ends_with(".fifo");
        fn err<E: std::error::Error>(e: E) -> InfraError {
            InfraError::call("sqs", aws_sdk_sqs::error::DisplayErrorContext(e))
        }
        let mut moved = 0;
        while moved < max {
            let batch = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10.min((max - moved) as i32))
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(err)?;
            if batch.messages().is_empty() {
                break;
            }
            for message in batch.messages() {
                let mut send = self
                    .client
                    .send_message()
                    .queue_url(&self.source_url)
                    .message_body(message.body().unwrap_or_default());
                if fifo {
                    let group = message
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                        .cloned()
                        .unwrap_or_else(|| "redriven".into());
                    let id = message.message_id().unwrap_or_default();
                    send = send.message_group_id(group).message_deduplication_id(format!("redrive-{id}"));
                }
                send.send().await.map_err(err)?;
                if let Some(receipt) = message.receipt_handle() {
                    self.client
                        .delete_message()
                        .queue_url(&self.dlq_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(err)?;
                }
                moved += 1;
            }
        }
        Ok(moved)
    }
}
