//! `poll_ready` gates every pull, and no more than `max_in_flight` deliveries are held.

mod support;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tower::ServiceBuilder;
use wharf::{Consumer, Handler, HandlerError, Message};

#[tokio::test(start_paused = true)]
async fn pulls_stop_at_max_in_flight_while_handlers_are_busy() {
    let (sub, script) = support::scripted(true);
    for i in 0..100 {
        script.send(&format!("m{i}"), None);
    }
    let release = Arc::new(Notify::new());
    let r = release.clone();
    let handler = move |_m: Message| {
        let r = r.clone();
        async move {
            r.notified().await;
            Ok::<(), HandlerError>(())
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        Consumer::new("t", sub, handler.into_service())
            .max_in_flight(8)
            .run(async move {
                let _ = stop_rx.await;
            }),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(script.pulled(), 8, "pulled beyond the in-flight bound");
    release.notify_waiters();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        script.pulled(),
        16,
        "did not pull again after work finished"
    );
    let _ = stop_tx.send(());
    release.notify_waiters();
    // Keep releasing until the drain completes.
    let releaser = tokio::spawn(async move {
        loop {
            release.notify_waiters();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let summary = run.await.unwrap().unwrap();
    releaser.abort();
    assert_eq!(summary.received, 16);
    assert_eq!(summary.acked, 16);
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_limit_in_the_stack_becomes_backpressure_on_the_source() {
    let (sub, script) = support::scripted(true);
    for i in 0..50 {
        script.send(&format!("m{i}"), None);
    }
    let handler = |_m: Message| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<(), HandlerError>(())
    };
    let stack = ServiceBuilder::new()
        .concurrency_limit(3)
        .service(handler.into_service());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        Consumer::new("t", sub, stack)
            .max_in_flight(100)
            .shutdown_timeout(Duration::from_secs(1))
            .run(async move {
                let _ = stop_rx.await;
            }),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        script.pulled(),
        3,
        "the runtime pulled messages the stack was not ready for"
    );
    let _ = stop_tx.send(());
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.interrupted, 3);
    assert_eq!(script.settlements.len(), 3);
}
