//! What should happen to a delivery: the response type of every wharf stack.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// What should happen to a delivery once the stack is done with it.
///
/// Layers rewrite the outcome (retry turns a transient error into [`Outcome::Retry`], or
/// into [`Outcome::DeadLetter`] once attempts are spent; the dead-letter layer turns a
/// dead-letter outcome into [`Outcome::Ack`] once the copy is published). None of them
/// settles the delivery: the consumer runtime does that exactly once, outermost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: remove the message from the source.
    Ack,
    /// Redeliver later, without blocking unrelated work.
    Retry {
        /// How long to wait before the redelivery.
        after: Duration,
    },
    /// Give up: publish to the dead-letter destination, then remove from the source.
    DeadLetter(Failure),
    /// Give up and discard. Explicit, counted and logged; never silent.
    Drop(Failure),
}

impl Outcome {
    /// `Retry` with no delay.
    pub const RETRY_NOW: Outcome = Outcome::Retry {
        after: Duration::ZERO,
    };

    /// A retry after `after`.
    pub fn retry_after(after: Duration) -> Self {
        Outcome::Retry { after }
    }

    /// Short label for logs and metrics: `ack`, `retry`, `dead_letter` or `drop`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ack => "ack",
            Outcome::Retry { .. } => "retry",
            Outcome::DeadLetter(_) => "dead_letter",
            Outcome::Drop(_) => "drop",
        }
    }

    /// The failure of a `DeadLetter` or `Drop` outcome.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::DeadLetter(f) | Outcome::Drop(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ack => f.write_str("acked"),
            Outcome::Retry { after } => write!(f, "retry after {after:?}"),
            Outcome::DeadLetter(fail) => write!(f, "dead-lettered ({fail})"),
            Outcome::Drop(fail) => write!(f, "dropped ({fail})"),
        }
    }
}

/// Why a message was given up on: a reason code plus the error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    reason: FailureReason,
    error: String,
}

impl Failure {
    /// A failure with `reason` and error text `error`.
    pub fn new(reason: FailureReason, error: impl Into<String>) -> Self {
        Failure {
            reason,
            error: error.into(),
        }
    }

    /// The reason code (the `wharf-dlq-reason` header).
    pub fn reason(&self) -> &FailureReason {
        &self.reason
    }

    /// The error text (the `wharf-dlq-error` header, truncated there).
    pub fn error(&self) -> &str {
        &self.error
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.error)
    }
}

/// Reason codes for dead letters and drops, written to `wharf-dlq-reason`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureReason {
    /// The handler returned a permanent error.
    Permanent,
    /// The payload could not be decoded.
    Decode,
    /// A transient failure persisted through every allowed attempt.
    RetriesExhausted,
    /// The handler panicked and the panic was not retried (a retry predicate declined
    /// it). Once retries are spent the reason is [`RetriesExhausted`](Self::RetriesExhausted),
    /// with the panic in the error text.
    HandlerPanic,
    /// The handler timed out and the timeout was not retried (a retry predicate declined
    /// it). Once retries are spent the reason is [`RetriesExhausted`](Self::RetriesExhausted),
    /// with the timeout in the error text.
    Timeout,
    /// Any other reason, named by the layer or handler that gave up.
    Other(Cow<'static, str>),
}

impl FailureReason {
    /// The reason as written in headers and metric labels.
    pub fn as_str(&self) -> &str {
        match self {
            FailureReason::Permanent => "permanent",
            FailureReason::Decode => "decode",
            FailureReason::RetriesExhausted => "retries-exhausted",
            FailureReason::HandlerPanic => "handler-panic",
            FailureReason::Timeout => "timeout",
            FailureReason::Other(s) => s,
        }
    }

    /// Parses a reason code as written by [`FailureReason::as_str`].
    pub fn parse(s: &str) -> Self {
        match s {
            "permanent" => FailureReason::Permanent,
            "decode" => FailureReason::Decode,
            "retries-exhausted" => FailureReason::RetriesExhausted,
            "handler-panic" => FailureReason::HandlerPanic,
            "timeout" => FailureReason::Timeout,
            other => FailureReason::Other(Cow::Owned(other.to_owned())),
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_round_trip() {
        for r in [
            FailureReason::Permanent,
            FailureReason::Decode,
            FailureReason::RetriesExhausted,
            FailureReason::HandlerPanic,
            FailureReason::Timeout,
            FailureReason::Other("custom".into()),
        ] {
            assert_eq!(FailureReason::parse(r.as_str()), r);
        }
    }
}
