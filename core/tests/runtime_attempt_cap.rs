//! The runtime's own attempt cap (issue 13, item 2): without a retry layer, a transient
//! error or a panic that reaches the runtime is retried until the delivery's attempt
//! reaches `Consumer::max_attempts`, then dead-lettered, never retried for ever. Before
//! the cap a message that always failed transiently was rerun in its lane without end
//! and held its key.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf::{Consumer, FailureReason, HandlerError, Message, Outcome};

/// Every run's (id, attempt); ids starting with `panic` panic, others fail transiently,
/// `ok…` succeed.
fn handler(runs: Arc<Mutex<Vec<(String, u32)>>>) -> impl wharf::Handler<(Message,)> + Clone {
    move |msg: Message| {
        let runs = runs.clone();
        async move {
            let id = msg.id().to_string();
            runs.lock().unwrap().push((id.clone(), msg.attempt()));
            if id.starts_with("panic") {
                panic!("always panics");
            }
            if id.starts_with("ok") {
                return Ok(());
            }
            Err(HandlerError::transient("dependency down"))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_always_failing_message_is_dead_lettered_at_the_cap_and_frees_its_key() {
    let (sub, script) = support::scripted_in_lane();
    script.send("fail", Some("a"));
    script.send("panic", Some("b"));
    script.send("ok-after-fail", Some("a"));

    let runs = Arc::default();
    let summary = Consumer::new(
        "t",
        sub,
        wharf::Handler::into_service(handler(Arc::clone(&runs))),
    )
    .retry_delay(Duration::from_secs(1))
    .max_attempts(3)
    .run(tokio::time::sleep(Duration::from_secs(600)))
    .await
    .unwrap();

    let runs = runs.lock().unwrap().clone();
    let attempts = |id: &str| -> Vec<u32> {
        runs.iter()
            .filter(|(i, _)| i == id)
            .map(|(_, a)| *a)
            .collect()
    };
    assert_eq!(attempts("fail"), [1, 2, 3]);
    assert_eq!(attempts("panic"), [1, 2, 3]);
    assert_eq!(
        attempts("ok-after-fail"),
        [1],
        "the key's lane was released"
    );

    let reason = |id: &str| match script.settlements.of(id).as_slice() {
        [Outcome::DeadLetter(failure)] => failure.reason().clone(),
        other => panic!("{id}: expected one dead letter, got {other:?}"),
    };
    assert_eq!(reason("fail"), FailureReason::RetriesExhausted);
    assert_eq!(reason("panic"), FailureReason::HandlerPanic);
    assert_eq!(script.settlements.of("ok-after-fail"), [Outcome::Ack]);
    assert_eq!(summary.dead_lettered, 2, "{summary:?}");
}

#[tokio::test]
async fn max_attempts_zero_is_refused_naming_the_field() {
    let (sub, _script) = support::scripted(true);
    let e = Consumer::new(
        "t",
        sub,
        wharf::Handler::into_service(handler(Arc::default())),
    )
    .max_attempts(0)
    .run(std::future::pending())
    .await
    .unwrap_err();
    assert!(e.to_string().contains("max_attempts"), "{e}");
}
