//! The Lambda side every polis function shares: the runtime with each invocation's span
//! ([`Invocations`]), the SQS batch loop with partial failures, and (feature `http`) a
//! service's [`Reply`] as an API Gateway response.

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures_util::future::{FutureExt, Map};
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{service_fn, Error, LambdaEvent, LambdaInvocation, Runtime};
use polis::services::batch::{handle_batch, Record};
use tracing::instrument::{Instrument, Instrumented};

/// Runs each invocation in its span ([`polis::telemetry::invocation_span`]: the request id
/// and trace id of every log line, the root of the invocation's spans under Lambda's
/// trace), and exports the finished spans before asking for the next event, that is
/// before Lambda may freeze the process. It takes the place of the runtime's own
/// `TracingLayer` (same fields, and the trace).
#[derive(Debug, Clone, Copy, Default)]
pub struct Invocations;

impl<S> Layer<S> for Invocations {
    type Service = Invocation<S>;

    fn layer(&self, inner: S) -> Invocation<S> {
        Invocation { inner }
    }
}

/// The service [`Invocations`] makes.
pub struct Invocation<S> {
    inner: S,
}

type Done = Result<(), Error>;

impl<S> Service<LambdaInvocation> for Invocation<S>
where
    S: Service<LambdaInvocation, Response = (), Error = Error>,
{
    type Response = ();
    type Error = Error;
    // `Map` drops the instrumented future, and so ends the invocation's span, before the flush.
    type Future = Map<Instrumented<S::Future>, fn(Done) -> Done>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Done> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let context = &invocation.context;
        let span = polis::telemetry::invocation_span(
            &context.env_config.function_name,
            &context.request_id,
            context.xray_trace_id.as_deref(),
        );
        // Entered while the inner service starts, so that what it opens at once is inside.
        let future = span.in_scope(|| self.inner.call(invocation));
        future.instrument(span).map(|done| {
            polis::telemetry::flush();
            done
        })
    }
}

/// Serves `handler` (an event in JSON, an answer in JSON: the scheduled and operator
/// functions), each invocation in its span.
pub async fn run_json<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(serde_json::Value) -> Fut,
    Fut: Future<Output = Result<serde_json::Value, Error>>,
{
    let handler = &handler;
    let service = service_fn(move |event: LambdaEvent<serde_json::Value>| handler(event.payload));
    Box::pin(Runtime::new(service).layer(Invocations).run()).await
}

/// Serves an API Gateway route with `handler` (as `lambda_http::run`), each invocation in its span.
#[cfg(feature = "http")]
pub async fn run_http<'a, R, S, E>(handler: S) -> Result<(), Error>
where
    S: Service<lambda_http::Request, Response = R, Error = E>,
    S::Future: Send + 'a,
    R: lambda_http::IntoResponse,
    E: std::fmt::Debug + Into<lambda_runtime::Diagnostic>,
{
    Box::pin(Runtime::new(lambda_http::Adapter::from(handler)).layer(Invocations).run()).await
}

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
    let service = service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // What is not done when the invocation's time runs out is handed back, not lost
        // with a timeout of the whole batch.
        polis::clock::set_deadline(Some(event.context.deadline));
        let records = event
            .payload
            .records
            .into_iter()
            .map(|mut r| Record {
                group: r.attributes.remove("MessageGroupId"),
                trace_header: r.attributes.remove("AWSTraceHeader"),
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
    });
    Box::pin(Runtime::new(service).layer(Invocations).run()).await
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
