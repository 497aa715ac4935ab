//! Holds the `nats_orders` example (needs nats-server with JetStream on 127.0.0.1:4222).
//! Run it with `cargo run --example nats_orders`.
