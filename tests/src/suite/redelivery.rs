//! Redelivery: failed and unsettled messages come back; settled ones stay settled.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use wharf::adapter::Subscriber;
use wharf::{Consumer, Handler, HandlerError, Message, MessageId, Outcome};

use crate::factory::AdapterFactory;
use crate::support::{
    assert_intact, close, eventually, missing, numbered, prepare, publish_all, publisher, receive,
    seq_of, settle, skip, start, subscribe, unique_group, unique_topic, Log,
};

/// Redelivery delay used by these tests: long enough to measure, short enough to be cheap.
const RETRY_DELAY: Duration = Duration::from_millis(100);

/// Asserts that nothing is delivered to `subscriber` for `quiet`.
async fn assert_quiet<S: Subscriber>(mut subscriber: S, quiet: Duration, topic: &str) -> S {
    let deadline = Instant::now() + quiet;
    loop {
        match tokio::time::timeout_at(deadline, subscriber.next()).await {
            Err(_) => return subscriber,
            Ok(None) => panic!("the subscription to `{topic}` ended unexpectedly"),
            Ok(Some(Err(e))) => {
                eprintln!("[wharf-conformance] the subscriber reported an error (continuing): {e}");
            }
            Ok(Some(Ok(delivery))) => panic!(
                "message {} (attempt {}) was delivered again although it had been acked",
                delivery.message().id(),
                delivery.message().attempt()
            ),
        }
    }
}

/// A handler fails each message's first delivery with a transient error: every message
/// is delivered again, intact, with attempt ≥ 2, then acked — and an acked message never
/// comes back, not even to a new subscriber of the group.
pub async fn failed_message_redelivered<F: AdapterFactory>(f: &F) {
    const N: usize = 5;
    if !f.capabilities().acknowledgements {
        skip(
            f,
            "failed_message_redelivered",
            "settlements are not promised",
        );
        return;
    }
    let topic = unique_topic("failed-redelivered");
    let group = unique_group("failing");
    prepare(f, &topic, &[&group]).await;

    let sent: Vec<Message> = (0..N)
        .map(|seq| numbered(&topic, seq).with_key(format!("key-{seq}")))
        .collect();
    let deliveries: Log<Message> = Log::new();
    let failed: Arc<Mutex<HashSet<MessageId>>> = Arc::default();
    let handler = {
        let (deliveries, failed) = (deliveries.clone(), failed.clone());
        move |m: Message| {
            let (deliveries, failed) = (deliveries.clone(), failed.clone());
            async move {
                deliveries.push(m.clone());
                let first = failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(m.id().clone());
                if first {
                    return Err(HandlerError::transient(
                        "conformance: the first delivery fails on purpose",
                    ));
                }
                Ok(())
            }
        }
    };
    let subscriber = subscribe(f, &topic, &group).await;
    let running = start(
        Consumer::new("failed-redelivered", subscriber, handler.into_service())
            .retry_delay(RETRY_DELAY),
    );
    let publisher = publisher(f).await;
    publish_all(&publisher, &f.destination(&topic), sent.iter().cloned()).await;

    let ids: Vec<MessageId> = sent.iter().map(|m| m.id().clone()).collect();
    let delivered = |n: usize| {
        let mut counts: HashMap<MessageId, usize> = HashMap::new();
        for m in deliveries.snapshot() {
            *counts.entry(m.id().clone()).or_insert(0) += 1;
        }
        counts.retain(|_, c| *c >= n);
        counts
    };
    eventually(
        f.timeout(),
        || {
            running.assert_running();
            delivered(2).len() >= N
        },
        || {
            format!(
                "every failed message is delivered a second time: {}",
                missing(&ids, &delivered(2))
            )
        },
    )
    .await;
    // A lost ack would show up as a third delivery, so wait a few redelivery delays.
    tokio::time::sleep(RETRY_DELAY * 3).await;
    let summary = running.stop(f.timeout()).await;

    let all = deliveries.snapshot();
    for original in &sent {
        let copies: Vec<&Message> = all.iter().filter(|m| m.id() == original.id()).collect();
        assert_eq!(
            copies.len(),
            2,
            "message {} should be delivered exactly twice (fail, then ack); it was delivered \
             {} times with attempts {:?}",
            original.id(),
            copies.len(),
            copies.iter().map(|m| m.attempt()).collect::<Vec<_>>()
        );
        assert_intact(original, copies[0]);
        assert_intact(original, copies[1]);
        assert_eq!(
            copies[0].attempt(),
            1,
            "first delivery of {}",
            original.id()
        );
        assert!(
            copies[1].attempt() >= 2,
            "message {} was redelivered with attempt {}: attempts must be counted by the \
             broker or carried in `wharf-attempt`",
            original.id(),
            copies[1].attempt()
        );
    }
    assert_eq!(summary.acked, N as u64, "acked deliveries: {summary:?}");
    // Settled `Retry` for the broker to redeliver, or retried by the runtime in the
    // key's lane (`Capabilities::retry_in_lane`).
    assert_eq!(
        summary.retried + summary.retried_in_lane,
        N as u64,
        "retried deliveries: {summary:?}"
    );
    assert_eq!(summary.settle_failures, 0, "settle failures: {summary:?}");

    // Acked means acked for good: a new member of the group gets nothing.
    let subscriber = subscribe(f, &topic, &group).await;
    let subscriber = assert_quiet(subscriber, RETRY_DELAY * 3, &topic).await;
    close(subscriber, f.timeout()).await;
}

