//! One delivery in flight: the stack's future, then the acker's settlement.
//!
//! The acker is *not* owned by the handling future: the runner keeps it in a slab, so
//! that at the shutdown deadline it can drop every unfinished handler future at once and
//! still settle each of those deliveries `Retry`.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::CatchUnwind;
use futures_util::FutureExt;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::adapter::Lease;
use crate::error::{classify, error_chain, panic_message, BoxError, Error, ErrorKind};
use crate::message::{Message, MessageId};
use crate::outcome::{Failure, FailureReason, Outcome};

/// How the runner turns what the stack returned into the outcome it settles.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settling {
    /// Delay for a transient error (or panic) that reached the runtime unhandled.
    pub(crate) retry_delay: Duration,
    /// The adapter has a native dead-letter path.
    pub(crate) native_dead_letter: bool,
    /// The adapter leaves `Retry` to the runtime, which reruns it in the message's lane:
    /// see [`Capabilities::retry_in_lane`](crate::adapter::Capabilities::retry_in_lane).
    pub(crate) retry_in_lane: bool,
    /// Attempts after which a transient error or panic that reached the runtime is
    /// dead-lettered instead of retried again.
    pub(crate) max_attempts: u32,
}

/// What the runner keeps for a delivery between dispatch and settlement.
#[derive(Debug)]
pub(crate) struct Entry<A> {
    pub(crate) id: MessageId,
    /// The delivery's attempt (raised by in-lane reruns).
    pub(crate) attempt: u32,
    pub(crate) key: Option<Bytes>,
    pub(crate) acker: A,
    /// The message as delivered, kept only when the runtime retries in the lane
    /// ([`Capabilities::retry_in_lane`](crate::adapter::Capabilities::retry_in_lane)).
    pub(crate) message: Option<Message>,
}

/// A delivery the runtime retries itself, waiting out its delay; yields its slot, early
/// if the delivery's [`Lease`] is revoked meanwhile.
///
/// The timer is boxed so the type is `Unpin` (retries are rare; the box is not on the
/// per-message path).
pub(crate) struct RetryTimer {
    pub(crate) slot: usize,
    sleep: Pin<Box<Sleep>>,
    revoked: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl RetryTimer {
    pub(crate) fn new(slot: usize, after: Duration, lease: Option<&Lease>) -> Self {
        RetryTimer {
            slot,
            sleep: Box::pin(tokio::time::sleep(after)),
            revoked: lease.map(|lease| Box::pin(lease.revoked()) as Pin<Box<_>>),
        }
    }
}

impl Future for RetryTimer {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let slot = self.slot;
        if let Some(revoked) = &mut self.revoked {
            if revoked.as_mut().poll(cx).is_ready() {
                return Poll::Ready(slot);
            }
        }
        self.sleep.as_mut().poll(cx).map(|()| slot)
    }
}

pin_project! {
    /// The stack working on one message (in the runner's job slot of its entry); a panic
    /// is caught here.
    pub(crate) struct Handling<F> {
        #[pin]
        fut: CatchUnwind<AssertUnwindSafe<F>>,
    }
}

/// What a finished handling future reports: the stack's result, or its panic.
pub(crate) type Handled = Result<Result<Outcome, BoxError>, Box<dyn Any + Send>>;

impl<F> Handling<F>
where
    F: Future<Output = Result<Outcome, BoxError>>,
{
    pub(crate) fn new(fut: F) -> Self {
        Handling {
            fut: AssertUnwindSafe(fut).catch_unwind(),
        }
    }
}

impl<F> Future for Handling<F>
where
    F: Future<Output = Result<Outcome, BoxError>>,
{
    type Output = Handled;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Handled> {
        self.project().fut.poll(cx)
    }
}

pin_project! {
    /// An acker settling one delivery, within a deadline.
    ///
    /// A settlement still pending after `timeout` is given up (its future dropped) and
    /// reported as failed and `timed_out`: the delivery was not settled, or not known to
    /// be, so the broker redelivers it. Without this, a settlement that never finishes (a
    /// client's ack future lost with its connection) would hold its in-flight slot and
    /// its key's lane for ever, and enough of them stall the consumer. The timer starts
    /// only when the settlement does not finish on its first poll.
    pub(crate) struct Settle<S> {
        finished: Option<Finished>,
        timeout: Duration,
        #[pin]
        fut: S,
        // Boxed (only once a settlement pends) so that `Settle` stays `Unpin` when its
        // acker's future is: the runner polls it in place first.
        deadline: Option<Pin<Box<Sleep>>>,
    }
}

/// A settled delivery, as reported to the runner.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) key: Option<Bytes>,
    pub(crate) outcome: Outcome,
    pub(crate) settled: Result<(), BoxError>,
    pub(crate) id: MessageId,
    /// The settlement was given up at its deadline (`settled` is an error).
    pub(crate) timed_out: bool,
}

