//! The recommended stack: every wharf layer, in the one order that is right.
//!
//! Layer order changes behaviour, and most wrong orders fail quietly: a dead-letter layer
//! inside the retry layer never sees `retries-exhausted`; dedup outside retry completes a
//! message before it succeeded; a timeout outside retry limits all attempts together.
//! [`RecommendedLayer`] assembles them in this order, outermost first:
//!
//! | # | layer | why here |
//! |---|---|---|
//! | 1 | [`metrics`](crate::metrics) | sees every delivery and its final outcome; its duration and in-flight gauge cover everything below, dead-letter publishing included |
//! | 2 | [`trace`](crate::trace) | one span around all the work on a delivery; rewrites `traceparent` before the dead-letter layer copies the headers, so dead letters continue the trace |
//! | 3 | [`dead_letter`](crate::dead_letter) | outside retry, so it receives the `DeadLetter` retry produces once attempts are spent (and permanent errors straight away); acks only after the broker confirmed the copy |
//! | 4 | [`retry`](crate::retry) | turns transient failures from everything inside into an in-process retry or a `Retry { after }` redelivery; outside dedup, so a retried call claims again |
//! | 5 | [`dedup`](crate::dedup) | cheapest duplicate check first (a local store, by message id), before any I/O to a shared store |
//! | 6 | [`idempotency`](crate::idempotency) (optional) | the durable business-key check, only for messages that are not transport duplicates |
//! | 7 | [`timeout`](crate::timeout) | bounds each attempt; inside dedup and idempotency so a timed-out attempt releases its claims, inside retry so it is retried |
//! | 8 | [`catch_panic`](crate::catch_panic) | innermost: a panic becomes a transient error that every layer above handles like any other (claims released, retried, finally dead-lettered with its message) |
//!
//! Any other tower layer composes with it: put a concurrency limit, rate limit or load
//! shedder outside it with `ServiceBuilder` (the runtime turns their `poll_ready`
//! into backpressure on the broker), or inside it around the handler.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use wharf::{Handler, HandlerError, Json};
//! use wharf_memory::{Harness, MemoryBroker};
//! use wharf_middleware::retry::RetryPolicy;
//! use wharf_middleware::stack::RecommendedLayer;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u64 }
//!
//! async fn handle(Json(order): Json<Order>) -> Result<(), HandlerError> {
//!     let _ = order.id;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let broker = MemoryBroker::new();
//! let recommended = RecommendedLayer::new(broker.clone())
//!     .retry(RetryPolicy::new().max_attempts(5).initial_delay(Duration::from_millis(500)))
//!     .timeout(Duration::from_secs(10));
//!
//! // Other tower layers compose: here a concurrency limit outside the stack.
//! let stack = ServiceBuilder::new()
//!     .concurrency_limit(32)
//!     .layer(recommended)
//!     .service(handle.into_service());
//!
//! let mut harness = Harness::with_broker(broker, stack).topic("orders");
//! let id = harness.publish(wharf::Message::new(r#"{"id":1}"#));
//! harness.run_until_idle().await.assert_acked(&id);
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use tower::util::Either;
use tower::Layer;
use wharf::Publisher;

use crate::catch_panic::{CatchPanic, CatchPanicLayer};
use crate::dead_letter::{DeadLetter, DeadLetterLayer};
use crate::dedup::{Dedup, DedupLayer, MemoryDedupStore};
use crate::idempotency::{Idempotency, IdempotencyLayer};
use crate::metrics::{Metrics, MetricsLayer};
use crate::retry::{Retry, RetryLayer, RetryPolicy};
use crate::timeout::{Timeout, TimeoutLayer};
use crate::trace::{Trace, TraceLayer};

/// The service [`RecommendedLayer`] builds around `S`, dedup store `St`.
///
/// Optional layers appear as [`Either`]: `Left` when configured, `Right` when not.
pub type Recommended<S, St = MemoryDedupStore> = Metrics<
    Trace<
        DeadLetter<
            Retry<
                Either<
                    Dedup<
                        Either<
                            Idempotency<Either<Timeout<CatchPanic<S>>, CatchPanic<S>>>,
                            Either<Timeout<CatchPanic<S>>, CatchPanic<S>>,
                        >,
                        St,
                    >,
                    Either<
                        Idempotency<Either<Timeout<CatchPanic<S>>, CatchPanic<S>>>,
                        Either<Timeout<CatchPanic<S>>, CatchPanic<S>>,
                    >,
                >,
            >,
        >,
    >,
>;

/// Builds the recommended stack; see the [module docs](self) for the order and why.
///
/// Defaults: [`RetryPolicy::default`], dedup on with a [`MemoryDedupStore`] of
/// [`MemoryDedupStore::DEFAULT_CAPACITY`] keys, dead letters to `<source>.dlq`, a
/// 30-second timeout per attempt, no idempotency layer (it needs a key and a durable
/// store: add one with [`idempotency`](Self::idempotency)).
#[derive(Clone)]
pub struct RecommendedLayer<St = MemoryDedupStore> {
    metrics: MetricsLayer,
    trace: TraceLayer,
    dead_letter: DeadLetterLayer,
    retry: RetryLayer,
    dedup: Option<DedupLayer<St>>,
    idempotency: Option<IdempotencyLayer>,
    timeout: Option<TimeoutLayer>,
    catch_panic: CatchPanicLayer,
}