/// One message is retried with `Retry { after: 300 ms }` while ten others (other keys)
/// wait behind it: the others are handled before the retry is due, and the retried
/// message comes back after about `after` (not much sooner), with attempt ≥ 2.
pub async fn retry_after_delays_without_blocking<F: AdapterFactory>(f: &F) {
    const OTHERS: usize = 10;
    const AFTER: Duration = Duration::from_millis(300);
    let caps = f.capabilities();
    // Brokers that cannot delay one message natively qualify when the runtime retries
    // in the key's lane (Kafka): the other keys must flow all the same.
    if !caps.acknowledgements || !(caps.native_delay || caps.retry_in_lane) {
        skip(
            f,
            "retry_after_delays_without_blocking",
            "no native delay for `Retry { after }`",
        );
        return;
    }
    let topic = unique_topic("retry-after");
    let group = unique_group("retrying");
    prepare(f, &topic, &[&group]).await;

    // (seq, attempt, when handled)
    let events: Log<(usize, u32, Instant)> = Log::new();
    let failed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let handler = {
        let (events, failed_at) = (events.clone(), failed_at.clone());
        move |m: Message| {
            let (events, failed_at) = (events.clone(), failed_at.clone());
            async move {
                let seq = seq_of(&m);
                events.push((seq, m.attempt(), Instant::now()));
                if seq == 0 {
                    let mut failed_at = failed_at.lock().unwrap_or_else(|e| e.into_inner());
                    if failed_at.is_none() {
                        *failed_at = Some(Instant::now());
                        return Err(HandlerError::transient(
                            "conformance: the first delivery fails on purpose",
                        ));
                    }
                }
                Ok(())
            }
        }
    };
    let subscriber = subscribe(f, &topic, &group).await;
    let running =
        start(Consumer::new("retry-after", subscriber, handler.into_service()).retry_delay(AFTER));
    let publisher = publisher(f).await;
    let messages = (0..=OTHERS).map(|seq| numbered(&topic, seq).with_key(format!("key-{seq}")));
    publish_all(&publisher, &f.destination(&topic), messages).await;

    let handled = |seq: usize| events.snapshot().iter().filter(|e| e.0 == seq).count();
    eventually(
        f.timeout(),
        || handled(0) >= 2 && (1..=OTHERS).all(|seq| handled(seq) >= 1),
        || {
            format!(
                "the retried message comes back and the others are handled: events {:?}",
                events
                    .snapshot()
                    .iter()
                    .map(|(seq, attempt, _)| (*seq, *attempt))
                    .collect::<Vec<_>>()
            )
        },
    )
    .await;
    running.stop(f.timeout()).await;

    let events = events.snapshot();
    let failed_at = failed_at
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .expect("the retried message failed once, or the wait above would have timed out");
    let (_, attempt, back_at) = *events
        .iter()
        .filter(|e| e.0 == 0)
        .nth(1)
        .expect("the retried message was delivered twice, as waited for above");
    assert!(
        attempt >= 2,
        "the retried message came back with attempt {attempt}"
    );
    let waited = back_at - failed_at;
    assert!(
        waited >= AFTER * 8 / 10,
        "`Retry {{ after: {AFTER:?} }}` came back after only {waited:?}"
    );
    for seq in 1..=OTHERS {
        let (_, _, at) = events
            .iter()
            .find(|e| e.0 == seq)
            .expect("every other message was handled, as waited for above");
        assert!(
            *at < failed_at + AFTER,
            "message {seq} was handled {:?} after the retried message failed: a retry must not \
             hold up other messages",
            *at - failed_at
        );
    }
}

