use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::future::{CatchUnwind, FutureExt};
use pin_project_lite::pin_project;
use wharf::error::panic_message;
use wharf::{BoxError, ErrorKind, FailureReason, HandlerError, Outcome};

use super::error::Panicked;

pin_project! {
    /// Response future of [`CatchPanic`](super::CatchPanic).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        // The inner future, polled under `catch_unwind`.
        Polling { #[pin] fut: CatchUnwind<AssertUnwindSafe<F>> },
        // `call` itself panicked: the error is returned on the first poll.
        Panicked { error: Option<BoxError> },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn polling(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Polling {
                fut: AssertUnwindSafe(fut).catch_unwind(),
            },
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn panicked(payload: Box<dyn Any + Send>) -> Self {
        ResponseFuture {
            kind: Kind::Panicked {
                error: Some(panicked(payload)),
            },
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Outcome, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Outcome, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Polling { fut } => Poll::Ready(match ready!(fut.poll(cx)) {
                Ok(result) => result.map_err(Into::into),
                Err(payload) => Err(panicked(payload)),
            }),
            KindProj::Panicked { error } => Poll::Ready(Err(error
                .take()
                .expect("catch_panic::ResponseFuture polled after completion"))),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Polling { .. } => "Polling",
            Kind::Panicked { .. } => "Panicked",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

/// The error of a panicked attempt: transient, reason `handler-panic`.
fn panicked(payload: Box<dyn Any + Send>) -> BoxError {
    let message = panic_message(&*payload);
    tracing::error!(panic = %message, "handler panicked; reporting a transient failure");
    HandlerError::with_reason(
        ErrorKind::Transient,
        FailureReason::HandlerPanic,
        Panicked::new(message),
    )
    .into()
}
