//! Delivery: what is published arrives intact, on the right topic, exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use wharf::adapter::Subscriber;
use wharf::{Consumer, Handler, HandlerError, Message, MessageId, Outcome};

use crate::factory::AdapterFactory;
use crate::support::{
    assert_intact, close, eventually, missing, numbered, prepare, publish_all, publisher,
    random_pause, receive, settle, skip, start, stop_all, subscribe, unique_group, unique_topic,
    within, Log, SEQ,
};

/// A message exercising everything that must round-trip: an id chosen by the test, a
/// key (or none), several headers (mixed case, spaces, punctuation) and a binary payload
/// (empty for `seq` 0).
fn rich(topic: &str, seq: usize) -> Message {
    let payload: Vec<u8> = (0..seq * 7).map(|b| (b * 31 + seq) as u8).collect();
    let message = Message::with_id(format!("{topic}-rich-{seq}"), payload)
        .with_header(SEQ, seq.to_string())
        .with_header(
            "conformance-text",
            format!("value {seq}: spaces, punctuation; and = signs"),
        )
        .with_header("Conformance-Mixed-Case", "MiXeD");
    if seq % 10 == 9 {
        message
    } else {
        message.with_key(format!("key-{}", seq % 5))
    }
}

/// Publishes, or subscribes, first: publish first where the broker retains messages for
/// a declared group, else subscribe first so nothing is published into the void.
async fn publish_and_subscribe<F: AdapterFactory>(
    f: &F,
    topic: &str,
    group: &str,
    messages: &[Message],
) -> F::Subscriber {
    let publisher = publisher(f).await;
    let destination = f.destination(topic);
    if f.capabilities().retains_before_subscribe {
        publish_all(&publisher, &destination, messages.iter().cloned()).await;
        subscribe(f, topic, group).await
    } else {
        let subscriber = subscribe(f, topic, group).await;
        publish_all(&publisher, &destination, messages.iter().cloned()).await;
        subscriber
    }
}

/// Receives exactly the messages in `sent` on `subscriber`, acking each, and checks each
/// arrived once and intact on its first delivery.
async fn receive_exactly<F: AdapterFactory>(
    f: &F,
    subscriber: &mut F::Subscriber,
    topic: &str,
    sent: &[Message],
) {
    let by_id: HashMap<&MessageId, &Message> = sent.iter().map(|m| (m.id(), m)).collect();
    let mut received: HashSet<MessageId> = HashSet::new();
    while received.len() < sent.len() {
        let delivery = receive(subscriber, f.timeout(), || {
            format!(
                "message {} of {} on `{topic}`",
                received.len() + 1,
                sent.len()
            )
        })
        .await;
        let (message, acker) = delivery.into_parts();
        settle(acker, Outcome::Ack, message.id(), f.timeout()).await;
        let Some(original) = by_id.get(message.id()) else {
            panic!(
                "received message {} that was never published to `{topic}` (ids must be \
                 preserved from publish to delivery); its headers: {:?}",
                message.id(),
                message.headers()
            );
        };
        assert_intact(original, &message);
        assert_eq!(
            message.attempt(),
            1,
            "the first delivery of message {} must have attempt 1",
            message.id()
        );
        assert!(
            !message.origin().source().is_empty(),
            "message {} was delivered without an origin source",
            message.id()
        );
        assert!(
            received.insert(message.id().clone()),
            "message {} was delivered twice although nothing failed",
            message.id()
        );
    }
}

/// 100 messages published, then received by one subscriber: ids, keys (and their
/// absence), headers and payloads (binary, and empty) arrive intact, each exactly once,
/// with attempt 1 and an origin. Also checks that the subscriber reports the same
/// capabilities as the factory.
pub async fn publish_then_subscribe<F: AdapterFactory>(f: &F) {
    const N: usize = 100;
    let topic = unique_topic("publish-then-subscribe");
    let group = unique_group("reader");
    prepare(f, &topic, &[&group]).await;

    let sent: Vec<Message> = (0..N).map(|seq| rich(&topic, seq)).collect();
    let mut subscriber = publish_and_subscribe(f, &topic, &group, &sent).await;
    assert_eq!(
        subscriber.capabilities(),
        f.capabilities(),
        "the factory's capabilities differ from what the subscriber reports"
    );
    receive_exactly(f, &mut subscriber, &topic, &sent).await;
    close(subscriber, f.timeout()).await;
}

/// A 1 MiB payload (or [`AdapterFactory::large_payload_size`]) round-trips byte for
/// byte, with its key and headers, and a small message after it still arrives.
pub async fn large_payload<F: AdapterFactory>(f: &F) {
    let topic = unique_topic("large-payload");
    let group = unique_group("reader");
    prepare(f, &topic, &[&group]).await;

    let size = f.large_payload_size();
    let payload: Bytes = (0..size)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let large = Message::with_id(format!("{topic}-large"), payload)
        .with_key("large")
        .with_header(SEQ, "0");
    let sent = vec![large, numbered(&topic, 1)];
    let mut subscriber = publish_and_subscribe(f, &topic, &group, &sent).await;
    receive_exactly(f, &mut subscriber, &topic, &sent).await;
    close(subscriber, f.timeout()).await;
}

