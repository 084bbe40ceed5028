//! The peer: the same hook as a bank's team would commonly write it, Python on boto3
//! (`tests/bench/boto3_hook.py`), run in the same bench against the same emulator, and
//! the ratios against our hook function: cold start and CPU per warm hook.
//!
//! The peer runs without Lambda's Python runtime around it and talks to the emulator
//! directly (ours pass the local cloud's Runtime API and AWS proxy): both flatter it.

use std::time::{Duration, Instant};

use polis_e2e::{workspace_root, BoxError, Harness};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cold::HookColdStart;
use crate::Row;

/// Warm hooks the peer times.
const PEER_HOOKS: usize = 300;

/// `stack`: the stack's name (its hook secret is `/{stack}/hook-secret` in SSM).
pub async fn compare(
    h: &Harness,
    stack: &str,
    ours: HookColdStart,
    our_cpu_ms: f64,
) -> Result<Vec<Row>, BoxError> {
    // Its own queue: the runner must not meet messages it does not know.
    let queue = h
        .sqs()
        .create_queue()
        .queue_name(format!("polis-bench-peer-{}.fifo", std::process::id()))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await?
        .queue_url
        .ok_or("the peer's queue has no URL")?;
    let python = workspace_root().join(".venv/bin/python");
    let script = workspace_root().join("tests/bench/boto3_hook.py");
    let secret = format!("/{stack}/hook-secret");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .args([h.table.as_str(), queue.as_str(), secret.as_str(), &PEER_HOOKS.to_string()])
        // botocore reads its region from AWS_DEFAULT_REGION.
        .env("AWS_DEFAULT_REGION", std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("the peer's stdout")?).lines();
    let (mut ready, mut first, mut result) = (None, None, Value::Null);
    while let Some(line) = tokio::time::timeout(Duration::from_secs(300), lines.next_line()).await?? {
        let v: Value = serde_json::from_str(&line)?;
        if v["ready"] == true {
            ready = Some(started.elapsed());
        } else if v["first"] == true {
            first = Some(started.elapsed());
        } else {
            result = v;
        }
    }
    child.wait().await?;
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    let (ready, first) = (ms(ready), ms(first));
    let cpu = result["cpu_ms_per_hook"].as_f64().ok_or("the peer printed no CPU time")?;
    let rss = result["peak_rss_mb"].as_f64().unwrap_or(f64::NAN);
    let (cold_ratio, cpu_ratio) = (first / ours.first_ms, cpu / our_cpu_ms);
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    Ok(vec![
        Row::new(
            "peer: the same hook in Python on boto3 (tests/bench/boto3_hook.py)",
            format!(
                "ready {ready:.0} ms (clients made, secret read); first hook answered {first:.0} ms; CPU per warm hook {cpu:.2} ms ({PEER_HOOKS} hooks); peak RSS {rss:.0} MB"
            ),
            "-",
        ),
        Row::new(
            "cold start, peer / ours",
            format!(
                "{cold_ratio:.1}× to the first hook answered ({first:.0} ms / {:.1} ms); {:.1}× to ready ({ready:.0} ms / {:.1} ms)",
                ours.first_ms,
                ready / ours.ready_ms,
                ours.ready_ms
            ),
            format!(">= 20×: {}", met(cold_ratio >= 20.0)),
        ),
        Row::new(
            "CPU per warm hook, peer / ours",
            format!("{cpu_ratio:.1}× ({cpu:.2} ms / {our_cpu_ms:.2} ms)"),
            format!(">= 5×: {}", met(cpu_ratio >= 5.0)),
        ),
    ])
}
