//! `wharf-chaos`: proves wharf's delivery promise under `SIGKILL` on a real broker.
//!
//! ```text
//! wharf-chaos run --broker rabbitmq|kafka|jetstream [--fault kill|term|cut|restart]
//!                 [--messages N] [--kills K] [--effects inbox|plain] [--in-flight N]
//!                 [--work-us N] [--seed S]
//! wharf-chaos consume ...   (the child the harness starts, kills and restarts)
//! ```
//!
//! `run` publishes N messages with unique ids and keys (64 keys, each key's messages in
//! order), starts this binary again as a consumer child (`consume`), strikes at K random
//! points of progress, waits until every message took effect, stops the last child with
//! `SIGTERM`, and counts the effects the children wrote into PostgreSQL and the dead
//! letters the broker holds. The strike (`--fault`, see [`faults::Fault`]): `kill`
//! (`SIGKILL` the child and start another, the default), `term` (`SIGTERM`, wait for the
//! graceful stop, start another), `cut` (drop the child's connections through a TCP proxy)
//! or `restart` (restart the broker). The effects:
//!
//! - `--effects inbox` (default): the handler writes through the transactional inbox
//!   (`wharf_postgres::Inbox`), so an effect and the message id commit together: zero
//!   missing and zero duplicates are required;
//! - `--effects plain`: the handler writes with its own statement, outside any store:
//!   zero missing is required, and duplicates are counted and must stay within what each
//!   strike may replay ([`faults::Fault`] says how much; none for `term`).
//!
//! No run may leave a dead letter (nothing failed). It prints one table row (broker,
//! fault, effects, messages, strikes, effect rows, missing, duplicates, from a
//! redelivery, per-key order breaks, dead letters, time) and exits 1 when a promise
//! broke. `tests/kill_nine.rs` runs it on every broker in CI; `docs/guarantees.md` keeps
//! the table.

mod brokers;
mod consume;
mod effects;
mod faults;
mod harness;

use std::process::ExitCode;

/// Where the children write their effects.
pub(crate) const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("run") => match harness::Settings::parse(&args[1..]) {
            Ok(settings) => harness::run(settings).await,
            Err(usage) => return bad_usage(&usage),
        },
        Some("consume") => match consume::Settings::parse(&args[1..]) {
            Ok(settings) => consume::run(settings).await,
            Err(usage) => return bad_usage(&usage),
        },
        _ => return bad_usage(USAGE),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wharf-chaos: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit code 2, with the reason.
fn bad_usage(why: &str) -> ExitCode {
    eprintln!("{why}");
    ExitCode::from(2)
}

const USAGE: &str = "usage: wharf-chaos run --broker rabbitmq|kafka|jetstream [--fault kill|term|cut|restart] [--messages N] [--kills K] [--effects inbox|plain] [--in-flight N] [--work-us N] [--seed S]";

/// The value after flag `args[i]`.
pub(crate) fn value(args: &[String], i: usize) -> Result<&str, String> {
    args.get(i + 1)
        .map(String::as_str)
        .ok_or_else(|| format!("`{}` needs a value\n{USAGE}", args[i]))
}

/// A positive number for flag `field`.
pub(crate) fn number(v: &str, field: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{field}` must be a positive integer, got `{v}`"))
}

/// How the handler records its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effects {
    /// Through the transactional inbox: exactly once.
    Inbox,
    /// A plain insert outside any store: at least once.
    Plain,
}

impl Effects {
    pub(crate) fn parse(v: &str) -> Result<Effects, String> {
        match v {
            "inbox" => Ok(Effects::Inbox),
            "plain" => Ok(Effects::Plain),
            other => Err(format!("`--effects` must be inbox or plain, got `{other}`")),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Effects::Inbox => "inbox",
            Effects::Plain => "plain",
        }
    }
}
