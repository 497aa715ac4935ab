//! A dead letter's whole round trip through `wharf dlq`, on every broker: messages a
//! handler refuses are dead-lettered; `list` and `stats` show them, `show` prints one;
//! `replay --dry-run` changes nothing; `replay` sends them back with their id and key,
//! the attempt count reset and `wharf-replay-count: 1`; a consumer then handles them;
//! `list` finds none left; `purge` removes another one for good. On RabbitMQ, JetStream
//! and Kafka the binary runs as a process (exit codes and output checked); the in-memory
//! broker lives in one process, so there the same commands run as library calls.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::wharf;
use tokio_util::sync::CancellationToken;
use wharf::adapter::{Client, DeadLetterReader};
use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Message, Publisher};
use wharf_cli::commands;
use wharf_cli::filter::Filter;
use wharf_cli::replay::ReplayOptions;

/// What a handler saw: id → (attempt, replay count, key).
type Seen = Arc<Mutex<BTreeMap<String, (u32, Option<String>, Option<String>)>>>;

/// Runs a consumer of `group` on `source` until `stop`, refusing every message for good
/// (`refuse`) or recording it in `seen`.
fn consume<C: Client + Clone + 'static>(
    client: &C,
    source: &str,
    group: &str,
    refuse: bool,
    seen: Seen,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()>
where
    C::Subscriber: 'static,
{
    let client = client.clone();
    let (source, group) = (source.to_owned(), group.to_owned());
    tokio::spawn(async move {
        let subscriber = client.subscriber(&source, &group).await.unwrap();
        let handler = move |m: Message| {
            let seen = seen.clone();
            async move {
                if refuse {
                    return Err(HandlerError::permanent("order 17 refused for good"));
                }
                seen.lock().unwrap().insert(
                    m.id().to_string(),
                    (
                        m.attempt(),
                        m.headers().get_str(names::REPLAY_COUNT).map(str::to_owned),
                        m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    ),
                );
                Ok::<(), HandlerError>(())
            }
        };
        Consumer::new(group, subscriber, handler.into_service())
            .run(stop.cancelled_owned())
            .await
            .unwrap();
    })
}

/// Polls `check` every 100 ms for up to 30 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `destination` holds `n` dead letters.
async fn dead_letters<R: DeadLetterReader>(
    reader: &R,
    destination: &str,
    n: usize,
) -> Vec<Message> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let letters = reader.list(destination, usize::MAX).await.unwrap();
        if letters.len() >= n {
            return letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} dead letters after 30 s",
            letters.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `ids` (key `customer-7`) and lets a refusing consumer dead-letter them.
async fn dead_letter<C: Client + Clone + 'static>(
    client: &C,
    source: &str,
    group: &str,
    ids: &[&str],
) where
    C::Subscriber: 'static,
{
    let stop = CancellationToken::new();
    let running = consume(client, source, group, true, Seen::default(), stop.clone());
    let reader = client.dead_letters();
    let destination = reader.destination(source, group);
    let before = reader
        .list(&destination, usize::MAX)
        .await
        .map(|l| l.len())
        .unwrap_or(0);
    for id in ids {
        client
            .publisher()
            .publish(
                source,
                Message::with_id(*id, format!("{{\"order\":\"{id}\"}}")).with_key("customer-7"),
            )
            .await
            .unwrap();
    }
    dead_letters(&reader, &destination, before + ids.len()).await;
    stop.cancel();
    running.await.unwrap();
}

