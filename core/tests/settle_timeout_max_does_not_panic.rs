//! `settle_timeout(Duration::MAX)` ("never abandon a settlement") must not panic when the
//! shutdown deadline passes, just as `shutdown_timeout(Duration::MAX)` does not. (Found
//! in review: the settle deadline was computed as `Instant + Duration`, which overflowed.)

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use wharf::{Consumer, Handler, HandlerError, Message, Outcome};

async fn never_finishes(_msg: Message) -> Result<(), HandlerError> {
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn settle_timeout_max_is_accepted_at_the_shutdown_deadline() {
    let (sub, script) = support::scripted(true);
    script.send("stuck", None);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        Consumer::new("t", sub, never_finishes.into_service())
            .shutdown_timeout(Duration::from_secs(1))
            .settle_timeout(Duration::MAX)
            .run(async move {
                let _ = stop_rx.await;
            }),
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    let _ = stop_tx.send(());
    let result = run.await;
    assert!(
        result.is_ok(),
        "the consumer task panicked at the shutdown deadline: {:?}",
        result.err()
    );
    let summary = result.unwrap().unwrap();
    assert_eq!(summary.interrupted, 1);
    assert_eq!(script.settlements.of("stuck"), vec![Outcome::RETRY_NOW]);
}
