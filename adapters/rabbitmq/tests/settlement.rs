//! Settling on the local RabbitMQ: a retry through a tier queue, and dead letters with
//! the same headers as on the in-memory adapter.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wharf::adapter::{Acker, Delivery, Subscriber};
use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Headers, Message, Outcome, Publisher};
use wharf_memory::MemoryBroker;
use wharf_middleware::dead_letter::DeadLetterLayer;
use wharf_rabbitmq::{
    inspect, topology, RabbitAcker, RabbitConfig, RabbitPublisher, RabbitSubscriber,
};

async fn next(sub: &mut RabbitSubscriber) -> Delivery<RabbitAcker> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
            Ok(Some(Ok(d))) => return d,
            Ok(Some(Err(e))) => eprintln!("subscriber error (continuing): {e}"),
            Ok(None) => panic!("the subscription ended"),
            Err(_) => panic!("no delivery within 10 s"),
        }
    }
}

fn config(queue: &str) -> RabbitConfig {
    common::base().queue(queue)
}

/// `Retry { after: 1s }` goes through the 1 s tier queue: the message published after
/// it is delivered at once, the retried one comes back after about a second with its
/// attempt incremented and everything else intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn retry_comes_back_after_its_tier_without_blocking_others() {
    let queue = common::unique("retry-tier");
    let config = config(&queue);
    let mut sub = RabbitSubscriber::connect(&config).await.unwrap();
    let publisher = RabbitPublisher::connect(&config).await.unwrap();
    let first = Message::with_id(format!("{queue}-first"), "one")
        .with_key("k1")
        .with_header("tenant", "acme");
    publisher.publish(&queue, first.clone()).await.unwrap();

    let (m, acker) = next(&mut sub).await.into_parts();
    assert_eq!(m.id(), first.id());
    assert_eq!(m.attempt(), 1);
    acker
        .settle(Outcome::retry_after(Duration::from_secs(1)))
        .await
        .unwrap();
    let retried_at = Instant::now();

    publisher
        .publish(&queue, Message::with_id(format!("{queue}-second"), "two"))
        .await
        .unwrap();
    let (m, acker) = next(&mut sub).await.into_parts();
    assert_eq!(
        m.id().as_str(),
        format!("{queue}-second"),
        "the message published after the retry must not wait behind it"
    );
    assert!(retried_at.elapsed() < Duration::from_millis(900));
    acker.settle(Outcome::Ack).await.unwrap();

    let (m, acker) = next(&mut sub).await.into_parts();
    let waited = retried_at.elapsed();
    acker.settle(Outcome::Ack).await.unwrap();
    assert_eq!(m.id(), first.id());
    assert!(
        waited >= Duration::from_millis(900) && waited <= Duration::from_secs(3),
        "the retry came back after {waited:?}, expected about 1 s"
    );
    assert_eq!(m.attempt(), 2, "the attempt is incremented");
    assert_eq!(m.key(), first.key());
    assert_eq!(m.payload(), first.payload());
    assert_eq!(m.headers().get_str("tenant"), Some("acme"));
    assert_eq!(m.origin().source(), queue);

    // Nothing else is left.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), sub.next())
            .await
            .is_err(),
        "a settled message came back"
    );
    sub.close().await.unwrap();
    publisher.close().await;
}

/// The `wharf-dlq-*` headers (and the original ones) of a dead letter, except the time,
/// the source name and the position (`wharf-dlq-partition`, `wharf-dlq-offset`: only
/// brokers with positions have them; a RabbitMQ queue has none).
fn dlq_headers(h: &Headers) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = h
        .iter()
        .filter(|(n, _)| n.starts_with("wharf-dlq-") || *n == "tenant")
        .filter(|(n, _)| {
            ![
                names::DLQ_FAILED_AT,
                names::DLQ_SOURCE,
                names::DLQ_OFFSET,
                names::DLQ_PARTITION,
            ]
            .contains(n)
        })
        .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    v.sort();
    v
}

async fn rejecting(_: Message) -> Result<(), HandlerError> {
    Err(HandlerError::permanent(std::io::Error::other(
        "order 42 is not valid",
    )))
}

