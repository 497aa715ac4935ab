//! A timeout of `Duration::MAX` (or any duration past the clock's range) is a valid user
//! setting meaning "effectively no deadline"; calling the service must not panic.
#![cfg(feature = "timeout")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tower::{Layer, ServiceExt};
use wharf::{BoxError, Message, Outcome};
use wharf_middleware::timeout::TimeoutLayer;

#[tokio::test(start_paused = true)]
async fn duration_max_timeout_does_not_panic() {
    let svc = TimeoutLayer::new(Duration::MAX).layer(tower::service_fn(|_: Message| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, BoxError>(Outcome::Ack)
    }));
    // Catch the panic so the report says what happened.
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        svc.oneshot(Message::new("m"))
    }));
    match res {
        Ok(fut) => assert_eq!(fut.await.unwrap(), Outcome::Ack),
        Err(_) => panic!("Timeout with Duration::MAX panicked on call"),
    }
}

#[tokio::test(start_paused = true)]
async fn huge_timeout_in_the_recommended_stack_does_not_panic() {
    use std::sync::Arc;
    use wharf::Handler;
    use wharf_memory::{Harness, MemoryBroker};
    use wharf_middleware::stack::RecommendedLayer;

    async fn handle(_m: Message) -> Result<(), wharf::HandlerError> {
        Ok(())
    }
    let broker = MemoryBroker::new();
    let stack = RecommendedLayer::new(Arc::new(broker.clone()))
        .timeout(Duration::from_secs(u64::MAX))
        .service(handle.into_service());
    let task = tokio::spawn(async move {
        let mut harness = Harness::with_broker(broker, stack).topic("orders");
        let id = harness.publish(Message::new("x"));
        harness.run_until_idle().await.assert_acked(&id);
    });
    if let Err(e) = task.await {
        panic!("recommended stack with a huge timeout panicked: {e}");
    }
}
