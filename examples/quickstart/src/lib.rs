//! Holds the `quickstart` example. Run it with `cargo run --example quickstart`.
