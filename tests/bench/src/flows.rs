//! N truck processes at once, then N loans at once, through the local stack:
//! wall time, throughput, none left unfinished; the AWS requests each kind of
//! policy took (counted at the local cloud's proxy, and the event sources' SQS
//! calls) against the minimum its flow needs; the runners' CPU per message.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use polis_e2e::{workspace_root, BoxError, Harness};
use polis_local_cloud::runtime::InvocationTiming;
use polis_must_sim::Scenario;

use crate::{cpu_ms, function_cpu_ms, status_kb, under_way, Row};

/// The AWS emulator's processes (moto: one Python process per port), as `scripts/emulator.sh`
/// records them.
fn emulator_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(workspace_root().join(".local")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("moto-"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

/// CPU milliseconds the emulator has used so far.
fn emulator_cpu_ms() -> f64 {
    emulator_pids().into_iter().map(cpu_ms).sum()
}

/// The emulator's resident memory now, in MB.
fn emulator_rss_mb() -> f64 {
    emulator_pids().into_iter().filter_map(|pid| status_kb(pid, "VmRSS")).sum::<u64>() as f64 / 1024.0
}

/// The machine's CPU time so far, busy and in all, in clock ticks (from /proc/stat).
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let all: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (all - idle, all)
}

/// What one phase (N policies of one kind) cost.
pub struct Phase {
    pub kind: &'static str,
    pub plural: &'static str,
    pub policies: usize,
    /// API calls by (function, call) during the phase.
    pub calls: BTreeMap<(String, String), u64>,
    pub invocations: Vec<InvocationTiming>,
    /// The fewest AWS requests one policy of this kind needs (see `minimum_*`).
    pub minimum_per_policy: f64,
}

pub struct Measured {
    pub rows: Vec<Row>,
    pub phases: Vec<Phase>,
}

fn delta(
    before: &BTreeMap<(String, String), u64>,
    after: BTreeMap<(String, String), u64>,
) -> BTreeMap<(String, String), u64> {
    after
        .into_iter()
        .map(|(k, v)| {
            let was = before.get(&k).copied().unwrap_or(0);
            (k, v - was)
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Waits until every id has a notice of `kind`; returns how many did not in time.
async fn wait_all(h: &Harness, ids: &[String], kind: &str, timeout: Duration) -> usize {
    let start = Instant::now();
    loop {
        let missing = ids.iter().filter(|id| !h.notifications(id).iter().any(|n| n["type"] == kind)).count();
        if missing == 0 || start.elapsed() > timeout {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// MUST calls that change something at MUST (everything but the token and downloads),
/// as the simulator counted them so far.
fn must_changing_calls(h: &Harness) -> u64 {
    let stats = h.must.sim.stats();
    stats.init_calls + stats.calls.iter().filter(|(name, _)| *name != "download").map(|(_, n)| n).sum::<u64>()
}

/// A truck policy's minimum: the bank's request stored and queued (2), the process read
/// when driven (1); per hook stored and queued, then read and written by the runner (4);
/// per MUST call that changes something there its result written (1); per notice to the
/// bank one send (1); per document read from S3 (1) and per policy file archived (1).
async fn minimum_truck(h: &Harness, pid: &str, must_calls_per_policy: f64) -> Result<f64, BoxError> {
    let p = h.process(pid).await?.ok_or("no process")?;
    let hooks = p["applied"].as_array().map_or(0, Vec::len) as f64;
    let notices = h.notifications(pid).len() as f64;
    let documents = p["request"]["documents"].as_array().map_or(0, Vec::len) as f64;
    let files = p["policy"]["files"].as_array().map_or(0, Vec::len) as f64;
    Ok(3.0 + 4.0 * hooks + must_calls_per_policy + notices + documents + files)
}

/// A loan's minimum: the event stored and queued (2), the record read when driven (1);
/// calc, sale and print link each with its result written (3); the print form archived (1
/// S3 put + 1 write); the bank told (1).
const MINIMUM_LOAN: f64 = 9.0;

/// One phase: `n` flows started by `start(i)` (which returns the id the bank's notices carry),
/// all awaited until `notice`; the rows it yields and what it cost.
async fn phase<F, Fut>(
    h: &Harness,
    (kind, plural): (&'static str, &'static str),
    runner: &str,
    notice: &str,
    n: usize,
    start: F,
) -> Result<(Vec<Row>, Phase, Vec<String>), BoxError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<String, BoxError>>,
{
    let runner_cpu = function_cpu_ms(h, runner);
    let emulator_cpu = emulator_cpu_ms();
    let machine = machine_ticks();
    let calls_before = h.cloud.aws.counts();
    let since = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(start(i).await?);
    }
    let unfinished = wait_all(h, &ids, notice, Duration::from_secs(60 + 2 * n as u64)).await;
    let wall = since.elapsed();
    let invocations: Vec<_> = h.cloud.invocations().into_iter().filter(|i| i.started >= since).collect();
    let runner_invocations = invocations.iter().filter(|i| i.function == runner).count().max(1);
    let runner_cpu = function_cpu_ms(h, runner) - runner_cpu;
    // Where the time went: each emulator process is one Python process (one core at most),
    // so a share near 100 % per process says the emulator, not polis, set the pace.
    let emulator_busy = (emulator_cpu_ms() - emulator_cpu) / (wall.as_secs_f64() * 1000.0) * 100.0;
    let machine_busy = {
        let (busy, all) = machine_ticks();
        (busy - machine.0) as f64 / (all - machine.1).max(1) as f64 * 100.0
    };
    let calls: Vec<_> = h.cloud.aws.timings().into_iter().filter(|c| c.started >= since).collect();
    let (mut waiting_ms, mut function_ms) = (0.0, 0.0);
    for inv in &invocations {
        let own = calls.iter().filter(|c| c.function == inv.function).map(|c| (c.started, c.finished));
        waiting_ms += under_way(inv.started, inv.finished, own).as_secs_f64() * 1000.0;
        function_ms += (inv.finished - inv.started).as_secs_f64() * 1000.0;
    }
    let rows = vec![
        Row::new(
            format!("{n} {plural} at once, through the local stack"),
            format!(
                "{:.1} s wall, {:.2} policies/s, {unfinished} unfinished",
                wall.as_secs_f64(),
                n as f64 / wall.as_secs_f64()
            ),
            format!("none unfinished: {}", if unfinished == 0 { "met" } else { "NOT met" }),
        ),
        Row::new(
            format!("{n} {plural}: where the time went"),
            format!(
                "the machine's cores busy {machine_busy:.0} % of the time; the emulator ({}) busy {emulator_busy:.0} % of the wall time (one core = 100 %), holding {:.0} MB at the end; the functions waited on an AWS call {:.0} % of their invocation time",
                match emulator_pids().len() {
                    1 => "one process".to_owned(),
                    n => format!("{n} processes"),
                },
                emulator_rss_mb(),
                waiting_ms / function_ms * 100.0
            ),
            "-",
        ),
        Row::new(
            format!("CPU time per {runner} invocation (a batch of up to 10 messages)"),
            format!("{:.2} ms over {runner_invocations} invocations", runner_cpu / runner_invocations as f64),
            "-",
        ),
    ];
    let phase = Phase {
        kind,
        plural,
        policies: n - unfinished,
        calls: delta(&calls_before, h.cloud.aws.counts()),
        invocations,
        minimum_per_policy: 0.0,
    };
    Ok((rows, phase, ids))
}

pub async fn run(h: &Harness, n: usize) -> Result<Measured, BoxError> {
    let tag = std::process::id();
    let must_calls_before = must_changing_calls(h);
    let (mut rows, mut trucks, pids) = phase(
        h,
        ("truck eOSAGO policy", "truck eOSAGO policies"),
        "TruckRunnerFunction",
        "truck.policy-issued",
        n,
        |i| async move {
            let pid = format!("B{tag}-{i}");
            let vin: String = format!("{:0>17}", format!("B{tag}{i}")).chars().take(17).collect();
            h.start_truck_process(&pid, &vin, Scenario::default(), false).await?;
            Ok(pid)
        },
    )
    .await?;
    let must_calls = (must_changing_calls(h) - must_calls_before) as f64 / trucks.policies.max(1) as f64;
    trucks.minimum_per_policy = minimum_truck(h, &pids[0], must_calls).await?;
    let (loan_rows, mut loans, _) = phase(
        h,
        ("credit-life policy", "credit-life policies"),
        "LoanRunnerFunction",
        "bima.policy-issued",
        n,
        |i| async move {
            let number = format!("BL{tag}-{i}");
            let sum = (200_000 + i).to_string();
            // The whole policy: BIMA names the sold policy, so its print link and form follow
            // (BIMA's documents promise only a bare 200: that loan ends `sold`, without them).
            let with_ids = polis_bima_sim::Scenario {
                sale_answer: Some(polis_bima_sim::SaleAnswer::WithIds),
                ..Default::default()
            };
            h.bima.sim.set_scenario(&sum, with_ids);
            let event = Harness::loan_event(&number, &format!("BC{tag}-{i}"), &sum);
            h.send_bank_event(&event).await?;
            Ok(number)
        },
    )
    .await?;
    loans.minimum_per_policy = MINIMUM_LOAN;
    rows.extend(loan_rows);
    let quarantined = h.quarantined().await?.len() as u64;
    let mut dead = 0;
    for queue in ["TruckDeadLetterQueue", "LoanDeadLetterQueue", "BankEventsDeadLetterQueue"] {
        dead += h.queue_depth(queue).await?;
    }
    rows.push(Row::new(
        "hooks and events quarantined, and messages dead-lettered, during the flows",
        format!("{quarantined} quarantined, {dead} dead-lettered"),
        format!("none: {}", if quarantined + dead == 0 { "met" } else { "NOT met" }),
    ));
    Ok(Measured { rows, phases: vec![trucks, loans] })
}
