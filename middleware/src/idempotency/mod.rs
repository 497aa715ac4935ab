//! Middleware that handles each business operation once, keyed by an idempotency key.
//!
//! Deduplication by message id catches a message delivered twice. It cannot catch the
//! same *operation* submitted twice as two messages: a client that timed out and
//! resubmitted a payment, a producer that re-sent a batch after a restart, a dead letter
//! replayed after the original was fixed by hand. Those copies have different ids but the
//! same business meaning, which the producer states with an **idempotency key** — the
//! `idempotency-key` header, or a field of the payload such as a payment id. This layer
//! claims that key in a store shared by every replica of the consumer and handles each
//! key once within a retention window.
//!
//! # Protocol
//!
//! The key is the business key plus the consumer's name, so consumers sharing a store
//! never skip each other's work. For each message the layer asks its
//! [`IdempotencyStore`] to [`claim`](IdempotencyStore::claim) the key, then:
//!
//! | the store says | the layer | the handler |
//! |---|---|---|
//! | claimed | runs the inner service; **completes** the claim if the outcome is `Ack`, **releases** it on anything else (`Retry`, `DeadLetter`, `Drop`, an error, a panic); answers once the store did | runs |
//! | completed (a duplicate) | answers [`Outcome::Ack`]; counts it in `wharf_duplicates_total{kind="idempotency"}` | not called |
//! | in flight (being handled, here or on another replica) | answers [`Outcome::Retry`] after [`retry_in_flight_after`](IdempotencyLayer::retry_in_flight_after) | not called: two never run at once |
//! | an error (the store is down) | returns a transient [`StoreError`](error::StoreError): the retry layer (or the runtime) redelivers the message | **not called**: never without a claim |
//!
//! A message whose handling failed is released and handled again when redelivered:
//! marking a key before success would lose the message. A claim is held under a
//! [lease](IdempotencyLayer::lease), so a replica that crashed mid-message blocks its key
//! only until the lease runs out. If the completion itself fails after a success, the
//! message is still acked (the work is done; retrying could only repeat it) and the claim
//! keeps duplicates out until its lease runs out.
//!
//! **Messages without a key** are handled without protection by default
//! ([`MissingKey::Process`]): producers often set keys only on operations that need them.
//! With [`MissingKey::Reject`] they are a permanent error with reason
//! `missing-idempotency-key` and go to the dead-letter destination instead. A key that is
//! empty, or a header value that is not UTF-8, counts as missing; a payload that does not
//! decode, when the key comes from the payload, is a permanent `decode` error.
//!
//! # A completed key wins over decoding
//!
//! The layer runs before the handler, and decoding is the handler's first step, so a
//! message whose key is already completed is acked as a duplicate without being
//! decoded, even if its payload would not decode or the handler would fail on it: the
//! operation its key names was done, and a second message for it is skipped whatever it
//! carries (as an inbox skips a duplicate before deserializing it). The skipped copy is
//! still counted in `wharf_duplicates_total{kind="idempotency"}`. An undecodable payload
//! under a fresh key reaches the handler and is dead-lettered with reason `decode`. To
//! let a broken payload always reach the dead-letter destination, take the key from the
//! payload ([`key_from_payload`](IdempotencyLayer::key_from_payload)): a payload that does
//! not decode then has no key and is a permanent `decode` error. Tested in
//! `tests/idempotency_completed_key_wins_over_decoding.rs`.
//!
//! # Idempotency or deduplication?
//!
//! | | idempotency (this layer) | [deduplication](crate::dedup) |
//! |---|---|---|
//! | catches | *business* duplicates: different messages meaning the same operation | *transport* duplicates: the same message delivered again |
//! | key | a business key: the `idempotency-key` header or a field of the payload | message id |
//! | window | long: hours or days ([`retention`](IdempotencyLayer::retention)) | short: minutes, the span of redeliveries |
//! | store | durable and shared by every replica (Redis, PostgreSQL), asynchronous, may fail | local to the process, synchronous, infallible |
//! | cost | a round trip to the store per message, a boxed future per store call | a map lookup |
//!
//! Both can run in one stack: deduplication first, so most transport duplicates never
//! reach the store.
//!
//! # Clone
//!
//! The store's claim must be granted before the inner service is called, so the response
//! future owns a service to call once it is: [`Idempotency`] requires `S: Clone`, takes
//! the service `poll_ready` made ready and leaves a clone behind (the usual tower pattern
//! for services that call their inner service from their future).
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use tower::ServiceBuilder;
//! use wharf::{Handler, HandlerError, Message};
//! use wharf_memory::Harness;
//! use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};
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
//! // In production: a Redis or PostgreSQL store shared by every replica.
//! let store = Arc::new(MemoryIdempotencyStore::default());
//! let stack = ServiceBuilder::new()
//!     .layer(IdempotencyLayer::new(store))
//!     .service(charge.into_service());
//! let mut harness = Harness::new(stack).consumer_name("billing");
//!
//! // Two different messages for the same payment (the client resubmitted it):
//! let first = harness.publish(Message::new("42.00").with_header("idempotency-key", "pay-7"));
//! harness.run_until_idle().await.assert_acked(&first);
//! let resubmitted = harness.publish(Message::new("42.00").with_header("idempotency-key", "pay-7"));
//! harness.run_until_idle().await.assert_acked(&resubmitted);
//!
//! assert_eq!(CHARGED.load(Ordering::SeqCst), 1, "charged once");
//! # }
//! ```
//!
//! [`Outcome::Ack`]: wharf::Outcome::Ack
//! [`Outcome::Retry`]: wharf::Outcome::Retry

