//! SQS batches with partial failures (`ReportBatchItemFailures`).

use std::collections::HashMap;
use std::future::Future;

use futures_util::future::join_all;

/// One SQS record: its message id, body and, on a FIFO queue, message group.
pub struct Record {
    pub message_id: String,
    pub body: String,
    pub group: Option<String>,
}

/// Handles the records and returns the ids of those to deliver again.
///
/// Records of one FIFO message group (one process) are handled in order, and a
/// failure fails every later record of its group, so that none overtakes an
/// earlier one. Groups, and the records of a standard queue (which have none),
/// are handled concurrently: a batch takes as long as its slowest process, not as
/// long as all of them one after another.
pub async fn handle_batch<F, Fut, E>(records: Vec<Record>, handle: F) -> Vec<String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut groups: Vec<Vec<Record>> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for record in records {
        // A record of a standard queue has no group: it is a group of its own.
        let group = record.group.clone().unwrap_or_else(|| record.message_id.clone());
        let i = *group_of.entry(group).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(record);
    }
    let handle = &handle;
    let failed = join_all(groups.into_iter().map(|group| async move {
        let mut failed = Vec::new();
        for record in group {
            if !failed.is_empty() {
                failed.push(record.message_id);
                continue;
            }
            if let Err(e) = handle(record.body).await {
                tracing::warn!(message_id = %record.message_id, error = %e, "message will be delivered again");
                failed.push(record.message_id);
            }
        }
        failed
    }))
    .await;
    failed.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn records(groups: &[Option<&str>]) -> Vec<Record> {
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| Record {
                message_id: format!("m{i}"),
                body: i.to_string(),
                group: g.map(str::to_owned),
            })
            .collect()
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
        assert_eq!(handle_batch(records(&[None, None, None]), fail_on_1).await, ["m1"]);
    }

    #[tokio::test]
    async fn fifo_failure_also_reports_the_rest_of_its_group_only() {
        let batch = records(&[Some("a"), Some("a"), Some("b"), Some("a"), Some("b")]);
        assert_eq!(handle_batch(batch, fail_on_1).await, ["m1", "m3"]);
    }

    #[tokio::test]
    async fn records_of_one_group_run_in_order() {
        let seen = std::sync::Mutex::new(Vec::new());
        let batch = records(&[Some("a"), Some("b"), Some("a"), Some("a")]);
        handle_batch(batch, |body| {
            let seen = &seen;
            async move {
                // Later records of a group would finish first if the group ran concurrently.
                let delay = 30 - 10 * body.parse::<u64>().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                seen.lock().unwrap().push(body);
                Ok::<_, String>(())
            }
        })
        .await;
        let of_a: Vec<String> = seen.into_inner().unwrap().into_iter().filter(|b| b != "1").collect();
        assert_eq!(of_a, ["0", "2", "3"]);
    }

    #[tokio::test]
    async fn groups_run_concurrently() {
        // Group a's record waits for group b's: one after the other, this never ends.
        let (tx, rx) = tokio::sync::watch::channel(false);
        let batch = records(&[Some("a"), Some("b")]);
        let run = handle_batch(batch, |body| {
            let (tx, mut rx) = (&tx, rx.clone());
            async move {
                if body == "0" {
                    rx.wait_for(|done| *done).await.map_err(|e| e.to_string())?;
                } else {
                    tx.send_replace(true);
                }
                Ok::<_, String>(())
            }
        });
        let failed =
            tokio::time::timeout(Duration::from_secs(5), run).await.expect("groups ran concurrently");
        assert!(failed.is_empty());
    }
}
