//! The chaos harness on every broker that promises at-least-once: 20,000 messages, the
//! consumer `SIGKILL`ed at 5 random points and restarted, then counted.
//!
//! - through the transactional inbox: no message missing, no effect twice;
//! - with plain writes: no message missing, duplicates within in-flight × kills.
//!
//! Each run prints its table row (kept in `docs/guarantees.md`) and its seed; a failing
//! run is repeated with `wharf-chaos run --broker <b> --seed <seed>`. The runs go one at
//! a time: two of them at once on a 2-core machine would measure the machine.

use std::process::Command;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn chaos(broker: &str, effects: &str) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let messages = std::env::var("WHARF_CHAOS_MESSAGES").unwrap_or_else(|_| "20000".into());
    let output = Command::new(env!("CARGO_BIN_EXE_wharf-chaos"))
        .args(["run", "--broker", broker, "--effects", effects])
        .args(["--messages", &messages, "--kills", "5"])
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{broker} ({effects} effects): {}\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
#[ignore = "needs rabbitmq and postgres"]
fn rabbitmq_survives_kill_nine() {
    chaos("rabbitmq", "inbox");
    chaos("rabbitmq", "plain");
}

#[test]
#[ignore = "needs kafka and postgres"]
fn kafka_survives_kill_nine() {
    chaos("kafka", "inbox");
    chaos("kafka", "plain");
}

#[test]
#[ignore = "needs nats and postgres"]
fn jetstream_survives_kill_nine() {
    chaos("jetstream", "inbox");
    chaos("jetstream", "plain");
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
