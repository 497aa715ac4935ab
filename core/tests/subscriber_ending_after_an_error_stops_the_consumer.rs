//! A subscriber that yields an error and then ends (its client cannot go on, as a fenced
//! Kafka member): the consumer finishes what it holds and `run` returns that error,
//! instead of returning `Ok` or waiting for messages that never come.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use wharf::{Consumer, Error, Handler, HandlerError, Message, Outcome};

async fn slow(_msg: Message) -> Result<(), HandlerError> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_run_drains_and_returns_the_last_error() {
    let (sub, script) = support::scripted(true);
    script.send("in-flight", None);
    script.send("fail-and-end", None);
    let result = tokio::time::timeout(
        Duration::from_secs(600),
        Consumer::new("t", sub, slow.into_service()).run(std::future::pending()),
    )
    .await
    .expect("the consumer stopped by itself");
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Subscribe(_)), "{err:?}");
    assert!(err.to_string().contains("fenced"), "{err}");
    assert_eq!(
        script.settlements.of("in-flight"),
        vec![Outcome::Ack],
        "what it held was finished first"
    );
}

/// A stream that ends after a message, not an error, is a plain close: `Ok`.
#[tokio::test(start_paused = true)]
async fn a_plain_close_returns_ok() {
    let (sub, script) = support::scripted(true);
    script.send("one", None);
    drop(script.tx); // the stream ends after `one`
    let summary = Consumer::new("t", sub, slow.into_service())
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary.acked, 1);
}
