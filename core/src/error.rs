//! Errors: what handlers return, how the stack classifies them, and wharf's own errors.
//!
//! A handler says *what went wrong*, never what to do about it: a
//! [`HandlerError`] is either **transient** (worth retrying: a timeout, a connection
//! reset, a lock conflict) or **permanent** (never worth retrying: invalid data, a
//! business rule that rejects the message, a payload that does not decode). The retry
//! layer, the dead-letter layer and the runtime turn that into an [`Outcome`](crate::Outcome).
//!
//! The stack's error type is [`BoxError`], as in tower, so the order of layers never
//! changes a type. A `HandlerError` travels through it as a [`ClassifiedError`];
//! [`classify`] finds the classification again (any other error counts as transient).

use std::error::Error as StdError;
use std::fmt;

use crate::outcome::{Failure, FailureReason};
use crate::Message;

/// A type-erased error, as used by tower.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Whether an error is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Worth retrying: the same message may succeed later.
    Transient,
    /// Never worth retrying: the same message will fail the same way.
    Permanent,
}

/// The error a handler returns.
///
/// Any error converts into it with `?` and counts as **transient**; mark errors permanent
/// with [`HandlerError::permanent`] or [`ResultExt::permanent`].
///
/// ```
/// use wharf::{HandlerError, ResultExt};
///
/// fn parse_amount(s: &str) -> Result<u64, HandlerError> {
///     // A malformed amount will never parse: permanent.
///     let amount: u64 = s.parse().permanent()?;
///     Ok(amount)
/// }
///
/// async fn call_service() -> Result<(), std::io::Error> { Ok(()) }
///
/// async fn handle() -> Result<(), HandlerError> {
///     call_service().await?; // transient by default
///     Ok(())
/// }
/// # assert!(parse_amount("x").unwrap_err().is_permanent());
/// ```
///
/// `HandlerError` deliberately does not implement [`std::error::Error`] (that is what
/// lets `?` convert *any* error into it); it converts into [`BoxError`] as a
/// [`ClassifiedError`].
pub struct HandlerError {
    inner: Box<ClassifiedError>,
}

impl HandlerError {
    /// A transient error: worth retrying.
    pub fn transient(error: impl Into<BoxError>) -> Self {
        Self::with_kind(ErrorKind::Transient, None, error.into())
    }

    /// A permanent error: dead-lettered with reason `permanent`, never retried.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::with_kind(ErrorKind::Permanent, None, error.into())
    }

    /// A payload that cannot be decoded: permanent, reason `decode`.
    pub fn decode(error: impl Into<BoxError>) -> Self {
        Self::with_kind(
            ErrorKind::Permanent,
            Some(FailureReason::Decode),
            error.into(),
        )
    }

    /// An error of the given kind with an explicit reason code for dead letters.
    pub fn with_reason(kind: ErrorKind, reason: FailureReason, error: impl Into<BoxError>) -> Self {
        Self::with_kind(kind, Some(reason), error.into())
    }

    fn with_kind(kind: ErrorKind, reason: Option<FailureReason>, source: BoxError) -> Self {
        HandlerError {
            inner: Box::new(ClassifiedError {
                kind,
                reason,
                source,
            }),
        }
    }

    /// Transient or permanent.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// `true` for a permanent error.
    pub fn is_permanent(&self) -> bool {
        self.inner.kind == ErrorKind::Permanent
    }

    /// The reason code a dead letter of this error carries.
    pub fn reason(&self) -> FailureReason {
        self.inner.reason()
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner.source
    }

    /// The underlying error, for downcasting.
    pub fn into_source(self) -> BoxError {
        self.inner.source
    }
}

impl<E> From<E> for HandlerError
where
    E: StdError + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        let error: BoxError = Box::new(error);
        match error.downcast::<ClassifiedError>() {
            Ok(classified) => HandlerError { inner: classified },
            Err(error) => HandlerError::transient(error),
        }
    }
}

impl From<HandlerError> for BoxError {
    fn from(e: HandlerError) -> Self {
        e.inner
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

/// A [`HandlerError`] inside a [`BoxError`]: the error plus its classification.
///
/// Layers find it with [`classify`] or `downcast_ref::<ClassifiedError>()`.
#[derive(Debug)]
pub struct ClassifiedError {
    kind: ErrorKind,
    reason: Option<FailureReason>,
    source: BoxError,
}

impl ClassifiedError {
    /// Transient or permanent.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The reason code a dead letter of this error carries.
    pub fn reason(&self) -> FailureReason {
        match (&self.reason, self.kind) {
            (Some(r), _) => r.clone(),
            (None, ErrorKind::Permanent) => FailureReason::Permanent,
            (None, ErrorKind::Transient) => FailureReason::RetriesExhausted,
        }
    }

    /// The handler's own error.
    pub fn inner(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }
}

impl fmt::Display for ClassifiedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl StdError for ClassifiedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// How the stack sees an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Transient or permanent.
    pub kind: ErrorKind,
    /// The reason code a dead letter carries if the error ends the message.
    pub reason: FailureReason,
}

/// Classifies an error from the stack.
///
/// A [`ClassifiedError`] (a [`HandlerError`] in a box) keeps its kind and reason; an
/// error marked by a layer (a timeout, a panic) is found anywhere in the source chain;
/// anything else is transient with reason `retries-exhausted`.
pub fn classify(error: &(dyn StdError + 'static)) -> Classification {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(c) = e.downcast_ref::<ClassifiedError>() {
            return Classification {
                kind: c.kind,
                reason: c.reason(),
            };
        }
        current = e.source();
    }
    Classification {
        kind: ErrorKind::Transient,
        reason: FailureReason::RetriesExhausted,
    }
}

