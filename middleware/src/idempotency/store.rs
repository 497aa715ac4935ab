use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wharf::BoxError;

/// Where the idempotency layer keeps its claims: a durable store shared by every replica
/// of the consumer (Redis, PostgreSQL), or [`MemoryIdempotencyStore`](super::MemoryIdempotencyStore)
/// in tests and single-process deployments.
///
/// The layer drives one protocol per keyed message:
///
/// 1. [`claim`](IdempotencyStore::claim) the key for a lease. The answer is
///    [`Claim::Claimed`] (run the handler), [`Claim::InFlight`] (another message with the
///    key is being handled, maybe by another replica: retry later) or
///    [`Claim::Completed`] (already handled within the retention window: skip).
/// 2. Run the handler.
/// 3. [`complete`](IdempotencyStore::complete) the claim if the outcome is `Ack`, so the
///    key is remembered for the retention window; [`release`](IdempotencyStore::release)
///    it on anything else, so the redelivery runs again.
///
/// The trait is asynchronous and object-safe (the layer holds an
/// `Arc<dyn IdempotencyStore>`): a durable store does I/O, which costs far more than the
/// boxed future per call. Errors are the store's own (a connection refused, a timeout);
/// the layer treats every one as transient and never runs the handler without a claim.
///
/// # Leases and tokens
///
/// A claim lasts `lease`; once it ran out, the claim is considered abandoned (its holder
/// crashed) and the next `claim` succeeds. Every claim carries a [`ClaimToken`] unique for
/// the key (a random 64-bit value is enough); `complete` and `release` must act only on
/// the claim with that token, so a holder that outlived its lease cannot free or
/// overwrite its successor's claim. A holder completing after its lease ran out, with no
/// live successor, should still be recorded: the work was done.
///
/// In Redis terms: `claim` is `SET key "inflight:<token>" NX PX <lease>` (reading the
/// value when it fails), `complete` a compare-and-set to `"done"` with `PX <retention>`,
/// and `release` a compare-and-delete, each compare a small Lua script. In SQL: an
/// `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired` returning the row.
///
/// # Example
///
/// A store that refuses to work while a flag is set, wrapping the in-memory one:
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use wharf::BoxError;
/// use wharf_middleware::idempotency::{
///     Claim, ClaimToken, IdempotencyKey, IdempotencyStore, MemoryIdempotencyStore,
/// };
///
/// #[derive(Debug, Default)]
/// struct Flaky {
///     inner: MemoryIdempotencyStore,
///     down: AtomicBool,
/// }
///
/// impl Flaky {
///     fn check(&self) -> Result<(), BoxError> {
///         if self.down.load(Ordering::SeqCst) {
///             return Err("connection refused".into());
///         }
///         Ok(())
///     }
/// }
///
/// #[async_trait]
/// impl IdempotencyStore for Flaky {
///     async fn claim(&self, key: &IdempotencyKey, lease: Duration) -> Result<Claim, BoxError> {
///         self.check()?;
///         self.inner.claim(key, lease).await
///     }
///
///     async fn complete(
///         &self,
///         key: &IdempotencyKey,
///         token: ClaimToken,
///         retention: Duration,
///     ) -> Result<(), BoxError> {
///         self.check()?;
///         self.inner.complete(key, token, retention).await
///     }
///
///     async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), BoxError> {
///         self.check()?;
///         self.inner.release(key, token).await
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let store = Flaky::default();
/// let key = IdempotencyKey::new("billing", "order-7");
/// let Claim::Claimed(token) = store.claim(&key, Duration::from_secs(60)).await? else {
///     unreachable!()
/// };
/// store.complete(&key, token, Duration::from_secs(3600)).await?;
/// assert_eq!(store.claim(&key, Duration::from_secs(60)).await?, Claim::Completed);
///
/// store.down.store(true, Ordering::SeqCst);
/// assert!(store.claim(&key, Duration::from_secs(60)).await.is_err());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for `lease`, unless a live claim or a remembered completion exists.
    async fn claim(&self, key: &IdempotencyKey, lease: Duration) -> Result<Claim, BoxError>;

    /// The claim `token` succeeded: remember `key` as completed for `retention`.
    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: ClaimToken,
        retention: Duration,
    ) -> Result<(), BoxError>;

    /// The claim `token` did not succeed: forget it, so the next claim of `key` succeeds.
    async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), BoxError>;
}

pub use crate::claims::{Claim, ClaimToken};

/// What the idempotency layer keys on: the consumer's name plus the business key.
///
/// The consumer's name is part of the key so that two consumers handling the same
/// operation (billing and shipping both consuming `orders`) sharing a store do not skip
/// each other's work. Stores that need one string use the [`Display`](fmt::Display) form,
/// `consumer/key`, or combine [`consumer`](Self::consumer) and [`key`](Self::key) as they
/// see fit.
///
/// # Clone
///
/// Cloning is two reference-count increments.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    consumer: Arc<str>,
    key: Arc<str>,
}

impl IdempotencyKey {
    /// Business key `key` for consumer `consumer`.
    pub fn new(consumer: impl Into<Arc<str>>, key: impl Into<Arc<str>>) -> Self {
        IdempotencyKey {
            consumer: consumer.into(),
            key: key.into(),
        }
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The business key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyKey")
            .field("consumer", &&*self.consumer)
            .field("key", &&*self.key)
            .finish()
    }
}

impl fmt::Display for IdempotencyKey {
    /// `consumer/key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.consumer, self.key)
    }
}
