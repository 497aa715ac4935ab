//! Same key ⇒ one after another; different keys ⇒ in parallel.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf::{Consumer, DeliveryOrder, Handler, HandlerError, Message};

#[derive(Default)]
struct Observed {
    running: HashMap<String, usize>,
    max_per_key: usize,
    running_total: usize,
    max_total: usize,
    order: HashMap<String, Vec<String>>,
}

fn observing_handler(observed: Arc<Mutex<Observed>>) -> impl Handler<(Message,)> {
    move |msg: Message| {
        let observed = observed.clone();
        async move {
            let key = String::from_utf8(msg.key().map(|k| k.to_vec()).unwrap_or_default()).unwrap();
            {
                let mut o = observed.lock().unwrap();
                let n = o.running.entry(key.clone()).or_default();
                *n += 1;
                let n = *n;
                o.max_per_key = o.max_per_key.max(n);
                o.running_total += 1;
                o.max_total = o.max_total.max(o.running_total);
                o.order
                    .entry(key.clone())
                    .or_default()
                    .push(msg.id().to_string());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut o = observed.lock().unwrap();
            *o.running.get_mut(&key).unwrap() -= 1;
            o.running_total -= 1;
            Ok::<(), HandlerError>(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn same_key_runs_in_order_and_different_keys_run_in_parallel() {
    let (sub, script) = support::scripted(true);
    let keys = ["a", "b", "c", "d"];
    for i in 0..20 {
        for k in keys {
            script.send(&format!("{k}-{i:02}"), Some(k));
        }
    }
    drop(script.tx);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let summary = Consumer::new("t", sub, observing_handler(observed.clone()).into_service())
        .max_in_flight(32)
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary.acked, 80);

    let o = observed.lock().unwrap();
    assert_eq!(o.max_per_key, 1, "two messages of one key ran at once");
    assert!(
        o.max_total >= keys.len(),
        "different keys did not run in parallel (max {})",
        o.max_total
    );
    for k in keys {
        let expected: Vec<String> = (0..20).map(|i| format!("{k}-{i:02}")).collect();
        assert_eq!(o.order[k], expected, "order of key {k}");
    }
}

#[tokio::test(start_paused = true)]
async fn sequential_ordering_runs_one_at_a_time() {
    let (sub, script) = support::scripted(true);
    for i in 0..10 {
        script.send(&format!("m{i}"), Some(if i % 2 == 0 { "x" } else { "y" }));
    }
    drop(script.tx);
    let observed = Arc::new(Mutex::new(Observed::default()));
    Consumer::new("t", sub, observing_handler(observed.clone()).into_service())
        .ordering(DeliveryOrder::Sequential)
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(observed.lock().unwrap().max_total, 1);
}
