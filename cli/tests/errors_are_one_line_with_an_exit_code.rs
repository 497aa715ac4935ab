//! Every way `wharf` can fail before touching a dead letter: one line on stderr starting
//! with `wharf:`, the documented exit code, and never the URL's password. Needs no
//! broker (the unreachable one is a closed loopback port).

#![allow(clippy::unwrap_used)]

mod support;

use support::wharf;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn failures_name_the_cause_with_their_exit_code_and_no_secret() {
    let port = closed_port();
    let unreachable = format!("amqp://app:s3cret-pw@127.0.0.1:{port}/%2f");
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["dlq", "list", "bogus://app:s3cret-pw@host", "orders"],
            2,
            "unknown scheme",
        ),
        (
            &[
                "dlq",
                "list",
                "amqp://app:s3cret-pw@127.0.0.1/%2f",
                "orders",
            ],
            2,
            "--group",
        ),
        (
            &["dlq", "list", "memory://", "orders", "--since", "yesterday"],
            2,
            "--since",
        ),
        (
            &["dlq", "replay", "memory://", "orders", "--rate", "0"],
            2,
            "--rate",
        ),
        (
            &["dlq", "list", &unreachable, "orders", "--group", "g"],
            3,
            "connection failed",
        ),
    ];
    for (args, code, says) in cases {
        let (got, out, err) = wharf(args);
        assert!(out.is_empty(), "nothing on stdout when failing: {out}");
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.starts_with("wharf: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(says), "{args:?} names the cause: {err}");
        assert!(!err.contains("s3cret-pw"), "no password in errors: {err}");
    }
}

#[test]
fn an_unknown_id_and_an_empty_destination_on_memory() {
    // `memory://` is a new, empty broker of this process: no dead letter has any id.
    let (code, _, err) = wharf(&["dlq", "show", "memory://", "orders", "order-17"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("order-17"), "{err}");
}
