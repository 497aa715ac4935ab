//! The command line, as clap reads it.

use clap::{Args, Parser, Subcommand};

/// Operate wharf consumers: review, replay and purge dead letters on any broker.
///
/// The broker is chosen by URL, as for `wharf_any::connect`: `amqp://`, `amqps://`,
/// `kafka://`, `kafka+ssl://`, `nats+jetstream://` (and `memory://`, an empty broker of
/// this process, for trying the commands out). The URL's options are the adapter's own.
#[derive(Debug, Parser)]
#[command(name = "wharf", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dead letters: list, stats, show, replay, purge.
    #[command(subcommand)]
    Dlq(Dlq),
    /// A consumer group's backlog verdict: ok, slow, stalled, stopped or failing.
    Status {
        /// The broker's URL (its password is never printed).
        url: String,
        /// The source the group reads (exchange, topic, subject).
        source: String,
        /// The consumer group.
        #[arg(long)]
        group: String,
        /// How long to watch: the verdict compares the first look with the last
        /// (a duration: 30s, 5m).
        #[arg(long, default_value = "30s")]
        window: String,
        /// Time between two looks.
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
        /// Exit with code 6 unless the verdict is `ok` (for scripts and probes).
        #[arg(long)]
        check: bool,
    },
    /// Merge the consumer catalogs services export (`App::catalog_json`) into one table.
    Catalog {
        /// Catalog files (JSON arrays).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Print the merged JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `wharf dlq ...`.
#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// One line per dead letter: id, reason, attempts, source, consumer, failed at, replays, error.
    List {
        /// Where the dead letters are.
        #[command(flatten)]
        target: Target,
        /// Which dead letters.
        #[command(flatten)]
        filter: FilterArgs,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Dead letters counted by reason and by error (first line, numbers masked).
    Stats {
        /// Where the dead letters are.
        #[command(flatten)]
        target: Target,
        /// Which dead letters.
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// One dead letter: every header and the payload (pretty JSON, text or hex).
    Show {
        /// Where the dead letters are.
        #[command(flatten)]
        target: Target,
        /// The dead letter's message id.
        id: String,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Republish dead letters to their source (or `--to`), then remove them.
    Replay {
        /// Where the dead letters are.
        #[command(flatten)]
        target: Target,
        /// Which dead letters.
        #[command(flatten)]
        filter: FilterArgs,
        /// Republish here instead of each dead letter's source.
        #[arg(long)]
        to: Option<String>,
        /// Say what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replay at most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// At most this many republishes a second.
        #[arg(long)]
        rate: Option<f64>,
        /// Skip dead letters already replayed this many times (a loop guard).
        #[arg(long, default_value_t = 3)]
        max_replays: u32,
    },
    /// Remove dead letters for good.
    Purge {
        /// Where the dead letters are.
        #[command(flatten)]
        target: Target,
        /// Which dead letters.
        #[command(flatten)]
        filter: FilterArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Where the dead letters are.
#[derive(Debug, Args)]
pub struct Target {
    /// The broker's URL (its password is never printed).
    pub url: String,
    /// The source the consumers read (queue, topic, stream).
    pub source: String,
    /// The consumer group (RabbitMQ keeps dead letters per group: required there).
    #[arg(long)]
    pub group: Option<String>,
    /// The dead-letter destination itself, instead of the one derived from source and group.
    #[arg(long)]
    pub destination: Option<String>,
}

/// The filters every command but `show` takes.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Only this `wharf-dlq-reason` (permanent, decode, retries-exhausted, ...).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only dead letters of this consumer.
    #[arg(long)]
    pub consumer: Option<String>,
    /// Only those that failed since then: an RFC 3339 time or a duration ago (2h).
    #[arg(long)]
    pub since: Option<String>,
    /// Only those that failed before then: an RFC 3339 time or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// Only messages with this key.
    #[arg(long)]
    pub key: Option<String>,
}
