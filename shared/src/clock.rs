//! The one clock the services read: milliseconds since the epoch. In Lambda it is
//! the system clock. A simulation runs on tokio's paused time, on one thread, and
//! switches this thread's clock to follow it, so that a seeded run reads the same
//! times every run (and two simulations on two threads do not share a clock).

use std::cell::Cell;

thread_local! {
    /// Where virtual time started on this thread: tokio's instant then, and the epoch
    /// milliseconds it stands for.
    static VIRTUAL: Cell<Option<(tokio::time::Instant, u64)>> = const { Cell::new(None) };
    /// When the invocation this thread serves must have answered (epoch milliseconds).
    /// A Lambda process serves one invocation at a time on one thread.
    static DEADLINE: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Sets (or clears) the deadline of the invocation being served on this thread.
pub fn set_deadline(at_ms: Option<u64>) {
    DEADLINE.set(at_ms);
}

/// The time left before the invocation's deadline, if one is set.
pub fn time_left() -> Option<std::time::Duration> {
    DEADLINE.get().map(|at| std::time::Duration::from_millis(at.saturating_sub(now_ms())))
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    match VIRTUAL.get() {
        Some((base, start_ms)) => start_ms + base.elapsed().as_millis() as u64,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    }
}

/// The UTC date of `ms` (epoch milliseconds): year, month, day (Howard Hinnant's
/// days-to-civil algorithm, proleptic Gregorian calendar).
pub fn date_of(ms: u64) -> (i64, i64, i64) {
    let z = (ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// From now on, [`now_ms`] on this thread follows tokio's clock (paused in a
/// simulation) from `start_ms`; `None` goes back to the system clock.
pub fn follow_tokio_time(start_ms: Option<u64>) {
    VIRTUAL.set(start_ms.map(|start| (tokio::time::Instant::now(), start)));
}
