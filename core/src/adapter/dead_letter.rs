//! The dead-letter copy of a message: the original plus the `wharf-dlq-*` headers.
//!
//! Lives in core so adapters with a native dead-letter path write exactly the headers the
//! dead-letter layer writes.

use std::time::SystemTime;

use crate::headers::names;
use crate::{Failure, Message};

/// Default bound on `wharf-dlq-error`, in bytes.
pub const DEFAULT_MAX_ERROR_LEN: usize = 4096;

/// The dead-letter copy of `message`: same id, key, headers and payload, plus the
/// `wharf-dlq-*` headers describing `failure`, naming `consumer`, with the error text
/// cut to `max_error_len` bytes.
pub fn dead_letter_message(
    message: &Message,
    failure: &Failure,
    consumer: &str,
    max_error_len: usize,
) -> Message {
    let origin = message.origin();
    let mut copy = message.clone();
    let h = copy.headers_mut();
    h.insert(names::DLQ_REASON, failure.reason().as_str().to_owned());
    h.insert(names::DLQ_ERROR, truncate(failure.error(), max_error_len));
    h.insert(names::DLQ_SOURCE, origin.source().to_owned());
    match origin.partition() {
        Some(p) => h.insert(names::DLQ_PARTITION, p.to_string()),
        None => {
            h.remove(names::DLQ_PARTITION);
        }
    }
    match origin.offset() {
        Some(o) => h.insert(names::DLQ_OFFSET, o.to_string()),
        None => {
            h.remove(names::DLQ_OFFSET);
        }
    }
    h.insert(names::DLQ_CONSUMER, consumer.to_owned());
    h.insert(names::DLQ_ATTEMPTS, message.attempt().to_string());
    h.insert(
        names::DLQ_FAILED_AT,
        humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
    );
    copy
}

/// Whether `a` and `b` are the same dead letter: the same message id, given up on by the
/// same consumer at the same moment (`wharf-dlq-consumer`, `wharf-dlq-failed-at`). Two
/// groups' dead letters of one message, or a message dead-lettered again after a replay,
/// are different dead letters.
pub fn same_letter(a: &Message, b: &Message) -> bool {
    a.id() == b.id()
        && a.headers().get_str(names::DLQ_CONSUMER) == b.headers().get_str(names::DLQ_CONSUMER)
        && a.headers().get_str(names::DLQ_FAILED_AT) == b.headers().get_str(names::DLQ_FAILED_AT)
}

/// Bytes a header costs beyond its name and value on any of the brokers (Kafka's
/// varints, NATS' `: ` and CRLF, AMQP's type tag and lengths), rounded up.
const HEADER_OVERHEAD: usize = 8;

/// What `message` costs against a broker's message size limit: payload, key, and every
/// header's name, value and framing. An estimate that errs on the large side; the limit
/// an adapter reports ([`Publisher::max_message_bytes`](crate::Publisher::max_message_bytes))
/// already leaves room for the broker's own framing.
pub fn encoded_len(message: &Message) -> usize {
    let headers: usize = message
        .headers()
        .iter()
        .map(|(name, value)| name.len() + value.len() + HEADER_OVERHEAD)
        .sum();
    message.payload().len() + message.key().map_or(0, |k| k.len()) + headers
}

/// Makes the dead-letter copy `copy` fit in `limit` bytes (as counted by
/// [`encoded_len`]); returns whether it fits.
///
/// A dead letter carries the original payload plus the `wharf-dlq-*` headers, so a
/// message close to the broker's limit would make a copy the broker refuses, and its
/// dead-lettering would fail for ever. What is cut, in order, until the copy fits:
///
/// 1. the `wharf-dlq-error` text (cut at a character boundary, down to nothing);
/// 2. the original's own headers (not `wharf-*`, not `traceparent`), largest first.
///
/// The payload, the key, the message id and the other `wharf-dlq-*` headers are never
/// cut; `wharf-dlq-trimmed` says what was (`error`, `headers=<n>`). A copy that still
/// does not fit is left as it is (the caller's publish then fails and is retried with
/// backoff: the destination's limit must be raised).
pub fn fit(copy: &mut Message, limit: usize) -> bool {
    if encoded_len(copy) <= limit {
        return true;
    }
    // Room for the marker itself: the longest value it takes.
    const MARKER: usize =
        names::DLQ_TRIMMED.len() + "error,headers=4294967295".len() + HEADER_OVERHEAD;
    let limit = limit.saturating_sub(MARKER);
    let mut trimmed = Vec::new();
    if let Some(error) = copy.headers().get_str(names::DLQ_ERROR).map(str::to_owned) {
        let over = encoded_len(copy).saturating_sub(limit);
        let keep = error.len().saturating_sub(over);
        copy.headers_mut()
            .insert(names::DLQ_ERROR, truncate(&error, keep));
        trimmed.push("error".to_owned());
    }
    if encoded_len(copy) > limit {
        let mut own: Vec<(String, usize)> = copy
            .headers()
            .iter()
            .filter(|(name, _)| !name.starts_with("wharf-") && *name != "traceparent")
            .map(|(name, value)| (name.to_owned(), name.len() + value.len()))
            .collect();
        own.sort_by_key(|o| std::cmp::Reverse(o.1));
        let mut removed = 0u32;
        for (name, _) in own {
            if encoded_len(copy) <= limit {
                break;
            }
            while copy.headers_mut().remove(&name).is_some() {}
            removed += 1;
        }
        if removed > 0 {
            trimmed.push(format!("headers={removed}"));
        }
    }
    copy.headers_mut()
        .insert(names::DLQ_TRIMMED, trimmed.join(","));
    encoded_len(copy) <= limit + MARKER
}

