//! Middleware that records per-message metrics through the [`metrics`] facade.
//!
//! A consumer that is quietly falling behind and a consumer that is broken look the same
//! from the outside: messages pile up. Telling them apart needs three rates side by side
//! — how fast messages arrive at the stack, how fast they leave it and with what outcome,
//! and how many wait at the broker — labelled the same way on every broker. This layer
//! records the first two; the retry, dead-letter and dedup layers add why messages did
//! not simply succeed; adapters add the backlog.
//!
//! wharf depends only on the `metrics` facade: the application installs the recorder it
//! wants (for example `metrics-exporter-prometheus`). Without a recorder every call is a
//! no-op.
//!
//! # Metrics
//!
//! Every wharf metric carries `consumer` (the name given to `Consumer::new`, stamped on each message) and
//! `source` (the queue, topic or subject the message came from, [`Origin::source`]).
//!
//! | metric | type | extra labels | recorded by | meaning |
//! |---|---|---|---|---|
//! | `wharf_messages_received_total` | counter | | this layer, on call | deliveries the stack was called for; every redelivery counts again |
//! | `wharf_messages_handled_total` | counter | `outcome` | this layer, on completion | deliveries whose stack completed, by final outcome: `ack`, `retry`, `dead_letter`, `drop` ([`Outcome::as_str`]), or `error` when the stack returned an error |
//! | `wharf_handler_duration_seconds` | histogram | | this layer, on completion | time from call to completion, including everything the layers inside do (in-process retries, dead-letter publishing) |
//! | `wharf_messages_in_flight` | gauge | | this layer | deliveries called and not yet completed (a future dropped unfinished leaves it too) |
//! | `wharf_retries_total` | counter | `tier` (`in_process`, `redelivery`) | retry layer | retries decided |
//! | `wharf_dead_letters_total` | counter | `reason` (`permanent`, `decode`, `retries-exhausted`, ...) | dead-letter layer | dead letters published *and confirmed* |
//! | `wharf_duplicates_total` | counter | `kind` (`dedup`, `idempotency`) | dedup and idempotency layers | duplicates acked without running the handler |
//! | `wharf_backlog` | gauge | `partition` (where the broker has partitions) | [`StatusMonitor`](wharf::status::StatusMonitor) | messages the group has not settled at the broker |
//! | `wharf_oldest_unacked_age_seconds` | gauge | | [`StatusMonitor`](wharf::status::StatusMonitor) | age of the oldest unsettled message, where the broker tells (JetStream) |
//! | `wharf_status` | gauge | `verdict` | [`StatusMonitor`](wharf::status::StatusMonitor) | 1 for the current [verdict](wharf::status) (`ok`, `slow`, `stalled`, `stopped`, `failing`), 0 for the others |
//!
//! The names are in [`wharf::metric_names`] (the one place they live, shared with the
//! adapters). In the recommended stack this layer is outermost, so
//! `handled{outcome}` is what the runtime settles: a message the dead-letter layer
//! published is counted as `ack` there and by reason in `wharf_dead_letters_total`.
//!
//! # Backlog growth or outage?
//!
//! Compare the received rate, the handled rate by outcome and the backlog (PromQL-style:
//! `rate(wharf_messages_received_total[5m])`, `rate(wharf_messages_handled_total[5m])`
//! by `outcome`, `wharf_backlog`):
//!
//! | received rate | handled rate | in flight | backlog | diagnosis |
//! |---|---|---|---|---|
//! | steady | ≈ received, mostly `ack` | below the bound | flat | healthy |
//! | steady or at a plateau | ≈ received, mostly `ack` | at `max_in_flight` | growing | **backlog growth**: the consumer works but cannot keep up (more replicas, more concurrency, or a slower dependency — check the duration histogram) |
//! | steady (redeliveries) | mostly `retry` / `error`, retries and dead letters rising | any | growing | **downstream outage**: the consumer runs, the handler fails |
//! | ≈ 0 | ≈ 0 | at the bound | growing | **stuck handlers**: nothing completes (missing timeout, deadlock) |
//! | ≈ 0 (or the series is gone) | ≈ 0 | 0 | growing | **consumer outage**: not receiving at all (process down, broker connection lost) |
//!
//! A growing backlog with a healthy received rate is capacity; a growing backlog with a
//! collapsed received or `ack` rate is an outage. [`wharf::status`] applies these rules
//! for you (`wharf_status{verdict}`, `wharf status` on the command line).
//!
//! # Handles, caching and recorders
//!
//! Building label sets and looking up handles is the expensive part of recording a
//! metric, so this layer does it once per source rather than once per message: the first
//! message from a source registers its handles (one counter per outcome, the histogram,
//! the gauge) with the recorder installed at that moment, and the service keeps them.
//! Later messages add to them directly, and the in-flight future owns an `Arc` of them.
//!
//! - Install the recorder (global, or thread-local with
//!   [`metrics::with_local_recorder`]) before the consumer
//!   handles its first message; a service that already recorded keeps the handles it got.
//! - Each service instance keeps its own cache; a clone starts empty and registers with
//!   the recorder installed when it first runs.
//! - Up to 32 sources are cached per service; messages from further sources (wildcard
//!   subscriptions) are still recorded, registering their handles per message.
//!
//! Durations are measured with tokio's clock ([`tokio::time::Instant`]): real time in
//! production, virtual time under `tokio::time::pause`.
//!
//! # Example
//!
//! ```
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use tower::ServiceBuilder;
//! use wharf::{Handler, HandlerError, Message};
//! use wharf_memory::Harness;
//! use wharf::metric_names as names;
//! use wharf_middleware::metrics::MetricsLayer;
//!
//! async fn handle(_msg: Message) -> Result<(), HandlerError> {
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // An application installs an exporter here (e.g. metrics-exporter-prometheus).
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::set_global_recorder(recorder).expect("no recorder installed yet");
//!
//! let stack = ServiceBuilder::new()
//!     .layer(MetricsLayer::new())
//!     .service(handle.into_service());
//! let mut harness = Harness::new(stack).topic("invoices");
//! harness.publish(Message::new("a"));
//! harness.publish(Message::new("b"));
//! harness.run_until_idle().await;
//!
//! let acked = snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
//!     let key = key.key();
//!     let ack = key.labels().any(|l| l.key() == "outcome" && l.value() == "ack");
//!     (key.name() == names::MESSAGES_HANDLED && ack).then_some(value)
//! });
//! assert_eq!(acked, Some(DebugValue::Counter(2)));
//! # }
//! ```
//!
//! [`Origin::source`]: wharf::Origin::source
//! [`Outcome::as_str`]: wharf::Outcome::as_str

