//! The store suite on the in-memory idempotency store.

use wharf_conformance::stores::StoreFactory;
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

wharf_conformance::store_conformance_tests!(Memory);
