//! A span for every call a function makes to AWS (through an SDK interceptor on each
//! client) and to a partner (around each HTTP request), so one trace shows where a slow
//! hook or step spent its time. They are `tracing` spans: exported as OpenTelemetry
//! spans when traces are on ([`crate::telemetry`]), and the AWS call's and partner
//! request's names are those of X-Ray's subsegments (`DynamoDB`, `SQS`, `S3`, `SSM`;
//! `must`, `bima`, ...).
//!
//! No URL query, header or body goes into a span (they may carry tokens or personal
//! data): a method and a path of our partners' API at most; a URL a partner handed us
//! (which may name a person's file) gets a label instead.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use tracing::field::Empty;

/// The span of one SDK call, kept in the call's config bag between the interceptor's hooks.
#[derive(Debug, Clone)]
struct CallSpan(tracing::Span);

impl Storable for CallSpan {
    type Storer = StoreReplace<CallSpan>;
}

/// Records how a call ended on its span: the HTTP status when an answer came; an error
/// status for a refusal (4xx, X-Ray's `error`), a failure (5xx) or no answer at all
/// (X-Ray's `fault`).
fn finish(span: &tracing::Span, status: Option<u16>) {
    if let Some(status) = status {
        span.record("http.response.status_code", status);
    }
    if status.is_none_or(|s| s >= 400) {
        span.record("otel.status_code", "error");
    }
}

/// Spans every call of an AWS SDK client (service and operation).
#[derive(Debug, Default)]
pub struct AwsCalls;

impl Intercept for AwsCalls {
    fn name(&self) -> &'static str {
        "CallSpans"
    }

    // The first hook after the operation's configuration, which names it (`Metadata`), and
    // before its first attempt.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // A span per AWS call is on every hook's and step's path: made only when it is exported.
        if !crate::telemetry::traces_exported() {
            return Ok(());
        }
        let Some(metadata) = cfg.load::<Metadata>() else { return Ok(()) };
        let span = tracing::info_span!(
            "aws call",
            otel.name = metadata.service(),
            otel.kind = "client",
            otel.status_code = Empty,
            rpc.system = "aws-api",
            rpc.service = metadata.service(),
            rpc.method = metadata.name(),
            http.response.status_code = Empty,
        );
        cfg.interceptor_state().store_put(CallSpan(span));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(CallSpan(span)) = cfg.load::<CallSpan>() {
            finish(span, context.response().map(|r| r.status().as_u16()));
        }
        // The span ends when the call's config bag, its last holder, is dropped.
        Ok(())
    }
}

/// Sends one partner HTTP request with `client`, in a span named `partner` whose
/// operation is `label`, or the request's method and path for our partners' API paths
/// (never a query or a host's credentials; a URL the partner handed us, which may name a
/// person's file, gets a label).
pub async fn partner_request(
    partner: &'static str,
    label: Option<&'static str>,
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    use tracing::Instrument;
    let request = request.build()?;
    let operation = match label {
        Some(label) => label.to_owned(),
        None => format!("{} {}", request.method(), request.url().path()),
    };
    let span = tracing::info_span!(
        "partner call",
        otel.name = partner,
        otel.kind = "client",
        otel.status_code = Empty,
        operation = %operation,
        http.request.method = %request.method(),
        http.response.status_code = Empty,
    );
    let answer = client.execute(request).instrument(span.clone()).await;
    finish(&span, answer.as_ref().ok().map(|r| r.status().as_u16()));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::testing::{exported, traced};

    #[test]
    fn a_refused_or_lost_call_is_an_error_and_an_answered_one_carries_its_status() {
        let spans = traced(|| {
            for status in [Some(200), Some(422), None] {
                let span =
                    tracing::info_span!("call", otel.status_code = Empty, http.response.status_code = Empty);
                finish(&span, status);
            }
        });
        let spans = exported(&spans);
        let status = |i: usize| {
            spans[i]
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == "http.response.status_code")
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(spans.len(), 3);
        assert_eq!(
            (status(0).as_deref(), &spans[0].status),
            (Some("200"), &opentelemetry::trace::Status::Unset)
        );
        assert_eq!(status(1).as_deref(), Some("422"));
        assert!(matches!(spans[1].status, opentelemetry::trace::Status::Error { .. }));
        assert_eq!(status(2), None);
        assert!(matches!(spans[2].status, opentelemetry::trace::Status::Error { .. }));
    }
}
