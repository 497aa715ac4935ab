use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tracing::Span;
use wharf::{BoxError, Outcome};

pin_project! {
    /// Response future of [`Trace`](super::Trace).
    ///
    /// Enters the message's span on every poll of the inner future and records
    /// `outcome` (and `error`, for an error) on the span when it completes.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, span: Span) -> Self {
        ResponseFuture { inner, span }
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
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        match &result {
            Ok(outcome) => {
                this.span.record("outcome", outcome.as_str());
            }
            Err(e) => {
                this.span.record("outcome", "error");
                this.span.record("error", tracing::field::display(e));
            }
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}
