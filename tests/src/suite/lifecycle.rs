//! Lifecycle: shutdowns, restarts and reconnects lose nothing.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use wharf::{Consumer, Handler, HandlerError, Message, MessageId, Publisher, Summary};

use crate::factory::AdapterFactory;
use crate::support::{
    eventually, expect_ok, missing, numbered, prepare, publish_all, publisher, random_pause, skip,
    start, subscribe, unique_group, unique_topic, within, Log, Running,
};

/// A handler that logs each message's id (and message) after a random pause of up to
/// `pause_ms`.
fn logging_handler(
    log: Log<MessageId>,
    messages: Log<Message>,
    pause_ms: u64,
) -> impl Handler<(Message,)> {
    move |m: Message| {
        let (log, messages) = (log.clone(), messages.clone());
        async move {
            random_pause(pause_ms).await;
            log.push(m.id().clone());
            messages.push(m);
            Ok::<(), HandlerError>(())
        }
    }
}

/// Starts a consumer of `topic`/`group` with a handler logging into `log` and `messages`.
async fn start_logging<F: AdapterFactory>(
    f: &F,
    name: &str,
    topic: &str,
    group: &str,
    log: &Log<MessageId>,
    messages: &Log<Message>,
) -> Running {
    let subscriber = subscribe(f, topic, group).await;
    start(
        Consumer::new(
            name,
            subscriber,
            logging_handler(log.clone(), messages.clone(), 2).into_service(),
        )
        .max_in_flight(8),
    )
}

/// Waits until every id in `expected` is in `log`.
async fn all_handled<F: AdapterFactory>(
    f: &F,
    log: &Log<MessageId>,
    expected: &[MessageId],
    what: &str,
) {
    eventually(
        f.timeout(),
        || {
            let seen: HashSet<MessageId> = log.snapshot().into_iter().collect();
            expected.iter().all(|id| seen.contains(id))
        },
        || format!("{what}: {}", missing(expected, &log.counts())),
    )
    .await;
}

/// Fails if any id in `log` was handled more than once.
fn assert_once(log: &Log<MessageId>, what: &str) {
    let twice: Vec<_> = log.counts().into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        twice.is_empty(),
        "{what}: messages acked by a consumer that shut down gracefully were handled again: \
         {twice:?}"
    );
}

/// A consumer handles part of 200 messages and shuts down; a second consumer in the same
/// group handles the rest: together they handle every message, none twice. On a
/// persistent broker the same holds across a broker restart between the two consumers
/// (where the factory can restart the broker).
pub async fn resume_after_restart<F: AdapterFactory>(f: &F) {
    const N: usize = 200;
    const M: usize = 100;
    let caps = f.capabilities();
    if !caps.acknowledgements {
        skip(f, "resume_after_restart", "settlements are not promised");
        return;
    }
    let topic = unique_topic("resume");
    let group = unique_group("resume");
    prepare(f, &topic, &[&group]).await;
    let publisher = publisher(f).await;
    let destination = f.destination(&topic);
    let log: Log<MessageId> = Log::new();
    let messages: Log<Message> = Log::new();

    // 1. Consumer one handles a quarter, then shuts down; consumer two does the rest.
    let batch: Vec<Message> = (0..N).map(|seq| numbered(&topic, seq)).collect();
    let expected: Vec<MessageId> = batch.iter().map(|m| m.id().clone()).collect();
    let first = if caps.retains_before_subscribe {
        publish_all(&publisher, &destination, batch).await;
        start_logging(f, "resume-1", &topic, &group, &log, &messages).await
    } else {
        let first = start_logging(f, "resume-1", &topic, &group, &log, &messages).await;
        publish_all(&publisher, &destination, batch).await;
        first
    };
    eventually(
        f.timeout(),
        || log.distinct() >= N / 4,
        || {
            format!(
                "consumer one handles {} messages; handled {}",
                N / 4,
                log.distinct()
            )
        },
    )
    .await;
    let summary = first.stop(f.timeout()).await;
    eprintln!(
        "[wharf-conformance] resume_after_restart: the first consumer handled {} of {N}",
        summary.acked
    );
    let second = start_logging(f, "resume-2", &topic, &group, &log, &messages).await;
    all_handled(f, &log, &expected, "consumer two handles the rest").await;
    second.stop(f.timeout()).await;
    assert_once(&log, "resume without a restart");

    // 2. The same across a broker restart, where messages survive one.
    if !caps.persistent {
        skip(
            f,
            "resume_after_restart",
            "messages do not survive a broker restart: checked resuming without one",
        );
        return;
    }
    let batch: Vec<Message> = (N..N + M).map(|seq| numbered(&topic, seq)).collect();
    let expected: Vec<MessageId> = batch.iter().map(|m| m.id().clone()).collect();
    publish_all(&publisher, &destination, batch).await;
    let third = start_logging(f, "resume-3", &topic, &group, &log, &messages).await;
    let before = log.distinct();
    eventually(
        f.timeout(),
        || log.distinct() >= before + M / 4,
        || format!("consumer three handles {} messages", M / 4),
    )
    .await;
    third.stop(f.timeout()).await;
    let restarted = expect_ok(
        within(f.timeout() * 4, "restarting the broker", f.restart_broker()).await,
        "restarting the broker",
    );
    if !restarted {
        skip(
            f,
            "resume_after_restart",
            "the factory cannot restart the broker: checked resuming without a restart only",
        );
    }
    let fourth = start_logging(f, "resume-4", &topic, &group, &log, &messages).await;
    all_handled(
        f,
        &log,
        &expected,
        "consumer four handles the rest after the broker restart",
    )
    .await;
    fourth.stop(f.timeout()).await;
    assert_once(&log, "resume across a broker restart");
}

