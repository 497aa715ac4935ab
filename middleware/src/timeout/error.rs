use std::fmt;
use std::time::Duration;

/// The error of an attempt that ran out of time.
///
/// The [`Timeout`](super::Timeout) layer returns it inside a transient
/// [`HandlerError`](wharf::HandlerError) with reason `timeout`; find it with
/// [`ClassifiedError::inner`](wharf::error::ClassifiedError::inner) and `downcast_ref`,
/// or by walking the error's sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    timeout: Duration,
}

impl Elapsed {
    pub(crate) fn new(timeout: Duration) -> Self {
        Elapsed { timeout }
    }

    /// The time the attempt was allowed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "handler timed out after {}",
            humantime::format_duration(self.timeout)
        )
    }
}

impl std::error::Error for Elapsed {}
