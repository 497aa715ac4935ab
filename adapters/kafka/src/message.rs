//! Mapping between Kafka records and wharf [`Message`]s.
//!
//! | wharf | Kafka record |
//! |---|---|
//! | id | header `wharf-message-id`; without it (or empty) `<topic>-<partition>-<offset>` (unique per record, so a republished copy without the header gets a new id) |
//! | key | the record key (which also picks the partition) |
//! | headers | the record headers, in order (a header without a value reads as empty) |
//! | payload | the record value (a tombstone reads as empty) |
//! | attempt | header `wharf-attempt` (retry-topic copies), else 1; a value that is not a number counts as 1 |
//! | origin | topic (for a retry-topic copy: the topic it was first read from), partition, offset |

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Header, Headers as _, OwnedHeaders};
use rdkafka::Message as _;
use wharf::headers::names;
use wharf::{Headers, Message, MessageId, Origin};

/// Not-before time (milliseconds since the Unix epoch) of a retry-topic copy.
pub const RETRY_NOT_BEFORE: &str = "wharf-retry-not-before";
/// The topic a retry-topic copy was first read from.
pub const RETRY_SOURCE: &str = "wharf-retry-source";

/// A record turned into a message, with what the subscriber needs besides.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) message: Message,
    pub(crate) offset: i64,
    /// Not-before time of a retry-topic copy.
    pub(crate) not_before: Option<SystemTime>,
}

/// What a record's headers say: wharf's own, read, and the rest, kept for the handler.
#[derive(Debug, Default)]
pub(crate) struct RecordHeaders {
    /// `wharf-message-id`, when present and not empty.
    pub(crate) id: Option<MessageId>,
    /// `wharf-attempt` clamped to `1..=u32::MAX`; 1 when absent or not a number.
    pub(crate) attempt: u32,
    /// `wharf-retry-not-before` of a retry-topic copy.
    pub(crate) not_before: Option<SystemTime>,
    /// `wharf-retry-source` of a retry-topic copy.
    pub(crate) source: Option<Arc<str>>,
    /// Every other header, in order.
    pub(crate) headers: Headers,
}

/// Reads a record's headers (name, value; a header without a value reads as empty).
///
/// Whatever a producer wrote, this never fails: a `wharf-attempt` that is not a number
/// counts as 1; an empty `wharf-message-id` is no id (the record's position names it, so
/// one empty id cannot make every such record a duplicate of the first); invalid UTF-8 in
/// an id is replaced. The retry headers count only on a retry topic (`retry_topic`): on
/// any other topic they are ordinary headers, so a producer can neither hold a record
/// back nor rename its source.
pub(crate) fn read_headers<'a>(
    list: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    retry_topic: bool,
) -> RecordHeaders {
    let mut read = RecordHeaders {
        attempt: 1,
        ..RecordHeaders::default()
    };
    for (name, value) in list {
        match name {
            names::MESSAGE_ID => {
                read.id = MessageId::non_empty(&String::from_utf8_lossy(value));
            }
            names::ATTEMPT => {
                read.attempt =
                    parse_u64(value).map_or(1, |a| a.clamp(1, u64::from(u32::MAX)) as u32);
            }
            RETRY_NOT_BEFORE if retry_topic => {
                read.not_before = parse_u64(value).map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
            }
            RETRY_SOURCE if retry_topic => {
                read.source = Some(Arc::<str>::from(&*String::from_utf8_lossy(value)));
            }
            name => read
                .headers
                .append(name.to_owned(), Bytes::copy_from_slice(value)),
        }
    }
    read
}

/// Copies a record out of librdkafka's buffer into a [`Message`]; `retry_topic` says
/// whether `topic` is one of the consumer's retry topics.
pub(crate) fn from_record(
    record: &BorrowedMessage<'_>,
    topic: &Arc<str>,
    retry_topic: bool,
) -> Received {
    let partition = record.partition();
    let offset = record.offset();
    let read = read_headers(
        record
            .headers()
            .into_iter()
            .flat_map(|list| list.iter())
            .map(|h| (h.key, h.value.unwrap_or_default())),
        retry_topic,
    );
    let id = read.id.unwrap_or_else(|| {
        MessageId::from_position(topic, '-', &[partition.max(0) as u64, offset.max(0) as u64])
    });
    let origin = Origin::new(read.source.unwrap_or_else(|| topic.clone()))
        .with_partition(partition.max(0) as u32)
        .with_offset(offset.max(0) as u64);
    let mut message = Message::with_id(
        id,
        Bytes::copy_from_slice(record.payload().unwrap_or_default()),
    )
    .with_headers(read.headers)
    .with_origin(origin)
    .with_attempt(read.attempt);
    if let Some(key) = record.key() {
        message = message.with_key(Bytes::copy_from_slice(key));
    }
    Received {
        message,

        offset,
        not_before: read.not_before,
    }
}

fn parse_u64(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The record headers for publishing `message`: its headers, then `wharf-message-id`,
/// then `extra` (attempt, retry time), each replacing a header of the same name.
pub(crate) fn to_headers(message: &Message, extra: &[(&str, String)]) -> OwnedHeaders {
    let replaced = |name: &str| name == names::MESSAGE_ID || extra.iter().any(|(n, _)| *n == name);
    let mut out = OwnedHeaders::new_with_capacity(message.headers().len() + 1 + extra.len());
    for (name, value) in message.headers().iter() {
        if !replaced(name) {
            out = out.insert(Header {
                key: name,
                value: Some(value.as_ref()),
            });
        }
    }
    out = out.insert(Header {
        key: names::MESSAGE_ID,
        value: Some(message.id().as_str()),
    });
    for (name, value) in extra {
        out = out.insert(Header {
            key: name,
            value: Some(value.as_str()),
        });
    }
    out
}

/// Milliseconds since the Unix epoch, `after` from now; saturates at `u64::MAX` (a
/// huge `after`, say `Duration::MAX` from a retry policy's cap, never panics).
pub(crate) fn epoch_millis_after(after: Duration) -> u64 {
    SystemTime::now().checked_add(after).map_or(u64::MAX, |t| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

#[cfg(test)]
mod hostile_input;
