//! The adapter's own error: what went wrong talking to NATS, with the step that failed.
//!
//! Public functions return [`wharf::Error`] (configuration, connection, subscription,
//! settlement) or [`wharf::PublishError`]; a [`NatsError`] is their source, found with
//! `downcast_ref`. Neither ever contains a password or a token: the client library only
//! sees server addresses without credentials.

use wharf::BoxError;

/// A failed NATS operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// A client call failed.
    #[error("{what}: {source}")]
    Client {
        /// The step that failed (`creating stream`, `publishing`, ...).
        what: String,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
    /// The broker answered, but not as required.
    #[error("{0}")]
    Rejected(String),
}

impl NatsError {
    /// A failed client call during `what`.
    pub(crate) fn client(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        NatsError::Client {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// `wharf::Error::Connection` from a failed client call.
pub(crate) fn connection(what: impl Into<String>, source: impl Into<BoxError>) -> wharf::Error {
    wharf::Error::Connection(Box::new(NatsError::client(what, source)))
}

/// `wharf::Error::Subscribe` from a failed client call.
pub(crate) fn subscribe(what: impl Into<String>, source: impl Into<BoxError>) -> wharf::Error {
    wharf::Error::Subscribe(Box::new(NatsError::client(what, source)))
}

/// `wharf::Error::Settle` from a failed client call.
pub(crate) fn settle(what: impl Into<String>, source: impl Into<BoxError>) -> wharf::Error {
    wharf::Error::Settle(Box::new(NatsError::client(what, source)))
}
