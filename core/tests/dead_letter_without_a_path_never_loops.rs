//! An at-most-once adapter (Core NATS: no redelivery, no native dead letters, retries run
//! in this process) and a stack without the dead-letter layer: a permanent failure is
//! settled `DeadLetter` once, for the acker to report (Core NATS logs and counts it as
//! lost), and the messages behind it in its key's lane run. Before, the runtime turned it
//! into a retry, reran it in the lane for ever and held the lane and a slot.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wharf::{Consumer, FailureReason, Handler, HandlerError, Message, Outcome};

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_settled_once_and_its_lane_goes_on() {
    let (sub, script) = support::scripted_at_most_once();
    script.send("poison", Some("k"));
    script.send("next", Some("k"));
    let poison_runs = Arc::new(AtomicUsize::new(0));
    let handler = {
        let poison_runs = poison_runs.clone();
        move |message: Message| {
            let poison_runs = poison_runs.clone();
            async move {
                if message.id().as_str() == "poison" {
                    poison_runs.fetch_add(1, Ordering::SeqCst);
                    return Err(HandlerError::permanent("not a valid order"));
                }
                Ok(())
            }
        }
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(600),
        Consumer::new("t", sub, handler.into_service())
            .stop_when_idle(Duration::from_secs(5))
            .run(std::future::pending()),
    )
    .await
    .expect("the consumer went idle: nothing reran for ever")
    .unwrap();
    assert_eq!(
        poison_runs.load(Ordering::SeqCst),
        1,
        "ran once, not in a loop"
    );
    match script.settlements.of("poison").as_slice() {
        [Outcome::DeadLetter(failure)] => assert_eq!(*failure.reason(), FailureReason::Permanent),
        other => panic!("poison settled {other:?}"),
    }
    assert_eq!(script.settlements.of("next"), vec![Outcome::Ack]);
    assert_eq!(summary.dead_lettered, 1, "{summary:?}");
}
