//! What the TLS tests of every adapter share: a certificate authority and a server
//! certificate made by the test (`rcgen`), written as PEM files, and a free loopback port
//! for the test's own TLS broker.
//!
//! Each adapter's `tests/tls.rs` starts a broker of its own that requires TLS with
//! [`TestCertificates::cert`] and [`TestCertificates::key`], then checks two things: a
//! client trusting [`TestCertificates::ca`] connects and a message goes through; a client
//! trusting another CA (a second `TestCertificates`) fails at start-up with a clear
//! error, within its connection timeout, and never hangs.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA, and a certificate for `127.0.0.1` and `localhost` signed by it, as PEM files.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA's certificate (what a client trusts).
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key (PKCS#8, unencrypted).
    pub key: PathBuf,
    /// The server's certificate followed by its key, in one file (what Kafka's PEM
    /// key store reads).
    pub cert_and_key: PathBuf,
}

impl TestCertificates {
    /// Makes a new CA and server certificate and writes them to `dir` as
    /// `<name>-ca.pem`, `<name>-cert.pem`, `<name>-key.pem` and `<name>-cert-and-key.pem`.
    ///
    /// # Panics
    ///
    /// If a certificate cannot be made or a file cannot be written (a test helper).
    pub fn generate(dir: &Path, name: &str) -> TestCertificates {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: with rcgen's default name on both, OpenSSL (librdkafka) takes
        // the server's certificate for a self-signed one (issuer = subject).
        ca.distinguished_name
            .push(DnType::CommonName, format!("wharf test CA {name}"));
        let ca_cert = ca.self_signed(&ca_key).expect("a self-signed CA");
        let key = KeyPair::generate().expect("a server key");
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server parameters");
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server = server
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("a server certificate");
        let files = TestCertificates {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
            cert_and_key: dir.join(format!("{name}-cert-and-key.pem")),
        };
        let write = |path: &Path, text: String| {
            std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()))
        };
        write(&files.ca, ca_cert.pem());
        write(&files.cert, server.pem());
        write(&files.key, key.serialize_pem());
        write(
            &files.cert_and_key,
            format!("{}{}", key.serialize_pem(), server.pem()),
        );
        files
    }
}

/// A loopback port nothing listens on right now.
///
/// # Panics
///
/// If no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A directory of its own under the system's temporary directory for one test:
/// `wharf-<name>-<pid>`, emptied first.
///
/// # Panics
///
/// If it cannot be created.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wharf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Awaits `attempt`, a connection expected to be refused (the server's certificate is
/// from another CA), and checks it fails with [`wharf::Error::Connection`] within
/// `within`, never hanging (60 s at most). Returns the error's text.
///
/// # Panics
///
/// If the attempt succeeds, hangs, fails otherwise, or fails after `within`.
pub async fn refused_within<T>(
    attempt: impl Future<Output = Result<T, wharf::Error>>,
    within: Duration,
) -> String {
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), attempt)
        .await
        .expect("a certificate from another CA fails instead of hanging");
    let Err(err) = outcome else {
        panic!("a server certificate from another CA must be refused");
    };
    let text = err.to_string();
    let took = started.elapsed();
    eprintln!("refused after {took:?}: {text}");
    assert!(matches!(err, wharf::Error::Connection(_)), "{text}");
    assert!(
        took < within,
        "refused after {took:?}, not within {within:?}: {text}"
    );
    text
}
