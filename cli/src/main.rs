//! The `wharf` binary: parses the command line, connects by URL, runs the command, and
//! maps the outcome to an exit code (see `wharf_cli::exit`).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use wharf::adapter::DeadLetterReader;
use wharf_any::AnyPublisher;
use wharf_cli::args::{Cli, Command, Dlq, Target};
use wharf_cli::commands;
use wharf_cli::exit::Failure;
use wharf_cli::replay::ReplayOptions;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wharf: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("wharf: {failure}");
            failure.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let command = match cli.command {
        Command::Dlq(command) => command,
        Command::Catalog { files, json } => return catalog(&files, json),
        Command::Status {
            url,
            source,
            group,
            window,
            interval,
            json,
            check,
        } => return status(&url, &source, &group, (&window, &interval), json, check).await,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let now = SystemTime::now();
    match command {
        Dlq::List {
            target,
            filter,
            json,
        } => {
            let (client, destination) = connect(&target).await?;
            let filter = commands::filter(&filter, now)?;
            commands::list(
                &client.dead_letters(),
                &destination,
                &filter,
                json,
                &mut out,
            )
            .await?;
        }
        Dlq::Stats { target, filter } => {
            let (client, destination) = connect(&target).await?;
            let filter = commands::filter(&filter, now)?;
            commands::stats(&client.dead_letters(), &destination, &filter, &mut out).await?;
        }
        Dlq::Show { target, id, json } => {
            let (client, destination) = connect(&target).await?;
            commands::show(&client.dead_letters(), &destination, &id, json, &mut out).await?;
        }
        Dlq::Replay {
            target,
            filter,
            to,
            dry_run,
            limit,
            rate,
            max_replays,
        } => {
            if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                return Err(Failure::Usage(
                    "`--rate`: must be a number of messages a second above 0".into(),
                ));
            }
            let (client, destination) = connect(&target).await?;
            let filter = commands::filter(&filter, now)?;
            let options = ReplayOptions {
                to,
                dry_run,
                limit,
                rate,
                max_replays,
            };
            commands::replay(
                &client.dead_letters(),
                &replay_publisher(&client),
                &destination,
                &target.source,
                &filter,
                &options,
                &mut out,
            )
            .await?;
        }
        Dlq::Purge {
            target,
            filter,
            yes,
        } => {
            let (client, destination) = connect(&target).await?;
            let filter = commands::filter(&filter, now)?;
            let confirm = |n: usize| {
                yes || ask(&format!(
                    "remove {n} dead letters from {destination} for good? [y/N] "
                ))
            };
            commands::purge(
                &client.dead_letters(),
                &destination,
                &filter,
                confirm,
                &mut out,
            )
            .await?;
        }
    }
    let _ = out.flush();
    Ok(())
}

/// `wharf catalog`: reads, merges and prints; a consumer name in several catalogs is
/// reported on stderr.
fn catalog(files: &[std::path::PathBuf], json: bool) -> Result<(), Failure> {
    let mut texts = Vec::new();
    for path in files {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::NotFound(format!("{shown}: {e}")))?;
        texts.push((shown, text));
    }
    let merged = wharf_cli::catalog::merge(&texts)?;
    for (name, in_files) in wharf_cli::catalog::duplicates(&merged) {
        eprintln!(
            "wharf: consumer `{name}` is in {} catalogs: {}",
            in_files.len(),
            in_files.join(", ")
        );
    }
    let mut out = std::io::stdout().lock();
    if json {
        let text =
            serde_json::to_string_pretty(&merged).map_err(|e| Failure::Partial(e.to_string()))?;
        let _ = writeln!(out, "{text}");
    } else {
        let _ = write!(out, "{}", wharf_cli::catalog::table(&merged));
    }
    Ok(())
}

/// `wharf status`: samples, prints, and with `--check` fails unless the verdict is ok.
async fn status(
    url: &str,
    source: &str,
    group: &str,
    (window, interval): (&str, &str),
    json: bool,
    check: bool,
) -> Result<(), Failure> {
    let duration = |field: &str, v: &str| {
        humantime::parse_duration(v).map_err(|e| {
            Failure::Usage(format!(
                "`--{field}`: `{v}` is not a duration (30s, 5m): {e}"
            ))
        })
    };
    let sampling = wharf_cli::status::Sampling {
        window: duration("window", window)?,
        interval: duration("interval", interval)?,
    };
    sampling.validate()?;
    let client = wharf_any::connect(url).await?;
    let report = wharf_cli::status::sample(&client, source, group, sampling).await?;
    let mut out = std::io::stdout().lock();
    wharf_cli::status::print(&report, json, &mut out)?;
    let _ = out.flush();
    let verdict = report.group_status.verdict;
    if check && verdict != wharf::status::Verdict::Ok {
        return Err(Failure::NotOk(format!("{source} / {group} is {verdict}")));
    }
    Ok(())
}

/// Connects to the broker of `target.url` and names the dead-letter destination.
async fn connect(target: &Target) -> Result<(wharf_any::AnyClient, String), Failure> {
    let scheme = target.url.split("://").next().unwrap_or_default();
    if target.group.is_none() && target.destination.is_none() && scheme.starts_with("amqp") {
        return Err(Failure::Usage(
            "RabbitMQ keeps dead letters per consumer group: pass `--group <group>` (or `--destination <queue>`)".into(),
        ));
    }
    let client = wharf_any::connect(&target.url).await?;
    let destination = match &target.destination {
        Some(d) => d.clone(),
        None => client
            .dead_letters()
            .destination(&target.source, target.group.as_deref().unwrap_or_default()),
    };
    Ok((client, destination))
}

/// The publisher a replay uses. On JetStream the id travels in `wharf-message-id`, not
/// `Nats-Msg-Id`: the stream's duplicate window would otherwise drop a replay of a
/// message published within it (default 2 minutes) as a duplicate, and the dead letter
/// would be removed with nothing delivered.
fn replay_publisher(client: &wharf_any::AnyClient) -> AnyPublisher {
    match client.publisher() {
        AnyPublisher::Nats(p) => AnyPublisher::Nats(p.broker_dedup(false)),
        other => other,
    }
}

/// Asks a yes/no question on the terminal; anything but `y`/`yes` (or no terminal) is no.
fn ask(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        eprintln!("wharf: stdin is not a terminal: pass --yes to confirm");
        return false;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
