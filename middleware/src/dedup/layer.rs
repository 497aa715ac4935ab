use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;
use wharf::{Message, MessageId};

use super::Dedup;

type KeyFn = Arc<dyn Fn(&Message) -> Option<String> + Send + Sync>;

/// What the layer keys on.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// The message id (stable across redeliveries).
    MessageId,
    /// An extractor; `None` means "do not deduplicate this message".
    With(KeyFn),
}

impl KeySource {
    pub(crate) fn extract(&self, message: &Message) -> Option<MessageId> {
        match self {
            KeySource::MessageId => Some(message.id().clone()),
            KeySource::With(f) => f(message).map(MessageId::from),
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::MessageId => f.write_str("MessageId"),
            KeySource::With(_) => f.write_str("With(<fn>)"),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) key: KeySource,
    pub(crate) window: Duration,
    pub(crate) lease: Duration,
    pub(crate) retry_in_flight_after: Duration,
}

/// Builds [`Dedup`] services.
///
/// Holds configuration and the store only; `layer` is a clone plus [`Dedup`]
/// construction.
///
/// # Defaults
///
/// | setting | default |
/// |---|---|
/// | key | the message id |
/// | [`window`](Self::window) | 10 minutes |
/// | [`lease`](Self::lease) | 60 seconds |
/// | [`retry_in_flight_after`](Self::retry_in_flight_after) | 1 second |
#[derive(Clone)]
pub struct DedupLayer<St> {
    store: St,
    key: KeySource,
    window: Duration,
    lease: Duration,
    retry_in_flight_after: Duration,
}

impl<St> DedupLayer<St> {
    /// Deduplicates through `store`, keying on the message id plus the consumer the
    /// runtime stamped on the message (which also labels `wharf_duplicates_total`), so
    /// consumers sharing a store never skip each other's messages.
    pub fn new(store: St) -> Self {
        DedupLayer {
            store,
            key: KeySource::MessageId,
            window: Duration::from_secs(600),
            lease: Duration::from_secs(60),
            retry_in_flight_after: Duration::from_secs(1),
        }
    }

    /// Keys on what `key` returns instead of the message id (still namespaced by the
    /// consumer). A message for which it returns `None` is not deduplicated.
    ///
    /// The key must be as stable across redeliveries as the id is: a header the publisher
    /// sets, say, never something that changes per delivery such as the attempt.
    pub fn key<F>(mut self, key: F) -> Self
    where
        F: Fn(&Message) -> Option<String> + Send + Sync + 'static,
    {
        self.key = KeySource::With(Arc::new(key));
        self
    }

    /// How long a completed message is remembered (default 10 minutes). A copy arriving
    /// later than this after the first was acked is handled again.
    ///
    /// Cover the span in which your broker redelivers: a lost ack, a consumer-group
    /// rebalance, a publisher retry. Business-level duplicates that arrive hours apart
    /// are the [idempotency](crate::idempotency) layer's job.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How long a claim holds without completing or releasing (default 60 s).
    ///
    /// The lease is what frees the key of a claim holder that vanished without releasing
    /// it (a process that crashed, a future that was leaked); a copy arriving meanwhile
    /// is retried. It must be longer than one attempt of the handler can take — with a
    /// timeout layer inside this one, longer than that timeout — or a slow handler's
    /// duplicate may run concurrently with it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The lease in use (the recommended stack keeps it longer than its timeout).
    #[cfg_attr(not(feature = "stack"), allow(dead_code))]
    pub(crate) fn lease_duration(&self) -> Duration {
        self.lease
    }

    /// How long a copy of a message that is being handled waits before it is redelivered
    /// (default 1 s). The outcome is [`Retry`](wharf::Outcome::Retry) with this delay.
    ///
    /// Each such retry is a redelivery, which brokers that count attempts count: keep the
    /// delay long enough that waiting for the other copy does not spend the retry
    /// layer's attempts.
    pub fn retry_in_flight_after(mut self, delay: Duration) -> Self {
        self.retry_in_flight_after = delay;
        self
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    pub(crate) fn wrap<S>(self, inner: S) -> Dedup<S, St> {
        let config = Config {
            key: self.key,
            window: self.window,
            lease: self.lease,
            retry_in_flight_after: self.retry_in_flight_after,
        };
        Dedup::from_parts(inner, self.store, Arc::new(config))
    }
}

impl<S, St: Clone> Layer<S> for DedupLayer<St> {
    type Service = Dedup<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        self.clone().wrap(inner)
    }
}

impl<St: fmt::Debug> fmt::Debug for DedupLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupLayer")
            .field("store", &self.store)
            .field("key", &self.key)
            .field("window", &self.window)
            .field("lease", &self.lease)
            .field("retry_in_flight_after", &self.retry_in_flight_after)
            .finish()
    }
}