/// The round trip on a real broker at `url`, through the binary.
async fn round_trip_as_a_process(url: &str, tag: &str) {
    let client = wharf_any::connect(url).await.unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let source = format!("wharf-cli-{tag}-{}", &run[..12]);
    let group = "billing";
    client.declare(&source, &[group]).await.unwrap();
    let (a, b) = (format!("{source}-a"), format!("{source}-b"));
    dead_letter(&client, &source, group, &[&a, &b]).await;
    let target = [url, source.as_str(), "--group", group];
    let with = |extra: &[&str]| -> Vec<String> {
        target
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let call = |cmd: &str, extra: &[&str]| {
        let mut args = vec!["dlq".to_owned(), cmd.to_owned()];
        args.extend(with(extra));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        wharf(&refs)
    };

    // list (JSON): both, with reason, consumer and error.
    let (code, out, err) = call("list", &["--json"]);
    assert_eq!(code, 0, "list failed: {err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{out}");
    for letter in listed {
        assert_eq!(letter["reason"], "permanent", "{letter}");
        assert_eq!(letter["key"], "customer-7");
        assert!(
            letter["error"]
                .as_str()
                .unwrap()
                .contains("refused for good"),
            "{letter}"
        );
    }
    // The table, and nothing of the URL's password anywhere.
    let (code, out, _) = call("list", &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&a) && out.contains(&b) && out.contains("REASON"),
        "{out}"
    );
    assert!(!out.contains("guest:guest"), "{out}");

    let (code, out, _) = call("stats", &[]);
    assert_eq!(code, 0);
    assert!(out.contains("2  permanent"), "{out}");
    assert!(out.contains("order # refused for good"), "{out}");

    let (code, out, _) = wharf(&["dlq", "show", url, &source, &a, "--group", group]);
    assert_eq!(code, 0);
    assert!(
        out.contains("wharf-dlq-reason: permanent") && out.contains("\"order\""),
        "{out}"
    );
    let (code, _, err) = wharf(&["dlq", "show", url, &source, "no-such-id", "--group", group]);
    assert_eq!(code, 4, "an unknown id is not found: {err}");

    // A dry run changes nothing.
    let (code, out, _) = call("replay", &["--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.contains("would replay 2"), "{out}");
    let reader = client.dead_letters();
    let destination = reader.destination(&source, group);
    assert_eq!(reader.list(&destination, 100).await.unwrap().len(), 2);

    // Replay, then a consumer handles both as first attempts of a replay.
    let (code, out, err) = call("replay", &[]);
    assert_eq!(code, 0, "replay failed: {out} {err}");
    assert!(out.contains("replayed 2, skipped 0"), "{out}");
    let seen = Seen::default();
    let stop = CancellationToken::new();
    let running = consume(&client, &source, group, false, seen.clone(), stop.clone());
    eventually("both replayed messages handled", || {
        seen.lock().unwrap().len() == 2
    })
    .await;
    stop.cancel();
    running.await.unwrap();
    for id in [&a, &b] {
        let (attempt, replays, key) = seen.lock().unwrap()[id.as_str()].clone();
        assert_eq!(attempt, 1, "{id}: the attempt count starts again");
        assert_eq!(replays.as_deref(), Some("1"), "{id}");
        assert_eq!(key.as_deref(), Some("customer-7"), "{id}: the key is kept");
    }
    let (code, out, _) = call("list", &[]);
    assert_eq!(code, 0);
    assert!(out.contains("no dead letters"), "{out}");

    // Purge: confirmation needed (no terminal: refused), then --yes.
    let c = format!("{source}-c");
    dead_letter(&client, &source, group, &[&c]).await;
    let (code, _, _) = call("purge", &[]);
    assert_eq!(
        code, 5,
        "without a terminal and without --yes, nothing is purged"
    );
    let (code, out, _) = call("purge", &["--yes"]);
    assert_eq!(code, 0);
    assert!(out.contains("purged 1"), "{out}");
    assert!(reader.list(&destination, 100).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn round_trip_on_rabbitmq() {
    round_trip_as_a_process(
        "amqp://guest:guest@127.0.0.1:5672/%2f?queue_expires=1h",
        "rabbit",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats"]
async fn round_trip_on_jetstream() {
    round_trip_as_a_process("nats+jetstream://127.0.0.1:4222", "js").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn round_trip_on_kafka() {
    round_trip_as_a_process("kafka://127.0.0.1:9092", "kafka").await;
}

/// The same commands as library calls on the in-memory broker, plus the loop guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_memory() {
    let client = wharf_memory::MemoryBroker::new();
    let (source, group) = ("orders", "billing");
    client.declare(source, &[group]).await.unwrap();
    dead_letter(&client, source, group, &["a", "b"]).await;
    let reader = client.dead_letters();
    let destination = reader.destination(source, group);
    let mut out = Vec::new();
    let n = commands::list(&reader, &destination, &Filter::default(), false, &mut out)
        .await
        .unwrap();
    assert_eq!(n, 2);

    // A letter replayed three times already is skipped by the loop guard.
    let mut tired = reader.list(&destination, 1).await.unwrap().remove(0);
    reader.remove(&destination, &tired).await.unwrap();
    tired.headers_mut().insert(names::REPLAY_COUNT, "3");
    Publisher::publish(&client.publisher(), &destination, tired)
        .await
        .unwrap();

    let mut out = Vec::new();
    let summary = commands::replay(
        &reader,
        &client.publisher(),
        &destination,
        source,
        &Filter::default(),
        &ReplayOptions::default(),
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        (summary.replayed, summary.skipped, summary.failed),
        (1, 1, 0),
        "{text}"
    );
    assert!(text.contains("replayed 3 times already"), "{text}");

    let seen = Seen::default();
    let stop = CancellationToken::new();
    let running = consume(&client, source, group, false, seen.clone(), stop.clone());
    eventually("the replayed message handled", || {
        seen.lock().unwrap().len() == 1
    })
    .await;
    stop.cancel();
    running.await.unwrap();
    assert_eq!(
        reader.list(&destination, 10).await.unwrap().len(),
        1,
        "the skipped one stays"
    );
}
