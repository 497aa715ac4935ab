use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use wharf::BoxError;

use super::store::{Claim, ClaimToken, IdempotencyKey, IdempotencyStore};
use super::table::{ClaimTable, TableClaim};

/// An in-memory [`IdempotencyStore`], for tests and single-process deployments.
///
/// It keeps the protocol exactly as a durable store would — claims with leases and
/// tokens, completed keys remembered for the layer's retention window — but only for
/// this process and only while it runs. Production deployments with more than one
/// replica, or that must survive a restart, need a durable shared store.
///
/// - **Retention**: a completed key is remembered for the retention the layer passes to
///   [`complete`](IdempotencyStore::complete), then forgotten.
/// - **Capacity**: bounds the completed keys; when full, the oldest completion is
///   forgotten first, and a business duplicate of it would run again. Size it for
///   *retention × message rate*. In-flight claims never count against the capacity and
///   are never evicted. Stores of 4096 keys or more are split in 16 shards, and the
///   capacity is enforced per shard.
/// - **Time** is tokio's clock ([`tokio::time::Instant`]), so retention and leases follow
///   `tokio::time::pause` and `advance` in tests.
///
/// It never fails. Its table is the one behind the deduplication layer's
/// `MemoryDedupStore`, which explains why it is not built on `moka`: a cache may evict an
/// in-flight claim, and expires entries by a clock tests cannot move.
///
/// # Clone
///
/// Clones share the same table.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};
///
/// let store = Arc::new(MemoryIdempotencyStore::new(1_000_000));
/// let layer = IdempotencyLayer::new(store);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct MemoryIdempotencyStore {
    table: Arc<ClaimTable>,
}

impl MemoryIdempotencyStore {
    /// Capacity of [`MemoryIdempotencyStore::default`].
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A store remembering at most `capacity` completed keys.
    pub fn new(capacity: usize) -> Self {
        MemoryIdempotencyStore {
            table: Arc::new(ClaimTable::new(capacity)),
        }
    }

    /// The capacity the store was built with.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Keys currently held, in flight or completed (expired keys may linger until the
    /// store next touches their shard).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// `true` if no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MemoryIdempotencyStore {
    /// A store of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) keys.
    fn default() -> Self {
        MemoryIdempotencyStore::new(Self::DEFAULT_CAPACITY)
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(&self, key: &IdempotencyKey, lease: Duration) -> Result<Claim, BoxError> {
        Ok(match self.table.claim(key, lease, Instant::now()) {
            TableClaim::Claimed(token) => Claim::Claimed(ClaimToken::new(token)),
            TableClaim::InFlight => Claim::InFlight,
            TableClaim::Completed => Claim::Completed,
        })
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        retention: Duration,
    ) -> Result<(), BoxError> {
        self.table
            .complete(key, token.get(), retention, Instant::now());
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), BoxError> {
        self.table.release(key, token.get());
        Ok(())
    }
}

impl fmt::Debug for MemoryIdempotencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryIdempotencyStore")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retention_and_leases_follow_tokio_time() -> Result<(), BoxError> {
        let store = MemoryIdempotencyStore::new(10);
        let key = IdempotencyKey::new("c", "order-1");
        let lease = Duration::from_secs(60);
        let Claim::Claimed(token) = store.claim(&key, lease).await? else {
            panic!("first claim")
        };
        assert_eq!(store.claim(&key, lease).await?, Claim::InFlight);
        store
            .complete(&key, token, Duration::from_secs(3600))
            .await?;
        tokio::time::advance(Duration::from_secs(3599)).await;
        assert_eq!(store.claim(&key, lease).await?, Claim::Completed);
        tokio::time::advance(Duration::from_secs(1)).await;
        let Claim::Claimed(token) = store.claim(&key, lease).await? else {
            panic!("claim after the retention window")
        };
        store.release(&key, token).await?;
        assert!(matches!(store.claim(&key, lease).await?, Claim::Claimed(_)));
        Ok(())
    }
}
