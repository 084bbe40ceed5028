//! A warm hook function: `hooks` valid hooks posted one after another through
//! the local gateway, as MUST's documents describe them (no delivery id: the put and
//! the send go out at once). Per hook: the caller's latency, the function's invocation
//! time (Runtime API: event handed → answer), its two AWS calls at AWS (the proxy:
//! request in → answer out) as their sum and as the slower of the two, the invocation
//! time minus the slower call (what parallel writes can reach), and our own overhead:
//! the invocation time minus the time any AWS call was under way. And the CPU time per hook.

use std::time::{Duration, Instant};

use polis_e2e::{BoxError, Harness, HOOK_SECRET};

use crate::{function_cpu_ms, quantile, under_way, Row};

const FUNCTION: &str = "HookApprovedFunction";
const WARM_UP: usize = 50;

/// The rows, and the CPU time per warm hook (ms).
pub async fn hooks(h: &Harness, n: usize) -> Result<(Vec<Row>, f64), BoxError> {
    let client = reqwest::Client::new();
    let post = |i: usize| {
        client
            .post(format!("{}/api/hooks/bench-warm-{}-{i}/approved", h.cloud.http_url, std::process::id()))
            .header("x-hook-secret", HOOK_SECRET)
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
    let (mut invocation, mut sum, mut slower, mut beyond_slower, mut overhead) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for inv in &invocations {
        let inside: Vec<(Instant, Instant)> = calls
            .iter()
            .filter(|c| c.started >= inv.started && c.finished <= inv.finished)
            .map(|c| (c.started, c.finished))
            .collect();
        let under_way = under_way(inv.started, inv.finished, inside.iter().copied());
        let total = ms(inv.finished - inv.started);
        let longest = inside.iter().map(|(s, e)| ms(*e - *s)).fold(0.0, f64::max);
        invocation.push(total);
        sum.push(inside.iter().map(|(s, e)| ms(*e - *s)).sum());
        slower.push(longest);
        beyond_slower.push((total - longest).max(0.0));
        overhead.push((total - ms(under_way)).max(0.0));
    }
    for v in [&mut latency, &mut invocation, &mut sum, &mut slower, &mut beyond_slower, &mut overhead] {
        v.sort_by(f64::total_cmp);
    }
    let p = |v: &[f64]| format!("p50 {:.2} ms, p99 {:.2} ms", quantile(v, 0.5), quantile(v, 0.99));
    let over99 = quantile(&overhead, 0.99);
    let beyond99 = quantile(&beyond_slower, 0.99);
    let cpu_per_hook = cpu / n as f64;
    let rows = vec![
        Row::new(
            format!("warm hook, caller's latency through the local gateway ({n} hooks)"),
            p(&latency),
            "-",
        ),
        Row::new("warm hook, function invocation time", p(&invocation), "-"),
        Row::new(
            "warm hook, its two AWS calls one after the other (DynamoDB PutItem + SQS SendMessage, at the emulator)",
            p(&sum),
            "-",
        ),
        Row::new("warm hook, the slower of its two AWS calls", p(&slower), "-"),
        Row::new(
            "warm hook, invocation time beyond the slower AWS call",
            p(&beyond_slower),
            format!("p99 <= 1 ms: {}", if beyond99 <= 1.0 { "met" } else { "NOT met" }),
        ),
        Row::new(
            "warm hook, our own overhead (invocation minus the time any AWS call was under way)",
            p(&overhead),
            format!("p99 < 1 ms: {}", if over99 < 1.0 { "met" } else { "NOT met" }),
        ),
        Row::new(
            "CPU time per warm hook",
            format!("{cpu_per_hook:.3} ms"),
            format!("<= 0.8 ms: {}", if cpu_per_hook <= 0.8 { "met" } else { "NOT met" }),
        ),
    ];
    Ok((rows, cpu_per_hook))
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
