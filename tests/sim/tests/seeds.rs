//! The simulation within the test suite: a fixed budget of seeds, each run to its end
//! with every invariant checked; a failure prints its seed (`make sim SEED=…` replays it).
//! Longer runs: `make sim` and `make soak`.

use polis_sim::{run, Config, Faults};

/// Seeds per run of the suite, and flows per seed: about a minute on two cores.
const SEEDS: u64 = 48;
const FLOWS: u64 = 80;

#[test]
fn every_seed_in_the_budget_keeps_the_invariants() {
    let mut failures = Vec::new();
    for seed in 1..=SEEDS {
        if let Err(failed) = run(Config::new(seed, FLOWS, FLOWS)) {
            failures.push(failed.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_seed_replays_exactly() {
    let config = Config::new(7, 40, 40);
    let first = run(config).map_err(|f| f.to_string()).expect("seed 7 keeps the invariants");
    let second = run(config).map_err(|f| f.to_string()).expect("seed 7 keeps the invariants");
    assert_eq!(first.replayable(), second.replayable());
    assert!(first.crashes > 0 && first.reviews_answered > 0, "the faults were there: {first}");
}

#[test]
fn without_faults_every_flow_ends_untroubled() {
    let report = run(Config { faults: Faults::Off, ..Config::new(3, 40, 40) })
        .map_err(|f| f.to_string())
        .expect("a calm run keeps the invariants");
    assert_eq!(report.flows(), 80);
    assert_eq!((report.crashes, report.aws_refusals, report.reviews_answered), (0, 0, 0), "{report}");
}
