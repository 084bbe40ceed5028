//! Telemetry: structured logs, metrics and traces.
//!
//! Logs: one JSON object per line: the level, the event's fields, the fields of the
//! spans it happened in (innermost first: the process id) and, lifted to the top, the
//! Lambda request id and the trace id of the invocation or of the SQS message being
//! handled, so an operator can filter by either.
//!
//! Traces: the `tracing` spans of polis (an invocation, a message, a process, each AWS
//! call and partner request, see [`crate::adapters::spans`]) are OpenTelemetry spans
//! with X-Ray trace ids, exported over OTLP/HTTP to the collector Lambda runs as an
//! extension, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) names one.
//! Without one nothing is recorded or exported (tests, the simulation, a stack without
//! the collector's layer). A trace crosses SQS in the message's `AWSTraceHeader`.
//!
//! Personal data never goes into a field, a span or a message: log ids, stages, codes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Metrics go out once a function has set up its telemetry (not from tests or the simulation).
static METRICS: AtomicBool = AtomicBool::new(false);

/// The stack's environment (`POLIS_ENVIRONMENT`, the template's `Environment`): a dimension of
/// every metric, so two stacks in one account keep apart and each alarm sees its own.
static ENVIRONMENT: OnceLock<Option<String>> = OnceLock::new();

/// The tracer provider, when traces are exported (flushed after each invocation).
static TRACES: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The Lambda request id, on the invocation's span and at the top of every log line.
pub const REQUEST_ID: &str = "requestId";
/// The X-Ray trace id (`1-…-…`) of the invocation or message, likewise.
pub const TRACE_ID: &str = "traceId";

/// Installs the JSON log subscriber, turns metrics on and, when an OTLP endpoint is
/// configured, traces. The log filter is `RUST_LOG`, else Lambda's `ApplicationLogLevel`
/// (`AWS_LAMBDA_LOG_LEVEL`), else `info`; it does not filter the spans traced.
pub fn init() {
    METRICS.store(true, Ordering::Relaxed);
    let _ = ENVIRONMENT.set(std::env::var("POLIS_ENVIRONMENT").ok().filter(|e| !e.is_empty()));
    let var = |name| std::env::var(name).ok();
    let directive = log_directive(var("RUST_LOG").as_deref(), var("AWS_LAMBDA_LOG_LEVEL").as_deref());
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(JsonLines)
        .with_filter(filter);
    let (provider, failure) = match tracer_provider() {
        Ok(provider) => (provider, None),
        Err(e) => (None, Some(e)),
    };
    let traces = provider.map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        let tracer = provider.tracer("polis");
        let _ = TRACES.set(provider);
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            // polis's own spans only: not its log events (they are in the logs), not the
            // SDK's or the HTTP client's internals.
            .with_filter(filter_fn(|meta| meta.is_span() && meta.target().starts_with("polis")))
    });
    let _ = tracing_subscriber::registry().with(logs).with(traces).try_init();
    if let Some(e) = failure {
        tracing::warn!(error = %e, "traces are off: the OTLP exporter could not be set up");
    }
}

/// The tracer provider exporting to the configured OTLP endpoint, or none without one.
fn tracer_provider() -> Result<Option<SdkTracerProvider>, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig;
    let set = |name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        return Ok(None);
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    // The export blocks the end of each invocation: a collector that does not answer must
    // cost seconds, not the exporter's default ten (the standard variables still decide).
    if !(set("OTEL_EXPORTER_OTLP_TIMEOUT") || set("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")) {
        exporter = exporter.with_timeout(std::time::Duration::from_secs(2));
    }
    let service = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "polis".into());
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter.build()?)
            .with_id_generator(opentelemetry_aws::trace::XrayIdGenerator::default())
            .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service).build())
            .build(),
    ))
}

/// Whether spans are exported (an OTLP endpoint is configured): work that only feeds a
/// trace is skipped otherwise.
pub fn traces_exported() -> bool {
    TRACES.get().is_some()
}

