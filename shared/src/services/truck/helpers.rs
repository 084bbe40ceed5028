//! MUST's helper methods for the bank, synchronously: `POST /api/trucks/license-category`
//! and `POST /api/trucks/tariff` on the IAM-authorized bank API. Each call: the bank's body
//! validated (400 naming every field at fault, no value quoted) → MUST called with the shared
//! token → MUST's answer checked and turned into ours, or its failure into a clear status
//! (see [`failure_of`]).
//!
//! The cache. Only the licence category is cached, and only for a vehicle named by its VIN:
//! the category and whether a trailer is mandatory are facts of the vehicle's type (its
//! permitted mass, its body: a tractor unit needs a trailer), which a VIN fixes for the
//! vehicle's life. A plate can move to another vehicle when it is re-registered, so a
//! plates-only question is always asked. The tariff is never cached: the seed calls it a
//! "preliminary calculation", it depends on the start date against today, on the insurers'
//! base rates and on regulated coefficients that change, and one insurer may fail one minute
//! and answer the next. Refusals and failures are never cached either (MUST's data sources
//! catch up). The cache lives in the container (no table item, no personal data at rest),
//! holds at most [`CACHE_ENTRIES`] answers, each for [`CACHE_TTL`]: short, so a corrected
//! MUST record is seen within minutes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use super::super::Reply;
use crate::clock::now_ms;
use crate::domain::must::helpers::{HelperFailure, LicenseCategory, LicenseCategoryRequest, TariffRequest};
use crate::ports::{CallError, MustHelpers, TIMED_OUT};

/// How long a licence category is kept in a container.
pub const CACHE_TTL: Duration = Duration::from_secs(10 * 60);
/// The most answers a container keeps.
pub const CACHE_ENTRIES: usize = 1024;
/// The most a helper call may take, token included: API Gateway gives up on an integration
/// after 30 s, and the bank should hear our 504 rather than the gateway's 503.
pub const CALL_BUDGET: Duration = Duration::from_secs(25);

