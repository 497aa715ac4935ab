//! `wharf-bench`: drains the same backlog with the broker's plain at-least-once loop,
//! with wharf and a bare stack, and with wharf and the recommended stack, alternating
//! the three in every round so drift hits them alike, and prints msgs/s with the ratios.
//!
//! Run with `cargo run --release -p wharf-bench -- --broker memory` (or `nats`:
//! JetStream on 127.0.0.1:4222; `nats-core`: Core NATS there; `rabbitmq` on 127.0.0.1:5672; `kafka`: Apache Kafka on
//! 127.0.0.1:9092) (`--messages 200000 --size 256 --rounds 5 --in-flight 256`).
//! `--broker kafka --scenario key-parallel` compares wharf's key lanes with
//! partition-serial processing for a handler that awaits 1 ms; `--scenario backlog-rss`
//! (memory, nats) reports the peak resident set while draining the backlog.

mod drain;
mod kafka;
mod memory;
mod nats;
mod nats_core;
mod rabbitmq;
mod report;
mod rss;
mod stores;

use std::process::ExitCode;
use std::time::Duration;

/// What one run drains.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) messages: usize,
    pub(crate) size: usize,
    pub(crate) rounds: usize,
    pub(crate) in_flight: usize,
    /// Only these variants run (all three unless `--variant` narrows it: for profiling
    /// one of them).
    pub(crate) variants: Vec<Variant>,
}

/// The three ways of draining a backlog, in the order each round runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// The broker client's own at-least-once loop.
    Raw,
    /// wharf with only the handler.
    Bare,
    /// wharf with the recommended stack.
    Recommended,
    /// wharf with the recommended stack and the idempotency layer on this store, keyed
    /// by message id (the `stores` scenario).
    Idempotent(stores::StoreKind),
}

impl Variant {
    pub(crate) const ALL: [Variant; 3] = [Variant::Raw, Variant::Bare, Variant::Recommended];

    fn parse(name: &str) -> Option<Variant> {
        match name {
            "plain" | "raw" => Some(Variant::Raw),
            "bare" => Some(Variant::Bare),
            "recommended" => Some(Variant::Recommended),
            _ => None,
        }
    }

    /// A number for names that must differ per variant (streams, queues, topics).
    pub(crate) fn tag(self) -> u8 {
        match self {
            Variant::Raw => 0,
            Variant::Bare => 1,
            Variant::Recommended => 2,
            Variant::Idempotent(store) => 3 + store as u8,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Variant::Raw => "plain client",
            Variant::Bare => "wharf, bare stack",
            Variant::Recommended => "wharf, recommended stack",
            Variant::Idempotent(store) => store.label(),
        }
    }
}

fn usage() -> &'static str {
    "usage: wharf-bench --broker memory|nats|nats-core|rabbitmq|kafka|stores [--scenario throughput|stores|key-parallel|backlog-rss|claims] [--messages N] [--size BYTES] [--rounds N] [--in-flight N] [--variant plain|bare|recommended]"
}

fn parse() -> Result<(String, String, Settings), String> {
    let mut broker = None;
    let mut scenario = "throughput".to_owned();
    let mut s = Settings {
        messages: 200_000,
        size: 256,
        rounds: 5,
        in_flight: 256,
        variants: Variant::ALL.to_vec(),
    };
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("`{flag}` needs a value\n{}", usage()))
        };
        let number = |v: String, field: &str| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{field}` must be a positive integer, got `{v}`"))
        };
        match flag.as_str() {
            "--broker" => broker = Some(value()?),
            "--scenario" => scenario = value()?,
            "--messages" => s.messages = number(value()?, "--messages")?,
            "--size" => s.size = number(value()?, "--size")?,
            "--rounds" => s.rounds = number(value()?, "--rounds")?,
            "--in-flight" => s.in_flight = number(value()?, "--in-flight")?,
            "--variant" => {
                let v = value()?;
                only.push(Variant::parse(&v).ok_or_else(|| {
                    format!("`--variant` must be plain, bare or recommended, got `{v}`")
                })?);
            }
            "--help" | "-h" => return Err(usage().to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{}", usage())),
        }
    }
    let broker = broker.ok_or_else(|| format!("`--broker` is required\n{}", usage()))?;
    if !only.is_empty() {
        s.variants = only;
    }
    Ok((broker, scenario, s))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (broker, scenario, mut settings) = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match (broker.as_str(), scenario.as_str()) {
        (_, "throughput") => {}
        ("memory" | "nats" | "jetstream" | "rabbitmq", "stores") => {
            // The recommended stack with the idempotency layer on each store, side by side.
            settings.variants = stores::StoreKind::ALL.map(Variant::Idempotent).to_vec();
        }
        ("kafka", "key-parallel") => {
            kafka::key_parallel(&settings).await;
            return ExitCode::SUCCESS;
        }
        ("stores", "claims") => {
            stores::claims(&settings).await;
            return ExitCode::SUCCESS;
        }
        ("memory", "backlog-rss") => {
            rss::memory(&settings).await;
            return ExitCode::SUCCESS;
        }
        ("nats" | "jetstream", "backlog-rss") => {
            rss::nats(&settings).await;
            return ExitCode::SUCCESS;
        }
        (_, other) => {
            eprintln!(
                "unknown scenario `{other}` for `{broker}` (throughput; stores on memory, nats, rabbitmq; key-parallel on kafka)"
            );
            return ExitCode::from(2);
        }
    }
    let results = match broker.as_str() {
        "memory" => drain::rounds(&settings, |v, _| memory::drain(v, &settings)).await,
        "nats" | "jetstream" => drain::rounds(&settings, |v, r| nats::drain(v, &settings, r)).await,
        "nats-core" => drain::rounds(&settings, |v, r| nats_core::drain(v, &settings, r)).await,
        "rabbitmq" => drain::rounds(&settings, |v, r| rabbitmq::drain(v, &settings, r)).await,
        "kafka" => drain::rounds(&settings, |v, r| kafka::drain(v, &settings, r)).await,
        other => {
            eprintln!("unknown broker `{other}` (built: memory, nats, nats-core, rabbitmq, kafka)");
            return ExitCode::from(2);
        }
    };
    report::print(&broker, &settings, &results);
    if broker == "kafka" {
        kafka::perf_tool(&settings).await;
    }
    ExitCode::SUCCESS
}

/// One timed drain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) variant: Variant,
    pub(crate) elapsed: Duration,
    pub(crate) messages: usize,
}
