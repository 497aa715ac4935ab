//! The claim protocol every idempotency store keeps, checked the same way on each store.
//!
//! A store (the in-memory one, PostgreSQL, Redis) hands the suite a fresh instance through
//! a [`StoreFactory`]; [`store_conformance_tests!`](crate::store_conformance_tests) expands
//! into one `#[test]` per behaviour below. Every test uses its own consumer name
//! ([`unique_consumer`]), so tests run in parallel against one shared server. Leases and
//! retention windows are short (a few hundred milliseconds) and waits are real time:
//! durable stores keep their own clock (PostgreSQL's `now()`, Redis' `PX`).
//!
//! | test | behaviour |
//! |---|---|
//! | [`claim_complete_then_duplicate_skipped`] | a claim runs once; while it is held a second claim is `InFlight`; once completed a claim is `Completed` |
//! | [`release_lets_the_next_claim_run`] | a released claim can be claimed again, with a new token |
//! | [`expired_lease_lets_another_holder_take_over`] | a holder that outlives its lease loses the key to the next claim |
//! | [`stale_holder_cannot_touch_its_successors_claim`] | after a takeover, the old holder's `complete` and `release` change nothing (fencing by token) |
//! | [`late_completion_without_a_successor_is_recorded`] | a holder that completes after its lease ran out, with no successor, is still recorded: the work was done |
//! | [`retention_window_ends`] | a completion is remembered for its retention window, then the key can run again |
//! | [`consumers_never_collide`] | the same key under two consumers is two keys |
//! | [`concurrent_claims_have_one_winner`] | many holders claiming one key at once: exactly one gets it |
//! | [`replicas_run_each_effect_once`] | two replicas of a consumer (each on its own runtime and thread) sharing the store get copies of the same operations: each takes effect once, no two copies of one run at once |
//! | [`layer_runs_each_key_once`] | through the idempotency layer: two messages with one key run the handler once, both are acked |
//! | [`layer_handles_a_failed_key_again`] | through the layer: a failed attempt releases its claim, the redelivery runs |
//! | [`layer_hands_an_aborted_claim_back`] | through the layer: a handler dropped at the shutdown deadline releases its hour-long claim, the redelivery runs at once |
//!
//! [`restart_mid_stream`] (the store's server restarted under a consumer) is not in the
//! macro: each store runs it in a test binary of its own. [`DedupAsIdempotency`] runs the
//! suite on the deduplication layer's stores.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wharf_middleware::idempotency::{Claim, ClaimToken, IdempotencyKey, IdempotencyStore};

mod dedup;
mod layer;
mod replicas;
mod restart;

pub use dedup::DedupAsIdempotency;
pub use layer::{
    layer_handles_a_failed_key_again, layer_hands_an_aborted_claim_back, layer_runs_each_key_once,
};
pub use replicas::replicas_run_each_effect_once;
pub use restart::restart_mid_stream;

/// Creates the store under test.
pub trait StoreFactory: Send + Sync + 'static {
    /// The store.
    type Store: IdempotencyStore;

    /// A short name (`memory`, `postgres`, ...), used in messages.
    fn name(&self) -> &str;

    /// A store, connected and ready (schema created).
    fn store(&self) -> impl Future<Output = Self::Store> + Send;
}

/// A consumer name no other test uses, so tests share a server without colliding.
pub fn unique_consumer(test: &str) -> String {
    format!("{test}-{}", uuid::Uuid::new_v4().simple())
}

const LEASE: Duration = Duration::from_millis(400);
const LONG: Duration = Duration::from_secs(60);

async fn claim<S: IdempotencyStore>(store: &S, key: &IdempotencyKey, lease: Duration) -> Claim {
    store
        .claim(key, lease)
        .await
        .unwrap_or_else(|e| panic!("claiming {key}: {e}"))
}

async fn claimed<S: IdempotencyStore>(
    store: &S,
    key: &IdempotencyKey,
    lease: Duration,
) -> ClaimToken {
    match claim(store, key, lease).await {
        Claim::Claimed(token) => token,
        other => panic!("claiming {key}: expected Claimed, got {other:?}"),
    }
}

async fn complete<S: IdempotencyStore>(
    store: &S,
    key: &IdempotencyKey,
    token: ClaimToken,
    retention: Duration,
) {
    store
        .complete(key, token, retention)
        .await
        .unwrap_or_else(|e| panic!("completing {key}: {e}"));
}

async fn release<S: IdempotencyStore>(store: &S, key: &IdempotencyKey, token: ClaimToken) {
    store
        .release(key, token)
        .await
        .unwrap_or_else(|e| panic!("releasing {key}: {e}"));
}

