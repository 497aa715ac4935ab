//! Mapping between AMQP messages and [`wharf::Message`].
//!
//! | wharf | AMQP |
//! |---|---|
//! | id | `message_id` property (ids longer than 255 bytes: the `wharf-message-id` header) |
//! | key | the `wharf-key` header (the routing key is the destination's business) |
//! | headers | the headers table: values are sent as long strings; on receipt, strings and byte arrays are kept as they are, numbers, booleans and timestamps as their decimal text, nested tables and arrays (`x-death`) are left out |
//! | payload | the body |
//! | origin | the queue consumed from |
//! | attempt | `wharf-attempt` (1 when absent) + `x-delivery-count` (quorum; the `redelivered` flag counts 1 on classic queues) |
//!
//! **Messages without an id** (published by other clients without `message_id` or
//! `wharf-message-id`) get a stable fallback id, `amqp-fnv-<16 hex digits>`: a 64-bit
//! FNV-1a hash of the payload and the application headers (broker `x-*` headers and
//! `wharf-attempt` excluded). A redelivery therefore keeps its id, so deduplication
//! works; two byte-identical messages without ids share one and are deduplicated as one.
//!
//! **Headers RabbitMQ owns** (`x-death`, `x-delivery-count`, `x-first-death-*`,
//! `x-last-death-*`, `x-acquired-count`) are never published, so a republished copy (a
//! retry, a dead letter) starts with clean broker counters.

use std::sync::Arc;

use bytes::Bytes;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use wharf::headers::names;
use wharf::{Headers, Message, MessageId, Origin};

use crate::error::RabbitError;

/// Header carrying the message key.
pub const KEY_HEADER: &str = "wharf-key";

/// The quorum queues' delivery counter.
const DELIVERY_COUNT: &str = "x-delivery-count";

