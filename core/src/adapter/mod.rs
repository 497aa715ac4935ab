//! The traits a broker adapter implements.
//!
//! An adapter gives the runtime three things:
//!
//! - a [`Subscriber`]: a stream of [`Delivery`]s, each a [`Message`] plus an [`Acker`];
//! - an [`Acker`] per delivery that settles it exactly once with the final [`Outcome`];
//! - a [`Publisher`] that returns only once the broker confirmed the message, used for
//!   producing, for redelivery copies and for dead letters.
//!
//! plus [`Capabilities`] saying honestly what the broker promises.
//!
//! # The acker contract
//!
//! - `settle` is called at most once per delivery, by the runtime.
//! - `Ack` removes the message; `Retry { after }` makes it come back after about `after`
//!   (natively where the broker can, without blocking other messages) with its attempt
//!   count incremented; `DeadLetter` goes to the adapter's native dead-letter path, where
//!   it has one (see [`Capabilities::native_dead_letter`]); `Drop` removes it.
//! - Adapters that declare [`Capabilities::retry_in_lane`] get `Retry` only when the
//!   consumer is stopping: the runtime carries out retries itself in the message's lane.
//! - **Dropping an unsettled acker must not lose the message**: the broker redelivers it
//!   (an AMQP channel closes, a Kafka offset is not committed, an in-memory message goes
//!   back to the queue). That is the guarantee behind "nothing in flight is lost on a
//!   crash".
//! - A delivery the broker can take away while it is in flight (a revoked Kafka
//!   partition) has a [`Lease`] ([`Acker::lease`]). Once the adapter revokes it, the
//!   runtime runs nothing more of that delivery in this process: a waiting in-lane retry
//!   is cancelled at once, a `Retry` is not run again, a delivery still queued behind its
//!   lane is not started. Each is settled `Retry` (which the acker of a revoked delivery
//!   ignores) and counted in [`Summary::revoked`](crate::Summary::revoked); the new
//!   owner delivers it again.

mod backlog;
pub mod broker_url;
mod client;
pub mod dead_letter;
pub mod secret;

pub use backlog::{Backlog, PartitionBacklog};
pub use client::{Client, DeadLetterReader};

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::Stream;

use crate::error::{BoxError, Error, PublishError};
use crate::message::Message;
use crate::outcome::Outcome;

/// A received message and the handle that settles it.
#[derive(Debug)]
pub struct Delivery<A> {
    message: Message,
    acker: A,
}

impl<A> Delivery<A> {
    /// A delivery of `message` settled through `acker`.
    pub fn new(message: Message, acker: A) -> Self {
        Delivery { message, acker }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Splits into message and acker.
    pub fn into_parts(self) -> (Message, A) {
        (self.message, self.acker)
    }

    /// The same delivery with its acker wrapped by `f` (an adapter that wraps several
    /// others in one type, such as an enum over them).
    pub fn map_acker<B>(self, f: impl FnOnce(A) -> B) -> Delivery<B> {
        Delivery {
            message: self.message,
            acker: f(self.acker),
        }
    }
}

/// Settles one delivery.
///
/// See the [module docs](self#the-acker-contract) for the contract.
pub trait Acker: Send + 'static {
    /// The future `settle` returns. Adapters that need no I/O return a ready future
    /// (`std::future::Ready`); others usually box theirs. `Unpin` lets the runtime poll
    /// a settlement once in place and queue it only if it is not done at once.
    type Future: Future<Output = Result<(), BoxError>> + Send + Unpin + 'static;

    /// Settles the delivery with the final outcome.
    fn settle(self, outcome: Outcome) -> Self::Future;

    /// The delivery's lease, for adapters whose broker can take a delivery away from this
    /// consumer while it is in flight (see the [module docs](self#the-acker-contract));
    /// `None` (the default) when it cannot.
    fn lease(&self) -> Option<&Lease> {
        None
    }
}

/// Whether a delivery still belongs to this consumer.
///
/// An adapter gives every delivery of one partition (or other unit the broker can
/// reassign) a clone of one lease and [`revoke`](Lease::revoke)s it when the broker
/// takes the unit away; the runtime then stops working on those deliveries. Cheap to
/// clone (one reference count).
#[derive(Debug, Clone, Default)]
pub struct Lease {
    inner: Arc<LeaseState>,
}

#[derive(Debug, Default)]
struct LeaseState {
    revoked: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Lease {
    /// A lease that holds until revoked.
    pub fn new() -> Self {
        Lease::default()
    }

    /// Takes the deliveries under this lease away from the consumer.
    pub fn revoke(&self) {
        self.inner.revoked.store(true, AtomicOrdering::Release);
        self.inner.notify.notify_waiters();
    }

    /// Whether the lease was revoked (one atomic load: checked for every delivery).
    pub fn is_revoked(&self) -> bool {
        self.inner.revoked.load(AtomicOrdering::Acquire)
    }

    /// Resolves once the lease is revoked.
    pub fn revoked(&self) -> impl Future<Output = ()> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            loop {
                let notified = inner.notify.notified();
                tokio::pin!(notified);
                // Registered before the check, so a revoke between the two is not missed.
                notified.as_mut().enable();
                if inner.revoked.load(AtomicOrdering::Acquire) {
                    return;
                }
                notified.await;
            }
        }
    }
}

