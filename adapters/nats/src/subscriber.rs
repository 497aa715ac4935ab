//! Subscribers: a JetStream durable pull consumer, or a Core NATS (queue) subscription.
//!
//! **JetStream** is at-least-once: the subscriber pulls `batch` messages at a time from
//! the durable consumer (the broker hands the group at most `max_ack_pending` unacked
//! messages), each delivery's attempt is the broker's delivery count, and anything not
//! acked comes back. If the pull stream fails for good (the consumer was deleted, the
//! server refused a pull), the subscriber yields an `Err` and re-declares the topology and
//! pulls again with backoff (100 ms doubling to 5 s); it never ends by itself. Across a
//! server restart the client reconnects on its own and the pull resumes.
//!
//! Closing (or dropping) a JetStream subscriber hands back what it had fetched but not
//! handed out with a `Nak` delayed by 6 s: its last pull request (5 s expiry) stays open at
//! the server until then, and a message redelivered into it would only come back after
//! `ack_wait`. Other members of the group see handed-back messages about 6 s later.
//!
//! **Core NATS** is at-most-once: a message reaches the subscribers that exist when it is
//! published (one member per queue group), once, and is gone. Nothing is redelivered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{MessagesErrorKind, Stream as PullStream};
use async_nats::jetstream::Context as JetStream;
use async_nats::{Client, Subject};
use futures_util::{FutureExt, Stream, StreamExt};
use wharf::adapter::Description;
use wharf::adapter::{Capabilities, Delivery, Subscriber};
use wharf::{Error, MessageId, Origin};

use crate::acker::{CoreAcker, JetStreamAcker, NatsAcker, Progress, Shared};
use crate::config::JetStreamSource;
use crate::message::from_nats;
use crate::{error, topology};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Idle heartbeat of pull requests: a dead pull is noticed after two missed ones.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Expiry of each pull request. Short, because a closed subscriber's last request stays
/// open at the server until it expires, and whatever the server hands it meanwhile is
/// only redelivered after `ack_wait`.
pub(crate) const EXPIRES: Duration = Duration::from_secs(5);
/// Redelivery delay of messages handed back by a closed subscriber: after its last pull
/// request expired.
pub(crate) const HAND_BACK_DELAY: Duration = Duration::from_secs(6);

type Recreate = Pin<Box<dyn Future<Output = Result<PullStream, Error>> + Send>>;

#[allow(clippy::large_enum_variant)] // streaming is the common state: keep it inline
enum State {
    Streaming(PullStream),
    Waiting(Pin<Box<tokio::time::Sleep>>),
    Recreating(Recreate),
    Closed,
}

/// A member of a JetStream durable pull consumer; see the [module docs](self).
pub struct JetStreamSubscriber {
    shared: Arc<Shared>,
    source: Arc<JetStreamSource>,
    stream_name: Arc<str>,
    state: State,
    backoff: Duration,
}

impl std::fmt::Debug for JetStreamSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamSubscriber")
            .field("stream", &self.source.stream)
            .field("durable", &self.source.durable)
            .finish_non_exhaustive()
    }
}

/// What JetStream promises.
pub fn jetstream_capabilities() -> Capabilities {
    let mut c = Capabilities::default();
    c.acknowledgements = true;
    c.persistent = true;
    c.redelivers_unacked = true;
    c.ordered_per_key = true;
    c.competing_consumers = true;
    c.fan_out_groups = true;
    c.native_delay = true;
    c.broker_attempt_count = true;
    c.native_dead_letter = true;
    c.retains_before_subscribe = true;
    c
}

async fn pull(js: JetStream, source: Arc<JetStreamSource>) -> Result<PullStream, Error> {
    let consumer = topology::declare(&js, &source).await?;
    consumer
        .stream()
        .max_messages_per_batch(source.batch as usize)
        .heartbeat(HEARTBEAT)
        .expires(EXPIRES)
        .messages()
        .await
        .map_err(|e| error::subscribe(format!("pulling from durable `{}`", source.durable), e))
}