/// Exports the spans finished so far, when traces are on: at the end of each invocation,
/// before Lambda freezes the process.
pub fn flush() {
    if let Some(provider) = TRACES.get() {
        if let Err(e) = provider.force_flush() {
            tracing::warn!(error = %e, "spans not exported");
        }
    }
}

/// The log filter: `RUST_LOG` when set, else Lambda's application log level (`TRACE`,
/// `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`: `tracing` has no level above error), else `info`.
pub fn log_directive(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
    if let Some(directive) = rust_log.map(str::trim).filter(|d| !d.is_empty()) {
        return directive.to_owned();
    }
    let level = match lambda_level.map(|l| l.trim().to_ascii_uppercase()).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    };
    level.to_owned()
}

/// The span of one Lambda invocation: its request id and trace id for every log line, and
/// the root of the function's spans, under the trace Lambda passed (`Lambda-Runtime-Trace-Id`).
pub fn invocation_span(function: &str, request_id: &str, trace_header: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        "invocation",
        otel.name = function,
        otel.kind = "server",
        faas.invocation_id = request_id,
        requestId = request_id,
        traceId = Empty,
    );
    if let Some(header) = trace_header {
        continue_trace(&span, header);
    }
    span
}

/// The span of handling one SQS message: a child of the span that sent it (its
/// `AWSTraceHeader`), so the sender's and the consumer's spans are one trace.
pub fn message_span(message_id: &str, trace_header: Option<&str>) -> tracing::Span {
    let span =
        tracing::info_span!("message", otel.kind = "consumer", message_id = message_id, traceId = Empty);
    if let Some(header) = trace_header {
        continue_trace(&span, header);
    }
    span
}

