//! `wharf status`: samples a group's backlog over a window and prints the verdict per
//! partition and for the group (see [`wharf::status`] for the rules).

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use wharf::adapter::{Backlog, Client};
use wharf::status::{evaluate_group, Evaluation, Observation, PartitionEvaluation};

use crate::exit::Failure;
use crate::table;

/// How `wharf status` samples.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// From the first look to the last.
    pub window: Duration,
    /// Between two looks.
    pub interval: Duration,
}

impl Sampling {
    /// Checks the two fit together (at least two looks).
    pub fn validate(&self) -> Result<(), Failure> {
        if self.interval.is_zero() || self.window < self.interval {
            return Err(Failure::Usage(
                "`--interval` must be above 0 and no longer than `--window`".into(),
            ));
        }
        if self.window.as_nanos() / self.interval.as_nanos() >= MAX_LOOKS {
            return Err(Failure::Usage(format!(
                "`--window` / `--interval` asks for more than {MAX_LOOKS} looks: take a longer interval"
            )));
        }
        Ok(())
    }
}

/// What `wharf status` found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The source.
    pub source: String,
    /// The group.
    pub group: String,
    /// The group's verdict (a partition stalled or stopped makes it the group's).
    pub group_status: Evaluation,
    /// Each partition's verdict, where the broker has several.
    pub partitions: Vec<PartitionEvaluation>,
    /// The last look, as the broker answered it.
    pub last: Backlog,
}

/// Most looks one run takes.
const MAX_LOOKS: u128 = 10_000;

/// Looks at group `group` on `source` every `sampling.interval` for `sampling.window`
/// and evaluates the looks.
pub async fn sample<C: Client>(
    client: &C,
    source: &str,
    group: &str,
    sampling: Sampling,
) -> Result<Report, Failure> {
    sampling.validate()?;
    let looks = (sampling.window.as_nanos() / sampling.interval.as_nanos()) as usize + 1;
    let mut taken: Vec<Backlog> = Vec::with_capacity(looks);
    let start = tokio::time::Instant::now();
    for i in 0..looks {
        // On a fixed schedule: a slow look does not stretch the window.
        tokio::time::sleep_until(start + sampling.interval * i as u32).await;
        taken.push(client.backlog(source, group).await?);
    }
    let observations: Vec<Observation> = taken.iter().map(Observation::of_group).collect();
    let evaluation = evaluate_group(&taken, &observations).expect("at least two looks");
    Ok(Report {
        source: source.to_owned(),
        group: group.to_owned(),
        group_status: evaluation.group,
        partitions: evaluation.partitions,
        last: taken.pop().expect("at least two looks"),
    })
}

/// Prints `report` as a table (one row per partition, then the group's verdict) or JSON.
pub fn print(report: &Report, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    if json {
        let text =
            serde_json::to_string_pretty(report).map_err(|e| Failure::Partial(e.to_string()))?;
        let _ = writeln!(out, "{text}");
        return Ok(());
    }
    let known = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    if !report.partitions.is_empty() {
        let rows: Vec<Vec<String>> = report
            .partitions
            .iter()
            .map(|p| {
                vec![
                    p.partition.map_or("-".to_owned(), |n| n.to_string()),
                    p.evaluation.verdict.to_string(),
                    p.evaluation.backlog.to_string(),
                    known(p.evaluation.settled),
                    p.evaluation.reason.clone(),
                ]
            })
            .collect();
        let _ = write!(
            out,
            "{}",
            table::render(
                &["PARTITION", "VERDICT", "BACKLOG", "SETTLED", "REASON"],
                &rows
            )
        );
    }
    let g = &report.group_status;
    let last = &report.last;
    let _ = writeln!(
        out,
        "{} / {}: {} ({}) | backlog {} | settled in {:.0}s: {} | failed: {} | consumers: {} | oldest unsettled: {}",
        report.source,
        report.group,
        g.verdict,
        g.reason,
        g.backlog,
        g.window.as_secs_f64(),
        known(g.settled),
        known(g.failed),
        known(last.consumers),
        last.oldest_age()
            .map_or("-".to_owned(), |d| format!("{:.1}s", d.as_secs_f64())),
    );
    Ok(())
}
