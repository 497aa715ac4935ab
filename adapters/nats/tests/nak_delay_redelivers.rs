//! `Retry { after: 1s }` on JetStream is a `Nak` with a delay: the message comes back
//! about a second later with the broker's delivery count, and other messages are handled
//! meanwhile. Also: broker deduplication on `Nats-Msg-Id`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use wharf::{Consumer, Handler, HandlerError, Message, Outcome, Publisher};
use wharf_nats::{JetStreamSource, NatsConfig, NatsPublisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats"]
async fn retry_after_one_second_comes_back_after_a_second_without_blocking_others() {
    let _ticket = support::Ticket::take().await;
    let nats = support::connect(NatsConfig::jetstream("unused", "unused")).await;
    let stream = support::unique("nak-delay");
    let source = JetStreamSource::new(&stream, "nak-delay");
    nats.declare_jetstream(&source)
        .await
        .expect("declaring the stream");
    let subscriber = nats
        .jetstream_subscriber_for(source.clone())
        .await
        .expect("subscribing");
    let publisher = NatsPublisher::jetstream(nats.client().clone());

    // (id, attempt, when)
    let events: Arc<Mutex<Vec<(String, u32, Instant)>>> = Arc::default();
    let handler = {
        let events = events.clone();
        move |m: Message| {
            let events = events.clone();
            async move {
                events
                    .lock()
                    .unwrap()
                    .push((m.id().to_string(), m.attempt(), Instant::now()));
                Ok::<(), HandlerError>(())
            }
        }
    };
    // The handler acks everything; the wrapper turns the first delivery of `slow` into a
    // `Retry { after: 1s }`, as the retry layer would.
    let stack = RetryFirst {
        inner: handler.into_service(),
        id: format!("{stream}-slow"),
    };

    publisher
        .publish(
            &stream,
            Message::with_id(format!("{stream}-slow"), "slow").with_key("a"),
        )
        .await
        .expect("publishing");
    for i in 0..10 {
        publisher
            .publish(
                &stream,
                Message::with_id(format!("{stream}-fast-{i}"), "fast").with_key(format!("k{i}")),
            )
            .await
            .expect("publishing");
    }
    let token = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(
        Consumer::new("nak-delay", subscriber, stack).run(token.clone().cancelled_owned()),
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let done = {
            let e = events.lock().unwrap();
            e.iter().filter(|x| x.0.ends_with("-slow")).count() >= 2 && e.len() >= 12
        };
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    token.cancel();
    let summary = running.await.expect("consumer task").expect("consumer");
    nats.delete_stream(&stream).await.ok();
    nats.delete_stream(&source.dead_letter_stream).await.ok();

    let events = events.lock().unwrap().clone();
    let slow: Vec<&(String, u32, Instant)> =
        events.iter().filter(|e| e.0.ends_with("-slow")).collect();
    assert_eq!(slow.len(), 2, "delivered exactly twice: {events:?}");
    assert_eq!(
        (slow[0].1, slow[1].1),
        (1, 2),
        "attempts come from the broker's delivery count"
    );
    let waited = slow[1].2 - slow[0].2;
    assert!(
        waited >= Duration::from_millis(900) && waited <= Duration::from_secs(3),
        "`Retry {{ after: 1s }}` came back after {waited:?}"
    );
    let last_fast = events
        .iter()
        .filter(|e| e.0.contains("-fast-"))
        .map(|e| e.2)
        .max()
        .expect("fast messages handled");
    assert!(
        last_fast < slow[0].2 + Duration::from_millis(900),
        "the other messages waited for the retried one: last handled {:?} after the retry",
        last_fast - slow[0].2
    );
    assert_eq!(summary.retried, 1, "{summary:?}");
    assert_eq!(summary.acked, 11, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats"]
async fn the_same_message_id_published_twice_is_stored_once() {
    let _ticket = support::Ticket::take().await;
    let nats = support::connect(NatsConfig::jetstream("unused", "unused")).await;
    let stream = support::unique("dedup");
    let source = JetStreamSource::new(&stream, "dedup");
    nats.declare_jetstream(&source)
        .await
        .expect("declaring the stream");
    let publisher = NatsPublisher::jetstream(nats.client().clone());
    let message = Message::with_id(format!("{stream}-once"), "x");
    publisher
        .publish(&stream, message.clone())
        .await
        .expect("first publish");
    publisher
        .publish(&stream, message.clone())
        .await
        .expect("a duplicate publish succeeds");
    let mut info = nats.jetstream().get_stream(&stream).await.expect("stream");
    let stored = info.info().await.expect("stream info").state.messages;
    nats.delete_stream(&stream).await.ok();
    nats.delete_stream(&source.dead_letter_stream).await.ok();
    assert_eq!(stored, 1, "the broker deduplicates on Nats-Msg-Id");
}

/// Answers `Retry { after: 1s }` for the first delivery of one message id.
#[derive(Clone)]
struct RetryFirst<S> {
    inner: S,
    id: String,
}

impl<S> wharf::tower::Service<Message> for RetryFirst<S>
where
    S: wharf::tower::Service<Message, Response = Outcome, Error = wharf::BoxError>,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = wharf::BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Outcome, wharf::BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, m: Message) -> Self::Future {
        let retry = m.id().as_str() == self.id && m.attempt() == 1;
        let fut = self.inner.call(m);
        Box::pin(async move {
            let out = fut.await?;
            Ok(if retry {
                Outcome::retry_after(Duration::from_secs(1))
            } else {
                out
            })
        })
    }
}
