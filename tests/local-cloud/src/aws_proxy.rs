//! Between the functions and the AWS emulator: every AWS call the functions make
//! passes here, so the local cloud can count them (per function and per API
//! call, e.g. `TruckRunnerFunction` / `dynamodb:PutItem`) and can take AWS away
//! (every call answered 503, as during an outage) and give it back, while the
//! emulator keeps its state. Functions are told who they are through
//! `AWS_SDK_UA_APP_ID`, which the SDK puts in its user agent. A service may have an
//! emulator of its own (`AWS_ENDPOINT_URL_SQS`, as the SDK names it): its calls go there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// Counted so far: (function, API call or IAM action) → count.
pub type CallCounts = BTreeMap<(String, String), u64>;

/// One AWS call as the proxy saw it: from its request arriving to its answer leaving.
#[derive(Debug, Clone)]
pub struct CallTiming {
    pub function: String,
    pub call: String,
    pub started: std::time::Instant,
    pub finished: std::time::Instant,
}

pub struct AwsProxy {
    pub url: String,
    upstream: String,
    /// Service (`sqs`, `s3`, ...) → its own emulator, where it has one.
    upstream_of: BTreeMap<String, String>,
    http: reqwest::Client,
    down: AtomicBool,
    refused: std::sync::atomic::AtomicU64,
    counts: Mutex<CallCounts>,
    actions: Mutex<CallCounts>,
    keys: Mutex<CallCounts>,
    timings: Mutex<Vec<CallTiming>>,
}

impl AwsProxy {
    /// Starts a proxy to `upstream` (the emulator's URL), and to `upstream_of` a service
    /// for that service's calls, on a free port.
    pub async fn start(
        upstream: &str,
        upstream_of: BTreeMap<String, String>,
    ) -> std::io::Result<Arc<AwsProxy>> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let proxy = Arc::new(AwsProxy {
            url: format!("http://{}", listener.local_addr()?),
            upstream: upstream.trim_end_matches('/').to_owned(),
            upstream_of: upstream_of
                .into_iter()
                .map(|(s, url)| (s, url.trim_end_matches('/').to_owned()))
                .collect(),
            http: reqwest::Client::builder().no_proxy().build().map_err(std::io::Error::other)?,
            down: AtomicBool::new(false),
            refused: Default::default(),
            counts: Mutex::default(),
            actions: Mutex::default(),
            keys: Mutex::default(),
            timings: Mutex::default(),
        });
        let app = Router::new().fallback(forward).with_state(proxy.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(proxy)
    }

    /// Takes AWS away (every call answered 503) or gives it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// API calls made, e.g. (`TruckRunnerFunction`, `dynamodb:TransactWriteItems`).
    /// Calls answered 503 because AWS was down.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> CallCounts {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The IAM actions those calls needed (a transaction needs each of its parts' actions;
    /// S3's HEAD needs `s3:GetObject`).
    pub fn iam_actions(&self) -> CallCounts {
        self.actions.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every call forwarded so far, with its time at AWS (the emulator) and the proxy.
    pub fn timings(&self) -> Vec<CallTiming> {
        self.timings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The DynamoDB partition keys each function's calls touched (for `dynamodb:LeadingKeys`).
    pub fn partition_keys(&self) -> CallCounts {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Counts a call made on a function's behalf by the Lambda service itself (an SQS event
    /// source's receives and deletes), which does not pass the proxy.
    pub fn record_service_call(&self, function: &str, call: &str) {
        self.count(format!("{function} (event source)"), call.to_owned(), b"");
    }

    fn count(&self, function: String, call: String, body: &[u8]) {
        if call.starts_with("dynamodb:") {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            for key in partition_keys(body) {
                *keys.entry((function.clone(), key)).or_default() += 1;
            }
        }
        let actions = iam_actions(&call, body);
        let mut counted = self.actions.lock().unwrap_or_else(|e| e.into_inner());
        for action in actions {
            *counted.entry((function.clone(), action)).or_default() += 1;
        }
        drop(counted);
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()).entry((function, call)).or_default() += 1;
    }
}

/// The partition-key values a DynamoDB request names (items, keys, transaction parts, and
/// the key condition of a query).
fn partition_keys(body: &[u8]) -> Vec<String> {
    let request = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let of = |item: &serde_json::Value| item["pk"]["S"].as_str().map(str::to_owned);
    let mut keys: Vec<String> = [&request["Item"], &request["Key"]].into_iter().filter_map(of).collect();
    for part in request["TransactItems"].as_array().into_iter().flatten() {
        for (_, inner) in part.as_object().into_iter().flatten() {
            keys.extend([&inner["Item"], &inner["Key"]].into_iter().filter_map(of));
        }
    }
    if let Some(condition) = request["KeyConditionExpression"].as_str() {
        // `pk = :v` or `gsi1pk = :v`: the value of :v.
        for clause in condition.split(" AND ").map(str::trim) {
            if let Some((name, value)) = clause.split_once('=') {
                if name.trim().ends_with("pk") {
                    let value = request["ExpressionAttributeValues"][value.trim()]["S"].as_str();
                    keys.extend(value.map(str::to_owned));
                }
            }
        }
    }
    keys
}

/// The IAM actions an API call needs. Every queue and bucket of the stack is encrypted with the data
/// key (SSE-KMS; the translated-template rehearsal proves it), so SQS and S3 use the key on the
/// caller's behalf: the caller needs KMS permissions the emulator, which does not encrypt, never asks for.
fn iam_actions(call: &str, body: &[u8]) -> Vec<String> {
    let with = |actions: &[&str]| actions.iter().map(|a| (*a).to_owned()).collect();
    match call {
        "sqs:SendMessage" | "sqs:SendMessageBatch" => with(&[call, "kms:GenerateDataKey", "kms:Decrypt"]),
        "sqs:ReceiveMessage" => with(&[call, "kms:Decrypt"]),
        "s3:PutObject" => with(&[call, "kms:GenerateDataKey"]),
        "s3:GetObject" | "s3:HeadObject" => with(&["s3:GetObject", "kms:Decrypt"]),
        "dynamodb:TransactWriteItems" | "dynamodb:TransactGetItems" => {
            let parts = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
            let items = parts["TransactItems"].as_array().cloned().unwrap_or_default();
            let mut actions: Vec<String> = items
                .iter()
                .filter_map(|item| item.as_object()?.keys().next().cloned())
                .map(|part| match part.as_str() {
                    "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
                    other => format!("dynamodb:{other}Item"),
                })
                .collect();
            actions.sort();
            actions.dedup();
            actions
        }
        other => vec![other.to_owned()],
    }
}

/// `dynamodb:PutItem`, `sqs:SendMessage`, `ssm:GetParameter`, `s3:PutObject`, ...
fn call_name(method: &Method, headers: &HeaderMap) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (service, action) = target.split_once('.').unwrap_or(("", target));
        let service = match service {
            s if s.starts_with("DynamoDB") => "dynamodb",
            s if s.starts_with("AmazonSQS") => "sqs",
            s if s.starts_with("AmazonSSM") => "ssm",
            "TrentService" => "kms",
            other => other,
        };
        return format!("{service}:{action}");
    }
    let action = match *method {
        Method::GET => "GetObject",
        Method::PUT => "PutObject",
        Method::HEAD => "HeadObject",
        Method::DELETE => "DeleteObject",
        _ => "Other",
    };
    format!("s3:{action}")
}

