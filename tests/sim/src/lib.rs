//! A deterministic simulation of polis. The real services (hook intake, bank intake,
//! both runners, replay) run on the in-memory ports (proven equal to AWS by
//! `tests/contracts`) against MUST's and BIMA's models (the ones the HTTP simulators
//! serve), under one seeded scheduler on tokio's paused clock: actors run in an
//! order the seed picks and interleave at every port call; partner calls fail before
//! or after the partner acted; invocations crash between port calls; AWS refuses
//! calls for a while; hook answers are lost and hooks delivered twice. Invariants are
//! checked as flows end and after the run. The same seed gives the same run.

mod chaos;
mod partners;
mod rng;
mod scenarios;
mod world;

use std::time::{Duration, Instant};

use chaos::FaultRates;
use world::World;

/// Where virtual time starts: 2026-12-01T00:00:00Z.
const START_MS: u64 = 1_796_083_200_000;

/// How much goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    /// Nothing: the documented variations only.
    Off,
    /// Partner failures, crashes, outages, lost answers, duplicated hooks.
    On,
}

impl Faults {
    fn rates(self) -> FaultRates {
        match self {
            Faults::Off => FaultRates::default(),
            Faults::On => FaultRates { crash: 3, outage: 1, outage_ms: 20_000 },
        }
    }

    fn partners(self) -> bool {
        self == Faults::On
    }

    /// Per mille of hook deliveries whose HTTP 200 never reaches MUST.
    fn lost_answers(self) -> u32 {
        match self {
            Faults::Off => 0,
            Faults::On => 20,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub seed: u64,
    pub trucks: u64,
    pub loans: u64,
    /// Flows in progress at once (the bank starts a new one as one ends).
    pub in_flight: usize,
    pub faults: Faults,
    /// A process key (`TRUCK#…`, `LOAN#…`) whose notices and final record are printed.
    pub watch: Option<&'static str>,
}

impl Config {
    pub fn new(seed: u64, trucks: u64, loans: u64) -> Config {
        Config { seed, trucks, loans, in_flight: 64, faults: Faults::On, watch: None }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub visibility_ms: u64,
    pub steps: u64,
    pub invocations: u64,
    pub trucks_issued: u64,
    pub trucks_rejected: u64,
    pub trucks_failed: u64,
    /// New MUST processes started for a request: after the bank's correction, after a
    /// temporary error.
    pub trucks_corrected: u64,
    pub trucks_retried: u64,
    pub loans_issued: u64,
    pub loans_sold: u64,
    pub loans_failed: u64,
    pub hook_deliveries: u64,
    pub lost_hook_answers: u64,
    pub reviews_answered: u64,
    pub replayed: u64,
    pub redriven: u64,
    pub crashes: u64,
    pub aws_refusals: u64,
    pub outages: u64,
    pub notices: u64,
    pub notice_repeats: u64,
    pub conflicts: u64,
    pub virtual_ms: u64,
    /// Wall-clock time of the run (the only figure that differs between two runs of a seed).
    pub wall_ms: u64,
}

impl Report {
    pub fn flows(&self) -> u64 {
        self.trucks_issued
            + self.trucks_rejected
            + self.trucks_failed
            + self.loans_issued
            + self.loans_sold
            + self.loans_failed
    }

    /// The run without its wall-clock time: equal for two runs of one seed.
    pub fn replayable(&self) -> Report {
        Report { wall_ms: 0, ..self.clone() }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.wall_ms as f64 / 1000.0;
        writeln!(f, "seed {} (visibility {} s)", self.seed, self.visibility_ms / 1000)?;
        writeln!(
            f,
            "  trucks: {} issued, {} rejected, {} failed ({} corrected, {} retried); loans: {} issued, {} sold, {} failed",
            self.trucks_issued,
            self.trucks_rejected,
            self.trucks_failed,
            self.trucks_corrected,
            self.trucks_retried,
            self.loans_issued,
            self.loans_sold,
            self.loans_failed
        )?;
        writeln!(
            f,
            "  faults: {} crashes, {} outages ({} calls refused), {} hook answers lost",
            self.crashes, self.outages, self.aws_refusals, self.lost_hook_answers
        )?;
        writeln!(
            f,
            "  operator: {} reviews answered, {} kept items replayed, {} dead letters redriven",
            self.reviews_answered, self.replayed, self.redriven
        )?;
        writeln!(
            f,
            "  {} invocations, {} hook deliveries, {} notices ({} repeats), {} version conflicts",
            self.invocations, self.hook_deliveries, self.notices, self.notice_repeats, self.conflicts
        )?;
        write!(
            f,
            "  {} steps, {:.1} virtual hours in {:.1} s: {:.0} flows/s",
            self.steps,
            self.virtual_ms as f64 / 3_600_000.0,
            secs,
            self.flows() as f64 / secs.max(0.001)
        )
    }
}

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub process: String,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.process, self.what)
    }
}

/// A run whose invariants did not hold: replay it with its seed.
#[derive(Debug, Clone)]
pub struct Failed {
    pub report: Report,
    pub violations: Vec<Violation>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} invariant violation(s); replay with `make sim SEED={}`",
            self.violations.len(),
            self.report.seed
        )?;
        for v in self.violations.iter().take(20) {
            writeln!(f, "  {v}")?;
        }
        write!(f, "{}", self.report)
    }
}

/// How long (virtual) a run may take before the flows still open count as stuck.
fn deadline(config: &Config) -> Duration {
    let flows = config.trucks + config.loans;
    // A flow takes minutes of virtual time (reviews wait for the operator): ten per slot in
    // flight. The simulated runners finish about 1,600 flows a virtual hour however many
    // are in flight, so never less than 3.6 s a flow (a 200,000-flow run needs ~120 hours).
    let per_flow_ms = (600_000 / config.in_flight.max(1) as u64).max(3_600);
    Duration::from_millis(6 * 3_600_000 + flows * per_flow_ms)
}

/// Runs one simulation to its end.
pub fn run(config: Config) -> Result<Report, Box<Failed>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    let wall = Instant::now();
    let (mut report, violations) = runtime.block_on(async {
        polis::clock::follow_tokio_time(Some(START_MS));
        let world = World::new(config);
        let mut ticks = rng::Rng::new(config.seed ^ 0x5EED);
        let limit = deadline(&config).as_millis() as u64;
        let (calm_at, deadline) = (polis::ports::now_ms() + limit / 2, polis::ports::now_ms() + limit);
        let mut calm = false;
        while !world.done() && polis::ports::now_ms() < deadline {
            world.step().await;
            tokio::time::advance(Duration::from_millis(50 + ticks.below(450))).await;
            if !calm && polis::ports::now_ms() >= calm_at {
                // Whatever is still open finishes without new faults (or is stuck).
                world.calm();
                calm = true;
            }
        }
        world.check_ended_flows().await;
        world.check_nothing_left().await;
        let mut report = world.report();
        report.virtual_ms = polis::ports::now_ms() - START_MS;
        polis::clock::follow_tokio_time(None);
        (report, world.violations())
    });
    report.wall_ms = wall.elapsed().as_millis() as u64;
    if violations.is_empty() {
        Ok(report)
    } else {
        Err(Box::new(Failed { report, violations }))
    }
}
