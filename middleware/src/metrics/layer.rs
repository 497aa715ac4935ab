use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::Metrics;

/// Builds [`Metrics`] services.
///
/// Holds configuration only (the consumer name); `layer` is a clone plus
/// [`Metrics::new`].
#[derive(Clone)]
pub struct MetricsLayer {
    consumer: Arc<str>,
}

// ===== impl MetricsLayer =====

impl MetricsLayer {
    /// Records metrics labelled `consumer = consumer`.
    pub fn new(consumer: impl Into<Arc<str>>) -> Self {
        MetricsLayer {
            consumer: consumer.into(),
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::new(inner, self.consumer.clone())
    }
}

impl fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("consumer", &self.consumer)
            .finish()
    }
}