/// The `app/<id>` the SDK puts in its user agent.
fn caller(headers: &HeaderMap) -> String {
    ["x-amz-user-agent", "user-agent"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .find_map(|ua| ua.split_whitespace().find_map(|part| part.strip_prefix("app/")))
        .unwrap_or("unknown")
        .to_owned()
}

async fn forward(
    State(proxy): State<Arc<AwsProxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let (function, call) = (caller(&headers), call_name(&method, &headers));
    proxy.count(function.clone(), call.clone(), &body);
    let service = call.split_once(':').map_or("", |(service, _)| service);
    let upstream = proxy.upstream_of.get(service).unwrap_or(&proxy.upstream);
    let response = answer(&proxy, upstream, method, uri, headers, body).await;
    let timing = CallTiming { function, call, started, finished: std::time::Instant::now() };
    proxy.timings.lock().unwrap_or_else(|e| e.into_inner()).push(timing);
    response
}

async fn answer(
    proxy: &AwsProxy,
    upstream: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if proxy.down.load(Ordering::SeqCst) {
        proxy.refused.fetch_add(1, Ordering::SeqCst);
        let body = r#"{"__type":"ServiceUnavailable","message":"AWS is unavailable (local outage)"}"#;
        return (StatusCode::SERVICE_UNAVAILABLE, [("content-type", "application/x-amz-json-1.0")], body)
            .into_response();
    }
    let url = format!("{upstream}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    // A HEAD answer has no body: its length header is the object's size, not the body's.
    let is_head = method == Method::HEAD;
    let mut request = proxy.http.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let Ok(answer) = request.send().await else {
        return (StatusCode::BAD_GATEWAY, "emulator unreachable").into_response();
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "transfer-encoding" && name != "connection" && (is_head || name != "content-length") {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An emulator stand-in that answers every request with its own name.
    async fn upstream(name: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(move || async move { name });
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn a_service_with_an_emulator_of_its_own_is_sent_there_and_the_rest_to_the_default() {
        let (default, own) = (upstream("default").await, upstream("sqs's own").await);
        let proxy = AwsProxy::start(&default, BTreeMap::from([("sqs".to_owned(), own)])).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let call = |target: Option<&'static str>| {
            let mut request = http.post(format!("{}/", proxy.url)).header("user-agent", "app/TestFunction");
            if let Some(target) = target {
                request = request.header("x-amz-target", target);
            }
            async move { request.send().await.unwrap().text().await.unwrap() }
        };
        assert_eq!(call(Some("AmazonSQS.SendMessage")).await, "sqs's own");
        assert_eq!(call(Some("DynamoDB_20120810.PutItem")).await, "default");
        assert_eq!(call(None).await, "default", "S3 has none here");
        let counted = proxy.counts();
        assert_eq!(counted.get(&("TestFunction".to_owned(), "sqs:SendMessage".to_owned())), Some(&1));
    }
}
