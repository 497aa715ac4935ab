//! Middleware that gives every message a `tracing` span and carries W3C trace context
//! through the consumer.
//!
//! A message is one hop of a longer story: something published it, and whatever the
//! handler (or wharf, on its behalf) publishes next continues it. Two things make that
//! story readable. Locally, every log line written while handling a message should say
//! which message it was about, without each handler repeating it; across services, the
//! hops should join up into one trace. This layer does both:
//!
//! - **A span per message**, `wharf.message`, entered whenever the inner future is
//!   polled, so every event the layers and the handler emit carries the message's
//!   fields. `outcome` is recorded when the stack completes.
//! - **W3C trace context**: the incoming [`traceparent`] header is parsed strictly
//!   ([`TraceContext::parse`]); the message passed inward carries a *new* `traceparent`
//!   with the same trace id (or, when the span is recorded, a fresh one if the header
//!   was missing or invalid), a fresh span id standing for this consumer's processing,
//!   and the same flags. Anything
//!   published from the message inside this layer — the dead-letter copy, which keeps
//!   the headers, or a copy republished for a retry — therefore continues the trace as a
//!   child of this consumer, and a handler that publishes can do the same with
//!   [`TraceContext::from_headers`] and [`TraceContext::inject`]. A redelivery by the
//!   broker brings back the original headers, so each attempt becomes a sibling span
//!   under the same upstream parent. (A message without a valid `traceparent` starts a
//!   new trace on each delivery when the span is recorded; its attempts share the
//!   `message_id` field.)
//!
//! The span's fields:
//!
//! | field | value |
//! |---|---|
//! | `message_id` | [`Message::id`](wharf::Message::id) |
//! | `source` | the queue, topic or subject ([`Origin::source`](wharf::Origin::source)) |
//! | `partition`, `offset` | where the broker has them |
//! | `attempt` | 1 on the first delivery |
//! | `consumer` | the consumer's name, as the runtime stamped it on the message |
//! | `trace_id` | the trace the message belongs to (incoming, or new) |
//! | `span_id` | this consumer's span id: the `parent-id` of the `traceparent` passed inward |
//! | `parent_span_id` | the incoming `parent-id`, when the message carried a valid `traceparent` |
//! | `outcome` | `ack`, `retry`, `dead_letter`, `drop`, or `error` (recorded at completion) |
//! | `error` | the error's text, when the stack returned an error |
//!
//! wharf has no OpenTelemetry dependency: ids are plain [`TraceId`] and [`SpanId`]
//! values on the span, so an OpenTelemetry bridge can later map `trace_id`, `span_id`
//! and `parent_span_id` onto its own span and propagator without changing the header
//! format.
//!
//! # Cost
//!
//! The incoming `traceparent` is looked up and parsed on every message. A new context
//! (one random span id, two random ids for a new trace) and the copy-on-write change to
//! the headers are made only when there is something to continue or to record: a valid
//! incoming `traceparent`, or a subscriber interested in the span at its
//! [level](TraceLayer::level). A message without a `traceparent`, handled where no
//! subscriber records the span, is passed on untouched (no trace would ever show the
//! ids, and a downstream consumer starts its own). The span itself costs next to
//! nothing when no subscriber is interested.
//!
//! In the recommended stack this layer sits inside the metrics layer and outside the
//! dead-letter and retry layers: it sees every attempt, and what they publish already
//! carries the consumer's trace context.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use tower::ServiceBuilder;
//! use wharf::{Handler, HandlerError, Message};
//! use wharf_memory::{Harness, MemoryBroker};
//! use wharf_middleware::dead_letter::DeadLetterLayer;
//! use wharf_middleware::trace::{TraceContext, TraceLayer};
//!
//! async fn handle(msg: Message) -> Result<(), HandlerError> {
//!     // Inside the span: this event carries message_id, source, trace_id, ...
//!     tracing::info!(len = msg.payload().len(), "refusing the message");
//!     Err(HandlerError::permanent("never valid"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let broker = MemoryBroker::new();
//! let stack = ServiceBuilder::new()
//!     .layer(TraceLayer::new())
//!     .layer(DeadLetterLayer::new(broker.clone()))
//!     .service(handle.into_service());
//! let mut harness = Harness::with_broker(broker, stack).topic("orders");
//!
//! let upstream = TraceContext::new_root();
//! let mut msg = Message::new("payload");
//! upstream.inject(msg.headers_mut());
//! let id = harness.publish(msg);
//! let report = harness.run_until_idle().await;
//!
//! // The dead letter continues the trace, as a child of the consumer's processing.
//! let copy = report.dead_letter(&id).expect("dead-lettered");
//! let ctx = TraceContext::from_headers(copy.headers()).expect("valid traceparent");
//! assert_eq!(ctx.trace_id(), upstream.trace_id());
//! assert_ne!(ctx.span_id(), upstream.span_id());
//! # }
//! ```
//!
//! [`traceparent`]: https://www.w3.org/TR/trace-context/#traceparent-header