impl JetStreamSubscriber {
    /// Declares the topology and starts pulling.
    pub(crate) async fn start(
        client: Client,
        js: JetStream,
        source: JetStreamSource,
    ) -> Result<Self, Error> {
        let source = Arc::new(source);
        let stream = pull(js.clone(), source.clone()).await?;
        let progress = source
            .progress
            .then(|| Progress::start(client.clone(), source.ack_wait / 3));
        let shared = Arc::new(Shared {
            client,
            js,
            dead_letter_subject: source.dead_letter_subject.as_str().into(),
            consumer: source.durable.as_str().into(),
            progress,
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        Ok(JetStreamSubscriber {
            shared,
            stream_name: source.stream.as_str().into(),
            source,
            state: State::Streaming(stream),
            backoff: BACKOFF_MIN,
        })
    }

    /// The stream name.
    pub fn stream(&self) -> &str {
        &self.source.stream
    }

    /// The durable consumer name.
    pub fn durable(&self) -> &str {
        &self.source.durable
    }

    fn deliver(
        &self,
        msg: async_nats::jetstream::Message,
    ) -> Result<Delivery<JetStreamAcker>, Error> {
        let info = msg
            .message
            .reply
            .as_deref()
            .and_then(crate::message::delivery_info)
            .ok_or_else(|| {
                error::subscribe(
                    "reading the JetStream metadata of a delivery",
                    "the reply subject is not a `$JS.ACK` subject",
                )
            })?;
        let (attempt, seq) = (info.delivered, info.stream_sequence);
        let async_nats::Message {
            payload,
            headers,
            reply,
            ..
        } = msg.message;
        let reply = reply.ok_or_else(|| {
            error::subscribe(
                "receiving",
                "a JetStream delivery without a reply subject cannot be acked",
            )
        })?;
        let stream = &self.stream_name;
        let message = from_nats(
            payload,
            headers.as_ref(),
            Origin::new(stream.clone()).with_offset(seq),
            u32::try_from(attempt.max(1)).unwrap_or(u32::MAX),
            || MessageId::from_position(stream, ':', &[seq]),
        );
        let acker = JetStreamAcker::new(self.shared.clone(), reply, message.clone());
        Ok(Delivery::new(message, acker))
    }

    /// Stops pulling and takes the reply subjects of what the pull stream had already
    /// buffered (without waiting), to hand those messages back.
    fn stop(&mut self) -> Vec<Subject> {
        let State::Streaming(mut stream) = std::mem::replace(&mut self.state, State::Closed) else {
            return Vec::new();
        };
        let mut replies: Vec<Subject> = Vec::new();
        while let Some(Some(item)) = stream.next().now_or_never() {
            if let Ok(mut msg) = item {
                if let Some(reply) = msg.message.reply.take() {
                    replies.push(reply);
                }
            }
        }
        replies
    }
}

/// Naks every delivery in `replies`, then flushes. The redelivery waits until this
/// subscriber's last pull request has expired, or the server could hand the messages
/// straight back to it (nats-server 2.9 delivers to a request whose subscriber is gone,
/// and a message delivered that way can even come back twice).
async fn hand_back(client: &Client, replies: Vec<Subject>) -> Result<(), Error> {
    for reply in replies {
        client
            .publish(
                reply,
                async_nats::jetstream::AckKind::Nak(Some(HAND_BACK_DELAY)).into(),
            )
            .await
            .map_err(|e| error::connection("handing back prefetched messages", e))?;
    }
    // Acks are buffered in the client too: send everything before the caller moves on.
    client
        .flush()
        .await
        .map_err(|e| error::connection("flushing acks", e))
}

impl Stream for JetStreamSubscriber {
    type Item = Result<Delivery<JetStreamAcker>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Closed => return Poll::Ready(None),
                State::Streaming(stream) => match stream.poll_next_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(msg))) => {
                        this.backoff = BACKOFF_MIN;
                        return Poll::Ready(Some(this.deliver(msg)));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        // Heartbeat misses and pull failures are reported; the stream goes
                        // on. A terminal error ends the stream, handled below.
                        let terminal = matches!(
                            e.kind(),
                            MessagesErrorKind::ConsumerDeleted
                                | MessagesErrorKind::PushBasedConsumer
                                | MessagesErrorKind::RequestLimitExceeded
                        );
                        if terminal {
                            this.state = State::Waiting(Box::pin(tokio::time::sleep(this.backoff)));
                        }
                        return Poll::Ready(Some(Err(error::subscribe(
                            format!("pulling from durable `{}`", this.source.durable),
                            e,
                        ))));
                    }
                    Poll::Ready(None) => {
                        tracing::warn!(
                            durable = %this.source.durable,
                            "the JetStream pull stream ended; pulling again"
                        );
                        this.state = State::Waiting(Box::pin(tokio::time::sleep(this.backoff)));
                    }
                },
                State::Waiting(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.backoff = (this.backoff * 2).min(BACKOFF_MAX);
                    this.state = State::Recreating(Box::pin(pull(
                        this.shared.js.clone(),
                        this.source.clone(),
                    )));
                }
                State::Recreating(fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(stream)) => this.state = State::Streaming(stream),
                    Poll::Ready(Err(e)) => {
                        this.state = State::Waiting(Box::pin(tokio::time::sleep(this.backoff)));
                        return Poll::Ready(Some(Err(e)));
                    }
                },
            }
        }
    }
}

