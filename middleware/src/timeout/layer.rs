use std::time::Duration;

use tower::Layer;

use super::Timeout;

/// Builds [`Timeout`] services.
///
/// Holds configuration only; `layer` is a copy plus [`Timeout`] construction.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
}

// ===== impl TimeoutLayer =====

impl TimeoutLayer {
    /// Each attempt may take at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        TimeoutLayer { timeout }
    }

    /// The time each attempt is allowed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.timeout)
    }
}
