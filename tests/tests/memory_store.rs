//! The store suite on the in-memory stores: the idempotency layer's and, through
//! `DedupAsIdempotency`, the deduplication layer's.

use wharf_conformance::stores::{DedupAsIdempotency, StoreFactory};
use wharf_middleware::dedup::MemoryDedupStore;
use wharf_middleware::idempotency::MemoryIdempotencyStore;

struct Memory;

impl StoreFactory for Memory {
    type Store = MemoryIdempotencyStore;

    fn name(&self) -> &str {
        "memory"
    }

    async fn store(&self) -> MemoryIdempotencyStore {
        MemoryIdempotencyStore::default()
    }
}

struct MemoryDedup;

impl StoreFactory for MemoryDedup {
    type Store = DedupAsIdempotency<MemoryDedupStore>;

    fn name(&self) -> &str {
        "memory dedup"
    }

    async fn store(&self) -> Self::Store {
        DedupAsIdempotency(MemoryDedupStore::default())
    }
}

mod idempotency {
    wharf_conformance::store_conformance_tests!(super::Memory);
}

mod dedup {
    wharf_conformance::store_conformance_tests!(super::MemoryDedup);
}