impl Subscriber for JetStreamSubscriber {
    type Acker = JetStreamAcker;

    fn capabilities(&self) -> Capabilities {
        jetstream_capabilities()
    }

    fn describe(&self) -> Description {
        Description::new(
            "nats-jetstream",
            format!("{} (stream {})", self.source.subject, self.source.stream),
        )
        .group(&self.source.durable)
        .dead_letters(&self.source.dead_letter_subject)
    }

    async fn close(mut self) -> Result<(), Error> {
        // Hand back before returning, so the next member of the group gets them soon.
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let replies = self.stop();
        hand_back(&self.shared.client, replies).await
    }
}

impl Drop for JetStreamSubscriber {
    fn drop(&mut self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let replies = self.stop();
        if replies.is_empty() {
            return;
        }
        // Best effort: without a runtime, ack_wait expiry brings them back.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let client = self.shared.client.clone();
            handle.spawn(async move {
                let _ = hand_back(&client, replies).await;
            });
        }
    }
}

// ===== Core =====

/// A Core NATS subscription (a queue-group member when a queue group is set); see the
/// [module docs](self).
pub struct CoreSubscriber {
    client: Client,
    subscription: Option<async_nats::Subscriber>,
    pattern: Arc<str>,
    grouped: bool,
    queue_group: Option<String>,
    /// The subject of the last message, shared by the next one on the same subject (one
    /// allocation per subject change instead of one per message).
    last_subject: Option<Arc<str>>,
}

impl std::fmt::Debug for CoreSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreSubscriber")
            .field("subject", &self.pattern)
            .field("queue_group", &self.grouped)
            .finish_non_exhaustive()
    }
}

/// What Core NATS promises (`grouped`: a queue group is set).
pub fn core_capabilities(grouped: bool) -> Capabilities {
    let mut c = Capabilities::default();
    c.acknowledgements = false;
    c.persistent = false;
    c.redelivers_unacked = false;
    // One publisher's messages reach a subscriber in publish order.
    c.ordered_per_key = true;
    c.competing_consumers = grouped;
    c.fan_out_groups = true;
    // Core cannot redeliver: the runtime carries out every `Retry` itself, in the
    // message's lane, with `Message::attempt` raised per run, so a retry policy counts
    // its attempts and dead-letters what it gives up on instead of losing it.
    c.retry_in_lane = true;
    c
}

