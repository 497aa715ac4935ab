//! Holds the `quickstart` example. Run it with `cargo run --example quickstart`.

/// Compiles the README's Rust snippets as doc tests, so the README stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
