//! The one clock the services read: milliseconds since the epoch. In Lambda it is
//! the system clock. The simulation runs on tokio's paused time and switches this
//! clock to follow it, so that a seeded run reads the same times every run.

use std::sync::OnceLock;

/// Where virtual time started: tokio's instant then, and the epoch milliseconds it stands for.
static VIRTUAL: OnceLock<(tokio::time::Instant, u64)> = OnceLock::new();

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

/// From now on, [`now_ms`] follows tokio's clock (paused in a simulation) from
/// `start_ms`. Once per process; `false` if it was set already.
pub fn follow_tokio_time(start_ms: u64) -> bool {
    VIRTUAL.set((tokio::time::Instant::now(), start_ms)).is_ok()
}
