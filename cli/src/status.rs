//! `wharf status`: samples a group's backlog over a window and prints the verdict per
//! partition and for the group (see [`wharf::status`] for the rules).

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use wharf::adapter::{Backlog, Client};
use wharf::status::{evaluate, Evaluation, Observation};

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
        Ok(())
    }
}

/// The verdict of one partition.
#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    /// The partition, where the broker has partitions.
    pub partition: Option<i32>,
    /// Its verdict over the window.
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

/// What `wharf status` found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The source.
    pub source: String,
    /// The group.
    pub group: String,
    /// The group's verdict.
    pub group_status: Evaluation,
    /// Each partition's (one entry without a partition where the broker has none).
    pub partitions: Vec<PartitionStatus>,
    /// The last look, as the broker answered it.
    pub last: Backlog,
}

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
    for i in 0..looks {
        if i > 0 {
            tokio::time::sleep(sampling.interval).await;
        }
        taken.push(client.backlog(source, group).await?);
    }
    let group_obs: Vec<Observation> = taken.iter().map(Observation::of_group).collect();
    let group_status = evaluate(&group_obs).expect("at least two looks");
    let last = taken.last().expect("at least two looks").clone();
    let partitions = last
        .partitions
        .iter()
        .filter_map(|p| {
            // A partition's looks, matched by id (partitions may be added meanwhile).
            let obs: Vec<Observation> = taken
                .iter()
                .filter_map(|b| {
                    b.partitions
                        .iter()
                        .find(|q| q.partition == p.partition)
                        .map(|q| Observation::of_partition(b, q))
                })
                .collect();
            Some(PartitionStatus {
                partition: p.partition,
                evaluation: evaluate(&obs)?,
            })
        })
        .collect();
    Ok(Report {
        source: source.to_owned(),
        group: group.to_owned(),
        group_status,
        partitions,
        last,
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
    if report.partitions.len() > 1 || report.partitions.iter().any(|p| p.partition.is_some()) {
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
