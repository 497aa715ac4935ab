//! A revoke cancels the partition's waiting in-lane retries: nothing of a revoked
//! partition runs again in the member that lost it, so the new owner's order is never
//! overtaken by a stale rerun.
//!
//! Two messages of one key (so one partition, one lane): `m1`, then `m2`. Member A's
//! first call of `m1` fails transiently, so the runtime keeps `m1` to run again in its
//! lane after 5 s, with `m2` waiting behind it. Then member B joins; the rebalance
//! revokes A's partitions. Whoever owns the partition next reads `m1` and `m2` again and
//! handles them (the handler fails only its very first call). The test checks that
//!
//! - `m1` and `m2` are handled by the new owner, `m1` first;
//! - no call ever sees attempt 2: A's waiting retry was cancelled by the revoke, not
//!   run at 5 s (before the fix: A reran `m1` at attempt 2 after the new owner had
//!   handled it, or, when A got the partition back, the re-read `m1` waited behind A's
//!   stale retry for its 5 s);
//! - A counts the revoked deliveries in its summary.
//!
//! Runs on librdkafka's in-process mock cluster: no broker needed.

#![allow(clippy::unwrap_used)]

mod mock;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use wharf::{Consumer, Handler as _, HandlerError, Message};
use wharf_kafka::KafkaClient;

const RETRY_AFTER: Duration = Duration::from_secs(5);

/// One handler call: member, message id, attempt, when (since the first failure).
type Call = (&'static str, String, u32, Duration);

#[derive(Default)]
struct Log {
    calls: Mutex<Vec<Call>>,
    failed_once: AtomicBool,
    first_failure: Mutex<Option<tokio::time::Instant>>,
}

impl Log {
    fn record(&self, member: &'static str, m: &Message) {
        let since = self
            .first_failure
            .lock()
            .unwrap()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        self.calls
            .lock()
            .unwrap()
            .push((member, m.id().to_string(), m.attempt(), since));
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

fn handler(
    member: &'static str,
    log: Arc<Log>,
    failed: Option<oneshot::Sender<()>>,
) -> impl wharf::Handler<(Message,)> {
    let failed = Arc::new(Mutex::new(failed));
    move |m: Message| {
        let (log, failed) = (log.clone(), failed.clone());
        async move {
            log.record(member, &m);
            if !log.failed_once.swap(true, Ordering::SeqCst) {
                *log.first_failure.lock().unwrap() = Some(tokio::time::Instant::now());
                if let Some(tx) = failed.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                return Err(HandlerError::transient("the first call fails"));
            }
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_cancels_in_lane_retries() {
    let topic = mock::unique("revoke-retry");
    let group = mock::unique("revoke-retry-group");
    let cluster = mock::cluster(1, &topic);
    let kafka = KafkaClient::connect(mock::config(cluster, &topic, &group))
        .await
        .unwrap();
    mock::publish_all(
        &kafka.publisher(),
        &topic,
        vec![mock::keyed("m1", "k"), mock::keyed("m2", "k")],
    )
    .await;

    let log = Arc::new(Log::default());
    let (failed_tx, failed_rx) = oneshot::channel();
    let (stop_a, stop_a_rx) = oneshot::channel::<()>();
    let (stop_b, stop_b_rx) = oneshot::channel::<()>();

    let sub_a = kafka.configured_subscriber().await.unwrap();
    let a = tokio::spawn(
        Consumer::new(
            "revoke-a",
            sub_a,
            handler("a", log.clone(), Some(failed_tx)).into_service(),
        )
        .retry_delay(RETRY_AFTER)
        .run(async move {
            let _ = stop_a_rx.await;
        }),
    );
    tokio::time::timeout(Duration::from_secs(20), failed_rx)
        .await
        .expect("A's first call within 20 s")
        .unwrap();

    // B joins while A's m1 waits for its in-lane retry.
    let sub_b = kafka.configured_subscriber().await.unwrap();
    let b = tokio::spawn(
        Consumer::new(
            "revoke-b",
            sub_b,
            handler("b", log.clone(), None).into_service(),
        )
        .retry_delay(RETRY_AFTER)
        .run(async move {
            let _ = stop_b_rx.await;
        }),
    );

    mock::eventually("m1 and m2 handled by the new owner", || {
        let calls = log.calls();
        async move { calls.iter().filter(|c| c.1 == "m2").count() >= 1 }
    })
    .await;
    // Past the time A's stale retry would have run.
    let since_failure = log.first_failure.lock().unwrap().unwrap();
    tokio::time::sleep_until(since_failure + RETRY_AFTER + Duration::from_secs(2)).await;

    let _ = stop_a.send(());
    let _ = stop_b.send(());
    let summary_a = a.await.unwrap().unwrap();
    let summary_b = b.await.unwrap().unwrap();

    let calls = log.calls();
    assert!(
        calls.iter().all(|c| c.2 == 1),
        "no stale rerun (attempt 2) after the revoke: {calls:?}"
    );
    // After A's failed first call: the new owner's m1, then its m2, nothing else.
    let after: Vec<_> = calls[1..].iter().map(|c| c.1.as_str()).collect();
    assert_eq!(
        after,
        ["m1", "m2"],
        "the new owner handles m1 before m2: {calls:?}"
    );
    assert!(
        summary_a.revoked >= 1,
        "A gave up its revoked deliveries: {summary_a:?}"
    );
    assert_eq!(summary_a.retried_in_lane + summary_b.retried_in_lane, 1);
}
