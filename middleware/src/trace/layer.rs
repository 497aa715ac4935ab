use std::fmt;

use tower::Layer;
use tracing::Level;

use super::Trace;

/// Builds [`Trace`] services.
///
/// Holds configuration only (the span level); `layer` is a clone plus [`Trace`]
/// construction.
#[derive(Clone)]
pub struct TraceLayer {
    level: Level,
}

// ===== impl TraceLayer =====

impl TraceLayer {
    /// Spans name the consumer the runtime stamped on the message in their `consumer`
    /// field. Default level: `INFO`.
    pub fn new() -> Self {
        TraceLayer { level: Level::INFO }
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

impl Default for TraceLayer {
    fn default() -> Self {
        TraceLayer::new()
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace::from_parts(inner, self.level)
    }
}

impl fmt::Debug for TraceLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceLayer")
            .field("level", &self.level)
            .finish()
    }
}
