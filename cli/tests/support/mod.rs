//! Running the `wharf` binary from a test.
#![allow(dead_code, unreachable_pub)]

use std::process::Command;

/// Runs `wharf args`; returns (exit code, stdout, stderr).
///
/// # Panics
///
/// If the binary cannot be started.
pub fn wharf(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running wharf: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
