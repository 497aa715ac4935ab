//! `App`: many named consumers under one shutdown, one report, one catalog.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use wharf::{App, Consumer, Handler, HandlerError, Message};
use wharf_memory::MemoryBroker;

async fn ok(_: Message) -> Result<(), HandlerError> {
    Ok(())
}

fn published(topic: &str, n: usize) -> MemoryBroker {
    let broker = MemoryBroker::new();
    for group in ["billing", "shipping"] {
        broker.declare_group(topic, group);
    }
    for i in 0..n {
        broker
            .publish(topic, Message::new(format!("m{i}")))
            .unwrap();
    }
    broker
}

#[tokio::test]
async fn one_shutdown_stops_every_consumer_and_each_reports() {
    let broker = published("orders", 5);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = App::new()
        .consumer(Consumer::new(
            "billing",
            broker.subscribe("orders", "billing"),
            ok.into_service(),
        ))
        .consumer(Consumer::new(
            "shipping",
            broker.subscribe("orders", "shipping"),
            ok.into_service(),
        ));
    let running = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    // Both groups drain the topic, and neither stops on its own (no stop_when_idle).
    for group in ["billing", "shipping"] {
        tokio::time::timeout(Duration::from_secs(10), broker.idle("orders", group))
            .await
            .unwrap();
    }
    assert!(
        !running.is_finished(),
        "consumers stop only on the shutdown signal"
    );
    stop.send(()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the app stops after the signal")
        .unwrap()
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.summary("billing").unwrap().acked, 5);
    assert_eq!(report.summary("shipping").unwrap().acked, 5);
    let names: Vec<&str> = report.consumers().map(|(n, _)| n).collect();
    assert_eq!(names, ["billing", "shipping"]);
}

#[tokio::test]
async fn a_failing_consumer_stops_the_others() {
    let broker = published("orders", 1);
    let app = App::new()
        .consumer(Consumer::new(
            "billing",
            broker.subscribe("orders", "billing"),
            ok.into_service(),
        ))
        // Invalid: fails at start-up.
        .consumer(
            Consumer::new(
                "shipping",
                broker.subscribe("orders", "shipping"),
                ok.into_service(),
            )
            .max_in_flight(0),
        );
    let report = tokio::time::timeout(Duration::from_secs(10), app.run(std::future::pending()))
        .await
        .expect("a failed consumer stops the app, though the shutdown never comes")
        .unwrap();
    let (name, error) = report.first_error().unwrap();
    assert_eq!(name, "shipping");
    assert!(error.to_string().contains("max_in_flight"), "{error}");
    // The healthy one drained and stopped gracefully, with its summary.
    assert!(report.summary("billing").is_some(), "{report:?}");
}

#[tokio::test]
async fn a_consumer_that_ends_leaves_the_others_running() {
    let broker = published("orders", 2);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = App::new()
        .consumer(
            Consumer::new(
                "billing",
                broker.subscribe("orders", "billing"),
                ok.into_service(),
            )
            .stop_when_idle(Duration::from_millis(50)),
        )
        .consumer(Consumer::new(
            "shipping",
            broker.subscribe("orders", "shipping"),
            ok.into_service(),
        ));
    let running = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !running.is_finished(),
        "shipping still runs after billing went idle"
    );
    broker.publish("orders", Message::new("late")).unwrap();
    tokio::time::timeout(Duration::from_secs(10), broker.idle("orders", "shipping"))
        .await
        .unwrap();
    stop.send(()).unwrap();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.summary("billing").unwrap().acked, 2);
    assert_eq!(report.summary("shipping").unwrap().acked, 3);
}

