//! The conformance suite against the local RabbitMQ (`scripts/test.sh` starts it).
//!
//! Through `RabbitClient`: a topic is a topic exchange; a group is a quorum queue
//! `<topic>.<group>` bound to it with `#`, with its retry tiers and dead-letter queue.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, OnceLock};

use tokio::sync::{Mutex, OwnedRwLockReadGuard, RwLock};
use wharf_conformance::{conformance_tests, AdapterFactory};
use wharf_rabbitmq::{RabbitClient, RabbitPublisher, RabbitSubscriber};

/// Tests hold a read lock while they run; restarting the broker takes the write lock,
/// so a restart waits for the tests already running and holds back the ones starting.
fn broker_lock() -> Arc<RwLock<()>> {
    static LOCK: OnceLock<Arc<RwLock<()>>> = OnceLock::new();
    LOCK.get_or_init(|| Arc::new(RwLock::new(()))).clone()
}

struct RabbitFactory {
    rabbit: RabbitClient,
    running: Mutex<Option<OwnedRwLockReadGuard<()>>>,
}

impl RabbitFactory {
    async fn new() -> Self {
        let guard = broker_lock().read_owned().await;
        RabbitFactory {
            rabbit: RabbitClient::connect(common::base()).await.unwrap(),
            running: Mutex::new(Some(guard)),
        }
    }
}

impl AdapterFactory for RabbitFactory {
    type Client = RabbitClient;
    type Subscriber = RabbitSubscriber;
    type Publisher = RabbitPublisher;

    fn name(&self) -> &str {
        "rabbitmq"
    }

    fn client(&self) -> &RabbitClient {
        &self.rabbit
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
            while let Err(e) = RabbitPublisher::connect(self.rabbit.config()).await {
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
