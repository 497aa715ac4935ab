use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use wharf::MessageId;

/// Where the deduplication layer keeps its claims: a local, short-window store.
///
/// The layer drives one protocol per message:
///
/// 1. [`claim`](DedupStore::claim) the key for a lease. The answer is
///    [`Claim::Claimed`] (run the handler), [`Claim::InFlight`] (another copy is being
///    handled: retry later) or [`Claim::Completed`] (already handled: skip).
/// 2. Run the handler.
/// 3. [`complete`](DedupStore::complete) the claim if the outcome is `Ack`, so the key is
///    remembered for the window; [`release`](DedupStore::release) it on anything else, so
///    the redelivery runs again.
///
/// The methods are **synchronous** and infallible: the store is meant to be local (a
/// map in the process) and consulted on every message, where a boxed future per call
/// would cost more than the lookup. A store shared across processes, with I/O and
/// failures, is the [idempotency](crate::idempotency) layer's business.
///
/// # Leases and tokens
///
/// A claim lasts `lease`; once it ran out, the claim is considered abandoned (its holder
/// crashed or leaked its future) and the next `claim` succeeds. Every claim carries a
/// fresh [`ClaimToken`]; `complete` and `release` must act only on the claim with that
/// token, so a holder that outlived its lease cannot free or overwrite its successor's
/// claim. A holder completing after its lease ran out, with no live successor, should
/// still be recorded: the work was done.
///
/// # Example
///
/// A store that wraps another and counts what it skips:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use wharf_middleware::dedup::{Claim, ClaimToken, DedupKey, DedupStore, MemoryDedupStore};
///
/// #[derive(Debug, Default)]
/// struct Counting {
///     inner: MemoryDedupStore,
///     skipped: AtomicU64,
/// }
///
/// impl DedupStore for Counting {
///     fn claim(&self, key: &DedupKey, lease: Duration) -> Claim {
///         let claim = self.inner.claim(key, lease);
///         if claim == Claim::Completed {
///             self.skipped.fetch_add(1, Ordering::Relaxed);
///         }
///         claim
///     }
///
///     fn complete(&self, key: &DedupKey, token: ClaimToken, window: Duration) {
///         self.inner.complete(key, token, window)
///     }
///
///     fn release(&self, key: &DedupKey, token: ClaimToken) {
///         self.inner.release(key, token)
///     }
/// }
///
/// let store = Counting::default();
/// let key = DedupKey::new("billing", "order-7");
/// let Claim::Claimed(token) = store.claim(&key, Duration::from_secs(60)) else { unreachable!() };
/// store.complete(&key, token, Duration::from_secs(600));
/// assert_eq!(store.claim(&key, Duration::from_secs(60)), Claim::Completed);
/// assert_eq!(store.skipped.load(Ordering::Relaxed), 1);
/// ```
pub trait DedupStore: Send + Sync + 'static {
    /// Claims `key` for `lease`, unless a live claim or a remembered completion exists.
    fn claim(&self, key: &DedupKey, lease: Duration) -> Claim;

    /// The claim `token` succeeded: remember `key` as completed for `window`.
    fn complete(&self, key: &DedupKey, token: ClaimToken, window: Duration);

    /// The claim `token` did not succeed: forget it, so the next claim of `key` succeeds.
    fn release(&self, key: &DedupKey, token: ClaimToken);
}

impl<T: DedupStore + ?Sized> DedupStore for Arc<T> {
    fn claim(&self, key: &DedupKey, lease: Duration) -> Claim {
        (**self).claim(key, lease)
    }

    fn complete(&self, key: &DedupKey, token: ClaimToken, window: Duration) {
        (**self).complete(key, token, window)
    }

    fn release(&self, key: &DedupKey, token: ClaimToken) {
        (**self).release(key, token)
    }
}

use crate::claims::Fingerprint;
pub use crate::claims::{Claim, ClaimToken};

/// What the deduplication layer keys on: the consumer's name plus the message id (or the
/// key an extractor returned).
///
/// The consumer's name is part of the key so that two consumers of the same messages
/// (two groups on one topic, say) sharing a store do not skip each other's work.
///
/// # Clone
///
/// Cloning is two reference-count increments.
#[derive(Clone)]
pub struct DedupKey {
    consumer: Arc<str>,
    id: MessageId,
    /// The in-memory store's fingerprint of the key, computed once (a few nanoseconds),
    /// so a message is hashed once for its claim and its completion or release.
    fingerprint: Fingerprint,
}

impl PartialEq for DedupKey {
    fn eq(&self, other: &Self) -> bool {
        self.consumer == other.consumer && self.id == other.id
    }
}

impl Eq for DedupKey {}

impl Hash for DedupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.consumer.hash(state);
        self.id.hash(state);
    }
}

impl DedupKey {
    /// The key of message id (or extracted key) `id` for consumer `consumer`.
    pub fn new(consumer: impl Into<Arc<str>>, id: impl Into<MessageId>) -> Self {
        let (consumer, id) = (consumer.into(), id.into());
        DedupKey {
            fingerprint: crate::claims::fingerprint(&(&*consumer, id.as_str())),
            consumer,
            id,
        }
    }

    /// The key's fingerprint in the in-memory claim table.
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The message id, or the key the extractor returned.
    pub fn id(&self) -> &str {
        self.id.as_str()
    }
}

impl fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupKey")
            .field("consumer", &&*self.consumer)
            .field("id", &self.id.as_str())
            .finish()
    }
}

impl fmt::Display for DedupKey {
    /// `consumer/id`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.consumer, self.id)
    }
}
