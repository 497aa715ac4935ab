//! `--broker stores --scenario claims`: what one message costs in each idempotency store.
//!
//! Each store runs `messages` operations of the idempotency layer's protocol for a
//! handled message (claim a fresh key, then complete it), `in_flight` at once, in
//! rounds that alternate the stores so a slow moment of the machine hits all of them.
//! Reported as operations (claim + complete) per second, median of the rounds, and the
//! ratio to the in-memory store.
//!
//! `--broker memory|nats|rabbitmq --scenario stores`: the recommended stack with the
//! idempotency layer on each store ([`StoreKind`]), draining the broker's backlog, side by
//! side in one run (the drains live with each broker; this module opens the stores).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use wharf_middleware::idempotency::{
    Claim, IdempotencyKey, IdempotencyStore, MemoryIdempotencyStore,
};

use crate::Settings;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test?table=wharf_bench_claims";
const REDIS: &str = "redis://127.0.0.1:6379/0?prefix=wharf-bench";

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    panic!("{what} failed: {e} (are PostgreSQL and Redis running? scripts/brokers.sh starts them)")
}

/// One round: `messages` claim+complete pairs on fresh keys, `in_flight` at once.
async fn round(store: Arc<dyn IdempotencyStore>, settings: &Settings, round: usize) -> Duration {
    let consumer: Arc<str> = format!("bench-{}-{round}", std::process::id()).into();
    let started = Instant::now();
    stream::iter(0..settings.messages)
        .for_each_concurrent(settings.in_flight, |i| {
            let (store, consumer) = (store.clone(), consumer.clone());
            async move {
                let key = IdempotencyKey::new(consumer, i.to_string());
                let Claim::Claimed(token) = store
                    .claim(&key, Duration::from_secs(60))
                    .await
                    .unwrap_or_else(|e| fail("claiming", e))
                else {
                    fail("claiming", "a fresh key was not claimable")
                };
                store
                    // Retention 1 ms: the same work for the store, and the rows expire, so the
                    // cleanup below leaves no table growing run after run.
                    .complete(&key, token, Duration::from_millis(1))
                    .await
                    .unwrap_or_else(|e| fail("completing", e));
            }
        })
        .await;
    started.elapsed()
}

/// The idempotency stores the `stores` scenario compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    Memory,
    Postgres,
    Redis,
}

impl StoreKind {
    pub(crate) const ALL: [StoreKind; 3] =
        [StoreKind::Memory, StoreKind::Postgres, StoreKind::Redis];

    /// The store's short name (`claims` scenario rows).
    fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Postgres => "postgres",
            StoreKind::Redis => "redis",
        }
    }

    /// The `stores` scenario's row label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            StoreKind::Memory => "recommended + memory",
            StoreKind::Postgres => "recommended + PostgreSQL",
            StoreKind::Redis => "recommended + Redis",
        }
    }
}

/// The PostgreSQL store: a pool of `in_flight` connections, at most 32.
async fn postgres(in_flight: usize) -> wharf_postgres::PostgresStore {
    // `WHARF_BENCH_POSTGRES_URL` replaces the URL (to try server options, say).
    let url = std::env::var("WHARF_BENCH_POSTGRES_URL").unwrap_or_else(|_| POSTGRES.to_owned());
    wharf_postgres::PostgresStore::connect(
        format!("{url}&pool_size={}", in_flight.min(32))
            .parse()
            .unwrap_or_else(|e| fail("the PostgreSQL URL", e)),
    )
    .await
    .unwrap_or_else(|e| fail("connecting to PostgreSQL", e))
}

async fn redis() -> wharf_redis::RedisStore {
    wharf_redis::RedisStore::connect(REDIS.parse().unwrap_or_else(|e| fail("the Redis URL", e)))
        .await
        .unwrap_or_else(|e| fail("connecting to Redis", e))
}

/// A connected store, and what tidies up after it.
pub(crate) struct BenchStore {
    pub(crate) store: Arc<dyn IdempotencyStore>,
    postgres: Option<wharf_postgres::PostgresStore>,
}

impl BenchStore {
    /// A connected store of `kind`.
    pub(crate) async fn open(kind: StoreKind, in_flight: usize) -> Self {
        let (store, postgres): (Arc<dyn IdempotencyStore>, _) = match kind {
            StoreKind::Memory => (Arc::new(MemoryIdempotencyStore::default()), None),
            StoreKind::Postgres => {
                let postgres = postgres(in_flight).await;
                (Arc::new(postgres.clone()), Some(postgres))
            }
            StoreKind::Redis => (Arc::new(redis().await), None),
        };
        BenchStore { store, postgres }
    }

    /// Removes what the run left behind.
    pub(crate) async fn tidy(&self) {
        if let Some(postgres) = &self.postgres {
            tidy_postgres(postgres).await;
        }
    }
}

/// Deletes the rows the bench's completions left (they expire at once), so the table does
/// not grow run after run.
async fn tidy_postgres(store: &wharf_postgres::PostgresStore) {
    while store
        .cleanup_expired(10_000)
        .await
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
}

/// Runs the `claims` scenario and prints the table.
pub(crate) async fn claims(settings: &Settings) {
    let mut stores = Vec::new();
    for kind in StoreKind::ALL {
        stores.push((
            kind.name(),
            BenchStore::open(kind, settings.in_flight).await,
        ));
    }
    println!(
        "stores: {} claim+complete per round, {} rounds, {} in flight",
        settings.messages, settings.rounds, settings.in_flight
    );
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); stores.len()];
    for r in 0..settings.rounds {
        for (i, (_, bench)) in stores.iter().enumerate() {
            let took = round(bench.store.clone(), settings, r).await;
            rates[i].push(settings.messages as f64 / took.as_secs_f64());
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&rates[0]);
    for ((name, _), rates) in stores.iter().zip(&rates) {
        let m = median(rates);
        let rounds: Vec<String> = rates
            .iter()
            .map(|r| format!("{:.0}k", r / 1000.0))
            .collect();
        println!(
            "  {name:<10} {m:>10.0} ops/s (median)   {:>7.1} µs/op   ratio to memory {:.4}   rounds: {}",
            1e6 / m,
            m / base,
            rounds.join(" ")
        );
    }
    for (_, bench) in &stores {
        bench.tidy().await;
    }
}
