//! Middleware that turns a panicking handler into a transient failure; the consumer
//! keeps running.
//!
//! A panic in a handler is a bug, but one message's bug must not stop a consumer that
//! serves thousands of others. The runtime already survives a panic that reaches it,
//! but it can only redeliver the message after its fixed retry delay, forever, outside
//! any retry policy. This layer catches the panic next to the handler, both in `call`
//! and while the inner future is polled, and returns a **transient** error with reason
//! `handler-panic` and the panic message ([`Panicked`]). The retry layer then treats it
//! like any other transient failure: backoff, counted against the attempts, and in the
//! end a dead letter whose error text carries the panic message.
//!
//! # Caveats
//!
//! - The panic hook still runs (by default it prints the panic to stderr); install a
//!   hook with [`std::panic::set_hook`] to route panics elsewhere.
//! - Only unwinding panics can be caught: with `panic = "abort"` the process stops.
//! - The handler's future and the message are treated as unwind safe
//!   ([`AssertUnwindSafe`]). State the handler shares with
//!   others may be left half-updated by the panic (a `std::sync::Mutex` is poisoned);
//!   the message is retried, so the handler must cope with that.
//! - `poll_ready` is not guarded: a service that panics while getting ready is not in a
//!   state worth calling again.
//!
//! # Where it goes in a stack
//!
//! Innermost, right around the handler, inside the retry and timeout layers.
//!
//! # Example
//!
//! ```
//! use tower::ServiceBuilder;
//! use wharf::{Handler, HandlerError, Message};
//! use wharf_memory::Harness;
//! use wharf_middleware::catch_panic::CatchPanicLayer;
//!
//! async fn handle(msg: Message) -> Result<(), HandlerError> {
//!     if msg.attempt() == 1 {
//!         panic!("index out of bounds");
//!     }
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! # std::panic::set_hook(Box::new(|_| {}));
//! let stack = ServiceBuilder::new()
//!     .layer(CatchPanicLayer::new())
//!     .service(handle.into_service());
//!
//! let mut harness = Harness::new(stack);
//! let first = harness.publish(Message::new("a"));
//! let second = harness.publish(Message::new("b"));
//! let report = harness.run_until_idle().await;
//!
//! // Each panic was a transient failure: redelivered, then handled.
//! report.assert_acked(&first).assert_retried(&first, 1);
//! report.assert_acked(&second).assert_retried(&second, 1);
//! # }
//! ```

mod error;
mod future;
mod layer;

pub use error::Panicked;
pub use future::ResponseFuture;
pub use layer::CatchPanicLayer;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll};

use tower::Service;
use wharf::{BoxError, Message, Outcome};

/// Catches panics of the inner service; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

// ===== impl CatchPanic =====

impl<S> CatchPanic<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        CatchPanic { inner }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<Message> for CatchPanic<S>
where
    S: Service<Message, Response = Outcome>,
    S::Error: Into<BoxError>,
{
    type Response = Outcome;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(move || inner.call(message))) {
            Ok(fut) => ResponseFuture::polling(fut),
            Err(payload) => ResponseFuture::panicked(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use tower::{Layer, ServiceExt};
    use wharf::error::{classify, error_chain, ClassifiedError};
    use wharf::{ErrorKind, FailureReason};

    use super::*;

    fn panicked_of(err: &BoxError) -> &Panicked {
        err.downcast_ref::<ClassifiedError>()
            .expect("a classified error")
            .inner()
            .downcast_ref::<Panicked>()
            .expect("the layer's own error")
    }

    #[tokio::test]
    async fn a_panic_while_polling_is_a_transient_handler_panic() {
        let svc = CatchPanicLayer::new().layer(tower::service_fn(|_: Message| async {
            tokio::task::yield_now().await;
            if true {
                panic!("boom at {}", 7);
            }
            Ok::<_, BoxError>(Outcome::Ack)
        }));
        let err = svc.oneshot(Message::new("m")).await.unwrap_err();
        let class = classify(&*err);
        assert_eq!(class.kind, ErrorKind::Transient);
        assert_eq!(class.reason, FailureReason::HandlerPanic);
        assert_eq!(panicked_of(&err).message(), "boom at 7");
        assert_eq!(error_chain(&*err), "handler panicked: boom at 7");
    }

    /// A service whose `call` panics before returning a future.
    #[derive(Clone)]
    struct PanicsInCall;

    impl Service<Message> for PanicsInCall {
        type Response = Outcome;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Outcome, BoxError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Message) -> Self::Future {
            panic!("panicked in call");
        }
    }

    #[tokio::test]
    async fn a_panic_in_call_is_caught_too() {
        let mut svc = CatchPanic::new(PanicsInCall);
        for _ in 0..2 {
            let err = svc
                .ready()
                .await
                .unwrap()
                .call(Message::new("m"))
                .await
                .unwrap_err();
            assert_eq!(classify(&*err).reason, FailureReason::HandlerPanic);
            assert_eq!(panicked_of(&err).message(), "panicked in call");
        }
    }

    #[tokio::test]
    async fn non_string_payloads_are_named() {
        let svc = CatchPanic::new(tower::service_fn(|_: Message| async {
            std::panic::panic_any(42_u32);
            #[allow(unreachable_code)]
            Ok::<_, BoxError>(Outcome::Ack)
        }));
        let err = svc.oneshot(Message::new("m")).await.unwrap_err();
        assert_eq!(panicked_of(&err).message(), "non-string panic payload");
    }

    #[tokio::test]
    async fn results_pass_through() {
        let svc = CatchPanic::new(tower::service_fn(|_: Message| async {
            Err::<Outcome, _>(wharf::HandlerError::permanent("bad"))
        }));
        let err = svc.oneshot(Message::new("m")).await.unwrap_err();
        assert_eq!(classify(&*err).kind, ErrorKind::Permanent);
        let svc = CatchPanic::new(tower::service_fn(|_: Message| async {
            Ok::<_, BoxError>(Outcome::Ack)
        }));
        assert_eq!(svc.oneshot(Message::new("m")).await.unwrap(), Outcome::Ack);
    }
}
