//! X-Ray subsegments for every call a function makes to AWS (through an SDK
//! interceptor on each client) and to a partner (around each HTTP request), so one
//! trace shows where a slow hook or step spent its time.
//!
//! There is no X-Ray SDK for Rust: a subsegment is a small JSON document sent over
//! UDP to the daemon Lambda runs beside the function (`AWS_XRAY_DAEMON_ADDRESS`),
//! under the invocation's trace (`_X_AMZN_TRACE_ID`, set per invocation by the
//! runtime). Nothing is sent when the invocation is not sampled, or outside Lambda.
//! Sending never blocks or fails a call: UDP, fire and forget. No URL query, header or
//! body goes into a document (they may carry tokens or personal data): a host and a
//! path at most.

use std::borrow::Cow;
use std::net::UdpSocket;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// The invocation's trace, as Lambda passes it: `Root=1-…;Parent=…;Sampled=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: String,
}

impl TraceHeader {
    /// The trace to add subsegments to, when the header names one and it is sampled.
    pub fn parse(header: &str) -> Option<TraceHeader> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) => root = Some(v.to_owned()),
                Some(("Parent", v)) => parent = Some(v.to_owned()),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        Some(TraceHeader { root: root?, parent: parent? }).filter(|_| sampled)
    }

    /// The current invocation's trace, if it is sampled.
    pub fn current() -> Option<TraceHeader> {
        std::env::var("_X_AMZN_TRACE_ID").ok().as_deref().and_then(TraceHeader::parse)
    }
}

/// One timed call, as a subsegment of the invocation's segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Subsegment<'a> {
    /// `DynamoDB`, `SQS`, `S3`, `SSM`, or the partner (`must`, `bima`).
    pub name: Cow<'a, str>,
    /// `aws` for AWS services, `remote` for partners.
    pub namespace: &'static str,
    /// The AWS operation (`PutItem`), or the partner request's method and path.
    pub operation: Cow<'a, str>,
    pub start: f64,
    pub end: f64,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// No answer came (a timeout, a reset): X-Ray's `fault`.
    pub failed: bool,
}

impl Subsegment<'_> {
    /// The document X-Ray takes for this subsegment of `trace`, with `id` as its own id.
    pub fn document(&self, trace: &TraceHeader, id: &str) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "name": self.name,
            "id": id,
            "trace_id": trace.root,
            "parent_id": trace.parent,
            "type": "subsegment",
            "namespace": self.namespace,
            "start_time": self.start,
            "end_time": self.end,
        });
        match self.namespace {
            "aws" => doc["aws"] = serde_json::json!({"operation": self.operation}),
            _ => doc["http"] = serde_json::json!({"request": {"url": self.operation}}),
        }
        if let Some(status) = self.status {
            doc["http"]["response"] = serde_json::json!({"status": status});
            doc["error"] = serde_json::json!((400..500).contains(&status));
            doc["fault"] = serde_json::json!(status >= 500);
        }
        if self.failed {
            doc["fault"] = serde_json::json!(true);
        }
        doc
    }

    /// Sends the subsegment to the daemon, if this invocation is traced.
    pub fn send(&self) {
        let (Some(trace), Some(daemon)) = (TraceHeader::current(), daemon()) else { return };
        let document = self.document(&trace, &new_id());
        let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{document}");
        let _ = daemon.socket.send_to(datagram.as_bytes(), &daemon.address);
    }
}

struct Daemon {
    socket: UdpSocket,
    address: String,
}

/// The daemon's UDP address (`AWS_XRAY_DAEMON_ADDRESS`: `host:port`, or `tcp:… udp:…`),
/// and a socket to it, made once per container.
fn daemon() -> Option<&'static Daemon> {
    static DAEMON: OnceLock<Option<Daemon>> = OnceLock::new();
    DAEMON
        .get_or_init(|| {
            let setting = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?;
            let address = setting
                .split_whitespace()
                .find_map(|part| part.strip_prefix("udp:"))
                .unwrap_or(setting.trim())
                .to_owned();
            let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(Daemon { socket, address })
        })
        .as_ref()
}