/// 20 topics, each with its own group and consumer, published to concurrently (25
/// messages each): every consumer handles exactly its own topic's messages.
pub async fn many_topics<F: AdapterFactory>(f: &F) {
    const TOPICS: usize = 20;
    const PER_TOPIC: usize = 25;
    let topics: Vec<(String, String)> = (0..TOPICS)
        .map(|i| {
            (
                unique_topic(&format!("many-topics-{i}")),
                unique_group("many-topics"),
            )
        })
        .collect();
    for (topic, group) in &topics {
        prepare(f, topic, &[group]).await;
    }

    let log: Log<(usize, MessageId)> = Log::new();
    let mut running = Vec::new();
    for (i, (topic, group)) in topics.iter().enumerate() {
        let subscriber = subscribe(f, topic, group).await;
        let log = log.clone();
        let handler = move |m: Message| {
            let log = log.clone();
            async move {
                log.push((i, m.id().clone()));
                Ok::<(), HandlerError>(())
            }
        };
        running.push(start(Consumer::new(
            format!("many-topics-{i}"),
            subscriber,
            handler.into_service(),
        )));
    }

    let publisher = Arc::new(publisher(f).await);
    let mut tasks = Vec::new();
    for (topic, _) in &topics {
        let publisher = publisher.clone();
        let destination = f.destination(topic);
        let messages: Vec<Message> = (0..PER_TOPIC).map(|seq| numbered(topic, seq)).collect();
        tasks.push(tokio::spawn(async move {
            publish_all(&*publisher, &destination, messages).await;
        }));
    }
    for task in tasks {
        if let Err(e) = within(f.timeout(), "publishing to 20 topics", task).await {
            panic!("a publishing task failed: {e}");
        }
    }

    eventually(
        f.timeout(),
        || log.distinct() >= TOPICS * PER_TOPIC,
        || {
            format!(
                "{} messages over {TOPICS} topics are handled; handled {}",
                TOPICS * PER_TOPIC,
                log.distinct()
            )
        },
    )
    .await;
    stop_all(running, f.timeout()).await;

    let counts = log.counts();
    for (i, (topic, _)) in topics.iter().enumerate() {
        let expected: HashSet<MessageId> = (0..PER_TOPIC)
            .map(|seq| numbered(topic, seq).id().clone())
            .collect();
        let got: HashSet<MessageId> = counts
            .keys()
            .filter(|(j, _)| *j == i)
            .map(|(_, id)| id.clone())
            .collect();
        let foreign: Vec<&MessageId> = got.difference(&expected).collect();
        assert!(
            foreign.is_empty(),
            "the consumer of topic `{topic}` received messages of other topics: {foreign:?}"
        );
        let lost: Vec<&MessageId> = expected.difference(&got).collect();
        assert!(
            lost.is_empty(),
            "the consumer of topic `{topic}` never received {lost:?}"
        );
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "messages handled more than once although nothing failed: {twice:?}"
    );
}

/// 4 publishers × 250 messages published concurrently while 3 subscribers of one group
/// (one where the adapter has no competing consumers) handle them: every message is
/// handled exactly once and acked.
pub async fn concurrent_publishers_and_subscribers<F: AdapterFactory>(f: &F) {
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 250;
    const TOTAL: usize = PUBLISHERS * PER_PUBLISHER;
    let members = if f.capabilities().competing_consumers {
        3
    } else {
        skip(
            f,
            "concurrent_publishers_and_subscribers",
            "no competing consumers: running with one subscriber instead of three",
        );
        1
    };
    let topic = unique_topic("concurrent");
    let group = unique_group("concurrent");
    prepare(f, &topic, &[&group]).await;

    let log: Log<MessageId> = Log::new();
    let mut running = Vec::new();
    for member in 0..members {
        let subscriber = subscribe(f, &topic, &group).await;
        let log = log.clone();
        let handler = move |m: Message| {
            let log = log.clone();
            async move {
                random_pause(2).await;
                log.push(m.id().clone());
                Ok::<(), HandlerError>(())
            }
        };
        running.push(start(Consumer::new(
            format!("concurrent-{member}"),
            subscriber,
            handler.into_service(),
        )));
    }

    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let publisher = publisher(f).await;
        let destination = f.destination(&topic);
        let messages: Vec<Message> = (0..PER_PUBLISHER)
            .map(|i| numbered(&topic, p * PER_PUBLISHER + i))
            .collect();
        tasks.push(tokio::spawn(async move {
            publish_all(&publisher, &destination, messages).await;
        }));
    }
    for task in tasks {
        if let Err(e) = within(f.timeout(), "publishing concurrently", task).await {
            panic!("a publishing task failed: {e}");
        }
    }

    let expected: Vec<MessageId> = (0..TOTAL)
        .map(|seq| numbered(&topic, seq).id().clone())
        .collect();
    eventually(
        f.timeout(),
        || log.distinct() >= TOTAL,
        || {
            format!(
                "all {TOTAL} messages are handled: {}",
                missing(&expected, &log.counts())
            )
        },
    )
    .await;
    let summaries = stop_all(running, f.timeout()).await;

    let counts = log.counts();
    assert_eq!(
        counts.len(),
        TOTAL,
        "handled messages that were never published: {:?}",
        counts
            .keys()
            .filter(|id| !expected.contains(id))
            .collect::<Vec<_>>()
    );
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "messages handled more than once although nothing failed: {twice:?}"
    );
    let acked: u64 = summaries.iter().map(|s| s.acked).sum();
    assert_eq!(
        acked, TOTAL as u64,
        "the consumers acked {acked} deliveries for {TOTAL} messages: {summaries:?}"
    );
    assert!(
        summaries.iter().all(|s| s.settle_failures == 0),
        "settlements failed: {summaries:?}"
    );
}
