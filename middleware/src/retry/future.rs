use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;
use wharf::error::error_chain;
use wharf::{BoxError, Message, Outcome};

use super::layer::Shared;
use super::policy::Decision;

pin_project! {
    /// Response future of [`Retry`](super::Retry).
    ///
    /// A state machine over one delivery: it never resolves to an error. A failure
    /// becomes an in-process retry, [`Outcome::Retry`] or [`Outcome::DeadLetter`].
    pub struct ResponseFuture<S>
    where
        S: Service<Message>,
    {
        message: Message,
        // A clone of the inner service for in-process retries; `None` when the policy
        // has no in-process tier.
        service: Option<S>,
        shared: Arc<Shared>,
        // Calls made within this delivery, the current one included.
        tries: u32,
        #[pin]
        state: State<S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The inner service is handling the message (try number `tries`).
        Called { #[pin] fut: F },
        // The try failed and is retried in process: waiting out the backoff.
        Waiting { #[pin] sleep: Sleep },
        // The backoff is over: waiting for the cloned service to be ready, then calling it.
        Retrying,
    }
}

/// What to do after a failed try.
enum Next {
    Done(Outcome),
    Wait(Duration),
}

impl<S> ResponseFuture<S>
where
    S: Service<Message>,
{
    pub(crate) fn new(
        fut: S::Future,
        message: Message,
        service: Option<S>,
        shared: Arc<Shared>,
    ) -> Self {
        ResponseFuture {
            message,
            service,
            shared,
            tries: 1,
            state: State::Called { fut },
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Message, Response = Outcome>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Outcome, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let error: BoxError = match this.state.as_mut().project() {
                StateProj::Called { fut } => match ready!(fut.poll(cx)) {
                    // Every outcome passes through, `Retry` included (see the module docs).
                    Ok(outcome) => return Poll::Ready(Ok(outcome)),
                    Err(e) => e.into(),
                },
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Retrying);
                    continue;
                }
                StateProj::Retrying => {
                    let service = this
                        .service
                        .as_mut()
                        .expect("in-process retries keep a clone of the service");
                    let ready = ready!(service.poll_ready(cx));
                    *this.tries += 1;
                    match ready {
                        Ok(()) => {
                            let fut = service.call(this.message.clone());
                            this.state.set(State::Called { fut });
                            continue;
                        }
                        // A clone that cannot get ready fails this try.
                        Err(e) => e.into(),
                    }
                }
            };
            match next(this.shared, this.message, *this.tries, &error) {
                Next::Done(outcome) => return Poll::Ready(Ok(outcome)),
                Next::Wait(delay) => this.state.set(State::Waiting {
                    sleep: tokio::time::sleep(delay),
                }),
            }
        }
    }
}

/// Applies the policy to a failed try and records the decision.
///
/// The policy is shared and immutable, so an in-process decision comes only from a
/// policy with an in-process tier, for which `call` kept a clone of the service.
fn next(shared: &Shared, message: &Message, tries: u32, error: &BoxError) -> Next {
    let error: &(dyn std::error::Error + 'static) = &**error;
    let attempt = message.attempt();
    let source = message.origin().source();
    match shared.policy.decide(error, attempt, tries) {
        Decision::InProcess { delay } => {
            tracing::debug!(
                message_id = %message.id(),
                attempt,
                tries,
                ?delay,
                error = %error_chain(error),
                "retrying in process"
            );
            crate::telemetry::retry(crate::telemetry::consumer_of(message), source, "in_process");
            // The runtime never sees this failure: report it to the consumer's progress.
            message.origin().count_retry();
            Next::Wait(delay)
        }
        Decision::Redeliver { delay } => {
            tracing::debug!(
                message_id = %message.id(),
                attempt,
                ?delay,
                error = %error_chain(error),
                "retrying by redelivery"
            );
            crate::telemetry::retry(crate::telemetry::consumer_of(message), source, "redelivery");
            Next::Done(Outcome::Retry { after: delay })
        }
        Decision::GiveUp(failure) => {
            tracing::debug!(
                message_id = %message.id(),
                attempt,
                reason = %failure.reason(),
                error = %failure.error(),
                "giving up on the message"
            );
            Next::Done(Outcome::DeadLetter(failure))
        }
    }
}

impl<S> fmt::Debug for ResponseFuture<S>
where
    S: Service<Message>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Called { .. } => "Called",
            State::Waiting { .. } => "Waiting",
            State::Retrying => "Retrying",
        };
        f.debug_struct("ResponseFuture")
            .field("message_id", self.message.id())
            .field("attempt", &self.message.attempt())
            .field("tries", &self.tries)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
