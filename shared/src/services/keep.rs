//! Nothing is dropped: what we cannot process (a hook, a bank event, an event a
//! process rejects), a call held for review, files an issued policy could not
//! archive: each is kept for a person with its reason and counted as the
//! `Quarantined` metric, by source, which has an alarm. [`super::replay`] re-drives
//! or resolves what is kept.

use crate::ports::{InfraError, QuarantineStore, Quarantined};

/// Stores `item` (once), logs it (ids and reason only) and counts it.
pub async fn keep<S: QuarantineStore + Sync>(store: &S, item: &Quarantined) -> Result<(), InfraError> {
    if store.quarantine(item).await? {
        let source = item.origin.source();
        tracing::warn!(kept_id = %item.id, source, reason = %item.reason, "kept for an operator");
        crate::telemetry::count("Quarantined", ("Source", source));
    } else {
        tracing::info!(kept_id = %item.id, "kept already");
    }
    Ok(())
}
