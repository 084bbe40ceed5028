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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryTable;
    use crate::domain::ids::ProcessId;
    use crate::keys::ProcessKey;
    use crate::ports::KeptOrigin;
    use crate::services::test_support::{kept, Flaky};

    fn bank_event(reason: &str, body: &str) -> Quarantined {
        let origin =
            KeptOrigin::BankEvent { event_id: "evt-1".into(), event_type: "truck.policy-requested".into() };
        Quarantined::new(origin, reason.into(), body.into(), 7)
    }

    #[tokio::test]
    async fn an_item_is_kept_with_its_reason_and_raw_body() {
        let table = MemoryTable::default();
        let item = bank_event("vehicle.vin: 17 letters or digits", r#"{"type":"truck.policy-requested"}"#);
        keep(&table, &item).await.unwrap();
        assert_eq!(kept(&table).await, [item]);
    }

    #[tokio::test]
    async fn the_same_input_kept_again_stays_one_record_with_its_first_reason() {
        let table = MemoryTable::default();
        keep(&table, &bank_event("first reason", "{}")).await.unwrap();
        keep(&table, &bank_event("second reason", "{}")).await.unwrap();
        let items = kept(&table).await;
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].reason, "first reason");
        // Another input is another record.
        keep(&table, &bank_event("other", "{ }")).await.unwrap();
        assert_eq!(kept(&table).await.len(), 2);
    }

    #[tokio::test]
    async fn a_replayed_input_failing_again_is_kept_beside_the_first() {
        let table = MemoryTable::default();
        let process = ProcessKey::Truck(ProcessId::parse("REQ-1").unwrap());
        for replays in [0, 1] {
            let origin = KeptOrigin::Event { process: process.clone(), event_id: "evt-2".into(), replays };
            keep(&table, &Quarantined::new(origin, "rejected".into(), "{}".into(), 1)).await.unwrap();
        }
        assert_eq!(kept(&table).await.len(), 2, "kept under its next replay number");
    }

    #[tokio::test]
    async fn a_store_that_fails_is_an_error_for_the_caller() {
        let store = Flaky::new(MemoryTable::default());
        store.fail_next(1);
        assert!(keep(&store, &bank_event("r", "{}")).await.is_err(), "never silently dropped");
        assert!(kept(&store.inner).await.is_empty());
    }
}
