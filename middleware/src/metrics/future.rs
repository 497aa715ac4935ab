use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Instant;
use wharf::{BoxError, Outcome};

use super::handles::{outcome_index, Handles, ERROR_INDEX};

pin_project! {
    /// Response future of [`Metrics`](super::Metrics).
    ///
    /// Records the final outcome and the duration when the inner future completes. If it
    /// is dropped unfinished (a shutdown deadline), only the in-flight gauge is
    /// decremented: the message counts as received, not as handled.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        in_flight: InFlight,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, in_flight: InFlight) -> Self {
        ResponseFuture { inner, in_flight }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Outcome, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Outcome, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        let index = match &result {
            Ok(outcome) => outcome_index(outcome),
            Err(_) => ERROR_INDEX,
        };
        this.in_flight.complete(index);
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("in_flight", &self.in_flight.handles.is_some())
            .finish_non_exhaustive()
    }
}

/// Counts one message in flight from `call` until it completes or is dropped.
pub(super) struct InFlight {
    /// `Some` until the message is recorded as completed.
    handles: Option<Arc<Handles>>,
    start: Instant,
}

impl InFlight {
    /// Records the message as received and in flight.
    pub(super) fn start(handles: Arc<Handles>) -> Self {
        handles.received.increment(1);
        handles.in_flight.increment(1.0);
        InFlight {
            handles: Some(handles),
            start: Instant::now(),
        }
    }

    /// Records the completion with outcome label `OUTCOME_LABELS[index]`.
    fn complete(&mut self, index: usize) {
        if let Some(handles) = self.handles.take() {
            handles.handled[index].increment(1);
            handles.duration.record(self.start.elapsed().as_secs_f64());
            handles.in_flight.decrement(1.0);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Dropped before completion: no longer in flight, but not handled either.
        if let Some(handles) = self.handles.take() {
            handles.in_flight.decrement(1.0);
        }
    }
}
