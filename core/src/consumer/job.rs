//! One delivery in flight: handling, then settling.

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

use crate::adapter::Acker;
use crate::error::{classify, error_chain, panic_message, BoxError, ErrorKind};
use crate::message::MessageId;
use crate::outcome::{Failure, Outcome};

/// How a job turns what the stack returned into the outcome it settles.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settling {
    /// Delay for a transient error (or panic) that reached the runtime unhandled.
    pub(crate) retry_delay: Duration,
    /// The adapter has a native dead-letter path.
    pub(crate) native_dead_letter: bool,
}

pin_project! {
    /// A delivery in flight. Owns the acker until it settles, so settlement runs
    /// concurrently with other work and exactly once.
    pub(crate) struct Job<F, A: Acker> {
        id: MessageId,
        key: Option<Bytes>,
        acker: Option<A>,
        settling: Settling,
        outcome: Option<Outcome>,
        #[pin]
        stage: Stage<F, A::Future>,
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<F, S> {
        // The stack is working on the message; a panic is caught here.
        Handling { #[pin] fut: CatchUnwind<AssertUnwindSafe<F>> },
        // The acker is settling the outcome.
        Settling { #[pin] fut: S },
        // Finished.
        Done,
    }
}

/// What a finished job reports to the runner.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) key: Option<Bytes>,
    pub(crate) outcome: Outcome,
    pub(crate) settled: Result<(), BoxError>,
    pub(crate) id: MessageId,
}

impl<F, A> Job<F, A>
where
    F: Future<Output = Result<Outcome, BoxError>>,
    A: Acker,
{
    pub(crate) fn handling(
        id: MessageId,
        key: Option<Bytes>,
        acker: A,
        settling: Settling,
        fut: F,
    ) -> Self {
        Job {
            id,
            key,
            acker: Some(acker),
            settling,
            outcome: None,
            stage: Stage::Handling {
                fut: AssertUnwindSafe(fut).catch_unwind(),
            },
        }
    }

    /// A job that only settles `outcome` (for deliveries never handed to the stack).
    pub(crate) fn settle_only(
        id: MessageId,
        key: Option<Bytes>,
        acker: A,
        settling: Settling,
        outcome: Outcome,
    ) -> Self {
        Job {
            id,
            key,
            acker: None,
            settling,
            outcome: Some(outcome.clone()),
            stage: Stage::Settling {
                fut: acker.settle(outcome),
            },
        }
    }

    /// Gives up on the handler (shutdown deadline): drops its future and settles
    /// `Retry`, never `DeadLetter`. A job already settling is left alone.
    pub(crate) fn abort(self: Pin<&mut Self>) {
        let mut this = self.project();
        if let StageProj::Handling { .. } = this.stage.as_mut().project() {
            let acker = this
                .acker
                .take()
                .expect("a handling job owns its acker");
            *this.outcome = Some(Outcome::RETRY_NOW);
            this.stage.set(Stage::Settling {
                fut: acker.settle(Outcome::RETRY_NOW),
            });
        }
    }
}

impl<F, A> Future for Job<F, A>
where
    F: Future<Output = Result<Outcome, BoxError>>,
    A: Acker,
{
    type Output = Finished;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Finished> {
        let mut this = self.project();
        loop {
            match this.stage.as_mut().project() {
                StageProj::Handling { fut } => {
                    let result = match fut.poll(cx) {
                        Poll::Ready(r) => r,
                        Poll::Pending => return Poll::Pending,
                    };
                    let outcome = final_outcome(result, this.id, *this.settling);
                    let acker = this
                        .acker
                        .take()
                        .expect("a handling job owns its acker");
                    *this.outcome = Some(outcome.clone());
                    this.stage.set(Stage::Settling {
                        fut: acker.settle(outcome),
                    });
                }
                StageProj::Settling { fut } => {
                    let settled = match fut.poll(cx) {
                        Poll::Ready(r) => r,
                        Poll::Pending => return Poll::Pending,
                    };
                    this.stage.set(Stage::Done);
                    return Poll::Ready(Finished {
                        key: this.key.take(),
                        outcome: this
                            .outcome
                            .take()
                            .expect("a settling job knows its outcome"),
                        settled,
                        id: this.id.clone(),
                    });
                }
                StageProj::Done => panic!("Job polled after completion"),
            }
        }
    }
}

/// Maps what the stack returned onto the outcome to settle.
///
/// An error that no layer turned into an outcome: transient ⇒ `Retry` after the
/// consumer's retry delay, permanent ⇒ `DeadLetter`. A panic ⇒ `Retry`. A `DeadLetter`
/// on an adapter with no native dead-letter path (and no dead-letter layer in the stack)
/// is redelivered and logged as an error: never dropped silently.
fn final_outcome(
    result: Result<Result<Outcome, BoxError>, Box<dyn Any + Send>>,
    id: &MessageId,
    settling: Settling,
) -> Outcome {
    let outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => {
            let class = classify(&*error);
            match class.kind {
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
        Err(panic) => {
            let text = panic_message(&*panic);
            tracing::error!(message_id = %id, panic = %text, "handler panicked; redelivering (add the panic-catching layer to count it against retries)");
            Outcome::Retry {
                after: settling.retry_delay,
            }
        }
    };
    match outcome {
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
