//! The local cloud: what `sam local` cannot do without Docker (and does not do
//! for SQS at all). From `template.yaml` it creates the tables, queues,
//! redrive policies and buckets on the AWS emulator, runs each function's real
//! binary under a Lambda Runtime API of its own, routes HTTP requests by the
//! template's `HttpApi` events (payload 2.0), and polls each SQS event source
//! as Lambda does (batch size, partial batch failures, visibility timeout), and invokes each
//! scheduled function at its rate as EventBridge does.
//! It runs as well from the CloudFormation that AWS's SAM translator makes of the
//! template (`scripts/translate-template.py`): see [`template`].

pub mod aws_proxy;
pub mod gateway;
pub mod poller;
pub mod provision;
pub mod runtime;
pub mod schedule;
pub mod sigv4;
pub mod template;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gateway::{Gateway, Route};
use provision::{Physical, Provisioner, Resources};
use runtime::{ProcessSpec, RuntimeApi};
use template::{EventSource, Template};

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("template: {0}")]
    Template(String),
    #[error("provisioning: {0}")]
    Provision(String),
    #[error("function binary {0} not found: build it first (cargo build --workspace --bins)")]
    Binary(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// How the SDK names a service's own endpoint: `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_S3`, ...
const SERVICE_ENDPOINT: &str = "AWS_ENDPOINT_URL_";

/// The services' own emulators named in this process's environment (`AWS_ENDPOINT_URL_SQS=...`),
/// for [`CloudOptions::platform_env`].
pub fn own_emulators_from_env() -> Vec<(String, String)> {
    std::env::vars().filter(|(k, _)| k.starts_with(SERVICE_ENDPOINT)).collect()
}

pub struct CloudOptions {
    pub template: PathBuf,
    /// Prefix of every physical name, so several stacks can share one emulator.
    pub stack: String,
    pub http_listen: SocketAddr,
    pub runtime_listen: SocketAddr,
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub parameters: BTreeMap<String, String>,
    /// Environment every function gets besides the template's: the emulator's endpoint and
    /// credentials (a service's own emulator, `AWS_ENDPOINT_URL_<SERVICE>`, only through the proxy).
    pub platform_env: Vec<(String, String)>,
    /// Set last, over the template's environment (e.g. a log level for one test stack).
    pub env_overrides: Vec<(String, String)>,
    /// Processes per function (Lambda's concurrency).
    pub instances: usize,
    /// Runs every scheduled function this often instead of at its rate (tests do not wait minutes).
    pub schedule_every: Option<Duration>,
    /// Plays the collector Lambda runs beside each function when the stack is traced: the
    /// functions export their spans to it (`OTEL_EXPORTER_OTLP_ENDPOINT`), [`LocalCloud::traces`]
    /// holds them. Off, the functions record and export none (as without the collector's layer).
    pub traces: bool,
}

/// How a function's process is started (for tools that start one themselves, e.g. to time a cold start).
#[derive(Debug, Clone)]
pub struct Launch {
    pub function: String,
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
}

pub struct LocalCloud {
    pub http_url: String,
    pub launches: Vec<Launch>,
    /// Every AWS call of the functions passes here: counted, and can be cut off.
    pub aws: Arc<aws_proxy::AwsProxy>,
    pub resources: Resources,
    pub routes: Vec<Route>,
    api: Arc<RuntimeApi>,
}

impl LocalCloud {
    pub async fn start(options: CloudOptions, sdk: &aws_config::SdkConfig) -> Result<LocalCloud, CloudError> {
        let template = Template::load(&options.template)?;
        let http = tokio::net::TcpListener::bind(options.http_listen).await?;
        let runtime = tokio::net::TcpListener::bind(options.runtime_listen).await?;
        let http_url = format!("http://{}", http.local_addr()?);
        let runtime_base = format!("http://{}", runtime.local_addr()?);

        let provisioner = Provisioner { sdk, stack: &options.stack };
        let resources = provisioner.create(&template, options.parameters.clone(), &http_url).await?;

        let functions = template.functions()?;
        let emulator = options
            .platform_env
            .iter()
            .find(|(k, _)| k == "AWS_ENDPOINT_URL")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| CloudError::Template("platform_env needs AWS_ENDPOINT_URL".into()))?;
        // A service with an emulator of its own (`AWS_ENDPOINT_URL_SQS`): the proxy sends its
        // calls there; the functions know only the proxy.
        let own_emulators: BTreeMap<String, String> = options
            .platform_env
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(SERVICE_ENDPOINT)?.to_lowercase(), v.clone())))
            .collect();
        let aws = aws_proxy::AwsProxy::start(&emulator, own_emulators).await?;
        let api = RuntimeApi::new(
            functions.iter().map(|f| (f.logical_id.clone(), Duration::from_secs(f.timeout_seconds))),
        );
        let collector = match options.traces {
            true => Some(otlp_collector(api.clone()).await?),
            false => None,
        };
        std::fs::create_dir_all(&options.log_dir)?;
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let mut routes = Vec::new();
        let mut launches = Vec::new();
        for f in &functions {
            let mut env: Vec<(String, String)> = options
                .platform_env
                .iter()
                .filter(|(k, _)| !k.starts_with(SERVICE_ENDPOINT))
                .map(|(k, v)| (k.clone(), if k == "AWS_ENDPOINT_URL" { aws.url.clone() } else { v.clone() }))
                .collect();
            env.push(("AWS_SDK_UA_APP_ID".into(), f.logical_id.clone()));
            for (name, value) in &f.environment {
                env.push((name.clone(), resources.resolve(value)?));
            }
            if let Some(collector) = &collector {
                env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.clone()));
            }
            env.extend(options.env_overrides.iter().cloned());
            launches.push(Launch {
                function: f.logical_id.clone(),
                binary: options.bin_dir.join(&f.binary),
                env: env.clone(),
            });
            runtime::supervise(
                api.clone(),
                ProcessSpec {
                    function: f.logical_id.clone(),
                    binary: options.bin_dir.join(&f.binary),
                    env,
                    log: options.log_dir.join(format!("{}.log", f.logical_id)),
                },
                runtime_base.clone(),
                options.instances,
            )?;
            for event in &f.events {
                match event {
                    EventSource::Http { method, path, iam, .. } => routes.push(Route {
                        method: method.clone(),
                        path: resources.resolve(path)?,
                        function: f.logical_id.clone(),
                        iam: *iam,
                    }),
                    EventSource::Schedule { expression } => {
                        let rate = template::schedule_period(&resources.resolve(expression)?)?;
                        let every = options.schedule_every.unwrap_or(rate);
                        schedule::spawn(api.clone(), f.logical_id.clone(), every, resources.region.clone());
                    }
                    EventSource::Sqs { queue, batch_size, report_batch_item_failures, .. } => {
                        let Some(Physical::Queue { url, arn, .. }) = resources.by_logical_id.get(queue)
                        else {
                            return Err(CloudError::Template(format!(
                                "{}: {queue} is not a queue",
                                f.logical_id
                            )));
                        };
                        // One poller per source: on two cores shared with the Python emulator,
                        // more pollers made every flow slower (measured: 100 truck flows 84.5 s
                        // with one, 122.6 s with two).
                        poller::spawn(
                            api.clone(),
                            sqs.clone(),
                            poller::SqsSource {
                                function: f.logical_id.clone(),
                                queue_url: url.clone(),
                                queue_arn: arn.clone(),
                                batch_size: *batch_size,
                                report_batch_item_failures: *report_batch_item_failures,
                                region: resources.region.clone(),
                            },
                            aws.clone(),
                        );
                    }
                }
            }
        }
        let runtime_router = api.router();
        tokio::spawn(async move {
            let _ = axum::serve(runtime, runtime_router).await;
        });
        let platform =
            |name: &str| options.platform_env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let principal = match (platform("AWS_ACCESS_KEY_ID"), platform("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key), Some(secret_key)) => Some(sigv4::Principal { access_key, secret_key }),
            _ => None,
        };
        let gateway = Arc::new(Gateway { routes: routes.clone(), api: api.clone(), principal });
        tokio::spawn(async move {
            let _ = axum::serve(http, gateway::router(gateway)).await;
        });
        Ok(LocalCloud { http_url, launches, aws, resources, routes, api })
    }

    /// The physical name (table, bucket) or URL (queue) of a logical id.
    pub fn physical(&self, logical_id: &str) -> Option<String> {
        self.resources.resolve(&serde_json::json!({"Ref": logical_id})).ok()
    }

    /// The value the stack was deployed with for the template parameter `name`.
    pub fn parameter(&self, name: &str) -> Option<String> {
        self.resources.parameters.get(name).cloned()
    }

    /// Invokes a function directly (as `aws lambda invoke` does) and returns its answer.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let answer = self
            .api
            .invoke(function, payload.to_string().into_bytes())
            .await
            .map_err(|e| format!("{e:?}"))?;
        serde_json::from_slice(&answer).map_err(|e| e.to_string())
    }

    /// Every span the functions exported so far (with [`CloudOptions::traces`]), as
    /// `{trace_id, span_id, parent_span_id, name, kind, service, attributes, error}`: ids in hex,
    /// `service` the function's logical id, attribute values as strings.
    pub fn traces(&self) -> Vec<serde_json::Value> {
        self.api.traces()
    }

    /// Every finished invocation so far (when handed to the process, when answered).
    pub fn invocations(&self) -> Vec<runtime::InvocationTiming> {
        self.api.timings()
    }

    /// The OS process ids of a function's running processes.
    pub fn pids(&self, function: &str) -> Vec<u32> {
        self.api.pids(function)
    }

    /// Kills every process of a function (by logical id); they are restarted.
    pub fn kill(&self, function: &str) -> usize {
        self.api.kill(function)
    }

    /// Stops pollers and restarts; processes end with the runtime that owns them.
    pub fn stop(&self) {
        self.api.stopping.store(true, Ordering::Relaxed);
    }
}

