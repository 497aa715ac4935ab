//! Middleware that retries transient failures, in process or by redelivery, and gives up
//! with reason `retries-exhausted`.
//!
//! Most failures of a consumer are passing: a database failover, a rate limit, a
//! connection reset. Handlers should not loop around them by hand, and a message should
//! not be dead-lettered on the first hiccup either. This layer turns a **transient**
//! error into another try, a bounded number of times, with exponential backoff and
//! jitter ([`RetryPolicy`]); a **permanent** error is given up on at once.
//!
//! # Two tiers
//!
//! - **In process** ([`RetryPolicy::in_process_retries`], default 0): wait the backoff
//!   and call the inner service again with the same message, within the same delivery.
//!   The message keeps its place, so later messages with the same key still wait behind
//!   it (order holds); while it waits it holds its own key lane and one in-flight slot,
//!   never the partition or the queue. Good for blips that pass in seconds.
//! - **Redelivery**: return [`Outcome::Retry { after }`](Outcome::Retry); the adapter
//!   delays the message natively (JetStream `Nak(delay)`, RabbitMQ TTL tier queues, memory
//!   timers) and holds nothing meanwhile. Later messages with the same key overtake it.
//!
//! Each delivery first spends its in-process retries, then asks for a redelivery. The
//! backoff grows across both tiers: retry number `n` of a message waits about
//! `initial_delay × multiplierⁿ⁻¹`, capped (see [`RetryPolicy`]).
//!
//! # Attempts
//!
//! [`RetryPolicy::max_attempts`] counts **deliveries**, as the broker does:
//! [`Message::attempt`] comes from the broker's delivery count or the `wharf-attempt`
//! header of a redelivered copy, never only from memory, so a crash or a restart does not
//! reset it. In-process retries do not count against it; the handler runs at most
//! `max_attempts × (1 + in_process_retries)` times. When the last delivery fails, the
//! outcome is a dead letter with reason `retries-exhausted`, and the dead-letter layer's
//! `wharf-dlq-attempts` header shows the same attempt number.
//!
//! # What becomes of each result
//!
//! | the inner service returned | outcome |
//! |---|---|
//! | `Ok(outcome)` | that outcome, unchanged (`Retry` included, see below) |
//! | a permanent error | `DeadLetter` with the error's own reason (`permanent`, `decode`, ...), at once |
//! | a transient error the [predicate](RetryPolicy::retry_if) declines | `DeadLetter` with the error's own reason (`timeout`, `handler-panic`, ...) or `permanent`, at once |
//! | a transient error, in-process retries left | wait the backoff, call again |
//! | a transient error, attempts left | `Retry { after: backoff }` |
//! | a transient error on the last attempt | `DeadLetter` with reason `retries-exhausted` and the last error's text |
//!
//! The response future therefore never fails. An `Ok(Outcome::Retry { .. })` from an
//! inner layer (the deduplication layer asks for one when a duplicate is still in flight)
//! is not a failure, so it passes through and is not retried in process. Its redelivery
//! still raises the broker's attempt count, which the next *failure* is measured against.
//!
//! # Where it goes in a stack
//!
//! Inside the dead-letter layer, which publishes the dead letters this layer decides;
//! outside the timeout and panic-catching layers, so that every try is bounded and a
//! panic or a timeout counts as a failed try like any other transient error.
//!
//! Each retry decided increments `wharf_retries_total{consumer, source, tier}` (`tier` is
//! `in_process` or `redelivery`) when the `metrics` feature is on; `consumer` is the name
//! the [`Consumer`](wharf::Consumer) runtime stamped on the message.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use wharf::{Handler, HandlerError, Message};
//! use wharf_memory::Harness;
//! use wharf_middleware::retry::{RetryLayer, RetryPolicy};
//!
//! async fn handle(msg: Message) -> Result<(), HandlerError> {
//!     // The first two deliveries find the database down.
//!     if msg.attempt() < 3 {
//!         return Err(HandlerError::transient("database unavailable"));
//!     }
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let policy = RetryPolicy::new()
//!     .max_attempts(5)
//!     .initial_delay(Duration::from_secs(10));
//! let stack = ServiceBuilder::new()
//!     .layer(RetryLayer::new(policy))
//!     .service(handle.into_service());
//!
//! let mut harness = Harness::new(stack).consumer_name("orders");
//! let order = harness.publish(Message::new("order 7"));
//! // About 10 s + 20 s of backoff, in virtual time: the test does not wait.
//! let report = harness.run_until_idle().await;
//!
//! report.assert_acked(&order).assert_retried(&order, 2);
//! # }
//! ```
//!
//! [`Message::attempt`]: wharf::Message::attempt

mod future;
mod layer;
mod policy;

pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::RetryPolicy;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;
use wharf::{BoxError, Message, Outcome};

use layer::Shared;

/// Retries transient failures; see the [module docs](self).
///
/// # Clone
///
/// The service requires `S: Clone`: an in-process retry calls a clone of the inner
/// service (made at `call`, and only when the policy has an in-process tier), after
/// waiting for it to be ready, as tower's retry does.
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared>,
}

