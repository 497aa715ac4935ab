//! TLS for real: a nats-server of the test's own, on a free loopback port, with a
//! certificate the test generates (`rcgen`). A client that trusts the test's CA
//! (`tls=true&tls_ca_file=`) connects and a message goes through; a client that trusts
//! another CA fails at start-up with a clear error, within the connection timeout, and
//! never hangs.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wharf::Message;
use wharf_conformance::brokers::brokers_sh;
use wharf_conformance::tls::{free_port, refused_within, test_dir, TestCertificates};
use wharf_nats::{NatsClient, NatsConfig};

/// A nats-server requiring TLS with `cert`/`key`, killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(cert: &Path, key: &Path) -> TlsServer {
        let port = free_port();
        let child = Command::new(brokers_sh("nats_server_bin"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--tls"])
            .arg("--tlscert")
            .arg(cert)
            .arg("--tlskey")
            .arg(key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (scripts/brokers.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the TLS nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "needs nats"]
async fn tls_with_the_servers_ca_connects_and_another_ca_is_refused_at_once() {
    let dir = test_dir("nats-tls");
    let good = TestCertificates::generate(&dir, "good");
    let other = TestCertificates::generate(&dir, "other");
    let server = TlsServer::start(&good.cert, &good.key);

    // Trusting the server's CA: connected, and a message goes through.
    let url = format!(
        "nats://127.0.0.1:{}/tls.orders?tls=true&tls_ca_file={}",
        server.port,
        good.ca.display()
    );
    let nats = NatsClient::connect(url.parse::<NatsConfig>().unwrap())
        .await
        .expect("TLS with the server's CA connects");
    let mut sub = nats.client().subscribe("tls.orders").await.unwrap();
    nats.client().flush().await.unwrap();
    wharf::Publisher::publish(&nats.publisher(), "tls.orders", Message::new("over TLS"))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("the message arrived over TLS")
        .unwrap();
    assert_eq!(&got.payload[..], b"over TLS");

    // Trusting another CA: a clear start-up error, not a hang.
    let url = format!(
        "nats://127.0.0.1:{}/tls.orders?tls=true&tls_ca_file={}",
        server.port,
        other.ca.display()
    );
    refused_within(
        NatsClient::connect(url.parse::<NatsConfig>().unwrap()),
        Duration::from_secs(15),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
