//! What the tests share: unique names, bounded waits, recorders, running consumers.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wharf::adapter::{Acker, Delivery, Subscriber};
use wharf::tower::Service;
use wharf::{BoxError, Consumer, Message, MessageId, Outcome, Publisher, Summary};

use crate::factory::AdapterFactory;

/// How often bounded waits look at their condition.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other test (in this process or another) uses: `wharf-conf-<name>-<pid>-<n>-<random>`.
///
/// Only ASCII letters, digits and `-`, so it is a valid Kafka topic, RabbitMQ queue,
/// NATS subject token and JetStream stream or consumer name.
fn unique_name(kind: &str, name: &str) -> String {
    let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
    let name: String = name
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "wharf-conf-{kind}-{name}-{}-{n}-{}",
        std::process::id(),
        &random[..8]
    )
}

/// A topic name unique to one test: `name` plus the process id, a process-wide counter
/// and a random suffix, so tests run in parallel (and repeatedly) against one broker.
pub fn unique_topic(name: &str) -> String {
    unique_name("t", name)
}

/// A consumer-group name unique to one test, built like [`unique_topic`].
pub fn unique_group(name: &str) -> String {
    unique_name("g", name)
}

/// Prints why a test is skipped on this adapter.
pub(crate) fn skip<F: AdapterFactory>(f: &F, test: &str, why: &str) {
    eprintln!(
        "[wharf-conformance] {test}: skipped on `{}`: {why}",
        f.name()
    );
}

/// Unwraps an adapter call, panicking with what was being done.
pub(crate) fn expect_ok<T, E: std::fmt::Display>(result: Result<T, E>, doing: &str) -> T {
    result.unwrap_or_else(|e| panic!("{doing} failed: {e}"))
}

/// Polls `done` until it holds, failing the test with `describe()` after `timeout`.
pub(crate) async fn eventually(
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    describe: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {}", describe());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Awaits `fut` for at most `timeout`, failing the test with `doing` if it takes longer.
pub(crate) async fn within<T>(timeout: Duration, doing: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{doing} did not finish within {timeout:?}"),
    }
}

/// Pauses for a random 0..`max_ms` milliseconds (0 yields), to shake out races.
pub(crate) async fn random_pause(max_ms: u64) {
    let ms = (uuid::Uuid::new_v4().as_u128() % u128::from(max_ms.max(1))) as u64;
    if ms == 0 {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

// ===== topology, publishing and subscribing =====

/// Declares `topic` and `groups`, failing the test if the adapter cannot.
pub(crate) async fn prepare<F: AdapterFactory>(f: &F, topic: &str, groups: &[&str]) {
    let doing = format!("preparing topic `{topic}` with groups {groups:?}");
    let result = within(f.timeout(), &doing, f.prepare(topic, groups)).await;
    expect_ok(result, &doing);
}

/// A new publisher, failing the test if the adapter cannot make one.
pub(crate) async fn publisher<F: AdapterFactory>(f: &F) -> F::Publisher {
    let result = within(f.timeout(), "creating a publisher", f.publisher()).await;
    expect_ok(result, "creating a publisher")
}

/// Joins `group` on `topic`, failing the test if the adapter cannot.
pub(crate) async fn subscribe<F: AdapterFactory>(f: &F, topic: &str, group: &str) -> F::Subscriber {
    let doing = format!("subscribing to `{topic}` as group `{group}`");
    let result = within(f.timeout(), &doing, f.subscribe(topic, group)).await;
    expect_ok(result, &doing)
}

/// Publishes `messages` one after another, each confirmed before the next.
pub(crate) async fn publish_all<P: Publisher + ?Sized>(
    publisher: &P,
    destination: &str,
    messages: impl IntoIterator<Item = Message>,
) {
    for message in messages {
        let id = message.id().clone();
        if let Err(e) = publisher.publish(destination, message).await {
            panic!("publishing message {id} to `{destination}` failed: {e}");
        }
    }
}

/// The next delivery, skipping (and printing) errors the subscriber survives.
pub(crate) async fn receive<S: Subscriber>(
    subscriber: &mut S,
    timeout: Duration,
    waiting_for: impl FnOnce() -> String,
) -> Delivery<S::Acker> {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, subscriber.next()).await {
            Err(_) => panic!(
                "no delivery within {timeout:?} while waiting for {}",
                waiting_for()
            ),
            Ok(None) => panic!("the subscription ended while waiting for {}", waiting_for()),
            Ok(Some(Err(e))) => {
                eprintln!("[wharf-conformance] the subscriber reported an error (continuing): {e}");
            }
            Ok(Some(Ok(delivery))) => return delivery,
        }
    }
}

/// Settles a delivery, failing the test if the adapter reports an error.
pub(crate) async fn settle<A: Acker>(
    acker: A,
    outcome: Outcome,
    id: &MessageId,
    timeout: Duration,
) {
    let doing = format!("settling message {id} as {outcome}");
    let result = within(timeout, &doing, acker.settle(outcome.clone())).await;
    if let Err(e) = result {
        panic!("{doing} failed: {e}");
    }
}

/// Closes a subscriber, failing the test if the adapter reports an error.
pub(crate) async fn close<S: Subscriber>(subscriber: S, timeout: Duration) {
    let result = within(timeout, "closing a subscriber", subscriber.close()).await;
    expect_ok(result, "closing a subscriber");
}