impl<S> Settle<S>
where
    S: Future<Output = Result<(), BoxError>>,
{
    pub(crate) fn new(
        id: MessageId,
        key: Option<Bytes>,
        outcome: Outcome,
        fut: S,
        timeout: Duration,
    ) -> Self {
        Settle {
            finished: Some(Finished {
                key,
                outcome,
                settled: Ok(()),
                id,
                timed_out: false,
            }),
            timeout,
            fut,
            deadline: None,
        }
    }
}

impl<S> Future for Settle<S>
where
    S: Future<Output = Result<(), BoxError>>,
{
    type Output = Finished;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Finished> {
        let this = self.project();
        let (settled, timed_out) = match this.fut.poll(cx) {
            Poll::Ready(settled) => (settled, false),
            Poll::Pending => {
                // `sleep` caps a huge timeout (`Duration::MAX`: never give up).
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(*this.timeout)));
                if deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let given_up = format!(
                    "the settlement did not finish within the settle timeout ({:?}); given up",
                    this.timeout
                );
                (
                    Err(Box::new(Error::Settle(given_up.into())) as BoxError),
                    true,
                )
            }
        };
        let mut finished = this
            .finished
            .take()
            .expect("Settle polled after completion");
        finished.settled = settled;
        finished.timed_out = timed_out;
        Poll::Ready(finished)
    }
}

/// Maps what the stack returned onto the outcome to settle.
///
/// An error that no layer turned into an outcome: transient ⇒ `Retry` after the
/// consumer's retry delay, permanent ⇒ `DeadLetter`. A panic ⇒ `Retry`. Once `attempt`
/// reached the consumer's `max_attempts`, a transient error or a panic is
/// `DeadLetter` (`retries-exhausted` / `handler-panic`) instead. A `DeadLetter`
/// on an adapter with no native dead-letter path (and no dead-letter layer in the stack)
/// is redelivered and logged as an error: never dropped silently.
pub(crate) fn final_outcome(
    result: Result<Result<Outcome, BoxError>, Box<dyn Any + Send>>,
    id: &MessageId,
    attempt: u32,
    settling: Settling,
) -> Outcome {
    let exhausted = attempt >= settling.max_attempts;
    let outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => {
            let class = classify(&*error);
            match class.kind {
                ErrorKind::Transient if exhausted => {
                    tracing::warn!(message_id = %id, attempt, error = %error_chain(&*error), "transient failure on the consumer's last attempt (max_attempts); dead-lettering");
                    Outcome::DeadLetter(Failure::new(
                        FailureReason::RetriesExhausted,
                        error_chain(&*error),
                    ))
                }
                ErrorKind::Transient => {
                    tracing::debug!(message_id = %id, error = %error_chain(&*error), "transient failure, redelivering");
                    Outcome::Retry {
                        after: settling.retry_delay,
                    }
                }
                ErrorKind::Permanent => {
                    Outcome::DeadLetter(Failure::new(class.reason, error_chain(&*error)))
                }
            }
        }
        Err(panic) if exhausted => {
            let text = panic_message(&*panic);
            tracing::error!(message_id = %id, attempt, panic = %text, "handler panicked on the consumer's last attempt (max_attempts); dead-lettering");
            Outcome::DeadLetter(Failure::new(FailureReason::HandlerPanic, text))
        }
        Err(panic) => {
            let text = panic_message(&*panic);
            tracing::error!(message_id = %id, panic = %text, "handler panicked; redelivering (add the catch-panic layer to count it against retries)");
            Outcome::Retry {
                after: settling.retry_delay,
            }
        }
    };
    match outcome {
        // Where retries run in this process (Core NATS), turning the dead letter into a
        // retry would rerun a permanent failure for ever, holding its key's lane and a
        // slot: the acker gets the dead letter and says what it does with it (Core NATS
        // cannot keep it: lost, logged and counted).
        Outcome::DeadLetter(ref failure)
            if !settling.native_dead_letter && settling.retry_in_lane =>
        {
            tracing::error!(
                message_id = %id,
                reason = %failure.reason(),
                error = %failure.error(),
                "dead-letter outcome reached the runtime, but the stack has no dead-letter layer, the adapter no native dead-letter path, and retries run in this process; settling it as a dead letter (add the dead-letter layer to keep it)"
            );
            outcome
        }
        Outcome::DeadLetter(failure) if !settling.native_dead_letter => {
            tracing::error!(
                message_id = %id,
                reason = %failure.reason(),
                error = %failure.error(),
                "dead-letter outcome reached the runtime, but the stack has no dead-letter layer and the adapter no native dead-letter path; redelivering instead of dropping"
            );
            Outcome::Retry {
                after: settling.retry_delay,
            }
        }
        Outcome::Drop(ref failure) => {
            tracing::warn!(message_id = %id, reason = %failure.reason(), error = %failure.error(), "dropping message");
            outcome
        }
        other => other,
    }
}
