//! The conformance tests, one public generic `async fn` per behaviour.
//!
//! Each takes the adapter's [`AdapterFactory`](crate::AdapterFactory), panics with a
//! clear message when the behaviour is broken, and returns early after printing a note
//! only when the adapter's [`Capabilities`](wharf::adapter::Capabilities) say the behaviour is
//! not promised. [`conformance_tests!`](crate::conformance_tests) runs them all; an
//! adapter may also call one directly from a test of its own.

mod backlog;
mod dead_letters;
mod delivery;
mod groups;
mod lifecycle;
mod middleware;
mod ordering;
mod poison;
mod redelivery;

pub use backlog::backlog_counts_what_is_not_settled;
pub use dead_letters::dead_letters_read_and_removed;
pub use delivery::{
    concurrent_publishers_and_subscribers, large_payload, many_topics, publish_then_subscribe,
};
pub use groups::{competing_consumers_share, groups_fan_out};
pub use lifecycle::{
    reconnect_after_broker_restart, resume_after_restart, shutdown_deadline_loses_nothing,
    shutdown_drains_in_flight,
};
pub use middleware::{duplicate_is_skipped, retry_then_dead_letter_with_headers};
pub use ordering::order_per_key;
pub use poison::poison_message_dead_lettered;
pub use redelivery::{
    failed_message_redelivered, retry_after_delays_without_blocking,
    unacked_message_survives_close, unacked_message_survives_subscriber_drop,
};
