//! Consuming a RabbitMQ queue, with reconnects.
//!
//! [`RabbitSubscriber::connect`] opens a connection, declares (or verifies) the
//! [topology](crate::topology), sets `basic.qos(prefetch)` and starts `basic.consume`.
//! The prefetch bounds the deliveries the broker sends ahead of the acks: give it at
//! least the consumer's `max_in_flight`.
//!
//! **Reconnects.** When the connection or the consumer's channel fails (a broker
//! restart, `rabbitmqctl close_all_connections`, a network cut), the stream yields one
//! `Err` for the failure and starts over: wait (100 ms, doubled per failed attempt up
//! to 10 s by default), connect, re-declare, consume. Each failed attempt is another
//! `Err` item; the stream never ends on its own. Deliveries handed out before the drop
//! cannot be settled any more (their settlements fail as
//! [`RabbitError::StaleChannel`] and are counted in
//! [`SubscriberStats`]); the broker redelivers them, so put the deduplication layer in
//! the stack. lapin's own auto-recovery is not used: the adapter rebuilds connection,
//! channels and consumer itself.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Stream, StreamExt};
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use wharf::adapter::Description;
use wharf::adapter::{Capabilities, Delivery, Subscriber};
use wharf::Error;

use crate::acker::RabbitAcker;
use crate::config::{QueueType, RabbitConfig};
use crate::error::{timeout, RabbitError};
use crate::message::from_amqp;
use crate::topology::Topology;

/// Counters of one subscriber, shared with its ackers.
#[derive(Debug, Default)]
pub struct SubscriberStats {
    pub(crate) reconnects: AtomicU64,
    pub(crate) failed_connects: AtomicU64,
    pub(crate) stale_settlements: AtomicU64,
    pub(crate) failed_settlements: AtomicU64,
}

impl SubscriberStats {
    /// Successful reconnects after a lost connection.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Connection attempts that failed (each was an `Err` item of the stream).
    pub fn failed_connects(&self) -> u64 {
        self.failed_connects.load(Ordering::Relaxed)
    }

    /// Settlements not sent because their channel was gone (lapin's `Ok(false)`); the
    /// broker redelivers those messages.
    pub fn stale_settlements(&self) -> u64 {
        self.stale_settlements.load(Ordering::Relaxed)
    }

    /// Settlements that failed otherwise (an AMQP error, a copy that could not be
    /// published and was requeued).
    pub fn failed_settlements(&self) -> u64 {
        self.failed_settlements.load(Ordering::Relaxed)
    }
}

/// What the ackers of one connection share.
pub(crate) struct Session {
    /// The consuming connection: deliveries and their acks.
    pub(crate) connection: Connection,
    /// A connection of its own for retry copies and dead letters. RabbitMQ blocks a
    /// connection that publishes during a memory or disk alarm (it stops reading its
    /// socket); on the consuming connection that would stop every ack and so every
    /// delivery. Kept apart, a blocked copy holds only its own delivery.
    pub(crate) copies: Connection,
    /// Confirm-mode channel of `copies`.
    pub(crate) publish: Channel,
    pub(crate) topology: Arc<Topology>,
    pub(crate) consumer_name: Arc<str>,
    pub(crate) stats: Arc<SubscriberStats>,
}

/// A consuming connection.
struct Live {
    session: Arc<Session>,
    channel: Channel,
    consumer: lapin::Consumer,
}

enum State {
    Live(Box<Live>),
    Waiting(Pin<Box<tokio::time::Sleep>>),
    Connecting(BoxFuture<'static, Result<Live, RabbitError>>),
    Closed,
}

/// A consumer of one RabbitMQ queue: a stream of deliveries that survives reconnects.
///
/// Subscribers of the same queue are competing consumers; a queue per consumer group,
/// bound to one exchange, gives each group every message.
pub struct RabbitSubscriber {
    config: Arc<RabbitConfig>,
    topology: Arc<Topology>,
    queue: Arc<str>,
    consumer_name: Arc<str>,
    stats: Arc<SubscriberStats>,
    state: State,
    failures: u32,
}

impl fmt::Debug for RabbitSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitSubscriber")
            .field("queue", &self.queue)
            .field(
                "state",
                &match self.state {
                    State::Live(_) => "live",
                    State::Waiting(_) => "waiting to reconnect",
                    State::Connecting(_) => "connecting",
                    State::Closed => "closed",
                },
            )
            .finish_non_exhaustive()
    }
}

