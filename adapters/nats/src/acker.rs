//! Settling deliveries: JetStream acks, naks and terms; Core NATS has nothing to settle.
//!
//! **JetStream** (at-least-once):
//!
//! | outcome | what is sent |
//! |---|---|
//! | `Ack` | `+ACK` |
//! | `Retry { after }` | `-NAK {"delay": after}`: the broker redelivers after `after`, delivery count + 1, other messages flow meanwhile |
//! | `DeadLetter(failure)` | the original plus the `wharf-dlq-*` headers published to the dead-letter subject; once the broker confirmed it, `+TERM`. If the publish fails, `-NAK` with a 5 s delay and a settle error: never acked without a stored dead letter |
//! | `Drop(failure)` | `+TERM` (logged): never redelivered; the server emits a `MSG_TERMINATED` advisory |
//! | acker dropped unsettled | `-NAK` sent from a task: redelivered at once, or after 6 s once its subscriber is closed (see [`subscriber`](crate::subscriber)); without a runtime, `ack_wait` expiry redelivers it |
//!
//! Acks are not confirmed by the server (a confirmed ack costs a round trip per message):
//! an ack lost in a disconnect means one more delivery, never a lost message.
//!
//! A delivery held longer than `ack_wait / 3` gets an in-progress ack (`+WPI`) every
//! `ack_wait / 3` until it is settled or dropped, so a slow handler is not redelivered to
//! another member while it still runs. Registering costs a short uncontended lock per
//! delivery; a single task per subscriber sends the progress acks.
//!
//! **Core NATS** (at-most-once): settling does nothing; the broker already forgot the
//! message. Core subscribers declare
//! [`retry_in_lane`](wharf::Capabilities::retry_in_lane), so the runtime carries out
//! every `Retry` itself (in the message's lane, `Message::attempt` raised per run, also
//! while draining at shutdown) and a retry policy ends in a dead letter, never a silent
//! loss. Only a `Retry` still waiting at the shutdown deadline, or a `DeadLetter` with no
//! dead-letter layer in the stack, reaches this acker: that message is lost, logged as a
//! warning and counted in `wharf_nats_core_unredeliverable_total`.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::jetstream::{AckKind, Context};
use async_nats::{Client, Subject};
use bytes::Bytes;
use slab::Slab;
use wharf::dead_letter::{dead_letter_message, fit, DEFAULT_MAX_ERROR_LEN};
use wharf::{Acker, BoxError, Message, Outcome};

use crate::error;
use crate::message::to_headers;

/// Delay of the redelivery after a dead-letter publish failed.
const DEAD_LETTER_RETRY: Duration = Duration::from_secs(5);

/// What every acker of one JetStream subscriber shares.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) js: Context,
    pub(crate) dead_letter_subject: Arc<str>,
    pub(crate) consumer: Arc<str>,
    pub(crate) progress: Option<Arc<Progress>>,
    /// The subscriber closed or was dropped: hand messages back with a delay.
    pub(crate) closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("dead_letter_subject", &self.dead_letter_subject)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

// ===== progress acks =====

/// Deliveries in flight, for in-progress acks.
#[derive(Debug)]
pub(crate) struct Progress {
    slots: Mutex<Slab<(Subject, u64)>>,
    epoch: AtomicU64,
}

