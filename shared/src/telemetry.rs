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

/// Counts one occurrence of `metric` in CloudWatch (namespace `polis`), by
/// `dimension`: an Embedded Metric Format line on stdout, which Lambda's log
/// pipeline turns into a metric without an API call.
pub fn count(metric: &str, dimension: (&str, &str)) {
    if !METRICS.load(Ordering::Relaxed) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let (name, value) = dimension;
    let line = serde_json::json!({
        "_aws": {
            "Timestamp": now,
            "CloudWatchMetrics": [{
                "Namespace": "polis",
                // Per source, and in total (what the alarm watches).
                "Dimensions": [[name], []],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        name: value,
        metric: 1,
    });
    println!("{line}");
}