// ===== impl RecommendedLayer =====

impl RecommendedLayer {
    /// The recommended stack, publishing dead letters through `publisher`. The
    /// consumer's name (in metrics, spans, dead letters and dedup keys) is the one given
    /// to [`Consumer::new`](wharf::Consumer::new), which the runtime stamps on every
    /// message.
    pub fn new(publisher: impl Publisher) -> Self {
        RecommendedLayer {
            metrics: MetricsLayer::new(),
            trace: TraceLayer::new(),
            dead_letter: DeadLetterLayer::new(publisher),
            retry: RetryLayer::new(RetryPolicy::default()),
            dedup: Some(DedupLayer::new(MemoryDedupStore::default())),
            idempotency: None,
            timeout: Some(TimeoutLayer::new(Duration::from_secs(30))),
            catch_panic: CatchPanicLayer::new(),
        }
    }
}

impl<St> RecommendedLayer<St> {
    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = RetryLayer::new(policy);
        self
    }

    /// Adjusts the dead-letter layer (destination, error bound, publish-failure delay).
    pub fn dead_letter(
        mut self,
        configure: impl FnOnce(DeadLetterLayer) -> DeadLetterLayer,
    ) -> Self {
        self.dead_letter = configure(self.dead_letter);
        self
    }

    /// Replaces the dedup layer (another store, window or key).
    pub fn dedup<St2>(self, dedup: DedupLayer<St2>) -> RecommendedLayer<St2> {
        RecommendedLayer {
            metrics: self.metrics,
            trace: self.trace,
            dead_letter: self.dead_letter,
            retry: self.retry,
            dedup: Some(dedup),
            idempotency: self.idempotency,
            timeout: self.timeout,
            catch_panic: self.catch_panic,
        }
    }

    /// Leaves deduplication out (when the broker deduplicates, or the idempotency layer
    /// covers it).
    pub fn without_dedup(mut self) -> Self {
        self.dedup = None;
        self
    }

    /// Adds the idempotency layer.
    pub fn idempotency(mut self, idempotency: IdempotencyLayer) -> Self {
        self.idempotency = Some(idempotency);
        self
    }

    /// Sets the per-attempt timeout. The dedup and idempotency leases are raised to at
    /// least the timeout plus 30 s when the stack is built, so a claim never expires
    /// under a handler that is still running.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(TimeoutLayer::new(timeout));
        self
    }

    /// Leaves the per-attempt timeout out. Then nothing bounds how long a handler runs,
    /// and a handler that runs longer than the dedup lease (default 60 s) or idempotency
    /// lease (default 5 min) lets a redelivered copy run next to it: raise the leases
    /// (through [`dedup`](Self::dedup) / [`idempotency`](Self::idempotency)) to cover
    /// your slowest handler.
    pub fn without_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Wraps `inner` (usually `handler.into_service()`) in the stack; the same as
    /// `Layer::layer`.
    pub fn service<S>(&self, inner: S) -> Recommended<S, St>
    where
        St: Clone,
    {
        self.layer(inner)
    }

    /// Sets the level of the per-message span (default `INFO`).
    pub fn trace_level(mut self, level: tracing::Level) -> Self {
        self.trace = self.trace.level(level);
        self
    }
}

/// How much longer than the per-attempt timeout the dedup and idempotency leases are kept,
/// so a claim never expires under a handler that is still allowed to run.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

impl<S, St: Clone> Layer<S> for RecommendedLayer<St> {
    type Service = Recommended<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        // A claim whose lease ran out lets a redelivered copy run next to the original:
        // keep the leases longer than the longest an attempt may run.
        let min_lease = self
            .timeout
            .as_ref()
            .map(|t| t.timeout().saturating_add(LEASE_MARGIN));
        let svc = self.catch_panic.layer(inner);
        let svc = match &self.timeout {
            Some(t) => Either::Left(t.layer(svc)),
            None => Either::Right(svc),
        };
        let svc = match &self.idempotency {
            Some(i) => match min_lease {
                Some(min) if i.lease_duration() < min => {
                    Either::Left(i.clone().lease(min).layer(svc))
                }
                _ => Either::Left(i.layer(svc)),
            },
            None => Either::Right(svc),
        };
        let svc = match &self.dedup {
            Some(d) => match min_lease {
                Some(min) if d.lease_duration() < min => {
                    Either::Left(d.clone().lease(min).layer(svc))
                }
                _ => Either::Left(d.layer(svc)),
            },
            None => Either::Right(svc),
        };
        let svc = self.retry.layer(svc);
        let svc = self.dead_letter.layer(svc);
        let svc = self.trace.layer(svc);
        self.metrics.layer(svc)
    }
}

impl<St> fmt::Debug for RecommendedLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecommendedLayer")
            .field("retry", &self.retry)
            .field("dedup", &self.dedup.is_some())
            .field("idempotency", &self.idempotency.is_some())
            .field("timeout", &self.timeout)
            .field("dead_letter", &self.dead_letter)
            .finish_non_exhaustive()
    }
}
