//! `wharf`, the operator's tool: review, replay and purge dead letters, the same way on
//! every broker wharf runs on.
//!
//! ```text
//! cargo install --path cli
//! wharf dlq list   amqp://guest:guest@127.0.0.1:5672/%2f orders --group billing
//! wharf dlq stats  kafka://127.0.0.1:9092 orders
//! wharf dlq show   nats+jetstream://127.0.0.1:4222/ORDERS ORDERS order-17
//! wharf dlq replay kafka://127.0.0.1:9092 orders --reason permanent --since 2h --dry-run
//! wharf dlq replay kafka://127.0.0.1:9092 orders --reason permanent --since 2h --rate 50
//! wharf dlq purge  kafka://127.0.0.1:9092 orders --reason decode --yes
//! wharf status     kafka://127.0.0.1:9092 orders --group billing --window 1m
//! ```
//!
//! Every command reads the dead letters through the adapter's
//! [`DeadLetterReader`](wharf::adapter::DeadLetterReader) (the destination is the one
//! the consumer dead-letters to: `--group` matters on RabbitMQ, which keeps one per
//! group; `--destination` names it outright). Filters: `--reason`, `--consumer`,
//! `--since`, `--until` (an RFC 3339 time or a duration ago), `--key`.
//!
//! `replay` republishes each dead letter to its source (or `--to`) with its id and key,
//! its attempt count reset, `wharf-replayed-at` and `wharf-replay-count` added, and
//! removes it only once the broker confirmed the republish; see [`replay`] for what that
//! guarantees after a crash and for the loop guard (`--max-replays`).
//!
//! `wharf status <url> <source> --group <group>` watches the group's backlog for a
//! window (`--window 30s`, a look every `--interval 5s`) and prints the verdict per
//! partition and for the group (`ok`, `slow`, `stalled`, `stopped`, `failing`; the
//! rules are in [`wharf::status`]); see [`status`].
//!
//! `wharf catalog a.json b.json` merges the consumer catalogs services export
//! ([`App::catalog_json`](wharf::App::catalog_json)) into one table: see [`catalog`].
//!
//! Exit codes are in [`exit`]. Errors are one line on stderr and never show the URL or
//! a password.

pub mod args;
pub mod catalog;
pub mod commands;
pub mod exit;
pub mod filter;
pub mod letter;
pub mod replay;
pub mod stats;
pub mod status;
pub mod table;
