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
    /// Runs `call` until it succeeds, fails in a way `retry` does not accept, or the
    /// attempts are spent.
    pub async fn run<T, F, Fut>(
        &self,
        what: &str,
        retry: impl Fn(&CallError) -> bool,
        mut call: F,
    ) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let mut delay = self.first_delay;
        let mut attempt = 1;
        loop {
            match call().await {
                Err(e) if attempt < self.attempts && retry(&e) => {
                    tracing::warn!(call = what, attempt, reason = %e, "transient failure; retrying");
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
            .run("t", CallError::is_transient, || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(CallError::Ambiguous("503".into()))
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
            .run("t", CallError::is_transient, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CallError::NotSent("connection refused".into()))
            })
            .await;
        assert!(matches!(out, Err(CallError::NotSent(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        calls.store(0, Ordering::SeqCst);
        let refused = CallError::Refused { status: 403, code: None, message: "no".into() };
        let out: Result<(), _> =
            fast(5).run("t", CallError::is_transient, || async { Err(refused.clone()) }).await;
        assert_eq!(out, Err(refused));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_ambiguous_failure_is_not_retried_when_the_caller_says_so() {
        let calls = AtomicU32::new(0);
        let only_unsent = |e: &CallError| matches!(e, CallError::NotSent(_));
        let out: Result<(), _> = fast(5)
            .run("t", only_unsent, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CallError::Ambiguous("502 after sending".into()))
            })
            .await;
        assert!(matches!(out, Err(CallError::Ambiguous(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "sent once");
    }
}