/// A permanent failure dead-lettered natively on RabbitMQ (no dead-letter layer) carries
/// exactly the headers the dead-letter layer writes on the in-memory broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn dead_letters_carry_the_same_headers_as_in_memory() {
    const CONSUMER: &str = "billing";
    let message = |q: &str| {
        Message::with_id(format!("{q}-poison"), "payload")
            .with_key("order-42")
            .with_header("tenant", "acme")
    };

    // In memory, through the dead-letter layer.
    let broker = MemoryBroker::new();
    broker.declare_group("orders", CONSUMER);
    broker.publish("orders", message("orders")).unwrap();
    let stack = wharf::tower::ServiceBuilder::new()
        .layer(DeadLetterLayer::new(Arc::new(broker.clone())))
        .service(rejecting.into_service());
    let idle = {
        let b = broker.clone();
        async move { b.idle("orders", CONSUMER).await }
    };
    Consumer::new(CONSUMER, broker.subscribe("orders", CONSUMER), stack)
        .run(idle)
        .await
        .unwrap();
    broker.declare_group("orders.dlq", "reader");
    let mut reader = broker.subscribe("orders.dlq", "reader");
    let (memory_letter, _) = reader.next().await.unwrap().unwrap().into_parts();

    // On RabbitMQ, natively (the runtime settles `DeadLetter` through the acker).
    let queue = common::unique("dlq-headers");
    let config = config(&queue).consumer_tag(CONSUMER);
    topology::declare(&config).await.unwrap();
    let publisher = RabbitPublisher::connect(&config).await.unwrap();
    publisher.publish(&queue, message(&queue)).await.unwrap();
    let sub = RabbitSubscriber::connect(&config).await.unwrap();
    let token = stop_token();
    let run = tokio::spawn(
        Consumer::new(CONSUMER, sub, rejecting.into_service()).run(token.clone().cancelled_owned()),
    );
    let dlq = format!("{queue}.dlq");
    let deadline = Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let letters = inspect::peek(&config, &dlq, 10).await.unwrap();
        if !letters.is_empty() || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    token.cancel();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.dead_lettered, 1, "{summary:?}");
    assert_eq!(letters.len(), 1, "exactly one dead letter");
    let rabbit_letter = &letters[0];

    assert_eq!(rabbit_letter.id().as_str(), format!("{queue}-poison"));
    assert_eq!(rabbit_letter.key(), memory_letter.key());
    assert_eq!(rabbit_letter.payload(), memory_letter.payload());
    assert_eq!(
        dlq_headers(rabbit_letter.headers()),
        dlq_headers(memory_letter.headers()),
        "RabbitMQ: {:?}\nmemory: {:?}",
        rabbit_letter.headers(),
        memory_letter.headers()
    );
    assert_eq!(
        rabbit_letter.headers().get_str(names::DLQ_SOURCE),
        Some(queue.as_str())
    );
    assert!(!rabbit_letter.headers().contains(names::DLQ_OFFSET));
    assert_eq!(
        memory_letter.headers().get_str(names::DLQ_SOURCE),
        Some("orders")
    );
    for h in [rabbit_letter.headers(), memory_letter.headers()] {
        let at = h.get_str(names::DLQ_FAILED_AT).unwrap_or_default();
        assert!(humantime::parse_rfc3339(at).is_ok(), "failed-at {at:?}");
    }
    publisher.close().await;
}

/// A one-shot stop signal for the consumer (a `Notify` keeps the permit if it fires first).
fn stop_token() -> Token {
    Token(Arc::new(tokio::sync::Notify::new()))
}

#[derive(Clone)]
struct Token(Arc<tokio::sync::Notify>);

impl Token {
    fn cancel(&self) {
        self.0.notify_one();
    }
    async fn cancelled_owned(self) {
        self.0.notified().await;
    }
}

