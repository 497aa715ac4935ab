//! Each `wharf dlq` command on a dead-letter reader (and, to replay, a publisher), so the
//! same code runs on every broker and in the tests.

use std::io::Write;
use std::time::SystemTime;

use wharf::adapter::DeadLetterReader;
use wharf::{Message, MessageId, Publisher};

use crate::args::FilterArgs;
use crate::exit::Failure;
use crate::filter::{parse_time, Filter};
use crate::letter;
use crate::replay::{self, ReplayOptions, ReplaySummary};
use crate::stats;

/// The filter the arguments describe; times are relative to `now`.
pub fn filter(args: &FilterArgs, now: SystemTime) -> Result<Filter, Failure> {
    Ok(Filter {
        reason: args.reason.clone(),
        consumer: args.consumer.clone(),
        since: args
            .since
            .as_deref()
            .map(|v| parse_time("since", v, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|v| parse_time("until", v, now))
            .transpose()?,
        key: args.key.clone(),
    })
}

/// Every dead letter at `destination` the filter passes, oldest first.
pub async fn load<R: DeadLetterReader>(
    reader: &R,
    destination: &str,
    filter: &Filter,
) -> Result<Vec<Message>, Failure> {
    let mut letters = reader.list(destination, usize::MAX).await?;
    letters.retain(|m| filter.matches(m));
    Ok(letters)
}

/// `wharf dlq list`.
pub async fn list<R: DeadLetterReader>(
    reader: &R,
    destination: &str,
    filter: &Filter,
    json: bool,
    out: &mut dyn Write,
) -> Result<usize, Failure> {
    let letters = load(reader, destination, filter).await?;
    if json {
        let all: Vec<_> = letters.iter().map(letter::to_json).collect();
        let text =
            serde_json::to_string_pretty(&all).map_err(|e| Failure::Partial(e.to_string()))?;
        let _ = writeln!(out, "{text}");
    } else if letters.is_empty() {
        let _ = writeln!(out, "no dead letters at {destination}");
    } else {
        let _ = write!(out, "{}", letter::table(&letters));
    }
    Ok(letters.len())
}

/// `wharf dlq stats`.
pub async fn stats<R: DeadLetterReader>(
    reader: &R,
    destination: &str,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let letters = load(reader, destination, filter).await?;
    let _ = write!(out, "{}", stats::report(&letters));
    Ok(())
}

/// `wharf dlq show`: the newest dead letter with that id.
pub async fn show<R: DeadLetterReader>(
    reader: &R,
    destination: &str,
    id: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let letters = reader.list(destination, usize::MAX).await?;
    let id = MessageId::from(id.to_owned());
    let Some(found) = letters.iter().rev().find(|m| *m.id() == id) else {
        return Err(Failure::NotFound(format!(
            "no dead letter with id `{id}` at {destination}"
        )));
    };
    if json {
        let text = serde_json::to_string_pretty(&letter::to_json(found))
            .map_err(|e| Failure::Partial(e.to_string()))?;
        let _ = writeln!(out, "{text}");
    } else {
        let _ = write!(out, "{}", letter::show(found));
    }
    Ok(())
}

/// `wharf dlq replay`: a [`Failure::Partial`] when any dead letter failed.
pub async fn replay<R: DeadLetterReader, P: Publisher>(
    reader: &R,
    publisher: &P,
    destination: &str,
    source: &str,
    filter: &Filter,
    options: &ReplayOptions,
    out: &mut dyn Write,
) -> Result<ReplaySummary, Failure> {
    let letters = load(reader, destination, filter).await?;
    let summary = replay::replay(
        reader,
        publisher,
        destination,
        source,
        &letters,
        options,
        out,
    )
    .await;
    let _ = writeln!(out, "{}", summary.line(options.dry_run));
    if summary.failed > 0 {
        return Err(Failure::Partial(format!(
            "{} dead letters could not be replayed (named above)",
            summary.failed
        )));
    }
    Ok(summary)
}

/// `wharf dlq purge`: asks `confirm` with the count unless there is nothing to do.
pub async fn purge<R: DeadLetterReader>(
    reader: &R,
    destination: &str,
    filter: &Filter,
    confirm: impl FnOnce(usize) -> bool,
    out: &mut dyn Write,
) -> Result<usize, Failure> {
    let letters = load(reader, destination, filter).await?;
    if letters.is_empty() {
        let _ = writeln!(out, "no dead letters to purge at {destination}");
        return Ok(0);
    }
    if !confirm(letters.len()) {
        return Err(Failure::Cancelled);
    }
    let mut removed = 0;
    let mut failed = 0;
    for letter in &letters {
        match reader.remove(destination, letter).await {
            Ok(_) => removed += 1,
            Err(e) => {
                failed += 1;
                let _ = writeln!(out, "failed {}: {e}", letter.id());
            }
        }
    }
    let _ = writeln!(out, "purged {removed}, failed {failed}");
    if failed > 0 {
        return Err(Failure::Partial(format!(
            "{failed} dead letters could not be removed"
        )));
    }
    Ok(removed)
}
