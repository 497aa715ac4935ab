//! Poison messages: a payload that does not decode is dead-lettered and stalls nothing.

use std::time::Duration;

use serde::Deserialize;
use wharf::{Consumer, Handler, HandlerError, Json, Message, MessageId};

use crate::factory::AdapterFactory;
use crate::support::{
    eventually, expect_ok, numbered, prepare, publish_all, publisher, skip, start, subscribe,
    unique_group, unique_topic, within, Log,
};

/// The group's native dead letters, failing the test if the adapter cannot read them.
async fn dead_letters<F: AdapterFactory>(
    f: &F,
    topic: &str,
    group: &str,
) -> Vec<crate::DeadLetterRecord> {
    let doing = format!("reading the dead letters of `{topic}` / `{group}`");
    expect_ok(
        within(f.timeout(), &doing, f.dead_letters(topic, group)).await,
        &doing,
    )
}

/// The payload the typed handler expects.
#[derive(Debug, Deserialize)]
struct Numbered {
    seq: usize,
}

/// A good message: `{"seq": <seq>}`.
fn good(topic: &str, seq: usize) -> Message {
    numbered(topic, seq).with_payload(format!(r#"{{"seq":{seq}}}"#))
}

/// Between 20 good messages, one that is not JSON reaches a handler taking
/// [`Json<T>`]: the good ones are all handled (the poison does not stall the stream), and
/// the poison is dead-lettered through the adapter's native path with reason `decode`,
/// exactly once, never reaching the handler and never redelivered.
///
/// Where the adapter has no native dead-letter path, only the "does not stall" half is
/// checked (the dead-letter layer of `wharf-middleware` is the place for the rest).
pub async fn poison_message_dead_lettered<F: AdapterFactory>(f: &F) {
    const GOOD: usize = 20;
    let caps = f.capabilities();
    if !caps.acknowledgements {
        skip(
            f,
            "poison_message_dead_lettered",
            "settlements are not promised",
        );
        return;
    }
    let topic = unique_topic("poison");
    let group = unique_group("typed");
    prepare(f, &topic, &[&group]).await;

    let poison = Message::with_id(format!("{topic}-poison"), "this is {not json")
        .with_header("conformance-poison", "yes");
    let mut messages: Vec<Message> = (0..GOOD / 2).map(|seq| good(&topic, seq)).collect();
    messages.push(poison.clone());
    messages.extend((GOOD / 2..GOOD).map(|seq| good(&topic, seq)));

    let handled: Log<usize> = Log::new();
    let handler = {
        let handled = handled.clone();
        move |Json(n): Json<Numbered>| {
            let handled = handled.clone();
            async move {
                handled.push(n.seq);
                Ok::<(), HandlerError>(())
            }
        }
    };
    let subscriber = subscribe(f, &topic, &group).await;
    let running = start(
        Consumer::new("poison", subscriber, handler.into_service())
            .retry_delay(Duration::from_millis(200)),
    );
    let publisher = publisher(f).await;
    publish_all(&publisher, &f.destination(&topic), messages).await;

    eventually(
        f.timeout(),
        || {
            running.assert_running();
            handled.distinct() >= GOOD
        },
        || {
            format!(
                "the {GOOD} good messages around a poison message are handled; handled {:?}",
                handled.snapshot()
            )
        },
    )
    .await;

    if !caps.native_dead_letter {
        running.stop(f.timeout()).await;
        skip(
            f,
            "poison_message_dead_lettered",
            "no native dead-letter path: checked only that the poison does not stall the stream",
        );
        return;
    }

    let deadline = tokio::time::Instant::now() + f.timeout();
    let records = loop {
        let records = dead_letters(f, &topic, &group).await;
        if !records.is_empty() {
            break records;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {:?} waiting for the poison message {} to be dead-lettered",
            f.timeout(),
            poison.id()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let summary = running.stop(f.timeout()).await;

    let ids: Vec<&MessageId> = records.iter().map(|r| r.message.id()).collect();
    assert_eq!(
        ids,
        vec![poison.id()],
        "exactly the poison message must be dead-lettered, once"
    );
    let record = &records[0];
    assert_eq!(
        record.message.payload(),
        poison.payload(),
        "the dead letter must keep the original payload"
    );
    assert_eq!(
        record.message.headers().get_str("conformance-poison"),
        Some("yes"),
        "the dead letter must keep the original headers: {:?}",
        record.message.headers()
    );
    if let Some(reason) = &record.reason {
        assert_eq!(reason, "decode", "the dead letter's reason");
    }
    assert_eq!(
        summary.dead_lettered, 1,
        "the consumer settled the poison message as dead-lettered once: {summary:?}"
    );
    assert_eq!(
        summary.received,
        (GOOD + 1) as u64,
        "every message, the poison included, is received exactly once (a poison that is \
         redelivered instead of dead-lettered stalls its key): {summary:?}"
    );
    let counts = handled.counts();
    assert!(
        counts.values().all(|n| *n == 1),
        "good messages handled more than once: {counts:?}"
    );
}
