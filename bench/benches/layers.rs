//! Micro-benchmarks on the in-memory path (criterion): the per-message cost of the
//! handler alone, of each layer around it, of the recommended stack, and end-to-end
//! throughput of the runtime on the in-memory broker with a bare and the recommended
//! stack.
//!
//! Run with `cargo bench -p wharf-bench --bench layers`. Every per-message benchmark
//! gives each call a fresh message id (the dedup and idempotency layers would skip a
//! repeated one), so they all pay the same id formatting; compare each layer with
//! `handler alone`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tower::{Service, ServiceExt};
use wharf::{Consumer, Handler, HandlerError, Message, Outcome};
use wharf_memory::MemoryBroker;
use wharf_middleware::catch_panic::CatchPanic;
use wharf_middleware::dead_letter::DeadLetter;
use wharf_middleware::dedup::{Dedup, MemoryDedupStore};
use wharf_middleware::metrics::Metrics;
use wharf_middleware::retry::{Retry, RetryPolicy};
use wharf_middleware::stack::RecommendedLayer;
use wharf_middleware::timeout::Timeout;
use wharf_middleware::trace::Trace;

async fn noop(_m: Message) -> Result<(), HandlerError> {
    Ok(())
}

/// A message as the stack sees it under the runtime: received from `orders` (one shared
/// source string, as adapters do) and stamped with the consumer's name.
fn message(seq: &AtomicU64) -> Message {
    static ORIGIN: std::sync::OnceLock<wharf::Origin> = std::sync::OnceLock::new();
    let origin = ORIGIN.get_or_init(|| wharf::Origin::new("orders").with_consumer("bench"));
    let n = seq.fetch_add(1, Ordering::Relaxed);
    Message::with_id(format!("m{n}"), vec![b'x'; 256])
        .with_key("k")
        .with_origin(origin.clone())
}

/// Calls one instance of `service` once per iteration with a fresh message, as the
/// runtime does (one service, many calls: per-instance caches stay warm).
fn bench_service<S>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, service: S)
where
    S: Service<Message, Response = Outcome> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    let seq = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("per message");
    group.throughput(Throughput::Elements(1));
    let service = std::sync::Mutex::new(service);
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let mut svc = service.lock().unwrap().clone();
            let seq = seq.clone();
            async move {
                // The first call warms this instance (its caches) and is not timed.
                let mut start = std::time::Instant::now();
                for i in 0..=iters {
                    if i == 1 {
                        start = std::time::Instant::now();
                    }
                    svc.ready()
                        .await
                        .unwrap()
                        .call(message(&seq))
                        .await
                        .unwrap();
                }
                start.elapsed()
            }
        })
    });
    group.finish();
}

fn layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let broker = MemoryBroker::new();
    let publisher: Arc<dyn wharf::Publisher> = Arc::new(broker.clone());
    let handler = noop.into_service();

    bench_service(c, &rt, "handler alone", handler.clone());
    bench_service(
        c,
        &rt,
        "timeout",
        Timeout::new(handler.clone(), Duration::from_secs(30)),
    );
    bench_service(c, &rt, "catch-panic", CatchPanic::new(handler.clone()));
    bench_service(
        c,
        &rt,
        "retry",
        Retry::new(handler.clone(), RetryPolicy::new()),
    );
    bench_service(
        c,
        &rt,
        "dedup",
        Dedup::new(handler.clone(), MemoryDedupStore::new(1 << 20)),
    );
    bench_service(
        c,
        &rt,
        "dead-letter",
        DeadLetter::new(handler.clone(), publisher.clone()),
    );
    bench_service(c, &rt, "metrics", Metrics::new(handler.clone()));
    bench_service(c, &rt, "trace", Trace::new(handler.clone()));
    bench_service(
        c,
        &rt,
        "recommended stack",
        RecommendedLayer::new(publisher).service(handler),
    );
}

/// End to end on the in-memory broker: publish a backlog, drain it with the runtime.
///
/// The recommended stack is built once and cloned for every iteration, as a long-running
/// consumer keeps one stack (its dedup table full, evicting as it goes); ids never
/// repeat across iterations, so nothing is skipped as a duplicate.
fn end_to_end(c: &mut Criterion) {
    const N: usize = 20_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let dead_letters = MemoryBroker::new();
    let recommended_stack =
        RecommendedLayer::new(Arc::new(dead_letters.clone())).service(noop.into_service());
    let seq = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("in-memory end to end");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);
    for recommended in [false, true] {
        let name = if recommended {
            "recommended stack"
        } else {
            "bare"
        };
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || {
                    let broker = MemoryBroker::builder().record_history(false).build();
                    broker.declare_group("t", "g");
                    for _ in 0..N {
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        let m = Message::with_id(format!("e{n}"), vec![b'x'; 256]);
                        broker.publish("t", m).unwrap();
                    }
                    (broker, recommended_stack.clone())
                },
                |(broker, stack)| async move {
                    let subscriber = broker.subscribe("t", "g");
                    let idle = {
                        let broker = broker.clone();
                        async move { broker.idle("t", "g").await }
                    };
                    let summary = if recommended {
                        Consumer::new("bench", subscriber, stack)
                            .max_in_flight(256)
                            .run(idle)
                            .await
                    } else {
                        Consumer::new("bench", subscriber, noop.into_service())
                            .max_in_flight(256)
                            .run(idle)
                            .await
                    };
                    assert_eq!(summary.unwrap().acked, N as u64);
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, layers, end_to_end);
criterion_main!(benches);
