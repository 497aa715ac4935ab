//! The consumer runtime: source → stack → settle, with bounded concurrency.
//!
//! A [`Consumer`] pulls deliveries from a [`Subscriber`], calls the stack (any
//! `tower::Service<Message, Response = Outcome>`) and settles each delivery **exactly
//! once** with the final outcome. In detail:
//!
//! - **Backpressure.** `poll_ready` is called on the stack before each pull, and no more
//!   than [`max_in_flight`](Consumer::max_in_flight) deliveries are held unsettled. A
//!   concurrency or rate limit in the stack slows the pulls from the broker instead of
//!   filling a buffer.
//! - **Order.** With the default [`DeliveryOrder::PerKey`], messages with the same key run
//!   one after another and different keys run in parallel. A message waiting behind its
//!   key holds only that key's lane.
//! - **Settlement.** The stack's outcome is settled through the delivery's acker.
//!   Errors that no layer turned into an outcome are mapped here: transient ⇒ `Retry`
//!   after [`retry_delay`](Consumer::retry_delay), permanent ⇒ `DeadLetter`. A panic is
//!   caught and settled `Retry`. From attempt [`max_attempts`](Consumer::max_attempts)
//!   on (default 10), a transient error or a panic is dead-lettered instead, so a
//!   stack without a retry layer never retries a message for ever. Settlements run
//!   concurrently with other work.
//! - **Shutdown.** When the shutdown future resolves (or the source ends), the consumer
//!   stops pulling, lets in-flight work finish until
//!   [`shutdown_timeout`](Consumer::shutdown_timeout), settles whatever is unfinished as
//!   `Retry` (never dead-lettered), waits for the settlements, and closes the
//!   subscriber. Nothing received is lost.
//!
//! ```
//! use std::time::Duration;
//! use wharf::{Consumer, Handler, HandlerError, Message};
//! # use wharf::adapter::{Acker, Capabilities, Delivery, Subscriber};
//! # use wharf::{BoxError, Outcome};
//! # struct Empty;
//! # impl futures_util::Stream for Empty {
//! #     type Item = Result<Delivery<NoAck>, wharf::Error>;
//! #     fn poll_next(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> { std::task::Poll::Ready(None) }
//! # }
//! # struct NoAck;
//! # impl Acker for NoAck {
//! #     type Future = std::future::Ready<Result<(), BoxError>>;
//! #     fn settle(self, _: Outcome) -> Self::Future { std::future::ready(Ok(())) }
//! # }
//! # impl Subscriber for Empty {
//! #     type Acker = NoAck;
//! #     fn capabilities(&self) -> Capabilities { Capabilities::default() }
//! #     async fn close(self) -> Result<(), wharf::Error> { Ok(()) }
//! # }
//! # async fn example() -> Result<(), wharf::Error> {
//! # let subscriber = Empty;
//! async fn handle(msg: Message) -> Result<(), HandlerError> {
//!     println!("got {}", msg.id());
//!     Ok(())
//! }
//!
//! let summary = Consumer::new("billing-orders", subscriber, handle.into_service())
//!     .owner("team-billing")
//!     .max_in_flight(256)
//!     .shutdown_timeout(Duration::from_secs(30))
//!     .run(wharf::shutdown::signal())
//!     .await?;
//! println!("{summary:?}");
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(example()).unwrap();
//! ```

mod job;
mod jobs;
mod lanes;
mod runner;

pub use lanes::DeliveryOrder;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tower::Service;

use crate::adapter::Subscriber;
use crate::error::{BoxError, Error};
use crate::message::{Message, Stamp};
use crate::outcome::Outcome;
use job::Settling;
use runner::{Limits, Runner};

/// Drives a subscriber through a service stack. See the [module docs](self).
pub struct Consumer<S, Svc> {
    name: String,
    owner: Option<String>,
    subscriber: S,
    service: Svc,
    max_in_flight: usize,
    ordering: DeliveryOrder,
    shutdown_timeout: Duration,
    settle_timeout: Duration,
    retry_delay: Duration,
    max_attempts: u32,
    stop_when_idle: Option<Duration>,
    retry_description: Option<String>,
    description: Option<String>,
    broker_url: Option<String>,
    stack_description: Option<String>,
    progress: crate::status::Progress,
}

