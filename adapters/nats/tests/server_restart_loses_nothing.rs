//! nats-server restarts in the middle of a 1,000-message JetStream run: the consumer
//! carries on by itself, and every message is handled (at least once; none lost).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use wharf::{Consumer, Handler, HandlerError, Message, Publisher};
use wharf_nats::{JetStreamSource, NatsConfig, NatsPublisher};

const N: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats"]
async fn restart_during_a_thousand_message_run_loses_nothing() {
    let ticket = support::Ticket::take().await;
    // Whatever happens below, nats-server runs again afterwards.
    let _guard = support::ServerGuard;
    let nats = support::connect(NatsConfig::jetstream("unused", "unused")).await;
    let stream = support::unique("restart");
    let source = JetStreamSource::new(&stream, "restart");
    nats.declare_jetstream(&source)
        .await
        .expect("declaring the stream");
    let publisher = NatsPublisher::jetstream(nats.client().clone());
    for i in 0..N {
        publisher
            .publish(
                &stream,
                Message::with_id(format!("{stream}-{i}"), i.to_string()),
            )
            .await
            .expect("publishing before the restart");
    }

    let handled: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let handler = {
        let handled = handled.clone();
        move |m: Message| {
            let handled = handled.clone();
            async move {
                // 40 ms × 1,000 / 8 in flight ≈ 5 s of work: the restart (a bash
                // process, SIGTERM, start and wait for the port) must land inside it.
                // At 10 ms the run sometimes finished first.
                tokio::time::sleep(Duration::from_millis(40)).await;
                *handled
                    .lock()
                    .unwrap()
                    .entry(m.id().to_string())
                    .or_default() += 1;
                Ok::<(), HandlerError>(())
            }
        }
    };
    let subscriber = nats
        .jetstream_subscriber_for(source.clone())
        .await
        .expect("subscribing");
    let token = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(
        Consumer::new("restart", subscriber, handler.into_service())
            .max_in_flight(8)
            .run(token.clone().cancelled_owned()),
    );
    let distinct = |h: &Arc<Mutex<HashMap<String, usize>>>| h.lock().unwrap().len();

    let deadline = Instant::now() + Duration::from_secs(30);
    while distinct(&handled) < N / 4 {
        assert!(Instant::now() < deadline, "the run never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_restart = distinct(&handled);
    assert!(
        at_restart < N,
        "the run finished before the restart: make the handler slower"
    );
    ticket.restart_broker().await;
    let after_restart = distinct(&handled);
    assert!(
        after_restart < N,
        "the run finished while the server restarted: the restart did not interrupt it"
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    while distinct(&handled) < N {
        assert!(
            !running.is_finished(),
            "the consumer stopped during the restart"
        );
        assert!(
            Instant::now() < deadline,
            "after the restart only {} of {N} messages were handled ({at_restart} before it)",
            distinct(&handled)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    let summary = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the consumer stops")
        .expect("consumer task")
        .expect("consumer");
    let handled = handled.lock().unwrap().clone();
    let twice = handled.values().filter(|n| **n > 1).count();
    eprintln!(
        "restart at {at_restart} of {N} (back at {after_restart}); {} handled, {twice} more than once (at-least-once); {summary:?}",
        handled.len()
    );
    for i in 0..N {
        assert!(
            handled.contains_key(&format!("{stream}-{i}")),
            "message {i} was lost"
        );
    }
    nats.delete_stream(&stream).await.ok();
    nats.delete_stream(&source.dead_letter_stream).await.ok();
}
