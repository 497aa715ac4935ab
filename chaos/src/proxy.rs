//! A TCP proxy on loopback whose connections the harness can cut at once.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Forwards every connection made to [`addr`](Proxy::addr) to the target;
/// [`cut`](Proxy::cut) drops them all (the peers see their connections reset), and new
/// connections are forwarded again right after.
#[derive(Debug)]
pub(crate) struct Proxy {
    addr: SocketAddr,
    connections: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `target` on a free loopback port.
    pub(crate) async fn start(target: SocketAddr) -> Result<Proxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding the proxy: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the proxy's address: {e}"))?;
        let connections: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let accept = tokio::spawn({
            let connections = connections.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let mut set = connections.lock().unwrap_or_else(|e| e.into_inner());
                    // Reap the finished ones so the set does not grow.
                    while set.try_join_next().is_some() {}
                    set.spawn(forward(client, target));
                }
            }
        });
        Ok(Proxy {
            addr,
            connections,
            accept,
        })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection; returns how many.
    pub(crate) fn cut(&self) -> usize {
        let mut set = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let n = set.len();
        set.abort_all();
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Copies bytes both ways until either side closes (or the task is aborted, which drops
/// both sockets).
async fn forward(mut client: TcpStream, target: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return; // the broker is down: the client sees its connection closed
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