impl Progress {
    /// Starts the ticker (one task, ending once every acker and the subscriber are gone)
    /// that sends `+WPI` every `period` for deliveries held at least one full period.
    pub(crate) fn start(client: Client, period: Duration) -> Arc<Progress> {
        let progress = Arc::new(Progress {
            slots: Mutex::new(Slab::new()),
            epoch: AtomicU64::new(0),
        });
        let weak: Weak<Progress> = Arc::downgrade(&progress);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(progress) = weak.upgrade() else {
                    break;
                };
                let now = progress.epoch.fetch_add(1, Ordering::Relaxed) + 1;
                // Registered at epoch e (during [e, e+1)): at tick e+2 it is at least one
                // period old, and at most two (two thirds of ack_wait).
                let due: Vec<Subject> = progress
                    .lock()
                    .iter()
                    .filter(|(_, (_, e))| now >= e + 2)
                    .map(|(_, (s, _))| s.clone())
                    .collect();
                drop(progress);
                for reply in due {
                    if let Err(e) = client.publish(reply, Bytes::from_static(b"+WPI")).await {
                        tracing::debug!(error = %e, "sending an in-progress ack failed");
                    }
                }
            }
        });
        progress
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slab<(Subject, u64)>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn register(&self, reply: Subject) -> usize {
        let epoch = self.epoch.load(Ordering::Relaxed);
        self.lock().insert((reply, epoch))
    }

    fn unregister(&self, key: usize) {
        self.lock().try_remove(key);
    }
}

// ===== JetStream =====

/// Settles one JetStream delivery; see the [module docs](self).
#[derive(Debug)]
pub struct JetStreamAcker {
    shared: Arc<Shared>,
    reply: Option<Subject>,
    message: Message,
    progress_key: Option<usize>,
}

/// The future [`JetStreamAcker::settle`] returns.
pub type SettleFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'static>>;

impl JetStreamAcker {
    pub(crate) fn new(shared: Arc<Shared>, reply: Subject, message: Message) -> Self {
        let progress_key = shared.progress.as_ref().map(|p| p.register(reply.clone()));
        JetStreamAcker {
            shared,
            reply: Some(reply),
            message,
            progress_key,
        }
    }

    fn take(&mut self) -> Option<Subject> {
        if let (Some(key), Some(progress)) = (self.progress_key.take(), &self.shared.progress) {
            progress.unregister(key);
        }
        self.reply.take()
    }
}

async fn send(client: &Client, reply: Subject, kind: AckKind) -> Result<(), BoxError> {
    client
        .publish(reply, kind.into())
        .await
        .map_err(|e| error::settle(format!("sending {kind:?}"), e).into())
}

/// `-NAK`, with a delay unless `after` is zero. The server reads the delay as a Go
/// `time.Duration` (signed 64-bit nanoseconds, ≈ 292 years), so a longer `after` is
/// capped there rather than sent as a number the server cannot parse.
fn nak(after: Duration) -> AckKind {
    const LONGEST: Duration = Duration::from_nanos(i64::MAX as u64);
    if after.is_zero() {
        AckKind::Nak(None)
    } else {
        AckKind::Nak(Some(after.min(LONGEST)))
    }
}

impl Acker for JetStreamAcker {
    type Future = SettleFuture;

    fn settle(mut self, outcome: Outcome) -> SettleFuture {
        let Some(reply) = self.take() else {
            return Box::pin(ready(Ok(())));
        };
        let shared = self.shared.clone();
        match outcome {
            Outcome::Ack => {
                Box::pin(async move { send(&shared.client, reply, AckKind::Ack).await })
            }
            Outcome::Retry { after } => {
                Box::pin(async move { send(&shared.client, reply, nak(after)).await })
            }
            Outcome::Drop(failure) => {
                tracing::warn!(
                    message_id = %self.message.id(),
                    reason = %failure.reason(),
                    error = failure.error(),
                    "dropping a message (JetStream Term)"
                );
                Box::pin(async move { send(&shared.client, reply, AckKind::Term).await })
            }
            Outcome::DeadLetter(failure) => {
                let mut letter = dead_letter_message(
                    &self.message,
                    &failure,
                    &shared.consumer,
                    DEFAULT_MAX_ERROR_LEN,
                );
                // Cut to the server's limit, as the dead-letter layer does.
                fit(
                    &mut letter,
                    crate::publisher::max_message_bytes(&shared.client),
                );
                Box::pin(async move {
                    match publish_dead_letter(&shared, letter).await {
                        Ok(()) => send(&shared.client, reply, AckKind::Term).await,
                        Err(e) => {
                            // Comes back after the delay; the error is reported.
                            let _ = send(&shared.client, reply, nak(DEAD_LETTER_RETRY)).await;
                            Err(e)
                        }
                    }
                })
            }
        }
    }
}

