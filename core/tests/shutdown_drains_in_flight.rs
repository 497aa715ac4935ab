//! Graceful shutdown: stop pulling, let in-flight work finish until the deadline, settle
//! the rest as `Retry` (never dead-letter), then close. Nothing received is lost.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use wharf::{Consumer, Handler, HandlerError, Message, Outcome};

async fn slow_by_name(msg: Message) -> Result<(), HandlerError> {
    let secs: u64 = msg
        .id()
        .as_str()
        .split('-')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn work_finishing_before_the_deadline_is_acked_the_rest_retried() {
    let (sub, script) = support::scripted(true);
    script.send("fast-1", None);
    script.send("slow-100", None);
    // Two messages of one key: the second waits in the lane and must still be drained.
    script.send("quick-1", Some("lane"));
    script.send("blocked-1", Some("lane"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let consumer = Consumer::new("t", sub, slow_by_name.into_service())
        .shutdown_timeout(Duration::from_secs(10))
        .run(async move {
            let _ = stop_rx.await;
        });
    let run = tokio::spawn(consumer);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // More messages after shutdown must not be pulled.
    let _ = stop_tx.send(());
    tokio::time::sleep(Duration::from_millis(1)).await;
    script.send("late-1", None);
    let summary = run.await.unwrap().unwrap();

    assert_eq!(script.settlements.of("fast-1"), vec![Outcome::Ack]);
    assert_eq!(script.settlements.of("quick-1"), vec![Outcome::Ack]);
    assert_eq!(script.settlements.of("blocked-1"), vec![Outcome::Ack]);
    assert_eq!(
        script.settlements.of("slow-100"),
        vec![Outcome::RETRY_NOW],
        "unfinished work is settled Retry at the deadline, never dead-lettered"
    );
    assert!(
        script.settlements.of("late-1").is_empty(),
        "pulled after shutdown"
    );
    assert_eq!(script.pulled(), 4);
    assert_eq!(summary.interrupted, 1);
    assert_eq!(
        script
            .dropped_unsettled
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn messages_waiting_in_a_lane_at_the_deadline_are_retried() {
    let (sub, script) = support::scripted(true);
    script.send("slow-100", Some("k"));
    script.send("next-1", Some("k"));
    script.send("after-1", Some("k"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        Consumer::new("t", sub, slow_by_name.into_service())
            .shutdown_timeout(Duration::from_secs(2))
            .run(async move {
                let _ = stop_rx.await;
            }),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_tx.send(());
    let summary = run.await.unwrap().unwrap();
    for id in ["slow-100", "next-1", "after-1"] {
        assert_eq!(script.settlements.of(id), vec![Outcome::RETRY_NOW], "{id}");
    }
    assert_eq!(summary.interrupted, 3);
}

#[tokio::test(start_paused = true)]
async fn interrupted_work_is_settled_even_when_settling_needs_io() {
    // Settlements that only happen when their future is driven (a network nack) must
    // still be driven after the deadline drops the handler futures.
    let (sub, script) = support::scripted_with(true, true);
    for i in 0..4 {
        script.send(&format!("slow-{}", 1000 + i), None);
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        Consumer::new("t", sub, slow_by_name.into_service())
            .shutdown_timeout(Duration::from_millis(100))
            .run(async move {
                let _ = stop_rx.await;
            }),
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    let _ = stop_tx.send(());
    let started = tokio::time::Instant::now();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.interrupted, 4);
    assert_eq!(summary.abandoned, 0, "settlements were left undriven");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited for the settle timeout"
    );
    for i in 0..4 {
        assert_eq!(
            script.settlements.of(&format!("slow-{}", 1000 + i)),
            vec![Outcome::RETRY_NOW]
        );
    }
}
