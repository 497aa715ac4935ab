//! Middleware that skips transport duplicates: copies of a message the broker delivers
//! more than once.
//!
//! Every broker wharf runs on delivers *at least* once. A consumer that crashes after
//! handling a message but before its ack reaches the broker gets it again; a Kafka
//! rebalance replays offsets that were handled but not committed; a publisher that
//! retried a send it thought had failed publishes the same message twice. The copies
//! carry the same message id (wharf adapters keep ids stable across redeliveries), so
//! remembering which ids were handled, for a short while, turns most of them into cheap
//! no-ops.
//!
//! # Protocol
//!
//! The key is the message id (or what a [key extractor](DedupLayer::key) returns) plus
//! the consumer's name. For each message the layer asks its [`DedupStore`] to
//! [`claim`](DedupStore::claim) the key, then:
//!
//! | the store says | the layer | the handler |
//! |---|---|---|
//! | claimed | runs the inner service; **completes** the claim if the outcome is `Ack`, **releases** it on anything else (`Retry`, `DeadLetter`, `Drop`, an error, a panic) | runs |
//! | completed (a duplicate) | answers [`Outcome::Ack`]; counts it in `wharf_duplicates_total{kind="dedup"}` | not called |
//! | in flight (another copy is being handled) | answers [`Outcome::Retry`] after [`retry_in_flight_after`](DedupLayer::retry_in_flight_after) | not called: two copies never run at once |
//!
//! **Marking before success loses messages**, so the layer never does: a message whose
//! handling failed is released, and its redelivery runs again. A claim is held under a
//! [lease](DedupLayer::lease), so a holder that vanished (a crashed process, a leaked
//! future) blocks its key only until the lease runs out. When the handler's future is
//! *dropped* unfinished — the runtime aborts it at the shutdown deadline — the
//! [`ResponseFuture`] releases the claim in its destructor, so the redelivery runs at once
//! instead of being retried as "in flight" until the lease expires.
//!
//! # Deduplication or idempotency?
//!
//! | | deduplication (this layer) | [idempotency](crate::idempotency) |
//! |---|---|---|
//! | catches | *transport* duplicates: the same message delivered again | *business* duplicates: different messages meaning the same operation (a client that resubmitted an order) |
//! | key | message id | a business key: the `idempotency-key` header or a field of the payload |
//! | window | short: minutes, the span of redeliveries | long: hours or days |
//! | store | local, in the process, synchronous ([`MemoryDedupStore`]) | durable and shared by every replica (Redis, PostgreSQL), asynchronous |
//! | cost | a map lookup, no allocation | a round trip to the store |
//!
//! A local store only sees what this process handled: a copy redelivered to another
//! replica, or after a restart, runs again. Deduplication makes duplicates rare and
//! cheap; only idempotency (or an idempotent handler) makes them harmless.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use wharf::{Handler, HandlerError, Message};
//! use wharf_memory::Harness;
//! use wharf_middleware::dedup::{DedupLayer, MemoryDedupStore};
//!
//! static CHARGED: AtomicUsize = AtomicUsize::new(0);
//!
//! async fn charge(_msg: Message) -> Result<(), HandlerError> {
//!     CHARGED.fetch_add(1, Ordering::SeqCst);
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let store = MemoryDedupStore::new(100_000);
//! let stack = ServiceBuilder::new()
//!     .layer(DedupLayer::new(store).window(Duration::from_secs(600)))
//!     .service(charge.into_service());
//! let mut harness = Harness::new(stack).consumer_name("billing");
//!
//! let first = harness.publish(Message::with_id("payment-7", "42.00"));
//! harness.run_until_idle().await.assert_acked(&first);
//!
//! // The broker delivers the same message again (a lost ack, a publisher retry):
//! let again = harness.publish(Message::with_id("payment-7", "42.00"));
//! harness.run_until_idle().await.assert_acked(&again);
//!
//! assert_eq!(CHARGED.load(Ordering::SeqCst), 1, "charged once");
//! # }
//! ```
//!
//! [`Outcome::Ack`]: wharf::Outcome::Ack
//! [`Outcome::Retry`]: wharf::Outcome::Retry