/// Turns an error that reached the end of the stack into a [`Failure`].
pub fn failure_of(error: &(dyn StdError + 'static)) -> Failure {
    Failure::new(classify(error).reason, error_chain(error))
}

/// The error's message followed by its sources, `: `-separated.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut out = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        // ClassifiedError displays as its source: do not print the same text twice.
        let text = e.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        current = e.source();
    }
    out
}

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("non-string panic payload")
    }
}

/// Marks the error of a `Result` as transient or permanent.
pub trait ResultExt<T> {
    /// Converts the error into a permanent [`HandlerError`].
    fn permanent(self) -> Result<T, HandlerError>;
    /// Converts the error into a transient [`HandlerError`].
    fn transient(self) -> Result<T, HandlerError>;
}

impl<T, E: Into<BoxError>> ResultExt<T> for Result<T, E> {
    fn permanent(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::permanent)
    }

    fn transient(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::transient)
    }
}

/// wharf's own errors: configuration, connection, subscription, settlement and publishing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid. Raised at start-up, naming the field.
    #[error("invalid configuration: `{field}`: {reason}")]
    Config {
        /// The field (URL part, builder method or option name).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broker could not be reached or the connection failed.
    #[error("connection failed: {0}")]
    Connection(#[source] BoxError),
    /// The subscription failed (topology, permissions, a closed channel).
    #[error("subscription failed: {0}")]
    Subscribe(#[source] BoxError),
    /// A delivery could not be settled (ack, retry or dead-letter).
    #[error("settling a delivery failed: {0}")]
    Settle(#[source] BoxError),
    /// The service stack failed outside a message (its `poll_ready` returned an error).
    #[error("the service stack failed: {0}")]
    Service(#[source] BoxError),
    /// A publish was not confirmed (the error hands the message back).
    #[error(transparent)]
    Publish(#[from] Box<PublishError>),
}

impl From<PublishError> for Error {
    fn from(e: PublishError) -> Self {
        Error::Publish(Box::new(e))
    }
}

impl Error {
    /// A configuration error naming `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with wharf's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A publish failed (not confirmed by the broker). Hands the message back.
#[derive(thiserror::Error)]
#[error("publishing to `{destination}` failed: {source}")]
pub struct PublishError {
    destination: String,
    message: Box<Message>,
    #[source]
    source: BoxError,
}

impl PublishError {
    /// A failed publish of `message` to `destination`.
    pub fn new(
        destination: impl Into<String>,
        message: Message,
        source: impl Into<BoxError>,
    ) -> Self {
        PublishError {
            destination: destination.into(),
            message: Box::new(message),
            source: source.into(),
        }
    }

    /// Where the message was to go.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The message that was not published.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message that was not published, to try again or elsewhere.
    pub fn into_message(self) -> Message {
        *self.message
    }
}

impl fmt::Debug for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishError")
            .field("destination", &self.destination)
            .field("message_id", self.message.id())
            .field("source", &self.source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("db down")]
    struct DbDown;

    #[test]
    fn question_mark_is_transient_and_permanent_survives_boxing() {
        fn f() -> Result<(), HandlerError> {
            Err(DbDown)?;
            Ok(())
        }
        let e = f().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient);

        let boxed: BoxError = HandlerError::permanent(DbDown).into();
        let c = classify(&*boxed);
        assert_eq!(c.kind, ErrorKind::Permanent);
        assert_eq!(c.reason, FailureReason::Permanent);
        // And back: converting a boxed classified error keeps its class.
        let again = HandlerError::transient(boxed);
        assert_eq!(classify(&*BoxError::from(again)).kind, ErrorKind::Transient);
    }

    #[test]
    fn unknown_errors_are_transient() {
        let boxed: BoxError = Box::new(DbDown);
        assert_eq!(classify(&*boxed).kind, ErrorKind::Transient);
    }

    #[test]
    fn error_chain_does_not_repeat_classified_text() {
        let boxed: BoxError = HandlerError::decode(DbDown).into();
        assert_eq!(error_chain(&*boxed), "db down");
        assert_eq!(failure_of(&*boxed).reason(), &FailureReason::Decode);
    }

    #[test]
    fn config_error_names_the_field() {
        let e = Error::config("max_in_flight", "must be at least 1");
        assert_eq!(
            e.to_string(),
            "invalid configuration: `max_in_flight`: must be at least 1"
        );
    }
}
