use std::fmt;

/// The error of an attempt whose handler panicked, with the panic message.
///
/// The [`CatchPanic`](super::CatchPanic) layer returns it inside a transient
/// [`HandlerError`](wharf::HandlerError) with reason `handler-panic`; find it with
/// [`ClassifiedError::inner`](wharf::error::ClassifiedError::inner) and `downcast_ref`,
/// or by walking the error's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    message: String,
}

impl Panicked {
    pub(crate) fn new(message: String) -> Self {
        Panicked { message }
    }

    /// The panic message (`"non-string panic payload"` when the payload was neither a
    /// `&str` nor a `String`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler panicked: {}", self.message)
    }
}

impl std::error::Error for Panicked {}
