//! bench: the numbers issue 6 asks for, measured through the local stack with the
//! release binaries (`make bench`; needs the emulator). Prints one table:
//!
//! - zipped size of each function's `bootstrap`;
//! - cold start of each function kind (process start → first invocation answered,
//!   under a Runtime API of our own, with its real AWS calls) and its peak RSS;
//! - a hook's warm latency through the local gateway (p50, p99), the function's
//!   invocation time, and our own overhead (invocation time minus the time its two
//!   AWS calls spent at AWS, as the local cloud's proxy saw them);
//! - CPU time per hook and per runner message (from /proc);
//! - the same hook in Python on boto3, and the ratios: cold start, CPU per hook;
//! - N truck processes and N loans at once: wall time, throughput, unfinished;
//! - AWS requests per issued policy against the minimum the flow needs, and the
//!   AWS cost per 1,000 policies at list prices.
//!
//! `bench [--flows N] [--hooks N] [--cold-runs N]` (defaults 100, 1000, 5; `--flows 0` skips
//! the flows and the cost).

mod cold;
mod cost;
mod flows;
mod peer;
mod sizes;
mod warm;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use polis_e2e::{BoxError, Harness, Ports, StackOptions, StackTimings};

/// One line of the result table.
pub struct Row {
    pub what: String,
    pub value: String,
    pub target: String,
}

impl Row {
    pub fn new(what: impl Into<String>, value: impl Into<String>, target: impl Into<String>) -> Row {
        Row { what: what.into(), value: value.into(), target: target.into() }
    }
}

/// The `q`-quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// How long within `[from, to]` at least one of `calls` (start, end) was under way:
/// the union of their intervals, for calls that lie inside it.
pub fn under_way(
    from: Instant,
    to: Instant,
    calls: impl IntoIterator<Item = (Instant, Instant)>,
) -> Duration {
    let mut inside: Vec<(Instant, Instant)> =
        calls.into_iter().filter(|&(s, e)| s >= from && e <= to).collect();
    inside.sort();
    let (mut total, mut reach) = (Duration::ZERO, from);
    for (start, end) in inside {
        let start = start.max(reach);
        if end > start {
            total += end - start;
            reach = end;
        }
    }
    total
}

/// CPU time (user + system) a process has used, in milliseconds.
pub fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the command.
    (ticks(11) + ticks(12)) * 1000.0 / clock_ticks()
}

/// A `kB` field of a process's /proc status (`VmRSS`, `VmHWM`, ...), in kB.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    line.split_whitespace().next()?.parse().ok()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU milliseconds used so far by every running process of a function.
pub fn function_cpu_ms(h: &Harness, function: &str) -> f64 {
    h.cloud.pids(function).into_iter().map(cpu_ms).sum()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let (mut flows, mut hooks, mut cold_runs) = (100usize, 1000usize, 5usize);
    while let Some(flag) = args.next() {
        let value: usize = args.next().ok_or(format!("{flag} needs a number"))?.parse()?;
        match flag.as_str() {
            "--flows" => flows = value,
            "--hooks" => hooks = value,
            "--cold-runs" => cold_runs = value,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let stack = format!("polis-bench-{}", std::process::id());
    let logs = PathBuf::from(".local/logs").join(&stack);
    // The function's own figures: the tests' timings (a warm hook for an unknown scoringId
    // is quarantined after 3 s, so the queue drains), the watchdog out of the way.
    let timings = StackTimings { schedule_every: Duration::from_secs(3600), ..StackTimings::TESTS };
    let options = StackOptions { release: true, timings, ..StackOptions::default() };
    let h = Harness::start_with(&stack, Ports::any()?, logs.clone(), options).await?;
    eprintln!("bench: stack up (release binaries); measuring");

    let mut rows = sizes::zipped(&h)?;
    let (cold_rows, hook_cold) = cold::starts(&h, cold_runs).await?;
    rows.extend(cold_rows);
    let (warm_rows, cpu_per_hook) = warm::hooks(&h, hooks).await?;
    rows.extend(warm_rows);
    rows.extend(peer::compare(&h, &stack, hook_cold, cpu_per_hook).await?);
    // `--flows 0`: only the function's own figures (a lever's quick check).
    if flows > 0 {
        // The flows on a stack of their own, with timings fit for load.
        let load = format!("{stack}-load");
        let options = StackOptions { release: true, timings: StackTimings::LOAD, ..StackOptions::default() };
        let h = Harness::start_with(&load, Ports::any()?, logs.join("load"), options).await?;
        let measured = flows::run(&h, flows).await?;
        rows.extend(
            measured.rows.iter().map(|r| Row::new(r.what.clone(), r.value.clone(), r.target.clone())),
        );
        rows.extend(cost::per_thousand(&h, &measured)?);
    }

    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("\npolis benchmarks: {cores} cores ({machine}); N = {flows} flows, {hooks} warm hooks, {cold_runs} cold starts each\n");
    println!("| what | measured | target |");
    println!("|---|---|---|");
    for r in &rows {
        println!("| {} | {} | {} |", r.what, r.value, r.target);
    }
    Ok(())
}
