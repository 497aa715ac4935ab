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
/// ```ignore
/// // Every test on the in-memory broker:
/// wharf_conformance::conformance_tests!(MemoryFactory::new());
///
/// // Every test on RabbitMQ, ignored unless asked for:
/// wharf_conformance::conformance_tests!(
///     ignore = "needs rabbitmq",
///     RabbitFactory::connect("amqp://127.0.0.1:5672").await
/// );
///
/// // Any other attributes, written out:
/// wharf_conformance::conformance_tests!(#[ignore = "needs kafka"] KafkaFactory::new());
/// ```
///
/// Place the call in its own module if the test names (`publish_then_subscribe`, ...)
/// would clash with other tests in the file.
#[macro_export]
macro_rules! conformance_tests {
    (ignore = $reason:literal, $factory:expr $(,)?) => {
        $crate::conformance_tests!(#[ignore = $reason] $factory);
    };
    ($(#[$attr:meta])* $factory:expr $(,)?) => {
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
            resume_after_restart,
            shutdown_drains_in_flight,
            shutdown_deadline_loses_nothing,
            reconnect_after_broker_restart,
        );
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
