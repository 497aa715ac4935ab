//! Network faults on loopback for the tests: a TCP [`Proxy`] between a client and its
//! broker that can cut every connection (the peers see them reset) or stall them (a
//! partition: the sockets stay open and nothing gets through, in either direction, until
//! [`Proxy::resume`]), and a [`Blackhole`] that accepts connections and never answers.
//!
//! A client reaches its broker through [`Proxy::addr`] only where the broker does not
//! hand out addresses of its own (RabbitMQ, a single nats-server); a Kafka client goes
//! to the advertised listeners after its first request, so a proxy in front of the
//! bootstrap address does not stay in the path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use wharf::{Message, PublishError, Publisher};

/// Forwards every connection made to [`addr`](Proxy::addr) to the target.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    connections: Arc<Mutex<JoinSet<()>>>,
    stalled: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `target` on a free loopback port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connections: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let (stalled, _) = watch::channel(false);
        let accept = tokio::spawn({
            let connections = connections.clone();
            let stalled = stalled.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let mut set = connections.lock().unwrap_or_else(|e| e.into_inner());
                    // Reap the finished ones so the set does not grow.
                    while set.try_join_next().is_some() {}
                    set.spawn(forward(client, target, stalled.subscribe()));
                }
            }
        });
        Ok(Proxy {
            addr,
            connections,
            stalled,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection (the peers see them reset); new connections are
    /// forwarded right after. Returns how many were open.
    pub fn cut(&self) -> usize {
        let mut set = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let n = set.len();
        set.abort_all();
        n
    }

    /// Stops passing bytes on every connection, open or new, in both directions, while
    /// keeping the sockets open: what a client sees of a hung broker or a network
    /// partition (no reset, no answer). What was read meanwhile is held, and delivered
    /// on [`resume`](Self::resume).
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Passes bytes again after [`stall`](Self::stall).
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Copies bytes both ways until either side closes (or the task is aborted, which drops
/// both sockets), holding them while the proxy is stalled.
async fn forward(client: TcpStream, target: SocketAddr, stalled: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return; // the broker is down: the client sees its connection closed
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, stalled.clone()) => {}
        () = pump(server_read, client_write, stalled) => {}
    }
}

/// Copies from `from` to `to`; each chunk read waits while the proxy is stalled.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut stalled: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|stalled| !stalled).await.is_err() {
            return; // the proxy is gone
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A listener that accepts every connection and never answers (it reads and drops what
/// it is sent): a port where something is listening but nothing serves.
#[derive(Debug)]
pub struct Blackhole {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    /// A blackhole on a free loopback port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn start() -> std::io::Result<Blackhole> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            let mut open = JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                open.spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                    let _ = socket.shutdown().await;
                });
            }
        });
        Ok(Blackhole { addr, accept })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Publishes `message` to `destination` and checks that it fails, handing the message
/// back, within `bound` (plus a margin for a loaded machine), instead of hanging: what a
/// publisher must do when its broker stops answering. Returns how long the failure took.
///
/// # Panics
///
/// If the publish succeeds, takes past 60 s, or fails after `bound` + 15 s.
pub async fn publish_fails_within<P: Publisher>(
    publisher: &P,
    destination: &str,
    message: Message,
    bound: Duration,
) -> Duration {
    let id = message.id().clone();
    let started = Instant::now();
    let published = tokio::time::timeout(
        Duration::from_secs(60),
        publisher.publish(destination, message),
    )
    .await
    .expect("a publish to a broker that stopped answering must not hang");
    let took = started.elapsed();
    let Err(error): Result<(), PublishError> = published else {
        panic!("nothing was confirmed: the publish must fail");
    };
    eprintln!("failed after {took:?}: {error}");
    assert!(
        took < bound + Duration::from_secs(15),
        "failed after {took:?}, past the {bound:?} bound"
    );
    assert_eq!(
        error.message().id(),
        &id,
        "the error hands the message back"
    );
    took
}

/// Publishes `message` to `destination` until it is confirmed, for at most 60 s: a
/// publisher recovering by itself once its broker answers again.
///
/// # Panics
///
/// If no publish is confirmed within 60 s.
pub async fn publish_recovers<P: Publisher>(publisher: &P, destination: &str, message: Message) {
    let started = Instant::now();
    while let Err(e) = publisher.publish(destination, message.clone()).await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "publishing did not recover: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