mod future;
mod handles;
mod layer;

pub use future::ResponseFuture;
pub use layer::MetricsLayer;

use std::fmt;
use std::task::{Context, Poll};

use tower::Service;
use wharf::{BoxError, Message, Outcome};

use future::InFlight;
use handles::HandleCache;

/// Records per-message metrics; see the [module docs](self).
///
/// # Clone
///
/// A clone shares nothing mutable: it starts with an empty handle cache.
pub struct Metrics<S> {
    inner: S,
    cache: HandleCache,
}

// ===== impl Metrics =====

impl<S> Metrics<S> {
    /// Wraps `inner`, labelling its metrics with the consumer the runtime stamped on
    /// each message.
    pub fn new(inner: S) -> Self {
        Metrics {
            inner,
            cache: HandleCache::default(),
        }
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

impl<S: Clone> Clone for Metrics<S> {
    fn clone(&self) -> Self {
        Metrics::new(self.inner.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for Metrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .field("cached_sources", &self.cache.len())
            .finish()
    }
}

impl<S> Service<Message> for Metrics<S>
where
    S: Service<Message, Response = Outcome>,
    S::Error: Into<BoxError>,
{
    type Response = Outcome;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let handles = self.cache.get(message.origin());
        // Counted before the inner call, so a panicking `call` still leaves the gauge.
        let in_flight = InFlight::start(handles);
        ResponseFuture::new(self.inner.call(message), in_flight)
    }
}
