//! Kafka (Apache Kafka on 127.0.0.1:9092, or `KAFKA_BROKERS`): the plain loop is an rdkafka
//! `StreamConsumer` in a fresh group with auto-commit and manual offset store, calling
//! `store_offset_from_message` after each record, as in the rdkafka at-least-once
//! example.
//!
//! Every drain gets a fresh 3-partition topic with the backlog already stored, produced
//! in normal batches (`linger.ms=5`, librdkafka's default batch size), so fetches return
//! many records per request as in production; publishing is not timed.
//!
//! With `KAFKA_PERF_TEST` set to a command (`scripts/bench.sh` sets it to Apache
//! Kafka's `ConsumerPerformance`, the class behind `kafka-consumer-perf-test.sh`), the
//! same backlog is also drained by that tool and its figure printed: the broker's
//! ceiling on this machine.
//!
//! `--scenario key-parallel` runs the key-parallel comparison instead: a handler that
//! awaits 1 ms, many keys over 3 partitions, wharf's key lanes against partition-serial
//! processing (one message in flight per partition, the model of most Kafka consumer
//! frameworks), checking per-key order in both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _};
use tokio::time::Instant;
use wharf::{Consumer, Handler, HandlerError, Message};
use wharf_kafka::{KafkaClient, KafkaConfig};

use crate::{Settings, Variant};

fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn fail(doing: &str, e: impl std::fmt::Display) -> ! {
    panic!(
        "{doing} failed: {e} (is a Kafka-compatible broker running on {}?)",
        brokers()
    )
}

fn config(topic: &str, group: &str) -> KafkaConfig {
    KafkaConfig::new(brokers(), [topic])
        .group(group)
        .session_timeout(Duration::from_secs(6))
}

/// Creates a fresh 3-partition topic and stores `messages` records in it; record `i`
/// has key `k<i % keys>` and, in its payload's first bytes, its number within its key.
async fn backlog(topic: &str, messages: usize, size: usize, keys: usize) -> KafkaClient {
    let kafka = KafkaClient::connect(config(topic, "unused"))
        .await
        .unwrap_or_else(|e| fail("the config", e));
    kafka
        .create_topic(topic, 3)
        .await
        .unwrap_or_else(|e| fail("creating the topic", e));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap_or_else(|e| fail("creating the producer", e));
    let mut pending = Vec::with_capacity(20_000);
    let mut per_key = vec![0u32; keys];
    for i in 0..messages {
        let k = i % keys;
        per_key[k] += 1;
        let mut payload = per_key[k].to_be_bytes().to_vec();
        payload.resize(size.max(4), b'x');
        let key = format!("k{k}");
        // Enqueued in order here (the delivery is awaited later), so each key's records
        // are stored in the order of their numbers.
        let delivery = loop {
            match producer.send_result(FutureRecord::to(topic).key(&key).payload(&payload)) {
                Ok(delivery) => break delivery,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    for d in pending.drain(..) {
                        wait_delivered(d).await;
                    }
                }
                Err((e, _)) => fail("publishing", e),
            }
        };
        pending.push(delivery);
        if pending.len() == 20_000 {
            for d in pending.drain(..) {
                wait_delivered(d).await;
            }
        }
    }
    for d in pending {
        wait_delivered(d).await;
    }
    kafka
}

async fn wait_delivered(delivery: rdkafka::producer::DeliveryFuture) {
    match delivery.await {
        Ok(Ok(_)) => {}
        Ok(Err((e, _))) => fail("publishing", e),
        Err(e) => fail("publishing", e),
    }
}

fn raw_consumer(topic: &str, group: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("group.protocol", "classic")
        .set("session.timeout.ms", "6000")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap_or_else(|e| fail("creating the consumer", e));
    consumer
        .subscribe(&[topic])
        .unwrap_or_else(|e| fail("subscribing", e));
    consumer
}

