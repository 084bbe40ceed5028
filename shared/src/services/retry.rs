//! Bounded retries with exponential backoff for transient failures.

use std::future::Future;
use std::time::Duration;

use crate::ports::CallError;

/// How often, and how patiently, a call is retried within one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { attempts: 3, first_delay: Duration::from_millis(200) }
    }
}

impl Backoff {
    /// Runs `call` until it succeeds, is refused, or the attempts are spent.
    pub async fn run<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let mut delay = self.first_delay;
        let mut attempt = 1;
        loop {
            match call().await {
                Err(CallError::Transient(reason)) if attempt < self.attempts => {
                    tracing::warn!(call = what, attempt, %reason, "transient failure; retrying");
                    // Jitter from the clock spreads retries of concurrent callers.
                    let jitter = Duration::from_millis(crate::ports::now_ms() % 50);
                    tokio::time::sleep(delay + jitter).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast(attempts: u32) -> Backoff {
        Backoff { attempts, first_delay: Duration::from_millis(1) }
    }

    #[tokio::test]
    async fn retries_transient_failures_until_success() {
        let calls = AtomicU32::new(0);
        let out = fast(3)
            .run("t", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(CallError::Transient("503".into()))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(out, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_attempts_and_never_retries_a_refusal() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = fast(2)
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CallError::Transient("timeout".into()))
            })
            .await;
        assert!(matches!(out, Err(CallError::Transient(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        calls.store(0, Ordering::SeqCst);
        let refused = CallError::Refused { status: 403, code: None, message: "no".into() };
        let out: Result<(), _> = fast(5).run("t", || async { Err(refused.clone()) }).await;
        assert_eq!(out, Err(refused));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