/// A subsegment id: 16 hex digits, unique enough within a trace.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
}

/// Seconds since the epoch, as X-Ray counts time.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// When the SDK call started, kept in the call's config bag between the interceptor's hooks.
#[derive(Debug, Clone, Copy)]
struct Started(f64);

impl Storable for Started {
    type Storer = StoreReplace<Started>;
}

/// Times every call of an AWS SDK client and sends it as a subsegment (service and operation).
#[derive(Debug, Default)]
pub struct AwsCalls;

impl Intercept for AwsCalls {
    fn name(&self) -> &'static str {
        "XRaySubsegments"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (Some(Started(start)), Some(metadata)) = (cfg.load::<Started>(), cfg.load::<Metadata>()) else {
            return Ok(());
        };
        let status = context.response().map(|r| r.status().as_u16());
        Subsegment {
            name: Cow::Owned(metadata.service().to_owned()),
            namespace: "aws",
            operation: Cow::Owned(metadata.name().to_owned()),
            start: *start,
            end: now(),
            status,
            failed: status.is_none(),
        }
        .send();
        Ok(())
    }
}

/// Sends one partner HTTP request with `client`, traced as a subsegment named `partner`
/// and `label`, or the request's method and path for our partners' API paths (never a
/// query or a host's credentials; a URL the partner handed us, which may name a person's
/// file, gets a label).
pub async fn partner_request(
    partner: &'static str,
    label: Option<&'static str>,
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let request = request.build()?;
    let operation = match label {
        Some(label) => label.to_owned(),
        None => format!("{} {}", request.method(), request.url().path()),
    };
    let start = now();
    let answer = client.execute(request).await;
    Subsegment {
        name: Cow::Borrowed(partner),
        namespace: "remote",
        operation: Cow::Owned(operation),
        start,
        end: now(),
        status: answer.as_ref().ok().map(|r| r.status().as_u16()),
        failed: answer.is_err(),
    }
    .send();
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sampled_trace_with_a_parent_is_traced() {
        let traced =
            TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
        assert_eq!(
            traced,
            Some(TraceHeader {
                root: "1-5759e988-bd862e3fe1be46a994272793".into(),
                parent: "53995c3f42cd8ad8".into()
            })
        );
        assert_eq!(
            TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"),
            None
        );
        assert_eq!(TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"), None);
        assert_eq!(TraceHeader::parse(""), None);
    }

    #[test]
    fn a_document_names_its_trace_parent_operation_and_outcome_and_nothing_more() {
        let trace = TraceHeader { root: "1-a-b".into(), parent: "p".into() };
        let call = |namespace, status, failed| Subsegment {
            name: Cow::Borrowed("DynamoDB"),
            namespace,
            operation: Cow::Borrowed("PutItem"),
            start: 1.0,
            end: 1.25,
            status,
            failed,
        };
        let ok = call("aws", Some(200), false).document(&trace, "0123456789abcdef");
        assert_eq!(ok["trace_id"], "1-a-b");
        assert_eq!((ok["parent_id"].as_str(), ok["id"].as_str()), (Some("p"), Some("0123456789abcdef")));
        assert_eq!((ok["type"].as_str(), ok["namespace"].as_str()), (Some("subsegment"), Some("aws")));
        assert_eq!(ok["aws"]["operation"], "PutItem");
        assert_eq!((ok["error"].as_bool(), ok["fault"].as_bool()), (Some(false), Some(false)));
        let refused = call("remote", Some(422), false).document(&trace, "x");
        assert_eq!((refused["error"].as_bool(), refused["fault"].as_bool()), (Some(true), Some(false)));
        assert_eq!(refused["http"]["request"]["url"], "PutItem");
        let lost = call("remote", None, true).document(&trace, "x");
        assert_eq!(lost["fault"], true);
        assert!(lost["http"]["response"].is_null());
        assert_ne!(new_id(), new_id());
        assert_eq!(new_id().len(), 16);
    }
}