/// A small in-container cache of answers that cannot change, with a TTL and a bound.
pub struct TtlCache<V> {
    ttl_ms: u64,
    capacity: usize,
    entries: Mutex<HashMap<String, (u64, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, capacity: usize) -> TtlCache<V> {
        TtlCache { ttl_ms: ttl.as_millis() as u64, capacity: capacity.max(1), entries: Mutex::default() }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, V)>> {
        // A poisoned lock only means a holder panicked; a cache may still be read.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let now = now_ms();
        let mut entries = self.entries();
        match entries.get(key) {
            Some((expires, value)) if *expires > now => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: String, value: V) {
        let now = now_ms();
        let mut entries = self.entries();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (expires, _)| *expires > now);
            // Still full: the entry closest to expiry (the oldest) makes room.
            if entries.len() >= self.capacity {
                if let Some(oldest) =
                    entries.iter().min_by_key(|(_, (expires, _))| *expires).map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (now + self.ttl_ms, value));
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a failed MUST call means for the bank.
///
/// | MUST / the call | the bank gets |
/// |---|---|
/// | 4xx with or without `errorCode` (400, 404, 409, 422, ...) | 422, MUST's status, code, category, customer text and message |
/// | 403 (our partner account may not use the method) | 502: nothing the bank can fix |
/// | 401 again after a fresh token, or no token to be had | 502 |
/// | 429, 408, 425 | 503: retry in a few seconds |
/// | our client's timeout, MUST's (or its gateway's) 504 | 504 |
/// | any other 5xx, a 3xx, a reset, refused connection, an unreadable or unusable answer | 502 |
pub fn failure_of(error: CallError) -> HelperFailure {
    match error {
        CallError::Refused { status: 403, .. } => HelperFailure::Upstream("HTTP 403".into()),
        CallError::Refused { status, code, message } => HelperFailure::Refused { status, code, message },
        CallError::NotSent(m) if ["HTTP 429", "HTTP 408", "HTTP 425"].iter().any(|s| m.starts_with(s)) => {
            HelperFailure::Busy
        }
        CallError::NotSent(m) if m.starts_with("dynamodb") => HelperFailure::Unavailable,
        CallError::Ambiguous(m) if m.starts_with(TIMED_OUT) || m.starts_with("HTTP 504") => {
            HelperFailure::Timeout
        }
        CallError::NotSent(m) | CallError::Ambiguous(m) | CallError::Unusable(m) => {
            HelperFailure::Upstream(m)
        }
    }
}

/// Today's date, UTC, as `YYYY-MM-DD` (MUST refuses a policy start before it).
pub fn today_utc() -> String {
    let (year, month, day) = crate::clock::date_of(now_ms());
    format!("{year:04}-{month:02}-{day:02}")
}

pub struct TruckHelpers<M> {
    pub must: M,
    /// Licence categories by VIN (see the module's note).
    pub cache: TtlCache<LicenseCategory>,
    pub budget: Duration,
}

impl<M: MustHelpers + Sync> TruckHelpers<M> {
    pub fn new(must: M) -> TruckHelpers<M> {
        TruckHelpers { must, cache: TtlCache::new(CACHE_TTL, CACHE_ENTRIES), budget: CALL_BUDGET }
    }

    /// Serves either route, told by the path's end.
    pub async fn handle(&self, path: &str, body: &[u8]) -> Reply {
        if path.ends_with("/license-category") {
            self.license_category(body).await
        } else if path.ends_with("/tariff") {
            self.tariff(body).await
        } else {
            Reply::new(404, json!({"error": "no such helper"}))
        }
    }

    async fn within_budget<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, CallError>>,
    ) -> Result<T, HelperFailure> {
        match tokio::time::timeout(self.budget, call).await {
            Ok(result) => result.map_err(failure_of),
            Err(_) => Err(HelperFailure::Timeout),
        }
    }

    /// `POST /api/trucks/license-category`.
    pub async fn license_category(&self, body: &[u8]) -> Reply {
        let started = now_ms();
        let request = match LicenseCategoryRequest::parse(body) {
            Ok(r) => r,
            Err(problems) => {
                return answer("license-category", started, Err(HelperFailure::Invalid(problems)), false)
            }
        };
        let key = request.cache_key();
        if let Some(hit) = key.as_deref().and_then(|k| self.cache.get(k)) {
            return answer("license-category", started, Ok(json!(hit)), true);
        }
        let result = self
            .within_budget(self.must.license_category(&request))
            .await
            .and_then(|a| a.into_answer().map_err(HelperFailure::Upstream));
        if let (Some(key), Ok(found)) = (key, &result) {
            self.cache.put(key, found.clone());
        }
        answer("license-category", started, result.map(|found| json!(found)), false)
    }

    /// `POST /api/trucks/tariff`: never cached.
    pub async fn tariff(&self, body: &[u8]) -> Reply {
        let started = now_ms();
        let request = match TariffRequest::parse(body, &today_utc()) {
            Ok(r) => r,
            Err(problems) => return answer("tariff", started, Err(HelperFailure::Invalid(problems)), false),
        };
        let result = self
            .within_budget(self.must.tariff(&request))
            .await
            .and_then(|a| a.into_answer().map_err(HelperFailure::Upstream));
        answer("tariff", started, result, false)
    }
}

/// The reply, and one log line: the helper, the status, MUST's status and code when it refused,
/// whether the cache answered, the time taken. Never the vehicle or the bank's data.
fn answer(
    helper: &str,
    started_ms: u64,
    result: Result<serde_json::Value, HelperFailure>,
    cached: bool,
) -> Reply {
    let took_ms = now_ms().saturating_sub(started_ms);
    match result {
        Ok(body) => {
            tracing::info!(helper, status = 200, cached, took_ms, "helper answered");
            Reply::new(200, body)
        }
        Err(failure) => {
            let status = failure.status();
            match &failure {
                HelperFailure::Refused { status: must_status, code, .. } => {
                    tracing::info!(helper, status, must_status, must_code = ?code, took_ms, "MUST refused")
                }
                HelperFailure::Invalid(problems) => {
                    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
                    tracing::info!(helper, status, fields = ?fields, "invalid request")
                }
                HelperFailure::Upstream(detail) => {
                    tracing::warn!(helper, status, detail = %detail, took_ms, "MUST failed")
                }
                other => tracing::warn!(helper, status, error = %other, took_ms, "helper failed"),
            }
            Reply::new(status, failure.body())
        }
    }
}

#[cfg(test)]
#[path = "helpers_tests.rs"]
mod tests;
