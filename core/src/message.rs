//! The message a handler receives, and the one a publisher sends.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::codec::{Codec, EncodeError, JsonCodec};
use crate::headers::Headers;

/// Identifies a message, stable across redeliveries.
///
/// Adapters take it from the broker (AMQP `message_id`, JetStream `Nats-Msg-Id`, the
/// `wharf-message-id` header) or derive it from the position (topic-partition-offset,
/// stream sequence), so a redelivered copy has the same id as the original. The
/// deduplication layer relies on this.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(Arc<str>);

impl MessageId {
    /// The id a broker header carries, or `None` when it is empty: an adapter then names
    /// the message another way (its position, its content). An empty id taken as an id
    /// would make every message carrying one a duplicate of the first under dedup.
    ///
    /// ```
    /// use wharf::MessageId;
    /// assert_eq!(MessageId::non_empty("m-1").unwrap().as_str(), "m-1");
    /// assert!(MessageId::non_empty("").is_none());
    /// ```
    pub fn non_empty(id: &str) -> Option<Self> {
        (!id.is_empty()).then(|| MessageId::from(id))
    }

    /// A fresh random id (UUID v4).
    pub fn random() -> Self {
        // Encoded on the stack: one allocation (the `Arc`), no formatting machinery.
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        MessageId(Arc::from(
            &*uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf),
        ))
    }

    /// The id an adapter derives from a message's position: `source`, then each number
    /// after `separator` (`orders:42` for stream `orders`, sequence 42;
    /// `orders-2-1017` for partition 2, offset 1017), so every copy of the message
    /// read again from the same position has the same id.
    ///
    /// Built with one allocation and no formatting machinery: adapters call this for
    /// every message.
    ///
    /// ```
    /// use wharf::MessageId;
    ///
    /// assert_eq!(MessageId::from_position("orders", ':', &[42]).as_str(), "orders:42");
    /// assert_eq!(MessageId::from_position("t", '-', &[2, 1017]).as_str(), "t-2-1017");
    /// ```
    pub fn from_position(source: &str, separator: char, numbers: &[u64]) -> Self {
        // Up to 20 digits for a u64 plus a separator of up to 4 bytes.
        const ON_STACK: usize = 128;
        let formatted = || {
            let mut id = String::from(source);
            for n in numbers {
                id.push(separator);
                id.push_str(&n.to_string());
            }
            MessageId(id.into())
        };
        if source.len() + numbers.len() * 24 > ON_STACK {
            return formatted();
        }
        let mut buf = [0u8; ON_STACK];
        let mut len = source.len();
        buf[..len].copy_from_slice(source.as_bytes());
        for &n in numbers {
            len += separator.encode_utf8(&mut buf[len..]).len();
            len += write_decimal(&mut buf[len..], n);
        }
        // Always valid UTF-8 (a `&str`, `char`s and ASCII digits).
        std::str::from_utf8(&buf[..len]).map_or_else(|_| formatted(), |id| MessageId(Arc::from(id)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Writes `n` in decimal at the start of `out` (which has room for 20 bytes); returns
/// the length written.
fn write_decimal(out: &mut [u8], n: u64) -> usize {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let written = digits.len() - i;
    out[..written].copy_from_slice(&digits[i..]);
    written
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MessageId {
    fn from(s: &str) -> Self {
        MessageId(s.into())
    }
}

impl From<String> for MessageId {
    fn from(s: String) -> Self {
        MessageId(s.into())
    }
}

impl From<Arc<str>> for MessageId {
    fn from(s: Arc<str>) -> Self {
        MessageId(s)
    }
}

impl AsRef<str> for MessageId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// What the runtime stamps on each message it hands to its stack: the consumer's name,
/// and the counts layers report back to its [`Summary`](crate::Summary).
#[derive(Debug)]
pub(crate) struct Stamp {
    pub(crate) name: Arc<str>,
    /// Dead letters a layer published and then acked (see [`Origin::count_dead_letter`]).
    pub(crate) dead_letters: AtomicU64,
    /// The consumer's live counts.
    pub(crate) progress: crate::status::Progress,
}

impl Stamp {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Stamp::with_progress(name, crate::status::Progress::new())
    }

    pub(crate) fn with_progress(name: Arc<str>, progress: crate::status::Progress) -> Self {
        Stamp {
            name,
            dead_letters: AtomicU64::new(0),
            progress,
        }
    }
}

/// Where a received message came from, and which consumer is handling it.
#[derive(Clone, Default)]
pub struct Origin {
    source: Option<Arc<str>>,
    partition: Option<u32>,
    offset: Option<u64>,
    consumer: Option<Arc<Stamp>>,
}

impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.partition == other.partition
            && self.offset == other.offset
            && self.consumer() == other.consumer()
    }
}

impl Eq for Origin {}

impl Origin {
    /// An origin naming only the source (queue, topic or subject).
    pub fn new(source: impl Into<Arc<str>>) -> Self {
        Origin {
            source: Some(source.into()),
            partition: None,
            offset: None,
            consumer: None,
        }
    }

    /// Sets the consumer handling the message. The [`Consumer`](crate::Consumer) runtime
    /// stamps its name on every message it hands to its stack, so layers read it here
    /// instead of being given it again.
    pub fn with_consumer(mut self, consumer: impl Into<Arc<str>>) -> Self {
        self.consumer = Some(Arc::new(Stamp::new(consumer.into())));
        self
    }

    /// The consumer handling the message: set by the runtime, `None` for a message no
    /// [`Consumer`](crate::Consumer) has handed out (a stack called directly).
    pub fn consumer(&self) -> Option<&str> {
        self.consumer.as_ref().map(|stamp| &*stamp.name)
    }

    /// The consumer as a shared string, for labels that outlive the message.
    pub fn consumer_arc(&self) -> Option<&Arc<str>> {
        self.consumer.as_ref().map(|stamp| &stamp.name)
    }

    /// For dead-letter layers: the message was published to its dead-letter destination
    /// and will be acked. The consumer's [`Summary`](crate::Summary) counts it under
    /// `dead_lettered` instead of `acked`. Does nothing for a message no
    /// [`Consumer`](crate::Consumer) handed out.
    pub fn count_dead_letter(&self) {
        if let Some(stamp) = &self.consumer {
            stamp.dead_letters.fetch_add(1, AtomicOrdering::Relaxed);
            stamp.progress.failed_one();
        }
    }

    /// For retry layers that run a handler again in process: one handling failed. The
    /// consumer's [`Progress`](crate::status::Progress) counts it, so the status verdict
    /// sees failures the broker never does. Does nothing for a message no
    /// [`Consumer`](crate::Consumer) handed out.
    pub fn count_retry(&self) {
        if let Some(stamp) = &self.consumer {
            stamp.progress.failed_one();
        }
    }

    /// Sets the partition.
    pub fn with_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the offset (Kafka offset, stream sequence, in-memory position).
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// The queue, topic or subject; empty for a message that was never received.
    pub fn source(&self) -> &str {
        self.source.as_deref().unwrap_or("")
    }

    /// The source as a shared string, for labels that outlive the message.
    pub fn source_arc(&self) -> Option<&Arc<str>> {
        self.source.as_ref()
    }

    /// The partition, where the broker has partitions.
    pub fn partition(&self) -> Option<u32> {
        self.partition
    }

    /// The offset or sequence number, where the broker has one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Origin");
        d.field("source", &self.source());
        if let Some(p) = self.partition {
            d.field("partition", &p);
        }
        if let Some(o) = self.offset {
            d.field("offset", &o);
        }
        if let Some(c) = self.consumer() {
            d.field("consumer", &c);
        }
        d.finish()
    }
}