impl<S, Svc> Consumer<S, Svc>
where
    S: Subscriber,
    Svc: Service<Message, Response = Outcome> + Send + 'static,
    Svc::Error: Into<BoxError>,
    Svc::Future: Send + 'static,
{
    /// Default of [`max_attempts`](Self::max_attempts).
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

    /// A consumer named `name` (used in logs, metrics and dead-letter headers; make it
    /// unique per logical consumer) reading `subscriber` through `service`.
    pub fn new(name: impl Into<String>, subscriber: S, service: Svc) -> Self {
        Consumer {
            name: name.into(),
            owner: None,
            subscriber,
            service,
            max_in_flight: 64,
            ordering: DeliveryOrder::PerKey,
            shutdown_timeout: Duration::from_secs(30),
            settle_timeout: Duration::from_secs(10),
            retry_delay: Duration::from_secs(1),
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            stop_when_idle: None,
            retry_description: None,
            description: None,
            broker_url: None,
            stack_description: None,
            progress: crate::status::Progress::new(),
        }
    }

    /// How this consumer retries, in words, for the catalog (`"4 attempts, 1s → 30s
    /// backoff, then dead letter"`; a retry layer's policy `Debug` does too). The stack
    /// is opaque to the runtime, so without this the catalog states the runtime's own
    /// fallback.
    pub fn describe_retry(mut self, retry: impl Into<String>) -> Self {
        self.retry_description = Some(retry.into());
        self
    }

    /// This consumer's catalog entry: name, owner, what it reads and where its dead
    /// letters go ([`Subscriber::describe`]), how it retries.
    pub fn catalog_entry(&self) -> crate::app::CatalogEntry {
        crate::app::CatalogEntry {
            name: self.name.clone(),
            owner: self.owner.clone(),
            description: self.description.clone(),
            broker_url: self.broker_url.clone(),
            source: self.subscriber.describe(),
            stack: self.stack_description.clone(),
            retry: self.retry_description.clone().unwrap_or_else(|| {
                format!(
                    "not described (runtime fallback: a transient error is retried after {}, \
                     dead-lettered from attempt {})",
                    humantime::format_duration(self.retry_delay),
                    self.max_attempts
                )
            }),
            max_in_flight: self.max_in_flight,
            ordering: self.ordering.as_str().to_owned(),
        }
    }

    /// Stops (drains and returns, like a shutdown) once nothing has arrived for `idle`
    /// and nothing is in flight: for batch jobs and tests that consume what is there and
    /// end, on any broker. Checked every `idle`, so the consumer stops between `idle` and
    /// twice `idle` after its last delivery; a handler running longer than `idle`, or a
    /// retry waiting in its lane, keeps it running. Costs nothing per message.
    pub fn stop_when_idle(mut self, idle: Duration) -> Self {
        self.stop_when_idle = Some(idle);
        self
    }

    /// Who owns this consumer (a team or service), for operators. Logged at start-up.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// What this consumer does, in a sentence, for the catalog.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The broker URL this consumer reads from, for the catalog. Kept without its
    /// credentials and query ([`broker_url::redacted`](crate::adapter::broker_url::redacted)),
    /// so the URL the subscriber was made from can be passed as it is.
    pub fn broker_url(mut self, url: &str) -> Self {
        self.broker_url = Some(crate::adapter::broker_url::redacted(url));
        self
    }

    /// The middleware stack, in words, for the catalog (`"recommended: dedup of 100k
    /// ids for 10 min, idempotency keys on PostgreSQL, timeout 30s"`). The stack is opaque
    /// to the runtime, so the catalog says only what this states.
    pub fn describe_stack(mut self, stack: impl Into<String>) -> Self {
        self.stack_description = Some(stack.into());
        self
    }

    /// Most deliveries held unsettled at once (default 64). Must be at least 1.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Which messages run one after another (default [`DeliveryOrder::PerKey`]).
    pub fn ordering(mut self, ordering: DeliveryOrder) -> Self {
        self.ordering = ordering;
        self
    }

    /// How long in-flight work may finish after shutdown is requested (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long one settlement (an ack, a retry copy, a dead letter) may take (default
    /// 10 s), while running and once the shutdown deadline passed. A settlement still
    /// pending then is given up: counted in [`Summary::abandoned`] and
    /// [`Summary::settle_failures`], its slot and its key's lane freed, and the message
    /// left to the broker's redelivery (it was not settled, or not known to be).
    pub fn settle_timeout(mut self, timeout: Duration) -> Self {
        self.settle_timeout = timeout;
        self
    }

    /// Redelivery delay for a transient error or panic that no layer handled (default
    /// 1 s). The retry layer sets its own backoff.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The runtime's own attempt cap (default 10, at least 1): a transient error or a
    /// panic that no layer handled is retried after [`retry_delay`](Self::retry_delay)
    /// until the delivery's [`attempt`](Message::attempt) reaches `max`, then
    /// dead-lettered (`retries-exhausted`, or `handler-panic`). A retry layer decides
    /// before this and its own `max_attempts` wins; this cap is for stacks without one.
    pub fn max_attempts(mut self, max: u32) -> Self {
        self.max_attempts = max;
        self
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The consumer's live counts (settled, failed), for a
    /// [`StatusMonitor`](crate::status::StatusMonitor) or a health check; take it before
    /// [`run`](Self::run), which consumes the consumer.
    pub fn progress(&self) -> crate::status::Progress {
        self.progress.clone()
    }

    /// Runs until `shutdown` resolves or the subscriber ends, then drains and closes.
    ///
    /// Returns what happened, or the first error that stopped the consumer (invalid
    /// settings are reported before anything is pulled).
    pub async fn run<F>(self, shutdown: F) -> Result<Summary, Error>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.name.trim().is_empty() {
            return Err(Error::config("name", "the consumer name must not be empty"));
        }
        if self.max_in_flight == 0 {
            return Err(Error::config("max_in_flight", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(Error::config("max_attempts", "must be at least 1"));
        }
        let capabilities = self.subscriber.capabilities();
        let span = tracing::info_span!("consumer", name = %self.name, owner = self.owner.as_deref().unwrap_or("unowned"));
        let _enter = span.enter();
        tracing::info!(
            max_in_flight = self.max_in_flight,
            ordering = ?self.ordering,
            "consumer starting"
        );
        drop(_enter);

        let stamp = Arc::new(Stamp::with_progress(
            Arc::from(self.name.as_str()),
            self.progress.clone(),
        ));
        let limits = Limits {
            max_in_flight: self.max_in_flight,
            ordering: self.ordering,
            shutdown_timeout: self.shutdown_timeout,
            settle_timeout: self.settle_timeout,
            settling: Settling {
                retry_delay: self.retry_delay,
                native_dead_letter: capabilities.native_dead_letter,
                retry_in_lane: capabilities.retry_in_lane,
                max_attempts: self.max_attempts,
            },
            hand_back_on_stop: capabilities.redelivers_unacked,
            stamp: stamp.clone(),
            stop_when_idle: self.stop_when_idle,
        };
        let mut runner = Runner::new(self.subscriber, self.service, limits, Box::pin(shutdown));
        std::future::poll_fn(|cx| {
            let _enter = span.enter();
            runner.poll_run(cx)
        })
        .await;

        let mut summary = runner.summary;
        // Dead letters a layer published were settled `Ack`; count them as dead letters.
        let by_layer = stamp
            .dead_letters
            .load(std::sync::atomic::Ordering::Relaxed);
        summary.acked = summary.acked.saturating_sub(by_layer);
        summary.dead_lettered += by_layer;
        let error = runner.error.take();
        let closed = runner.into_subscriber().close().await;
        let _enter = span.enter();
        tracing::info!(?summary, "consumer stopped");
        match (error, closed) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(summary),
        }
    }
}

impl<S, Svc> fmt::Debug for Consumer<S, Svc> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("max_in_flight", &self.max_in_flight)
            .field("ordering", &self.ordering)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

/// What a consumer did during one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Deliveries pulled from the subscriber.
    pub received: u64,
    /// Settled `Ack` (not counting dead letters the dead-letter layer published).
    pub acked: u64,
    /// Settled `Retry` (including those interrupted by the shutdown deadline).
    pub retried: u64,
    /// `Retry` outcomes the runtime carried out itself, running the message again in its
    /// lane (adapters with [`Capabilities::retry_in_lane`](crate::adapter::Capabilities::retry_in_lane)).
    pub retried_in_lane: u64,
    /// Dead letters: settled `DeadLetter` through the adapter's native path, plus those a
    /// dead-letter layer published and acked (reported with
    /// [`Origin::count_dead_letter`](crate::Origin::count_dead_letter)).
    pub dead_lettered: u64,
    /// Settled `Drop`.
    pub dropped: u64,
    /// Settlements the adapter reported as failed (the broker redelivers those).
    pub settle_failures: u64,
    /// Deliveries the shutdown deadline interrupted (settled `Retry`).
    pub interrupted: u64,
    /// Settlements given up at the settle timeout (while running or at shutdown), left to
    /// the broker's redelivery.
    pub abandoned: u64,
    /// Errors the subscriber reported while continuing.
    pub source_errors: u64,
    /// Deliveries whose [`Lease`](crate::adapter::Lease) was revoked before they were
    /// done (a Kafka partition moved to another member): not run (again) here, settled
    /// `Retry` for the new owner to deliver.
    pub revoked: u64,
}