#[tokio::test]
async fn names_must_be_unique_and_an_app_needs_a_consumer() {
    let broker = published("orders", 0);
    let twice = App::new()
        .consumer(Consumer::new(
            "billing",
            broker.subscribe("orders", "billing"),
            ok.into_service(),
        ))
        .consumer(Consumer::new(
            "billing",
            broker.subscribe("orders", "shipping"),
            ok.into_service(),
        ));
    let err = twice
        .run(std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("two consumers are named `billing`"), "{err}");
    let err = App::new()
        .run(std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one consumer"), "{err}");
}

#[test]
fn the_catalog_names_owner_source_dead_letters_and_retry() {
    let broker = published("orders", 0);
    let app = App::new()
        .consumer(
            Consumer::new(
                "billing",
                broker.subscribe("orders", "billing"),
                ok.into_service(),
            )
            .owner("team-billing")
            .describe_retry("4 attempts, 1s → 30s, then dead letter"),
        )
        .consumer(Consumer::new(
            "shipping",
            broker.subscribe("orders", "shipping"),
            ok.into_service(),
        ));
    let catalog = app.catalog();
    let billing = &catalog[0];
    assert_eq!(billing.name, "billing");
    assert_eq!(billing.owner.as_deref(), Some("team-billing"));
    assert_eq!(billing.source.broker, "memory");
    assert_eq!(billing.source.source, "orders");
    assert_eq!(billing.source.group.as_deref(), Some("billing"));
    assert_eq!(billing.source.dead_letters.as_deref(), Some("orders.dlq"));
    assert_eq!(billing.retry, "4 attempts, 1s → 30s, then dead letter");
    assert_eq!(billing.ordering, "per-key");
    let shipping = &catalog[1];
    assert_eq!(shipping.owner, None);
    assert!(
        shipping.retry.contains("runtime fallback"),
        "{}",
        shipping.retry
    );
    // Operators' tools read it as JSON.
    let json = serde_json::to_value(billing).unwrap();
    assert_eq!(json["dead_letters"], "orders.dlq");
    assert_eq!(json["owner"], "team-billing");
}

/// A subscriber whose stream panics: the consumer's own task dies (not a handler panic,
/// which the runtime catches per message).
struct Exploding;

impl futures_util::Stream for Exploding {
    type Item = Result<wharf::adapter::Delivery<wharf_memory::MemoryAcker>, wharf::Error>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        panic!("the subscriber broke");
    }
}

impl wharf::adapter::Subscriber for Exploding {
    type Acker = wharf_memory::MemoryAcker;

    fn capabilities(&self) -> wharf::adapter::Capabilities {
        wharf::adapter::Capabilities::default()
    }

    async fn close(self) -> Result<(), wharf::Error> {
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_consumer_is_reported_under_its_own_name() {
    let broker = published("orders", 1);
    // Added first and second: the panic must be reported for the second, whatever the
    // order in which the tasks end.
    let app = App::new()
        .consumer(Consumer::new(
            "billing",
            broker.subscribe("orders", "billing"),
            ok.into_service(),
        ))
        .consumer(Consumer::new("exploding", Exploding, ok.into_service()))
        .consumer(Consumer::new(
            "shipping",
            broker.subscribe("orders", "shipping"),
            ok.into_service(),
        ));
    let report = tokio::time::timeout(Duration::from_secs(10), app.run(std::future::pending()))
        .await
        .expect("a dead consumer task stops the app")
        .unwrap();
    let (name, error) = report.first_error().unwrap();
    assert_eq!(name, "exploding", "{error}");
    assert!(report.summary("billing").is_some() && report.summary("shipping").is_some());
}

#[tokio::test]
async fn a_panicking_shutdown_future_still_stops_the_consumers() {
    let broker = published("orders", 1);
    let app = App::new().consumer(Consumer::new(
        "billing",
        broker.subscribe("orders", "billing"),
        ok.into_service(),
    ));
    let shutdown = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        panic!("the signal handler broke");
    };
    let report = tokio::time::timeout(Duration::from_secs(10), app.run(shutdown))
        .await
        .expect("the consumers stop although the shutdown future panicked")
        .unwrap();
    assert_eq!(report.summary("billing").unwrap().acked, 1);
}
