//! wharf's metrics served to Prometheus while a consumer runs.
//!
//! The `metrics` crate's recorder is `metrics-exporter-prometheus`, listening on
//! `WHARF_METRICS_ADDR` (default `127.0.0.1:9464`); every layer of the recommended stack
//! and the runtime record into it. 200 orders go through a handler that refuses every
//! tenth for good (dead-lettered) and fails every seventh once (retried). Then the
//! example scrapes its own `/metrics` over HTTP, as Prometheus would (the status monitor's
//! `wharf_backlog` and `wharf_status{verdict}` among them), prints wharf's
//! series, and fails if any of them is missing. With `WHARF_METRICS_HOLD=60s` it keeps
//! serving that long afterwards, to point a Prometheus at it.
//!
//! ```sh
//! cargo run --example prometheus
//! WHARF_METRICS_HOLD=5m cargo run --example prometheus   # then: curl 127.0.0.1:9464/metrics
//! ```

use std::collections::HashSet;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf::status::StatusMonitor;
use wharf::{Consumer, Handler, HandlerError, Message};
use wharf_memory::MemoryBroker;
use wharf_middleware::retry::RetryPolicy;
use wharf_middleware::stack::RecommendedLayer;

/// The series the recommended stack, the runtime and the status monitor must have
/// recorded.
const EXPECTED: [&str; 8] = [
    "wharf_messages_received_total",
    "wharf_messages_handled_total",
    "wharf_handler_duration_seconds",
    "wharf_retries_total",
    "wharf_dead_letters_total",
    "wharf_messages_in_flight",
    "wharf_backlog",
    "wharf_status",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let addr: SocketAddr = std::env::var("WHARF_METRICS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:9464".into())
        .parse()?;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()?;

    let broker = MemoryBroker::new();
    for n in 0..200 {
        broker.publish(
            "orders",
            Message::with_id(format!("order-{n}"), n.to_string()),
        )?;
    }
    // Which orders already failed once (every seventh fails on its first attempt).
    let failed_once: Arc<Mutex<HashSet<String>>> = Arc::default();
    let handler = move |m: Message| {
        let failed_once = failed_once.clone();
        async move {
            let n: u32 = std::str::from_utf8(m.payload())?.parse()?;
            if n % 10 == 0 {
                return Err(HandlerError::permanent(format!(
                    "order {n}: unknown customer"
                )));
            }
            if n % 7 == 0
                && failed_once
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(m.id().to_string())
            {
                return Err(HandlerError::transient(format!(
                    "order {n}: inventory busy"
                )));
            }
            Ok(())
        }
    };
    let stack = RecommendedLayer::new(broker.clone())
        .retry(
            RetryPolicy::new()
                .max_attempts(3)
                .initial_delay(Duration::from_millis(10)),
        )
        .service(handler.into_service());
    let idle = {
        let broker = broker.clone();
        async move { broker.idle("orders", "billing").await }
    };
    let consumer = Consumer::new("billing", broker.subscribe("orders", "billing"), stack)
        .owner("team-billing");
    // The backlog verdict (ok, slow, stalled, stopped, failing), sampled while it runs.
    let status = StatusMonitor::new(broker.clone(), "orders", "billing")
        .progress(consumer.progress())
        .interval(Duration::from_millis(20))
        .spawn();
    let summary = consumer.run(idle).await?;
    println!("handled: {summary:?}");
    // Two more looks at the drained queue.
    tokio::time::sleep(Duration::from_millis(60)).await;
    if let Some(evaluation) = status.current() {
        println!("status: {} ({})", evaluation.verdict, evaluation.reason);
    }

    // Scrape ourselves, as Prometheus does.
    let body = scrape(addr).await?;
    let mut missing = Vec::new();
    for series in EXPECTED {
        let lines: Vec<&str> = body.lines().filter(|l| l.starts_with(series)).collect();
        if lines.is_empty() {
            missing.push(series);
        }
        for line in lines.iter().take(4) {
            println!("{line}");
        }
    }
    if !missing.is_empty() {
        return Err(format!("GET http://{addr}/metrics lacks {missing:?}").into());
    }
    println!("every wharf series is served at http://{addr}/metrics");

    if let Ok(hold) = std::env::var("WHARF_METRICS_HOLD") {
        let hold = humantime::parse_duration(&hold)?;
        println!("serving for {}", humantime::format_duration(hold));
        tokio::time::sleep(hold).await;
    }
    Ok(())
}

/// `GET /metrics` over a plain TCP connection (HTTP/1.0: the server closes when done);
/// returns the body.
async fn scrape(addr: SocketAddr) -> Result<String, Box<dyn Error>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("the metrics endpoint sent no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "the metrics endpoint answered {}",
            head.lines().next().unwrap_or("")
        )
        .into());
    }
    Ok(body.to_owned())
}
