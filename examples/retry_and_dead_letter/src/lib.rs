//! Holds the `retry_and_dead_letter` example. Run it with
//! `cargo run --example retry_and_dead_letter`.
