//! Replicas of one consumer sharing one store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf::headers::names;
use wharf::{Consumer, Handler, HandlerError, Message};
use wharf_memory::MemoryBroker;
use wharf_middleware::idempotency::{IdempotencyLayer, IdempotencyStore};

use super::{unique_consumer, StoreFactory};

/// What the replicas' handler saw: effects per key, keys running now, and keys that
/// ran twice at once.
#[derive(Default)]
struct Effects {
    done: HashMap<String, usize>,
    running: HashSet<String>,
    overlaps: Vec<String>,
}

/// Two replicas (each on a runtime and thread of its own, like two processes) of one
/// consumer share a group and the store; 100 operations are each published twice under
/// two message ids with one idempotency key (a producer's retry), so both replicas get
/// copies of the same operation at the same time. Each operation's effect happens once,
/// and no two copies of one operation ever run at once.
pub async fn replicas_run_each_effect_once<F: StoreFactory>(f: &F) {
    const OPERATIONS: usize = 100;
    let store: Arc<dyn IdempotencyStore> = Arc::new(f.store().await);
    let consumer = unique_consumer("replicas");
    let broker = MemoryBroker::new();
    broker.declare_group("orders", "replicas");
    for copy in 0..2 {
        for op in 0..OPERATIONS {
            broker
                .publish(
                    "orders",
                    Message::with_id(format!("op-{op}-copy-{copy}"), "")
                        .with_header(names::IDEMPOTENCY_KEY, format!("op-{op}")),
                )
                .expect("the in-memory broker accepts");
        }
    }
    let effects = Arc::new(Mutex::new(Effects::default()));
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            let (broker, store, effects, consumer) = (
                broker.clone(),
                store.clone(),
                effects.clone(),
                consumer.clone(),
            );
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let handler = move |message: Message| {
                        let effects = effects.clone();
                        async move {
                            let key = message
                                .headers()
                                .get_str(names::IDEMPOTENCY_KEY)
                                .unwrap_or_default()
                                .to_owned();
                            {
                                let mut e = effects.lock().expect("not poisoned");
                                if !e.running.insert(key.clone()) {
                                    e.overlaps.push(key.clone());
                                }
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            let mut e = effects.lock().expect("not poisoned");
                            e.running.remove(&key);
                            *e.done.entry(key).or_default() += 1;
                            Ok::<(), HandlerError>(())
                        }
                    };
                    let stack = tower::Layer::layer(
                        &IdempotencyLayer::new(store)
                            .retry_in_flight_after(Duration::from_millis(50)),
                        handler.into_service(),
                    );
                    Consumer::new(consumer, broker.subscribe("orders", "replicas"), stack)
                        .max_in_flight(16)
                        .stop_when_idle(Duration::from_millis(500))
                        .run(std::future::pending())
                        .await
                })
            })
        })
        .collect();
    let mut handled = 0;
    for replica in replicas {
        let summary = replica
            .join()
            .expect("the replica's thread ran")
            .unwrap_or_else(|e| panic!("{}: a replica failed: {e}", f.name()));
        handled += summary.received;
    }
    let e = effects.lock().expect("not poisoned");
    assert!(
        e.overlaps.is_empty(),
        "{}: copies of one operation ran at once: {:?}",
        f.name(),
        e.overlaps
    );
    let twice: Vec<_> = e.done.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "{}: operations whose effect did not happen once: {twice:?}",
        f.name()
    );
    assert_eq!(
        e.done.len(),
        OPERATIONS,
        "{}: every operation took effect",
        f.name()
    );
    assert!(
        handled >= 2 * OPERATIONS as u64,
        "{}: both copies of each were delivered",
        f.name()
    );
}