/// The collector Lambda runs beside each function (the ADOT extension's OTLP/HTTP
/// receiver): takes the spans the functions export (`POST /v1/traces`, protobuf) and keeps
/// them. Returns its base URL.
async fn otlp_collector(api: Arc<RuntimeApi>) -> Result<String, CloudError> {
    use axum::body::Bytes;
    use axum::http::{header, StatusCode};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let receive = move |body: Bytes| async move {
        let Ok(request) = ExportTraceServiceRequest::decode(body) else {
            return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "text/plain")], Vec::new());
        };
        for span in otlp_spans(request) {
            api.trace(span);
        }
        // An empty ExportTraceServiceResponse: all taken.
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-protobuf")], Vec::new())
    };
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(receive));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// The spans of one export, flattened (see [`LocalCloud::traces`]).
fn otlp_spans(
    request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> Vec<serde_json::Value> {
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
    fn text(kv: &KeyValue) -> String {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            Some(Value::IntValue(i)) => i.to_string(),
            Some(Value::BoolValue(b)) => b.to_string(),
            Some(Value::DoubleValue(d)) => d.to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        }
    }
    let mut spans = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(text)
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            let attributes: serde_json::Map<String, serde_json::Value> =
                span.attributes.iter().map(|kv| (kv.key.clone(), text(kv).into())).collect();
            spans.push(serde_json::json!({
                "trace_id": hex::encode(&span.trace_id),
                "span_id": hex::encode(&span.span_id),
                "parent_span_id": hex::encode(&span.parent_span_id),
                "name": span.name,
                "kind": span.kind,
                "service": service,
                "attributes": attributes,
                // STATUS_CODE_ERROR
                "error": span.status.is_some_and(|s| s.code == 2),
            }));
        }
    }
    spans
}