/// A stream of deliveries from one source (queue, topic subscription, subject).
///
/// The stream yields `Err` for problems the adapter reports but survives (a failed
/// reconnect attempt, say); it ends (`None`) when the subscription is closed for good.
/// An adapter that cannot go on (its client is unusable) yields the error and then ends:
/// the consumer drains what it holds and [`run`](crate::Consumer::run) returns that
/// error, so the process stops visibly instead of waiting for messages that never come.
/// The runtime pulls only when it has room for another message, so an adapter should
/// fetch no more than its prefetch ahead.
pub trait Subscriber:
    Stream<Item = Result<Delivery<<Self as Subscriber>::Acker>, Error>> + Send + Unpin + 'static
{
    /// The acker of this adapter's deliveries.
    type Acker: Acker;

    /// What the broker promises.
    fn capabilities(&self) -> Capabilities;

    /// What this subscriber reads and where its dead letters go, for the consumer
    /// catalog ([`App::catalog`](crate::App::catalog)). The default says nothing.
    fn describe(&self) -> Description {
        Description::default()
    }

    /// Closes the subscription after the runtime has settled everything it received.
    /// Messages fetched but never handed out go back to the broker.
    fn close(self) -> impl Future<Output = Result<(), Error>> + Send
    where
        Self: Sized;
}

/// Publishes messages and waits for the broker's confirmation.
///
/// Object-safe, so layers can hold an `Arc<dyn Publisher>`.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publishes `message` to `destination` (a topic, queue, subject or exchange routing
    /// key, as the adapter documents) and returns once the broker confirmed it.
    ///
    /// The message keeps its id (as the broker's message id or the `wharf-message-id`
    /// header), key, headers and payload. A failure hands the message back.
    async fn publish(&self, destination: &str, message: Message) -> Result<(), PublishError>;

    /// The largest message the broker accepts from this publisher, as counted by
    /// [`dead_letter::encoded_len`] (payload, key and
    /// headers), with the broker's own framing already subtracted; `None` if the adapter
    /// knows no limit. The dead-letter paths cut their copies to fit it
    /// ([`dead_letter::fit`]).
    fn max_message_bytes(&self) -> Option<usize> {
        None
    }
}

#[async_trait]
impl<P: Publisher + ?Sized> Publisher for Arc<P> {
    async fn publish(&self, destination: &str, message: Message) -> Result<(), PublishError> {
        (**self).publish(destination, message).await
    }

    fn max_message_bytes(&self) -> Option<usize> {
        (**self).max_message_bytes()
    }
}

#[async_trait]
impl<P: Publisher + ?Sized> Publisher for Box<P> {
    async fn publish(&self, destination: &str, message: Message) -> Result<(), PublishError> {
        (**self).publish(destination, message).await
    }

    fn max_message_bytes(&self) -> Option<usize> {
        (**self).max_message_bytes()
    }
}

/// What a broker promises, as declared by its adapter.
///
/// Tests (the conformance suite) and layers read it; it is never a place to be
/// optimistic. Start from [`Capabilities::default`] (nothing promised) and set what holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Settlements mean something: an unacked message is not lost. (Core NATS: `false`.)
    pub acknowledgements: bool,
    /// Messages survive a broker restart.
    pub persistent: bool,
    /// A message left unsettled when its subscriber closes is delivered again.
    pub redelivers_unacked: bool,
    /// Messages with the same key are delivered in publish order.
    pub ordered_per_key: bool,
    /// Subscribers in one group share the messages (competing consumers).
    pub competing_consumers: bool,
    /// Separate groups each receive every message.
    pub fan_out_groups: bool,
    /// `Retry { after }` delays the message natively without blocking other messages.
    pub native_delay: bool,
    /// The broker counts delivery attempts (so `Message::attempt` survives a crash).
    pub broker_attempt_count: bool,
    /// `DeadLetter` settled without a dead-letter layer goes to a native dead-letter place.
    pub native_dead_letter: bool,
    /// Messages published before a group first subscribes are delivered to it, once the
    /// adapter's topology for the group exists.
    pub retains_before_subscribe: bool,
    /// The runtime, not the broker, carries out `Retry { after }`.
    ///
    /// For brokers that settle a position rather than a message (a Kafka partition's
    /// committed offset), putting one message back would mean holding or re-reading
    /// everything after it; brokers that cannot redeliver at all (Core NATS) would lose
    /// it. Where the broker cannot redeliver ([`redelivers_unacked`](Self::redelivers_unacked)
    /// unset), the runtime also keeps retrying while it drains at shutdown, until the
    /// shutdown deadline. With this set, the [`Consumer`](crate::Consumer) keeps a
    /// delivery that came back `Retry` unsettled, waits `after` while holding the
    /// message's key lane (other keys keep flowing), and runs it again with its attempt
    /// raised by one. The acker sees only the final outcome, or `Retry` when the consumer
    /// is stopping, which means "leave it for the broker to deliver again" (the offset
    /// is not committed past it).
    pub retry_in_lane: bool,
}

/// What a subscriber reads and where its dead letters go, as
/// [`Subscriber::describe`] reports it for the consumer catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Description {
    /// The adapter: `memory`, `rabbitmq`, `kafka`, `nats`, `nats-jetstream`; empty when
    /// the subscriber does not say.
    pub broker: &'static str,
    /// What it reads: a queue, topic(s), subject or stream.
    pub source: String,
    /// Its consumer group (a Kafka group, a durable consumer, a queue group), where the
    /// broker has one apart from the source.
    pub group: Option<String>,
    /// Where dead letters go: the adapter's native dead-letter destination, which the
    /// dead-letter layer's default (`<source>.dlq`) also points to; `None` where the
    /// broker keeps none (Core NATS).
    pub dead_letters: Option<String>,
}

impl Description {
    /// A description of `broker` reading `source`.
    pub fn new(broker: &'static str, source: impl Into<String>) -> Self {
        Description {
            broker,
            source: source.into(),
            group: None,
            dead_letters: None,
        }
    }

    /// With the consumer group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// With the dead-letter destination.
    pub fn dead_letters(mut self, destination: impl Into<String>) -> Self {
        self.dead_letters = Some(destination.into());
        self
    }
}
