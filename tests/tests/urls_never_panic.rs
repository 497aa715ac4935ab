//! Hostile configuration input: any text as a broker URL (with each scheme in front, or
//! none) parses or fails with a configuration or connection error; it never panics.
//! Passwords in these URLs never print: `secrets_never_print.rs`.

use proptest::prelude::*;
use wharf_kafka::KafkaConfig;
use wharf_nats::NatsConfig;
use wharf_rabbitmq::RabbitConfig;

const SCHEMES: &[&str] = &[
    "",
    "amqp://",
    "amqps://",
    "kafka://",
    "kafka+ssl://",
    "nats://",
    "nats+jetstream://",
];

/// URL-ish text: the characters URLs are made of, and any others.
fn rest() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9:@/?&=%.,+_~ -]{0,80}",
        "\\PC{0,60}",
        // Well-formed shapes with odd values.
        (
            "[a-z0-9.]{0,12}",
            "[0-9]{0,7}",
            "[a-zA-Z0-9%_-]{0,12}",
            "[a-z_.]{1,24}",
            "\\PC{0,12}"
        )
            .prop_map(|(host, port, path, key, value)| format!(
                "u:p@{host}:{port}/{path}?{key}={value}"
            )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_url_parses_or_is_refused(scheme in proptest::sample::select(SCHEMES), rest in rest()) {
        let url = format!("{scheme}{rest}");
        let _ = RabbitConfig::from_url(&url);
        let _ = KafkaConfig::from_url(&url);
        let _ = NatsConfig::from_url(&url);
    }
}