/// The capabilities of a subscriber of `queue_type` queues.
pub fn capabilities(queue_type: QueueType) -> Capabilities {
    let mut c = Capabilities::default();
    c.acknowledgements = true;
    c.persistent = true;
    c.redelivers_unacked = true;
    // A queue delivers in publish order to its consumer; redeliveries and competing
    // consumers reorder (as on every broker), and the runtime's key lanes keep one key's
    // messages one after another.
    c.ordered_per_key = true;
    c.competing_consumers = true;
    c.fan_out_groups = true;
    c.native_delay = true;
    c.broker_attempt_count = queue_type == QueueType::Quorum;
    c.native_dead_letter = true;
    c.retains_before_subscribe = true;
    c
}

async fn start(
    config: Arc<RabbitConfig>,
    topology: Arc<Topology>,
    consumer_name: Arc<str>,
    stats: Arc<SubscriberStats>,
) -> Result<Live, RabbitError> {
    let connection = crate::connection::connect(&config, "subscriber").await?;
    let copies = match crate::connection::connect(&config, "subscriber-copies").await {
        Ok(copies) => copies,
        Err(e) => {
            let _ = connection.close(200, "OK".into()).await;
            return Err(e);
        }
    };
    let setup = async {
        let channel = crate::connection::channel(&connection).await?;
        topology.declare_inner(&channel).await?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| RabbitError::amqp("setting the prefetch (basic.qos)", e))?;
        let publish = crate::connection::confirm_channel(&copies).await?;
        let consumer = channel
            .basic_consume(
                topology.work_queue().into(),
                config.consumer_tag.as_deref().unwrap_or("").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                RabbitError::amqp(format!("consuming queue `{}`", topology.work_queue()), e)
            })?;
        Ok::<_, RabbitError>((channel, publish, consumer))
    };
    let (channel, publish, consumer) =
        match timeout(config.connect_timeout, "setting up the consumer", setup).await {
            Ok(parts) => parts,
            Err(e) => {
                let _ = connection.close(200, "OK".into()).await;
                let _ = copies.close(200, "OK".into()).await;
                return Err(e);
            }
        };
    Ok(Live {
        session: Arc::new(Session {
            connection,
            copies,
            publish,
            topology,
            consumer_name,
            stats,
        }),
        channel,
        consumer,
    })
}

impl RabbitSubscriber {
    /// Connects, declares (or verifies) the topology and starts consuming
    /// `config.queue()`. Fails at once on an invalid configuration, an unreachable broker
    /// or a topology that cannot be declared; later failures are reconnected.
    pub async fn connect(config: &RabbitConfig) -> Result<Self, Error> {
        let topology = Arc::new(Topology::new(config)?);
        let config = Arc::new(config.clone());
        let queue: Arc<str> = topology.work_queue().into();
        let consumer_name: Arc<str> = config
            .consumer_tag
            .as_deref()
            .map_or(queue.clone(), Into::into);
        let stats = Arc::new(SubscriberStats::default());
        let live = start(
            config.clone(),
            topology.clone(),
            consumer_name.clone(),
            stats.clone(),
        )
        .await
        .map_err(|e| match e {
            RabbitError::Amqp { ref doing, .. } if doing.starts_with("connecting") => {
                Error::Connection(Box::new(e))
            }
            RabbitError::Timeout { .. } => Error::Connection(Box::new(e)),
            other => Error::Subscribe(Box::new(other)),
        })?;
        Ok(RabbitSubscriber {
            config,
            topology,
            queue,
            consumer_name,
            stats,
            state: State::Live(Box::new(live)),
            failures: 0,
        })
    }

    /// The work queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The topology consumed.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The counters (reconnects, settlements that could not be sent), shared: keep the
    /// `Arc` to read them after the subscriber moved into a consumer.
    pub fn stats(&self) -> Arc<SubscriberStats> {
        self.stats.clone()
    }

    fn backoff(&self) -> Duration {
        let (min, max) = (self.config.reconnect_min, self.config.reconnect_max);
        let factor = 1u32 << self.failures.min(16);
        min.saturating_mul(factor).min(max)
    }

