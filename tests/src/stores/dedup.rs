//! The suite on a [`DedupStore`]: the deduplication layer's stores keep the same claim
//! protocol, synchronously.

use std::time::Duration;

use async_trait::async_trait;
use wharf::BoxError;
use wharf_middleware::dedup::{DedupKey, DedupStore};
use wharf_middleware::idempotency::{Claim, ClaimToken, IdempotencyKey, IdempotencyStore};

/// A [`DedupStore`] seen as an [`IdempotencyStore`], so the store suite checks the
/// deduplication layer's stores too: the business key becomes the message id.
///
/// ```
/// use wharf_conformance::stores::{DedupAsIdempotency, StoreFactory};
/// use wharf_middleware::dedup::MemoryDedupStore;
///
/// struct MemoryDedup;
///
/// impl StoreFactory for MemoryDedup {
///     type Store = DedupAsIdempotency<MemoryDedupStore>;
///
///     fn name(&self) -> &str {
///         "memory dedup"
///     }
///
///     async fn store(&self) -> Self::Store {
///         DedupAsIdempotency(MemoryDedupStore::default())
///     }
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct DedupAsIdempotency<D>(pub D);

fn dedup_key(key: &IdempotencyKey) -> DedupKey {
    DedupKey::new(key.consumer(), key.key())
}

#[async_trait]
impl<D: DedupStore> IdempotencyStore for DedupAsIdempotency<D> {
    async fn claim(&self, key: &IdempotencyKey, lease: Duration) -> Result<Claim, BoxError> {
        Ok(self.0.claim(&dedup_key(key), lease))
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        retention: Duration,
    ) -> Result<(), BoxError> {
        self.0.complete(&dedup_key(key), token, retention);
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), BoxError> {
        self.0.release(&dedup_key(key), token);
        Ok(())
    }
}
