//! TLS for real: a RabbitMQ node of the test's own (its own node name, data directory
//! and ports, beside the broker `scripts/brokers.sh` runs), listening only on `amqps`
//! with a certificate the test generates (`rcgen`). A client that trusts the test's CA
//! (`amqps://…?tls_ca_file=`) connects, publishes with confirms and consumes; a client
//! that trusts another CA fails at start-up with a clear error, within the connection
//! timeout, and never hangs.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wharf::adapter::Acker;
use wharf::{Message, Outcome, Publisher};
use wharf_conformance::brokers::{brokers_sh, kill_group};
use wharf_conformance::tls::{free_port, refused_within, test_dir, TestCertificates};
use wharf_rabbitmq::{RabbitClient, RabbitConfig};

/// A RabbitMQ node requiring TLS with `certs`' server certificate; its process group
/// (the start script and the Erlang VM) is killed on drop.
struct TlsNode {
    pid: u32,
    port: u16,
}

impl TlsNode {
    fn start(dir: &Path, certs: &TestCertificates) -> TlsNode {
        let port = free_port();
        let config = dir.join("rabbitmq.conf");
        std::fs::write(
            &config,
            format!(
                "listeners.tcp = none\n\
                 listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {ca}\n\
                 ssl_options.certfile = {cert}\n\
                 ssl_options.keyfile = {key}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                ca = certs.ca.display(),
                cert = certs.cert.display(),
                key = certs.key.display(),
            ),
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        // Started in the background by a shell, in a session of its own (as a service
        // would be), so the node is not a child of the test; the shell prints its pid,
        // which is also its process group's. (Spawned as the test's own child, the node
        // took every process of this sandbox down with it while booting, three times
        // out of three; started this way, never.)
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "setsid '{bin}' >'{out}' 2>&1 </dev/null & echo $!",
                bin = brokers_sh("rabbitmq_server_bin"),
                out = dir.join("stdout.log").display()
            ))
            // The Erlang cookie is made in $HOME: the test's directory, not root's.
            .env("HOME", dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("wharf-tls-{}@localhost", std::process::id()),
            )
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_CONFIG_FILE", &config)
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .stdin(Stdio::null())
            .output()
            .expect("bash runs");
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the shell printed the node's pid");
        let node = TlsNode { pid, port };
        let started = Instant::now();
        loop {
            let out = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
            if out.contains("Starting broker... completed") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the TLS RabbitMQ node did not start within 60 s:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        // The start script runs the Erlang VM as a child: kill the group.
        kill_group(self.pid);
    }
}

#[tokio::test]
#[ignore = "needs rabbitmq"]
async fn amqps_with_the_servers_ca_connects_and_another_ca_is_refused_at_once() {
    let dir = test_dir("rabbitmq-tls");
    let good = TestCertificates::generate(&dir, "good");
    let other = TestCertificates::generate(&dir, "other");
    let node = TlsNode::start(&dir, &good);

    // Trusting the server's CA: connected; a confirmed publish and a delivery go through.
    let url = format!(
        "amqps://guest:guest@127.0.0.1:{}/%2f?tls_ca_file={}&queue_type=classic",
        node.port,
        good.ca.display()
    );
    let rabbit = RabbitClient::connect(url.parse::<RabbitConfig>().unwrap())
        .await
        .expect("amqps with the server's CA connects");
    let mut subscriber = rabbit.subscriber("tls-orders", "g").await.unwrap();
    rabbit
        .publisher()
        .publish("tls-orders", Message::with_id("tls-1", "over TLS"))
        .await
        .expect("a confirmed publish over TLS");
    let delivery = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
        .await
        .expect("the message arrived over TLS")
        .unwrap()
        .unwrap();
    let (message, acker) = delivery.into_parts();
    assert_eq!(message.id().as_str(), "tls-1");
    assert_eq!(&message.payload()[..], b"over TLS");
    acker.settle(Outcome::Ack).await.unwrap();

    // Trusting another CA: a clear start-up error, not a hang.
    let url = format!(
        "amqps://guest:guest@127.0.0.1:{}/%2f?tls_ca_file={}&connect_timeout=10s",
        node.port,
        other.ca.display()
    );
    let text = refused_within(
        RabbitClient::connect(url.parse::<RabbitConfig>().unwrap()),
        Duration::from_secs(9),
    )
    .await;
    assert!(
        !text.contains("guest:guest"),
        "no credential in the error: {text}"
    );
    eprintln!("wrong CA: {text}");

    // A plain `amqp://` client on the TLS port: an error, not a hang.
    let url = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f?connect_timeout=5s",
        node.port
    );
    let plain = tokio::time::timeout(
        Duration::from_secs(30),
        RabbitClient::connect(url.parse::<RabbitConfig>().unwrap()),
    )
    .await
    .expect("plain AMQP on a TLS port fails instead of hanging");
    assert!(
        plain.is_err(),
        "plain AMQP must not connect to a TLS-only port"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tls_ca_file` is checked at start-up: with a plain `amqp://` URL, or naming a file that
/// does not exist or holds no certificate, the configuration fails naming the field.
#[test]
fn tls_ca_file_is_checked_at_start_up() {
    let dir = test_dir("rabbitmq-tls-config");
    let certs = TestCertificates::generate(&dir, "ca");
    let ok = format!("amqps://127.0.0.1/%2f?tls_ca_file={}", certs.ca.display());
    ok.parse::<RabbitConfig>().unwrap();

    let plain = format!("amqp://127.0.0.1/%2f?tls_ca_file={}", certs.ca.display());
    let missing = "amqps://127.0.0.1/%2f?tls_ca_file=/nonexistent/ca.pem".to_owned();
    let not_pem = format!(
        "amqps://127.0.0.1/%2f?tls_ca_file={}",
        dir.join("stdout.log").display()
    );
    std::fs::write(dir.join("stdout.log"), "not a certificate").unwrap();
    for url in [plain, missing, not_pem] {
        let err = url.parse::<RabbitConfig>().unwrap_err().to_string();
        assert!(err.contains("tls_ca_file"), "{url}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