/// A message: id, optional ordering key, headers, payload, origin and attempt number.
///
/// The same type is received by handlers and handed to publishers. A publisher uses the
/// id, key, headers and payload and ignores origin and attempt (carry an attempt across a
/// republish in the `wharf-attempt` header).
///
/// # Clone
///
/// Cloning is cheap: the id is an `Arc<str>`, key and payload are [`Bytes`], and headers
/// are copy-on-write.
///
/// # Example
///
/// ```
/// use wharf::Message;
///
/// let msg = Message::new("hello")
///     .with_key("customer-7")
///     .with_header("tenant", "acme");
/// assert_eq!(msg.payload().as_ref(), b"hello");
/// assert_eq!(msg.headers().get_str("tenant"), Some("acme"));
/// assert_eq!(msg.attempt(), 1);
/// ```
#[derive(Clone)]
pub struct Message {
    id: MessageId,
    key: Option<Bytes>,
    headers: Headers,
    payload: Bytes,
    origin: Origin,
    attempt: u32,
}

impl Message {
    /// Stamps the consumer handling the message on its origin (the runtime, once per
    /// message: one reference count).
    pub(crate) fn stamp_consumer(&mut self, stamp: &Arc<Stamp>) {
        self.origin.consumer = Some(stamp.clone());
    }

