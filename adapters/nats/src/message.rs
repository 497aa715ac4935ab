//! Mapping between wharf [`Message`]s and NATS messages.
//!
//! | wharf | NATS |
//! |---|---|
//! | id | `Nats-Msg-Id` header (JetStream deduplicates on it), or `wharf-message-id` from a publisher with [broker deduplication](crate::NatsPublisher::broker_dedup) off; without either, a JetStream message's id is `<stream>:<stream sequence>` and a Core message gets a random id |
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
pub(crate) fn to_headers(message: &Message, broker_dedup: bool) -> Result<HeaderMap, BoxError> {
    let mut map = HeaderMap::new();
    for (name, value) in message.headers().iter() {
        if name == MSG_ID_HEADER || name == KEY_HEADER || name == names::MESSAGE_ID {
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
                MSG_ID_HEADER => id = values.first().map(|v| MessageId::from(v.as_str())),
                names::MESSAGE_ID => wharf_id = values.first().map(|v| MessageId::from(v.as_str())),
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

#[cfg(test)]
mod tests {
    use super::*;

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
