//! Mapping between wharf [`Message`]s and NATS messages.
//!
//! | wharf | NATS |
//! |---|---|
//! | id | `Nats-Msg-Id` header (JetStream deduplicates on it), or `wharf-message-id` from a publisher with [broker deduplication](crate::NatsPublisher::broker_dedup) off; without either (or with empty ones), a JetStream message's id is `<stream>:<stream sequence>` and a Core message gets a random id |
//! | key | `wharf-key` header |
//! | headers | NATS headers (UTF-8 text; a CR or LF in a value becomes a space, invalid UTF-8 is replaced) |
//! | payload | payload |
//! | origin | JetStream: the stream, offset = stream sequence; Core: the subject |
//! | attempt | JetStream: the broker's delivery count; Core: always 1 |
//!
//! `Nats-Msg-Id`, `wharf-message-id` and `wharf-key` are taken out of the headers a handler sees (they are
//! the id and the key); every other header, the server's `Nats-*` ones included, stays.

use std::str::FromStr;

use async_nats::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use wharf::headers::names;
use wharf::{BoxError, Headers, Message, MessageId, Origin};

/// Header carrying the message id; JetStream deduplicates publishes on it.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// Header carrying [`Message::key`].
pub const KEY_HEADER: &str = "wharf-key";

/// The NATS headers for publishing `message`: its headers, its id (in `Nats-Msg-Id`, or
/// in `wharf-message-id` when `broker_dedup` is off) and its key.
///
/// A dead-letter copy (it carries `wharf-dlq-reason`) is never published with
/// `Nats-Msg-Id`: the dead-letter stream's duplicate window would otherwise keep only one
/// of the copies two durables make of one message, or drop the copy of a replayed message
/// that fails again within the window. Its id travels in `wharf-message-id` instead. It
/// also loses every `Nats-*` header of the original: those are directives to the server
/// (`Nats-Expected-Stream`, `Nats-Expected-Last-Sequence`, `Nats-Rollup`, `Nats-TTL`, …)
/// that were meant for the original's publish and would make the copy's fail or purge
/// the dead-letter stream.
pub(crate) fn to_headers(message: &Message, broker_dedup: bool) -> Result<HeaderMap, BoxError> {
    let dead_letter = message.headers().get_str(names::DLQ_REASON).is_some();
    let broker_dedup = broker_dedup && !dead_letter;
    let mut map = HeaderMap::new();
    for (name, value) in message.headers().iter() {
        if name == MSG_ID_HEADER || name == KEY_HEADER || name == names::MESSAGE_ID {
            continue;
        }
        if dead_letter && is_server_directive(name) {
            continue;
        }
        map.append(header_name(name)?, header_value(value));
    }
    let id_header = if broker_dedup {
        HeaderName::from_static(MSG_ID_HEADER)
    } else {
        HeaderName::from_static(names::MESSAGE_ID)
    };
    map.insert(
        id_header,
        HeaderValue::from_str(&one_line(message.id().as_str()))
            .map_err(|e| format!("message id is not a valid header value: {e}"))?,
    );
    if let Some(key) = message.key() {
        let key = std::str::from_utf8(key)
            .map_err(|_| "the message key must be UTF-8 to travel in the `wharf-key` header")?;
        if key.contains(['\r', '\n']) {
            return Err("the message key must not contain line breaks".into());
        }
        map.insert(
            HeaderName::from_static(KEY_HEADER),
            HeaderValue::from_str(key)
                .map_err(|e| format!("the message key is not a valid header value: {e}"))?,
        );
    }
    Ok(map)
}

/// A header the server interprets (`Nats-` prefix, any case).
fn is_server_directive(name: &str) -> bool {
    name.get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("nats-"))
}

fn header_name(name: &str) -> Result<HeaderName, BoxError> {
    HeaderName::from_str(name)
        .map_err(|e| format!("header name `{name}` is not valid on NATS: {e}").into())
}

fn header_value(value: &Bytes) -> HeaderValue {
    let text = String::from_utf8_lossy(value);
    // `one_line` leaves no CR or LF, the only characters a header value may not hold.
    HeaderValue::from_str(&one_line(&text)).unwrap_or_default()
}

fn one_line(s: &str) -> String {
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], " ")
    } else {
        s.to_owned()
    }
}

