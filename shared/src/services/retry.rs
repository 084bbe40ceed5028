//! Bounded retries with exponential backoff for transient failures.

use std::future::Future;
use std::time::Duration;

use crate::ports::CallError;

/// How often, and how patiently, a call is retried within one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub first_delay: Duration,
    /// The longest one attempt may take (the call's timeout): no attempt starts with
    /// less than that left before the invocation's deadline, so retries of a slow call
    /// cannot outlive the function; the message comes back later instead.
    pub attempt_budget: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { attempts: 3, first_delay: Duration::from_millis(200), attempt_budget: Duration::ZERO }
    }
}

impl Backoff {
    /// The default retries, each attempt allowed `timeout`.
    pub fn with_attempt_budget(timeout: Duration) -> Backoff {
        Backoff { attempt_budget: timeout, ..Backoff::default() }
    }

    /// Whether an attempt after `wait` still fits before the invocation's deadline.
    fn fits(&self, wait: Duration) -> bool {
        crate::clock::time_left().is_none_or(|left| left >= wait + self.attempt_budget)
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
        if !self.fits(Duration::ZERO) {
            return Err(CallError::NotSent(format!("{what}: too little time left in this invocation")));
        }
        loop {
            match call().await {
                Err(e) if attempt < self.attempts && retry(&e) => {
                    // Jitter from the clock spreads retries of concurrent callers.
                    let jitter = Duration::from_millis(crate::ports::now_ms() % 50);
                    if !self.fits(delay + jitter) {
                        tracing::warn!(call = what, attempt, reason = %e, "transient failure; no time left to retry");
                        return Err(e);
                    }
                    tracing::warn!(call = what, attempt, reason = %e, "transient failure; retrying");
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
        Backoff { attempts, first_delay: Duration::from_millis(1), ..Backoff::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_starts_that_could_outlive_the_invocation() {
        crate::clock::follow_tokio_time(Some(1_000_000));
        let slow = Backoff {
            attempts: 3,
            first_delay: Duration::from_millis(200),
            attempt_budget: Duration::from_secs(10),
        };
        let calls = AtomicU32::new(0);
        let attempt = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(10)).await;
            Err::<(), _>(CallError::NotSent("timed out connecting".into()))
        };
        // 25 s left: the second attempt starts at 10.2 s with 14.8 s left; a third would
        // start at 20.6 s with 4.4 s left, less than the 10 s it may take.
        crate::clock::set_deadline(Some(1_000_000 + 25_000));
        assert!(slow.run("t", CallError::is_transient, attempt).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // 5 s left: nothing is sent at all, and the caller may try later.
        calls.store(0, Ordering::SeqCst);
        crate::clock::set_deadline(Some(crate::clock::now_ms() + 5_000));
        let out = slow.run("t", CallError::is_transient, attempt).await;
        assert!(matches!(out, Err(CallError::NotSent(_))), "{out:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        crate::clock::set_deadline(None);
        crate::clock::follow_tokio_time(None);
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