/// Makes `span` (not yet entered) a child of the span `header` names, and records its trace id.
fn continue_trace(span: &tracing::Span, header: &str) {
    if let Some(root) = trace_root(header) {
        span.record(TRACE_ID, root);
    }
    if let Some(parent) = opentelemetry_aws::trace::xray_propagator::span_context_from_str(header) {
        // Fails only when traces are off: the span then has no OpenTelemetry side to parent.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
}

/// The X-Ray trace header (`Root=1-…;Parent=…;Sampled=…`) of the current span, for a
/// message to carry its trace across SQS; none when traces are off.
pub fn trace_header() -> Option<String> {
    let context = tracing::Span::current().context();
    opentelemetry_aws::trace::xray_propagator::span_context_to_string(context.span().span_context())
}

/// The trace id (`Root`) of an X-Ray trace header.
pub fn trace_root(header: &str) -> Option<&str> {
    header.split(';').find_map(|part| part.trim().strip_prefix("Root=")).filter(|root| !root.is_empty())
}

/// The JSON log line: `{"level", "fields": {event}, "span": {name, fields of every span in
/// scope, the innermost winning}, "requestId", "traceId"}`.
struct JsonLines;

impl<S> tracing_subscriber::fmt::FormatEvent<S, tracing_subscriber::fmt::format::JsonFields> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, tracing_subscriber::fmt::format::JsonFields>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::FormattedFields;
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("fields".into(), serde_json::Value::Object(fields.0));
        if let Some(scope) = ctx.event_scope() {
            let mut span = serde_json::Map::new();
            for (i, s) in scope.enumerate() {
                if i == 0 {
                    span.insert("name".into(), s.name().into());
                }
                let extensions = s.extensions();
                let Some(formatted) = extensions
                    .get::<FormattedFields<tracing_subscriber::fmt::format::JsonFields>>()
                    .and_then(|f| serde_json::from_str::<serde_json::Map<_, _>>(&f.fields).ok())
                else {
                    continue;
                };
                for (name, value) in formatted {
                    let target = if name == REQUEST_ID || name == TRACE_ID { &mut line } else { &mut span };
                    if !name.starts_with("otel.") && !target.contains_key(&name) {
                        target.insert(name, value);
                    }
                }
            }
            line.insert("span".into(), serde_json::Value::Object(span));
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

/// An event's fields as JSON.
#[derive(Default)]
struct JsonVisitor(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// Counts one occurrence of `metric` in CloudWatch (namespace `polis`), by
/// `dimension` and in total.
pub fn count(metric: &str, dimension: (&str, &str)) {
    record(&[dimension], &[(metric, Unit::Count, 1.0)]);
}

/// Records `metrics` in CloudWatch (namespace `polis`) by the stack's `Environment` and
/// `dimensions`, and by each shorter prefix of them down to the environment alone (e.g.
/// by product and insurer, by product, in total): an Embedded Metric Format line on
/// stdout, which Lambda's log pipeline turns into metrics without an API call. Dimension
/// values are ids of kinds, never of people.
pub fn record(dimensions: &[(&str, &str)], metrics: &[(&str, Unit, f64)]) {
    if METRICS.load(Ordering::Relaxed) {
        println!("{}", emf_line(crate::clock::now_ms(), environment(), dimensions, metrics));
    }
}

/// The stack's environment, once [`init`] has read it.
fn environment() -> Option<&'static str> {
    ENVIRONMENT.get().and_then(Option::as_deref)
}

/// One EMF line (see [`record`]); without an environment the roll-ups go down to no dimension.
pub fn emf_line(
    at_ms: u64,
    environment: Option<&str>,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, Unit, f64)],
) -> String {
    let dimensions: Vec<(&str, &str)> =
        environment.map(|e| ("Environment", e)).into_iter().chain(dimensions.iter().copied()).collect();
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let fewest = usize::from(environment.is_some());
    let sets: Vec<&[&str]> = (fewest..=names.len()).rev().map(|n| &names[..n]).collect();
    let declared: Vec<serde_json::Value> = metrics
        .iter()
        .map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit.name()}))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{"Namespace": "polis", "Dimensions": sets, "Metrics": declared}],
        },
    });
    for (name, value) in &dimensions {
        line[*name] = serde_json::json!(value);
    }
    for (name, _, value) in metrics {
        line[*name] = serde_json::json!(value);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_every_roll_up_of_its_dimensions_and_carries_each_value() {
        let line = emf_line(
            7,
            None,
            &[("Product", "truck"), ("Insurer", "ingostrah")],
            &[("PolicyIssued", Unit::Count, 1.0), ("RequestToIssued", Unit::Milliseconds, 1500.0)],
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let spec = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 7);
        assert_eq!(spec["Namespace"], "polis");
        assert_eq!(spec["Dimensions"], serde_json::json!([["Product", "Insurer"], ["Product"], []]));
        assert_eq!(
            spec["Metrics"][1],
            serde_json::json!({"Name": "RequestToIssued", "Unit": "Milliseconds"})
        );
        assert_eq!((v["Product"].as_str(), v["Insurer"].as_str()), (Some("truck"), Some("ingostrah")));
        assert_eq!((v["PolicyIssued"].as_f64(), v["RequestToIssued"].as_f64()), (Some(1.0), Some(1500.0)));
    }
}

/// Records the value `metric` has now (a gauge, e.g. how many processes are stuck) by the
/// environment and `dimension` only: one EMF line per value, without the roll-ups of
/// [`record`], so that lines for different values of the dimension never add up into one figure.
pub fn gauge(metric: &str, dimension: (&str, &str), value: f64) {
    if METRICS.load(Ordering::Relaxed) {
        println!("{}", gauge_line(crate::clock::now_ms(), environment(), dimension, metric, value));
    }
}

/// One EMF line of a gauge (see [`gauge`]).
pub fn gauge_line(
    at_ms: u64,
    environment: Option<&str>,
    dimension: (&str, &str),
    metric: &str,
    value: f64,
) -> String {
    let mut line: serde_json::Value =
        serde_json::from_str(&emf_line(at_ms, environment, &[dimension], &[(metric, Unit::Count, value)]))
            .unwrap_or_default();
    let names: Vec<&str> = environment.map(|_| "Environment").into_iter().chain([dimension.0]).collect();
    line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = serde_json::json!([names]);
    line.to_string()
}

