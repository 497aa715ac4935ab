//! The adapter's own error: what went wrong talking to Kafka, with the step that failed.
//!
//! Public functions return [`wharf::Error`] (configuration, connection, subscription,
//! settlement) or [`wharf::PublishError`]; a [`KafkaError`] is their source, found with
//! `downcast_ref`. Neither ever contains a password: librdkafka's configuration errors
//! are reported by property name only (see [`config`](crate::config)).

use wharf::BoxError;

/// A failed Kafka operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// A client call failed.
    #[error("{what}: {source}")]
    Client {
        /// The step that failed (`subscribing`, `publishing`, ...).
        what: String,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
}

impl KafkaError {
    /// A failed client call during `what`.
    pub(crate) fn client(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        KafkaError::Client {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// `wharf::Error::Connection` from a failed client call.
pub(crate) fn connection(what: impl Into<String>, source: impl Into<BoxError>) -> wharf::Error {
    wharf::Error::Connection(Box::new(KafkaError::client(what, source)))
}

/// `wharf::Error::Subscribe` from a failed client call.
pub(crate) fn subscribe(what: impl Into<String>, source: impl Into<BoxError>) -> wharf::Error {
    wharf::Error::Subscribe(Box::new(KafkaError::client(what, source)))
}

/// `wharf::Error::Settle` from a failed client call.
pub(crate) fn settle(what: impl Into<String>, source: impl Into<BoxError>) -> wharf::Error {
    wharf::Error::Settle(Box::new(KafkaError::client(what, source)))
}
