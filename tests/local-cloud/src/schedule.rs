//! An EventBridge schedule: invokes the function with a scheduled event every period (the
//! first after one period, as a rate rule does). A run that fails is logged, like a failed
//! asynchronous invocation; the next comes at its time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::runtime::RuntimeApi;

/// The event EventBridge sends for a schedule rule.
pub fn scheduled_event(function: &str, region: &str, at_ms: u64, n: u64) -> serde_json::Value {
    let time = polis::services::timeline::utc(at_ms);
    json!({
        "version": "0",
        "id": format!("local-schedule-{function}-{n}"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": format!("{}Z", &time[..19]),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:123456789012:rule/{function}-schedule")],
        "detail": {},
    })
}

pub fn spawn(api: Arc<RuntimeApi>, function: String, every: Duration, region: String) {
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            tokio::time::sleep(every).await;
            if api.stopping.load(Ordering::Relaxed) {
                return;
            }
            n += 1;
            let event = scheduled_event(&function, &region, polis::clock::now_ms(), n);
            if let Err(e) = api.invoke(&function, event.to_string().into_bytes()).await {
                eprintln!("local-cloud: scheduled run {n} of {function} failed: {e}");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_event_looks_like_eventbridges() {
        let e = scheduled_event("WatchdogFunction", "us-east-1", 1_790_000_000_000, 3);
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["source"], "aws.events");
        assert_eq!(e["time"].as_str().unwrap().len(), 20, "{e}");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn rates_are_read_and_anything_else_refused() {
        use crate::template::schedule_period;
        assert_eq!(schedule_period("rate(5 minutes)").unwrap(), Duration::from_secs(300));
        assert_eq!(schedule_period("rate(1 hour)").unwrap(), Duration::from_secs(3600));
        assert_eq!(schedule_period("rate(2 days)").unwrap(), Duration::from_secs(172_800));
        assert!(schedule_period("cron(0 12 * * ? *)").is_err());
        assert!(schedule_period("rate(0 minutes)").is_err());
    }
}