#[cfg(test)]
mod gauge_tests {
    use super::*;

    #[test]
    fn a_gauge_line_carries_its_value_by_its_one_dimension_only() {
        let v: serde_json::Value =
            serde_json::from_str(&gauge_line(9, Some("dev"), ("Process", "truck"), "StuckProcesses", 3.0))
                .unwrap();
        let spec = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Dimensions"], serde_json::json!([["Environment", "Process"]]));
        assert_eq!(v["Environment"], "dev");
        assert_eq!(spec["Metrics"], serde_json::json!([{"Name": "StuckProcesses", "Unit": "Count"}]));
        assert_eq!((v["Process"].as_str(), v["StuckProcesses"].as_f64()), (Some("truck"), Some(3.0)));
    }
}

/// A subscriber that records polis's spans as [`init`] traces them, for tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::layer::SubscriberExt;

    pub type Spans = Arc<Mutex<Vec<SpanData>>>;

    #[derive(Debug, Clone, Default)]
    struct Memory(Spans);

    impl SpanExporter for Memory {
        async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// Runs `f` with spans traced (X-Ray ids, every span sampled) and returns those it ended.
    pub fn traced(f: impl FnOnce()) -> Spans {
        use opentelemetry::trace::TracerProvider as _;
        let memory = Memory::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(memory.clone())
            .with_id_generator(opentelemetry_aws::trace::XrayIdGenerator::default())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f);
        memory.0
    }

    pub fn exported(spans: &Spans) -> Vec<SpanData> {
        spans.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod trace_tests {
    use opentelemetry::trace::{SpanId, TraceId};

    use super::testing::{exported, traced};
    use super::*;

    #[test]
    fn lambda_log_levels_filter_unless_rust_log_is_set() {
        let lambda = |level| log_directive(None, Some(level));
        assert_eq!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].map(lambda),
            ["trace", "debug", "info", "warn", "error", "error"]
        );
        assert_eq!(lambda("warn"), "warn");
        assert_eq!(lambda("LOUD"), "info");
        assert_eq!(log_directive(None, None), "info");
        assert_eq!(log_directive(Some("polis=debug,info"), Some("ERROR")), "polis=debug,info");
        assert_eq!(log_directive(Some(" "), Some("ERROR")), "error");
    }

    #[test]
    fn the_trace_root_is_read_from_a_header() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(trace_root(header), Some("1-5759e988-bd862e3fe1be46a994272793"));
        assert_eq!(trace_root("Parent=53995c3f42cd8ad8; Root=1-a-b"), Some("1-a-b"));
        assert_eq!(trace_root("Root=;Sampled=1"), None);
        assert_eq!(trace_root(""), None);
    }

    #[test]
    fn without_traces_a_message_carries_no_trace_header() {
        let span = tracing::info_span!("process");
        assert_eq!(span.in_scope(trace_header), None);
    }

    #[test]
    fn a_sent_header_names_the_current_span_and_the_receiver_continues_its_trace() {
        let (mut sent, mut outside) = (None, Some(String::new()));
        let spans = traced(|| {
            outside = trace_header();
            let hook = tracing::info_span!(target: "polis", "hook");
            sent = hook.in_scope(trace_header);
            let received = message_span("m-1", sent.as_deref());
            received.in_scope(|| tracing::info_span!(target: "polis", "process").in_scope(|| {}));
        });
        assert_eq!(outside, None, "no span, no header");
        let header = sent.expect("a header inside a span");
        let spans = exported(&spans);
        let named = |name: &str| spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name}"));
        let (hook, message, process) = (named("hook"), named("message"), named("process"));
        let root = trace_root(&header).unwrap();
        assert!(root.starts_with("1-") && root.len() == 35, "an X-Ray trace id: {header}");
        assert_eq!(
            header,
            format!(
                "Root=1-{}-{};Parent={};Sampled=1",
                &hook.span_context.trace_id().to_string()[..8],
                &hook.span_context.trace_id().to_string()[8..],
                hook.span_context.span_id()
            )
        );
        // The X-Ray id generator: the trace id starts with the time in seconds.
        let now = crate::clock::now_ms() / 1000;
        let started = u64::from_str_radix(&root[2..10], 16).unwrap();
        assert!(now.abs_diff(started) < 60, "{root}");
        assert_eq!(message.span_context.trace_id(), hook.span_context.trace_id());
        assert_eq!(
            (message.parent_span_id, message.parent_span_is_remote),
            (hook.span_context.span_id(), true)
        );
        assert_eq!(process.parent_span_id, message.span_context.span_id());
        assert_ne!(message.span_context.trace_id(), TraceId::INVALID);
        assert_eq!(hook.parent_span_id, SpanId::INVALID, "the hook's span is a root here");
    }

    #[test]
    fn an_invocation_continues_lambdas_trace() {
        let spans = traced(|| {
            let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
            invocation_span("HookFunction", "req-1", Some(header)).in_scope(|| {});
        });
        let spans = exported(&spans);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].name, "HookFunction");
        assert_eq!(spans[0].span_context.trace_id().to_string(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(spans[0].parent_span_id.to_string(), "53995c3f42cd8ad8");
    }

    /// Log lines as [`init`] writes them, for the events `f` logs.
    fn log_lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        use std::sync::{Arc, Mutex};
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = {
            let out = out.clone();
            move || Sink(out.clone())
        };
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(JsonLines)
                .with_writer(writer),
        );
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_log_line_carries_the_request_and_trace_ids_of_its_invocation_or_message() {
        let lambda = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let hook = "Root=1-6759e988-0123456789abcdef01234567;Parent=1111111111111111;Sampled=1";
        let lines = log_lines(|| {
            let invocation = invocation_span("Runner", "req-7", Some(lambda));
            let _invocation = invocation.enter();
            tracing::info!("batch");
            let message = message_span("m-1", Some(hook));
            let _message = message.enter();
            let process = tracing::info_span!("process", process_id = "TRUCK#p-1");
            let _process = process.enter();
            tracing::warn!(effect = "init-scoring", attempt = 2, "called");
            let call = tracing::info_span!("aws call", otel.name = "DynamoDB", rpc.method = "GetItem");
            call.in_scope(|| tracing::info!("deep"));
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        for line in &lines {
            assert_eq!(line["requestId"], "req-7", "{line}");
        }
        assert_eq!(lines[0]["traceId"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(lines[0]["span"]["name"], "invocation");
        assert_eq!(lines[0]["fields"]["message"], "batch");
        let called = &lines[1];
        assert_eq!(called["traceId"], "1-6759e988-0123456789abcdef01234567", "the message's trace");
        assert_eq!((called["level"].as_str(), called["fields"]["attempt"].as_i64()), (Some("WARN"), Some(2)));
        assert_eq!(
            (called["span"]["name"].as_str(), called["span"]["process_id"].as_str()),
            (Some("process"), Some("TRUCK#p-1"))
        );
        assert_eq!(called["span"]["message_id"], "m-1");
        let deep = &lines[2];
        assert_eq!(
            (deep["span"]["name"].as_str(), deep["span"]["process_id"].as_str()),
            (Some("aws call"), Some("TRUCK#p-1"))
        );
        assert_eq!(deep["span"]["rpc.method"], "GetItem");
        assert!(deep["span"].get("otel.name").is_none() && deep["span"].get("requestId").is_none(), "{deep}");
    }

    #[test]
    fn every_metric_is_by_environment_down_to_the_environment_alone() {
        let v: serde_json::Value = serde_json::from_str(&emf_line(
            7,
            Some("prod"),
            &[("Process", "truck")],
            &[("PolicyIssued", Unit::Count, 1.0)],
        ))
        .unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Environment", "Process"], ["Environment"]])
        );
        assert_eq!((v["Environment"].as_str(), v["Process"].as_str()), (Some("prod"), Some("truck")));
    }
}
