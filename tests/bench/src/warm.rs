//! A warm hook function: `hooks` valid hooks posted one after another through
//! the local gateway. Per hook: the caller's latency, the function's invocation
//! time (Runtime API: event handed → answer), the time its two AWS calls spent
//! at AWS (the proxy: request in → answer out), and our own overhead: the
//! invocation time minus that AWS time. And the CPU time per hook.

use std::time::{Duration, Instant};

use polis_e2e::{BoxError, Harness, HOOK_SECRET};

use crate::{function_cpu_ms, quantile, Row};

const FUNCTION: &str = "HookApprovedFunction";
const WARM_UP: usize = 50;

pub async fn hooks(h: &Harness, n: usize) -> Result<Vec<Row>, BoxError> {
    let client = reqwest::Client::new();
    let post = |i: usize| {
        client
            .post(format!("{}/api/hooks/bench-warm-{i}/approved", h.cloud.http_url))
            .header("x-hook-secret", HOOK_SECRET)
            .header("webhook-id", format!("warm-{i}-{}", std::process::id()))
            .body(r#"{"insuranceCompany":"ingostrah","writtenPremium":17847.29}"#)
            .send()
    };
    for i in 0..WARM_UP {
        post(i).await?.error_for_status()?;
    }
    let since = Instant::now();
    let cpu_before = function_cpu_ms(h, FUNCTION);
    let mut latency = Vec::with_capacity(n);
    for i in WARM_UP..WARM_UP + n {
        let t = Instant::now();
        post(i).await?.error_for_status()?;
        latency.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu = function_cpu_ms(h, FUNCTION) - cpu_before;
    drain(h).await?;
    let invocations: Vec<_> =
        h.cloud.invocations().into_iter().filter(|i| i.function == FUNCTION && i.started >= since).collect();
    let calls: Vec<_> =
        h.cloud.aws.timings().into_iter().filter(|c| c.function == FUNCTION && c.started >= since).collect();
    let (mut invocation, mut aws, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
    for inv in &invocations {
        let at_aws: f64 = calls
            .iter()
            .filter(|c| c.started >= inv.started && c.finished <= inv.finished)
            .map(|c| (c.finished - c.started).as_secs_f64() * 1000.0)
            .sum();
        let total = (inv.finished - inv.started).as_secs_f64() * 1000.0;
        invocation.push(total);
        aws.push(at_aws);
        overhead.push((total - at_aws).max(0.0));
    }
    for v in [&mut latency, &mut invocation, &mut aws, &mut overhead] {
        v.sort_by(f64::total_cmp);
    }
    let p = |v: &[f64]| format!("p50 {:.2} ms, p99 {:.2} ms", quantile(v, 0.5), quantile(v, 0.99));
    let over99 = quantile(&overhead, 0.99);
    Ok(vec![
        Row::new(
            format!("warm hook, caller's latency through the local gateway ({n} hooks)"),
            p(&latency),
            "-",
        ),
        Row::new("warm hook, function invocation time", p(&invocation), "-"),
        Row::new(
            "warm hook, time at AWS (DynamoDB PutItem + SQS SendMessage, at the emulator)",
            p(&aws),
            "-",
        ),
        Row::new(
            "warm hook, our own overhead (invocation minus time at AWS)",
            p(&overhead),
            format!("p99 < 1 ms: {}", if over99 < 1.0 { "met" } else { "NOT met" }),
        ),
        Row::new("CPU time per warm hook", format!("{:.3} ms", cpu / n as f64), "-"),
    ])
}

/// Waits until the runner has dealt with every warm hook (no process owns their
/// scoringIds: each is kept in quarantine once its grace runs out), so that the
/// AWS requests counted in the next phase are that phase's own.
async fn drain(h: &Harness) -> Result<(), BoxError> {
    let start = Instant::now();
    while h.queue_depth("TruckQueue").await? > 0 {
        if start.elapsed() > Duration::from_secs(600) {
            return Err("the warm hooks were not drained from the process queue in 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("bench: warm hooks drained from the process queue in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
