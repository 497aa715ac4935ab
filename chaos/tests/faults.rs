//! The chaos harness on every broker that promises at-least-once, 10,000 messages a run
//! in CI (`WHARF_CHAOS_MESSAGES=20000` for the runs `docs/guarantees.md` records; the
//! strikes are the same, the run shorter), each run striking at random points:
//!
//! | run | strikes | effects | must hold |
//! |---|---|---|---|
//! | kill -9 | 5 × `SIGKILL` of the consumer, restarted | inbox | 0 missing, 0 duplicates |
//! | kill -9 | 5 × `SIGKILL` | plain writes | 0 missing, duplicates within what each kill may replay |
//! | SIGTERM | 5 × `SIGTERM` with 256 in flight (20 ms handlers), restarted | plain writes | 0 missing, 0 duplicates: a graceful stop settles everything it handled |
//! | connections cut | 5 × every connection dropped (TCP proxy); not Kafka | plain writes | 0 missing, duplicates within the in-flight window |
//! | broker restart | 3 × the broker restarted under the consumer | inbox | 0 missing, 0 duplicates |
//!
//! and in every run: no dead letter (nothing failed), per-key order on Kafka. Each run
//! prints its table row (kept in `docs/guarantees.md`) and its seed; a failing run is
//! repeated with `wharf-chaos run --broker <b> --fault <f> --seed <seed>`. The runs go
//! one at a time: two at once on a 2-core machine would measure the machine.

use std::process::Command;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn chaos(broker: &str, fault: &str, effects: &str, extra: &[&str]) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let messages = std::env::var("WHARF_CHAOS_MESSAGES").unwrap_or_else(|_| "10000".into());
    let strikes = if fault == "restart" { "3" } else { "5" };
    let output = Command::new(env!("CARGO_BIN_EXE_wharf-chaos"))
        .args([
            "run",
            "--broker",
            broker,
            "--fault",
            fault,
            "--effects",
            effects,
        ])
        .args(["--messages", &messages, "--kills", strikes])
        .args(extra)
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{broker}, {fault}, {effects} effects: {}\n{stdout}\n{stderr}",
        output.status
    );
}

/// Hundreds in flight when `SIGTERM` comes.
const BUSY: &[&str] = &["--in-flight", "256", "--work-us", "20000"];

#[test]
#[ignore = "needs rabbitmq and postgres"]
fn rabbitmq_under_faults() {
    chaos("rabbitmq", "kill", "inbox", &[]);
    chaos("rabbitmq", "kill", "plain", &[]);
    chaos("rabbitmq", "term", "plain", BUSY);
    chaos("rabbitmq", "cut", "plain", &[]);
    chaos("rabbitmq", "restart", "inbox", &[]);
}

#[test]
#[ignore = "needs kafka and postgres"]
fn kafka_under_faults() {
    chaos("kafka", "kill", "inbox", &[]);
    chaos("kafka", "kill", "plain", &[]);
    chaos("kafka", "term", "plain", BUSY);
    chaos("kafka", "restart", "inbox", &[]);
}

#[test]
#[ignore = "needs nats and postgres"]
fn jetstream_under_faults() {
    chaos("jetstream", "kill", "inbox", &[]);
    chaos("jetstream", "kill", "plain", &[]);
    chaos("jetstream", "term", "plain", BUSY);
    chaos("jetstream", "cut", "plain", &[]);
    chaos("jetstream", "restart", "inbox", &[]);
}

/// NATS Core is at-most-once: the harness refuses it with the reason, rather than
/// proving a promise the broker does not make.
#[test]
fn nats_core_is_refused_with_the_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_wharf-chaos"))
        .args(["run", "--broker", "nats"])
        .output()
        .expect("the harness runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at-most-once"), "{stderr}");
}

/// Cutting connections needs the client behind the proxy, which Kafka's clients leave
/// after bootstrap: refused with the reason.
#[test]
fn cut_on_kafka_is_refused_with_the_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_wharf-chaos"))
        .args(["run", "--broker", "kafka", "--fault", "cut"])
        .output()
        .expect("the harness runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("advertised listeners"), "{stderr}");
}
