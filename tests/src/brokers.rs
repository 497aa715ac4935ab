//! The test brokers `scripts/brokers.sh` installs and runs, reached from a test: run one
//! of the script's functions, and stop a broker a test started in a process group of its
//! own.

use std::process::{Command, Stdio};

/// `scripts/brokers.sh`, from this crate's directory.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/brokers.sh");

/// Runs `call` (one of the script's functions, with its arguments) in bash with the
/// script sourced; returns what it printed, trimmed. Its stderr goes to the test's.
///
/// # Panics
///
/// If bash cannot run or the function fails.
pub fn brokers_sh(call: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", &format!("source '{SCRIPT}' && {call}")])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running scripts/brokers.sh {call} failed: {e}"));
    assert!(
        out.status.success(),
        "scripts/brokers.sh {call} failed: {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Kills process group `pgid` (a broker a test started with `setsid`, and its children).
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status();
}
