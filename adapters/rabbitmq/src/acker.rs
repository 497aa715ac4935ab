//! Settling RabbitMQ deliveries.
//!
//! | outcome | what the acker does |
//! |---|---|
//! | `Ack`, `Drop` | `basic.ack` of this delivery (never `multiple`) |
//! | `Retry { after }` | publishes a copy (same id, key, headers, payload; `wharf-attempt` = attempt + 1) to the retry tier for `after`, waits for the publisher confirm, **then** acks the original. On a quorum queue, `after = 0` is a `basic.reject(requeue)` instead (the broker counts the attempt). |
//! | `DeadLetter(failure)` | publishes the dead-letter copy (the `wharf-dlq-*` headers, as written by [`wharf::adapter::dead_letter::dead_letter_message`]) to `<queue>.dlq`, waits for the confirm, then acks |
//!
//! Confirm-then-ack can duplicate a message (a crash between the two) but never loses
//! one. When the copy cannot be published, the original is `basic.nack`ed with requeue
//! and the settlement fails: the message comes back at once, nothing is lost.
//!
//! A settlement whose channel is gone (closed, or replaced by a reconnect) cannot be
//! sent: lapin reports it as `Ok(false)`. The acker logs it, counts it in
//! [`SubscriberStats::stale_settlements`](crate::SubscriberStats::stale_settlements) and
//! fails the settlement with [`RabbitError::StaleChannel`]; the broker redelivers the
//! message (deduplication absorbs the copy).
//!
//! **Dropping an unsettled acker** nacks the delivery with requeue (best effort, on the
//! current tokio runtime): the message goes back to the queue at once. Without a runtime,
//! or when the channel is already gone, nothing needs doing: the broker requeues every
//! unacked delivery when its channel closes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::BasicProperties;
use wharf::adapter::dead_letter::{dead_letter_message, DEFAULT_MAX_ERROR_LEN};
use wharf::adapter::Acker;
use wharf::headers::names;
use wharf::{BoxError, Error, Message, Outcome};

use crate::config::QueueType;
use crate::error::RabbitError;
use crate::message::copy_properties;
use crate::publisher::publish_confirmed_with;
use crate::subscriber::Session;

/// The future of [`RabbitAcker::settle`].
pub type SettleFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'static>>;

/// Settles one RabbitMQ delivery. See the [module docs](self).
pub struct RabbitAcker {
    inner: Option<Inner>,
}

struct Inner {
    acker: lapin::Acker,
    message: Message,
    /// The delivery's AMQP properties, for its copies.
    properties: BasicProperties,
    session: Arc<Session>,
}

impl fmt::Debug for RabbitAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RabbitAcker");
        if let Some(inner) = &self.inner {
            d.field("message_id", inner.message.id());
        }
        d.field("settled", &self.inner.is_none()).finish()
    }
}

impl RabbitAcker {
    pub(crate) fn new(
        acker: lapin::Acker,
        message: Message,
        properties: BasicProperties,
        session: Arc<Session>,
    ) -> Self {
        RabbitAcker {
            inner: Some(Inner {
                acker,
                message,
                properties,
                session,
            }),
        }
    }
}

/// Maps lapin's answer to a settlement.
fn sent(session: &Session, what: &str, result: lapin::Result<bool>) -> Result<(), BoxError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => {
            session
                .stats
                .stale_settlements
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                queue = session.topology.work_queue(),
                "{what} not sent: the delivery's channel is gone; the broker redelivers the message"
            );
            Err(Box::new(Error::Settle(Box::new(RabbitError::StaleChannel))))
        }
        Err(e) => {
            session
                .stats
                .failed_settlements
                .fetch_add(1, Ordering::Relaxed);
            Err(Box::new(Error::Settle(Box::new(RabbitError::amqp(
                what.to_owned(),
                e,
            )))))
        }
    }
}

impl Inner {
    async fn ack(&self) -> Result<(), BoxError> {
        let r = self.acker.ack(BasicAckOptions::default()).await;
        sent(&self.session, "basic.ack", r)
    }

    async fn requeue(&self) -> Result<(), BoxError> {
        let r = self
            .acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await;
        sent(&self.session, "basic.nack", r)
    }

    /// Publishes `copy` to `queue` through the default exchange, then acks; on a failed
    /// publish, requeues the original and fails.
    async fn republish_then_ack(self, queue: String, copy: Message) -> Result<(), BoxError> {
        let published = match copy_properties(&self.properties, &copy) {
            Ok(properties) => {
                publish_confirmed_with(&self.session.publish, "", &queue, &copy, properties).await
            }
            Err(e) => Err(e),
        };
        match published {
            Ok(()) => self.ack().await,
            Err(e) => {
                self.session
                    .stats
                    .failed_settlements
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    queue = %queue,
                    message_id = %copy.id(),
                    error = %e,
                    "publishing the copy failed; requeueing the original"
                );
                let _ = self.requeue().await;
                Err(Box::new(Error::Settle(Box::new(e))))
            }
        }
    }

    async fn settle(self, outcome: Outcome) -> Result<(), BoxError> {
        match outcome {
            Outcome::Ack | Outcome::Drop(_) => self.ack().await,
            Outcome::Retry { after } => {
                let topology = &self.session.topology;
                if after.is_zero() && topology.queue_type() == QueueType::Quorum {
                    // The broker counts the attempt (x-delivery-count).
                    let r = self
                        .acker
                        .reject(BasicRejectOptions { requeue: true })
                        .await;
                    return sent(&self.session, "basic.reject", r);
                }
                let queue = if after.is_zero() {
                    topology.work_queue().to_owned()
                } else {
                    topology.tier_for(after).1.to_owned()
                };
                let mut copy = self.message.clone();
                copy.headers_mut().insert(
                    names::ATTEMPT,
                    self.message.attempt().saturating_add(1).to_string(),
                );
                self.republish_then_ack(queue, copy).await
            }
            Outcome::DeadLetter(failure) => {
                let copy = dead_letter_message(
                    &self.message,
                    &failure,
                    &self.session.consumer_name,
                    DEFAULT_MAX_ERROR_LEN,
                );
                let queue = self.session.topology.dead_letter_queue().to_owned();
                self.republish_then_ack(queue, copy).await
            }
        }
    }
}

impl Acker for RabbitAcker {
    type Future = SettleFuture;

    fn settle(mut self, outcome: Outcome) -> Self::Future {
        match self.inner.take() {
            Some(inner) => Box::pin(inner.settle(outcome)),
            None => Box::pin(std::future::ready(Ok(()))),
        }
    }
}

impl Drop for RabbitAcker {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if !inner.acker.usable() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = inner
                    .acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await;
            });
        }
    }
}