/// Claim, duplicate while in flight, complete, duplicate after completion.
pub async fn claim_complete_then_duplicate_skipped<F: StoreFactory>(f: &F) {
    let store = f.store().await;
    let key = IdempotencyKey::new(unique_consumer("claim"), "order-1");
    let token = claimed(&store, &key, LONG).await;
    assert_eq!(
        claim(&store, &key, LONG).await,
        Claim::InFlight,
        "{}: a held key is in flight",
        f.name()
    );
    complete(&store, &key, token, LONG).await;
    assert_eq!(
        claim(&store, &key, LONG).await,
        Claim::Completed,
        "{}: a completed key is skipped",
        f.name()
    );
}

/// Release, then a new claim with a new token.
pub async fn release_lets_the_next_claim_run<F: StoreFactory>(f: &F) {
    let store = f.store().await;
    let key = IdempotencyKey::new(unique_consumer("release"), "order-1");
    let first = claimed(&store, &key, LONG).await;
    release(&store, &key, first).await;
    let second = claimed(&store, &key, LONG).await;
    assert_ne!(first, second, "{}: each claim gets its own token", f.name());
}

/// A lease that runs out frees the key.
pub async fn expired_lease_lets_another_holder_take_over<F: StoreFactory>(f: &F) {
    let store = f.store().await;
    let key = IdempotencyKey::new(unique_consumer("expiry"), "order-1");
    claimed(&store, &key, LEASE).await;
    assert_eq!(claim(&store, &key, LONG).await, Claim::InFlight);
    tokio::time::sleep(LEASE * 2).await;
    claimed(&store, &key, LONG).await;
}

/// Fencing: the old holder's complete and release are refused once another holds the key.
pub async fn stale_holder_cannot_touch_its_successors_claim<F: StoreFactory>(f: &F) {
    let store = f.store().await;
    let key = IdempotencyKey::new(unique_consumer("fencing"), "order-1");
    let stale = claimed(&store, &key, LEASE).await;
    tokio::time::sleep(LEASE * 2).await;
    let live = claimed(&store, &key, LONG).await;
    complete(&store, &key, stale, LONG).await;
    assert_eq!(
        claim(&store, &key, LONG).await,
        Claim::InFlight,
        "{}: a stale holder's complete must not end its successor's claim",
        f.name()
    );
    release(&store, &key, stale).await;
    assert_eq!(
        claim(&store, &key, LONG).await,
        Claim::InFlight,
        "{}: a stale holder's release must not free its successor's claim",
        f.name()
    );
    complete(&store, &key, live, LONG).await;
    assert_eq!(claim(&store, &key, LONG).await, Claim::Completed);
}

/// Completing after the lease ran out, nobody else holding the key: recorded.
pub async fn late_completion_without_a_successor_is_recorded<F: StoreFactory>(f: &F) {
    let store = f.store().await;
    let key = IdempotencyKey::new(unique_consumer("late"), "order-1");
    let token = claimed(&store, &key, LEASE).await;
    tokio::time::sleep(LEASE * 2).await;
    complete(&store, &key, token, LONG).await;
    assert_eq!(
        claim(&store, &key, LONG).await,
        Claim::Completed,
        "{}: work done after the lease ran out is still done",
        f.name()
    );
}

/// Completions are forgotten after their retention window.
pub async fn retention_window_ends<F: StoreFactory>(f: &F) {
    let store = f.store().await;
    let key = IdempotencyKey::new(unique_consumer("retention"), "order-1");
    let token = claimed(&store, &key, LONG).await;
    complete(&store, &key, token, LEASE).await;
    assert_eq!(claim(&store, &key, LONG).await, Claim::Completed);
    tokio::time::sleep(LEASE * 2).await;
    claimed(&store, &key, LONG).await;
}

/// One key, two consumers: independent.
pub async fn consumers_never_collide<F: StoreFactory>(f: &F) {
    let store = f.store().await;
    let billing = IdempotencyKey::new(unique_consumer("billing"), "order-1");
    let shipping = IdempotencyKey::new(unique_consumer("shipping"), "order-1");
    let token = claimed(&store, &billing, LONG).await;
    complete(&store, &billing, token, LONG).await;
    claimed(&store, &shipping, LONG).await;
}

/// 16 concurrent claims of one key: one `Claimed`, the rest `InFlight`.
pub async fn concurrent_claims_have_one_winner<F: StoreFactory>(f: &F) {
    let store = Arc::new(f.store().await);
    let key = IdempotencyKey::new(unique_consumer("race"), "order-1");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.claim(&key, LONG).await })
        })
        .collect();
    let mut winners = HashSet::new();
    let mut in_flight = 0;
    for task in tasks {
        match task
            .await
            .expect("the claim task ran")
            .expect("the claim succeeded")
        {
            Claim::Claimed(token) => {
                winners.insert(token);
            }
            Claim::InFlight => in_flight += 1,
            Claim::Completed => panic!("{}: nothing completed the key", f.name()),
        }
    }
    assert_eq!(
        (winners.len(), in_flight),
        (1, 15),
        "{}: exactly one of 16 concurrent claims wins",
        f.name()
    );
}
