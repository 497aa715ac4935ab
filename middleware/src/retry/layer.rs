use std::sync::Arc;

use tower::Layer;

use super::{Retry, RetryPolicy};

/// Builds [`Retry`] services.
///
/// Holds configuration only; `layer` is a clone plus [`Retry`] construction.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
    consumer: Arc<str>,
}

/// What every [`Retry`] built by one layer shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) policy: RetryPolicy,
    /// The `consumer` label of `wharf_retries_total`.
    pub(crate) consumer: Arc<str>,
}

// ===== impl RetryLayer =====

impl RetryLayer {
    /// Retries by `policy`. The `consumer` label of the retries metric is empty until
    /// set with [`consumer`](Self::consumer).
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer {
            policy,
            consumer: Arc::from(""),
        }
    }

    /// The consumer's name, for the `consumer` label of `wharf_retries_total`.
    pub fn consumer(mut self, name: impl Into<Arc<str>>) -> Self {
        self.consumer = name.into();
        self
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
                consumer: self.consumer,
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