    fn reconnect_after_failure(&mut self) {
        let wait = self.backoff();
        self.failures = self.failures.saturating_add(1);
        self.state = State::Waiting(Box::pin(tokio::time::sleep(wait)));
    }
}

impl Stream for RabbitSubscriber {
    type Item = Result<Delivery<RabbitAcker>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Closed => return Poll::Ready(None),
                State::Live(live) if !live.session.publish.status().connected() => {
                    // The copies' connection is gone: without it retries and dead
                    // letters would only requeue. Reconnect both.
                    tracing::warn!(queue = %this.queue, "the connection for retry copies and dead letters was lost; reconnecting");
                    this.reconnect_after_failure();
                    return Poll::Ready(Some(Err(Error::Connection(
                        format!(
                            "the copies' connection of queue `{}` was lost; reconnecting",
                            this.queue
                        )
                        .into(),
                    ))));
                }
                State::Live(live) => match live.consumer.poll_next_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(d))) => {
                        let message = from_amqp(&d.properties, d.data, d.redelivered, &this.queue);
                        let acker = RabbitAcker::new(
                            d.acker,
                            message.clone(),
                            d.properties,
                            live.session.clone(),
                        );
                        return Poll::Ready(Some(Ok(Delivery::new(message, acker))));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        tracing::warn!(queue = %this.queue, error = %e, "consumer failed; reconnecting");
                        this.reconnect_after_failure();
                        return Poll::Ready(Some(Err(Error::Connection(Box::new(
                            RabbitError::amqp(format!("consuming queue `{}`", this.queue), e),
                        )))));
                    }
                    Poll::Ready(None) => {
                        tracing::warn!(queue = %this.queue, "consumer cancelled; reconnecting");
                        this.reconnect_after_failure();
                        return Poll::Ready(Some(Err(Error::Subscribe(
                            format!(
                                "the consumer of queue `{}` was cancelled (connection lost, or \
                                 the queue deleted); reconnecting",
                                this.queue
                            )
                            .into(),
                        ))));
                    }
                },
                State::Waiting(sleep) => {
                    if sleep.poll_unpin(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.state = State::Connecting(Box::pin(start(
                        this.config.clone(),
                        this.topology.clone(),
                        this.consumer_name.clone(),
                        this.stats.clone(),
                    )));
                }
                State::Connecting(fut) => match fut.poll_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(live)) => {
                        tracing::info!(queue = %this.queue, "reconnected");
                        this.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        this.failures = 0;
                        this.state = State::Live(Box::new(live));
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::warn!(queue = %this.queue, error = %e, "reconnect failed");
                        this.stats.failed_connects.fetch_add(1, Ordering::Relaxed);
                        this.reconnect_after_failure();
                        return Poll::Ready(Some(Err(Error::Connection(Box::new(e)))));
                    }
                },
            }
        }
    }
}

impl Subscriber for RabbitSubscriber {
    type Acker = RabbitAcker;

    fn capabilities(&self) -> Capabilities {
        capabilities(self.config.queue_type)
    }

    fn describe(&self) -> Description {
        Description::new("rabbitmq", self.topology.work_queue())
            .dead_letters(self.topology.dead_letter_queue())
    }

    /// Cancels the consumer and closes channels and connection: deliveries the broker
    /// sent ahead (prefetched, never handed out) and any left unsettled go back to the
    /// queue.
    async fn close(mut self) -> Result<(), Error> {
        if let State::Live(live) = std::mem::replace(&mut self.state, State::Closed) {
            let _ = live
                .channel
                .basic_cancel(live.consumer.tag(), BasicCancelOptions::default())
                .await;
            let _ = live.channel.close(200, "OK".into()).await;
            let _ = live.session.publish.close(200, "OK".into()).await;
            let _ = live.session.connection.close(200, "OK".into()).await;
            let _ = live.session.copies.close(200, "OK".into()).await;
        }
        Ok(())
    }
}

impl Drop for RabbitSubscriber {
    fn drop(&mut self) {
        // Close the consuming channel now (the broker requeues what it holds); the
        // connection closes once the last acker of this session is gone.
        if let State::Live(live) = std::mem::replace(&mut self.state, State::Closed) {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = live.channel.close(200, "OK".into()).await;
                    drop(live);
                });
            }
        }
    }
}
