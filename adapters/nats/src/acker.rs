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
//! [`retry_in_lane`](wharf::adapter::Capabilities::retry_in_lane), so the runtime carries out
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
use wharf::adapter::dead_letter::{dead_letter_message, fit, DEFAULT_MAX_ERROR_LEN};
use wharf::adapter::Acker;
use wharf::{BoxError, Message, Outcome};

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
///
/// A `+WPI` that reaches the server after a delayed `-NAK` of the same delivery would
/// restart its ack timer: the retry would come back after `ack_wait` instead of the
/// delay. A settlement unregisters first, so later ticks leave it out; and a `-NAK` is
/// sent only while holding `sending`, which the ticker holds from taking its list until
/// its last `+WPI` is queued on the connection. Both go out on one connection, in order,
/// so no `+WPI` of a delivery follows its `-NAK`.
#[derive(Debug)]
pub(crate) struct Progress {
    slots: Mutex<Slab<(Subject, u64)>>,
    epoch: AtomicU64,
    sending: tokio::sync::Mutex<()>,
    #[cfg(test)]
    hook: Option<Arc<tests::TickHook>>,
}

impl Progress {
    /// Starts the ticker (one task, ending once every acker and the subscriber are gone)
    /// that sends `+WPI` every `period` for deliveries held at least one full period.
    pub(crate) fn start(client: Client, period: Duration) -> Arc<Progress> {
        Self::start_with(
            client,
            period,
            #[cfg(test)]
            None,
        )
    }

    fn start_with(
        client: Client,
        period: Duration,
        #[cfg(test)] hook: Option<Arc<tests::TickHook>>,
    ) -> Arc<Progress> {
        let progress = Arc::new(Progress {
            slots: Mutex::new(Slab::new()),
            epoch: AtomicU64::new(0),
            sending: tokio::sync::Mutex::new(()),
            #[cfg(test)]
            hook,
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
                let sending = progress.sending.lock().await;
                // Registered at epoch e (during [e, e+1)): at tick e+2 it is at least one
                // period old, and at most two (two thirds of ack_wait).
                let due: Vec<Subject> = progress
                    .lock()
                    .iter()
                    .filter(|(_, (_, e))| now >= e + 2)
                    .map(|(_, (s, _))| s.clone())
                    .collect();
                #[cfg(test)]
                if let Some(hook) = &progress.hook {
                    hook.listed(due.len()).await;
                }
                for reply in due {
                    if let Err(e) = client.publish(reply, Bytes::from_static(b"+WPI")).await {
                        tracing::debug!(error = %e, "sending an in-progress ack failed");
                    }
                }
                drop(sending);
                drop(progress);
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

/// Sends `-NAK` (see [`nak`]) after any `+WPI` the progress ticker already listed for
/// this delivery (see [`Progress`]), so the server never restarts the delay's timer.
async fn send_nak(shared: &Shared, reply: Subject, after: Duration) -> Result<(), BoxError> {
    let _sending = match &shared.progress {
        Some(progress) => Some(progress.sending.lock().await),
        None => None,
    };
    send(&shared.client, reply, nak(after)).await
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
                Box::pin(async move { send_nak(&shared, reply, after).await })
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
                            let _ = send_nak(&shared, reply, DEAD_LETTER_RETRY).await;
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
        let delay = if self.shared.closed.load(Ordering::Relaxed) {
            crate::subscriber::HAND_BACK_DELAY
        } else {
            Duration::ZERO
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let shared = self.shared.clone();
            handle.spawn(async move {
                let _ = send_nak(&shared, reply, delay).await;
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

    /// Stops the progress ticker after it listed its `+WPI`s and before it sends them,
    /// until released: the window in which a settlement used to slip its `-NAK` in first.
    #[derive(Debug, Default)]
    pub(super) struct TickHook {
        listed: tokio::sync::Notify,
        release: tokio::sync::Notify,
        hold: std::sync::atomic::AtomicBool,
    }

    impl TickHook {
        pub(super) async fn listed(&self, due: usize) {
            if due > 0 && self.hold.swap(false, Ordering::AcqRel) {
                self.listed.notify_one();
                self.release.notified().await;
            }
        }
    }

    /// Issue 13, item 12: a `+WPI` must never reach the server after a delayed `-NAK` of
    /// the same delivery, or the server restarts the ack timer and the retry comes back
    /// after `ack_wait` (4 s here) instead of its delay (200 ms). The ticker is stopped
    /// with the delivery on its list, the settlement `Retry { after: 200ms }` starts, then
    /// the ticker goes on. Before the fix the `-NAK` went out first and the redelivery
    /// took `ack_wait`.
    #[tokio::test]
    #[ignore = "needs nats"]
    async fn a_delayed_nak_is_never_followed_by_a_progress_ack() {
        use async_nats::jetstream::consumer::{pull, AckPolicy};
        use async_nats::jetstream::stream;
        use futures_util::StreamExt as _;

        const ACK_WAIT: Duration = Duration::from_secs(4);
        const DELAY: Duration = Duration::from_millis(200);
        let client = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        let name = format!("wpi-{}", uuid::Uuid::new_v4().simple());
        let stream = js
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![name.clone()],
                ..Default::default()
            })
            .await
            .unwrap();
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some("d".into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                ..Default::default()
            })
            .await
            .unwrap();
        js.publish(name.clone(), "m".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let first = messages.next().await.unwrap().unwrap();
        let reply = first.reply.clone().unwrap();

        let hook = Arc::new(TickHook::default());
        hook.hold.store(true, Ordering::Release);
        let progress = Progress::start_with(
            client.clone(),
            Duration::from_millis(100),
            Some(hook.clone()),
        );
        let shared = Arc::new(Shared {
            client: client.clone(),
            js: js.clone(),
            dead_letter_subject: "unused".into(),
            consumer: "d".into(),
            progress: Some(progress),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let acker = JetStreamAcker::new(shared, reply, Message::new("m"));

        // The ticker listed the delivery and waits; the settlement starts now.
        tokio::time::timeout(Duration::from_secs(5), hook.listed.notified())
            .await
            .expect("the ticker lists the delivery");
        let settled = tokio::spawn(acker.settle(Outcome::Retry { after: DELAY }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        hook.release.notify_one();
        settled.await.unwrap().unwrap();

        let again = tokio::time::timeout(ACK_WAIT * 3 / 4, messages.next())
            .await
            .expect("redelivered after the NAK's delay, not after ack_wait")
            .unwrap()
            .unwrap();
        again.ack().await.unwrap();
        js.delete_stream(&name).await.unwrap();
    }

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

/// Settles a delivery of a [`NatsSubscriber`](crate::NatsSubscriber): JetStream or Core,
/// as the client's URL chose.
#[derive(Debug)]
pub enum NatsAcker {
    /// A Core NATS delivery.
    Core(CoreAcker),
    /// A JetStream delivery.
    JetStream(JetStreamAcker),
}

impl Acker for NatsAcker {
    type Future = futures_util::future::Either<Ready<Result<(), BoxError>>, SettleFuture>;

    fn settle(self, outcome: Outcome) -> Self::Future {
        use futures_util::future::Either;
        match self {
            NatsAcker::Core(a) => Either::Left(a.settle(outcome)),
            NatsAcker::JetStream(a) => Either::Right(a.settle(outcome)),
        }
    }
}
