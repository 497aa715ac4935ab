use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;
use wharf::{Message, Publisher};

use super::DeadLetter;

/// Where dead letters go.
#[derive(Clone)]
pub enum Destination {
    /// The message's source plus a suffix (default: `<source>.dlq`).
    Suffix(Arc<str>),
    /// One fixed destination for every message.
    Fixed(Arc<str>),
    /// Computed from the message.
    With(Arc<dyn Fn(&Message) -> String + Send + Sync>),
}

impl Destination {
    pub(crate) fn resolve(&self, message: &Message) -> String {
        match self {
            Destination::Suffix(suffix) => {
                let source = message.origin().source();
                let source = if source.is_empty() { "wharf" } else { source };
                format!("{source}{suffix}")
            }
            Destination::Fixed(d) => d.to_string(),
            Destination::With(f) => f(message),
        }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Suffix(s) => f.debug_tuple("Suffix").field(s).finish(),
            Destination::Fixed(s) => f.debug_tuple("Fixed").field(s).finish(),
            Destination::With(_) => f.write_str("With(<fn>)"),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) destination: Destination,
    pub(crate) max_error_len: usize,
    pub(crate) retry_after_publish_failure: Duration,
    pub(crate) max_retry_after_publish_failure: Duration,
}

impl Config {
    /// The redelivery delay after the dead letter of attempt `attempt` could not be
    /// published: `retry_after_publish_failure × 2^(attempt-1)`, capped.
    pub(crate) fn publish_failure_backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.retry_after_publish_failure
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_retry_after_publish_failure)
    }
}

/// Builds [`DeadLetter`] services.
///
/// Holds configuration only; `layer` is a clone plus [`DeadLetter`] construction.
#[derive(Clone)]
pub struct DeadLetterLayer {
    publisher: Arc<dyn Publisher>,
    destination: Destination,
    max_error_len: usize,
    retry_after_publish_failure: Duration,
    max_retry_after_publish_failure: Duration,
}

impl DeadLetterLayer {
    /// Dead letters are published through `publisher`, naming the consumer the runtime
    /// stamped on the message in `wharf-dlq-consumer`. Defaults: destination
    /// `<source>.dlq`, error text bounded to 4 KiB, a failed publish redelivered after
    /// 1 s, doubling per attempt up to 5 min.
    ///
    /// The copy is cut to the publisher's
    /// [`max_message_bytes`](wharf::Publisher::max_message_bytes) first (see
    /// [`wharf::adapter::dead_letter::fit`]), so a message near the broker's limit still gets its
    /// dead letter.
    pub fn new(publisher: impl Publisher) -> Self {
        DeadLetterLayer {
            publisher: Arc::new(publisher),
            destination: Destination::Suffix(".dlq".into()),
            max_error_len: wharf::adapter::dead_letter::DEFAULT_MAX_ERROR_LEN,
            retry_after_publish_failure: Duration::from_secs(1),
            max_retry_after_publish_failure: Duration::from_secs(300),
        }
    }

    /// Where dead letters go.
    pub fn destination(mut self, destination: Destination) -> Self {
        self.destination = destination;
        self
    }

    /// Bound on `wharf-dlq-error`, in bytes (cut at a character boundary, with `…`).
    pub fn max_error_len(mut self, max: usize) -> Self {
        self.max_error_len = max;
        self
    }

    /// How long to wait before redelivering a message whose dead letter could not be
    /// published, the first time (default 1 s); it doubles with every attempt of the
    /// message up to [`max_retry_after_publish_failure`](Self::max_retry_after_publish_failure).
    /// Never a tight loop: a dead-letter destination that is gone costs one publish per
    /// backoff, counted in `wharf_settle_failures_total{reason="dead_letter_publish"}`.
    pub fn retry_after_publish_failure(mut self, delay: Duration) -> Self {
        self.retry_after_publish_failure = delay;
        self
    }

    /// Cap on the backoff after failed dead-letter publishes (default 5 min).
    pub fn max_retry_after_publish_failure(mut self, delay: Duration) -> Self {
        self.max_retry_after_publish_failure = delay;
        self
    }

    pub(crate) fn wrap<S>(self, inner: S) -> DeadLetter<S> {
        let config = Config {
            destination: self.destination,
            max_error_len: self.max_error_len,
            retry_after_publish_failure: self.retry_after_publish_failure,
            max_retry_after_publish_failure: self.max_retry_after_publish_failure,
        };
        DeadLetter::from_parts(inner, self.publisher, Arc::new(config))
    }
}

impl<S> Layer<S> for DeadLetterLayer {
    type Service = DeadLetter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.clone().wrap(inner)
    }
}

impl fmt::Debug for DeadLetterLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterLayer")
            .field("destination", &self.destination)
            .field("max_error_len", &self.max_error_len)
            .finish_non_exhaustive()
    }
}