pub(crate) async fn drain(variant: Variant, settings: &Settings, round: usize) -> Duration {
    let tag = format!("{}-{round}-{}", std::process::id(), variant.tag());
    let topic = format!("bench-{tag}");
    let kafka = backlog(&topic, settings.messages, settings.size, 1000).await;
    let elapsed = match variant {
        Variant::Raw => {
            let consumer = raw_consumer(&topic, "bench");
            // Timed from the first record: the group join is not the loop's cost.
            let first = consumer
                .recv()
                .await
                .unwrap_or_else(|e| fail("receiving", e));
            let start = Instant::now();
            consumer
                .store_offset_from_message(&first)
                .unwrap_or_else(|e| fail("storing", e));
            drop(first);
            for _ in 1..settings.messages {
                let m = consumer
                    .recv()
                    .await
                    .unwrap_or_else(|e| fail("receiving", e));
                consumer
                    .store_offset_from_message(&m)
                    .unwrap_or_else(|e| fail("storing", e));
            }
            let elapsed = start.elapsed();
            tokio::task::spawn_blocking(move || drop(consumer))
                .await
                .unwrap_or_else(|e| fail("closing", e));
            elapsed
        }
        Variant::Bare | Variant::Recommended | Variant::Idempotent(_) => {
            let client =
                KafkaClient::connect(config(&topic, "bench").buffer(settings.in_flight * 4))
                    .await
                    .unwrap_or_else(|e| fail("the config", e));
            let subscriber = client
                .configured_subscriber()
                .await
                .unwrap_or_else(|e| fail("subscribing", e));
            crate::drain::with_wharf(
                variant,
                settings,
                subscriber,
                Arc::new(client.publisher()),
                Arc::default(),
            )
            .await
            .first_to_last
        }
    };
    drop(kafka);
    elapsed
}

// ===== key-parallel scenario =====

/// Per-key order check: the last number seen per key, and violations.
#[derive(Default)]
struct OrderCheck {
    last: HashMap<Vec<u8>, u32>,
    violations: usize,
    handled: usize,
    /// Time from the first handler call until the last message was handled.
    finished: Option<Duration>,
}

impl OrderCheck {
    fn see(&mut self, key: &[u8], payload: &[u8]) {
        let seq = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
        let last = self.last.entry(key.to_vec()).or_insert(0);
        if seq != *last + 1 {
            self.violations += 1;
        }
        *last = seq;
        self.handled += 1;
    }
}

/// Partition-serial processing: one task per partition handles that partition's records
/// one at a time (1 ms each) and stores each offset when done.
async fn partition_serial(topic: &str, messages: usize) -> (Duration, OrderCheck) {
    let consumer = Arc::new(raw_consumer(topic, "serial"));
    let check = Arc::new(Mutex::new(OrderCheck::default()));
    let mut lanes = HashMap::new();
    let mut workers = Vec::new();
    let first = consumer
        .recv()
        .await
        .unwrap_or_else(|e| fail("receiving", e))
        .detach();
    let start = Instant::now();
    let mut next = Some(first);
    for _ in 0..messages {
        let m = match next.take() {
            Some(m) => m,
            None => consumer
                .recv()
                .await
                .unwrap_or_else(|e| fail("receiving", e))
                .detach(),
        };
        let tx = lanes.entry(m.partition()).or_insert_with(|| {
            let (tx, mut rx) =
                tokio::sync::mpsc::unbounded_channel::<rdkafka::message::OwnedMessage>();
            let (consumer, check) = (consumer.clone(), check.clone());
            workers.push(tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    check
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .see(m.key().unwrap_or_default(), m.payload().unwrap_or_default());
                    let _ = consumer.store_offset(m.topic(), m.partition(), m.offset());
                }
            }));
            tx
        });
        let _ = tx.send(m);
    }
    drop(lanes);
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed();
    let check = Arc::into_inner(check)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_default();
    drop(consumer);
    (elapsed, check)
}