/// Checks a summary of a consumer that shut down: nothing dead-lettered or dropped.
fn assert_nothing_given_up(summary: &Summary, who: &str) {
    assert_eq!(
        (summary.dead_lettered, summary.dropped),
        (0, 0),
        "{who} dead-lettered or dropped messages during a shutdown: {summary:?}"
    );
}

/// A fresh topic and group, prepared, and `n` numbered messages for them.
async fn slow_topic<F: AdapterFactory>(
    f: &F,
    name: &str,
    n: usize,
) -> (String, String, Vec<Message>) {
    let topic = unique_topic(name);
    let group = unique_group(name);
    prepare(f, &topic, &[&group]).await;
    let batch: Vec<Message> = (0..n).map(|seq| numbered(&topic, seq)).collect();
    (topic, group, batch)
}

/// A slow handler (200 ms per message), four in flight, shutdown requested with a
/// generous deadline: the work in flight finishes and is acked (nothing interrupted), and
/// a second consumer handles the rest, none twice.
pub async fn shutdown_drains_in_flight<F: AdapterFactory>(f: &F) {
    const N: usize = 30;
    const IN_FLIGHT: usize = 4;
    // Far more than the 200 ms the work in flight needs; less than the wait for the stop.
    const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
    let caps = f.capabilities();
    if !caps.acknowledgements {
        skip(
            f,
            "shutdown_drains_in_flight",
            "settlements are not promised",
        );
        return;
    }
    let (topic, group, batch) = slow_topic(f, "shutdown-drains", N).await;
    let expected: Vec<MessageId> = batch.iter().map(|m| m.id().clone()).collect();
    let started: Log<MessageId> = Log::new();
    let completed: Log<MessageId> = Log::new();
    let slow = {
        let (started, completed) = (started.clone(), completed.clone());
        move |m: Message| {
            let (started, completed) = (started.clone(), completed.clone());
            async move {
                started.push(m.id().clone());
                tokio::time::sleep(Duration::from_millis(200)).await;
                completed.push(m.id().clone());
                Ok::<(), HandlerError>(())
            }
        }
    };
    let consumer = |subscriber: F::Subscriber| {
        Consumer::new("shutdown-drains-1", subscriber, slow.into_service())
            .max_in_flight(IN_FLIGHT)
            .shutdown_timeout(DRAIN_DEADLINE)
    };
    let publisher = publisher(f).await;
    let destination = f.destination(&topic);
    let first = if caps.retains_before_subscribe {
        publish_all(&publisher, &destination, batch).await;
        start(consumer(subscribe(f, &topic, &group).await))
    } else {
        let first = start(consumer(subscribe(f, &topic, &group).await));
        publish_all(&publisher, &destination, batch).await;
        first
    };
    eventually(
        f.timeout(),
        || started.len() >= IN_FLIGHT,
        || {
            format!(
                "{IN_FLIGHT} messages are in flight; started {}",
                started.len()
            )
        },
    )
    .await;
    let summary = first.stop(f.timeout()).await;

    let completed_first: HashSet<MessageId> = completed.snapshot().into_iter().collect();
    for id in started.snapshot() {
        assert!(
            completed_first.contains(&id),
            "message {id} was in flight at shutdown but did not finish, although the \
             shutdown deadline was {DRAIN_DEADLINE:?}: {summary:?}"
        );
    }
    assert_eq!(
        summary.interrupted, 0,
        "nothing should be interrupted: {summary:?}"
    );
    assert_eq!(
        summary.acked,
        completed_first.len() as u64,
        "every message finished before the shutdown is acked: {summary:?}"
    );
    assert_nothing_given_up(&summary, "the draining consumer");

    let second_log: Log<MessageId> = Log::new();
    let second = start_logging(
        f,
        "shutdown-drains-2",
        &topic,
        &group,
        &second_log,
        &Log::new(),
    )
    .await;
    let rest: Vec<MessageId> = expected
        .iter()
        .filter(|id| !completed_first.contains(*id))
        .cloned()
        .collect();
    all_handled(f, &second_log, &rest, "a second consumer handles the rest").await;
    let summary = second.stop(f.timeout()).await;
    assert_nothing_given_up(&summary, "the second consumer");

    let again: Vec<MessageId> = second_log
        .snapshot()
        .into_iter()
        .filter(|id| completed_first.contains(id))
        .collect();
    assert!(
        again.is_empty(),
        "messages acked during the graceful shutdown were delivered again: {again:?}"
    );
    assert_once(&second_log, "the second consumer");
}