pub mod error;
pub mod future;
mod layer;
mod memory;
mod store;
use crate::claims as table;

pub use future::ResponseFuture;
pub use layer::{IdempotencyLayer, MissingKey};
pub use memory::MemoryIdempotencyStore;
pub use store::{Claim, ClaimToken, IdempotencyKey, IdempotencyStore};

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;
use wharf::{BoxError, ErrorKind, FailureReason, HandlerError, Message, Outcome};

use error::MissingKeyError;
use layer::Config;

/// Handles each business key once; see the [module docs](self).
///
/// # Clone
///
/// Clones share the store and the configuration. The inner service must be `Clone` (see
/// the [module docs](self#clone)).
pub struct Idempotency<S> {
    inner: S,
    store: Arc<dyn IdempotencyStore>,
    config: Arc<Config>,
}

// ===== impl Idempotency =====

impl<S> Idempotency<S> {
    /// Wraps `inner`, claiming keys from the `idempotency-key` header in `store`, with
    /// the [`IdempotencyLayer`] defaults.
    pub fn new(inner: S, store: Arc<dyn IdempotencyStore>) -> Self {
        IdempotencyLayer::new(store).wrap(inner)
    }

    pub(crate) fn from_parts(
        inner: S,
        store: Arc<dyn IdempotencyStore>,
        config: Arc<Config>,
    ) -> Self {
        Idempotency {
            inner,
            store,
            config,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
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

impl<S: Clone> Clone for Idempotency<S> {
    fn clone(&self) -> Self {
        Idempotency {
            inner: self.inner.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Message> for Idempotency<S>
where
    S: Service<Message, Response = Outcome> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Outcome;
    type Error = BoxError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let config = self.config.clone();
        let key = match config.key.extract(&message) {
            Ok(Some(key)) => key,
            Ok(None) => {
                return match config.missing_key {
                    MissingKey::Process => ResponseFuture::called(self.inner.call(message), config),
                    MissingKey::Reject => {
                        tracing::warn!(message_id = %message.id(), "message has no idempotency key; rejected");
                        let error = HandlerError::with_reason(
                            ErrorKind::Permanent,
                            FailureReason::Other(MissingKeyError::REASON.into()),
                            MissingKeyError::new(),
                        );
                        ResponseFuture::decided(Err(error.into()), config)
                    }
                };
            }
            // The key lives in a payload that does not decode: permanent.
            Err(e) => return ResponseFuture::decided(Err(e.into()), config),
        };
        let key = IdempotencyKey::new(crate::telemetry::consumer_arc_of(&message), key);
        // Take the service `poll_ready` made ready; leave a clone for the next call.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::claiming(self.store.clone(), key, ready, message, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{run, scripted};

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use futures_util::FutureExt;
    use tower::{service_fn, ServiceExt};
    use wharf::error::classify;
    use wharf::Failure;

    /// A message with idempotency key `key`, handled by consumer `c` (as the runtime
    /// stamps it).
    fn keyed(key: &str) -> Message {
        Message::new("{}")
            .with_header("idempotency-key", key.to_owned())
            .with_origin(wharf::Origin::new("t").with_consumer("c"))
    }

    fn memory() -> Arc<dyn IdempotencyStore> {
        Arc::new(MemoryIdempotencyStore::new(100))
    }

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
            let mut svc = Idempotency::new(inner, memory());
            let _ = run(&mut svc, &keyed("k")).await;
            assert_eq!(run(&mut svc, &keyed("k")).await.unwrap(), Outcome::Ack);
            assert_eq!(
                calls.load(Ordering::SeqCst),
                2,
                "after {first:?} the key runs again"
            );
            assert_eq!(run(&mut svc, &keyed("k")).await.unwrap(), Outcome::Ack);
            assert_eq!(calls.load(Ordering::SeqCst), 2);
        }
    }

    #[tokio::test]
    async fn missing_keys_pass_through_or_are_rejected_as_permanent() {
        let (inner, calls) = scripted(vec![Ok(Outcome::Ack); 2]);
        let mut svc = Idempotency::new(inner.clone(), memory());
        run(&mut svc, &Message::new("x")).await.unwrap();
        run(&mut svc, &Message::new("x")).await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "keyless messages always run"
        );

        let mut svc = IdempotencyLayer::new(memory())
            .missing_key(MissingKey::Reject)
            .wrap(inner);
        for msg in [Message::new("x"), keyed("")] {
            let err = run(&mut svc, &msg).await.unwrap_err();
            let class = classify(&*err);
            assert_eq!(class.kind, ErrorKind::Permanent);
            assert_eq!(class.reason.as_str(), MissingKeyError::REASON);
            let source = std::error::Error::source(&*err).expect("the classified error's source");
            assert!(source.is::<MissingKeyError>(), "{source:?}");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "rejected messages never run"
        );
    }

    #[tokio::test]
    async fn keys_from_the_payload_and_undecodable_payloads() {
        #[derive(serde::Deserialize)]
        struct Payment {
            id: Option<String>,
        }
        let (inner, calls) = scripted(vec![Ok(Outcome::Ack); 3]);
        let mut svc = IdempotencyLayer::new(memory())
            .key_from_payload(|p: &Payment| p.id.clone())
            .wrap(inner);
        run(&mut svc, &Message::new(r#"{"id":"p1"}"#))
            .await
            .unwrap();
        run(&mut svc, &Message::new(r#"{"id":"p1","amount":3}"#))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        run(&mut svc, &Message::new(r#"{"id":"p2"}"#))
            .await
            .unwrap();
        run(&mut svc, &Message::new("{}")).await.unwrap(); // no key: processed
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let err = run(&mut svc, &Message::new("not json")).await.unwrap_err();
        assert_eq!(classify(&*err).reason, FailureReason::Decode);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_headers_and_functions_can_supply_the_key() {
        let (inner, calls) = scripted(vec![Ok(Outcome::Ack); 2]);
        let mut by_header = IdempotencyLayer::new(memory())
            .key_from_header("x-request-id")
            .wrap(inner.clone());
        let msg = |v: &str| Message::new("x").with_header("x-request-id", v.to_owned());
        run(&mut by_header, &msg("r1")).await.unwrap();
        run(&mut by_header, &msg("r1")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let mut by_key = IdempotencyLayer::new(memory())
            .key_with(|m: &Message| m.key().map(|k| String::from_utf8_lossy(k).into_owned()))
            .wrap(inner);
        run(&mut by_key, &Message::new("x").with_key("order-1"))
            .await
            .unwrap();
        run(&mut by_key, &Message::new("y").with_key("order-1"))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// A store that fails every call while `down` is set.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryIdempotencyStore,
        down: AtomicBool,
        fail_completes: AtomicBool,
    }

    impl Flaky {
        fn check(&self) -> Result<(), BoxError> {
            if self.down.load(Ordering::SeqCst) {
                return Err("connection refused".into());
            }
            Ok(())
        }
    }

    #[async_trait]
    impl IdempotencyStore for Flaky {
        async fn claim(&self, key: &IdempotencyKey, lease: Duration) -> Result<Claim, BoxError> {
            self.check()?;
            self.inner.claim(key, lease).await
        }
        async fn complete(
            &self,
            key: &IdempotencyKey,
            token: ClaimToken,
            retention: Duration,
        ) -> Result<(), BoxError> {
            self.check()?;
            if self.fail_completes.load(Ordering::SeqCst) {
                return Err("write timed out".into());
            }
            self.inner.complete(key, token, retention).await
        }
        async fn release(&self, key: &IdempotencyKey, token: ClaimToken) -> Result<(), BoxError> {
            self.check()?;
            self.inner.release(key, token).await
        }
    }

    #[tokio::test]
    async fn a_failing_store_is_a_transient_error_and_the_handler_never_runs() {
        let store = Arc::new(Flaky::default());
        store.down.store(true, Ordering::SeqCst);
        let (inner, calls) = scripted(vec![Ok(Outcome::Ack)]);
        let mut svc = Idempotency::new(inner, store.clone());
        let err = run(&mut svc, &keyed("k")).await.unwrap_err();
        assert_eq!(classify(&*err).kind, ErrorKind::Transient);
        let store_error = err
            .downcast_ref::<error::StoreError>()
            .expect("a StoreError");
        assert_eq!(store_error.inner().to_string(), "connection refused");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "never run without a claim");
        store.down.store(false, Ordering::SeqCst);
        assert_eq!(run(&mut svc, &keyed("k")).await.unwrap(), Outcome::Ack);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_completion_still_acks_and_the_claim_holds_until_its_lease() {
        let store = Arc::new(Flaky::default());
        store.fail_completes.store(true, Ordering::SeqCst);
        let (inner, calls) = scripted(vec![Ok(Outcome::Ack); 2]);
        let mut svc = IdempotencyLayer::new(store.clone())
            .lease(Duration::from_secs(60))
            .wrap(inner);
        assert_eq!(run(&mut svc, &keyed("k")).await.unwrap(), Outcome::Ack);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Not completed, but the claim still holds: a duplicate is retried, not run.
        assert!(matches!(
            run(&mut svc, &keyed("k")).await.unwrap(),
            Outcome::Retry { .. }
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn dropping_the_future_releases_the_claim_on_a_task() {
        let store = Arc::new(MemoryIdempotencyStore::new(10));
        let mut svc = Idempotency::new(
            service_fn(|_msg: Message| async {
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(Outcome::Ack)
            }),
            store.clone(),
        );
        let mut fut = Box::pin(svc.ready().await.unwrap().call(keyed("k")));
        assert!(fut.as_mut().now_or_never().is_none());
        let key = IdempotencyKey::new("c", "k");
        let lease = Duration::from_secs(1);
        assert_eq!(store.claim(&key, lease).await.unwrap(), Claim::InFlight);
        drop(fut);
        tokio::task::yield_now().await;
        assert!(
            matches!(store.claim(&key, lease).await.unwrap(), Claim::Claimed(_)),
            "a dropped handler must release its claim"
        );
    }

    #[test]
    fn accessors_and_debug() {
        let (inner, _) = scripted(vec![]);
        let mut svc = Idempotency::new(inner, memory());
        let _ = svc.get_ref();
        let _ = svc.get_mut();
        let _ = svc.store();
        let layer = IdempotencyLayer::new(memory());
        assert!(format!("{layer:?}").contains("IdempotencyLayer"));
        let _inner = svc.into_inner();
    }
}
