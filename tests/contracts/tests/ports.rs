//! Each port's contract, run on the in-memory stand-in and on the real adapter over the
//! AWS emulator (a stack of its own per test, made from `template.yaml`).

use polis::adapters::memory::{MemoryObjects, MemoryTable};
use polis_contracts::{self as contract, Emulator};

/// One contract, twice: `memory` on the stand-in, `emulator` on the real adapter.
macro_rules! contract {
    ($name:ident, memory: $memory:expr, emulator: |$e:ident| $real:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn memory() {
                $memory.await
            }

            #[tokio::test]
            async fn emulator() {
                let $e = Emulator::provision(stringify!($name)).await;
                $real.await
            }
        }
    };
}

contract!(process_store,
    memory: contract::process_store(&MemoryTable::default()),
    emulator: |e| contract::process_store(&e.table));
contract!(open_processes,
    memory: contract::open_processes(&MemoryTable::default()),
    emulator: |e| contract::open_processes(&e.table));
contract!(effect_log,
    memory: contract::effect_log(&MemoryTable::default()),
    emulator: |e| contract::effect_log(&e.table));
contract!(hook_store,
    memory: contract::hook_store(&MemoryTable::default()),
    emulator: |e| contract::hook_store(&e.table));
contract!(quarantine_store,
    memory: contract::quarantine_store(&MemoryTable::default()),
    emulator: |e| contract::quarantine_store(&e.table));
contract!(token_store,
    memory: contract::token_store(&MemoryTable::default()),
    emulator: |e| contract::token_store(&e.table));
#[tokio::test]
async fn hook_records_keep_a_digest_and_the_body_only_by_reference() {
    contract::hook_records_keep_a_digest(&Emulator::provision("hook_digest").await).await
}

#[tokio::test]
async fn ended_processes_expire_after_their_retention_and_running_ones_never() {
    contract::ended_processes_expire(&Emulator::provision("ended_ttl").await).await
}

#[tokio::test]
async fn the_customer_index_holds_keys_and_summaries_only() {
    contract::customer_index_holds_only_summaries(&Emulator::provision("customer_index").await).await
}

#[tokio::test]
async fn sealed_token_store() {
    contract::sealed_tokens(&Emulator::provision("sealed_tokens").await).await
}
contract!(product_index,
    memory: contract::product_index(&MemoryTable::default()),
    emulator: |e| contract::product_index(&e.table));
contract!(object_store,
    memory: contract::object_store(&MemoryObjects::default(), "archive"),
    emulator: |e| contract::object_store(&e.buckets, &e.archive_bucket));
contract!(fifo_order,
    memory: contract::fifo_order(&contract::memory_fifo()),
    emulator: |e| contract::fifo_order(&e.truck_queue));
contract!(fifo_redelivery,
    memory: contract::fifo_redelivery(&contract::memory_fifo()),
    emulator: |e| contract::fifo_redelivery(&e.truck_queue));

#[tokio::test]
async fn kept_input_expires_and_held_calls_do_not() {
    contract::kept_input_expires(&Emulator::provision("kept_ttl").await).await
}
