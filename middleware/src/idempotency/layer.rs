use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tower::Layer;
use wharf::codec::{Codec, JsonCodec};
use wharf::headers::names;
use wharf::{HandlerError, Message};

use super::{Idempotency, IdempotencyStore};

type KeyFn = Arc<dyn Fn(&Message) -> Result<Option<String>, HandlerError> + Send + Sync>;

/// Where the business key comes from.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// A header (by default `idempotency-key`).
    Header(Cow<'static, str>),
    /// A function of the message (which may decode the payload).
    With(KeyFn),
}

impl KeySource {
    /// The key, `None` if the message has none, or an error (a payload that does not
    /// decode).
    pub(crate) fn extract(&self, message: &Message) -> Result<Option<String>, HandlerError> {
        let key = match self {
            KeySource::Header(name) => match message.headers().get(name) {
                None => None,
                Some(value) => match std::str::from_utf8(value) {
                    Ok(s) => Some(s.to_owned()),
                    Err(_) => {
                        tracing::warn!(
                            message_id = %message.id(),
                            header = %name,
                            "idempotency key is not UTF-8; treated as missing"
                        );
                        None
                    }
                },
            },
            KeySource::With(f) => f(message)?,
        };
        // An empty key identifies nothing.
        Ok(key.filter(|k| !k.is_empty()))
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Header(name) => f.debug_tuple("Header").field(name).finish(),
            KeySource::With(_) => f.write_str("With(<fn>)"),
        }
    }
}

/// What the layer does with a message that carries no idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// Handle it without idempotency protection (the default). Suits consumers whose
    /// producers set keys only on operations that need them.
    #[default]
    Process,
    /// Refuse it: a permanent error with reason `missing-idempotency-key`
    /// ([`MissingKeyError`](super::error::MissingKeyError)), so it is dead-lettered and
    /// never handled unprotected. Suits handlers that must never run twice.
    Reject,
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) key: KeySource,
    pub(crate) missing_key: MissingKey,
    pub(crate) retention: Duration,
    pub(crate) lease: Duration,
    pub(crate) retry_in_flight_after: Duration,
}

/// Builds [`Idempotency`] services.
///
/// Holds configuration and the store only; `layer` is a clone plus [`Idempotency`]
/// construction.
///
/// # Defaults
///
/// | setting | default |
/// |---|---|
/// | key | the `idempotency-key` header |
/// | [`missing_key`](Self::missing_key) | [`MissingKey::Process`] |
/// | [`retention`](Self::retention) | 24 hours |
/// | [`lease`](Self::lease) | 5 minutes |
/// | [`retry_in_flight_after`](Self::retry_in_flight_after) | 5 seconds |
#[derive(Clone)]
pub struct IdempotencyLayer {
    store: Arc<dyn IdempotencyStore>,
    key: KeySource,
    missing_key: MissingKey,
    retention: Duration,
    lease: Duration,
    retry_in_flight_after: Duration,
}

impl IdempotencyLayer {
    /// Claims business keys in `store`, namespaced by the consumer the runtime stamped
    /// on the message (which also labels `wharf_duplicates_total`). The key is read from
    /// the `idempotency-key` header.
    pub fn new(store: Arc<dyn IdempotencyStore>) -> Self {
        IdempotencyLayer {
            store,
            key: KeySource::Header(Cow::Borrowed(names::IDEMPOTENCY_KEY)),
            missing_key: MissingKey::Process,
            retention: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(300),
            retry_in_flight_after: Duration::from_secs(5),
        }
    }

    /// Reads the key from header `name` instead of `idempotency-key`. A value that is
    /// empty or not UTF-8 counts as missing.
    pub fn key_from_header(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.key = KeySource::Header(name.into());
        self
    }

    /// Takes the key from the payload, decoded as JSON into `T`; `key` returns `None`
    /// for a message without one.
    ///
    /// A payload that does not decode as `T` is a permanent `decode` error, as it is for
    /// a `Json<T>` handler: the handler never runs without a claim. The payload is decoded
    /// here and again by the handler; keep `T` to the fields the key needs to make that
    /// cheap.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use wharf_middleware::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct PaymentRef {
    ///     payment_id: String,
    /// }
    ///
    /// let layer = IdempotencyLayer::new(Arc::new(MemoryIdempotencyStore::default()))
    ///     .key_from_payload(|p: &PaymentRef| Some(p.payment_id.clone()));
    /// # let _ = layer;
    /// ```
    pub fn key_from_payload<T, F>(mut self, key: F) -> Self
    where
        T: DeserializeOwned + 'static,
        F: Fn(&T) -> Option<String> + Send + Sync + 'static,
    {
        self.key = KeySource::With(Arc::new(move |message: &Message| {
            let value: T = JsonCodec::decode(message.payload()).map_err(HandlerError::decode)?;
            Ok(key(&value))
        }));
        self
    }

    /// Takes the key from the message with `key`; `None` for a message without one.
    pub fn key_with<F>(mut self, key: F) -> Self
    where
        F: Fn(&Message) -> Option<String> + Send + Sync + 'static,
    {
        self.key = KeySource::With(Arc::new(move |message: &Message| Ok(key(message))));
        self
    }

    /// What to do with a message that has no key (default [`MissingKey::Process`]).
    pub fn missing_key(mut self, policy: MissingKey) -> Self {
        self.missing_key = policy;
        self
    }

    /// How long a completed key is remembered (default 24 hours). A message with the same
    /// key arriving later is handled again.
    ///
    /// Cover the span in which the same operation may be submitted again: client retries,
    /// replays from a dead-letter queue, a producer re-sending after an outage.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long a claim holds without completing or releasing (default 5 minutes).
    ///
    /// The lease frees the key of a replica that crashed while handling it; a message
    /// with the key arriving meanwhile is retried. It must be longer than one attempt of
    /// the handler can take — with a timeout layer inside this one, longer than that
    /// timeout — or a slow handler's duplicate may run concurrently with it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The lease in use (the recommended stack keeps it longer than its timeout).
    #[cfg_attr(not(feature = "stack"), allow(dead_code))]
    pub(crate) fn lease_duration(&self) -> Duration {
        self.lease
    }

    /// How long a message whose key is being handled elsewhere waits before it is
    /// redelivered (default 5 s). The outcome is [`Retry`](wharf::Outcome::Retry) with
    /// this delay.
    ///
    /// Each such retry is a redelivery, which brokers that count attempts count: keep the
    /// delay long enough that waiting for the other copy does not spend the retry
    /// layer's attempts.
    pub fn retry_in_flight_after(mut self, delay: Duration) -> Self {
        self.retry_in_flight_after = delay;
        self
    }

    pub(crate) fn wrap<S>(self, inner: S) -> Idempotency<S> {
        let config = Config {
            key: self.key,
            missing_key: self.missing_key,
            retention: self.retention,
            lease: self.lease,
            retry_in_flight_after: self.retry_in_flight_after,
        };
        Idempotency::from_parts(inner, self.store, Arc::new(config))
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.clone().wrap(inner)
    }
}

impl fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("key", &self.key)
            .field("missing_key", &self.missing_key)
            .field("retention", &self.retention)
            .field("lease", &self.lease)
            .field("retry_in_flight_after", &self.retry_in_flight_after)
            .finish_non_exhaustive()
    }
}
