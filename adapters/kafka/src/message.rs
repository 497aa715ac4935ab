//! Mapping between Kafka records and wharf [`Message`]s.
//!
//! | wharf | Kafka record |
//! |---|---|
//! | id | header `wharf-message-id`; without it `<topic>-<partition>-<offset>` (unique per record, so a republished copy without the header gets a new id) |
//! | key | the record key (which also picks the partition) |
//! | headers | the record headers, in order (a header without a value reads as empty) |
//! | payload | the record value (a tombstone reads as empty) |
//! | attempt | header `wharf-attempt` (retry-topic copies), else 1 |
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

/// Copies a record out of librdkafka's buffer into a [`Message`].
pub(crate) fn from_record(record: &BorrowedMessage<'_>, topic: &Arc<str>) -> Received {
    let partition = record.partition();
    let offset = record.offset();
    let mut id = None;
    let mut attempt = 1;
    let mut not_before = None;
    let mut source = None;
    let mut headers = Headers::new();
    if let Some(list) = record.headers() {
        for h in list.iter() {
            let value = h.value.unwrap_or_default();
            match h.key {
                names::MESSAGE_ID => {
                    id = Some(MessageId::from(&*String::from_utf8_lossy(value)));
                }
                names::ATTEMPT => {
                    attempt =
                        parse_u64(value).map_or(1, |a| a.clamp(1, u64::from(u32::MAX)) as u32);
                }
                RETRY_NOT_BEFORE => {
                    not_before = parse_u64(value).map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
                }
                RETRY_SOURCE => source = Some(Arc::<str>::from(&*String::from_utf8_lossy(value))),
                name => headers.append(name.to_owned(), Bytes::copy_from_slice(value)),
            }
        }
    }
    let id = id.unwrap_or_else(|| {
        MessageId::from_position(topic, '-', &[partition.max(0) as u64, offset.max(0) as u64])
    });
    let origin = Origin::new(source.unwrap_or_else(|| topic.clone()))
        .with_partition(partition.max(0) as u32)
        .with_offset(offset.max(0) as u64);
    let mut message = Message::with_id(
        id,
        Bytes::copy_from_slice(record.payload().unwrap_or_default()),
    )
    .with_headers(headers)
    .with_origin(origin)
    .with_attempt(attempt);
    if let Some(key) = record.key() {
        message = message.with_key(Bytes::copy_from_slice(key));
    }
    Received {
        message,

        offset,
        not_before,
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
