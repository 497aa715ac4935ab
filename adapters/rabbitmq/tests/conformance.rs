//! The conformance suite against the local RabbitMQ (`scripts/test.sh` starts it).
//!
//! A topic is a topic exchange; a group is a quorum queue `<topic>.<group>` bound to it
//! with `#`, with its retry tiers and dead-letter queue.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, OnceLock};

use tokio::sync::{Mutex, OwnedRwLockReadGuard, RwLock};
use wharf::headers::names;
use wharf::Capabilities;
use wharf_conformance::{conformance_tests, AdapterFactory, DeadLetterRecord};
use wharf_rabbitmq::{
    capabilities, inspect, topology, QueueType, RabbitConfig, RabbitPublisher, RabbitSubscriber,
};

/// Tests hold a read lock while they run; restarting the broker takes the write lock,
/// so a restart waits for the tests already running and holds back the ones starting.
fn broker_lock() -> Arc<RwLock<()>> {
    static LOCK: OnceLock<Arc<RwLock<()>>> = OnceLock::new();
    LOCK.get_or_init(|| Arc::new(RwLock::new(()))).clone()
}

struct RabbitFactory {
    base: RabbitConfig,
    running: Mutex<Option<OwnedRwLockReadGuard<()>>>,
}

impl RabbitFactory {
    async fn new() -> Self {
        let guard = broker_lock().read_owned().await;
        RabbitFactory {
            base: common::base(),
            running: Mutex::new(Some(guard)),
        }
    }

    fn config(&self, topic: &str, group: &str) -> RabbitConfig {
        self.base
            .to_builder()
            .queue(format!("{topic}.{group}"))
            .exchange(topic)
            .build()
            .expect("valid configuration")
    }
}

impl AdapterFactory for RabbitFactory {
    type Subscriber = RabbitSubscriber;
    type Publisher = RabbitPublisher;

    fn name(&self) -> &str {
        "rabbitmq"
    }

    fn capabilities(&self) -> Capabilities {
        capabilities(QueueType::Quorum)
    }

    async fn prepare(&self, topic: &str, groups: &[&str]) -> Result<(), wharf::Error> {
        for group in groups {
            topology::declare(&self.config(topic, group)).await?;
        }
        Ok(())
    }

    async fn publisher(&self) -> Result<RabbitPublisher, wharf::Error> {
        RabbitPublisher::connect(&self.base).await
    }

    fn destination(&self, topic: &str) -> String {
        format!("/exchanges/{topic}")
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<RabbitSubscriber, wharf::Error> {
        RabbitSubscriber::connect(&self.config(topic, group)).await
    }

    async fn dead_letters(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Vec<DeadLetterRecord>, wharf::Error> {
        let dlq = format!("{topic}.{group}.dlq");
        Ok(inspect::peek(&self.base, &dlq, 1000)
            .await?
            .into_iter()
            .map(|m| {
                let reason = m.headers().get_str(names::DLQ_REASON).map(str::to_owned);
                DeadLetterRecord::new(m, reason)
            })
            .collect())
    }

    async fn restart_broker(&self) -> Result<bool, wharf::Error> {
        // Give up this test's read lock, wait for every other running test to finish,
        // restart, and take the read lock again.
        self.running.lock().await.take();
        let lock = broker_lock();
        {
            let _exclusive = lock.write().await;
            common::restart_broker().await;
            // After a restart the broker recovers every quorum queue before it answers
            // connections promptly: release the other tests only once it does.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
            while let Err(e) = RabbitPublisher::connect(&self.base).await {
                assert!(
                    std::time::Instant::now() < deadline,
                    "RabbitMQ does not accept connections after the restart: {e}"
                );
            }
        }
        *self.running.lock().await = Some(lock.read_owned().await);
        Ok(true)
    }
}

conformance_tests!(ignore = "needs rabbitmq", RabbitFactory::new().await);
