//! The trace layer hands inward, and so to everything wharf publishes from the message,
//! a `traceparent` that continues the incoming trace (or, where a subscriber records the
//! span, starts a new one) as a child of the consumer's processing. With nothing to
//! continue and nobody recording, the message passes untouched.
#![cfg(all(feature = "trace", feature = "dead-letter"))]
#![allow(clippy::unwrap_used)] // in tests a panic is the clearest report

use std::sync::{Arc, Mutex};

use tower::ServiceBuilder;
use wharf::headers::names::TRACEPARENT;
use wharf::{Handler, HandlerError, Message, MessageId};
use wharf_memory::{Harness, MemoryBroker, Report};
use wharf_middleware::dead_letter::DeadLetterLayer;
use wharf_middleware::trace::{TraceContext, TraceLayer};

const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

/// Runs `messages` through trace → dead-letter → a handler that always fails
/// permanently, with a subscriber recording every span when `recorded`; returns the
/// report and the `traceparent` each handler call saw.
async fn run(messages: Vec<Message>, recorded: bool) -> (Report, Vec<(MessageId, Option<String>)>) {
    // Not recording: a subscriber that takes no span (with none at all, another test's
    // subscriber on another thread would make the callsite look interesting).
    use tracing_subscriber::layer::SubscriberExt as _;
    let _subscriber = match recorded {
        true => tracing::subscriber::set_default(tracing_subscriber::registry()),
        false => tracing::subscriber::set_default(
            tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::OFF),
        ),
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        move |msg: Message| {
            let seen = seen.clone();
            async move {
                let tp = msg.headers().get_str(TRACEPARENT).map(str::to_owned);
                seen.lock().unwrap().push((msg.id().clone(), tp));
                Err::<(), _>(HandlerError::permanent("never valid"))
            }
        }
    };
    let broker = MemoryBroker::new();
    let stack = ServiceBuilder::new()
        .layer(TraceLayer::new())
        .layer(DeadLetterLayer::new(Arc::new(broker.clone())))
        .service(handler.into_service());
    let mut harness = Harness::with_broker(broker, stack).topic("orders");
    for m in messages {
        harness.publish(m);
    }
    let report = harness.run_until_idle().await;
    let seen = seen.lock().unwrap().clone();
    (report, seen)
}

fn dead_letter_context(report: &Report, id: &MessageId) -> TraceContext {
    report.assert_dead_lettered(id, "permanent");
    let copy = report.dead_letter(id).expect("dead letter published");
    let value = copy
        .headers()
        .get_str(TRACEPARENT)
        .expect("the dead letter carries a traceparent");
    TraceContext::parse(value).unwrap_or_else(|| panic!("invalid traceparent {value:?}"))
}

#[tokio::test(start_paused = true)]
async fn dead_letter_continues_the_incoming_trace_as_a_child() {
    let msg = Message::new("x")
        .with_header(TRACEPARENT, INCOMING)
        .with_header("tenant", "acme");
    let id = msg.id().clone();
    // No subscriber: an incoming trace is continued all the same.
    let (report, seen) = run(vec![msg], false).await;

    let incoming = TraceContext::parse(INCOMING).unwrap();
    let out = dead_letter_context(&report, &id);
    assert_eq!(out.trace_id(), incoming.trace_id(), "same trace");
    assert_ne!(out.span_id(), incoming.span_id(), "a new parent-id");
    assert_eq!(
        out.flags(),
        incoming.flags(),
        "flags preserved (unsampled here)"
    );

    // The handler saw the same context the dead letter carries, and the other headers
    // are untouched.
    assert_eq!(seen, vec![(id.clone(), Some(out.to_string()))]);
    let copy = report.dead_letter(&id).unwrap();
    assert_eq!(copy.headers().get_str("tenant"), Some("acme"));
    assert_eq!(
        copy.headers()
            .iter()
            .filter(|(n, _)| *n == TRACEPARENT)
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn missing_traceparent_gets_a_fresh_valid_one_per_message() {
    let a = Message::new("a");
    let b = Message::new("b");
    let (ida, idb) = (a.id().clone(), b.id().clone());
    let (report, _) = run(vec![a, b], true).await;

    let ctx_a = dead_letter_context(&report, &ida);
    let ctx_b = dead_letter_context(&report, &idb);
    assert_ne!(
        ctx_a.trace_id(),
        ctx_b.trace_id(),
        "each message starts its own trace"
    );
    assert!(ctx_a.is_sampled());
}

#[tokio::test(start_paused = true)]
async fn invalid_traceparent_is_replaced_by_a_fresh_trace() {
    let invalid = [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "garbage",
    ];
    let messages: Vec<_> = invalid
        .iter()
        .map(|tp| Message::new("x").with_header(TRACEPARENT, *tp))
        .collect();
    let ids: Vec<_> = messages.iter().map(|m| m.id().clone()).collect();
    let (report, _) = run(messages, true).await;

    let garbage_trace = 0x4bf92f3577b34da6a3ce929d0e0e4736u128;
    for (id, tp) in ids.iter().zip(invalid) {
        let ctx = dead_letter_context(&report, id);
        assert_ne!(
            ctx.trace_id().to_u128(),
            garbage_trace,
            "{tp}: not continued"
        );
        assert_ne!(ctx.to_string(), tp);
    }
}

#[tokio::test(start_paused = true)]
async fn future_version_is_continued_as_version_00() {
    let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more-fields";
    let msg = Message::new("x").with_header(TRACEPARENT, future);
    let id = msg.id().clone();
    let (report, _) = run(vec![msg], false).await;

    let out = dead_letter_context(&report, &id);
    let copy = report.dead_letter(&id).unwrap();
    let value = copy.headers().get_str(TRACEPARENT).unwrap();
    assert!(
        value.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{value}"
    );
    assert_eq!(value.len(), 55);
    assert!(out.is_sampled());
}

#[tokio::test(start_paused = true)]
async fn nothing_to_continue_and_nobody_recording_leaves_the_message_untouched() {
    let msg = Message::new("x").with_header("tenant", "acme");
    let id = msg.id().clone();
    let (report, seen) = run(vec![msg], false).await;
    assert_eq!(seen, vec![(id.clone(), None)], "no traceparent made up");
    report.assert_dead_lettered(&id, "permanent");
    let copy = report.dead_letter(&id).unwrap();
    assert_eq!(copy.headers().get_str(TRACEPARENT), None);
    assert_eq!(copy.headers().get_str("tenant"), Some("acme"));
}
