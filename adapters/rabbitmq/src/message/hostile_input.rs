//! Hostile input: whatever a publisher put in a delivery's properties and headers, reading
//! it never panics and gives a clear, documented answer.
//!
//! - every AMQP field type, nested tables and arrays, under any name (`wharf-attempt`,
//!   `x-delivery-count`, `x-death`, `wharf-key`, ...);
//! - ids: empty, invalid UTF-8 (byte arrays), long;
//! - attempts: the carried `wharf-attempt` (a string or any integer type, negative,
//!   absurd) plus the broker's `x-delivery-count` is always in `1..=u32::MAX`; a value
//!   that is not a number counts as 1 (the documented default);
//! - 1 MiB header values are kept whole.

use std::sync::Arc;

use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::BasicProperties;
use proptest::prelude::*;
use wharf::headers::names;

use super::{from_amqp, DELIVERY_COUNT};

fn amqp_value() -> impl Strategy<Value = AMQPValue> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..48);
    let leaf = prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<f32>().prop_map(AMQPValue::Float),
        any::<f64>().prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        "\\PC{0,32}".prop_map(|s| AMQPValue::ShortString(s.as_str().into())),
        bytes().prop_map(|b| AMQPValue::LongString(LongString::from(b))),
        // Numbers as text, the way other clients write counts.
        (-5i64..5_000_000_000).prop_map(|n| AMQPValue::LongString(LongString::from(n.to_string()))),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        bytes().prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b))),
        Just(AMQPValue::Void),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
            proptest::collection::btree_map("[a-z-]{1,12}", inner, 0..4)
                .prop_map(|m| AMQPValue::FieldTable(table(m))),
        ]
    })
}

fn table(entries: impl IntoIterator<Item = (String, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(k.as_str().into(), v);
    }
    t
}

/// Header names: wharf's own and the broker's, plus anything.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(names::ATTEMPT.to_owned()),
        Just(DELIVERY_COUNT.to_owned()),
        Just("x-death".to_owned()),
        Just(names::MESSAGE_ID.to_owned()),
        Just(names::DLQ_REASON.to_owned()),
        Just("wharf-key".to_owned()),
        "[a-zA-Z0-9._-]{1,20}",
    ]
}

fn delivery() -> impl Strategy<Value = (BasicProperties, Vec<u8>, bool)> {
    (
        proptest::option::of("\\PC{0,40}"),
        proptest::collection::btree_map(header_name(), amqp_value(), 0..8),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(|(id, headers, payload, redelivered)| {
            let mut p = BasicProperties::default().with_headers(table(headers));
            if let Some(id) = id {
                p = p.with_message_id(id.as_str().into());
            }
            (p, payload, redelivered)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Never a panic; an id always; the attempt always in `1..=u32::MAX`; the payload
    /// untouched.
    #[test]
    fn any_delivery_reads_into_a_message((props, payload, redelivered) in delivery()) {
        let m = from_amqp(&props, payload.clone(), redelivered, &Arc::from("q"));
        prop_assert!(!m.id().as_str().is_empty());
        prop_assert!(m.attempt() >= 1);
        prop_assert_eq!(&m.payload()[..], &payload[..]);
    }

    /// A carried attempt written as text or as any integer type, and any broker count:
    /// the sum, clamped to `1..=u32::MAX` (a carried attempt below 1 counts as 1, a
    /// negative count as 0), never wrapped.
    #[test]
    fn numeric_attempts_add_up_and_clamp(
        carried in any::<i64>(),
        as_text in any::<bool>(),
        count in any::<i64>(),
    ) {
        let value = if as_text {
            AMQPValue::LongString(LongString::from(format!(" {carried} ")))
        } else {
            AMQPValue::LongLongInt(carried)
        };
        let m = read_attempt(value, count);
        let want = u32::try_from(carried.max(1).saturating_add(count.max(0))).unwrap_or(u32::MAX);
        prop_assert_eq!(m, want);
    }

    /// A carried attempt that is not a number (any bytes with a letter in them, a
    /// table, a float with a fraction) counts as 1: the documented default.
    #[test]
    fn a_non_numeric_attempt_counts_as_one(
        junk in "[0-9]{0,3}[a-zA-Z ,.]{1,8}[0-9]{0,3}",
        count in 0i64..1000,
    ) {
        prop_assume!(junk.trim().parse::<i64>().is_err());
        let text = AMQPValue::LongString(LongString::from(junk.clone()));
        prop_assert_eq!(read_attempt(text, count), 1 + count as u32);
        let table = AMQPValue::FieldTable(table([(junk, AMQPValue::LongInt(7))]));
        prop_assert_eq!(read_attempt(table, count), 1 + count as u32);
        // A float with a fraction is no count (an integral one reads as its value).
        prop_assert_eq!(read_attempt(AMQPValue::Double(3.5), count), 1 + count as u32);
    }
}

/// The attempt read from a delivery carrying `carried` as `wharf-attempt` and `count`
/// as `x-delivery-count`.
fn read_attempt(carried: AMQPValue, count: i64) -> u32 {
    let headers = table([
        (names::ATTEMPT.to_owned(), carried),
        (DELIVERY_COUNT.to_owned(), AMQPValue::LongLongInt(count)),
    ]);
    let props = BasicProperties::default().with_headers(headers);
    from_amqp(&props, Vec::new(), false, &Arc::from("q")).attempt()
}

/// A 1 MiB header value and a 1 MiB id (in `wharf-message-id`: the AMQP property holds
/// 255 bytes at most) are read whole, without a panic.
#[test]
fn a_mebibyte_header_and_id_are_kept_whole() {
    let big = vec![b'x'; 1 << 20];
    let headers = table([
        (
            "big".to_owned(),
            AMQPValue::LongString(LongString::from(big)),
        ),
        (
            names::MESSAGE_ID.to_owned(),
            AMQPValue::LongString(LongString::from("i".repeat(1 << 20))),
        ),
    ]);
    let props = BasicProperties::default().with_headers(headers);
    let m = from_amqp(&props, Vec::new(), false, &Arc::from("q"));
    assert_eq!(m.headers().get("big").map(|v| v.len()), Some(1 << 20));
    assert_eq!(m.id().as_str().len(), 1 << 20);
}

/// An id that is not UTF-8 (a byte array in `wharf-message-id`) or empty: the message
/// still gets an id, derived from its content, the same for every copy.
#[test]
fn an_unreadable_id_falls_back_to_a_stable_one() {
    let read = || {
        let headers = table([(
            names::MESSAGE_ID.to_owned(),
            AMQPValue::ByteArray(ByteArray::from(vec![0xff, 0xfe, 0x00])),
        )]);
        let props = BasicProperties::default()
            .with_headers(headers)
            .with_message_id("".into());
        from_amqp(&props, b"body".to_vec(), false, &Arc::from("q"))
    };
    let (one, two) = (read(), read());
    assert!(!one.id().as_str().is_empty());
    assert_eq!(one.id(), two.id());
}