/// A handler that never finishes, four in flight, shutdown with a 100 ms deadline: the
/// consumer stops promptly, settles the interrupted work as a retry (never dead-lettered
/// or dropped), and a second consumer handles every message.
pub async fn shutdown_deadline_loses_nothing<F: AdapterFactory>(f: &F) {
    const N: usize = 30;
    const IN_FLIGHT: usize = 4;
    const DEADLINE: Duration = Duration::from_millis(100);
    let caps = f.capabilities();
    if !caps.acknowledgements {
        skip(
            f,
            "shutdown_deadline_loses_nothing",
            "settlements are not promised",
        );
        return;
    }
    let (topic, group, batch) = slow_topic(f, "shutdown-deadline", N).await;
    let expected: Vec<MessageId> = batch.iter().map(|m| m.id().clone()).collect();
    let started: Log<MessageId> = Log::new();
    let completed: Log<MessageId> = Log::new();
    let stuck = {
        let (started, completed) = (started.clone(), completed.clone());
        move |m: Message| {
            let (started, completed) = (started.clone(), completed.clone());
            async move {
                started.push(m.id().clone());
                // Far past the deadline: only the shutdown deadline ends this.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                completed.push(m.id().clone());
                Ok::<(), HandlerError>(())
            }
        }
    };
    let consumer = |subscriber: F::Subscriber| {
        Consumer::new("shutdown-deadline-1", subscriber, stuck.into_service())
            .max_in_flight(IN_FLIGHT)
            .shutdown_timeout(DEADLINE)
    };
    let publisher = publisher(f).await;
    let destination = f.destination(&topic);
    let first = if caps.retains_before_subscribe {
        publish_all(&publisher, &destination, batch).await;
        start(consumer(subscribe(f, &topic, &group).await))
    } else {
        let first = start(consumer(subscribe(f, &topic, &group).await));
        publish_all(&publisher, &destination, batch).await;
        first
    };
    eventually(
        f.timeout(),
        || started.len() >= IN_FLIGHT,
        || {
            format!(
                "{IN_FLIGHT} messages are in flight; started {}",
                started.len()
            )
        },
    )
    .await;
    let asked = Instant::now();
    let summary = first.stop(f.timeout()).await;
    let took = asked.elapsed();
    assert!(
        took < DEADLINE + Duration::from_secs(5),
        "the consumer took {took:?} to stop with a shutdown deadline of {DEADLINE:?}: the \
         interrupted deliveries were not settled promptly ({summary:?})"
    );
    assert_eq!(
        summary.abandoned, 0,
        "the interrupted deliveries' `Retry` settlements were abandoned instead of completed: \
         {summary:?}"
    );
    assert_eq!(completed.len(), 0, "no stuck handler can have finished");
    assert!(
        summary.interrupted >= IN_FLIGHT as u64,
        "the {IN_FLIGHT} stuck messages must be counted as interrupted: {summary:?}"
    );
    assert_eq!(
        summary.acked, 0,
        "nothing was finished, so nothing may be acked: {summary:?}"
    );
    assert_nothing_given_up(&summary, "the interrupted consumer");

    let second_log: Log<MessageId> = Log::new();
    let second_messages: Log<Message> = Log::new();
    let second = start_logging(
        f,
        "shutdown-deadline-2",
        &topic,
        &group,
        &second_log,
        &second_messages,
    )
    .await;
    all_handled(
        f,
        &second_log,
        &expected,
        "a second consumer handles every message, the interrupted ones included",
    )
    .await;
    let summary = second.stop(f.timeout()).await;
    assert_nothing_given_up(&summary, "the second consumer");
    if caps.broker_attempt_count {
        let interrupted: HashSet<MessageId> = started.snapshot().into_iter().collect();
        for m in second_messages.snapshot() {
            if interrupted.contains(m.id()) {
                assert!(
                    m.attempt() >= 2,
                    "message {} was interrupted by the shutdown but came back with attempt {}",
                    m.id(),
                    m.attempt()
                );
            }
        }
    }
    if caps.native_dead_letter {
        let doing = "reading the dead letters";
        let dead = expect_ok(
            within(f.timeout(), doing, f.dead_letters(&topic, &group)).await,
            doing,
        );
        assert!(
            dead.is_empty(),
            "a shutdown dead-lettered messages: {:?}",
            dead.iter().map(|d| d.message.id()).collect::<Vec<_>>()
        );
    }
}

