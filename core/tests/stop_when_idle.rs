//! `Consumer::stop_when_idle`: a consumer that reads what is there and ends, on any
//! broker (here a scripted one whose stream never ends by itself). It stops only when
//! nothing arrived for the idle time and nothing is in flight: a handler running longer
//! than the idle time keeps it running. The runtime also stamps its name on every
//! message's origin, where layers read it.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf::{Consumer, Handler, HandlerError, Message};

/// (message id, the consumer stamped on its origin)
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[tokio::test(start_paused = true)]
async fn stops_once_idle_and_not_before_in_flight_work_ends() {
    let (subscriber, script) = support::scripted(true);
    for id in ["a", "b", "slow"] {
        script.send(id, None);
    }
    let seen: Seen = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |m: Message| {
            let seen = seen.clone();
            async move {
                if m.id().as_str() == "slow" {
                    // Longer than the idle time: the consumer must wait for it.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                seen.lock()
                    .unwrap()
                    .push((m.id().to_string(), m.origin().consumer().map(str::to_owned)));
                Ok::<(), HandlerError>(())
            }
        }
    };
    let started = tokio::time::Instant::now();
    let run = Consumer::new("batch-job", subscriber, handler.into_service())
        .stop_when_idle(Duration::from_secs(5))
        // Never requested: only idleness ends this run.
        .run(std::future::pending());
    // Virtual time: a consumer that never stops fails here instead of hanging the suite.
    let summary = tokio::time::timeout(Duration::from_secs(3600), run)
        .await
        .expect("the consumer stopped once idle")
        .unwrap();
    assert_eq!(summary.acked, 3, "{summary:?}");
    assert_eq!(script.settlements.len(), 3);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(60),
        "stopped after {took:?}, while the slow handler still ran"
    );
    // Virtual time: the check runs every 5 s, so it stops within two periods.
    assert!(
        took <= Duration::from_secs(71),
        "stopped {took:?} after the start, long after it went idle"
    );
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    for (_, consumer) in &seen {
        assert_eq!(consumer.as_deref(), Some("batch-job"), "{seen:?}");
    }
}
