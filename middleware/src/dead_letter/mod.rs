//! Middleware that publishes dead letters and acks them once the broker confirmed.
//!
//! A message the stack gives up on — an [`Outcome::DeadLetter`], or a permanent error
//! such as a payload that does not decode — must go somewhere an operator can see it,
//! replay it or discard it on purpose. Brokers disagree on where that is (RabbitMQ has
//! dead-letter exchanges, Kafka nothing, JetStream advisories), so wharf publishes the
//! dead letter itself, through the adapter's [`Publisher`], with the
//! same headers on every broker:
//!
//! | header | value |
//! |---|---|
//! | `wharf-dlq-reason` | `permanent`, `decode`, `retries-exhausted`, `handler-panic`, `timeout`, ... |
//! | `wharf-dlq-error` | the error text, truncated to [`max_error_len`](DeadLetterLayer::max_error_len) bytes |
//! | `wharf-dlq-source`, `-partition`, `-offset` | where the message came from |
//! | `wharf-dlq-consumer` | the consumer that gave up |
//! | `wharf-dlq-attempts` | attempts made |
//! | `wharf-dlq-failed-at` | when, RFC 3339 |
//!
//! The copy keeps the original id, key, headers and payload. Only once the publish is
//! confirmed does the outcome become [`Outcome::Ack`]; if the publish fails, the outcome
//! becomes a [`Retry`](Outcome::Retry) and the message comes back later. A message is
//! never acked without a confirmed dead letter.
//!
//! Transient errors pass through untouched: retrying them is the retry layer's (or the
//! runtime's) business.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use tower::ServiceBuilder;
//! use wharf::{Handler, HandlerError, Json, Message};
//! use wharf_memory::{Harness, MemoryBroker};
//! use wharf_middleware::dead_letter::DeadLetterLayer;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u64 }
//!
//! async fn handle(Json(order): Json<Order>) -> Result<(), HandlerError> {
//!     let _ = order.id;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let broker = MemoryBroker::new();
//! let stack = ServiceBuilder::new()
//!     .layer(DeadLetterLayer::new(broker.clone()))
//!     .service(handle.into_service());
//!
//! let mut harness = Harness::with_broker(broker, stack).topic("orders");
//! let poison = harness.publish(Message::new("not json"));
//! let report = harness.run_until_idle().await;
//!
//! report.assert_dead_lettered(&poison, "decode");
//! let copy = report.dead_letter(&poison).unwrap();
//! assert_eq!(copy.headers().get_str("wharf-dlq-source"), Some("orders"));
//! # }
//! ```
//!
//! [`Outcome::DeadLetter`]: wharf::Outcome::DeadLetter
//! [`Outcome::Ack`]: wharf::Outcome::Ack

mod future;
mod layer;

pub use future::ResponseFuture;
pub use layer::{DeadLetterLayer, Destination};
pub use wharf::adapter::dead_letter::dead_letter_message;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;
use wharf::{BoxError, Message, Outcome, Publisher};

use layer::Config;

/// Publishes dead letters; see the [module docs](self).
pub struct DeadLetter<S> {
    inner: S,
    publisher: Arc<dyn Publisher>,
    config: Arc<Config>,
}

// ===== impl DeadLetter =====

impl<S> DeadLetter<S> {
    /// Wraps `inner`, publishing dead letters through `publisher`.
    pub fn new(inner: S, publisher: impl Publisher) -> Self {
        DeadLetterLayer::new(publisher).wrap(inner)
    }

    pub(crate) fn from_parts(inner: S, publisher: Arc<dyn Publisher>, config: Arc<Config>) -> Self {
        DeadLetter {
            inner,
            publisher,
            config,
        }
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

impl<S: Clone> Clone for DeadLetter<S> {
    fn clone(&self) -> Self {
        DeadLetter {
            inner: self.inner.clone(),
            publisher: self.publisher.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for DeadLetter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Message> for DeadLetter<S>
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
        let fut = self.inner.call(message.clone());
        ResponseFuture::new(fut, message, self.publisher.clone(), self.config.clone())
    }
}
