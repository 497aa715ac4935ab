//! Redelivery delays grow exponentially up to the cap, and jitter only ever lengthens
//! them; the redeliveries really wait that long (on virtual time).
#![cfg(feature = "retry")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::ServiceBuilder;
use wharf::{Handler, HandlerError, Message, Outcome};
use wharf_memory::Harness;
use wharf_middleware::retry::{RetryLayer, RetryPolicy};

#[tokio::test(start_paused = true)]
async fn delays_grow_to_the_cap_and_jitter_never_shortens_them() {
    // Each call: the message's payload and the virtual time.
    let calls: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let c = calls.clone();
    let handler = move |msg: Message| {
        let c = c.clone();
        async move {
            let payload = String::from_utf8_lossy(msg.payload()).into_owned();
            c.lock().unwrap().push((payload, Instant::now()));
            Err::<(), _>(HandlerError::transient("still down"))
        }
    };
    let policy = RetryPolicy::new()
        .max_attempts(8)
        .initial_delay(Duration::from_secs(1))
        .multiplier(2.0)
        .max_delay(Duration::from_secs(4))
        .jitter(0.5);
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(policy.clone()))
        .service(handler.into_service());

    // Many messages, so jitter gets many samples.
    let mut harness = Harness::new(stack);
    let ids: Vec<_> = (0..50)
        .map(|i| harness.publish(Message::new(format!("m{i}"))))
        .collect();
    let report = harness.run_until_idle().await;

    let bases: Vec<Duration> = [1, 2, 4, 4, 4, 4, 4].map(Duration::from_secs).to_vec();
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 50 * 8);
    let mut lengthened = 0;
    for (i, id) in ids.iter().enumerate() {
        report
            .assert_dead_lettered(id, "retries-exhausted")
            .assert_retried(id, 7);
        let delays: Vec<Duration> = report
            .record(id)
            .unwrap()
            .outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Retry { after } => Some(*after),
                _ => None,
            })
            .collect();
        assert_eq!(delays.len(), bases.len());
        // When the handler saw this message.
        let payload = format!("m{i}");
        let seen: Vec<Instant> = calls
            .iter()
            .filter(|(p, _)| *p == payload)
            .map(|(_, at)| *at)
            .collect();
        for (n, (delay, base)) in delays.iter().zip(&bases).enumerate() {
            let retry = n + 1;
            assert_eq!(policy.backoff(retry as u32), *base);
            assert!(delay >= base, "retry {retry}: {delay:?} < {base:?}");
            assert!(
                *delay <= base.mul_f64(1.5),
                "retry {retry}: {delay:?} beyond the jitter bound"
            );
            if delay > base {
                lengthened += 1;
            }
            // The broker really waited (tokio timers round up to the millisecond).
            let gap = seen[n + 1] - seen[n];
            assert!(
                gap >= *delay,
                "retry {retry}: came back after {gap:?} < {delay:?}"
            );
            assert!(
                gap <= *delay + Duration::from_millis(2),
                "retry {retry}: {gap:?}"
            );
        }
    }
    assert!(lengthened > 300, "jitter applied ({lengthened} of 350)");
}
