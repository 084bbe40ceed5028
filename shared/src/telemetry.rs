//! Structured logs: one JSON object per line, span fields (the process id) included.
//!
//! Personal data never goes into a field or message: log ids, stages, codes.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

/// Metrics go out once a function has set up its telemetry (not from tests or the simulation).
static METRICS: AtomicBool = AtomicBool::new(false);

/// Installs the JSON subscriber (`RUST_LOG` filters, default `info`) and turns metrics on.
pub fn init() {
    METRICS.store(true, Ordering::Relaxed);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// Counts one occurrence of `metric` in CloudWatch (namespace `polis`), by
/// `dimension` and in total.
pub fn count(metric: &str, dimension: (&str, &str)) {
    record(&[dimension], &[(metric, Unit::Count, 1.0)]);
}

/// Records `metrics` in CloudWatch (namespace `polis`) by `dimensions` and by each
/// shorter prefix of them down to none (e.g. by product and insurer, by product, in
/// total): an Embedded Metric Format line on stdout, which Lambda's log pipeline turns
/// into metrics without an API call. Dimension values are ids of kinds, never of people.
pub fn record(dimensions: &[(&str, &str)], metrics: &[(&str, Unit, f64)]) {
    if METRICS.load(Ordering::Relaxed) {
        println!("{}", emf_line(crate::clock::now_ms(), dimensions, metrics));
    }
}

/// One EMF line (see [`record`]).
pub fn emf_line(at_ms: u64, dimensions: &[(&str, &str)], metrics: &[(&str, Unit, f64)]) -> String {
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let sets: Vec<&[&str]> = (0..=names.len()).rev().map(|n| &names[..n]).collect();
    let declared: Vec<serde_json::Value> = metrics
        .iter()
        .map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit.name()}))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{"Namespace": "polis", "Dimensions": sets, "Metrics": declared}],
        },
    });
    for (name, value) in dimensions {
        line[*name] = serde_json::json!(value);
    }
    for (name, _, value) in metrics {
        line[*name] = serde_json::json!(value);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_every_roll_up_of_its_dimensions_and_carries_each_value() {
        let line = emf_line(
            7,
            &[("Product", "truck"), ("Insurer", "ingostrah")],
            &[("PolicyIssued", Unit::Count, 1.0), ("RequestToIssued", Unit::Milliseconds, 1500.0)],
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let spec = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 7);
        assert_eq!(spec["Namespace"], "polis");
        assert_eq!(spec["Dimensions"], serde_json::json!([["Product", "Insurer"], ["Product"], []]));
        assert_eq!(
            spec["Metrics"][1],
            serde_json::json!({"Name": "RequestToIssued", "Unit": "Milliseconds"})
        );
        assert_eq!((v["Product"].as_str(), v["Insurer"].as_str()), (Some("truck"), Some("ingostrah")));
        assert_eq!((v["PolicyIssued"].as_f64(), v["RequestToIssued"].as_f64()), (Some(1.0), Some(1500.0)));
    }
}

/// Records the value `metric` has now (a gauge, e.g. how many processes are stuck) by
/// `dimension` alone: one EMF line per value, without the roll-ups of [`record`], so that
/// lines for different values of the dimension never add up into one dimensionless figure.
pub fn gauge(metric: &str, dimension: (&str, &str), value: f64) {
    if METRICS.load(Ordering::Relaxed) {
        println!("{}", gauge_line(crate::clock::now_ms(), dimension, metric, value));
    }
}

/// One EMF line of a gauge (see [`gauge`]).
pub fn gauge_line(at_ms: u64, dimension: (&str, &str), metric: &str, value: f64) -> String {
    let mut line: serde_json::Value =
        serde_json::from_str(&emf_line(at_ms, &[dimension], &[(metric, Unit::Count, value)]))
            .unwrap_or_default();
    line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = serde_json::json!([[dimension.0]]);
    line.to_string()
}

#[cfg(test)]
mod gauge_tests {
    use super::*;

    #[test]
    fn a_gauge_line_carries_its_value_by_its_one_dimension_only() {
        let v: serde_json::Value =
            serde_json::from_str(&gauge_line(9, ("Process", "truck"), "StuckProcesses", 3.0)).unwrap();
        let spec = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Dimensions"], serde_json::json!([["Process"]]));
        assert_eq!(spec["Metrics"], serde_json::json!([{"Name": "StuckProcesses", "Unit": "Count"}]));
        assert_eq!((v["Process"].as_str(), v["StuckProcesses"].as_f64()), (Some("truck"), Some(3.0)));
    }
}
