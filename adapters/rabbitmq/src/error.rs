//! The adapter's own errors. They reach callers boxed inside [`wharf::Error`] or
//! [`wharf::PublishError`]; `downcast_ref::<RabbitError>()` finds them.
//!
//! No error carries the connection URL or the password.

use std::time::Duration;

/// What went wrong talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RabbitError {
    /// An AMQP operation failed (connection, channel or protocol error).
    #[error("{doing}: {source}")]
    Amqp {
        /// What the adapter was doing (`declaring queue "orders"`, ...).
        doing: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// A `mandatory` publish was returned: nothing is bound for its routing key.
    #[error(
        "the broker returned the message as unroutable ({code} {text}): nothing is bound to \
         exchange `{exchange}` with routing key `{routing_key}`"
    )]
    Unroutable {
        /// The exchange published to (empty: the default exchange).
        exchange: String,
        /// The routing key.
        routing_key: String,
        /// The broker's reply code (312, NO_ROUTE).
        code: u16,
        /// The broker's reply text.
        text: String,
    },
    /// The broker answered the publish with a negative confirm.
    #[error("the broker refused the message (negative publisher confirm)")]
    Nacked,
    /// An operation took longer than its bound.
    #[error("{doing} timed out after {after:?}")]
    Timeout {
        /// What the adapter was doing.
        doing: String,
        /// The bound.
        after: Duration,
    },
    /// The delivery's channel is gone (closed, or replaced by a reconnect): the
    /// settlement could not be sent, and the broker redelivers the message.
    #[error("the settlement was not sent: the delivery's channel is closed (the broker redelivers the message)")]
    StaleChannel,
    /// A header name does not fit an AMQP short string (255 bytes).
    #[error("header name `{0}…` is longer than 255 bytes")]
    HeaderName(String),
    /// A destination does not parse (see [`RabbitPublisher`](crate::RabbitPublisher)).
    #[error("invalid destination `{0}`: {1}")]
    Destination(String, &'static str),
    /// The TLS settings could not be used (the `tls_ca_file` became unreadable after
    /// start-up).
    #[error("TLS: {0}")]
    Tls(String),
    /// The subscriber was closed.
    #[error("the subscriber is closed")]
    Closed,
}

impl RabbitError {
    pub(crate) fn amqp(doing: impl Into<String>, source: lapin::Error) -> Self {
        RabbitError::Amqp {
            doing: doing.into(),
            source,
        }
    }
}

/// Awaits `fut` for at most `after`.
pub(crate) async fn timeout<T>(
    after: Duration,
    doing: &str,
    fut: impl std::future::Future<Output = Result<T, RabbitError>>,
) -> Result<T, RabbitError> {
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r,
        Err(_) => Err(RabbitError::Timeout {
            doing: doing.to_owned(),
            after,
        }),
    }
}