/// Retry and dead-letter copies keep the message's AMQP properties and its headers'
/// AMQP types (issue 13, item 9), read back with a raw lapin client. Before, a copy was
/// built from the wharf message alone: every property but the id was lost and every
/// header became a long string (nested tables and arrays were dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn copies_keep_properties_and_typed_headers() {
    use wharf_rabbitmq::lapin::options::{BasicGetOptions, BasicPublishOptions};
    use wharf_rabbitmq::lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
    use wharf_rabbitmq::lapin::{BasicProperties, Connection, ConnectionProperties};

    let queue = common::unique("copy-props");
    let config = config(&queue);
    topology::declare(&config).await.unwrap();
    let topo = topology::Topology::new(&config).unwrap();

    let connection = Connection::connect(&common::url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut nested = FieldTable::default();
    nested.insert("region".into(), AMQPValue::LongString("eu".into()));
    let mut headers = FieldTable::default();
    headers.insert("count".into(), AMQPValue::LongLongInt(42));
    headers.insert("small".into(), AMQPValue::ShortShortInt(-3));
    headers.insert("flag".into(), AMQPValue::Boolean(true));
    headers.insert("nested".into(), AMQPValue::FieldTable(nested));
    headers.insert(
        "list".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::LongString("two".into()),
        ])),
    );
    headers.insert("text".into(), AMQPValue::LongString("plain".into()));
    let properties = |id: &str| {
        BasicProperties::default()
            .with_message_id(ShortString::from(id))
            .with_content_type("application/json".into())
            .with_content_encoding("gzip".into())
            .with_correlation_id("corr-7".into())
            .with_reply_to("replies".into())
            .with_priority(5)
            .with_type("order.created".into())
            .with_app_id("shop".into())
            .with_timestamp(1_700_000_000)
            .with_expiration("600000".into())
            .with_delivery_mode(2)
            .with_headers(headers.clone())
    };
    for id in ["to-retry", "to-dead-letter"] {
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                b"{}",
                properties(id),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let mut sub = RabbitSubscriber::connect(&config).await.unwrap();
    for _ in 0..2 {
        let (message, acker) = next(&mut sub).await.into_parts();
        let outcome = match message.id().as_str() {
            "to-retry" => Outcome::Retry {
                after: Duration::from_secs(3600),
            },
            _ => Outcome::DeadLetter(wharf::Failure::new(
                wharf::FailureReason::Permanent,
                "bad order",
            )),
        };
        acker.settle(outcome).await.unwrap();
    }

    // The retry went to the largest tier (an hour: it waits there), the dead letter to
    // the dead-letter queue.
    let (_, tier) = topo.tier_for(Duration::from_secs(3600));
    for (from, id, changed) in [
        (tier.to_owned(), "to-retry", names::ATTEMPT),
        (
            topo.dead_letter_queue().to_owned(),
            "to-dead-letter",
            names::DLQ_REASON,
        ),
    ] {
        let got = channel
            .basic_get(from.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no copy in {from}"));
        let p = &got.delivery.properties;
        assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some(id));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(
            p.content_encoding().as_ref().map(|s| s.as_str()),
            Some("gzip")
        );
        assert_eq!(
            p.correlation_id().as_ref().map(|s| s.as_str()),
            Some("corr-7")
        );
        assert_eq!(p.reply_to().as_ref().map(|s| s.as_str()), Some("replies"));
        assert_eq!(*p.priority(), Some(5));
        assert_eq!(p.kind().as_ref().map(|s| s.as_str()), Some("order.created"));
        assert_eq!(p.app_id().as_ref().map(|s| s.as_str()), Some("shop"));
        assert_eq!(*p.timestamp(), Some(1_700_000_000));
        // Dropped on purpose: a copy must not expire in its tier or the DLQ.
        assert_eq!(*p.expiration(), None, "{from}: expiration is dropped");
        let h = p.headers().as_ref().unwrap().inner();
        for name in ["count", "small", "flag", "nested", "list", "text"] {
            assert_eq!(
                h.get(name),
                headers.inner().get(name),
                "{from}: header {name}"
            );
        }
        assert!(h.contains_key(changed), "{from}: {changed} set");
        // Broker-owned counters start afresh (the quorum queue adds its own
        // `x-delivery-count` when it delivers; it is 0 for a first delivery).
        assert!(!h.contains_key("x-death"), "{from}: {h:?}");
        if let Some(count) = h.get("x-delivery-count") {
            assert!(
                matches!(count, AMQPValue::LongLongInt(0) | AMQPValue::LongInt(0)),
                "{count:?}"
            );
        }
    }
    drop(sub);
    let _ = connection.close(200, "done".into()).await;
}

/// A crash or requeue loop ends in the dead-letter queue (issue 13, item 8): the quorum
/// work queue is declared with `x-delivery-limit` and the broker dead-letters past it to
/// `<queue>.dlq`; read back, the copy describes itself like wharf's own dead letters
/// (`wharf-dlq-reason: rabbitmq-delivery-limit`, from `x-death`). Before, the work queue
/// had no limit and no dead-letter exchange: the message was requeued for ever here, and
/// on RabbitMQ 4 (default limit 20, no dead-letter exchange) dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_requeue_loop_ends_in_the_dead_letter_queue() {
    let queue = common::unique("delivery-limit");
    let config = config(&queue).delivery_limit(Some(2));
    let topo = topology::declare(&config).await.unwrap();
    let publisher = RabbitPublisher::connect(&config).await.unwrap();
    publisher
        .publish(&queue, Message::with_id(format!("{queue}-loop"), "boom"))
        .await
        .unwrap();

    // Every delivery is handed back unsettled-as-retry at once, as a crashing consumer's
    // would be (`Retry { after: 0 }` on a quorum queue is a requeue the broker counts).
    let mut sub = RabbitSubscriber::connect(&config).await.unwrap();
    let mut deliveries = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(3), sub.next()).await {
            Err(_) => break,
            Ok(Some(Ok(d))) => {
                deliveries += 1;
                assert!(
                    deliveries <= 10,
                    "still redelivered after {deliveries} deliveries"
                );
                let (_, acker) = d.into_parts();
                acker.settle(Outcome::RETRY_NOW).await.unwrap();
            }
            Ok(other) => panic!("subscriber: {other:?}"),
        }
    }
    assert!(deliveries >= 2, "{deliveries}");
    let letters = inspect::peek(&config, topo.dead_letter_queue(), 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let h = letters[0].headers();
    assert_eq!(
        h.get_str(names::DLQ_REASON),
        Some("rabbitmq-delivery-limit"),
        "{h:?}"
    );
    assert_eq!(h.get_str(names::DLQ_SOURCE), Some(queue.as_str()));
    assert!(h
        .get_str(names::DLQ_ERROR)
        .unwrap()
        .contains("x-delivery-limit"));
    assert_eq!(letters[0].id().as_str(), format!("{queue}-loop"));
}
