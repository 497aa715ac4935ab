//! Hostile input: whatever a producer put in a record's headers, reading them never
//! panics and gives a clear answer.
//!
//! - `wharf-attempt`: any bytes; a number is clamped to `1..=u32::MAX`, anything else
//!   counts as 1 (the documented default);
//! - `wharf-message-id`: empty reads as no id (the record's position then names it, so
//!   one empty id cannot make every such record a duplicate of the first); invalid UTF-8
//!   is replaced, never refused;
//! - `wharf-retry-not-before` and `wharf-retry-source` count only on a retry topic: on
//!   any other topic they are ordinary headers, so a producer cannot hold a record back
//!   for a century or rename its source;
//! - 1 MiB values are kept whole.

use proptest::prelude::*;
use wharf::headers::names;

use super::{read_headers, RETRY_NOT_BEFORE, RETRY_SOURCE};

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    (
        prop_oneof![
            Just(names::ATTEMPT.to_owned()),
            Just(names::MESSAGE_ID.to_owned()),
            Just(RETRY_NOT_BEFORE.to_owned()),
            Just(RETRY_SOURCE.to_owned()),
            "\\PC{0,16}",
        ],
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<i128>().prop_map(|n| n.to_string().into_bytes()),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_headers_read(
        list in proptest::collection::vec(header(), 0..12),
        retry_topic in any::<bool>(),
    ) {
        let read = read_headers(list.iter().map(|(k, v)| (k.as_str(), v.as_slice())), retry_topic);
        prop_assert!(read.attempt >= 1);
        if let Some(id) = &read.id {
            prop_assert!(!id.as_str().is_empty());
        }
        if !retry_topic {
            prop_assert!(read.not_before.is_none() && read.source.is_none());
        }
    }

    #[test]
    fn numeric_attempts_clamp(n in any::<i128>()) {
        let text = format!(" {n} ");
        let read = read_headers([(names::ATTEMPT, text.as_bytes())], false);
        let want = if n < 1 { 1 } else { u32::try_from(n).unwrap_or(u32::MAX) };
        // A number beyond u64 is not read: the default.
        let want = if n > i128::from(u64::MAX) { 1 } else { want };
        prop_assert_eq!(read.attempt, want);
    }
}

#[test]
fn an_empty_id_is_no_id() {
    let read = read_headers([(names::MESSAGE_ID, &b""[..])], false);
    assert!(read.id.is_none());
}

#[test]
fn retry_headers_count_only_on_a_retry_topic() {
    let list = [
        (RETRY_NOT_BEFORE, &b"99999999999999"[..]),
        (RETRY_SOURCE, &b"elsewhere"[..]),
    ];
    let main = read_headers(list, false);
    assert!(main.not_before.is_none() && main.source.is_none());
    assert_eq!(main.headers.get_str(RETRY_SOURCE), Some("elsewhere"));
    let retry = read_headers(list, true);
    assert!(retry.not_before.is_some());
    assert_eq!(retry.source.as_deref(), Some("elsewhere"));
}

#[test]
fn a_mebibyte_header_is_kept_whole() {
    let big = vec![0xffu8; 1 << 20];
    let read = read_headers([("big", big.as_slice())], false);
    assert_eq!(read.headers.get("big").map(|v| v.len()), Some(1 << 20));
}
