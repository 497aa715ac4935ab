//! A replica killed (`SIGKILL`) while it holds a claim: its lease runs out and the other
//! replica takes the key over and completes it; the dead holder's claim never counts as
//! done.
//!
//! The test runs this same binary again as the child replica (`WHARF_CHILD_HOLDER=<key>`):
//! it claims the key through the store, says so on stdout, and hangs "mid-handler" until
//! it is killed.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wharf_middleware::idempotency::{Claim, IdempotencyKey, IdempotencyStore};
use wharf_postgres::PostgresStore;

const URL: &str = "postgres://postgres@127.0.0.1:5432/test?pool_size=2";
const LEASE: Duration = Duration::from_secs(2);

async fn store() -> PostgresStore {
    PostgresStore::connect(URL.parse().unwrap()).await.unwrap()
}

/// The child replica: claims, reports, hangs. Runs only when the parent starts it.
#[tokio::test]
#[ignore = "needs postgres"]
async fn child_holder() {
    let Ok(key) = std::env::var("WHARF_CHILD_HOLDER") else {
        return; // not started as the child: nothing to do
    };
    let store = store().await;
    let claim = store
        .claim(&IdempotencyKey::new("killed-holder", key), LEASE)
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Claimed(_)), "{claim:?}");
    println!("CLAIMED");
    tokio::time::sleep(Duration::from_secs(600)).await; // the handler that never returns
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn a_killed_holder_loses_its_lease_to_the_other_replica() {
    let key = format!("order-{}", std::process::id());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holder",
            "--include-ignored",
            "--nocapture",
        ])
        .env("WHARF_CHILD_HOLDER", &key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let claimed = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("CLAIMED"));
    assert!(claimed, "the child replica claimed the key");

    let store = store().await;
    let key = IdempotencyKey::new("killed-holder", key);
    assert_eq!(
        store.claim(&key, LEASE).await.unwrap(),
        Claim::InFlight,
        "the live holder keeps the key"
    );
    child.kill().unwrap(); // SIGKILL: no cleanup, no release
    child.wait().unwrap();
    let killed_at = Instant::now();
    // The other replica retries the in-flight key, as the idempotency layer does.
    let token = loop {
        match store.claim(&key, LEASE).await.unwrap() {
            Claim::Claimed(token) => break token,
            Claim::InFlight => {
                assert!(
                    killed_at.elapsed() < LEASE * 5,
                    "the dead holder's lease never ran out"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Claim::Completed => panic!("a killed holder's claim must never count as done"),
        }
    };
    store
        .complete(&key, token, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.claim(&key, LEASE).await.unwrap(), Claim::Completed);
}