/// Cuts `text` to at most `max` bytes at a character boundary, marking the cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    const MARK: &str = "…";
    let budget = max.saturating_sub(MARK.len());
    let mut end = budget;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FailureReason, Origin};

    #[test]
    fn writes_every_header_and_keeps_the_original() {
        let msg = Message::new("payload")
            .with_key("k")
            .with_header("tenant", "acme")
            .with_origin(Origin::new("orders").with_partition(2).with_offset(41))
            .with_attempt(3);
        let copy = dead_letter_message(
            &msg,
            &Failure::new(FailureReason::RetriesExhausted, "db down"),
            "billing",
            100,
        );
        let h = copy.headers();
        assert_eq!(copy.id(), msg.id());
        assert_eq!(copy.key(), msg.key());
        assert_eq!(copy.payload(), msg.payload());
        assert_eq!(h.get_str("tenant"), Some("acme"));
        assert_eq!(h.get_str(names::DLQ_REASON), Some("retries-exhausted"));
        assert_eq!(h.get_str(names::DLQ_ERROR), Some("db down"));
        assert_eq!(h.get_str(names::DLQ_SOURCE), Some("orders"));
        assert_eq!(h.get_str(names::DLQ_PARTITION), Some("2"));
        assert_eq!(h.get_str(names::DLQ_OFFSET), Some("41"));
        assert_eq!(h.get_str(names::DLQ_CONSUMER), Some("billing"));
        assert_eq!(h.get_str(names::DLQ_ATTEMPTS), Some("3"));
        let at = h.get_str(names::DLQ_FAILED_AT).unwrap();
        humantime::parse_rfc3339(at).unwrap();
    }

    fn letter(payload: usize, error: usize) -> Message {
        let msg = Message::new(vec![b'x'; payload])
            .with_key("k")
            .with_header("tenant", "acme")
            .with_header("big", "b".repeat(500))
            .with_origin(Origin::new("orders"));
        let failure = Failure::new(FailureReason::Permanent, "e".repeat(error));
        dead_letter_message(&msg, &failure, "billing", 4096)
    }

    #[test]
    fn a_copy_that_fits_is_left_alone() {
        let mut copy = letter(100, 100);
        let before = format!("{copy:?}");
        assert!(fit(&mut copy, 1_000_000));
        assert_eq!(format!("{copy:?}"), before);
        assert_eq!(copy.headers().get_str(names::DLQ_TRIMMED), None);
    }

    #[test]
    fn the_error_text_goes_first() {
        let mut copy = letter(10_000, 4000);
        let limit = encoded_len(&copy) - 1000;
        assert!(fit(&mut copy, limit));
        assert!(
            encoded_len(&copy) <= limit,
            "{} > {limit}",
            encoded_len(&copy)
        );
        let h = copy.headers();
        assert_eq!(h.get_str(names::DLQ_TRIMMED), Some("error"));
        let error = h.get_str(names::DLQ_ERROR).unwrap();
        assert!(error.len() < 4000 && error.len() > 2000, "{}", error.len());
        assert_eq!(
            h.get_str("big").map(str::len),
            Some(500),
            "own headers kept"
        );
        assert_eq!(copy.payload().len(), 10_000);
    }

    #[test]
    fn then_the_largest_own_headers() {
        let mut copy = letter(10_000, 4000);
        // Room for the payload and the dlq headers, not for the error or `big`.
        let limit = encoded_len(&copy) - 4300;
        assert!(fit(&mut copy, limit));
        assert!(encoded_len(&copy) <= limit);
        let h = copy.headers();
        assert_eq!(h.get_str(names::DLQ_TRIMMED), Some("error,headers=1"));
        assert_eq!(h.get_str("big"), None);
        assert_eq!(h.get_str("tenant"), Some("acme"), "only what had to go");
        assert_eq!(h.get_str(names::DLQ_REASON), Some("permanent"));
        assert_eq!(h.get_str(names::DLQ_SOURCE), Some("orders"));
    }

    #[test]
    fn a_payload_over_the_limit_cannot_fit() {
        let mut copy = letter(10_000, 10);
        assert!(!fit(&mut copy, 5_000));
        assert_eq!(copy.payload().len(), 10_000, "the payload is never cut");
    }

    #[test]
    fn error_text_is_bounded_at_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate(&long, 11);
        assert!(cut.len() <= 11, "{cut}");
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short", 11), "short");
    }
}
