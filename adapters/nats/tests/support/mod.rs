//! Shared by the broker tests: connecting, restarting nats-server safely, cleanup.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpStream;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use wharf_nats::{NatsClient, NatsConfig};

pub const URL: &str = "nats://127.0.0.1:4222";
const ADDR: &str = "127.0.0.1:4222";

/// Connects to the local server.
pub async fn connect(config: NatsConfig) -> NatsClient {
    NatsClient::connect(config.server(URL))
        .await
        .unwrap_or_else(|e| panic!("connecting to nats-server at {URL} failed: {e}"))
}

// ===== restarting the server without disturbing other tests =====
//
// Tests in one binary run in parallel against one server. A test that restarts it takes
// the server for itself: new tests wait until the restart is done, and the restart waits
// until every running test is either finished or itself waiting to restart.

#[derive(Default)]
struct Gate {
    active: usize,
    restarting: usize,
    generation: u64,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    active: 0,
    restarting: 0,
    generation: 0,
});
static CHANGED: Condvar = Condvar::new();

/// Held by each test for its duration.
#[derive(Debug)]
pub struct Ticket(());

impl Ticket {
    /// Waits (off the runtime's threads) while a restart is pending, then counts in.
    pub async fn take() -> Ticket {
        tokio::task::spawn_blocking(|| {
            let mut g = GATE.lock().unwrap_or_else(|e| e.into_inner());
            while g.restarting > 0 {
                g = CHANGED.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            g.active += 1;
        })
        .await
        .expect("the gate task panicked");
        Ticket(())
    }

    /// Restarts nats-server once every other running test is done or also restarting.
    pub async fn restart_broker(&self) {
        tokio::task::spawn_blocking(|| {
            let mut g = GATE.lock().unwrap_or_else(|e| e.into_inner());
            g.restarting += 1;
            let generation = g.generation;
            CHANGED.notify_all();
            loop {
                if g.generation != generation {
                    break; // another waiting test restarted it for everyone
                }
                if g.active == g.restarting {
                    restart_nats_server();
                    g.generation += 1;
                    CHANGED.notify_all();
                    break;
                }
                g = CHANGED.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            g.restarting -= 1;
            CHANGED.notify_all();
        })
        .await
        .expect("the restart task panicked");
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut g = GATE.lock().unwrap_or_else(|e| e.into_inner());
        g.active -= 1;
        CHANGED.notify_all();
    }
}

fn port_open() -> bool {
    TcpStream::connect_timeout(
        &ADDR.parse().expect("valid address"),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Runs one of `scripts/brokers.sh`'s functions (the same nats-server, flags and store
/// directory as the test script starts).
fn brokers_sh(function: &str) {
    wharf_conformance::brokers::brokers_sh(function);
    assert!(port_open(), "nats-server does not answer on {ADDR}");
}

/// Starts nats-server as `scripts/brokers.sh` does, if it is not answering.
pub fn ensure_nats_server() {
    if port_open() {
        return;
    }
    brokers_sh("ensure_nats");
}

/// Stops nats-server, waits until the port is closed, starts it again, waits for it.
pub fn restart_nats_server() {
    brokers_sh("restart_nats");
}

/// Makes sure nats-server runs again when dropped (even when the test fails).
#[derive(Debug)]
pub struct ServerGuard;

impl Drop for ServerGuard {
    fn drop(&mut self) {
        ensure_nats_server();
    }
}

/// Deletes conformance and test streams older than ten minutes (left behind by earlier
/// runs: the suite has no teardown hook). Best effort.
pub async fn remove_stale_streams(nats: &NatsClient) {
    use futures_util::StreamExt;
    let js = nats.jetstream();
    let mut names = js.streams();
    let mut stale = Vec::new();
    let cutoff = std::time::SystemTime::now() - Duration::from_secs(600);
    while let Some(Ok(info)) = names.next().await {
        let created: std::time::SystemTime = info.created.into();
        if (info.config.name.starts_with("wharf-conf-")
            || info.config.name.starts_with("wharf-test-"))
            && created < cutoff
        {
            stale.push(info.config.name.clone());
        }
    }
    for name in stale {
        let _ = nats.delete_stream(&name).await;
    }
}

/// A name unique to this test run: `wharf-test-<what>-<random>`.
pub fn unique(what: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("wharf-test-{what}-{}", &random[..12])
}