async fn publish_dead_letter(shared: &Shared, letter: Message) -> Result<(), BoxError> {
    let subject = shared.dead_letter_subject.to_string();
    let what = || format!("publishing a dead letter to `{subject}`");
    let headers = to_headers(&letter, true).map_err(|e| error::settle(what(), e))?;
    shared
        .js
        .publish_with_headers(subject.clone(), headers, letter.payload().clone())
        .await
        .map_err(|e| error::settle(what(), e))?
        .await
        .map_err(|e| error::settle(what(), e))?;
    Ok(())
}

impl Drop for JetStreamAcker {
    fn drop(&mut self) {
        let Some(reply) = self.take() else {
            return;
        };
        // Unsettled: hand it back at once. Without a runtime the broker redelivers it
        // after ack_wait.
        let kind = if self.shared.closed.load(Ordering::Relaxed) {
            AckKind::Nak(Some(crate::subscriber::HAND_BACK_DELAY))
        } else {
            AckKind::Nak(None)
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let client = self.shared.client.clone();
            handle.spawn(async move {
                let _ = send(&client, reply, kind).await;
            });
        }
    }
}

// ===== Core =====

/// Settles one Core NATS delivery: nothing to do, the broker keeps nothing. See the
/// [module docs](self) for what happens to a `Retry`.
#[derive(Debug)]
pub struct CoreAcker {
    id: wharf::MessageId,
    subject: Arc<str>,
}

impl CoreAcker {
    pub(crate) fn new(id: wharf::MessageId, subject: Arc<str>) -> Self {
        CoreAcker { id, subject }
    }
}

/// Counter of Core NATS messages settled `Retry` (which Core cannot redeliver).
pub const CORE_UNREDELIVERABLE: &str = "wharf_nats_core_unredeliverable_total";

impl Acker for CoreAcker {
    type Future = Ready<Result<(), BoxError>>;

    fn settle(self, outcome: Outcome) -> Self::Future {
        match outcome {
            Outcome::Ack => {}
            // The runtime retries Core messages itself (`retry_in_lane`): a `Retry` here
            // is one still waiting at the shutdown deadline. A `DeadLetter` here had no
            // dead-letter layer to publish it.
            Outcome::Retry { .. } | Outcome::DeadLetter(_) => {
                tracing::warn!(
                    message_id = %self.id,
                    subject = %self.subject,
                    outcome = outcome.as_str(),
                    "Core NATS cannot redeliver: the message is lost (at-most-once); a \
                     retry still waiting at the shutdown deadline, or a dead letter without \
                     the dead-letter layer in the stack; use JetStream to keep them"
                );
                metrics::counter!(CORE_UNREDELIVERABLE, "subject" => self.subject.to_string())
                    .increment(1);
            }
            Outcome::Drop(failure) => {
                tracing::warn!(
                    message_id = %self.id,
                    reason = %failure.reason(),
                    error = failure.error(),
                    "dropping a Core NATS message"
                );
            }
        }
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_beyond_go_durations_is_capped() {
        // `Duration::MAX` would be sent as a 20-digit nanosecond count the server cannot
        // read into its signed 64-bit `time.Duration`.
        let AckKind::Nak(Some(delay)) = nak(Duration::MAX) else {
            panic!("a delayed NAK")
        };
        assert_eq!(delay.as_nanos(), i64::MAX as u128);
        assert!(matches!(nak(Duration::ZERO), AckKind::Nak(None)));
        let AckKind::Nak(Some(delay)) = nak(Duration::from_secs(5)) else {
            panic!("a delayed NAK")
        };
        assert_eq!(delay, Duration::from_secs(5));
    }
}