/// Publishes `message`, retrying failed publishes (a publisher reconnecting after a
/// broker restart) until the deadline.
async fn publish_until_confirmed<P: Publisher>(
    publisher: &P,
    destination: &str,
    message: Message,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let mut message = message;
    loop {
        match publisher.publish(destination, message).await {
            Ok(()) => return,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "publishing after the broker restart still fails after {timeout:?}: {e}"
                );
                eprintln!("[wharf-conformance] publish after restart failed (retrying): {e}");
                message = e.into_message();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A consumer is running when the broker restarts: once the broker is back, messages
/// published through the same publisher reach the same consumer, which never stopped
/// (reconnecting is the adapter's job, invisible to the consumer).
pub async fn reconnect_after_broker_restart<F: AdapterFactory>(f: &F) {
    const N: usize = 10;
    let topic = unique_topic("reconnect");
    let group = unique_group("reconnect");
    prepare(f, &topic, &[&group]).await;
    let log: Log<MessageId> = Log::new();
    let running = start_logging(f, "reconnect", &topic, &group, &log, &Log::new()).await;
    let publisher = publisher(f).await;
    let destination = f.destination(&topic);

    let before: Vec<Message> = (0..N).map(|seq| numbered(&topic, seq)).collect();
    let expected: Vec<MessageId> = before.iter().map(|m| m.id().clone()).collect();
    publish_all(&publisher, &destination, before).await;
    all_handled(
        f,
        &log,
        &expected,
        "messages before the restart are handled",
    )
    .await;

    let restarted = expect_ok(
        within(f.timeout() * 4, "restarting the broker", f.restart_broker()).await,
        "restarting the broker",
    );
    if !restarted {
        running.stop(f.timeout()).await;
        skip(
            f,
            "reconnect_after_broker_restart",
            "the factory cannot restart the broker",
        );
        return;
    }

    let after: Vec<Message> = (N..2 * N).map(|seq| numbered(&topic, seq)).collect();
    let expected: Vec<MessageId> = after.iter().map(|m| m.id().clone()).collect();
    for message in after {
        publish_until_confirmed(&publisher, &destination, message, f.timeout()).await;
    }
    eventually(
        f.timeout(),
        || {
            running.assert_running();
            let seen: HashSet<MessageId> = log.snapshot().into_iter().collect();
            expected.iter().all(|id| seen.contains(id))
        },
        || {
            format!(
                "the running consumer handles messages published after the restart: {}",
                missing(&expected, &log.counts())
            )
        },
    )
    .await;
    running.stop(f.timeout()).await;
}
