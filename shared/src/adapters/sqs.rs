//! SQS: the process FIFO queue and the bank-notifications queue.

use aws_sdk_sqs::Client;

use crate::ports::{BankOutbox, InfraError, LoanMessage, LoanQueue, ProcessMessage, ProcessQueue};

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

impl ProcessQueue for Queue {
    async fn enqueue(&self, message: &ProcessMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
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
