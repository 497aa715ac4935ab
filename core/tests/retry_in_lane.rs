//! Adapters with `Capabilities::retry_in_lane` (Kafka): the runtime carries out `Retry`
//! itself, holding the message's key lane, and the acker sees only the final outcome.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use wharf::{Consumer, HandlerError, Message, Outcome};

/// (id, attempt, seconds since start) of every handler run.
type Runs = Arc<Mutex<Vec<(String, u32, u64)>>>;

/// Fails `fails` times for ids starting with `fail`, then succeeds.
fn handler(runs: Runs, start: Instant, fails: u32) -> impl wharf::Handler<(Message,)> + Clone {
    move |msg: Message| {
        let runs = runs.clone();
        async move {
            let id = msg.id().to_string();
            runs.lock()
                .unwrap()
                .push((id.clone(), msg.attempt(), start.elapsed().as_secs()));
            if id.starts_with("fail") && msg.attempt() <= fails {
                return Err(HandlerError::transient("not yet"));
            }
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn retry_reruns_in_the_lane_with_the_attempt_raised_and_settles_once() {
    let (sub, script) = support::scripted_in_lane();
    script.send("fail-a1", Some("a"));
    script.send("a2", Some("a"));
    script.send("b1", Some("b"));

    let runs: Runs = Arc::default();
    let start = Instant::now();
    let summary = Consumer::new(
        "t",
        sub,
        wharf::Handler::into_service(handler(runs.clone(), start, 2)),
    )
    .retry_delay(Duration::from_secs(10))
    .run(tokio::time::sleep(Duration::from_secs(30)))
    .await
    .unwrap();

    let runs = runs.lock().unwrap().clone();
    let of = |id: &str| -> Vec<(u32, u64)> {
        runs.iter()
            .filter(|(i, _, _)| i == id)
            .map(|(_, a, t)| (*a, *t))
            .collect()
    };
    // Three runs of the failing message, 10 s apart, with attempts 1, 2, 3.
    assert_eq!(of("fail-a1"), vec![(1, 0), (2, 10), (3, 20)]);
    // Its key's successor waited for it; the other key did not.
    assert_eq!(of("a2"), vec![(1, 20)]);
    assert_eq!(of("b1"), vec![(1, 0)]);

    // The acker saw one final outcome per delivery.
    for id in ["fail-a1", "a2", "b1"] {
        assert_eq!(script.settlements.of(id), vec![Outcome::Ack], "{id}");
    }
    assert_eq!(summary.retried_in_lane, 2);
    assert_eq!(summary.retried, 0);
    assert_eq!(summary.acked, 3);
}

#[tokio::test(start_paused = true)]
async fn stopping_leaves_waiting_retries_to_the_broker() {
    let (sub, script) = support::scripted_in_lane();
    script.send("fail-a1", Some("a"));
    script.send("a2", Some("a"));

    let runs: Runs = Arc::default();
    let start = Instant::now();
    let summary = Consumer::new(
        "t",
        sub,
        wharf::Handler::into_service(handler(runs.clone(), start, u32::MAX)),
    )
    .retry_delay(Duration::from_secs(3600))
    .run(tokio::time::sleep(Duration::from_secs(5)))
    .await
    .unwrap();

    // Stopped at 5 s without waiting out the hour: the waiting retry is handed back as
    // `Retry` (for Kafka: its offset is not committed), exactly once.
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(
        script.settlements.of("fail-a1"),
        vec![Outcome::Retry {
            after: Duration::ZERO
        }]
    );
    // Its lane successor is handed back too, never run (issue 13, item 3): running it
    // here would put a2 before a1, whose retry the next owner makes. Before the fix a2
    // ran while draining, once the lane was released, and was acked.
    let runs = runs.lock().unwrap().clone();
    let a2_runs = runs.iter().filter(|r| r.0 == "a2").count();
    assert_eq!(a2_runs, 0, "a2 ran before a1: {runs:?}");
    assert_eq!(
        script.settlements.of("a2"),
        vec![Outcome::Retry {
            after: Duration::ZERO
        }]
    );
    assert_eq!(summary.retried_in_lane, 1);
    assert_eq!(summary.retried, 2);
    assert_eq!(
        script
            .dropped_unsettled
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn adapters_without_in_lane_retry_get_retry_settled() {
    let (sub, script) = support::scripted(true);
    script.send("fail-a1", Some("a"));
    drop(script.tx);
    let runs: Runs = Arc::default();
    let summary = Consumer::new(
        "t",
        sub,
        wharf::Handler::into_service(handler(runs.clone(), Instant::now(), 1)),
    )
    .retry_delay(Duration::from_secs(1))
    .run(std::future::pending())
    .await
    .unwrap();
    assert_eq!(
        script.settlements.of("fail-a1"),
        vec![Outcome::Retry {
            after: Duration::from_secs(1)
        }]
    );
    assert_eq!(summary.retried_in_lane, 0);
}