/// A received NATS message as a wharf [`Message`]. `fallback_id` is used when there is
/// no `Nats-Msg-Id` header.
pub(crate) fn from_nats(
    payload: Bytes,
    headers: Option<&HeaderMap>,
    origin: Origin,
    attempt: u32,
    fallback_id: impl FnOnce() -> MessageId,
) -> Message {
    let mut id = None;
    let mut wharf_id = None;
    let mut key = None;
    let mut out = Headers::new();
    if let Some(map) = headers {
        for (name, values) in map.iter() {
            let name: &str = name.as_ref();
            match name {
                // An empty id is no id: the fallback names the message, so one empty id
                // cannot make every such message a duplicate of the first.
                MSG_ID_HEADER => {
                    id = values
                        .first()
                        .and_then(|v| MessageId::non_empty(v.as_str()))
                }
                names::MESSAGE_ID => {
                    wharf_id = values
                        .first()
                        .and_then(|v| MessageId::non_empty(v.as_str()))
                }
                KEY_HEADER => key = values.first().map(|v| Bytes::from(v.as_str().to_owned())),
                _ => {
                    for v in values {
                        out.append(name.to_owned(), Bytes::from(v.as_str().to_owned()));
                    }
                }
            }
        }
    }
    let message = Message::with_id(id.or(wharf_id).unwrap_or_else(fallback_id), payload)
        .with_headers(out)
        .with_origin(origin)
        .with_attempt(attempt);
    match key {
        Some(k) => message.with_key(k),
        None => message,
    }
}

/// What the runtime needs from a JetStream delivery's `$JS.ACK` reply subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryInfo {
    /// Deliveries of this message so far, this one included.
    pub(crate) delivered: u64,
    /// The message's sequence in its stream.
    pub(crate) stream_sequence: u64,
    /// Messages left for the consumer after this one.
    pub(crate) pending: u64,
}

/// Reads [`DeliveryInfo`] from a `$JS.ACK` reply subject: the original 9-token form
/// (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`)
/// and the ADR-15 form with domain and account hash in front (11 tokens or more, later
/// ones ignored), as async-nats's `Message::info` reads them. That function also parses
/// the timestamp into a date and every other number, which was a third of wharf's
/// per-message cost on JetStream (callgrind); this one parses the three numbers used.
pub(crate) fn delivery_info(reply: &str) -> Option<DeliveryInfo> {
    let rest = reply.strip_prefix("$JS.ACK.")?.as_bytes();
    // Token boundaries by a plain byte scan (`str::split` costs a `memchr` call per
    // token, more than the scan itself on tokens this short).
    let mut starts = [0usize; 11];
    let mut n = 1;
    for (i, &b) in rest.iter().enumerate() {
        if b == b'.' {
            starts[n] = i + 1;
            n += 1;
            if n == starts.len() {
                break;
            }
        }
    }
    let tokens = n.min(10);
    // Index of the `delivered` token: after stream and consumer, and after domain and
    // account hash in the long form.
    let first = match tokens {
        9.. => 4,
        7 => 2,
        _ => return None,
    };
    let number = |i: usize| {
        let start = starts[first + i];
        let end = if first + i + 1 < n {
            starts[first + i + 1] - 1
        } else {
            rest.len()
        };
        parse_decimal(&rest[start..end])
    };
    Some(DeliveryInfo {
        delivered: number(0)?,
        stream_sequence: number(1)?,
        pending: number(4)?,
    })
}

/// A non-empty run of ASCII digits as a `u64`; `None` on anything else or overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod hostile_input;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_info_reads_both_reply_forms() {
        let forms = [
            // The original form (7 tokens after the prefix).
            "$JS.ACK.ORDERS.billing.3.1042.1040.1700000000000000000.17",
            // ADR-15: domain, account hash, ..., and a trailing random token.
            "$JS.ACK._.ACCHASH.ORDERS.billing.3.1042.1040.1700000000000000000.17.xyz",
            // ADR-15 without the trailing token (9 tokens).
            "$JS.ACK.hub.ACCHASH.ORDERS.billing.3.1042.1040.1700000000000000000.17",
        ];
        for reply in forms {
            let ours = delivery_info(reply).expect(reply);
            assert_eq!(
                (ours.delivered, ours.stream_sequence, ours.pending),
                (3, 1042, 17)
            );
        }
        for bad in [
            "",
            "$JS.ACK.ORDERS",
            "_INBOX.x.y",
            "$JS.ACK.ORDERS.billing.x.1042.1040.1700000000000000000.17",
            "$JS.ACK.a.b.c.d.e.f.g.h",
            "$JS.ACK.ORDERS.billing.3..1040.1700000000000000000.17",
            "$JS.ACK.ORDERS.billing.3.99999999999999999999.1040.1700000000000000000.17",
        ] {
            assert_eq!(delivery_info(bad), None, "{bad}");
        }
    }

    #[test]
    fn id_key_and_headers_round_trip() {
        let m = Message::with_id("m-1", "x")
            .with_key("k")
            .with_header("Mixed-Case", "v")
            .with_header("multi", "line\r\nbreak");
        let h = to_headers(&m, true).unwrap();
        let back = from_nats(m.payload().clone(), Some(&h), Origin::new("s"), 1, || {
            MessageId::from("fallback")
        });
        assert_eq!(back.id().as_str(), "m-1");
        assert_eq!(back.key().map(|k| &k[..]), Some(&b"k"[..]));
        assert_eq!(back.headers().get_str("Mixed-Case"), Some("v"));
        assert_eq!(back.headers().get_str("multi"), Some("line  break"));
        assert!(!back.headers().contains(MSG_ID_HEADER));
    }
}
