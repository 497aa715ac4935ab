//! Hostile input: whatever a server or a publisher put in a reply subject or in headers,
//! reading it never panics and gives a clear answer.
//!
//! - JetStream reply subjects: any text, any number of tokens, numbers too large for a
//!   `u64`: `None` (the subscriber then treats the message as a first delivery), never a
//!   panic; every well-formed subject, in both forms, reads back its numbers exactly;
//! - headers: any names and values (CR, LF, control characters, long values), several
//!   values per name: no panic, an id always (the fallback when no id header), the key
//!   taken out, every other header kept.

use async_nats::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use proptest::prelude::*;
use std::str::FromStr;
use wharf::{MessageId, Origin};

use super::{delivery_info, from_nats, DeliveryInfo, KEY_HEADER, MSG_ID_HEADER};

fn token() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{1,22}", "[A-Za-z0-9_$-]{0,8}", "\\PC{0,4}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_subject_reads_or_is_refused(subject in "\\PC{0,120}") {
        let _ = delivery_info(&subject);
    }

    #[test]
    fn any_ack_shaped_subject_reads_or_is_refused(tokens in proptest::collection::vec(token(), 0..16)) {
        let _ = delivery_info(&format!("$JS.ACK.{}", tokens.join(".")));
    }

    #[test]
    fn well_formed_subjects_read_back_exactly(
        stream in "[A-Z_]{1,12}",
        consumer in "[a-z_-]{1,12}",
        numbers in any::<[u64; 5]>(),
        long_form in any::<bool>(),
        trailing in proptest::option::of("[a-z0-9]{1,6}"),
    ) {
        let [delivered, stream_sequence, consumer_sequence, time, pending] = numbers;
        let tail = format!("{stream}.{consumer}.{delivered}.{stream_sequence}.{consumer_sequence}.{time}.{pending}");
        let subject = if long_form {
            let mut s = format!("$JS.ACK.hub.ACCHASH.{tail}");
            if let Some(t) = trailing {
                s = format!("{s}.{t}");
            }
            s
        } else {
            format!("$JS.ACK.{tail}")
        };
        prop_assert_eq!(
            delivery_info(&subject),
            Some(DeliveryInfo { delivered, stream_sequence, pending })
        );
    }

    /// `Nats-Msg-Id` or `wharf-message-id` empty, or with CR/LF: no panic, never an
    /// empty id.
    #[test]
    fn any_headers_read_into_a_message(
        headers in proptest::collection::vec(
            (
                prop_oneof![
                    Just(MSG_ID_HEADER.to_owned()),
                    Just(KEY_HEADER.to_owned()),
                    Just(wharf::headers::names::MESSAGE_ID.to_owned()),
                    "[A-Za-z0-9-]{1,16}",
                ],
                "\\PC{0,64}",
            ),
            0..12,
        ),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            let Ok(name) = HeaderName::from_str(name) else { continue };
            map.append(name, HeaderValue::from(value.as_str()));
        }
        let m = from_nats(Bytes::from(payload.clone()), Some(&map), Origin::new("s"), 1, || {
            MessageId::from("fallback")
        });
        prop_assert!(!m.id().as_str().is_empty());
        prop_assert!(!m.headers().contains(KEY_HEADER));
        prop_assert!(!m.headers().contains(MSG_ID_HEADER));
        prop_assert_eq!(&m.payload()[..], &payload[..]);
    }
}
