//! `wharf status` gives each verdict in the situation it names, on JetStream, Kafka and
//! RabbitMQ, run as a process against a consumer the test drives:
//!
//! - `ok`: a consumer keeps up with what is published;
//! - `slow`: a consumer handles messages, slower than they arrive;
//! - `stalled`: a consumer's handler hangs on a message while more arrive;
//! - `stopped`: messages wait and no consumer runs (it ran before, then stopped);
//! - `failing`: a consumer runs, and every message is dead-lettered.
//!
//! RabbitMQ's AMQP interface reports no settlements, so from outside a stalled consumer
//! reads `slow` there, with a reason that says it may be stalled (tested too); the
//! in-process `StatusMonitor`, which counts settlements itself, tells them apart
//! (`adapters/rabbitmq/tests/status_monitor.rs`).

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::wharf;
use tokio_util::sync::CancellationToken;
use wharf::adapter::Client;
use wharf::{Consumer, Handler, HandlerError, Message, Publisher};

/// What the test's consumer does with each message.
#[derive(Clone, Copy, Debug)]
enum Handling {
    /// Handles it at once.
    Fast,
    /// Takes this long, one message at a time.
    Slow(Duration),
    /// Never finishes.
    Hang,
    /// Refuses it for good (a dead letter).
    Refuse,
}

/// Runs a consumer of `group` on `source` until `stop`.
fn consume<C: Client>(
    client: &C,
    source: &str,
    group: &str,
    handling: Handling,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()>
where
    C::Subscriber: 'static,
{
    let client = client.clone();
    let (source, group) = (source.to_owned(), group.to_owned());
    tokio::spawn(async move {
        let subscriber = client.subscriber(&source, &group).await.unwrap();
        let handler = move |_: Message| async move {
            match handling {
                Handling::Fast => {}
                Handling::Slow(d) => tokio::time::sleep(d).await,
                Handling::Hang => std::future::pending::<()>().await,
                Handling::Refuse => return Err(HandlerError::permanent("order refused")),
            }
            Ok::<(), HandlerError>(())
        };
        let max_in_flight = match handling {
            Handling::Slow(_) => 1,
            _ => 16,
        };
        let summary = Consumer::new(group, subscriber, handler.into_service())
            .max_in_flight(max_in_flight)
            .shutdown_timeout(Duration::from_millis(200))
            .run(stop.cancelled_owned())
            .await;
        // A hung handler is interrupted at the shutdown deadline: any end will do.
        drop(summary);
    })
}

/// Publishes a message every `period` until `stop`.
fn publish_every<C: Client>(
    client: &C,
    source: &str,
    period: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let publisher = client.publisher();
    let source = source.to_owned();
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.is_cancelled() {
            publisher
                .publish(&source, Message::new(format!("order {n}")))
                .await
                .unwrap();
            n += 1;
            tokio::time::sleep(period).await;
        }
    })
}

/// Publishes `n` messages `<what> 0`, `<what> 1`, ... to `source`.
async fn publish_n<C: Client>(client: &C, source: &str, what: &str, n: usize) {
    let publisher = client.publisher();
    for i in 0..n {
        publisher
            .publish(source, Message::new(format!("{what} {i}")))
            .await
            .unwrap();
    }
}

