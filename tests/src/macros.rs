//! `conformance_tests!`: one `#[test]` per conformance test.

/// Expands into one `#[test]` per test in [`suite`](crate::suite), each running the
/// generic test against the factory that `$factory` builds.
///
/// Each test runs on its own multi-threaded tokio runtime with two workers (what
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` would build, without
/// requiring the calling crate to enable tokio's macros), under an overall deadline.
/// `$factory` is evaluated inside that runtime, once per test, and may `.await`.
///
/// Adapters whose broker is not always running mark the tests ignored, so `cargo test`
/// skips them and the test script runs them with `--include-ignored`:
///
/// ```
/// # use wharf_conformance::AdapterFactory;
/// # use wharf_memory::{MemoryBroker, MemorySubscriber};
/// # struct MemoryFactory(MemoryBroker);
/// # impl MemoryFactory { fn new() -> Self { MemoryFactory(MemoryBroker::new()) } }
/// # impl AdapterFactory for MemoryFactory {
/// #     type Client = MemoryBroker;
/// #     type Subscriber = MemorySubscriber;
/// #     type Publisher = MemoryBroker;
/// #     fn name(&self) -> &str { "memory" }
/// #     fn client(&self) -> &MemoryBroker { &self.0 }
/// # }
/// // Every test, run by `cargo test`:
/// mod memory {
///     # use super::*;
///     wharf_conformance::conformance_tests!(MemoryFactory::new());
/// }
///
/// // Every test, ignored unless asked for (`cargo test -- --include-ignored`); the
/// // factory expression may `.await` (connecting to the broker, say):
/// mod broker {
///     # use super::*;
///     wharf_conformance::conformance_tests!(ignore = "needs a broker", async { MemoryFactory::new() }.await);
/// }
///
/// // Any other attributes, in brackets:
/// mod other {
///     # use super::*;
///     wharf_conformance::conformance_tests!(attrs = [#[ignore = "needs kafka"] #[allow(unused)]], MemoryFactory::new());
/// }
/// # fn main() {}
/// ```
///
/// Place the call in its own module if the test names (`publish_then_subscribe`, ...)
/// would clash with other tests in the file.
#[macro_export]
macro_rules! conformance_tests {
    (ignore = $reason:literal, $factory:expr $(,)?) => {
        $crate::conformance_tests!(@with [#[ignore = $reason]] $factory);
    };
    (attrs = [$(#[$attr:meta])*], $factory:expr $(,)?) => {
        $crate::conformance_tests!(@with [$(#[$attr])*] $factory);
    };
    // Attributes travel in brackets: `#[..] expr` would be ambiguous with an expression
    // that starts with an attribute.
    (@with [$(#[$attr:meta])*] $factory:expr) => {
        $crate::__conformance_tests!(
            [$(#[$attr])*] $factory;
            publish_then_subscribe,
            large_payload,
            many_topics,
            concurrent_publishers_and_subscribers,
            competing_consumers_share,
            groups_fan_out,
            failed_message_redelivered,
            retry_after_delays_without_blocking,
            unacked_message_survives_close,
            unacked_message_survives_subscriber_drop,
            order_per_key,
            poison_message_dead_lettered,
            dead_letters_read_and_removed,
            backlog_counts_what_is_not_settled,
            retry_then_dead_letter_with_headers,
            duplicate_is_skipped,
            resume_after_restart,
            shutdown_drains_in_flight,
            shutdown_deadline_loses_nothing,
            reconnect_after_broker_restart,
        );
    };
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!(@with [] $factory);
    };
}

/// Expands one test per name; support for [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    // `@one` first: the list arm would try to parse `@one [...]` as an expression.
    (@one [$(#[$attr:meta])*] $factory:expr; $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            $crate::__private::run(::std::stringify!($name), async {
                let factory = $factory;
                $crate::suite::$name(&factory).await;
            });
        }
    };
    ($attrs:tt $factory:expr; $($name:ident),+ $(,)?) => {
        $(
            $crate::__conformance_tests!(@one $attrs $factory; $name);
        )+
    };
}

/// Expands into one `#[test]` per test in [`stores`](crate::stores), each running against
/// the [`StoreFactory`](crate::stores::StoreFactory) that `$factory` builds (evaluated
/// inside the test's runtime; it may `.await`). `ignore = "..."` marks them ignored, as
/// [`conformance_tests!`] does.
#[macro_export]
macro_rules! store_conformance_tests {
    (ignore = $reason:literal, $factory:expr $(,)?) => {
        $crate::store_conformance_tests!(@with [#[ignore = $reason]] $factory);
    };
    (@with [$(#[$attr:meta])*] $factory:expr) => {
        $crate::__store_tests!(
            [$(#[$attr])*] $factory;
            claim_complete_then_duplicate_skipped,
            release_lets_the_next_claim_run,
            expired_lease_lets_another_holder_take_over,
            stale_holder_cannot_touch_its_successors_claim,
            late_completion_without_a_successor_is_recorded,
            retention_window_ends,
            consumers_never_collide,
            concurrent_claims_have_one_winner,
            replicas_run_each_effect_once,
            layer_runs_each_key_once,
            layer_handles_a_failed_key_again,
            layer_hands_an_aborted_claim_back,
        );
    };
    ($factory:expr $(,)?) => {
        $crate::store_conformance_tests!(@with [] $factory);
    };
}

/// Expands one store test per name; support for [`store_conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __store_tests {
    (@one [$(#[$attr:meta])*] $factory:expr; $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            $crate::__private::run(::std::stringify!($name), async {
                let factory = $factory;
                $crate::stores::$name(&factory).await;
            });
        }
    };
    ($attrs:tt $factory:expr; $($name:ident),+ $(,)?) => {
        $(
            $crate::__store_tests!(@one $attrs $factory; $name);
        )+
    };
}
