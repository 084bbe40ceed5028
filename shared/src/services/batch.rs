//! SQS batches with partial failures (`ReportBatchItemFailures`).

use std::future::Future;

/// One SQS record: its message id and body.
pub struct Record {
    pub message_id: String,
    pub body: String,
}

/// Handles each record and returns the ids of those to deliver again.
///
/// On a FIFO queue, a failed message also fails every later one in the batch,
/// so that no message of a group overtakes an earlier one.
pub async fn handle_batch<F, Fut, E>(records: Vec<Record>, fifo: bool, mut handle: F) -> Vec<String>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut failed = Vec::new();
    for record in records {
        if fifo && !failed.is_empty() {
            failed.push(record.message_id);
            continue;
        }
        if let Err(e) = handle(record.body).await {
            tracing::warn!(message_id = %record.message_id, error = %e, "message will be delivered again");
            failed.push(record.message_id);
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<Record> {
        (0..n).map(|i| Record { message_id: format!("m{i}"), body: i.to_string() }).collect()
    }

    async fn fail_on_1(body: String) -> Result<(), String> {
        if body == "1" {
            Err("boom".into())
        } else {
            Ok(())
        }
    }

    #[tokio::test]
    async fn standard_queue_reports_only_the_failed_message() {
        assert_eq!(handle_batch(records(3), false, fail_on_1).await, ["m1"]);
    }

    #[tokio::test]
    async fn fifo_queue_also_reports_everything_after_it() {
        assert_eq!(handle_batch(records(4), true, fail_on_1).await, ["m1", "m2", "m3"]);
    }
}