fn is_broker_owned(name: &str) -> bool {
    matches!(name, "x-death" | DELIVERY_COUNT | "x-acquired-count")
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

fn int_of(v: &AMQPValue) -> Option<i64> {
    Some(match v {
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok()?,
        _ => return None,
    })
}

/// A header value as bytes, or `None` for values with no flat form (tables, arrays).
fn bytes_of(v: &AMQPValue) -> Option<Bytes> {
    Some(match v {
        AMQPValue::LongString(s) => Bytes::copy_from_slice(s.as_bytes()),
        AMQPValue::ShortString(s) => Bytes::copy_from_slice(s.as_str().as_bytes()),
        AMQPValue::ByteArray(b) => Bytes::copy_from_slice(b.as_slice()),
        AMQPValue::Boolean(b) => Bytes::from(b.to_string()),
        AMQPValue::Float(f) => Bytes::from(f.to_string()),
        AMQPValue::Double(f) => Bytes::from(f.to_string()),
        other => Bytes::from(int_of(other)?.to_string()),
    })
}

fn str_of(v: &AMQPValue) -> Option<String> {
    bytes_of(v).and_then(|b| String::from_utf8(b.to_vec()).ok())
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

fn fallback_id(payload: &[u8], headers: Option<&FieldTable>) -> MessageId {
    let mut h = Fnv::new();
    h.write(payload);
    if let Some(table) = headers {
        // A BTreeMap: iteration order is stable.
        for (name, value) in table {
            let name = name.as_str();
            if name.starts_with("x-") || name == names::ATTEMPT {
                continue;
            }
            if let Some(v) = bytes_of(value) {
                h.write(name.as_bytes());
                h.write(&v);
            }
        }
    }
    MessageId::from(format!("amqp-fnv-{:016x}", h.0))
}

/// The broker's most recent dead-lettering, if it was for the delivery limit.
struct Death {
    queue: String,
    time: Option<String>,
}

/// Reads `x-death` (an array of tables, most recent first) for a `delivery_limit` entry.
fn delivery_limit_death(value: &AMQPValue) -> Option<Death> {
    let AMQPValue::FieldArray(deaths) = value else {
        return None;
    };
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    let field = |name: &str| latest.inner().get(name);
    if field("reason").and_then(str_of).as_deref() != Some("delivery_limit") {
        return None;
    }
    let time = match field("time") {
        Some(AMQPValue::Timestamp(secs)) => Some(
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(*secs),
            )
            .to_string(),
        ),
        _ => None,
    };
    Some(Death {
        queue: field("queue").and_then(str_of).unwrap_or_default(),
        time,
    })
}

/// The wharf message of a delivery from `queue`.
pub(crate) fn from_amqp(
    properties: &BasicProperties,
    data: Vec<u8>,
    redelivered: bool,
    queue: &Arc<str>,
) -> Message {
    let table = properties.headers().as_ref();
    let get = |name: &str| table.and_then(|t| t.inner().get(name));

    let id = properties
        .message_id()
        .as_ref()
        .and_then(|id| MessageId::non_empty(id.as_str()))
        .or_else(|| {
            get(names::MESSAGE_ID)
                .and_then(str_of)
                .and_then(|id| MessageId::non_empty(&id))
        })
        .unwrap_or_else(|| fallback_id(&data, table));

    let carried = get(names::ATTEMPT)
        .and_then(|v| {
            str_of(v)
                .and_then(|s| s.trim().parse::<i64>().ok())
                .or_else(|| int_of(v))
        })
        .unwrap_or(1)
        .max(1);
    let redeliveries = match get(DELIVERY_COUNT).and_then(int_of) {
        Some(n) => n.max(0),
        None => i64::from(redelivered),
    };
    let attempt = u32::try_from(carried.saturating_add(redeliveries)).unwrap_or(u32::MAX);

    let mut key = None;
    let mut headers = Headers::new();
    if let Some(table) = table {
        for (name, value) in table {
            let name = name.as_str();
            if name == KEY_HEADER {
                key = bytes_of(value);
                continue;
            }
            if let Some(v) = bytes_of(value) {
                headers.append(name.to_owned(), v);
            }
        }
    }

    if let Some(death) = get("x-death").and_then(delivery_limit_death) {
        // The broker dead-lettered it past the work queue's delivery limit: describe it
        // the way wharf's own dead letters are described.
        if headers.get(names::DLQ_REASON).is_none() {
            headers.insert(names::DLQ_REASON, "rabbitmq-delivery-limit");
            headers.insert(
                names::DLQ_ERROR,
                format!(
                    "RabbitMQ dead-lettered the message from `{}`: delivered more often than the queue's x-delivery-limit (a consumer crashing or requeueing it each time)",
                    death.queue
                ),
            );
            headers.insert(names::DLQ_SOURCE, death.queue);
            if let Some(at) = death.time {
                headers.insert(names::DLQ_FAILED_AT, at);
            }
        }
    }

    let mut message = Message::with_id(id, data)
        .with_origin(Origin::new(queue.clone()))
        .with_attempt(attempt);
    *message.headers_mut() = headers;
    if let Some(key) = key {
        message = message.with_key(key);
    }
    message
}

/// The AMQP properties of a retry or dead-letter copy of a delivery whose properties
/// were `original`: those of [`to_properties`] (id, headers, persistent) plus what the
/// original carried that a consumer of the copy may need.
///
/// - Kept: `content_type`, `content_encoding`, `correlation_id`, `reply_to`,
///   `priority`, `type`, `app_id`, `timestamp`.
/// - Dropped on purpose: `expiration` (a copy sits in a retry tier or the dead-letter
///   queue by design; the original's TTL would expire it there) and `user_id` (the
///   broker checks it against the publishing connection's user, which for a copy is
///   wharf's, so a copy of another user's message would be refused).
/// - Headers keep their AMQP types: a header whose value the copy did not change keeps
///   the original's typed value (integers, booleans, timestamps, byte arrays), and
///   headers a [`Message`] cannot hold (nested tables, arrays) are carried over as they
///   are. Changed and new headers (`wharf-attempt`, `wharf-dlq-*`) are long strings;
///   broker-owned ones (`x-death`, `x-delivery-count`, …) are never copied.
pub(crate) fn copy_properties(
    original: &BasicProperties,
    copy: &Message,
) -> Result<BasicProperties, RabbitError> {
    let fresh = to_properties(copy)?;
    let mut table = fresh.headers().clone().unwrap_or_default();
    if let Some(headers) = original.headers() {
        for (name, value) in headers {
            let text = name.as_str();
            if is_broker_owned(text) || text == KEY_HEADER || text == names::MESSAGE_ID {
                continue;
            }
            let keep = match bytes_of(value) {
                // No flat form: the message never held it; carry it over.
                None => true,
                // Unchanged by the copy: keep its type.
                Some(flat) => copy.headers().get(text) == Some(&flat),
            };
            if keep {
                table.insert(name.clone(), value.clone());
            }
        }
    }
    let mut properties = fresh.with_headers(table);
    if let Some(v) = original.content_type() {
        properties = properties.with_content_type(v.clone());
    }
    if let Some(v) = original.content_encoding() {
        properties = properties.with_content_encoding(v.clone());
    }
    if let Some(v) = original.correlation_id() {
        properties = properties.with_correlation_id(v.clone());
    }
    if let Some(v) = original.reply_to() {
        properties = properties.with_reply_to(v.clone());
    }
    if let Some(v) = original.priority() {
        properties = properties.with_priority(*v);
    }
    if let Some(v) = original.kind() {
        properties = properties.with_type(v.clone());
    }
    if let Some(v) = original.app_id() {
        properties = properties.with_app_id(v.clone());
    }
    if let Some(v) = original.timestamp() {
        properties = properties.with_timestamp(*v);
    }
    Ok(properties)
}

/// The AMQP properties (persistent) of an outgoing message.
pub(crate) fn to_properties(message: &Message) -> Result<BasicProperties, RabbitError> {
    let mut table = FieldTable::default();
    for (name, value) in message.headers().iter() {
        if is_broker_owned(name) || name == KEY_HEADER {
            continue;
        }
        let name = ShortString::try_new(name)
            .map_err(|_| RabbitError::HeaderName(name.chars().take(32).collect()))?;
        table.insert(
            name,
            AMQPValue::LongString(LongString::from(value.to_vec())),
        );
    }
    if let Some(key) = message.key() {
        table.insert(
            KEY_HEADER.into(),
            AMQPValue::LongString(LongString::from(key.to_vec())),
        );
    }
    let mut properties = BasicProperties::default().with_delivery_mode(2);
    match ShortString::try_new(message.id().as_str()) {
        Ok(id) => properties = properties.with_message_id(id),
        Err(_) => {
            table.insert(
                names::MESSAGE_ID.into(),
                AMQPValue::LongString(message.id().as_str().into()),
            );
        }
    }
    Ok(properties.with_headers(table))
}

#[cfg(test)]
mod hostile_input;

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: &Message, redelivered: bool) -> Message {
        let props = to_properties(m).unwrap();
        from_amqp(&props, m.payload().to_vec(), redelivered, &Arc::from("q"))
    }

    #[test]
    fn id_key_headers_and_payload_round_trip() {
        let m = Message::with_id("id-1", "payload")
            .with_key("k")
            .with_header("Mixed-Case", "v; = x")
            .with_header("x-death", "dropped");
        let got = round_trip(&m, false);
        assert_eq!(got.id().as_str(), "id-1");
        assert_eq!(got.key().map(|k| &k[..]), Some(&b"k"[..]));
        assert_eq!(got.headers().get_str("Mixed-Case"), Some("v; = x"));
        assert!(!got.headers().contains("x-death"));
        assert!(!got.headers().contains(KEY_HEADER));
        assert_eq!(got.payload(), m.payload());
        assert_eq!(got.attempt(), 1);
        assert_eq!(got.origin().source(), "q");
    }

    #[test]
    fn long_ids_travel_in_a_header() {
        let id = "i".repeat(300);
        let got = round_trip(&Message::with_id(id.as_str(), "x"), false);
        assert_eq!(got.id().as_str(), id);
    }

    #[test]
    fn attempt_adds_the_broker_count_to_the_carried_attempt() {
        let m = Message::with_id("a", "x").with_header(names::ATTEMPT, "3");
        let mut props = to_properties(&m).unwrap();
        assert_eq!(round_trip(&m, false).attempt(), 3);
        // Classic queue: only the redelivered flag.
        assert_eq!(round_trip(&m, true).attempt(), 4);
        // Quorum queue: x-delivery-count (0 on the first delivery on 3.10).
        let mut table = props.headers().clone().unwrap_or_default();
        table.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(0));
        props = props.with_headers(table.clone());
        assert_eq!(
            from_amqp(&props, vec![], true, &Arc::from("q")).attempt(),
            3
        );
        table.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(2));
        props = props.with_headers(table);
        assert_eq!(
            from_amqp(&props, vec![], true, &Arc::from("q")).attempt(),
            5
        );
    }

    #[test]
    fn messages_without_ids_get_a_stable_fallback() {
        let mut table = FieldTable::default();
        table.insert("tenant".into(), AMQPValue::LongString("acme".into()));
        let props = BasicProperties::default().with_headers(table.clone());
        let a = from_amqp(&props, b"x".to_vec(), false, &Arc::from("q"));
        table.insert(DELIVERY_COUNT.into(), AMQPValue::LongInt(4));
        let props = BasicProperties::default().with_headers(table);
        let b = from_amqp(&props, b"x".to_vec(), true, &Arc::from("q"));
        assert_eq!(a.id(), b.id());
        assert!(a.id().as_str().starts_with("amqp-fnv-"));
        let c = from_amqp(
            &BasicProperties::default(),
            b"y".to_vec(),
            false,
            &Arc::from("q"),
        );
        assert_ne!(a.id(), c.id());
    }
}