mod context;
mod future;
mod layer;

pub use context::{SpanId, TraceContext, TraceId};
pub use future::ResponseFuture;
pub use layer::TraceLayer;

use std::fmt;
use std::task::{Context, Poll};

use tower::Service;
use tracing::{Level, Span};
use wharf::{BoxError, Message, Outcome};

/// Wraps each message in a span and propagates its trace context; see the
/// [module docs](self).
#[derive(Clone)]
pub struct Trace<S> {
    inner: S,
    level: Level,
}

// ===== impl Trace =====

impl<S> Trace<S> {
    /// Wraps `inner` (span level `INFO`); spans name the consumer the runtime stamped
    /// on the message.
    pub fn new(inner: S) -> Self {
        Trace::from_parts(inner, Level::INFO)
    }

    pub(crate) fn from_parts(inner: S, level: Level) -> Self {
        Trace { inner, level }
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

impl<S: fmt::Debug> fmt::Debug for Trace<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("inner", &self.inner)
            .field("level", &self.level)
            .finish()
    }
}

impl<S> Service<Message> for Trace<S>
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

    fn call(&mut self, mut message: Message) -> Self::Future {
        let consumer = crate::telemetry::consumer_of(&message);
        let span = message_span(self.level, &message, consumer);
        let incoming = TraceContext::from_headers(message.headers());
        // A context is made when there is a trace to continue (a valid incoming
        // `traceparent`) or a span to record it on; otherwise nobody would ever see it,
        // and the ids, the header text and the header copy are skipped.
        let ctx = match &incoming {
            Some(parent) => Some(parent.child()),
            None if !span.is_disabled() => Some(TraceContext::new_root()),
            None => None,
        };
        if let Some(ctx) = &ctx {
            ctx.inject(message.headers_mut());
            span.record("trace_id", tracing::field::display(ctx.trace_id()));
            span.record("span_id", tracing::field::display(ctx.span_id()));
            if let Some(parent) = &incoming {
                span.record("parent_span_id", tracing::field::display(parent.span_id()));
            }
        }
        let fut = span.in_scope(|| self.inner.call(message));
        ResponseFuture::new(fut, span)
    }
}

/// The `wharf.message` span at `level` (a span's level is part of its static callsite,
/// hence one callsite per level).
fn message_span(level: Level, message: &Message, consumer: &str) -> Span {
    macro_rules! span {
        ($level:expr) => {
            tracing::span!(
                $level,
                "wharf.message",
                message_id = %message.id(),
                source = message.origin().source(),
                partition = message.origin().partition(),
                offset = message.origin().offset(),
                attempt = message.attempt(),
                consumer,
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
                parent_span_id = tracing::field::Empty,
                outcome = tracing::field::Empty,
                error = tracing::field::Empty,
            )
        };
    }
    match level {
        Level::ERROR => span!(Level::ERROR),
        Level::WARN => span!(Level::WARN),
        Level::INFO => span!(Level::INFO),
        Level::DEBUG => span!(Level::DEBUG),
        Level::TRACE => span!(Level::TRACE),
    }
}