    /// A new message with a fresh random id, no key, no headers, attempt 1.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Message::with_id(MessageId::random(), payload)
    }

    /// A new message with the given id.
    pub fn with_id(id: impl Into<MessageId>, payload: impl Into<Bytes>) -> Self {
        Message {
            id: id.into(),
            key: None,
            headers: Headers::new(),
            payload: payload.into(),
            origin: Origin::default(),
            attempt: 1,
        }
    }

    /// A new message whose payload is `value` encoded as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, EncodeError> {
        Ok(Message::new(JsonCodec::encode(value)?))
    }

    /// Sets the ordering key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets a header, replacing any value stored under the name.
    pub fn with_header(
        mut self,
        name: impl Into<std::borrow::Cow<'static, str>>,
        value: impl Into<Bytes>,
    ) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Replaces all headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the origin (adapters do this on receipt).
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// Sets the attempt number (adapters do this on receipt; 1 is the first delivery).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// Replaces the payload.
    pub fn with_payload(mut self, payload: impl Into<Bytes>) -> Self {
        self.payload = payload.into();
        self
    }

    /// The id, stable across redeliveries.
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// The ordering key: messages with the same key are handled one after another.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, for changing them before a republish.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Where the message was received from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// 1 on the first delivery, counted by the broker or carried in `wharf-attempt`.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Decodes the payload as JSON.
    pub fn decode_json<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<T, crate::codec::DecodeError> {
        JsonCodec::decode(&self.payload)
    }
}

impl fmt::Debug for Message {
    /// Prints everything but the payload's content (which may be large or sensitive).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field(
                "key",
                &self.key.as_ref().map(|k| String::from_utf8_lossy(k)),
            )
            .field("headers", &self.headers)
            .field("payload_len", &self.payload.len())
            .field("origin", &self.origin)
            .field("attempt", &self.attempt)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_ids_match_formatting() {
        let long = "s".repeat(200);
        for source in ["orders", "", "ünïcode", long.as_str()] {
            for sep in [':', '-', '→'] {
                for numbers in [&[0][..], &[42], &[u64::MAX, 1], &[2, 1017], &[7, 0, 9]] {
                    let mut expected = source.to_owned();
                    for n in numbers {
                        expected.push_str(&format!("{sep}{n}"));
                    }
                    assert_eq!(
                        MessageId::from_position(source, sep, numbers).as_str(),
                        expected
                    );
                }
            }
        }
    }

    #[test]
    fn debug_hides_payload() {
        let m = Message::new("secret-token-123");
        let s = format!("{m:?}");
        assert!(!s.contains("secret-token-123"), "{s}");
        assert!(s.contains("payload_len: 16"), "{s}");
    }

    #[test]
    fn attempt_is_at_least_one() {
        assert_eq!(Message::new("x").with_attempt(0).attempt(), 1);
    }
}
