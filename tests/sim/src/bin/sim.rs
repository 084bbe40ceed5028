//! `sim [--seed N] [--seeds N] [--trucks N] [--loans N] [--in-flight N] [--calm] [--watch KEY]`:
//! runs the simulation (seeds N, N+1, ... with `--seeds`), prints each run's figures,
//! and exits non-zero with the failing seed when an invariant does not hold.

use std::process::ExitCode;

use polis_sim::{run, Config, Faults};

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        // The services' own logs (JSON lines on stdout), for following a failing seed.
        polis::telemetry::init();
    }
    let mut config = Config::new(1, 200, 200);
    let mut seeds = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> u64 {
            match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => v,
                None => {
                    eprintln!("{name} needs a number");
                    std::process::exit(2);
                }
            }
        };
        match arg.as_str() {
            "--seed" => config.seed = value("--seed"),
            "--seeds" => seeds = value("--seeds"),
            "--trucks" => config.trucks = value("--trucks"),
            "--loans" => config.loans = value("--loans"),
            "--in-flight" => config.in_flight = value("--in-flight") as usize,
            "--calm" => config.faults = Faults::Off,
            "--watch" => config.watch = args.next().map(|k| &*Box::leak(k.into_boxed_str())),
            other => {
                eprintln!("unknown argument {other}; see the source's first line for usage");
                return ExitCode::from(2);
            }
        }
    }
    let first = config.seed;
    for seed in first..first + seeds {
        match run(Config { seed, ..config }) {
            Ok(report) => println!("{report}"),
            Err(failed) => {
                eprintln!("{failed}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