// ===== messages =====

/// Header carrying a message's sequence number within its test.
pub(crate) const SEQ: &str = "conformance-seq";

/// A message with an id unique to the test, `seq` in a header and as the payload.
pub(crate) fn numbered(topic: &str, seq: usize) -> Message {
    Message::with_id(format!("{topic}-{seq}"), seq.to_string()).with_header(SEQ, seq.to_string())
}

/// The sequence number of a message made by [`numbered`] (or with the header set).
pub(crate) fn seq_of(message: &Message) -> usize {
    message
        .headers()
        .get_str(SEQ)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "message {} lost its `{SEQ}` header: headers {:?}",
                message.id(),
                message.headers()
            )
        })
}

/// Asserts that what was received is what was published: id, key, payload and every
/// published header (adapters may add headers of their own).
pub(crate) fn assert_intact(sent: &Message, got: &Message) {
    assert_eq!(got.id(), sent.id(), "message id not preserved");
    assert_eq!(
        got.key(),
        sent.key(),
        "key of message {} not preserved",
        sent.id()
    );
    if got.payload() != sent.payload() {
        panic!(
            "payload of message {} not preserved: sent {} bytes, received {} bytes{}",
            sent.id(),
            sent.payload().len(),
            got.payload().len(),
            match got
                .payload()
                .iter()
                .zip(sent.payload().iter())
                .position(|(a, b)| a != b)
            {
                Some(i) => format!(", first difference at byte {i}"),
                None => String::new(),
            }
        );
    }
    for (name, value) in sent.headers().iter() {
        match got.headers().get(name) {
            Some(v) if v == value => {}
            Some(v) => panic!(
                "header `{name}` of message {} changed: sent {:?}, received {:?}",
                sent.id(),
                String::from_utf8_lossy(value),
                String::from_utf8_lossy(v)
            ),
            None => panic!(
                "header `{name}` of message {} lost; received headers {:?}",
                sent.id(),
                got.headers()
            ),
        }
    }
}

// ===== recording what handlers saw =====

/// A shared, append-only list that handlers write and tests read.
#[derive(Debug)]
pub(crate) struct Log<T> {
    inner: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone> Log<T> {
    pub(crate) fn new() -> Self {
        Log {
            inner: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        // A handler that panicked while pushing leaves a consistent Vec.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, item: T) {
        self.lock().push(item);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn snapshot(&self) -> Vec<T> {
        self.lock().clone()
    }
}

impl<T: Clone + Eq + Hash> Log<T> {
    /// How often each item was logged.
    pub(crate) fn counts(&self) -> HashMap<T, usize> {
        let mut counts = HashMap::new();
        for item in self.lock().iter() {
            *counts.entry(item.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Number of distinct items.
    pub(crate) fn distinct(&self) -> usize {
        self.counts().len()
    }
}

/// Ids in `expected` missing from `seen`, for failure messages (at most 10 shown).
pub(crate) fn missing<'a>(
    expected: impl IntoIterator<Item = &'a MessageId>,
    seen: &HashMap<MessageId, usize>,
) -> String {
    let missing: Vec<&MessageId> = expected
        .into_iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    let shown: Vec<&str> = missing.iter().take(10).map(|id| id.as_str()).collect();
    format!("{} missing, e.g. {shown:?}", missing.len())
}

// ===== running consumers =====

/// A consumer running in its own task, stopped through a cancellation token.
#[derive(Debug)]
pub(crate) struct Running {
    name: String,
    token: CancellationToken,
    handle: JoinHandle<Result<Summary, wharf::Error>>,
}

/// Spawns `consumer.run` with a cancellation token as its shutdown signal.
pub(crate) fn start<S, Svc>(consumer: Consumer<S, Svc>) -> Running
where
    S: Subscriber,
    Svc: Service<Message, Response = Outcome> + Send + 'static,
    Svc::Error: Into<BoxError>,
    Svc::Future: Send + 'static,
{
    let name = consumer.name().to_owned();
    let token = CancellationToken::new();
    let handle = tokio::spawn(consumer.run(token.clone().cancelled_owned()));
    Running {
        name,
        token,
        handle,
    }
}

impl Running {
    /// Requests shutdown and waits (at most `timeout`) for the consumer to drain and stop.
    pub(crate) async fn stop(self, timeout: Duration) -> Summary {
        self.token.cancel();
        let doing = format!("stopping consumer `{}`", self.name);
        match within(timeout, &doing, self.handle).await {
            Ok(Ok(summary)) => summary,
            Ok(Err(e)) => panic!("consumer `{}` failed: {e}", self.name),
            Err(e) => panic!("consumer `{}` panicked: {e}", self.name),
        }
    }

    /// Fails the test if the consumer stopped on its own (it only stops when asked).
    pub(crate) fn assert_running(&self) {
        assert!(
            !self.handle.is_finished(),
            "consumer `{}` stopped without being asked to",
            self.name
        );
    }
}

/// Stops every consumer; returns their summaries in order.
pub(crate) async fn stop_all(running: Vec<Running>, timeout: Duration) -> Vec<Summary> {
    for r in &running {
        r.token.cancel();
    }
    let mut summaries = Vec::with_capacity(running.len());
    for r in running {
        summaries.push(r.stop(timeout).await);
    }
    summaries
}
