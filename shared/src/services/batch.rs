//! SQS batches with partial failures (`ReportBatchItemFailures`).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;
use tracing::Instrument;

/// One SQS record: its message id, body, on a FIFO queue its message group, and the
/// trace of the span that sent it (`AWSTraceHeader`), if any.
pub struct Record {
    pub message_id: String,
    pub body: String,
    pub group: Option<String>,
    pub trace_header: Option<String>,
}

/// Kept free between the last record handled and the invocation's deadline, to answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// Handles the records and returns the ids of those to deliver again.
///
/// Within the invocation's deadline ([`crate::clock::time_left`]): a record still
/// running when only the margin to answer is left is cut (dropped at its next await,
/// as a crash would; the effect log makes that safe) and handed back with the rest
/// of its group, so that one hanging message cannot make the whole batch time out
/// and come back, finished messages included.
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
            // Each message's work is a span of the trace that sent it.
            let span = crate::telemetry::message_span(&record.message_id, record.trace_header.as_deref());
            let left = crate::clock::time_left().map(|left| left.saturating_sub(ANSWER_MARGIN));
            let outcome = async {
                let outcome = match left {
                    Some(left) if left.is_zero() => Err("no time left in this invocation".to_owned()),
                    Some(left) => match tokio::time::timeout(left, handle(record.body)).await {
                        Ok(done) => done.map_err(|e| e.to_string()),
                        Err(_) => Err("cut short at the invocation's deadline".to_owned()),
                    },
                    None => handle(record.body).await.map_err(|e| e.to_string()),
                };
                if let Err(e) = &outcome {
                    tracing::warn!(error = %e, "message will be delivered again");
                }
                outcome
            }
            .instrument(span)
            .await;
            if outcome.is_err() {
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
                trace_header: None,
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

    #[tokio::test(start_paused = true)]
    async fn a_message_that_hangs_is_cut_before_the_deadline_and_the_rest_of_the_batch_answered() {
        crate::clock::follow_tokio_time(Some(5_000_000));
        crate::clock::set_deadline(Some(5_000_000 + 30_000));
        // Group a: its first message never ends. Group b: two quick ones.
        let batch = records(&[Some("a"), Some("b"), Some("a"), Some("b")]);
        let started = tokio::time::Instant::now();
        let failed = handle_batch(batch, |body| async move {
            if body == "0" {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, String>(())
        })
        .await;
        let took = started.elapsed();
        assert_eq!(failed, ["m0", "m2"], "the hanging message and what follows it in its group");
        assert!(took <= Duration::from_secs(29), "answered with the margin to spare: {took:?}");
        // With no time left, nothing is started.
        let started_any = std::sync::atomic::AtomicBool::new(false);
        let failed = handle_batch(records(&[None, None]), |_| {
            started_any.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, String>(()) }
        })
        .await;
        assert_eq!(failed, ["m0", "m1"]);
        assert!(!started_any.load(std::sync::atomic::Ordering::SeqCst));
        crate::clock::set_deadline(None);
        crate::clock::follow_tokio_time(None);
    }
}
