//! Cold starts: each function kind's release binary started fresh against a
//! one-shot Runtime API of our own, with its stack's environment (so its start-up
//! work is real: SSM reads, client set-up), handed one real event; the time from
//! process start to its answer, and its peak RSS (VmHWM) at that moment.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use polis_e2e::{BoxError, Harness, HOOK_SECRET};
use polis_local_cloud::Launch;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::{quantile, Row};

struct OneShot {
    /// When the process first asked for work: its start-up is done.
    ready: Mutex<Option<Instant>>,
    event: Mutex<Option<Value>>,
    answered: Mutex<Option<oneshot::Sender<Instant>>>,
}

async fn next(State(s): State<Arc<OneShot>>) -> Response {
    s.ready.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
    let event = s.event.lock().unwrap_or_else(|e| e.into_inner()).take();
    match event {
        Some(event) => (
            [
                ("lambda-runtime-aws-request-id", "bench-1".to_owned()),
                ("lambda-runtime-deadline-ms", (u64::MAX / 2).to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
                ),
                ("content-type", "application/json".into()),
            ],
            event.to_string(),
        )
            .into_response(),
        // One invocation only: later polls wait (the process is killed meanwhile).
        None => std::future::pending().await,
    }
}

async fn answered(State(s): State<Arc<OneShot>>, _body: Bytes) -> StatusCode {
    if let Some(tx) = s.answered.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = tx.send(Instant::now());
    }
    StatusCode::ACCEPTED
}

/// One cold start: until ready for work, until the first answer, and the peak RSS (kB).
struct ColdStart {
    ready: Duration,
    answered: Duration,
    peak_rss_kb: u64,
}

/// Starts the function once and times its start-up and its first answer to `event`.
async fn once(launch: &Launch, event: Value) -> Result<ColdStart, BoxError> {
    let (tx, rx) = oneshot::channel();
    let state = Arc::new(OneShot {
        ready: Mutex::new(None),
        event: Mutex::new(Some(event)),
        answered: Mutex::new(Some(tx)),
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(answered))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(answered))
        .route("/2018-06-01/runtime/init/error", post(answered))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut cmd = tokio::process::Command::new(&launch.binary);
    cmd.env_clear()
        .envs(launch.env.iter().cloned())
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://{addr}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", &launch.function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or_default();
    let answered_at = tokio::time::timeout(Duration::from_secs(20), rx).await??;
    let peak_rss_kb = crate::status_kb(pid, "VmHWM").unwrap_or(0);
    let _ = child.kill().await;
    server.abort();
    let ready = state.ready.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or(answered_at);
    Ok(ColdStart { ready: ready - started, answered: answered_at - started, peak_rss_kb })
}

fn api_event(method: &str, path: &str, params: Value, body: Option<String>, headers: Value) -> Value {
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "bench", "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0
        },
        "pathParameters": params,
        "isBase64Encoded": false,
    });
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

/// A real first event for each kind of function.
fn event_for(function: &str, run: usize) -> Value {
    match function {
        f if f.starts_with("Hook") => api_event(
            "POST",
            &format!("/api/hooks/bench-cold-{run}/approved"),
            json!({"scoringId": format!("bench-cold-{run}")}),
            Some(r#"{"insuranceCompany":"ingostrah","writtenPremium":1}"#.into()),
            // As MUST's documents describe a hook: no delivery id.
            json!({"x-hook-secret": HOOK_SECRET, "content-type": "application/json"}),
        ),
        "ProductsApiFunction" => api_event(
            "GET",
            "/api/customers/CUST-COLD/products",
            json!({"customerId": "CUST-COLD"}),
            None,
            json!({}),
        ),
        // An empty request: refused at once ("nothing to do"), no AWS call.
        "ReplayFunction" => json!({}),
        _ => json!({"Records": []}),
    }
}

/// The hook function's cold start (medians, ms): ready for work, first event answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct HookColdStart {
    pub ready_ms: f64,
    pub first_ms: f64,
}

pub async fn starts(h: &Harness, runs: usize) -> Result<(Vec<Row>, HookColdStart), BoxError> {
    let mut rows = Vec::new();
    let mut hook = HookColdStart::default();
    let kinds = [
        "HookApprovedFunction",
        "TruckRunnerFunction",
        "LoanRunnerFunction",
        "BankIntakeFunction",
        "ProductsApiFunction",
        "ReplayFunction",
    ];
    for kind in kinds {
        let launch =
            h.cloud.launches.iter().find(|l| l.function == kind).ok_or(format!("{kind} not in the stack"))?;
        let (mut ready, mut first, mut rss) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let c = once(launch, event_for(kind, run)).await?;
            ready.push(c.ready.as_secs_f64() * 1000.0);
            first.push(c.answered.as_secs_f64() * 1000.0);
            rss.push(c.peak_rss_kb as f64 / 1024.0);
        }
        for v in [&mut ready, &mut first, &mut rss] {
            v.sort_by(f64::total_cmp);
        }
        let (r50, f50, m50) = (quantile(&ready, 0.5), quantile(&first, 0.5), quantile(&rss, 0.5));
        let target = if kind.starts_with("Hook") {
            hook = HookColdStart { ready_ms: r50, first_ms: f50 };
            let met = r50 < 20.0 && m50 < 20.0;
            format!("hook: start < 20 ms and < 20 MB: {}", if met { "met" } else { "NOT met" })
        } else {
            "-".into()
        };
        rows.push(Row::new(
            format!("cold start, {kind}"),
            format!(
                "ready {r50:.1} ms (incl. SSM read if any); first event answered {f50:.1} ms; peak RSS {m50:.1} MB (medians of {runs})"
            ),
            target,
        ));
    }
    Ok((rows, hook))
}
