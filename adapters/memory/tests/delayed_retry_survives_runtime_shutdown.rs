//! A `Retry { after }` is scheduled on a tokio timer task. If the runtime that settled it
//! shuts down before the timer fires (a test runtime ending, a consumer runtime being
//! dropped while the broker lives on), the message must still come back: the dropped
//! timer task redelivers it at once, as a dropped acker does. (Found in review: it used
//! to stay delayed forever, and the group never became idle.)

use std::time::Duration;

use futures_util::StreamExt;
use wharf::adapter::Acker;
use wharf::{Message, Outcome};
use wharf_memory::MemoryBroker;

#[test]
fn a_delayed_retry_is_redelivered_after_the_runtime_that_scheduled_it_is_gone() {
    let broker = MemoryBroker::new();
    broker.publish("t", Message::with_id("m", "x")).unwrap();

    // Runtime A: deliver and settle Retry after 1 s, then shut the runtime down.
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let b = broker.clone();
        rt.block_on(async move {
            let mut s = b.subscribe("t", "g");
            let (_m, acker) = s.next().await.unwrap().unwrap().into_parts();
            acker
                .settle(Outcome::retry_after(Duration::from_millis(50)))
                .await
                .unwrap();
        });
        drop(rt);
    }

    // Runtime B: a new member of the group must get the message back.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let b = broker.clone();
    let got = rt.block_on(async move {
        let mut s = b.subscribe("t", "g");
        tokio::time::timeout(Duration::from_secs(2), s.next()).await
    });
    assert!(
        got.is_ok(),
        "the delayed message never came back (pending = {})",
        broker.pending("t", "g")
    );
}