// ===== impl Retry =====

impl<S> Retry<S> {
    /// Wraps `inner`, retrying by `policy`.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        RetryLayer::new(policy).wrap(inner)
    }

    pub(crate) fn from_parts(inner: S, shared: Arc<Shared>) -> Self {
        Retry { inner, shared }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
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

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.shared.policy)
            .finish()
    }
}

impl<S> Service<Message> for Retry<S>
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
        // `self.inner` is the service that was polled ready; the clone is polled ready
        // again before each in-process retry.
        let retry_with = self
            .shared
            .policy
            .has_in_process_tier()
            .then(|| self.inner.clone());
        let fut = self.inner.call(message.clone());
        ResponseFuture::new(fut, message, retry_with, self.shared.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tower::ServiceExt;
    use wharf::{FailureReason, HandlerError};

    use super::*;

    /// A service that fails transiently on its first `failures` calls, counting calls.
    #[derive(Clone)]
    struct Flaky {
        failures: u32,
        calls: Arc<AtomicU32>,
    }

    impl Service<Message> for Flaky {
        type Response = Outcome;
        type Error = HandlerError;
        type Future = std::future::Ready<Result<Outcome, HandlerError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Message) -> Self::Future {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready(if n <= self.failures {
                Err(HandlerError::transient(format!("failure {n}")))
            } else {
                Ok(Outcome::Ack)
            })
        }
    }

    fn flaky(failures: u32) -> (Flaky, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let svc = Flaky {
            failures,
            calls: calls.clone(),
        };
        (svc, calls)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new()
            .max_attempts(3)
            .initial_delay(Duration::from_secs(1))
            .jitter(0.0)
    }

    #[tokio::test(start_paused = true)]
    async fn in_process_retries_wait_the_backoff_then_succeed() {
        let (inner, calls) = flaky(2);
        let svc = Retry::new(inner, policy().in_process_retries(2));
        let start = tokio::time::Instant::now();
        let out = svc.oneshot(Message::new("m")).await.unwrap();
        assert_eq!(out, Outcome::Ack);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(start.elapsed(), Duration::from_secs(1 + 2), "1 s then 2 s");
    }

    #[tokio::test(start_paused = true)]
    async fn spent_in_process_retries_ask_for_a_redelivery() {
        let (inner, calls) = flaky(10);
        let svc = Retry::new(inner, policy().in_process_retries(1));
        let out = svc.oneshot(Message::new("m")).await.unwrap();
        // Retry number 2 of the message: 2 s.
        assert_eq!(out, Outcome::retry_after(Duration::from_secs(2)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn redelivery_tier_does_not_call_again() {
        let (inner, calls) = flaky(10);
        let svc = Retry::new(inner, policy());
        let msg = Message::new("m").with_attempt(2);
        let out = svc.oneshot(msg).await.unwrap();
        assert_eq!(out, Outcome::retry_after(Duration::from_secs(2)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_attempt_dead_letters() {
        let (inner, _) = flaky(10);
        let svc = Retry::new(inner, policy());
        let out = svc
            .oneshot(Message::new("m").with_attempt(3))
            .await
            .unwrap();
        let failure = out.failure().expect("a dead letter");
        assert!(matches!(out, Outcome::DeadLetter(_)));
        assert_eq!(failure.reason(), &FailureReason::RetriesExhausted);
        assert_eq!(
            failure.error(),
            "retries exhausted after 3 attempts; last error: failure 1"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn inner_outcomes_pass_through() {
        let svc = Retry::new(
            tower::service_fn(|_: Message| async {
                Ok::<_, BoxError>(Outcome::retry_after(Duration::from_secs(7)))
            }),
            policy().in_process_retries(3),
        );
        let out = svc.oneshot(Message::new("m")).await.unwrap();
        assert_eq!(out, Outcome::retry_after(Duration::from_secs(7)));
    }

    /// A clone that fails to get ready fails its try, and the policy goes on.
    #[tokio::test(start_paused = true)]
    async fn a_clone_that_is_not_ready_fails_the_try() {
        struct OriginalOnlyReady {
            original: bool,
        }
        impl Clone for OriginalOnlyReady {
            fn clone(&self) -> Self {
                OriginalOnlyReady { original: false }
            }
        }
        impl Service<Message> for OriginalOnlyReady {
            type Response = Outcome;
            type Error = BoxError;
            type Future = std::future::Ready<Result<Outcome, BoxError>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
                Poll::Ready(if self.original {
                    Ok(())
                } else {
                    Err("overloaded".into())
                })
            }
            fn call(&mut self, _: Message) -> Self::Future {
                std::future::ready(Err("first try failed".into()))
            }
        }
        let svc = Retry::new(
            OriginalOnlyReady { original: true },
            policy().in_process_retries(2),
        );
        let start = tokio::time::Instant::now();
        let out = svc.oneshot(Message::new("m")).await.unwrap();
        // The call failed, then the clone's readiness twice: retry number 3 is next.
        assert_eq!(out, Outcome::retry_after(Duration::from_secs(4)));
        assert_eq!(start.elapsed(), Duration::from_secs(1 + 2));
    }
}
