//! Redis killed (`SIGKILL`: a crash, not a shutdown) and started again while a consumer
//! runs with the idempotency layer on the store: the store's errors are transient, the
//! connection manager reconnects, nothing is lost, nothing takes effect twice
//! (`wharf_conformance::stores::restart_mid_stream`).
//!
//! The test runs a Redis server of its own (port 6391, a fresh directory) so the crash
//! disturbs no other test, with the persistence the store's promise needs: the
//! append-only file, fsynced on every write (`appendonly yes`, `appendfsync always`).
//! Without persistence a crash forgets every completion, and copies arriving after it
//! run again: see the crate's documentation.

#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wharf_conformance::stores::{restart_mid_stream, StoreFactory};
use wharf_redis::RedisStore;

const PORT: u16 = 6391;

/// The test's own Redis server.
struct Server {
    dir: PathBuf,
    child: Child,
}

impl Server {
    fn start(dir: &Path) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        Server {
            dir: dir.to_owned(),
            child: Self::spawn(dir),
        }
    }

    /// A server on `dir`, answering.
    fn spawn(dir: &Path) -> Child {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &PORT.to_string()])
            .args(["--dir", dir.to_str().unwrap()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/brokers.sh installs it)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "redis-server on port {PORT} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// `SIGKILL`, half a second down (so operations in flight fail, rather than the
    /// connection manager's reconnect hiding the crash), then a new server on the same
    /// files.
    fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        self.child = Self::spawn(&self.dir);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Redis;

impl StoreFactory for Redis {
    type Store = RedisStore;

    fn name(&self) -> &str {
        "redis"
    }

    async fn store(&self) -> RedisStore {
        RedisStore::connect(
            format!("redis://127.0.0.1:{PORT}/0?prefix=wharf-restart")
                .parse()
                .unwrap(),
        )
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis"]
async fn a_redis_crash_loses_nothing_and_duplicates_nothing() {
    let dir = std::env::temp_dir().join(format!("wharf-redis-restart-{}", std::process::id()));
    let server = Arc::new(Mutex::new(Server::start(&dir)));
    let restarted = server.clone();
    // Redis' connection manager may wait for the server instead of failing: the summary
    // may show no retry; what counts is that nothing was lost or done twice.
    let summary = restart_mid_stream(&Redis, move || {
        restarted.lock().unwrap().crash_and_restart();
    })
    .await;
    eprintln!("across the crash: {summary:?}");
    drop(server);
}
