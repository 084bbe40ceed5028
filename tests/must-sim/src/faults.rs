//! Faults an insurer's API shows in real life, injected on a fraction of calls:
//! HTTP 500, HTTP 429 (with `Retry-After`), answers that never come in time, and
//! slowness on every answer. Shared by the MUST and BIMA simulators; deterministic
//! (every n-th call by a fixed stride), so a run is repeatable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// What to inject; per mille of calls (0 = none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub errors_per_mille: u32,
    pub hangs_per_mille: u32,
    /// How long a hanging call waits before answering (longer than the caller's timeout).
    pub hang: Duration,
    /// Added to every answer.
    pub slow: Duration,
}

/// What was injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultCounts {
    pub calls: u64,
    pub errors_500: u64,
    pub errors_429: u64,
    pub hangs: u64,
}

#[derive(Default)]
pub struct Faults {
    plan: Mutex<FaultPlan>,
    counts: Mutex<FaultCounts>,
    sequence: AtomicU64,
}

enum Fault {
    Error500,
    Error429,
    Hang,
}

impl Faults {
    pub fn set(&self, plan: FaultPlan) {
        *self.plan.lock().unwrap_or_else(|e| e.into_inner()) = plan;
    }

    pub fn counts(&self) -> FaultCounts {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn plan(&self) -> FaultPlan {
        *self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault for the next call, if any: call n falls in the error band when
    /// (n × 379) mod 1000 is below the error rate, in the hang band just above it.
    fn next(&self, plan: &FaultPlan) -> Option<Fault> {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let slot = ((n * 379) % 1000) as u32;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.calls += 1;
        if slot < plan.errors_per_mille {
            if n % 2 == 0 {
                counts.errors_500 += 1;
                Some(Fault::Error500)
            } else {
                counts.errors_429 += 1;
                Some(Fault::Error429)
            }
        } else if slot < plan.errors_per_mille + plan.hangs_per_mille {
            counts.hangs += 1;
            Some(Fault::Hang)
        } else {
            None
        }
    }
}

/// The axum middleware: `route_layer(from_fn_with_state(faults, inject))` on the API routes.
pub async fn inject(State(faults): State<Arc<Faults>>, request: Request, next: Next) -> Response {
    let plan = faults.plan();
    if !plan.slow.is_zero() {
        tokio::time::sleep(plan.slow).await;
    }
    match faults.next(&plan) {
        None => next.run(request).await,
        Some(Fault::Error500) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"message": "injected failure"}))).into_response()
        }
        Some(Fault::Error429) => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], Json(json!({"message": "slow down"})))
                .into_response()
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(plan.hang).await;
            (StatusCode::GATEWAY_TIMEOUT, Json(json!({"message": "answered too late"}))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_injected_share_matches_the_plan() {
        let faults = Faults::default();
        let plan = FaultPlan { errors_per_mille: 200, hangs_per_mille: 50, ..FaultPlan::default() };
        for _ in 0..1000 {
            faults.next(&plan);
        }
        let c = faults.counts();
        assert_eq!((c.calls, c.errors_500 + c.errors_429, c.hangs), (1000, 200, 50));
        assert!(c.errors_500 > 50 && c.errors_429 > 50, "{c:?}");
    }
}
