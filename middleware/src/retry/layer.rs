use std::sync::Arc;

use tower::Layer;

use super::{Retry, RetryPolicy};

/// Builds [`Retry`] services.
///
/// Holds configuration only; `layer` is a clone plus [`Retry`] construction.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
}

/// What every [`Retry`] built by one layer shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) policy: RetryPolicy,
}

// ===== impl RetryLayer =====

impl RetryLayer {
    /// Retries by `policy`. The `consumer` label of the retries metric is the consumer
    /// the runtime stamped on the message.
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer { policy }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    pub(crate) fn wrap<S>(self, inner: S) -> Retry<S> {
        Retry::from_parts(
            inner,
            Arc::new(Shared {
                policy: self.policy,
            }),
        )
    }
}

impl Default for RetryLayer {
    /// A layer with the default [`RetryPolicy`].
    fn default() -> Self {
        RetryLayer::new(RetryPolicy::default())
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.clone().wrap(inner)
    }
}
