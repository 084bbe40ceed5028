//! A Lambda Runtime API (`/2018-06-01/runtime/...`) for many functions at once,
//! each under `/fn/{name}`, and the supervisor that runs each function's real
//! binary against it. Like Lambda, one process serves one invocation at a time;
//! a process that dies fails its invocation and is started again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::CloudError;

/// Why an invocation produced no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    #[error("function error: {0}")]
    Function(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("function {0} is not running")]
    Unavailable(String),
}

type Reply = oneshot::Sender<Result<Bytes, InvokeError>>;

struct Invocation {
    event: Bytes,
    reply: Reply,
}

struct Slot {
    sender: mpsc::Sender<Invocation>,
    receiver: Mutex<mpsc::Receiver<Invocation>>,
    /// Invocations handed to a process, with when.
    in_flight: Mutex<HashMap<String, (Reply, Instant)>>,
    timeout: Duration,
}

/// One finished invocation: when the event was handed to the process, when it answered.
#[derive(Debug, Clone)]
pub struct InvocationTiming {
    pub function: String,
    pub started: Instant,
    pub finished: Instant,
}

pub struct RuntimeApi {
    slots: HashMap<String, Slot>,
    next_id: AtomicU64,
    pub stopping: AtomicBool,
    /// Running processes: function → OS process ids (to kill them in fault tests).
    pids: std::sync::Mutex<HashMap<String, Vec<u32>>>,
    timings: std::sync::Mutex<Vec<InvocationTiming>>,
    /// The spans the functions exported to the collector (see [`crate::LocalCloud::traces`]).
    traces: std::sync::Mutex<Vec<serde_json::Value>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl RuntimeApi {
    /// Kills every running process of `function` at once (SIGKILL, as when Lambda's
    /// sandbox dies); the supervisor starts new ones. Returns how many were killed.
    pub fn kill(&self, function: &str) -> usize {
        let pids =
            self.pids.lock().unwrap_or_else(|e| e.into_inner()).get(function).cloned().unwrap_or_default();
        pids.iter()
            .filter(|pid| {
                std::process::Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .count()
    }

    /// The OS process ids of a function's running processes.
    pub fn pids(&self, function: &str) -> Vec<u32> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).get(function).cloned().unwrap_or_default()
    }

    /// Every span recorded so far.
    pub fn traces(&self) -> Vec<serde_json::Value> {
        self.traces.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a span.
    pub fn trace(&self, document: serde_json::Value) {
        self.traces.lock().unwrap_or_else(|e| e.into_inner()).push(document);
    }

    /// Every finished invocation so far.
    pub fn timings(&self) -> Vec<InvocationTiming> {
        self.timings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn track(&self, function: &str, pid: u32, running: bool) {
        let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        let list = pids.entry(function.to_owned()).or_default();
        list.retain(|p| *p != pid);
        if running {
            list.push(pid);
        }
    }

    pub fn new(functions: impl IntoIterator<Item = (String, Duration)>) -> Arc<RuntimeApi> {
        let slots = functions
            .into_iter()
            .map(|(name, timeout)| {
                let (sender, receiver) = mpsc::channel(1024);
                let slot =
                    Slot { sender, receiver: Mutex::new(receiver), in_flight: Mutex::default(), timeout };
                (name, slot)
            })
            .collect();
        Arc::new(RuntimeApi {
            slots,
            next_id: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            pids: std::sync::Mutex::default(),
            timings: std::sync::Mutex::default(),
            traces: std::sync::Mutex::default(),
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/fn/{name}/2018-06-01/runtime/invocation/next", get(next))
            .route("/fn/{name}/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/fn/{name}/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/fn/{name}/2018-06-01/runtime/init/error", post(init_error))
            .with_state(self.clone())
    }

    /// Invokes `function` with `event` and waits for its answer (synchronous invocation).
    pub async fn invoke(&self, function: &str, event: Vec<u8>) -> Result<Bytes, InvokeError> {
        let slot = self.slots.get(function).ok_or_else(|| InvokeError::Unavailable(function.into()))?;
        let (reply, answer) = oneshot::channel();
        slot.sender
            .send(Invocation { event: event.into(), reply })
            .await
            .map_err(|_| InvokeError::Unavailable(function.into()))?;
        match tokio::time::timeout(slot.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(InvokeError::Unavailable(function.into())),
            Err(_) => Err(InvokeError::Timeout(slot.timeout)),
        }
    }

    /// Fails what a dead process was doing.
    async fn abandon(&self, function: &str, why: &str) {
        if let Some(slot) = self.slots.get(function) {
            for (_, (reply, _)) in slot.in_flight.lock().await.drain() {
                let _ = reply.send(Err(InvokeError::Function(why.to_owned())));
            }
        }
    }
}

async fn next(State(api): State<Arc<RuntimeApi>>, Path(name): Path<String>) -> Response {
    let Some(slot) = api.slots.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let invocation = slot.receiver.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return StatusCode::GONE.into_response();
    };
    let id = format!("{:08x}-local-{}", now_ms() as u32, api.next_id.fetch_add(1, Ordering::Relaxed));
    slot.in_flight.lock().await.insert(id.clone(), (invocation.reply, Instant::now()));
    let deadline = now_ms() + slot.timeout.as_millis() as u64;
    let arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
    // Every invocation a new trace, sampled, as with `Tracing: Active` at full sampling (an
    // SQS-triggered one too: Lambda starts a trace per invocation; each message's own trace
    // is in its record's `AWSTraceHeader`). The parent is Lambda's segment for the function.
    let n = api.next_id.fetch_add(1, Ordering::Relaxed);
    let (root, parent) = (
        format!("1-{:08x}-{:024x}", now_ms() / 1000, u128::from(n) << 32 | u128::from(now_ms() as u32)),
        format!("{n:016x}"),
    );
    let trace = format!("Root={root};Parent={parent};Sampled=1");
    (
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            ("lambda-runtime-invoked-function-arn", arn),
            ("lambda-runtime-trace-id", trace),
            ("content-type", "application/json".into()),
        ],
        invocation.event,
    )
        .into_response()
}

async fn respond(
    State(api): State<Arc<RuntimeApi>>,
    Path((name, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    complete(&api, &name, &id, Ok(body)).await
}

async fn fail(
    State(api): State<Arc<RuntimeApi>>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let message = format!("{kind} {}", String::from_utf8_lossy(&body));
    complete(&api, &name, &id, Err(InvokeError::Function(message))).await
}

async fn complete(api: &RuntimeApi, name: &str, id: &str, result: Result<Bytes, InvokeError>) -> Response {
    let Some(slot) = api.slots.get(name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match slot.in_flight.lock().await.remove(id) {
        Some((reply, started)) => {
            let timing = InvocationTiming { function: name.to_owned(), started, finished: Instant::now() };
            api.timings.lock().unwrap_or_else(|e| e.into_inner()).push(timing);
            let _ = reply.send(result);
            StatusCode::ACCEPTED.into_response()
        }
        None => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn init_error(Path(name): Path<String>, body: Bytes) -> Response {
    eprintln!("local-cloud: {name} failed to initialise: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED.into_response()
}

/// How to start one function's process.
pub struct ProcessSpec {
    pub function: String,
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

/// Keeps `instances` processes of the function running until the API stops.
pub fn supervise(
    api: Arc<RuntimeApi>,
    spec: ProcessSpec,
    runtime_api_base: String,
    instances: usize,
) -> Result<(), CloudError> {
    if !spec.binary.exists() {
        return Err(CloudError::Binary(spec.binary.display().to_string()));
    }
    let spec = Arc::new(spec);
    for instance in 0..instances {
        let (api, spec, base) = (api.clone(), spec.clone(), runtime_api_base.clone());
        tokio::spawn(async move {
            while !api.stopping.load(Ordering::Relaxed) {
                let status = run_once(&api, &spec, &base, instance).await;
                if api.stopping.load(Ordering::Relaxed) {
                    break;
                }
                let why = format!("process exited ({status})");
                eprintln!("local-cloud: {} instance {instance}: {why}; restarting", spec.function);
                api.abandon(&spec.function, &why).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    Ok(())
}

async fn run_once(api: &RuntimeApi, spec: &ProcessSpec, base: &str, instance: usize) -> String {
    let mut cmd = tokio::process::Command::new(&spec.binary);
    cmd.env_clear()
        .envs(spec.env.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", format!("{base}/fn/{}", spec.function))
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/{instance}"))
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", spec.function))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return format!("could not start: {e}"),
    };
    let log = spec.log.clone();
    let pipes: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = vec![
        Box::new(child.stdout.take().expect("stdout is piped")),
        Box::new(child.stderr.take().expect("stderr is piped")),
    ];
    for pipe in pipes {
        let log = log.clone();
        tokio::spawn(async move {
            let Ok(mut file) = tokio::fs::OpenOptions::new().create(true).append(true).open(&log).await
            else {
                return;
            };
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            }
        });
    }
    let pid = child.id().unwrap_or_default();
    api.track(&spec.function, pid, true);
    let status = match child.wait().await {
        Ok(status) => status.to_string(),
        Err(e) => e.to_string(),
    };
    api.track(&spec.function, pid, false);
    status
}
