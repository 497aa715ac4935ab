//! Middleware that bounds each attempt; a timed-out attempt is a transient failure.
//!
//! A handler stuck on a dead connection or a lock holds its message's key lane and an
//! in-flight slot for as long as it hangs, and the broker cannot tell it from a slow
//! one. This layer gives every call of the inner service a deadline. When it passes, the
//! inner future is dropped (the handler stops at its next `.await`; whatever it did
//! before stays done, so handlers should be idempotent) and the attempt fails with a
//! **transient** error whose reason is `timeout`: worth retrying, since the next attempt
//! may well be fast.
//!
//! The error is a [`HandlerError`](wharf::HandlerError) with reason
//! [`FailureReason::Timeout`](wharf::FailureReason::Timeout) around an [`Elapsed`], so
//! [`classify`](wharf::error::classify) sees it as transient and a dead letter of it
//! (when the retry policy declines timeouts) says `timeout`. tower's own
//! `tower::timeout::Timeout` composes too, but its error carries no reason code.
//!
//! # Where it goes in a stack
//!
//! Inside the retry layer, so that each try gets its own deadline and a timeout counts
//! as a failed try; outside the panic-catching layer and the handler.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use wharf::error::{classify, ClassifiedError};
//! use wharf::{ErrorKind, FailureReason, Handler, HandlerError, Message};
//! use wharf_middleware::timeout::{Elapsed, TimeoutLayer};
//!
//! async fn slow(_: Message) -> Result<(), HandlerError> {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let mut svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(5)))
//!     .service(slow.into_service());
//!
//! let err = svc.ready().await.unwrap().call(Message::new("x")).await.unwrap_err();
//! let class = classify(&*err);
//! assert_eq!(class.kind, ErrorKind::Transient);
//! assert_eq!(class.reason, FailureReason::Timeout);
//! assert_eq!(err.to_string(), "handler timed out after 5s");
//!
//! // The layer's own error, for callers that want the details:
//! let elapsed = err
//!     .downcast_ref::<ClassifiedError>()
//!     .and_then(|c| c.inner().downcast_ref::<Elapsed>())
//!     .unwrap();
//! assert_eq!(elapsed.timeout(), Duration::from_secs(5));
//! # }
//! ```

mod error;
mod future;
mod layer;

pub use error::Elapsed;
pub use future::ResponseFuture;
pub use layer::TimeoutLayer;

use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;
use wharf::{BoxError, Message, Outcome};

/// Bounds each call of the inner service; see the [module docs](self).
///
/// Readiness is not bounded: `poll_ready` passes through, so a concurrency or rate limit
/// further in still becomes backpressure instead of timeouts.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
}

// ===== impl Timeout =====

impl<S> Timeout<S> {
    /// Wraps `inner`, allowing each call `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Timeout { inner, timeout }
    }

    /// The time each call is allowed.
    pub fn timeout(&self) -> Duration {
        self.timeout
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

impl<S> Service<Message> for Timeout<S>
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
        ResponseFuture::new(self.inner.call(message), self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use tower::{Layer, ServiceExt};
    use wharf::error::{classify, error_chain, failure_of, ClassifiedError};
    use wharf::{ErrorKind, FailureReason};

    use super::*;

    fn sleeper(d: Duration) -> impl Service<Message, Response = Outcome, Error = BoxError> + Clone {
        tower::service_fn(move |_: Message| async move {
            tokio::time::sleep(d).await;
            Ok::<_, BoxError>(Outcome::Ack)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_is_a_transient_timeout() {
        let start = tokio::time::Instant::now();
        let svc = Timeout::new(sleeper(Duration::from_secs(10)), Duration::from_secs(2));
        let err = svc.oneshot(Message::new("m")).await.unwrap_err();
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "gave up at the deadline"
        );
        let class = classify(&*err);
        assert_eq!(class.kind, ErrorKind::Transient);
        assert_eq!(class.reason, FailureReason::Timeout);
        let inner = err
            .downcast_ref::<ClassifiedError>()
            .expect("a classified error")
            .inner()
            .downcast_ref::<Elapsed>()
            .expect("the layer's own error");
        assert_eq!(inner.timeout(), Duration::from_secs(2));
        assert_eq!(error_chain(&*err), "handler timed out after 2s");
        assert_eq!(failure_of(&*err).reason(), &FailureReason::Timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_call_passes_through() {
        let svc = Timeout::new(sleeper(Duration::from_secs(1)), Duration::from_secs(2));
        assert_eq!(svc.oneshot(Message::new("m")).await.unwrap(), Outcome::Ack);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_ready_at_the_deadline_wins() {
        let svc = Timeout::new(sleeper(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(svc.oneshot(Message::new("m")).await.unwrap(), Outcome::Ack);
    }

    #[tokio::test(start_paused = true)]
    async fn inner_errors_keep_their_class() {
        let svc = Timeout::new(
            tower::service_fn(|_: Message| async {
                Err::<Outcome, _>(wharf::HandlerError::permanent("bad"))
            }),
            Duration::from_secs(2),
        );
        let err = svc.oneshot(Message::new("m")).await.unwrap_err();
        assert_eq!(classify(&*err).kind, ErrorKind::Permanent);
    }

    #[tokio::test(start_paused = true)]
    async fn each_call_gets_its_own_deadline() {
        let mut svc =
            TimeoutLayer::new(Duration::from_secs(2)).layer(sleeper(Duration::from_secs(1)));
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let out = svc.ready().await.unwrap().call(Message::new("m")).await;
            assert_eq!(out.unwrap(), Outcome::Ack);
        }
    }
}