impl CoreSubscriber {
    /// Subscribes (and flushes, so the server knows the subscription before this returns).
    pub(crate) async fn start(
        client: Client,
        subject: &str,
        queue_group: Option<&str>,
    ) -> Result<Self, Error> {
        let what = || format!("subscribing to `{subject}`");
        let subscription = match queue_group {
            Some(group) => client
                .queue_subscribe(subject.to_owned(), group.to_owned())
                .await
                .map_err(|e| error::subscribe(what(), e))?,
            None => client
                .subscribe(subject.to_owned())
                .await
                .map_err(|e| error::subscribe(what(), e))?,
        };
        client
            .flush()
            .await
            .map_err(|e| error::subscribe(what(), e))?;
        Ok(CoreSubscriber {
            client,
            subscription: Some(subscription),
            pattern: subject.into(),
            grouped: queue_group.is_some(),
            queue_group: queue_group.map(str::to_owned),
            last_subject: None,
        })
    }
}

impl Stream for CoreSubscriber {
    type Item = Result<Delivery<CoreAcker>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(sub) = this.subscription.as_mut() else {
            return Poll::Ready(None);
        };
        match sub.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(msg)) => {
                let subject = match &this.last_subject {
                    Some(last) if **last == *msg.subject.as_str() => last.clone(),
                    _ => {
                        let subject: Arc<str> = msg.subject.as_str().into();
                        this.last_subject = Some(subject.clone());
                        subject
                    }
                };
                let message = from_nats(
                    msg.payload,
                    msg.headers.as_ref(),
                    Origin::new(subject),
                    1,
                    MessageId::random,
                );
                let acker = CoreAcker::new(message.id().clone(), this.pattern.clone());
                Poll::Ready(Some(Ok(Delivery::new(message, acker))))
            }
        }
    }
}

impl Subscriber for CoreSubscriber {
    type Acker = CoreAcker;

    fn capabilities(&self) -> Capabilities {
        core_capabilities(self.grouped)
    }

    fn describe(&self) -> Description {
        let description = Description::new("nats", &*self.pattern);
        match &self.queue_group {
            Some(group) => description.group(group),
            None => description,
        }
    }

    async fn close(mut self) -> Result<(), Error> {
        // Messages already received but not handed out are lost: Core keeps nothing.
        if let Some(mut sub) = self.subscription.take() {
            let _ = sub.unsubscribe().await;
        }
        self.client
            .flush()
            .await
            .map_err(|e| error::connection("flushing", e))
    }
}

// ===== Either =====

/// A subscriber of either kind, as the client's URL chose: what
/// [`NatsClient::subscriber`](crate::NatsClient::subscriber) returns, so code works the
/// same on `nats://` and `nats+jetstream://`.
// One per consumer, moved once into the runtime: the size of the larger variant costs
// nothing per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum NatsSubscriber {
    /// Core NATS (`nats://`): at-most-once.
    Core(CoreSubscriber),
    /// JetStream (`nats+jetstream://`): at-least-once.
    JetStream(JetStreamSubscriber),
}

impl Stream for NatsSubscriber {
    type Item = Result<Delivery<NatsAcker>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut *self {
            NatsSubscriber::Core(s) => s
                .poll_next_unpin(cx)
                .map_ok(|d| d.map_acker(NatsAcker::Core)),
            NatsSubscriber::JetStream(s) => s
                .poll_next_unpin(cx)
                .map_ok(|d| d.map_acker(NatsAcker::JetStream)),
        }
    }
}

impl Subscriber for NatsSubscriber {
    type Acker = NatsAcker;

    fn capabilities(&self) -> Capabilities {
        match self {
            NatsSubscriber::Core(s) => s.capabilities(),
            NatsSubscriber::JetStream(s) => s.capabilities(),
        }
    }

    fn describe(&self) -> Description {
        match self {
            NatsSubscriber::Core(s) => s.describe(),
            NatsSubscriber::JetStream(s) => s.describe(),
        }
    }

    async fn close(self) -> Result<(), Error> {
        match self {
            NatsSubscriber::Core(s) => s.close().await,
            NatsSubscriber::JetStream(s) => s.close().await,
        }
    }
}
