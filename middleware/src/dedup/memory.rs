use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::store::{Claim, ClaimToken, DedupKey, DedupStore};
use super::table::{ClaimTable, TableClaim};

/// A bounded in-memory [`DedupStore`]: claims with leases, completed keys remembered for
/// the layer's window, at most `capacity` of them.
///
/// - **Window**: a completed key is remembered for the window the layer passes to
///   [`complete`](DedupStore::complete), then forgotten.
/// - **Capacity**: bounds the completed keys. When full, the oldest completion is
///   forgotten first (the one closest to leaving its window anyway). In-flight claims
///   never count against the capacity and are never evicted: evicting one would let a
///   duplicate run concurrently with the original. They are bounded by the consumers'
///   in-flight limits and by their lease. Stores of 4096 keys or more are split in 16
///   shards to keep lock contention low, and the capacity is enforced per shard
///   (`capacity / 16` each), so the total is exact only for smaller stores.
/// - **Time** is tokio's clock ([`tokio::time::Instant`]), so windows and leases follow
///   `tokio::time::pause` and `advance` in tests.
///
/// Why a hand-written table rather than `moka`: moka may evict (or refuse to admit) an
/// in-flight claim when full, and expires entries by its own clock, which tests cannot
/// move; the reasoning is spelled out in the source (`claims.rs`).
///
/// # Clone
///
/// Clones share the same table, like an `Arc`: give clones to every layer that should see
/// the same keys (the key includes the consumer name, so consumers never collide).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use wharf_middleware::dedup::{Claim, DedupKey, DedupStore, MemoryDedupStore};
///
/// let store = MemoryDedupStore::new(10_000);
/// let key = DedupKey::new("billing", "order-7");
/// let lease = Duration::from_secs(60);
///
/// let Claim::Claimed(token) = store.claim(&key, lease) else { unreachable!() };
/// assert_eq!(store.claim(&key, lease), Claim::InFlight);
/// store.complete(&key, token, Duration::from_secs(600));
/// assert_eq!(store.claim(&key, lease), Claim::Completed);
/// ```
#[derive(Clone)]
pub struct MemoryDedupStore {
    table: Arc<ClaimTable>,
}

impl MemoryDedupStore {
    /// Capacity of [`MemoryDedupStore::default`].
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A store remembering at most `capacity` completed keys (0 remembers none: only
    /// concurrent copies are kept apart).
    pub fn new(capacity: usize) -> Self {
        MemoryDedupStore {
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

impl Default for MemoryDedupStore {
    /// A store of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) keys.
    fn default() -> Self {
        MemoryDedupStore::new(Self::DEFAULT_CAPACITY)
    }
}

impl DedupStore for MemoryDedupStore {
    fn claim(&self, key: &DedupKey, lease: Duration) -> Claim {
        match self.table.claim(key.fingerprint(), lease, Instant::now()) {
            TableClaim::Claimed(token) => Claim::Claimed(ClaimToken::new(token)),
            TableClaim::InFlight => Claim::InFlight,
            TableClaim::Completed => Claim::Completed,
        }
    }

    fn complete(&self, key: &DedupKey, token: ClaimToken, window: Duration) {
        self.table
            .complete(key.fingerprint(), token.get(), window, Instant::now())
    }

    fn release(&self, key: &DedupKey, token: ClaimToken) {
        self.table.release(key.fingerprint(), token.get())
    }
}

impl fmt::Debug for MemoryDedupStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDedupStore")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn windows_and_leases_follow_tokio_time() {
        let store = MemoryDedupStore::new(10);
        let key = DedupKey::new("c", "m");
        let lease = Duration::from_secs(60);
        let Claim::Claimed(token) = store.claim(&key, lease) else {
            panic!("first claim")
        };
        tokio::time::advance(lease).await;
        // The holder is presumed dead: a new claim succeeds.
        let Claim::Claimed(next) = store.claim(&key, lease) else {
            panic!("claim after the lease")
        };
        store.release(&key, token); // stale: ignored
        assert_eq!(store.claim(&key, lease), Claim::InFlight);
        store.complete(&key, next, Duration::from_secs(600));
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(store.claim(&key, lease), Claim::Completed);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(store.claim(&key, lease), Claim::Claimed(_)));
    }

    #[test]
    fn consumers_are_namespaced_and_clones_share() {
        let a = MemoryDedupStore::new(10);
        let b = a.clone();
        let lease = Duration::from_secs(60);
        assert!(matches!(
            a.claim(&DedupKey::new("one", "m"), lease),
            Claim::Claimed(_)
        ));
        assert!(matches!(
            b.claim(&DedupKey::new("two", "m"), lease),
            Claim::Claimed(_)
        ));
        assert_eq!(b.claim(&DedupKey::new("one", "m"), lease), Claim::InFlight);
        assert_eq!(a.len(), 2);
    }
}
