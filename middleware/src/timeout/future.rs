use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use wharf::{BoxError, ErrorKind, FailureReason, HandlerError};

use super::error::Elapsed;

pin_project! {
    /// Response future of [`Timeout`](super::Timeout).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // The inner service's future, polled first.
        #[pin]
        response: F,
        // The deadline of the attempt, fixed when the service was called; `None` when the
        // timeout is too long for the clock (`Duration::MAX`): no deadline.
        deadline: Option<Instant>,
        // The timer, armed only once the response is not ready on its first poll: a
        // handler that finishes at once (most of them) costs no timer registration and
        // no allocation.
        sleep: Option<Pin<Box<Sleep>>>,
        timeout: Duration,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(response: F, timeout: Duration) -> Self {
        ResponseFuture {
            response,
            deadline: Instant::now().checked_add(timeout),
            sleep: None,
            timeout,
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<wharf::Outcome, E>>,
    E: Into<BoxError>,
{
    type Output = Result<wharf::Outcome, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The response first: one that is ready at the deadline still counts.
        if let Poll::Ready(result) = this.response.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Err(elapsed(*this.timeout))),
        }
    }
}

/// The error of a timed-out attempt: transient, reason `timeout`.
pub(crate) fn elapsed(timeout: Duration) -> BoxError {
    HandlerError::with_reason(
        ErrorKind::Transient,
        FailureReason::Timeout,
        Elapsed::new(timeout),
    )
    .into()
}
