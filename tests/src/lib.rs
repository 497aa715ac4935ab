//! The conformance suite every wharf broker adapter runs.
//!
//! wharf promises that the same handler and the same middleware behave the same way on
//! every broker. This crate is where that promise is checked: one generic suite, written
//! once, that each adapter runs from its own tests against its own broker. An adapter
//! hands the suite its [`Client`](wharf::adapter::Client) (and what no client offers,
//! such as restarting the broker) by implementing [`AdapterFactory`], and
//! [`conformance_tests!`] expands into one `#[test]` per behaviour; every test reaches
//! the broker only through that client surface.
//!
//! # What is checked
//!
//! Each test in [`suite`] checks one behaviour and panics with a clear message when the
//! adapter breaks it. A test whose behaviour the adapter does not promise (see
//! [`Capabilities`](wharf::adapter::Capabilities)) returns early after printing a note; nothing
//! else is ever skipped.
//!
//! | test | behaviour |
//! |---|---|
//! | [`publish_then_subscribe`](suite::publish_then_subscribe) | ids, keys, headers and payloads round-trip |
//! | [`large_payload`](suite::large_payload) | a 1 MiB payload round-trips |
//! | [`many_topics`](suite::many_topics) | 20 topics at once, no message crosses over |
//! | [`concurrent_publishers_and_subscribers`](suite::concurrent_publishers_and_subscribers) | 4 publishers × 250 messages, 3 subscribers, each message handled once |
//! | [`competing_consumers_share`](suite::competing_consumers_share) | one group's members get disjoint shares that cover everything |
//! | [`groups_fan_out`](suite::groups_fan_out) | two groups each get everything |
//! | [`failed_message_redelivered`](suite::failed_message_redelivered) | a transient failure comes back with a higher attempt, then is acked for good |
//! | [`retry_after_delays_without_blocking`](suite::retry_after_delays_without_blocking) | `Retry { after }` waits about `after` and holds up nothing else |
//! | [`unacked_message_survives_close`](suite::unacked_message_survives_close) | a delivery left unsettled when its subscriber closes is delivered again |
//! | [`unacked_message_survives_subscriber_drop`](suite::unacked_message_survives_subscriber_drop) | the same when the subscriber is dropped (a crash) |
//! | [`order_per_key`](suite::order_per_key) | with [`DeliveryOrder::PerKey`](wharf::DeliveryOrder::PerKey), each key is handled in publish order, one at a time |
//! | [`poison_message_dead_lettered`](suite::poison_message_dead_lettered) | an undecodable message is dead-lettered (reason `decode`) and does not stall the stream |
//! | [`dead_letters_read_and_removed`](suite::dead_letters_read_and_removed) | the client's dead-letter reader lists, reads and removes native dead letters (with their `wharf-dlq-*` headers), and the subscriber's description names the same destination |
//! | [`retry_then_dead_letter_with_headers`](suite::retry_then_dead_letter_with_headers) | the retry and dead-letter layers on the adapter: three attempts, then one dead letter with the original message and every `wharf-dlq-*` header |
//! | [`duplicate_is_skipped`](suite::duplicate_is_skipped) | two copies of one message id: the dedup layer runs the handler once |
//! | [`resume_after_restart`](suite::resume_after_restart) | a second consumer picks up where the first stopped, also across a broker restart |
//! | [`shutdown_drains_in_flight`](suite::shutdown_drains_in_flight) | graceful shutdown finishes in-flight work and loses nothing |
//! | [`shutdown_deadline_loses_nothing`](suite::shutdown_deadline_loses_nothing) | work cut off by the shutdown deadline is redelivered, never lost or dead-lettered |
//! | [`reconnect_after_broker_restart`](suite::reconnect_after_broker_restart) | a running consumer carries on after the broker restarts |
//!
//! # Running it for an adapter
//!
//! ```text
//! // adapters/rabbitmq/tests/conformance.rs
//! use wharf_conformance::{conformance_tests, AdapterFactory};
//!
//! struct Rabbit { client: RabbitClient /* and what restarts the broker */ }
//! impl AdapterFactory for Rabbit { /* type Client = RabbitClient; fn client(&self) ... */ }
//!
//! conformance_tests!(ignore = "needs rabbitmq", Rabbit::connect("amqp://127.0.0.1:5672").await);
//! ```
//!
//! Every test uses its own uniquely named topic and groups ([`unique_topic`],
//! [`unique_group`]), so the tests run in parallel against one real broker. Waits are
//! bounded polls with a deadline ([`AdapterFactory::timeout`]), never fixed sleeps, and
//! retry delays are short (50–300 ms), so the suite on the in-memory broker takes a few
//! seconds.
//!
//! The in-memory adapter runs the whole suite in this crate's own `tests/memory.rs`.

mod factory;
mod macros;
mod support;

pub mod brokers;
pub mod net;
pub mod stores;
pub mod suite;
pub mod tls;

pub use factory::{AdapterFactory, DeadLetterRecord};
pub use support::{unique_group, unique_topic};

/// Re-exported so adapters name the same `wharf` as the suite.
pub use wharf;

/// Support for [`conformance_tests!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;
    use std::time::Duration;

    /// Longest a single conformance test may run before it is failed as hung. Every wait
    /// inside a test has its own, shorter deadline; this catches an adapter call that
    /// never returns.
    const TEST_DEADLINE: Duration = Duration::from_secs(300);

    /// Runs one test on a fresh multi-threaded runtime with two workers (what
    /// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` builds), under an
    /// overall deadline.
    ///
    /// # Panics
    ///
    /// If the test panics, if it runs past the deadline, or if the runtime cannot be
    /// built.
    pub fn run<Fut: Future<Output = ()>>(name: &str, test: Fut) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("building the tokio runtime for `{name}` failed: {e}"));
        runtime.block_on(async {
            if tokio::time::timeout(TEST_DEADLINE, test).await.is_err() {
                panic!(
                    "conformance test `{name}` did not finish within {TEST_DEADLINE:?}: an \
                     adapter call never returned"
                );
            }
        });
    }
}