/// wharf: the same 1 ms handler behind per-key lanes.
async fn key_lanes(topic: &str, messages: usize, in_flight: usize) -> (Duration, OrderCheck) {
    let client = KafkaClient::connect(config(topic, "lanes"))
        .await
        .unwrap_or_else(|e| fail("the config", e));
    let subscriber = client
        .configured_subscriber()
        .await
        .unwrap_or_else(|e| fail("subscribing", e));
    let check = Arc::new(Mutex::new(OrderCheck::default()));
    let started: Arc<Mutex<Option<Instant>>> = Arc::default();
    let done = Arc::new(tokio::sync::Notify::new());
    let handler = {
        let (check, started, done) = (check.clone(), started.clone(), done.clone());
        move |m: Message| {
            let (check, started, done) = (check.clone(), started.clone(), done.clone());
            async move {
                started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(1)).await;
                let mut c = check.lock().unwrap_or_else(|e| e.into_inner());
                c.see(m.key().map_or(&[][..], |k| k.as_ref()), m.payload());
                if c.handled == messages {
                    // From the first handler call to the last one finishing.
                    c.finished = started
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .map(|s| s.elapsed());
                    done.notify_one();
                }
                Ok::<(), HandlerError>(())
            }
        }
    };
    let shutdown = async move { done.notified().await };
    Consumer::new("lanes", subscriber, handler.into_service())
        .max_in_flight(in_flight)
        .run(shutdown)
        .await
        .unwrap_or_else(|e| fail("consuming", e));
    let check = Arc::into_inner(check)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_default();
    (check.finished.unwrap_or_default(), check)
}

/// Runs the key-parallel comparison and prints it.
pub(crate) async fn key_parallel(settings: &Settings) {
    let keys = (settings.messages / 10).max(1);
    println!(
        "key-parallel: {} messages over {keys} keys and 3 partitions, handler awaits 1 ms, wharf in flight {}",
        settings.messages, settings.in_flight
    );
    let mut ratios = Vec::new();
    for round in 0..settings.rounds {
        let tag = format!("{}-kp{round}", std::process::id());
        let topic = format!("bench-{tag}");
        let _kafka = backlog(&topic, settings.messages, 16, keys).await;
        let (serial, serial_check) = partition_serial(&topic, settings.messages).await;
        let (lanes, lanes_check) = key_lanes(&topic, settings.messages, settings.in_flight).await;
        let rate = |d: Duration| settings.messages as f64 / d.as_secs_f64().max(1e-9);
        let ratio = rate(lanes) / rate(serial);
        println!(
            "  round {round}: partition-serial {:>9.0} msg/s (order violations {}), wharf key lanes {:>9.0} msg/s (order violations {}), ratio {ratio:.1}",
            rate(serial),
            serial_check.violations,
            rate(lanes),
            lanes_check.violations,
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "  median ratio wharf ÷ partition-serial: {:.1}",
        ratios[ratios.len() / 2]
    );
}

/// Drains a fresh backlog (as the rounds do) with the command in `KAFKA_PERF_TEST`
/// (Apache Kafka's `ConsumerPerformance`) and prints its rate; does nothing when the
/// variable is unset.
pub(crate) async fn perf_tool(settings: &Settings) {
    let Ok(command) = std::env::var("KAFKA_PERF_TEST") else {
        return;
    };
    let topic = format!("bench-{}-perf", std::process::id());
    backlog(&topic, settings.messages, settings.size, 1000).await;
    let mut words = command.split_whitespace();
    let program = words
        .next()
        .unwrap_or_else(|| fail("KAFKA_PERF_TEST", "empty"));
    let output = tokio::process::Command::new(program)
        .args(words)
        .args(["--bootstrap-server", &brokers(), "--topic", &topic])
        .args(["--messages", &settings.messages.to_string()])
        .args(["--group", &format!("{topic}-group"), "--timeout", "60000"])
        .output()
        .await
        .unwrap_or_else(|e| fail("running KAFKA_PERF_TEST", e));
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        fail(
            "KAFKA_PERF_TEST",
            format!(
                "{}\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        );
    }
    // CSV: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
    // nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    let Some(line) = stdout.lines().rev().find(|l| l.split(',').count() >= 10) else {
        fail("KAFKA_PERF_TEST", format!("no result line in: {stdout}"));
    };
    let cols: Vec<&str> = line.split(',').map(str::trim).collect();
    println!(
        "kafka-consumer-perf-test on the same backlog ({} messages of {} B, 3 partitions): {} msg/s fetching (after the group join; {} msg/s including it)",
        settings.messages, settings.size, cols[9], cols[5]
    );
}
