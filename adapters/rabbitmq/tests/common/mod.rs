//! What the broker tests share: the local broker's URL, unique names, restarting it.

#![allow(dead_code, unreachable_pub)]

use std::process::Stdio;
use std::time::Duration;

use wharf_rabbitmq::RabbitConfig;

/// The local broker (override with `WHARF_RABBITMQ_URL`).
pub fn url() -> String {
    std::env::var("WHARF_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The base configuration of the tests: short retry tiers, and queues that expire
/// three minutes after their last use, so repeated runs do not pile up quorum queues
/// (which slow the broker's restarts).
pub fn base() -> RabbitConfig {
    RabbitConfig::from_url(&url())
        .expect("the test URL parses")
        .retry_tiers([
            Duration::from_millis(100),
            Duration::from_millis(300),
            Duration::from_secs(1),
        ])
        .queue_expires(Duration::from_secs(180))
        .connect_timeout(Duration::from_secs(30))
}

/// A queue name unique to one test run.
pub fn unique(name: &str) -> String {
    format!(
        "wharf-rabbit-{name}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Runs `rabbitmqctl <args>`, failing loudly.
pub async fn rabbitmqctl(args: &[&str]) {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("running `rabbitmqctl {}` failed: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`rabbitmqctl {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until 127.0.0.1:5672 accepts connections.
pub async fn wait_for_port() {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect("127.0.0.1:5672")
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("RabbitMQ is not answering on 127.0.0.1:5672");
}

/// Runs `rabbitmqctl <args>`; returns whether it succeeded (with its output on failure).
pub async fn try_rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running `rabbitmqctl {}` failed: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`rabbitmqctl {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Restarts the RabbitMQ application (`stop_app`, `start_app`) and waits until it
/// accepts connections again. `start_app` is retried: a broker is never left stopped.
pub async fn restart_broker() {
    if let Err(e) = try_rabbitmqctl(&["stop_app"]).await {
        eprintln!("{e} (starting it anyway)");
    }
    let mut last = String::new();
    for _ in 0..30 {
        match try_rabbitmqctl(&["start_app"]).await {
            Ok(()) => {
                rabbitmqctl(&["await_startup"]).await;
                wait_for_port().await;
                return;
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("RabbitMQ did not start again: {last}");
}
