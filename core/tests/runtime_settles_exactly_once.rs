//! Every delivery is settled exactly once, with the outcome the stack chose; errors and
//! panics that reach the runtime are mapped, never dropped.

mod support;

use std::time::Duration;

use wharf::{Consumer, Error, FailureReason, Handler, HandlerError, Message, Outcome};

async fn handler(msg: Message) -> Result<(), HandlerError> {
    match msg.id().as_str() {
        id if id.starts_with("ok") => Ok(()),
        id if id.starts_with("transient") => Err(HandlerError::transient("try later")),
        id if id.starts_with("permanent") => Err(HandlerError::permanent("never")),
        id if id.starts_with("panic") => panic!("boom in {id}"),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn each_delivery_is_settled_once_with_the_mapped_outcome() {
    let (sub, script) = support::scripted(true);
    for i in 0..50 {
        for kind in ["ok", "transient", "permanent", "panic"] {
            script.send(&format!("{kind}-{i}"), None);
        }
    }
    drop(script.tx);
    let summary = Consumer::new("t", sub, handler.into_service())
        .retry_delay(Duration::from_millis(250))
        .run(std::future::pending())
        .await
        .unwrap();

    assert_eq!(summary.received, 200);
    assert_eq!(script.settlements.len(), 200, "one settlement per delivery");
    for i in 0..50 {
        assert_eq!(
            script.settlements.of(&format!("ok-{i}")),
            vec![Outcome::Ack]
        );
        assert_eq!(
            script.settlements.of(&format!("transient-{i}")),
            vec![Outcome::retry_after(Duration::from_millis(250))]
        );
        assert_eq!(
            script.settlements.of(&format!("panic-{i}")),
            vec![Outcome::retry_after(Duration::from_millis(250))],
            "a panic is a retry, and the consumer keeps running"
        );
        match script.settlements.of(&format!("permanent-{i}")).as_slice() {
            [Outcome::DeadLetter(f)] => assert_eq!(f.reason(), &FailureReason::Permanent),
            other => panic!("permanent error settled as {other:?}"),
        }
    }
    assert_eq!(summary.acked, 50);
    assert_eq!(summary.retried, 100);
    assert_eq!(summary.dead_lettered, 50);
    assert_eq!(
        script
            .dropped_unsettled
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn dead_letter_without_a_native_path_is_redelivered_not_dropped() {
    let (sub, script) = support::scripted(false);
    script.send("permanent-1", None);
    drop(script.tx);
    Consumer::new("t", sub, handler.into_service())
        .retry_delay(Duration::from_secs(5))
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        script.settlements.of("permanent-1"),
        vec![Outcome::retry_after(Duration::from_secs(5))]
    );
}

#[tokio::test]
async fn invalid_settings_fail_before_anything_is_pulled() {
    let (sub, script) = support::scripted(true);
    script.send("ok-1", None);
    let err = Consumer::new("t", sub, handler.into_service())
        .max_in_flight(0)
        .run(std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "max_in_flight"),
        "{err}"
    );
    assert_eq!(script.pulled(), 0);

    let (sub, _script) = support::scripted(true);
    let err = Consumer::new(" ", sub, handler.into_service())
        .run(std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`name`"), "{err}");
}

/// A service whose `call` panics (before returning a future) for some messages.
#[derive(Clone)]
struct PanicsInCall;

impl tower::Service<Message> for PanicsInCall {
    type Response = Outcome;
    type Error = wharf::BoxError;
    type Future = std::future::Ready<Result<Outcome, wharf::BoxError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, msg: Message) -> Self::Future {
        if msg.id().as_str().starts_with("panic") {
            panic!("call panicked for {}", msg.id());
        }
        std::future::ready(Ok(Outcome::Ack))
    }
}

#[tokio::test]
async fn a_panic_in_call_is_redelivered_and_the_consumer_keeps_running() {
    let (sub, script) = support::scripted(true);
    script.send("ok-1", None);
    script.send("panic-1", None);
    script.send("ok-2", None);
    drop(script.tx);
    let summary = Consumer::new("t", sub, PanicsInCall)
        .retry_delay(Duration::from_secs(2))
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary.acked, 2);
    assert_eq!(
        script.settlements.of("panic-1"),
        vec![Outcome::retry_after(Duration::from_secs(2))]
    );
    assert_eq!(script.settlements.len(), 3);
}
