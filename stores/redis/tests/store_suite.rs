//! The store suite against the local Redis (`scripts/brokers.sh` starts it on
//! 127.0.0.1:6379), and what is particular to it.

#![allow(clippy::unwrap_used)]

use wharf_conformance::stores::StoreFactory;
use wharf_middleware::idempotency::IdempotencyKey;
use wharf_redis::{RedisStore, RedisStoreConfig};

struct Redis;

impl StoreFactory for Redis {
    type Store = RedisStore;

    fn name(&self) -> &str {
        "redis"
    }

    async fn store(&self) -> RedisStore {
        RedisStore::connect(
            "redis://127.0.0.1:6379/0?prefix=wharf-test"
                .parse()
                .unwrap(),
        )
        .await
        .unwrap()
    }
}

mod suite {
    use super::*;
    wharf_conformance::store_conformance_tests!(ignore = "needs redis", Redis);
}

/// `a:b` + `c` and `a` + `b:c` are different keys.
#[tokio::test]
#[ignore = "needs redis"]
async fn separators_in_names_never_merge_keys() {
    let store = Redis.store().await;
    let one = store.redis_key(&IdempotencyKey::new("a:b", "c"));
    let two = store.redis_key(&IdempotencyKey::new("a", "b:c"));
    assert_ne!(one, two);
}

/// A Redis that does not answer is a start-up error without the password.
#[tokio::test]
async fn unreachable_redis_fails_at_start_up_without_the_password() {
    let config: RedisStoreConfig = "redis://:hunter2-secret@127.0.0.1:1/0".parse().unwrap();
    let err = RedisStore::connect(config.with_timeout(std::time::Duration::from_secs(2)))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, wharf::Error::Connection(_)), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// Bad URLs and prefixes name the field.
#[test]
fn bad_configurations_name_the_field() {
    let err = "http://127.0.0.1"
        .parse::<RedisStoreConfig>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("`url`"), "{err}");
    let err = "redis://127.0.0.1/0?prefix="
        .parse::<RedisStoreConfig>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("`prefix`"), "{err}");
}