pub mod future;
mod layer;
mod memory;
mod store;
use crate::claims as table;

pub use future::ResponseFuture;
pub use layer::DedupLayer;
pub use memory::MemoryDedupStore;
pub use store::{Claim, ClaimToken, DedupKey, DedupStore};

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;
use wharf::{BoxError, Message, Outcome};

use future::ClaimGuard;
use layer::Config;

/// Skips transport duplicates; see the [module docs](self).
///
/// # Clone
///
/// Clones share the store (when the store's clones do, as [`MemoryDedupStore`]'s and
/// `Arc`s do) and the configuration.
pub struct Dedup<S, St> {
    inner: S,
    store: St,
    config: Arc<Config>,
}

// ===== impl Dedup =====

impl<S, St> Dedup<S, St> {
    /// Wraps `inner`, deduplicating through `store` as consumer `consumer`, with the
    /// [`DedupLayer`] defaults.
    pub fn new(inner: S, store: St) -> Self {
        DedupLayer::new(store).wrap(inner)
    }

    pub(crate) fn from_parts(inner: S, store: St, config: Arc<Config>) -> Self {
        Dedup {
            inner,
            store,
            config,
        }
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St: Clone> Clone for Dedup<S, St> {
    fn clone(&self) -> Self {
        Dedup {
            inner: self.inner.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, St: fmt::Debug> fmt::Debug for Dedup<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dedup")
            .field("inner", &self.inner)
            .field("store", &self.store)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, St> Service<Message> for Dedup<S, St>
where
    S: Service<Message, Response = Outcome>,
    S::Error: Into<BoxError>,
    St: DedupStore + Clone,
{
    type Response = Outcome;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let config = &*self.config;
        let Some(id) = config.key.extract(&message) else {
            // Nothing to key on: not deduplicated.
            return ResponseFuture::called(self.inner.call(message), None);
        };
        let key = DedupKey::new(crate::telemetry::consumer_arc_of(&message), id);
        match self.store.claim(&key, config.lease) {
            Claim::Claimed(token) => {
                let claim = ClaimGuard::new(self.store.clone(), key, token, config.window);
                ResponseFuture::called(self.inner.call(message), Some(claim))
            }
            Claim::Completed => {
                tracing::debug!(
                    message_id = %message.id(),
                    %key,
                    "duplicate of a handled message; acked without handling"
                );
                crate::telemetry::duplicate(
                    crate::telemetry::consumer_of(&message),
                    message.origin().source(),
                    "dedup",
                );
                ResponseFuture::decided(Outcome::Ack)
            }
            Claim::InFlight => {
                tracing::debug!(
                    message_id = %message.id(),
                    %key,
                    after = ?config.retry_in_flight_after,
                    "a copy of this message is being handled; retrying it later"
                );
                ResponseFuture::decided(Outcome::Retry {
                    after: config.retry_in_flight_after,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{run, scripted};

    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use futures_util::FutureExt;
    use tower::{service_fn, ServiceExt};
    use wharf::{Failure, FailureReason};

    #[tokio::test]
    async fn only_an_ack_completes_the_claim() {
        let failure = Failure::new(FailureReason::Permanent, "no");
        for first in [
            Ok(Outcome::RETRY_NOW),
            Ok(Outcome::DeadLetter(failure.clone())),
            Ok(Outcome::Drop(failure.clone())),
            Err("boom"),
        ] {
            let (inner, calls) = scripted(vec![first.clone(), Ok(Outcome::Ack)]);
            let mut svc = Dedup::new(inner, MemoryDedupStore::new(10));
            let msg = Message::new("x");
            let _ = run(&mut svc, &msg).await;
            assert_eq!(run(&mut svc, &msg).await.unwrap(), Outcome::Ack);
            assert_eq!(
                calls.load(Ordering::SeqCst),
                2,
                "after {first:?} the copy runs again"
            );
            // Now completed: a third copy is skipped.
            assert_eq!(run(&mut svc, &msg).await.unwrap(), Outcome::Ack);
            assert_eq!(calls.load(Ordering::SeqCst), 2);
        }
    }

    #[tokio::test]
    async fn errors_pass_through_unchanged() {
        let (inner, _) = scripted(vec![Err("db down")]);
        let mut svc = Dedup::new(inner, MemoryDedupStore::new(10));
        let err = run(&mut svc, &Message::new("x")).await.unwrap_err();
        assert_eq!(err.to_string(), "db down");
    }

    #[tokio::test]
    async fn an_in_flight_copy_is_retried_after_the_configured_delay() {
        let store = MemoryDedupStore::new(10);
        let (inner, calls) = scripted(vec![Ok(Outcome::Ack)]);
        let mut svc = DedupLayer::new(store)
            .retry_in_flight_after(Duration::from_secs(7))
            .wrap(inner);
        let msg = Message::new("x");
        let first = svc.ready().await.unwrap().call(msg.clone());
        // The first copy is claimed but not finished: the second must not run.
        let second = run(&mut svc, &msg).await.unwrap();
        assert_eq!(second, Outcome::retry_after(Duration::from_secs(7)));
        assert_eq!(first.await.unwrap(), Outcome::Ack);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn dropping_the_future_releases_the_claim() {
        let store = MemoryDedupStore::new(10);
        let mut svc = Dedup::new(
            service_fn(|_msg: Message| async {
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(Outcome::Ack)
            }),
            store.clone(),
        );
        // As the runtime stamps it: the key is the consumer's.
        let msg = Message::new("x").with_origin(wharf::Origin::new("t").with_consumer("c"));
        let mut fut = Box::pin(svc.ready().await.unwrap().call(msg.clone()));
        assert!(fut.as_mut().now_or_never().is_none());
        let key = DedupKey::new("c", msg.id().clone());
        assert_eq!(store.claim(&key, Duration::from_secs(1)), Claim::InFlight);
        drop(fut);
        assert!(
            matches!(store.claim(&key, Duration::from_secs(1)), Claim::Claimed(_)),
            "a dropped handler must release its claim"
        );
    }

    #[tokio::test]
    async fn keys_come_from_the_extractor_and_none_is_not_deduplicated() {
        let (inner, calls) = scripted(vec![Ok(Outcome::Ack); 4]);
        let mut svc = DedupLayer::new(MemoryDedupStore::new(10))
            .key(|m: &Message| m.headers().get_str("dedup").map(str::to_owned))
            .wrap(inner);
        // Different ids, same extracted key: one run.
        run(&mut svc, &Message::new("a").with_header("dedup", "k"))
            .await
            .unwrap();
        run(&mut svc, &Message::new("b").with_header("dedup", "k"))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // No key: always runs.
        let keyless = Message::new("c");
        run(&mut svc, &keyless).await.unwrap();
        run(&mut svc, &keyless).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn consumers_sharing_a_store_do_not_skip_each_other() {
        let store = MemoryDedupStore::new(10);
        let (a, a_calls) = scripted(vec![Ok(Outcome::Ack)]);
        let (b, b_calls) = scripted(vec![Ok(Outcome::Ack)]);
        let mut a = Dedup::new(a, store.clone());
        let mut b = Dedup::new(b, store);
        // One message handled by two consumers: the runtime stamps each one's name.
        let msg = Message::new("x");
        let by = |name: &str| {
            msg.clone()
                .with_origin(wharf::Origin::new("t").with_consumer(name))
        };
        run(&mut a, &by("a")).await.unwrap();
        run(&mut b, &by("b")).await.unwrap();
        assert_eq!(a_calls.load(Ordering::SeqCst), 1);
        assert_eq!(b_calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn accessors_and_debug() {
        let (inner, _) = scripted(vec![]);
        let mut svc = Dedup::new(inner, Arc::new(MemoryDedupStore::new(3)));
        let _ = svc.get_ref();
        let _ = svc.get_mut();
        assert_eq!(svc.store().capacity(), 3);
        let layer = DedupLayer::new(MemoryDedupStore::new(3));
        assert!(format!("{layer:?}").contains("DedupLayer"));
        let _inner = svc.into_inner();
    }
}
