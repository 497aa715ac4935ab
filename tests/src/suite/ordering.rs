//! Order per key: one key's messages are handled one at a time, in publish order.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wharf::{Consumer, DeliveryOrder, Handler, HandlerError, Message};

use crate::factory::AdapterFactory;
use crate::support::{
    eventually, numbered, prepare, publish_all, publisher, random_pause, seq_of, skip, start,
    subscribe, unique_group, unique_topic, Log,
};

/// Five keys × 50 messages, published interleaved, handled by a [`Consumer`] with
/// [`DeliveryOrder::PerKey`] and a handler that pauses randomly: each key's messages are
/// handled in publish order, exactly once, and never two of one key at the same time.
pub async fn order_per_key<F: AdapterFactory>(f: &F) {
    const KEYS: usize = 5;
    const PER_KEY: usize = 50;
    const TOTAL: usize = KEYS * PER_KEY;
    let caps = f.capabilities();
    if !caps.ordered_per_key {
        skip(f, "order_per_key", "order per key is not promised");
        return;
    }
    let topic = unique_topic("order-per-key");
    let group = unique_group("ordered");
    prepare(f, &topic, &[&group]).await;
    let key_of = |seq: usize| Bytes::from(format!("key-{}", seq % KEYS));
    let messages: Vec<Message> = (0..TOTAL)
        .map(|seq| numbered(&topic, seq).with_key(key_of(seq)))
        .collect();

    let order: Log<(Bytes, usize)> = Log::new();
    let overlaps: Log<String> = Log::new();
    let active: Arc<Mutex<HashSet<Bytes>>> = Arc::default();
    let handler = {
        let (order, overlaps, active) = (order.clone(), overlaps.clone(), active.clone());
        move |m: Message| {
            let (order, overlaps, active) = (order.clone(), overlaps.clone(), active.clone());
            async move {
                let key = m.key().cloned().unwrap_or_default();
                let seq = seq_of(&m);
                let alone = active
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone());
                if !alone {
                    overlaps.push(format!(
                        "message {seq} of key {:?} started while another message of its key was running",
                        String::from_utf8_lossy(&key)
                    ));
                }
                random_pause(3).await;
                order.push((key.clone(), seq));
                if alone {
                    active
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                }
                Ok::<(), HandlerError>(())
            }
        }
    };

    let publisher = publisher(f).await;
    let destination = f.destination(&topic);
    let consumer = |subscriber: F::Subscriber| {
        Consumer::new("order-per-key", subscriber, handler.into_service())
            .ordering(DeliveryOrder::PerKey)
            .max_in_flight(32)
    };
    // Publishing first (where the broker keeps messages for a declared group) fills the
    // key lanes at once: the case where order is easiest to break.
    let running = if caps.retains_before_subscribe {
        publish_all(&publisher, &destination, messages).await;
        start(consumer(subscribe(f, &topic, &group).await))
    } else {
        let running = start(consumer(subscribe(f, &topic, &group).await));
        publish_all(&publisher, &destination, messages).await;
        running
    };

    eventually(
        f.timeout(),
        || {
            running.assert_running();
            order.len() >= TOTAL
        },
        || format!("all {TOTAL} messages are handled; handled {}", order.len()),
    )
    .await;
    running.stop(f.timeout()).await;

    let overlaps = overlaps.snapshot();
    assert!(
        overlaps.is_empty(),
        "messages of one key ran concurrently: {overlaps:?}"
    );
    let mut per_key: HashMap<Bytes, Vec<usize>> = HashMap::new();
    for (key, seq) in order.snapshot() {
        per_key.entry(key).or_default().push(seq);
    }
    for k in 0..KEYS {
        let key = key_of(k);
        let expected: Vec<usize> = (0..PER_KEY).map(|i| i * KEYS + k).collect();
        let got = per_key.remove(&key).unwrap_or_default();
        assert_eq!(
            got,
            expected,
            "messages of key {:?} were handled out of publish order (left: handled, right: published)",
            String::from_utf8_lossy(&key)
        );
    }
    assert!(
        per_key.is_empty(),
        "handled messages with keys never published: {:?}",
        per_key.keys().collect::<Vec<_>>()
    );
}
