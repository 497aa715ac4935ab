//! Hostile payloads: whatever bytes arrive, the typed extractors either decode them or
//! fail with a `decode` error (permanent: the message is dead-lettered with reason
//! `decode`, never retried, the stream goes on). Never a panic, never a transient error
//! that would redeliver the message for ever.

use proptest::prelude::*;
use wharf::{ErrorKind, FailureReason, FromMessage, Json, Key, Message};

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)] // read only through Debug
struct Order {
    id: u64,
    items: Vec<String>,
    total: f64,
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        // JSON-ish text, sometimes well-formed.
        "\\{\"id\": ?-?[0-9]{0,22}, ?\"items\": ?\\[(\"\\PC{0,8}\",?){0,3}\\], ?\"total\": ?[0-9e.+-]{0,12}\\}"
            .prop_map(String::into_bytes),
        // Deep nesting.
        (1usize..300).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_payload_decodes_or_is_a_decode_failure(bytes in payload()) {
        let message = Message::new(bytes);
        match <Json<Order> as FromMessage>::from_message(&message, &()) {
            Ok(_) => {}
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::Permanent);
                prop_assert_eq!(e.reason(), FailureReason::Decode);
            }
        }
        // Untyped JSON and a missing key: the same promise.
        if let Err(e) = <Json<serde_json::Value> as FromMessage>::from_message(&message, &()) {
            prop_assert_eq!(e.reason(), FailureReason::Decode);
        }
        let _ = <Key as FromMessage>::from_message(&message, &());
    }
}
