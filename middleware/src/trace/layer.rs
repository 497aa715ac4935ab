use std::fmt;
use std::sync::Arc;

use tower::Layer;
use tracing::Level;

use super::Trace;

/// Builds [`Trace`] services.
///
/// Holds configuration only (the consumer name and the span level); `layer` is a clone
/// plus [`Trace`] construction.
#[derive(Clone)]
pub struct TraceLayer {
    consumer: Arc<str>,
    level: Level,
}

// ===== impl TraceLayer =====

impl TraceLayer {
    /// Spans name `consumer` in their `consumer` field. Default level: `INFO`.
    pub fn new(consumer: impl Into<Arc<str>>) -> Self {
        TraceLayer {
            consumer: consumer.into(),
            level: Level::INFO,
        }
    }

    /// The level of the per-message span (default `INFO`).
    ///
    /// Only the span is affected: trace context is read and propagated at every level,
    /// even when no subscriber is interested.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace::from_parts(inner, self.consumer.clone(), self.level)
    }
}

impl fmt::Debug for TraceLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceLayer")
            .field("consumer", &self.consumer)
            .field("level", &self.level)
            .finish()
    }
}
