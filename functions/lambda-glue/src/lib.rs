//! The Lambda side every polis function shares: the SQS batch loop with partial
//! failures, and (feature `http`) a service's [`Reply`] as an API Gateway response.

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use polis::services::batch::{handle_batch, Record};

/// Serves an SQS event source with `ReportBatchItemFailures`: each record is
/// handed to `handle`; those that fail are reported for redelivery. Records of
/// one FIFO message group keep their order; groups run concurrently (see
/// [`handle_batch`]).
///
/// Every polis function runs tokio's current-thread runtime: a Lambda process
/// serves one invocation at a time, so worker threads would only add start-up
/// time and cross-thread wake-ups; concurrency within a batch is async I/O.
pub async fn run_sqs<F, Fut, E>(handle: F) -> Result<(), Error>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let handle = &handle;
    // Boxed: the runtime's future type nests deeply enough to hit the compiler's recursion limit.
    Box::pin(lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // What is not done when the invocation's time runs out is handed back, not lost
        // with a timeout of the whole batch.
        polis::clock::set_deadline(Some(event.context.deadline));
        let records = event
            .payload
            .records
            .into_iter()
            .map(|mut r| Record {
                group: r.attributes.remove("MessageGroupId"),
                message_id: r.message_id.unwrap_or_default(),
                body: r.body.unwrap_or_default(),
            })
            .collect();
        let failed = handle_batch(records, handle).await;
        let mut response = SqsBatchResponse::default();
        for id in failed {
            response.add_failure(id);
        }
        Ok::<_, Error>(response)
    })))
    .await
}

/// A service's answer as the HTTP response API Gateway returns.
#[cfg(feature = "http")]
pub fn http_response(
    reply: polis::services::Reply,
) -> Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error> {
    Ok(lambda_http::Response::builder()
        .status(reply.status)
        .header("content-type", "application/json")
        .body(lambda_http::Body::Text(reply.body.to_string()))?)
}
