//! Every dead letter is stored (issue 13, item 7). Two durables on one stream both fail
//! the same messages permanently, so each publishes a copy of each into the shared
//! dead-letter stream. Before, the copies carried the original's id as `Nats-Msg-Id`,
//! so the dead-letter stream's duplicate window kept one copy of each message (the other
//! durable's original was `+TERM`ed all the same); and a copy kept the original's
//! `Nats-Expected-Stream`, a directive the dead-letter stream refuses, so that message's
//! dead-lettering failed on every redelivery.

mod support;

use std::time::Duration;

use tokio::time::Instant;
use wharf::adapter::DeadLetterReader;
use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Message, Publisher};
use wharf_nats::{JetStreamSource, NatsConfig, NatsPublisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats"]
async fn two_durables_dead_lettering_the_same_messages_store_every_copy() {
    let _ticket = support::Ticket::take().await;
    let nats = support::connect(NatsConfig::jetstream("unused", "unused")).await;
    let stream = support::unique("dlq-all");
    let sources = [
        JetStreamSource::new(&stream, "first"),
        JetStreamSource::new(&stream, "second"),
    ];
    for source in &sources {
        nats.declare_jetstream(source).await.expect("declaring");
    }
    let publisher = NatsPublisher::jetstream(nats.client().clone());
    let directed = Message::with_id(format!("{stream}-directed"), "d")
        .with_header("Nats-Expected-Stream", stream.clone());
    let plain = Message::with_id(format!("{stream}-plain"), "p");
    for m in [directed, plain] {
        publisher.publish(&stream, m).await.expect("publishing");
    }

    let token = tokio_util::sync::CancellationToken::new();
    let mut running = Vec::new();
    for source in &sources {
        let subscriber = nats
            .jetstream_subscriber_for(source.clone())
            .await
            .expect("subscribing");
        let handler = |_: Message| async { Err::<(), _>(HandlerError::permanent("never valid")) };
        running.push(tokio::spawn(
            Consumer::new(source.durable.clone(), subscriber, handler.into_service())
                .run(token.clone().cancelled_owned()),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let letters = loop {
        let letters = nats
            .dead_letters()
            .list(&sources[0].dead_letter_subject, usize::MAX)
            .await
            .expect("reading the dlq");
        if letters.len() >= 4 || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    token.cancel();
    let mut summaries = Vec::new();
    for r in running {
        summaries.push(r.await.expect("task").expect("consumer"));
    }
    nats.delete_stream(&stream).await.ok();
    nats.delete_stream(&sources[0].dead_letter_stream)
        .await
        .ok();

    let mut seen: Vec<(String, String)> = letters
        .iter()
        .map(|m| {
            let consumer = m.headers().get_str(names::DLQ_CONSUMER).unwrap_or("?");
            (m.id().to_string(), consumer.to_owned())
        })
        .collect();
    seen.sort();
    let mut want = vec![];
    for id in ["directed", "plain"] {
        for consumer in ["first", "second"] {
            want.push((format!("{stream}-{id}"), consumer.to_owned()));
        }
    }
    assert_eq!(
        seen, want,
        "one copy per message and durable: {summaries:?}"
    );
    for m in &letters {
        assert!(
            m.headers()
                .iter()
                .all(|(n, _)| !n.starts_with("Nats-Expected")),
            "server directives stripped: {:?}",
            m.headers()
        );
    }
    for s in &summaries {
        assert_eq!(s.dead_lettered, 2, "{s:?}");
        assert_eq!(s.settle_failures, 0, "{s:?}");
    }
}
