//! The Lambda side every polis function shares.

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use polis::services::batch::{handle_batch, Record};

/// Serves an SQS event source with `ReportBatchItemFailures`: each record is
/// handed to `handle`; those that fail are reported for redelivery. On a FIFO
/// queue everything after a failure in the batch is reported too.
pub async fn run_sqs<F, Fut, E>(fifo: bool, handle: F) -> Result<(), Error>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let handle = &handle;
    // Boxed: the runtime's future type nests deeply enough to hit the compiler's recursion limit.
    Box::pin(lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let records = event
            .payload
            .records
            .into_iter()
            .map(|r| Record {
                message_id: r.message_id.unwrap_or_default(),
                body: r.body.unwrap_or_default(),
            })
            .collect();
        let failed = handle_batch(records, fifo, handle).await;
        let mut response = SqsBatchResponse::default();
        for id in failed {
            response.add_failure(id);
        }
        Ok::<_, Error>(response)
    })))
    .await
}
