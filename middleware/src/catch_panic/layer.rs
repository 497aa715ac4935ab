use tower::Layer;

use super::CatchPanic;

/// Builds [`CatchPanic`] services. It has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer {
    _priv: (),
}

// ===== impl CatchPanicLayer =====

impl CatchPanicLayer {
    /// A layer that turns panics into transient failures.
    pub fn new() -> Self {
        CatchPanicLayer { _priv: () }
    }
}

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic::new(inner)
    }
}
