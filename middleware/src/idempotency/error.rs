//! Errors of the idempotency layer. Callers find them with `downcast_ref` on the
//! stack's [`BoxError`].

use std::error::Error as StdError;
use std::fmt;

use wharf::BoxError;

/// The idempotency store failed to grant or refuse a claim.
///
/// The handler did not run. The error is **transient** (see
/// [`classify`](wharf::error::classify)): the retry layer retries it like any transient
/// failure, and without one the runtime redelivers the message. Give the retry layer a
/// predicate that looks for this type to treat a store outage differently from handler
/// failures.
pub struct StoreError {
    source: BoxError,
}

impl StoreError {
    pub(crate) fn new(source: BoxError) -> Self {
        StoreError { source }
    }

    /// The store's own error.
    pub fn inner(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }

    /// The store's own error, for downcasting.
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreError").field(&self.source).finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the idempotency store could not claim the key")
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// The message carries no idempotency key, and the layer was told to
/// [reject](super::MissingKey::Reject) such messages.
///
/// Travels as a **permanent** error with reason `missing-idempotency-key`
/// ([`MissingKeyError::REASON`]): the dead-letter layer publishes the message with that
/// reason; it is never retried. The stack's error is the
/// [`ClassifiedError`](wharf::error::ClassifiedError) carrying that classification; this
/// type is its source.
#[derive(Debug)]
pub struct MissingKeyError {
    _private: (),
}

impl MissingKeyError {
    /// The dead-letter reason code of a message rejected for having no key.
    pub const REASON: &'static str = "missing-idempotency-key";

    pub(crate) fn new() -> Self {
        MissingKeyError { _private: () }
    }
}

impl fmt::Display for MissingKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the message has no idempotency key")
    }
}

impl StdError for MissingKeyError {}
