//! Holds the `kafka_orders` example (needs a Kafka-compatible broker on 127.0.0.1:9092,
//! e.g. Apache Kafka as `scripts/brokers.sh` starts it). Run it with `cargo run --example kafka_orders`.