/// How the first subscriber goes away in the unacked-message tests.
#[derive(Debug, Clone, Copy)]
enum GoAway {
    /// `Subscriber::close`, then the unsettled acker is dropped.
    Close,
    /// The subscriber and its unsettled ackers are dropped, in both orders (a crash).
    Drop,
}

async fn unacked_message_survives<F: AdapterFactory>(f: &F, test: &str, go_away: GoAway) {
    const N: usize = 3;
    let caps = f.capabilities();
    if !caps.redelivers_unacked {
        skip(
            f,
            test,
            "unsettled messages are not promised to be redelivered",
        );
        return;
    }
    let topic = unique_topic(test);
    let group = unique_group("unacked");
    prepare(f, &topic, &[&group]).await;
    let sent: Vec<Message> = (0..N).map(|seq| numbered(&topic, seq)).collect();
    let publisher = publisher(f).await;
    let destination = f.destination(&topic);

    let mut first = if caps.retains_before_subscribe {
        publish_all(&publisher, &destination, sent.iter().cloned()).await;
        subscribe(f, &topic, &group).await
    } else {
        let s = subscribe(f, &topic, &group).await;
        publish_all(&publisher, &destination, sent.iter().cloned()).await;
        s
    };

    // Take deliveries and leave them unsettled.
    let held = match go_away {
        GoAway::Close => 1,
        GoAway::Drop => 2,
    };
    let mut unsettled = Vec::new();
    for i in 0..held {
        let delivery = receive(&mut first, f.timeout(), || {
            format!("delivery {} of {N} on `{topic}`", i + 1)
        })
        .await;
        unsettled.push(delivery.into_parts());
    }
    let held_ids: Vec<MessageId> = unsettled.iter().map(|(m, _)| m.id().clone()).collect();
    match go_away {
        GoAway::Close => {
            close(first, f.timeout()).await;
            drop(unsettled);
        }
        GoAway::Drop => {
            let later = unsettled.pop();
            drop(unsettled);
            drop(first);
            drop(later);
        }
    }

    // A new member of the group gets every message, including the unsettled ones.
    let mut second = subscribe(f, &topic, &group).await;
    let mut received: HashMap<MessageId, Message> = HashMap::new();
    while received.len() < N {
        let delivery = receive(&mut second, f.timeout(), || {
            format!(
                "the messages left unsettled ({held_ids:?}) and the rest of {N} on `{topic}`; \
                 received so far {:?}",
                received.keys().collect::<Vec<_>>()
            )
        })
        .await;
        let (message, acker) = delivery.into_parts();
        settle(acker, Outcome::Ack, message.id(), f.timeout()).await;
        received.insert(message.id().clone(), message);
    }
    close(second, f.timeout()).await;

    for original in &sent {
        let got = received.get(original.id()).unwrap_or_else(|| {
            panic!(
                "message {} was lost; received {:?}",
                original.id(),
                received.keys().collect::<Vec<_>>()
            )
        });
        assert_intact(original, got);
    }
    if caps.broker_attempt_count {
        for id in &held_ids {
            let attempt = received[id].attempt();
            assert!(
                attempt >= 2,
                "message {id} was left unsettled once but came back with attempt {attempt}"
            );
        }
    }
}

/// A subscriber is closed while one delivery is unsettled (then its acker is dropped):
/// a new subscriber of the group receives that message and every other one, including
/// those the first subscriber had fetched but not handed out.
pub async fn unacked_message_survives_close<F: AdapterFactory>(f: &F) {
    unacked_message_survives(f, "unacked_message_survives_close", GoAway::Close).await;
}

/// A subscriber and its unsettled ackers are dropped without closing (a crash; one acker
/// dropped before the subscriber, one after): a new subscriber of the group receives
/// every message.
pub async fn unacked_message_survives_subscriber_drop<F: AdapterFactory>(f: &F) {
    unacked_message_survives(f, "unacked_message_survives_subscriber_drop", GoAway::Drop).await;
}
