use std::fmt;

use tower::Layer;

use super::Metrics;

/// Builds [`Metrics`] services.
///
/// Holds no configuration: the `consumer` label is the name the runtime stamped on each
/// message. `layer` is [`Metrics::new`].
#[derive(Clone, Default)]
pub struct MetricsLayer {
    _private: (),
}

// ===== impl MetricsLayer =====

impl MetricsLayer {
    /// Records metrics labelled with the consumer the runtime stamped on the message.
    pub fn new() -> Self {
        MetricsLayer::default()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::new(inner)
    }
}

impl fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer").finish()
    }
}