/// `wharf status <url> <source> --group <group> --json` over `window` (a look a
/// second); returns the group's verdict and the whole report.
async fn status(url: &str, source: &str, group: &str, window: &str) -> (String, Value) {
    let args: Vec<String> = [
        "status",
        url,
        source,
        "--group",
        group,
        "--window",
        window,
        "--interval",
        "1s",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wharf(&args)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "wharf status failed: {err}");
    assert!(err.is_empty(), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let verdict = report["group_status"]["verdict"]
        .as_str()
        .unwrap()
        .to_owned();
    (verdict, report)
}

/// Creates the situation named `verdict` on a fresh source and returns what `wharf
/// status` says of it.
async fn situation<C: Client>(client: &C, url: &str, verdict: &str, window: &str) -> (String, Value)
where
    C::Subscriber: 'static,
{
    let run = uuid::Uuid::new_v4().simple().to_string();
    let source = format!("status-{verdict}-{}", &run[..8]);
    // A group of its own: Kafka counts a group's members over every topic it reads.
    let group = &format!("billing-{}", &run[..8]);
    client.declare(&source, &[group]).await.unwrap();
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let every = |ms| Duration::from_millis(ms);
    match verdict {
        "ok" => {
            tasks.push(consume(
                client,
                &source,
                group,
                Handling::Fast,
                stop.clone(),
            ));
            tasks.push(publish_every(client, &source, every(50), stop.clone()));
        }
        "slow" => {
            tasks.push(consume(
                client,
                &source,
                group,
                Handling::Slow(every(100)),
                stop.clone(),
            ));
            tasks.push(publish_every(client, &source, every(25), stop.clone()));
        }
        "stalled" => {
            tasks.push(consume(
                client,
                &source,
                group,
                Handling::Hang,
                stop.clone(),
            ));
            tasks.push(publish_every(client, &source, every(100), stop.clone()));
        }
        "stopped" => {
            // The consumer ran and handled what there was, then went away.
            let ran = CancellationToken::new();
            let consumer = consume(client, &source, group, Handling::Fast, ran.clone());
            publish_n(client, &source, "early", 5).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            ran.cancel();
            consumer.await.unwrap();
            publish_n(client, &source, "waiting", 20).await;
        }
        "failing" => {
            tasks.push(consume(
                client,
                &source,
                group,
                Handling::Refuse,
                stop.clone(),
            ));
            tasks.push(publish_every(client, &source, every(50), stop.clone()));
        }
        other => panic!("no situation for {other}"),
    }
    // Let the consumer join and the situation set in before the first look.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = status(url, &source, group, window).await;
    stop.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    seen
}

/// Creates every situation at once on `client` and checks each verdict; on RabbitMQ a
/// stalled consumer reads `slow` from outside (see the module docs).
async fn each_verdict<C: Client>(client: &C, url: &str, window: &str) -> Vec<(String, Value)>
where
    C::Subscriber: 'static,
{
    let verdicts = ["ok", "slow", "stalled", "stopped", "failing"];
    let seen = futures_util::future::join_all(
        verdicts.map(|verdict| situation(client, url, verdict, window)),
    )
    .await;
    let rabbit = url.starts_with("amqp");
    for (expected, (seen, report)) in verdicts.iter().zip(&seen) {
        match (*expected, rabbit) {
            ("stalled", true) => {
                assert_eq!(seen, "slow", "{report:#}");
                let reason = report["group_status"]["reason"].as_str().unwrap();
                assert!(reason.contains("slow or stalled"), "{reason}");
            }
            _ => assert_eq!(seen, expected, "{report:#}"),
        }
    }
    seen.into_iter()
        .map(|(_, report)| (report["group_status"]["verdict"].to_string(), report))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats"]
async fn jetstream_gives_each_verdict() {
    const NATS: &str = "nats+jetstream://127.0.0.1:4222";
    let client = wharf_any::connect(NATS).await.unwrap();
    let reports = each_verdict(&client, NATS, "3s").await;
    // JetStream tells how long the first unacked message has waited.
    let stalled = &reports[2].1;
    let age = stalled["last"]["partitions"][0]["oldest_age_seconds"]
        .as_f64()
        .unwrap();
    assert!(age >= 3.0, "{stalled:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn kafka_gives_each_verdict() {
    // Watermarks committed every 200 ms, so a few-second window sees progress.
    const KAFKA: &str = "kafka://127.0.0.1:9092?commit_interval=200ms";
    let client = wharf_any::connect(KAFKA).await.unwrap();
    let reports = each_verdict(&client, KAFKA, "4s").await;
    // The group's members: one while stalled, none once stopped.
    assert_eq!(reports[2].1["last"]["consumers"], 1, "{:#}", reports[2].1);
    assert_eq!(reports[3].1["last"]["consumers"], 0, "{:#}", reports[3].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn rabbitmq_gives_each_verdict() {
    // A small prefetch: RabbitMQ counts only ready messages, and what a consumer
    // prefetched is not among them.
    const RABBIT: &str = "amqp://guest:guest@127.0.0.1:5672/%2f?queue_expires=1h&prefetch=8";
    let client = wharf_any::connect(RABBIT).await.unwrap();
    each_verdict(&client, RABBIT, "3s").await;
}

// ---- usage ---------------------------------------------------------------------------

/// `wharf status <url> orders --group g --window <window> --interval <interval>`.
fn status_of(url: &str, window: &str, interval: &str) -> (i32, String, String) {
    wharf(&[
        "status",
        url,
        "orders",
        "--group",
        "g",
        "--window",
        window,
        "--interval",
        interval,
    ])
}

#[test]
fn a_window_shorter_than_the_interval_is_refused() {
    let (code, _, err) = status_of("memory://", "1s", "5s");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--interval"), "{err}");
}

#[test]
fn more_looks_than_the_bound_are_refused() {
    let (code, _, err) = status_of("memory://", "1d", "1ms");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("looks"), "{err}");
}

#[test]
#[ignore = "needs nats"]
fn nats_core_has_no_backlog() {
    let (code, _, err) = status_of("nats://127.0.0.1:4222", "1s", "1s");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NATS Core keeps no backlog"), "{err}");
}
