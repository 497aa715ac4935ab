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

    #[test]
    fn error_text_is_bounded_at_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate(&long, 11);
        assert!(cut.len() <= 11, "{cut}");
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short", 11), "short");
    }
}
